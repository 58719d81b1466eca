"""Status codes and the matching rules shared by reads and writes.

Owns (data-operations.md §5.1, §6.3, §7): the RocksDB ``Status::Code`` numbers carried in every rrdb
response's ``error`` field, the filter-type match (§7.1), the check_and_set / check_and_mutate
check evaluation (§7.2), the ``buf2int64`` integer parsing rule (§7.3), the range-read limiter
(upstream ``range_read_limiter``: count / size / coarse time budget) and the ``StorageOptions``
limits of ``[pegasus.server]``.

Pure logic: imports only the standard library (the limiter takes a timer function).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

# --------------------------------------------------------------------------- status codes (§5.1)

OK = 0
NOT_FOUND = 1
CORRUPTION = 2
NOT_SUPPORTED = 3
INVALID_ARGUMENT = 4
IO_ERROR = 5
INCOMPLETE = 7
TRY_AGAIN = 13

#: scan_response.context_id values (§5.2)
SCAN_CONTEXT_ID_COMPLETED = -1
SCAN_CONTEXT_ID_NOT_EXIST = -2

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
INT_MAX = (1 << 31) - 1

# --------------------------------------------------------------------------- options (§6.3)


@dataclass(frozen=True)
class StorageOptions:
    """Server-side limits (upstream ``[pegasus.server]`` keys and defaults)."""

    rocksdb_multi_get_max_iteration_count: int = 3000
    rocksdb_multi_get_max_iteration_size: int = 30 << 20  # 0 = no check
    rocksdb_max_iteration_count: int = 1000
    rocksdb_iteration_threshold_time_ms: int = 30000  # 0 = no check
    scan_context_timeout_seconds: float = 300.0  # upstream: std::chrono::minutes(5)
    cluster_id: int = 0  # this cluster's duplication id ([duplication-group]); 0 = not configured

    def validate(self) -> None:
        if self.rocksdb_multi_get_max_iteration_count <= 0:
            raise ValueError("rocksdb_multi_get_max_iteration_count must be > 0")
        if self.rocksdb_max_iteration_count <= 0:
            raise ValueError("rocksdb_max_iteration_count must be > 0")
        if self.rocksdb_multi_get_max_iteration_size < 0:
            raise ValueError("rocksdb_multi_get_max_iteration_size must be >= 0")
        if self.rocksdb_iteration_threshold_time_ms < 0:
            raise ValueError("rocksdb_iteration_threshold_time_ms must be >= 0")
        if not 0 <= self.cluster_id < 128:
            raise ValueError("cluster_id must be in 0..127")


# --------------------------------------------------------------------------- limiter


class RangeReadLimiter:
    """Upstream ``range_read_limiter``: caps iterated records and bytes, and checks a time budget
    coarsely (only when ``(iterations + 1) % max(1, max_count // 10) == 0``)."""

    __slots__ = ("max_count", "max_size", "threshold_s", "timer", "start", "count", "size",
                 "exceeded", "_module")

    def __init__(self, max_count: int, max_size: int, threshold_ms: int,
                 timer: Callable[[], float]) -> None:
        self.max_count = max_count
        self.max_size = max_size
        self.threshold_s = threshold_ms / 1000.0 if threshold_ms > 0 else 0.0
        self.timer = timer
        self.start = timer()
        self.count = 0
        self.size = 0
        self.exceeded = False
        self._module = 1 if max_count <= 10 else max_count // 10

    def valid(self) -> bool:
        if self.count >= self.max_count:
            return False
        if self.max_size > 0 and self.size >= self.max_size:
            return False
        return self.time_check()

    def time_check(self) -> bool:
        if (self.threshold_s > 0 and (self.count + 1) % self._module == 0
                and self.timer() - self.start > self.threshold_s):
            self.exceeded = True
            return False
        return True

    def time_check_after_incomplete_scan(self) -> None:
        if self.threshold_s > 0 and self.timer() - self.start > self.threshold_s:
            self.exceeded = True

    def add_count(self) -> None:
        self.count += 1

    def add_size(self, n: int) -> None:
        self.size += n


# --------------------------------------------------------------------------- filters (§7.1)

FT_NO_FILTER = 0
FT_MATCH_ANYWHERE = 1
FT_MATCH_PREFIX = 2
FT_MATCH_POSTFIX = 3


def is_filter_type_supported(filter_type: int) -> bool:
    return filter_type in (FT_NO_FILTER, FT_MATCH_ANYWHERE, FT_MATCH_PREFIX, FT_MATCH_POSTFIX)


def filter_matches(filter_type: int, pattern: bytes, key: bytes) -> bool:
    """Does ``key`` pass the filter? (the filter type must be supported)."""
    if filter_type == FT_NO_FILTER or not pattern:
        return True
    if len(key) < len(pattern):
        return False
    if filter_type == FT_MATCH_ANYWHERE:
        return pattern in key
    if filter_type == FT_MATCH_PREFIX:
        return key.startswith(pattern)
    if filter_type == FT_MATCH_POSTFIX:
        return key.endswith(pattern)
    raise ValueError(f"unsupported filter type {filter_type}")


# --------------------------------------------------------------------------- integers (§7.3)

_C_SPACE = b" \t\n\v\f\r"
_HEX = b"0123456789abcdefABCDEF"
_OCT = b"01234567"
_DEC = b"0123456789"


def buf2int64(buf: bytes) -> Optional[int]:
    """upstream ``dsn::buf2int64``: ``strtoll(s, &end, 0)`` that must consume every byte and fit
    in int64; returns the value or None."""
    if not buf:
        return None
    s = bytes(buf)
    i, n = 0, len(s)
    while i < n and s[i] in _C_SPACE:
        i += 1
    neg = False
    if i < n and s[i] in b"+-":
        neg = s[i] == 0x2D
        i += 1
    if i >= n:
        return None
    if s[i] == 0x30 and i + 1 < n and s[i + 1] in b"xX":
        # "0x" counts as a hex prefix only when a hex digit follows; else strtoll parses the "0"
        if i + 2 < n and s[i + 2] in _HEX:
            digits, base = s[i + 2:], 16
        else:
            return None  # "0x" / "0xg": stops after the "0", trailing bytes remain
    elif s[i] == 0x30:
        digits, base = s[i:], 8
    else:
        digits, base = s[i:], 10
    allowed = _HEX if base == 16 else _OCT if base == 8 else _DEC
    if not digits or any(c not in allowed for c in digits):
        return None
    v = int(digits.decode("ascii"), base)
    if neg:
        v = -v
    if v < INT64_MIN or v > INT64_MAX:
        return None
    return v


# --------------------------------------------------------------------------- checks (§7.2)

CT_NO_CHECK = 0
CT_VALUE_NOT_EXIST = 1
CT_VALUE_NOT_EXIST_OR_EMPTY = 2
CT_VALUE_EXIST = 3
CT_VALUE_NOT_EMPTY = 4
CT_VALUE_MATCH_ANYWHERE = 5
CT_VALUE_MATCH_PREFIX = 6
CT_VALUE_MATCH_POSTFIX = 7
CT_VALUE_BYTES_LESS = 8
CT_VALUE_BYTES_LESS_OR_EQUAL = 9
CT_VALUE_BYTES_EQUAL = 10
CT_VALUE_BYTES_GREATER_OR_EQUAL = 11
CT_VALUE_BYTES_GREATER = 12
CT_VALUE_INT_LESS = 13
CT_VALUE_INT_LESS_OR_EQUAL = 14
CT_VALUE_INT_EQUAL = 15
CT_VALUE_INT_GREATER_OR_EQUAL = 16
CT_VALUE_INT_GREATER = 17

_COMPARE = {
    0: lambda a, b: a < b,
    1: lambda a, b: a <= b,
    2: lambda a, b: a == b,
    3: lambda a, b: a >= b,
    4: lambda a, b: a > b,
}


def is_check_type_supported(check_type: int) -> bool:
    return CT_NO_CHECK <= check_type <= CT_VALUE_INT_GREATER


def evaluate_check(check_type: int, operand: bytes, exists: bool, value: bytes) -> tuple[bool, bool]:
    """``validate_check``: returns ``(passed, invalid_argument)``.

    ``invalid_argument`` is True when an integer check could not parse the value or the operand
    (the write then fails with status 4 instead of 13). The check type must be supported.
    """
    ct = check_type
    if ct == CT_NO_CHECK:
        return True, False
    if ct == CT_VALUE_NOT_EXIST:
        return not exists, False
    if ct == CT_VALUE_NOT_EXIST_OR_EMPTY:
        return (not exists) or not value, False
    if ct == CT_VALUE_EXIST:
        return exists, False
    if ct == CT_VALUE_NOT_EMPTY:
        return exists and bool(value), False
    if not exists:
        return False, False
    if CT_VALUE_MATCH_ANYWHERE <= ct <= CT_VALUE_MATCH_POSTFIX:
        return filter_matches(ct - CT_VALUE_MATCH_ANYWHERE + FT_MATCH_ANYWHERE, operand, value), False
    if CT_VALUE_BYTES_LESS <= ct <= CT_VALUE_BYTES_GREATER:
        return _COMPARE[ct - CT_VALUE_BYTES_LESS](bytes(value), bytes(operand)), False
    if CT_VALUE_INT_LESS <= ct <= CT_VALUE_INT_GREATER:
        v = buf2int64(value)
        if v is None:
            return False, True
        o = buf2int64(operand)
        if o is None:
            return False, True
        return _COMPARE[ct - CT_VALUE_INT_LESS](v, o), False
    raise ValueError(f"unsupported check type {check_type}")
