"""``RocksEngine``: the ``Engine`` interface on RocksDB through rocksdict.

Owns every use of rocksdict in pegasus-py (design rule 4: the only import site). Opens one
RocksDB directory with the column families ``default`` (``CF_DATA``) and ``pegasus_meta_cf``
(``CF_META``, upstream's name) in rocksdict raw mode (keys and values are plain bytes, ordered by
RocksDB's default bytewise comparator), and maps write batches, cursors, flush, checkpoints and
size estimates onto it.

Durability is an explicit constructor choice: ``disable_wal=False`` (default) keeps RocksDB's WAL
so applied batches survive a SIGKILL; ``sync=True`` additionally fsyncs the WAL on every write.
Upstream runs RocksDB without its WAL (replication.md §4.1: the private log replays what is
not flushed); the replica server keeps it on for now (``replica/storage_jobs.py`` says why).
Without a WAL, a flush must persist both column families at one point (the last applied decree
in ``CF_META`` must describe exactly the data in ``CF_DATA``): the DB is opened with
``atomic_flush``, so RocksDB's own memtable-full flushes cover both families together, and
``flush`` goes through a checkpoint (``CreateCheckpoint`` flushes every family atomically; the
rocksdict flush call covers one family only, and two of them would not be one point in time).
With the WAL, ``flush`` uses that one-family call for each family: it releases the interpreter
lock, which the checkpoint holds throughout.

Cursor bounds are enforced here rather than through ``ReadOptions`` bounds, because rocksdict
encodes ``ReadOptions`` bound keys in its non-raw format.

Must not import gevent or thriftpy2; depends only on ``storage.engine``.
"""
from __future__ import annotations

import os
import shutil
from typing import Optional

import rocksdict

from .engine import CF_DATA, CF_META, Cursor, Engine, EngineClosed, EngineError, WriteBatch

ROCKS_CF_NAMES = {CF_DATA: "default", CF_META: "pegasus_meta_cf"}
FLUSH_TMP_SUFFIX = ".flush.tmp"   # beside the DB: the checkpoint ``flush`` makes and removes


def _options() -> "rocksdict.Options":
    opt = rocksdict.Options(raw_mode=True)
    opt.create_if_missing(True)
    opt.create_missing_column_families(True)
    opt.set_atomic_flush(True)      # every flush persists both families at the same point
    return opt


class _RocksCursor(Cursor):
    def __init__(self, it: "rocksdict.RdictIter", lower: Optional[bytes], upper: Optional[bytes]):
        self._it = it
        self._lower = lower
        self._upper = upper
        self._valid = False

    def _check(self) -> None:
        it = self._it
        if not it.valid():
            try:
                it.status()
            except Exception as e:  # rocksdict raises a plain exception carrying the status
                raise EngineError(f"rocksdb iterator error: {e}") from e
            self._valid = False
            return
        k = it.key()
        self._valid = (self._lower is None or k >= self._lower) and (
            self._upper is None or k < self._upper
        )

    @property
    def valid(self) -> bool:
        return self._valid

    def key(self) -> bytes:
        if not self._valid:
            raise EngineError("cursor not valid")
        return self._it.key()

    def value(self) -> bytes:
        if not self._valid:
            raise EngineError("cursor not valid")
        return self._it.value()

    def seek_to_first(self) -> None:
        if self._lower is None:
            self._it.seek_to_first()
        else:
            self._it.seek(self._lower)
        self._check()

    def seek_to_last(self) -> None:
        if self._upper is None:
            self._it.seek_to_last()
        else:
            self._it.seek_for_prev(self._upper)
            if self._it.valid() and self._it.key() >= self._upper:
                self._it.prev()
        self._check()

    def seek(self, key: bytes) -> None:
        if self._lower is not None and key < self._lower:
            key = self._lower
        self._it.seek(key)
        self._check()

    def seek_for_prev(self, key: bytes) -> None:
        if self._upper is not None and key >= self._upper:
            self.seek_to_last()
            return
        self._it.seek_for_prev(key)
        self._check()

    def next(self) -> None:
        if not self._valid:
            raise EngineError("cursor not valid")
        self._it.next()
        self._check()

    def prev(self) -> None:
        if not self._valid:
            raise EngineError("cursor not valid")
        self._it.prev()
        self._check()

    def close(self) -> None:
        self._valid = False
        self._it = None  # type: ignore[assignment]  # drop the native iterator


class RocksEngine(Engine):
    """One RocksDB instance at ``path`` (created if missing) with both column families."""

    concurrent_flush = True

    def __init__(self, path: str, *, disable_wal: bool = False, sync: bool = False) -> None:
        if disable_wal and sync:
            raise ValueError("sync=True needs the WAL")
        self.path = path
        self.disable_wal = disable_wal
        self.sync = sync
        os.makedirs(path, exist_ok=True)
        shutil.rmtree(path.rstrip(os.sep) + FLUSH_TMP_SUFFIX, ignore_errors=True)  # a crash's
        try:
            self._db = rocksdict.Rdict(
                path, _options(), column_families={ROCKS_CF_NAMES[CF_META]: _options()}
            )
        except Exception as e:
            raise EngineError(f"cannot open rocksdb at {path}: {e}") from e
        self._wopt = rocksdict.WriteOptions()
        self._wopt.disable_wal = disable_wal
        self._wopt.sync = sync
        self._cfs = {
            CF_DATA: self._db,
            CF_META: self._db.get_column_family(ROCKS_CF_NAMES[CF_META]),
        }
        self._handles = {
            CF_DATA: self._db.get_column_family_handle(ROCKS_CF_NAMES[CF_DATA]),
            CF_META: self._db.get_column_family_handle(ROCKS_CF_NAMES[CF_META]),
        }
        self._closed = False

    def _cf(self, cf: str):
        if self._closed:
            raise EngineClosed("engine is closed")
        try:
            return self._cfs[cf]
        except KeyError:
            raise ValueError(f"unknown column family {cf!r}") from None

    def get(self, key: bytes, cf: str = CF_DATA) -> Optional[bytes]:
        db = self._cf(cf)
        try:
            return db.get(bytes(key))
        except Exception as e:
            raise EngineError(f"rocksdb get failed: {e}") from e

    def write(self, batch: WriteBatch) -> None:
        self._cf(CF_DATA)
        wb = rocksdict.WriteBatch(raw_mode=True)
        for cf, k, v in batch.ops:
            handle = self._handles[cf]
            if v is None:
                wb.delete(k, handle)
            else:
                wb.put(k, v, handle)
        try:
            self._db.write(wb, self._wopt)
        except Exception as e:
            raise EngineError(f"rocksdb write failed: {e}") from e

    def cursor(
        self, lower: Optional[bytes] = None, upper: Optional[bytes] = None, cf: str = CF_DATA
    ) -> Cursor:
        return _RocksCursor(self._cf(cf).iter(), lower, upper)

    def approximate_size(self) -> int:
        self._cf(CF_DATA)
        total = 0
        for prop in ("rocksdb.estimate-live-data-size", "rocksdb.cur-size-all-mem-tables"):
            v = self._db.property_int_value(prop)
            total += v or 0
        return total

    def flush(self) -> None:
        """Persist both families. Safe while another thread writes. With the WAL (what the
        replica server runs) one family after the other, each through rocksdict's flush, which
        releases the interpreter lock (the WAL keeps both durable, so they need not be flushed
        at one point); without it atomically, through a checkpoint, during which rocksdict holds
        the interpreter lock: every thread and greenlet of the process waits for it."""
        self._cf(CF_DATA)
        if not self.disable_wal:
            try:
                for cf in (CF_META, CF_DATA):
                    self._cfs[cf].flush(True)
            except Exception as e:
                raise EngineError(f"rocksdb flush failed: {e}") from e
            return
        tmp = self.path.rstrip(os.sep) + FLUSH_TMP_SUFFIX
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            rocksdict.Checkpoint(self._db).create_checkpoint(tmp)
        except Exception as e:
            raise EngineError(f"rocksdb flush failed: {e}") from e
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def stats(self) -> dict:
        db = self._cf(CF_DATA)

        def prop(name: str) -> int:
            return db.property_int_value(name) or 0
        return {"sst_files": sum(prop(f"rocksdb.num-files-at-level{i}") for i in range(7)),
                "sst_size_bytes": prop("rocksdb.total-sst-files-size"),
                "estimated_keys": prop("rocksdb.estimate-num-keys"),
                "memtable_bytes": prop("rocksdb.cur-size-all-mem-tables")}

    def compact(self) -> None:
        self._cf(CF_DATA)
        try:
            for cf in (CF_DATA, CF_META):
                self._cfs[cf].compact_range(None, None)
        except Exception as e:
            raise EngineError(f"rocksdb compaction failed: {e}") from e

    def checkpoint(self, directory: str) -> None:
        self._cf(CF_DATA)
        if os.path.exists(directory):
            raise EngineError(f"checkpoint directory already exists: {directory}")
        try:
            rocksdict.Checkpoint(self._db).create_checkpoint(directory)
        except Exception as e:
            raise EngineError(f"rocksdb checkpoint failed: {e}") from e

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._cfs = {}
        self._handles = {}
        try:
            self._db.close()
        finally:
            self._db = None
