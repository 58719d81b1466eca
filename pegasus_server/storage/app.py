"""``StorageApp``: the storage of one partition replica, behind the replication seam.

Owns the per-partition facade the replica layer calls: opening (or creating) the engine under
``<data_dir>/rdb`` and its meta column family (data version 1 and decree 0 on creation), table-env
handling (``default_ttl``, ``replica.rocksdb_iteration_threshold_time_ms``,
``replica.split.validate_partition_hash``, ``rocksdb.usage_scenario``), dispatch of read RPCs to
``reads`` / ``scanner`` and of write RPCs to ``writes`` (one atomic engine batch per decree), the
scan-context store, the decree counters, checkpoints (``<data_dir>/checkpoint.<decree>``) and the
background expired-record sweep (our stand-in for upstream's compaction filter, §4.6).

Clocks are injected (``clock`` = Unix seconds, ``timer`` = monotonic seconds) so every behaviour
is testable without real time. Must not import gevent or sockets; rocksdict only through
``storage.rocks``.
"""
from __future__ import annotations

import os
import shutil
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from pegasus_server.base import Gpid

from . import keys, reads, scanner, values, writes
from .engine import CF_META, Engine, MemoryEngine, WriteBatch
from .rules import StorageOptions
from .scanner import ScanContextStore
from .view import PartitionView
from .writes import (
    META_DATA_VERSION,
    META_LAST_FLUSHED_DECREE,
    META_LAST_MANUAL_COMPACT_FINISH_TIME,
    META_USAGE_SCENARIO,
    Mutation,
)

ENV_DEFAULT_TTL = "default_ttl"
ENV_ITERATION_THRESHOLD_TIME_MS = "replica.rocksdb_iteration_threshold_time_ms"
ENV_VALIDATE_PARTITION_HASH = "replica.split.validate_partition_hash"
ENV_USAGE_SCENARIO = "rocksdb.usage_scenario"
ENV_MANUAL_COMPACT_DISABLED = "manual_compact.disabled"
ENV_MANUAL_COMPACT_ONCE_TRIGGER_TIME = "manual_compact.once.trigger_time"

RDB_DIR = "rdb"
CHECKPOINT_PREFIX = "checkpoint."

RPC_GET = "RPC_RRDB_RRDB_GET"
RPC_MULTI_GET = "RPC_RRDB_RRDB_MULTI_GET"
RPC_BATCH_GET = "RPC_RRDB_RRDB_BATCH_GET"
RPC_SORTKEY_COUNT = "RPC_RRDB_RRDB_SORTKEY_COUNT"
RPC_TTL = "RPC_RRDB_RRDB_TTL"
RPC_GET_SCANNER = "RPC_RRDB_RRDB_GET_SCANNER"
RPC_SCAN = "RPC_RRDB_RRDB_SCAN"
RPC_CLEAR_SCANNER = "RPC_RRDB_RRDB_CLEAR_SCANNER"

READ_RPCS = frozenset({RPC_GET, RPC_MULTI_GET, RPC_BATCH_GET, RPC_SORTKEY_COUNT, RPC_TTL,
                       RPC_GET_SCANNER, RPC_SCAN})
WRITE_RPCS = frozenset(writes.WRITE_HANDLERS)


class StorageError(Exception):
    """Misuse of a StorageApp (bad decree order, unknown RPC, unsupported data version)."""


def _open_engine(kind: str, path: str, **engine_options) -> Engine:
    if kind == "memory":
        return MemoryEngine(path)
    if kind == "rocksdb":
        from .rocks import RocksEngine  # the only rocksdict import site

        return RocksEngine(path, **engine_options)
    raise StorageError(f"unknown engine kind {kind!r}")


def _parse_bool(text: str) -> Optional[bool]:
    t = text.strip().lower()
    if t == "true":
        return True
    if t == "false":
        return False
    return None


def _parse_uint(text: str) -> Optional[int]:
    t = text.strip()
    if not t.isdigit():
        return None
    return int(t)


class StorageApp:
    """One partition replica's storage. Create with ``StorageApp.open``."""

    def __init__(self, engine: Engine, gpid: Gpid, data_dir: str, *, engine_kind: str,
                 options: Optional[StorageOptions] = None, server: str = "",
                 clock: Callable[[], float] = time.time,
                 timer: Callable[[], float] = time.monotonic,
                 partition_count: Optional[int] = None,
                 durable_writes: bool = False) -> None:
        self.engine = engine
        self.gpid = Gpid(*gpid)
        self.data_dir = data_dir
        self.engine_kind = engine_kind
        self.options = options or StorageOptions()
        self.options.validate()
        #: "host:port" written into every response's ``server`` field
        self.server = server
        self.envs: Dict[str, str] = {}
        self._durable_writes = durable_writes
        self.view = PartitionView(
            engine=engine,
            options=self.options,
            clock=clock,
            timer=timer,
            iteration_threshold_ms=self.options.rocksdb_iteration_threshold_time_ms,
            partition_index=self.gpid.partition_index,
            partition_count=partition_count,
        )
        self.scanners = ScanContextStore(self.options.scan_context_timeout_seconds, timer)
        self._sweep_from: Optional[bytes] = keys.MIN_KEY
        self._closed = False
        self._load_meta()
        self._last_durable_decree = self._last_committed_decree

    # ------------------------------------------------------------------ open / close

    @classmethod
    def open(cls, data_dir: str, gpid, engine: str = "rocksdb",
             envs: Optional[Dict[str, str]] = None, *,
             options: Optional[StorageOptions] = None, server: str = "",
             clock: Callable[[], float] = time.time,
             timer: Callable[[], float] = time.monotonic,
             partition_count: Optional[int] = None,
             disable_wal: bool = False, sync: bool = False) -> "StorageApp":
        """Open the partition's storage under ``data_dir`` (created if missing).

        ``engine``: "rocksdb" (``RocksEngine`` at ``<data_dir>/rdb``; ``disable_wal``/``sync``
        choose its durability) or "memory" (``MemoryEngine``; durable only at ``flush``).
        """
        os.makedirs(data_dir, exist_ok=True)
        path = os.path.join(data_dir, RDB_DIR)
        eng_opts = {"disable_wal": disable_wal, "sync": sync} if engine == "rocksdb" else {}
        eng = _open_engine(engine, path, **eng_opts)
        try:
            app = cls(eng, gpid, data_dir, engine_kind=engine, options=options, server=server,
                      clock=clock, timer=timer, partition_count=partition_count,
                      durable_writes=(engine == "rocksdb" and not disable_wal))
        except BaseException:
            eng.close()
            raise
        if envs:
            app.set_envs(envs)
        return app

    def _load_meta(self) -> None:
        eng = self.engine
        version = eng.get(META_DATA_VERSION, CF_META)
        if version is None:
            b = WriteBatch()
            b.put(META_DATA_VERSION, str(values.DATA_VERSION_MAX).encode(), CF_META)
            b.put(META_LAST_FLUSHED_DECREE, b"0", CF_META)
            b.put(META_LAST_MANUAL_COMPACT_FINISH_TIME, b"0", CF_META)
            eng.write(b)
            eng.flush()
            version = str(values.DATA_VERSION_MAX).encode()
        v = int(version)
        if v > values.DATA_VERSION_MAX:
            raise StorageError(f"data version {v} is newer than supported "
                               f"{values.DATA_VERSION_MAX}")
        self.view.data_version = v
        self._last_committed_decree = int(eng.get(META_LAST_FLUSHED_DECREE, CF_META) or b"0")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.scanners.clear()
        self.engine.close()

    @property
    def data_version(self) -> int:
        return self.view.data_version

    @property
    def partition_count(self) -> Optional[int]:
        return self.view.partition_count

    @partition_count.setter
    def partition_count(self, n: Optional[int]) -> None:
        self.view.partition_count = n

    # ------------------------------------------------------------------ envs

    def set_envs(self, envs: Dict[str, str]) -> None:
        """Apply the table's complete env map (absent keys fall back to their defaults;
        unparsable values are ignored, keeping the current setting)."""
        envs = dict(envs or {})
        self.envs = envs
        view = self.view

        text = envs.get(ENV_DEFAULT_TTL)
        if text is None:
            view.default_ttl = 0
        else:
            ttl = _parse_uint(text)
            if ttl is not None and ttl <= 0xFFFFFFFF:
                view.default_ttl = ttl

        text = envs.get(ENV_ITERATION_THRESHOLD_TIME_MS)
        if text is None:
            view.iteration_threshold_ms = self.options.rocksdb_iteration_threshold_time_ms
        else:
            ms = _parse_uint(text)
            if ms is not None:
                view.iteration_threshold_ms = ms

        text = envs.get(ENV_VALIDATE_PARTITION_HASH)
        if text is None:
            view.validate_partition_hash = False
        else:
            flag = _parse_bool(text)
            if flag is not None:
                view.validate_partition_hash = flag

        scenario = envs.get(ENV_USAGE_SCENARIO)
        if scenario in ("normal", "prefer_write", "bulk_load"):
            if self.engine.get(META_USAGE_SCENARIO, CF_META) != scenario.encode():
                self.engine.put(META_USAGE_SCENARIO, scenario.encode(), CF_META)

    # ------------------------------------------------------------------ reads

    def read(self, rpc_name: str, request):
        """Serve a read RPC; ``request`` is the single argument as the client sent it (bytes for
        GET / TTL / SORTKEY_COUNT, a ``thrift.rrdb`` struct otherwise)."""
        view = self.view
        if rpc_name == RPC_GET:
            resp = reads.get(view, request)
        elif rpc_name == RPC_TTL:
            resp = reads.ttl(view, request)
        elif rpc_name == RPC_MULTI_GET:
            resp = reads.multi_get(view, request)
        elif rpc_name == RPC_BATCH_GET:
            resp = reads.batch_get(view, request)
        elif rpc_name == RPC_SORTKEY_COUNT:
            resp = reads.sortkey_count(view, request)
        elif rpc_name == RPC_GET_SCANNER:
            resp = scanner.get_scanner(view, self.scanners, request)
        elif rpc_name == RPC_SCAN:
            resp = scanner.scan(view, self.scanners, request)
        else:
            raise StorageError(f"not a storage read RPC: {rpc_name}")
        return self._stamp(resp)

    def clear_scanner(self, context_id: int) -> None:
        """Drop a scan context (never answered on the wire, D4)."""
        scanner.clear_scanner(self.scanners, context_id)

    # ------------------------------------------------------------------ writes

    @property
    def last_committed_decree(self) -> int:
        return self._last_committed_decree

    @property
    def last_durable_decree(self) -> int:
        """Decree whose effects survive a crash: every applied one with a WAL, else the last
        flushed / checkpointed one."""
        if self._durable_writes:
            return self._last_committed_decree
        return self._last_durable_decree

    def write(self, decree: int, timestamp_us: int, rpc_name: str, request):
        """Apply one write RPC as mutation ``decree``; returns its response."""
        return self.write_batch(decree, timestamp_us, [(rpc_name, request)])[0]

    def write_batch(self, decree: int, timestamp_us: int,
                    requests: Sequence[Tuple[str, object]]) -> List[object]:
        """Apply several write requests as the single mutation ``decree`` (one atomic engine
        batch; only PUT / REMOVE may share a mutation). An empty list writes the empty record
        (``RPC_REPLICATION_WRITE_EMPTY``)."""
        if decree <= self._last_committed_decree:
            raise StorageError(f"decree {decree} <= last committed "
                               f"{self._last_committed_decree}")
        m = Mutation(self.view, decree, timestamp_us)
        responses = []
        for rpc_name, request in requests:
            handler = writes.WRITE_HANDLERS.get(rpc_name)
            if handler is None:
                raise StorageError(f"not a storage write RPC: {rpc_name}")
            m.begin(rpc_name)
            responses.append(self._stamp(handler(m, request)))
        self.engine.write(m.finish())
        self._last_committed_decree = decree
        return responses

    def write_empty(self, decree: int, timestamp_us: int) -> None:
        self.write_batch(decree, timestamp_us, [])

    def _stamp(self, resp):
        resp.app_id = self.gpid.app_id
        resp.partition_index = self.gpid.partition_index
        resp.server = self.server
        return resp

    # ------------------------------------------------------------------ durability

    def flush(self) -> int:
        """Flush the engine; returns a decree now durable (at least this one). When
        ``concurrent_flush`` is true this may run in a worker thread while writes go on."""
        decree = self._last_committed_decree
        self.engine.flush()
        if decree > self._last_durable_decree:
            self._last_durable_decree = decree
        return decree

    @property
    def concurrent_flush(self) -> bool:
        return self.engine.concurrent_flush

    # ------------------------------------------------------------------ manual compaction
    # Envs ``manual_compact.once.trigger_time`` (Unix seconds, set through the meta's
    # RPC_CM_START_MANUAL_COMPACT) and ``manual_compact.disabled`` (meta.md §4.14); the finish
    # time of the last one is ``pegasus_last_manual_compact_finish_time`` in the meta family.

    @property
    def last_manual_compact_finish_time(self) -> int:
        return int(self.engine.get(META_LAST_MANUAL_COMPACT_FINISH_TIME, CF_META) or b"0")

    def manual_compact_trigger(self) -> int:
        """The trigger time of the wanted manual compaction, 0 when none is wanted."""
        if self.envs.get(ENV_MANUAL_COMPACT_DISABLED, "").lower() == "true":
            return 0
        t = _parse_uint(self.envs.get(ENV_MANUAL_COMPACT_ONCE_TRIGGER_TIME, "") or "")
        return t if t else 0

    def manual_compact_due(self, now: float) -> bool:
        t = self.manual_compact_trigger()
        return 0 < t <= now and t > self.last_manual_compact_finish_time

    def compact(self) -> None:
        """Compact fully (may run in a worker thread when ``concurrent_flush``)."""
        self.engine.compact()

    def finish_manual_compact(self, now: float) -> None:
        self.engine.write(WriteBatch().put(META_LAST_MANUAL_COMPACT_FINISH_TIME,
                                           str(int(now)).encode(), CF_META))

    def stats(self) -> dict:
        return self.engine.stats()

    def checkpoint(self) -> Tuple[int, str]:
        """Write ``<data_dir>/checkpoint.<decree>`` (replaced if present); returns
        ``(decree, path)``. Opening a StorageApp on a copy of it sees exactly this decree."""
        decree = self._last_committed_decree
        path = os.path.join(self.data_dir, f"{CHECKPOINT_PREFIX}{decree}")
        if os.path.exists(path):
            shutil.rmtree(path)
        self.engine.checkpoint(path)
        self._last_durable_decree = max(self._last_durable_decree, decree)
        return decree, path

    def list_checkpoints(self) -> List[int]:
        out = []
        for name in os.listdir(self.data_dir):
            if name.startswith(CHECKPOINT_PREFIX):
                tail = name[len(CHECKPOINT_PREFIX):]
                if tail.isdigit() and f"{CHECKPOINT_PREFIX}{int(tail)}" == name:
                    out.append(int(tail))
        return sorted(out)

    @staticmethod
    def install_checkpoint(data_dir: str, checkpoint_dir: str) -> None:
        """Make ``checkpoint_dir`` (a copy of another replica's checkpoint) the live DB of
        ``data_dir``; call before ``open``. Any existing DB there is replaced."""
        os.makedirs(data_dir, exist_ok=True)
        rdb = os.path.join(data_dir, RDB_DIR)
        if os.path.exists(rdb):
            shutil.rmtree(rdb)
        shutil.copytree(checkpoint_dir, rdb)

    # ------------------------------------------------------------------ expiry sweep

    def remove_expired(self, budget: int = 1000) -> int:
        """Examine up to ``budget`` records from where the last call stopped (wrapping around),
        deleting expired ones and giving records without expiry ``now + default_ttl`` when that
        env is set (the compaction filter's observable effects, §4.6). Not a mutation: the decree
        does not move. Returns the number of records deleted."""
        view = self.view
        now = view.now()
        default_ttl = view.default_ttl
        start = self._sweep_from or keys.MIN_KEY
        batch = WriteBatch()
        deleted = examined = 0
        next_from: Optional[bytes] = None
        with self.engine.cursor(keys.MIN_KEY, None) as cur:
            cur.seek(start)
            while cur.valid:
                if examined >= budget:
                    next_from = cur.key()
                    break
                examined += 1
                k, stored = cur.key(), cur.value()
                ets = view.expire_ts_of(stored)
                if values.is_expired(ets, now):
                    batch.delete(k)
                    deleted += 1
                elif ets == 0 and default_ttl > 0:
                    batch.put(k, values.with_expire_ts(stored, now + default_ttl))
                cur.next()
        if len(batch):
            self.engine.write(batch)
        self._sweep_from = next_from  # None: the next call starts over
        return deleted

    # ------------------------------------------------------------------ stats

    def approximate_size(self) -> int:
        return self.engine.approximate_size()
