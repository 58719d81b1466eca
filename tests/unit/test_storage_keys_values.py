"""Byte-exact vectors for storage keys, next-key bounds, CRC64 and stored values."""
import pytest

from pegasus_server.storage import keys, values

# ---------------------------------------------------------------- storage keys (§2.1)


@pytest.mark.parametrize(
    "hk,sk,hexkey",
    [
        (b"hk", b"sk", "00 02 68 6b 73 6b"),
        (b"h", b"s", "00 01 68 73"),
        (b"", b"sk", "00 00 73 6b"),
        (b"hk", b"", "00 02 68 6b"),
        (b"user_1", b"", "00 06 75 73 65 72 5f 31"),
    ],
)
def test_encode_restore(hk, sk, hexkey):
    k = keys.encode_key(hk, sk)
    assert k == bytes.fromhex(hexkey)
    assert keys.restore_key(k) == (hk, sk)


def test_hash_key_length_limit():
    keys.encode_key(b"x" * 65534, b"s")
    with pytest.raises(keys.InvalidKey):
        keys.encode_key(b"x" * 65535, b"")


@pytest.mark.parametrize("bad", [b"", b"\x00", b"\x00\x03ab", b"\xff\xff" + b"a" * 70000])
def test_restore_rejects_malformed(bad):
    with pytest.raises(keys.InvalidKey):
        keys.restore_key(bad)


# ---------------------------------------------------------------- next key (§2.4)


@pytest.mark.parametrize(
    "hk,hexnext",
    [(b"h", "00 01 69"), (b"hk", "00 02 68 6c"), (b"a\xff", "00 02 62"), (b"", "00 01"), (b"\xff", "00 02")],
)
def test_next_key(hk, hexnext):
    assert keys.next_key(hk) == bytes.fromhex(hexnext)


def test_next_key_bounds_every_sort_key():
    hk = b"ab"
    nk = keys.next_key(hk)
    for sk in (b"", b"\x00", b"\xff\xff\xff", b"zzz"):
        assert keys.encode_key(hk, sk) < nk
    assert keys.encode_key(b"ac", b"") >= nk
    assert keys.encode_key(b"abc", b"") >= nk  # longer hash keys sort after


def test_next_key_with_prefix():
    assert keys.next_key(b"h", b"ab") == bytes.fromhex("00 01 68 61 63")
    assert keys.next_key(b"h", b"a\xff") == bytes.fromhex("00 01 68 62")
    nk = keys.next_key(b"h", b"ab")
    assert keys.encode_key(b"h", b"ab\xff\xff") < nk
    assert keys.encode_key(b"h", b"ac") == nk


# ---------------------------------------------------------------- CRC64 (protocol.md §6.3)

CRC_VECTORS = [
    (b"", 0x0000000000000000, (0, 0, 0, 0)),
    (b"h", 0x555D9839ECEA8B30, (0, 0, 0, 0)),
    (b"hk", 0x5D9AD5B51C9A4AB3, (1, 3, 3, 3)),
    (b"a", 0x8C2F8445B4CBFC3C, (0, 0, 4, 12)),
    (b"hello", 0x3377857006524257, (1, 3, 7, 7)),
    (b"123456789", 0xAE8B14860A799888, (0, 0, 0, 8)),
    (b"sk", 0xED7359D9888DF024, (0, 0, 4, 4)),
    (b"user_0001", 0xF8F4662A0063CA1A, (0, 2, 2, 10)),
    (b"\x00", 0xD5DA5047EFEC8728, (0, 0, 0, 8)),
    (b"\xff\xff\xff\xff", 0xFFFFFFFF00000000, (0, 0, 0, 0)),
]


@pytest.mark.parametrize("data,crc,mods", CRC_VECTORS)
def test_crc64_vectors(data, crc, mods):
    assert keys.crc64(data) == crc
    assert tuple(keys.partition_of_hash(crc, n) for n in (2, 4, 8, 16)) == mods


def test_crc64_decimal_examples():
    assert keys.crc64(b"h") == 6151240040613317424
    assert keys.crc64(b"user_0001") == 17939075546304727578


def test_crc64_table_entries():
    assert keys.CRC64_TABLE[1] == 0x7F6EF0C830358979
    assert keys.CRC64_TABLE[128] == 0x9A6C9329AC4BC9B5
    assert keys.CRC64_TABLE[255] == 0x2ADA5047EFEC8728


def test_key_hash_uses_hash_key_then_sort_key():
    assert keys.key_hash(keys.encode_key(b"hk", b"anything")) == 0x5D9AD5B51C9A4AB3
    assert keys.key_hash(keys.encode_key(b"", b"sk")) == 0xED7359D9888DF024
    assert keys.partition_of(keys.encode_key(b"a", b"x"), 16) == 12
    assert keys.partition_of(keys.encode_key(b"", b"sk"), 8) == 4


# ---------------------------------------------------------------- values (§3, §4)


def test_epoch():
    assert values.EPOCH_BEGIN == 1451606400
    assert values.epoch_now(1451606400) == 0
    assert values.epoch_now(1451606400 + 100.9) == 100


def test_value_v1_layout():
    tt = values.make_timetag(0x0102030405, cluster_id=3, delete_flag=False)
    assert tt == (0x0102030405 << 8) | (3 << 1)
    v = values.encode_value(b"abc", expire_ts=0x11223344, timetag=tt)
    assert v == bytes.fromhex("11223344") + tt.to_bytes(8, "big") + b"abc"
    assert values.decode_value(v) == (0x11223344, tt, b"abc")
    assert values.extract_user_value(values.encode_value(b"")) == b""
    assert len(values.encode_value(b"")) == 12


def test_value_v0_layout():
    v = values.encode_value(b"xy", expire_ts=5, version=0)
    assert v == b"\x00\x00\x00\x05xy"
    assert values.decode_value(v, 0) == (5, 0, b"xy")


def test_value_too_short():
    with pytest.raises(values.InvalidValue):
        values.decode_value(b"\x00" * 11)
    with pytest.raises(values.InvalidValue):
        values.decode_value(b"\x00" * 3, 0)


def test_negative_expire_ts_is_stored_unsigned():
    v = values.encode_value(b"x", expire_ts=-1)
    assert values.extract_expire_ts(v) == 0xFFFFFFFF
    assert not values.is_record_expired(v, now=10**9)


def test_timetag_roundtrip_and_delete_flag():
    tt = values.make_timetag(1_700_000_000_000_000, 5, True)
    assert values.split_timetag(tt) == (1_700_000_000_000_000, 5, True)
    assert tt & 1 == 1


def test_expiry_predicate():
    assert not values.is_expired(0, 100)
    assert values.is_expired(100, 100)  # equal counts as expired
    assert values.is_expired(99, 100)
    assert not values.is_expired(101, 100)


def test_ttl_seconds():
    assert values.ttl_seconds(0, 100) == -1
    assert values.ttl_seconds(150, 100) == 50


def test_default_ttl():
    assert values.apply_default_ttl(0, 0, 100) == 0
    assert values.apply_default_ttl(0, 30, 100) == 130
    assert values.apply_default_ttl(7, 30, 100) == 7


def test_with_expire_ts_rewrites_header_only():
    v = values.encode_value(b"data", 0, 99)
    v2 = values.with_expire_ts(v, 1234)
    assert values.decode_value(v2) == (1234, 99, b"data")
