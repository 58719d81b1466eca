"""Storage-key layout, "next key" bounds, the dsn CRC64 and partition hashing.

Owns (data-operations.md §2, protocol.md §6.3-§6.5):

* ``encode_key(hash_key, sort_key)`` -> ``u16 BE len | hash_key | sort_key`` and its inverse
  ``restore_key``;
* ``next_key(hash_key, prefix=b"")`` -> the smallest key greater than every key of ``hash_key``
  (whose sort key starts with ``prefix``);
* ``crc64`` ("dsn crc64": reflected poly 0x9A6C9329AC4BC9B5, init / xorout all ones);
* ``key_hash(storage_key)`` and ``partition_of(storage_key, partition_count)``.

Malformed input raises ``InvalidKey`` (a ``ValueError``); callers turn it into RocksDB status 4
(quirk Q8: never crash). Pure functions over bytes: imports only the standard library.
"""
from __future__ import annotations

import struct

MAX_HASH_KEY_LEN = 0xFFFE  # hash_key_len must be < 0xFFFF (§2.2)

_LEN = struct.Struct(">H")

#: lower / upper bound of every valid storage key (unordered scanners use them)
MIN_KEY = b"\x00\x00"
MAX_KEY = b"\xff\xff"


class InvalidKey(ValueError):
    """A hash key too long to encode, or a malformed storage key."""


# --------------------------------------------------------------------------- storage key


def encode_key(hash_key: bytes, sort_key: bytes = b"") -> bytes:
    """``pegasus_generate_key``: ``u16 BE len(hash_key) | hash_key | sort_key``."""
    n = len(hash_key)
    if n > MAX_HASH_KEY_LEN:
        raise InvalidKey(f"hash key too long: {n} bytes (max {MAX_HASH_KEY_LEN})")
    return _LEN.pack(n) + bytes(hash_key) + bytes(sort_key)


def restore_key(key: bytes) -> tuple[bytes, bytes]:
    """``pegasus_restore_key``: split a storage key into ``(hash_key, sort_key)``.

    Raises ``InvalidKey`` for keys shorter than 2 bytes, a length field of 0xFFFF or a declared
    hash-key length beyond the end of the key.
    """
    if len(key) < 2:
        raise InvalidKey(f"storage key shorter than 2 bytes: {bytes(key)!r}")
    (n,) = _LEN.unpack_from(key, 0)
    if n == 0xFFFF or 2 + n > len(key):
        raise InvalidKey(f"storage key declares hash key length {n} of {len(key) - 2} bytes")
    return bytes(key[2 : 2 + n]), bytes(key[2 + n :])


def validate_key(key: bytes) -> None:
    """Raise ``InvalidKey`` unless ``key`` is a well-formed storage key."""
    restore_key(key)


def hash_key_of(key: bytes) -> bytes:
    return restore_key(key)[0]


def sort_key_of(key: bytes) -> bytes:
    return restore_key(key)[1]


def next_bytes(data: bytes) -> bytes:
    """Drop trailing 0xFF bytes and add one to the last remaining byte.

    The result is the smallest byte string greater than every string starting with ``data``.
    Raises ``InvalidKey`` when ``data`` is empty or all 0xFF (there is no such bound).
    """
    b = bytes(data).rstrip(b"\xff")
    if not b:
        raise InvalidKey("no next key for an all-0xFF prefix")
    return b[:-1] + bytes((b[-1] + 1,))


def next_key(hash_key: bytes, prefix: bytes = b"") -> bytes:
    """``pegasus_generate_next_blob``: exclusive upper bound of ``hash_key`` [+ sort-key prefix]."""
    return next_bytes(encode_key(hash_key, prefix))


# --------------------------------------------------------------------------- CRC64

CRC64_POLY = 0x9A6C9329AC4BC9B5
_U64 = 0xFFFF_FFFF_FFFF_FFFF


def _make_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        k = i
        for _ in range(8):
            k = (k >> 1) ^ CRC64_POLY if k & 1 else k >> 1
        table.append(k)
    return tuple(table)


CRC64_TABLE = _make_table()


def crc64(data: bytes, init: int = 0) -> int:
    """dsn crc64 of ``data`` as an unsigned 64-bit int (upstream ``crc64::compute(data, init)``)."""
    table = CRC64_TABLE
    r = ~init & _U64
    for b in data:
        r = table[(r ^ b) & 0xFF] ^ (r >> 8)
    return r ^ _U64


# --------------------------------------------------------------------------- partitioning


def key_hash(key: bytes) -> int:
    """``pegasus_key_hash``: CRC of the hash key, or of the sort key when the hash key is empty."""
    hash_key, sort_key = restore_key(key)
    return crc64(hash_key if hash_key else sort_key)


def hash_key_hash(hash_key: bytes) -> int:
    """The partition hash of a bare hash key (what clients use for multi-key RPCs)."""
    return crc64(hash_key)


def partition_of_hash(hash_value: int, partition_count: int) -> int:
    """Server-side partition of a hash: ``hash & (count - 1)`` (power-of-two counts, D7).

    For other counts (never used by our tools) the unsigned remainder is returned instead, which is
    what J/G/C compute on the client side.
    """
    if partition_count <= 0:
        raise ValueError(f"partition_count must be positive, got {partition_count}")
    if partition_count & (partition_count - 1) == 0:
        return hash_value & (partition_count - 1)
    return (hash_value & _U64) % partition_count


def partition_of(key: bytes, partition_count: int) -> int:
    """Partition index of a storage key."""
    return partition_of_hash(key_hash(key), partition_count)
