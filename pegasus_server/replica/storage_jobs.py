"""Background storage work of a replica server: flushes and manual compactions.

A flush runs when an operator asks (``replica.trigger-checkpoint``); the private log is
collected below the durable decree afterwards. Storage keeps RocksDB's write-ahead log, so every
applied mutation is durable without a flush.

Upstream runs RocksDB without its WAL, the private log being the WAL. Tried twice (BENCHMARKS.md,
2026-12-07): it needs (1) every mutation above the flushed decree kept by the private log's
rewrite (``ReplicaLog.discard_after``, when a replica drops uncommitted leftovers to learn) and
by its index trimming, which keep only the newest ``index_keep`` below the *applied* decree —
with the WAL off that loses the unflushed ones, the likely cause of the chaos test's stale read
(seed 31757: a restarted replica whose log began above its storage resumed as primary); (2)
that index kept as bytes, since Python objects for every unflushed mutation made young garbage
collections take 30-70 ms; (3) a flush that does not hold the interpreter lock: rocksdict's
checkpoint, the one call that persists both column families at one point, holds it throughout
and stalls the server, so the decree must live in the data family, whose flush releases it.
With all three it was no clear gain over this WAL-on storage (peak up 4-24 % in four
interleaved pairs, CPU per write at a fixed rate up 5 %, that run's p99 worse), so it stays on.

A manual compaction runs when the table env ``manual_compact.once.trigger_time`` (set by the
meta's RPC_CM_START_MANUAL_COMPACT, meta.md §4.14) is newer than the replica's last one; its
state goes to the meta in config sync (``replica_info.manual_compact_status``).

One job at a time per node, in a worker thread of gevent's pool (a flush of storage with its
WAL releases the interpreter lock) while the executor goes on writing; an engine that cannot
(``concurrent_flush`` false: the memory engine of tests) runs it inline. ``round`` and the
completion run on the node's executor; closing a storage waits for a job on it (``wait``).
"""
from __future__ import annotations

import time
from typing import Dict, Optional, Tuple

import gevent
from loguru import logger

from pegasus_server.storage.app import StorageApp

FLUSH, COMPACT = "flush", "compact"
# manual_compaction_status (idl metadata.thrift)
MC_IDLE, MC_QUEUING, MC_RUNNING, MC_FINISHED = 0, 1, 2, 3


class StorageJobs:
    def __init__(self, node):
        self.node = node
        self.running: Optional[Tuple[gevent.Greenlet, object, StorageApp, str]] = None
        self.requested: Dict[object, str] = {}        # gpid -> job an operator asked for

    # ------------------------------------------------------------------ choosing
    def round(self) -> None:
        """Start the most urgent job, unless one runs (on the executor, every second)."""
        if self.running is not None:
            return
        job = self._choose()
        if job is None:
            return
        rep, kind = job
        self.requested.pop(rep.gpid, None)
        storage = rep.storage
        if not storage.concurrent_flush:
            self._run(rep, storage, kind)
            return
        self.running = (gevent.spawn(self._run, rep, storage, kind), rep, storage, kind)

    def _choose(self):
        for rep in self.node.replicas.values():
            if self.requested.get(rep.gpid) == FLUSH:
                return rep, FLUSH
        wall = time.time()
        for rep in self.node.replicas.values():
            if rep.storage.manual_compact_due(wall):
                return rep, COMPACT
        return None

    # ------------------------------------------------------------------ running
    def _run(self, rep, storage: StorageApp, kind: str) -> None:
        fn = storage.flush if kind == FLUSH else storage.compact
        ok = False
        started = time.monotonic()
        try:
            if storage.concurrent_flush:
                gevent.get_hub().threadpool.apply(fn)
            else:
                fn()
            ok = True
        except Exception:
            logger.exception("replica {}: storage {} failed", rep.gpid, kind)
        finally:
            self.node.post(self._done, rep, storage, kind, ok, time.monotonic() - started)

    def _done(self, rep, storage: StorageApp, kind: str, ok: bool, seconds: float) -> None:
        if self.running is not None and self.running[2] is storage:
            self.running = None
        current = self.node.replicas.get(rep.gpid) is rep and rep.storage is storage
        if kind == FLUSH:
            if current and ok:
                self.node.collect_log(rep)
        elif current and ok:
            storage.finish_manual_compact(time.time())
            logger.info("replica {}: manual compaction done in {:.1f} s", rep.gpid, seconds)

    def wait(self, storage: StorageApp) -> None:
        """Before ``storage`` is closed: let a job running on it finish."""
        r = self.running
        if r is not None and r[2] is storage:
            r[0].join()

    def wait_all(self) -> None:
        r = self.running
        if r is not None:
            r[0].join()

    # ------------------------------------------------------------------ state
    def request(self, rep, kind: str) -> None:
        self.requested[rep.gpid] = kind

    def compact_status(self, rep) -> int:
        r = self.running
        if r is not None and r[2] is rep.storage and r[3] == COMPACT:
            return MC_RUNNING
        st = rep.storage
        trigger = st.manual_compact_trigger()
        if trigger <= 0:
            return MC_IDLE
        if st.last_manual_compact_finish_time >= trigger:
            return MC_FINISHED
        return MC_QUEUING if trigger <= time.time() else MC_IDLE
