"""One replica's private log as the driver uses it: the appender plus an in-memory index.

Owns: replaying ``<replica>/plog`` at open (``plog.Replay``, which truncates a torn or corrupt
tail and logs why), group-committed appends (``PrivateLog.append``: one write, and one fdatasync
under ``[replication] plog_force_flush``), an index ``decree -> latest mutation`` of what the
files hold (learning by log, LT_LOG, reads ranges from it; restart replay is built from it), the
durable discard of uncommitted leftovers (``discard_after``) and garbage collection below the
storage's durable decree.

Discarding rewrites the log: the kept mutations go to ``plog.rewrite``, which then replaces
``plog`` by two renames; a crash at any point leaves either the old or the new log (``open``
finishes or undoes an interrupted rewrite). A log is append-only, so discarded mutations would
otherwise come back on the next replay (upstream resets the log the same way when a learner
starts over). Only the newest ``keep`` mutations at or below the discard point are kept: the
storage holds every committed decree (its own write-ahead log), the log's older entries only
serve learners, and a replica that discards is itself a learner.

The index keeps about the newest ``index_keep`` decrees at or below the durable decree (plus
everything above it): ``trim`` after every append drops the oldest entries, so memory and the
work of Python's cyclic garbage collector (which walks every indexed mutation) stay bounded
whatever the write rate; GC also trims it.

Plain file I/O; no gevent, no storage code (design rule 2 driver helper). Not thread-safe: the
replica driver calls it from its one executor greenlet (or a threadpool job it waits for).
"""
from __future__ import annotations

import os
import shutil
from typing import Dict, List, Optional, Sequence, Tuple

from loguru import logger

from pegasus_server.base import Gpid
from pegasus_server.replica import plog
from pegasus_server.replica.mutation import Mutation

DEFAULT_KEEP = 1000


class ReplicaLog:
    def __init__(self, dir: str, gpid: Gpid, *, sync: str = "none",
                 file_size_limit: int = plog.DEFAULT_FILE_SIZE_LIMIT,
                 reserve_max_bytes: int = 0, reserve_max_seconds: float = 0,
                 index_keep: int = DEFAULT_KEEP):
        self.dir = dir
        self.gpid = Gpid(*gpid)
        self.sync = sync
        self.file_size_limit = file_size_limit
        self.reserve_max_bytes = reserve_max_bytes
        self.reserve_max_seconds = reserve_max_seconds
        self.index_keep = index_keep
        self.index: Dict[int, Mutation] = {}
        self.problem: Optional[plog.TailProblem] = None
        self._finish_rewrite()
        self._open()

    # ------------------------------------------------------------------ open / rewrite
    def _finish_rewrite(self) -> None:
        new, old = self.dir + ".rewrite", self.dir + ".old"
        if not os.path.isdir(self.dir) and os.path.isdir(new) and \
                os.path.exists(os.path.join(new, "COMPLETE")):
            os.rename(new, self.dir)            # crashed between the two renames
            logger.info("plog {}: finished an interrupted rewrite", self.dir)
        for leftover in (new, old):
            if os.path.isdir(leftover):
                shutil.rmtree(leftover, ignore_errors=True)

    def _open(self) -> None:
        marker = os.path.join(self.dir, "COMPLETE")
        if os.path.exists(marker):
            os.unlink(marker)
        r = plog.Replay(self.dir)
        index: Dict[int, Mutation] = {}
        for m in r:
            index[m.decree] = m
        self.index = index
        self.problem = r.result.problem
        self.log = plog.PrivateLog.open(self.dir, self.gpid, r.result, sync=self.sync,
                                        file_size_limit=self.file_size_limit)

    @classmethod
    def _write_new(cls, dir: str, gpid: Gpid, mutations: Sequence[Mutation], sync: str,
                   file_size_limit: int) -> None:
        if os.path.isdir(dir):
            shutil.rmtree(dir)
        log = plog.PrivateLog.open(dir, gpid, sync="none", file_size_limit=file_size_limit)
        try:
            for k in range(0, len(mutations), 256):
                log.append([m.with_log_offset(-1) for m in mutations[k:k + 256]])
            log.flush()
        finally:
            log.close()
        with open(os.path.join(dir, "COMPLETE"), "w") as f:
            f.flush()
            os.fsync(f.fileno())
        plog.fsync_path(dir, directory=True)

    # ------------------------------------------------------------------ queries
    @property
    def max_decree(self) -> int:
        return max(self.index, default=0)

    def mutations(self) -> List[Mutation]:
        """Every indexed mutation in decree order (what a restart replays)."""
        return [self.index[d] for d in sorted(self.index)]

    def first_contiguous(self, upto: int, limit: Optional[int] = None) -> Optional[int]:
        """Lowest ``d`` with every decree of ``[d, upto]`` indexed; None if ``upto`` is not.
        ``limit``: the answer is at least ``upto - limit``."""
        if upto not in self.index:
            return None
        d = upto
        floor = upto - limit if limit is not None else None
        while d - 1 in self.index and (floor is None or d - 1 >= floor):
            d -= 1
        return d

    def range(self, lo_excl: int, hi_incl: int) -> Tuple[Mutation, ...]:
        return tuple(self.index[d] for d in range(lo_excl + 1, hi_incl + 1) if d in self.index)

    # ------------------------------------------------------------------ writes
    def append(self, mutations: Sequence[Mutation]) -> None:
        """Group commit: one write (+ one fdatasync under sync="batch"). Raises PlogError."""
        res = self.log.append(mutations)
        for m, off in zip(mutations, res.offsets):
            self.index[m.decree] = m.with_log_offset(off)

    def trim(self, durable_decree: int) -> None:
        """Drop the oldest index entries while more than ``index_keep`` are indexed, never one
        above ``durable_decree``. Entries are inserted in decree order (appends and replay), so
        the oldest is the first; a decree re-appended after a rewrite is at worst kept longer."""
        index = self.index
        excess = len(index) - self.index_keep
        while excess > 0:
            d = next(iter(index))
            if d > durable_decree:
                break
            del index[d]
            excess -= 1

    def discard_after(self, decree: int) -> None:
        """Durably drop every mutation above ``decree`` (see the module docstring)."""
        if self.max_decree <= decree:
            return
        keep = [self.index[d] for d in sorted(self.index) if d <= decree][-self.index_keep:]
        new, old = self.dir + ".rewrite", self.dir + ".old"
        self._write_new(new, self.gpid, keep, self.sync, self.file_size_limit)
        self.log.close()
        if os.path.isdir(old):
            shutil.rmtree(old)
        os.rename(self.dir, old)
        os.rename(new, self.dir)
        plog.fsync_path(os.path.dirname(os.path.abspath(self.dir)), directory=True)
        shutil.rmtree(old, ignore_errors=True)
        self._open()
        logger.info("plog {}: discarded mutations above decree {} ({} kept)", self.dir, decree,
                    len(keep))

    def gc(self, durable_decree: int) -> List[str]:
        removed = self.log.gc(durable_decree, reserve_max_bytes=self.reserve_max_bytes,
                              reserve_max_seconds=self.reserve_max_seconds)
        below = sorted(d for d in self.index if d <= durable_decree)
        for d in below[:max(0, len(below) - self.index_keep)]:
            del self.index[d]
        return removed

    def close(self) -> None:
        self.log.close()
