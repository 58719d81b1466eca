"""``PartitionView``: the per-partition state every storage operation reads.

Owns the bundle handed to ``reads``, ``writes`` and ``scanner`` functions: the engine, the data
version, limits, injected clocks (wall-clock Unix seconds for expiry, a monotonic timer for time
budgets), table-env derived settings (``default_ttl``, iteration time budget, split hash
validation) and the partition identity; plus the single-record lookup with expiry that all
operations share.

Imports only ``storage.engine``, ``storage.values``, ``storage.keys`` and ``storage.rules``; no
thriftpy2, rocksdict, gevent.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Optional

from . import keys, values
from .engine import Engine
from .rules import StorageOptions


class Record(NamedTuple):
    """A live (present, not expired) record."""

    expire_ts: int
    timetag: int
    value: bytes


@dataclass
class PartitionView:
    engine: Engine
    data_version: int = values.DATA_VERSION_1
    options: StorageOptions = field(default_factory=StorageOptions)
    clock: Callable[[], float] = None  # type: ignore[assignment]  # Unix seconds
    timer: Callable[[], float] = None  # type: ignore[assignment]  # monotonic seconds
    default_ttl: int = 0
    iteration_threshold_ms: int = 30000
    validate_partition_hash: bool = False  # table env replica.split.validate_partition_hash
    partition_index: int = 0
    partition_count: Optional[int] = None

    def now(self) -> int:
        """Seconds since 2016-01-01 (the expiry time base)."""
        return values.epoch_now(self.clock())

    def decode(self, stored: bytes) -> tuple[int, int, bytes]:
        return values.decode_value(stored, self.data_version)

    def expire_ts_of(self, stored: bytes) -> int:
        return values.extract_expire_ts(stored, self.data_version)

    def lookup(self, key: bytes, now: int) -> Optional[Record]:
        """The live record at ``key`` or None when absent or expired.

        Raises ``engine.EngineError`` on storage failure and ``values.InvalidValue`` on a corrupt
        stored value.
        """
        stored = self.engine.get(key)
        if stored is None:
            return None
        ets, tt, user = self.decode(stored)
        if values.is_expired(ets, now):
            return None
        return Record(ets, tt, user)

    def hash_in_partition(self, key: bytes) -> bool:
        """Split validation: does ``key`` hash to this partition? (True when not applicable)."""
        if not self.validate_partition_hash or not self.partition_count:
            return True
        try:
            h = keys.key_hash(key)
        except keys.InvalidKey:
            return True
        return keys.partition_of_hash(h, self.partition_count) == self.partition_index
