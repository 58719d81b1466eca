"""The ordered key-value ``Engine`` interface, its atomic ``WriteBatch`` and ``MemoryEngine``.

Owns the storage seam every partition replica writes through (design rule 5): two column
families, ``CF_DATA`` ("default": user records) and ``CF_META`` ("meta": bookkeeping; upstream
``pegasus_meta_cf``), point reads, atomic write batches spanning both families, bounded cursors
over ``[lower, upper)`` with seek / seek_for_prev in both directions, an approximate data size,
flush, checkpoint to a directory and close. Keys and values are raw bytes ordered bytewise
(unsigned memcmp, a proper prefix first) as RocksDB's default comparator.

``MemoryEngine`` keeps each family as a dict plus a bisect-sorted key list; it is volatile except
that ``flush()`` (when opened with a path) and ``checkpoint(dir)`` write a snapshot file that a
new ``MemoryEngine(dir)`` loads. ``RocksEngine`` lives in ``rocks.py``.

Must not import rocksdict, gevent, thriftpy2 or anything of pegasus_server beyond the standard
library: this module knows nothing of RocksDB.
"""
from __future__ import annotations

import abc
import bisect
import os
import struct
from typing import Iterator, Optional

CF_DATA = "default"
CF_META = "meta"
COLUMN_FAMILIES = (CF_DATA, CF_META)


class EngineError(Exception):
    """A storage failure (I/O error, corruption, use after close)."""


class EngineClosed(EngineError):
    pass


# --------------------------------------------------------------------------- write batch


class WriteBatch:
    """An ordered list of puts / deletes over both column families, applied atomically.

    Later operations on the same key win, as in RocksDB.
    """

    __slots__ = ("ops",)

    def __init__(self) -> None:
        self.ops: list[tuple[str, bytes, Optional[bytes]]] = []

    def put(self, key: bytes, value: bytes, cf: str = CF_DATA) -> "WriteBatch":
        _check_cf(cf)
        self.ops.append((cf, bytes(key), bytes(value)))
        return self

    def delete(self, key: bytes, cf: str = CF_DATA) -> "WriteBatch":
        _check_cf(cf)
        self.ops.append((cf, bytes(key), None))
        return self

    def put_meta(self, key: bytes, value: bytes) -> "WriteBatch":
        return self.put(key, value, CF_META)

    def __len__(self) -> int:
        return len(self.ops)

    def __bool__(self) -> bool:  # an empty batch is still a batch object
        return True


def _check_cf(cf: str) -> None:
    if cf not in COLUMN_FAMILIES:
        raise ValueError(f"unknown column family {cf!r}")


# --------------------------------------------------------------------------- cursor


class Cursor(abc.ABC):
    """A RocksDB-style iterator restricted to ``[lower, upper)`` of one column family.

    ``lower``/``upper`` None = unbounded. Positioning: ``seek_to_first``, ``seek_to_last``,
    ``seek(k)`` (first key >= k), ``seek_for_prev(k)`` (last key <= k); then ``next``/``prev``.
    ``valid`` is False once positioned outside the bounds or past either end.
    """

    @property
    @abc.abstractmethod
    def valid(self) -> bool: ...

    @abc.abstractmethod
    def key(self) -> bytes: ...

    @abc.abstractmethod
    def value(self) -> bytes: ...

    @abc.abstractmethod
    def seek_to_first(self) -> None: ...

    @abc.abstractmethod
    def seek_to_last(self) -> None: ...

    @abc.abstractmethod
    def seek(self, key: bytes) -> None: ...

    @abc.abstractmethod
    def seek_for_prev(self, key: bytes) -> None: ...

    @abc.abstractmethod
    def next(self) -> None: ...

    @abc.abstractmethod
    def prev(self) -> None: ...

    def close(self) -> None:
        """Release resources (RocksDB iterators pin memory); idempotent."""

    def __enter__(self) -> "Cursor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------- engine


class Engine(abc.ABC):
    """An ordered byte-key store with two column families (``CF_DATA``, ``CF_META``)."""

    @abc.abstractmethod
    def get(self, key: bytes, cf: str = CF_DATA) -> Optional[bytes]:
        """The value of ``key`` or None."""

    @abc.abstractmethod
    def write(self, batch: WriteBatch) -> None:
        """Apply every operation of ``batch`` atomically (all or nothing)."""

    @abc.abstractmethod
    def cursor(
        self, lower: Optional[bytes] = None, upper: Optional[bytes] = None, cf: str = CF_DATA
    ) -> Cursor:
        """A cursor over ``[lower, upper)`` of ``cf``; not positioned until a seek."""

    @abc.abstractmethod
    def approximate_size(self) -> int:
        """Rough number of bytes of user data (data family), for stats and balancing."""

    def stats(self) -> dict:
        """Storage figures for the metrics: ``sst_files``, ``sst_size_bytes``,
        ``estimated_keys``, ``memtable_bytes`` (data family)."""
        return {"sst_files": 0, "sst_size_bytes": 0, "estimated_keys": 0,
                "memtable_bytes": self.approximate_size()}

    def compact(self) -> None:
        """Compact both families fully (manual compaction); may run in another thread when
        ``concurrent_flush`` is true. Nothing to do for an engine without files."""

    #: True when ``flush`` (and ``compact``) may run in another thread while this one writes
    concurrent_flush = False

    @abc.abstractmethod
    def flush(self) -> None:
        """Make every applied batch durable (memtables to files), both families at one point:
        what was written before the call is durable when it returns."""

    @abc.abstractmethod
    def checkpoint(self, directory: str) -> None:
        """Write a consistent copy of both families to ``directory`` (which must not exist);
        the same engine class opened on ``directory`` sees exactly the current data."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the engine; idempotent."""

    # ---- conveniences built on the primitives

    def put(self, key: bytes, value: bytes, cf: str = CF_DATA) -> None:
        self.write(WriteBatch().put(key, value, cf))

    def delete(self, key: bytes, cf: str = CF_DATA) -> None:
        self.write(WriteBatch().delete(key, cf))

    def scan(
        self,
        start: Optional[bytes] = None,
        stop: Optional[bytes] = None,
        reverse: bool = False,
        cf: str = CF_DATA,
    ) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(key, value)`` over ``[start, stop)``, ascending or (``reverse``) descending."""
        cur = self.cursor(start, stop, cf)
        try:
            if reverse:
                cur.seek_to_last()
                while cur.valid:
                    yield cur.key(), cur.value()
                    cur.prev()
            else:
                cur.seek_to_first()
                while cur.valid:
                    yield cur.key(), cur.value()
                    cur.next()
        finally:
            cur.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------- memory engine

_SNAPSHOT_NAME = "memory_engine.snapshot"
_MAGIC = b"PGMEMENG1\n"
_REC = struct.Struct(">BII")  # cf index, key length, value length


class _Family:
    __slots__ = ("data", "keys")

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.keys: list[bytes] = []

    def put(self, key: bytes, value: bytes) -> None:
        if key not in self.data:
            bisect.insort(self.keys, key)
        self.data[key] = value

    def delete(self, key: bytes) -> None:
        if key in self.data:
            del self.data[key]
            i = bisect.bisect_left(self.keys, key)
            del self.keys[i]


class _MemoryCursor(Cursor):
    """Positions are keys, re-located by bisect on every move, so cursors stay correct while the
    engine is written to (they then see the new data, unlike a RocksDB snapshot)."""

    def __init__(self, fam: _Family, lower: Optional[bytes], upper: Optional[bytes]) -> None:
        self._fam = fam
        self._lower = lower
        self._upper = upper
        self._key: Optional[bytes] = None
        self._val: Optional[bytes] = None

    def _in_bounds(self, k: bytes) -> bool:
        return (self._lower is None or k >= self._lower) and (self._upper is None or k < self._upper)

    def _set_index(self, i: int) -> None:
        keys = self._fam.keys
        if 0 <= i < len(keys) and self._in_bounds(keys[i]):
            self._key = keys[i]
            self._val = self._fam.data[self._key]
        else:
            self._key = self._val = None

    @property
    def valid(self) -> bool:
        return self._key is not None

    def key(self) -> bytes:
        if self._key is None:
            raise EngineError("cursor not valid")
        return self._key

    def value(self) -> bytes:
        if self._val is None:
            raise EngineError("cursor not valid")
        return self._val

    def seek_to_first(self) -> None:
        if self._lower is None:
            self._set_index(0)
        else:
            self._set_index(bisect.bisect_left(self._fam.keys, self._lower))

    def seek_to_last(self) -> None:
        if self._upper is None:
            self._set_index(len(self._fam.keys) - 1)
        else:
            self._set_index(bisect.bisect_left(self._fam.keys, self._upper) - 1)

    def seek(self, key: bytes) -> None:
        if self._lower is not None and key < self._lower:
            key = self._lower
        self._set_index(bisect.bisect_left(self._fam.keys, key))

    def seek_for_prev(self, key: bytes) -> None:
        if self._upper is not None and key >= self._upper:
            self.seek_to_last()
            return
        self._set_index(bisect.bisect_right(self._fam.keys, key) - 1)

    def next(self) -> None:
        if self._key is None:
            raise EngineError("cursor not valid")
        self._set_index(bisect.bisect_right(self._fam.keys, self._key))

    def prev(self) -> None:
        if self._key is None:
            raise EngineError("cursor not valid")
        self._set_index(bisect.bisect_left(self._fam.keys, self._key) - 1)


class MemoryEngine(Engine):
    """Volatile ``Engine`` for tests and simulations (stdlib only).

    ``MemoryEngine(path)`` loads the snapshot a previous ``flush()`` or ``checkpoint(path)``
    wrote, if any; ``flush()`` rewrites that snapshot, so "durable" means "flushed" as with a
    WAL-less RocksDB.
    """

    def __init__(self, path: Optional[str] = None) -> None:
        self.path = path
        self._fams = {cf: _Family() for cf in COLUMN_FAMILIES}
        self._closed = False
        if path is not None:
            snap = os.path.join(path, _SNAPSHOT_NAME)
            if os.path.exists(snap):
                self._load(snap)

    def _fam(self, cf: str) -> _Family:
        if self._closed:
            raise EngineClosed("engine is closed")
        try:
            return self._fams[cf]
        except KeyError:
            raise ValueError(f"unknown column family {cf!r}") from None

    def get(self, key: bytes, cf: str = CF_DATA) -> Optional[bytes]:
        return self._fam(cf).data.get(bytes(key))

    def write(self, batch: WriteBatch) -> None:
        for cf, _k, _v in batch.ops:  # validate first: all or nothing
            self._fam(cf)
        for cf, k, v in batch.ops:
            fam = self._fams[cf]
            if v is None:
                fam.delete(k)
            else:
                fam.put(k, v)

    def cursor(
        self, lower: Optional[bytes] = None, upper: Optional[bytes] = None, cf: str = CF_DATA
    ) -> Cursor:
        return _MemoryCursor(self._fam(cf), lower, upper)

    def approximate_size(self) -> int:
        fam = self._fam(CF_DATA)
        return sum(len(k) + len(v) for k, v in fam.data.items())

    def stats(self) -> dict:
        return dict(super().stats(), estimated_keys=len(self._fam(CF_DATA).data))

    def flush(self) -> None:
        self._fam(CF_DATA)
        if self.path is not None:
            os.makedirs(self.path, exist_ok=True)
            self._dump(os.path.join(self.path, _SNAPSHOT_NAME))

    def checkpoint(self, directory: str) -> None:
        self._fam(CF_DATA)
        if os.path.exists(directory):
            raise EngineError(f"checkpoint directory already exists: {directory}")
        tmp = directory + ".tmp"
        os.makedirs(tmp, exist_ok=True)
        self._dump(os.path.join(tmp, _SNAPSHOT_NAME))
        os.rename(tmp, directory)

    def close(self) -> None:
        self._closed = True

    # ---- snapshot file: magic, then records (cf index u8, key len u32, value len u32, key, value)

    def _dump(self, filename: str) -> None:
        tmp = filename + ".tmp"
        with open(tmp, "wb") as f:
            f.write(_MAGIC)
            for idx, cf in enumerate(COLUMN_FAMILIES):
                fam = self._fams[cf]
                for k in fam.keys:
                    v = fam.data[k]
                    f.write(_REC.pack(idx, len(k), len(v)))
                    f.write(k)
                    f.write(v)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filename)

    def _load(self, filename: str) -> None:
        with open(filename, "rb") as f:
            blob = f.read()
        if not blob.startswith(_MAGIC):
            raise EngineError(f"not a MemoryEngine snapshot: {filename}")
        pos = len(_MAGIC)
        while pos < len(blob):
            if pos + _REC.size > len(blob):
                raise EngineError(f"truncated MemoryEngine snapshot: {filename}")
            idx, kl, vl = _REC.unpack_from(blob, pos)
            pos += _REC.size
            if idx >= len(COLUMN_FAMILIES) or pos + kl + vl > len(blob):
                raise EngineError(f"corrupt MemoryEngine snapshot: {filename}")
            k = blob[pos : pos + kl]
            v = blob[pos + kl : pos + kl + vl]
            pos += kl + vl
            self._fams[COLUMN_FAMILIES[idx]].put(k, v)
