"""Stored value header (v0 / v1), timetags, the 2016 epoch, expiry and TTL arithmetic.

Owns (data-operations.md §3, §4.1, §4.2):

* ``EPOCH_BEGIN`` (Unix 1451606400 = 2016-01-01 UTC) and ``epoch_now(unix_seconds)``;
* ``encode_value`` / ``decode_value`` for data versions 0 (``u32 expire_ts | user value``) and 1
  (``u32 expire_ts | u64 timetag | user value``), all big-endian;
* ``make_timetag(timestamp_us, cluster_id, delete_flag)``;
* ``is_expired``, ``ttl_seconds``, ``to_stored_expire_ts`` (the I32 -> u32 rule) and
  ``apply_default_ttl``.

Pure functions: no clock is read here (callers pass ``now``); imports only the standard library.
"""
from __future__ import annotations

import struct

EPOCH_BEGIN = 1451606400  # 2016-01-01 00:00:00 UTC

DATA_VERSION_0 = 0
DATA_VERSION_1 = 1
DATA_VERSION_MAX = DATA_VERSION_1

_U32 = struct.Struct(">I")
_V1 = struct.Struct(">IQ")

HEADER_SIZE = {DATA_VERSION_0: 4, DATA_VERSION_1: 12}

_U32_MASK = 0xFFFF_FFFF
_TIMESTAMP_MASK = (1 << 56) - 1


class InvalidValue(ValueError):
    """A stored value too short for its data version's header, or an unknown version."""


def epoch_now(unix_seconds: float) -> int:
    """Seconds since 2016-01-01 UTC (``utils::epoch_now``), truncated to an int."""
    return int(unix_seconds) - EPOCH_BEGIN


def to_stored_expire_ts(expire_ts: int) -> int:
    """The request's I32 ``expire_ts_seconds`` as stored (u32): negatives wrap to huge values."""
    return expire_ts & _U32_MASK


def make_timetag(timestamp_us: int, cluster_id: int = 0, delete_flag: bool = False) -> int:
    """``(timestamp_us << 8) | (cluster_id << 1) | delete_flag`` as a u64 (56 timestamp bits)."""
    return (
        ((timestamp_us & _TIMESTAMP_MASK) << 8)
        | ((cluster_id & 0x7F) << 1)
        | (1 if delete_flag else 0)
    )


def split_timetag(timetag: int) -> tuple[int, int, bool]:
    """Inverse of ``make_timetag``: ``(timestamp_us, cluster_id, delete_flag)``."""
    return timetag >> 8, (timetag >> 1) & 0x7F, bool(timetag & 1)


def encode_value(
    user_value: bytes, expire_ts: int = 0, timetag: int = 0, version: int = DATA_VERSION_1
) -> bytes:
    """Stored value of ``user_value`` with absolute ``expire_ts`` (0 = never; I32 or u32)."""
    ets = to_stored_expire_ts(expire_ts)
    if version == DATA_VERSION_1:
        return _V1.pack(ets, timetag & 0xFFFF_FFFF_FFFF_FFFF) + bytes(user_value)
    if version == DATA_VERSION_0:
        return _U32.pack(ets) + bytes(user_value)
    raise InvalidValue(f"unsupported data version {version}")


def decode_value(stored: bytes, version: int = DATA_VERSION_1) -> tuple[int, int, bytes]:
    """Split a stored value into ``(expire_ts, timetag, user_value)`` (timetag 0 for v0)."""
    if version == DATA_VERSION_1:
        if len(stored) < 12:
            raise InvalidValue(f"v1 value shorter than its 12-byte header: {len(stored)}")
        ets, tt = _V1.unpack_from(stored, 0)
        return ets, tt, bytes(stored[12:])
    if version == DATA_VERSION_0:
        if len(stored) < 4:
            raise InvalidValue(f"v0 value shorter than its 4-byte header: {len(stored)}")
        return _U32.unpack_from(stored, 0)[0], 0, bytes(stored[4:])
    raise InvalidValue(f"unsupported data version {version}")


def extract_expire_ts(stored: bytes, version: int = DATA_VERSION_1) -> int:
    """The stored u32 expiry (the first four bytes in both versions)."""
    if len(stored) < 4:
        raise InvalidValue(f"value shorter than 4 bytes: {len(stored)}")
    return _U32.unpack_from(stored, 0)[0]


def extract_user_value(stored: bytes, version: int = DATA_VERSION_1) -> bytes:
    return decode_value(stored, version)[2]


def extract_timetag(stored: bytes, version: int = DATA_VERSION_1) -> int:
    return decode_value(stored, version)[1]


def with_expire_ts(stored: bytes, expire_ts: int) -> bytes:
    """The same stored value with its expiry header replaced (compaction-filter rewrite)."""
    return _U32.pack(to_stored_expire_ts(expire_ts)) + bytes(stored[4:])


def is_expired(expire_ts: int, now: int) -> bool:
    """``check_if_ts_expired``: ``expire_ts > 0 and expire_ts <= now`` (equal counts as expired)."""
    return 0 < expire_ts <= now


def is_record_expired(stored: bytes, now: int, version: int = DATA_VERSION_1) -> bool:
    return is_expired(extract_expire_ts(stored, version), now)


def ttl_seconds(expire_ts: int, now: int) -> int:
    """``ttl_response.ttl_seconds`` of a live record: −1 without expiry, else ``expire_ts − now``.

    Huge stored timestamps (a negative request value wrapped to u32) are clamped to the I32 range
    of the response field.
    """
    if expire_ts == 0:
        return -1
    return min(expire_ts - now, 0x7FFF_FFFF)


def apply_default_ttl(expire_ts: int, default_ttl: int, now: int) -> int:
    """``db_expire_ts``: a write with no expiry gets ``now + default_ttl`` when that env is > 0."""
    if expire_ts == 0 and default_ttl > 0:
        return now + default_ttl
    return expire_ts
