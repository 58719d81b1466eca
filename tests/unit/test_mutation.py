"""Mutation value type and its binary format (replication.md §4.2), byte-exact vectors written
from the spec's field table, the Thrift ``mutation_data`` form (§3.4), and the client-request
helpers (payload = ``{1: request}`` + STOP, read back as "one field of any id", spec D5)."""
import random
import struct

import pytest

from pegasus_server.base import Gpid
from pegasus_server.replica import mutation as M
from pegasus_server.replica.mutation import Mutation, MutationFormatError, Update
from pegasus_server.rpc import thrift
from pegasus_server.storage import keys
from pegasus_server.storage.app import StorageApp

rrdb = thrift.rrdb

PUT = "RPC_RRDB_RRDB_PUT"
REMOVE = "RPC_RRDB_RRDB_REMOVE"
EMPTY = "RPC_REPLICATION_WRITE_EMPTY"

# §4.2, spelled out field by field (little-endian):
#   version 0 | gpid 1.4 (partition index in the high word) | ballot 3 | decree 7
#   | log_offset -1 | last_committed_decree 6 | timestamp 0x0102030405060708 | 2 updates
#   | (17, "RPC_RRDB_RRDB_PUT", type 1, 3 bytes) | (27, "RPC_REPLICATION_WRITE_EMPTY", type 0, 0)
#   | "abc"
VECTOR = bytes.fromhex(
    "0000000000000000"
    "0100000004000000"
    "0300000000000000"
    "0700000000000000"
    "ffffffffffffffff"
    "0600000000000000"
    "0807060504030201"
    "02000000"
    "11000000" + b"RPC_RRDB_RRDB_PUT".hex() + "01000000" "03000000"
    "1b000000" + b"RPC_REPLICATION_WRITE_EMPTY".hex() + "00000000" "00000000"
    "616263")

VECTOR_MUTATION = Mutation(Gpid(1, 4), 3, 7, 6, 0x0102030405060708,
                           (Update(PUT, 1, b"abc"), Update(EMPTY, 0, b"")))


def test_encode_matches_spec_vector():
    assert M.encode(VECTOR_MUTATION) == VECTOR
    assert VECTOR_MUTATION.encoded_size == len(VECTOR)


def test_decode_spec_vector():
    m, pos = M.decode(VECTOR)
    assert pos == len(VECTOR)
    assert m == VECTOR_MUTATION
    assert m.log_offset == -1
    assert m.name == "1.4.3.7"


def test_log_offset_override_changes_only_that_word():
    enc = M.encode(VECTOR_MUTATION, log_offset=0x1122)
    assert enc[32:40] == struct.pack("<q", 0x1122)
    assert enc[:32] == VECTOR[:32] and enc[40:] == VECTOR[40:]
    assert M.decode(enc)[0] == VECTOR_MUTATION.with_log_offset(0x1122)


def test_header_struct_built_independently():
    g = Gpid(7, 31)
    m = Mutation(g, 12, 345, 340, 1_700_000_000_000_000, (Update(REMOVE, 1, b"\x0b\x00\x01"),),
                 log_offset=4096)
    expect = struct.pack("<qQqqqqqi", 0, (31 << 32) | 7, 12, 345, 4096, 340,
                         1_700_000_000_000_000, 1)
    expect += struct.pack("<i", len(REMOVE)) + REMOVE.encode() + struct.pack("<ii", 1, 3)
    expect += b"\x0b\x00\x01"
    assert m.encode() == expect


def test_negative_gpid_words_round_trip():
    m = Mutation(Gpid(-1, 2 ** 31 - 1), 1, 1, 0, 0, (M.EMPTY_UPDATE,))
    assert M.decode(m.encode())[0] == m


def test_legacy_vptr_header_reads_timestamp_zero():
    # old layout: a vptr (> 64) first and the thrift __isset mask where the timestamp now is
    enc = bytearray(VECTOR)
    enc[0:8] = struct.pack("<q", 0x00007F00DEAD0000)
    enc[48:56] = struct.pack("<q", 0x3F)
    m, _ = M.decode(bytes(enc))
    assert m.timestamp_us == 0
    assert (m.gpid, m.ballot, m.decree, m.last_committed_decree) == (Gpid(1, 4), 3, 7, 6)


@pytest.mark.parametrize("version", [1, 64, -1])
def test_invalid_header_versions_rejected(version):
    enc = struct.pack("<q", version) + VECTOR[8:]
    with pytest.raises(MutationFormatError):
        M.decode(enc)


def test_every_truncation_is_rejected():
    for n in range(len(VECTOR)):
        with pytest.raises(MutationFormatError):
            M.decode(VECTOR[:n])
        with pytest.raises(MutationFormatError):   # an explicit end must be respected too
            M.decode(VECTOR + b"\x00" * 100, 0, n)


def test_bad_lengths_rejected():
    bad_count = VECTOR[:56] + struct.pack("<i", -1) + VECTOR[60:]
    bad_name = VECTOR[:60] + struct.pack("<i", -5) + VECTOR[64:]
    bad_data = bytearray(VECTOR)
    bad_data[85:89] = struct.pack("<i", -3)      # data length of the first update
    for enc in (bad_count, bad_name, bytes(bad_data)):
        with pytest.raises(MutationFormatError):
            M.decode(enc)


def test_random_garbage_only_raises_format_errors():
    rng = random.Random(7)
    for i in range(3000):
        if i % 2:
            buf = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
        else:  # valid prefix, random rest: reaches deeper branches
            cut = rng.randint(0, len(VECTOR))
            buf = VECTOR[:cut] + bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40)))
        try:
            M.decode(buf)
        except MutationFormatError:
            pass


def test_decode_all_back_to_back():
    ms = [Mutation(Gpid(2, 0), 1, d, d - 1, 1000 + d,
                   (Update(PUT, 1, bytes([d]) * d),)) for d in range(1, 20)]
    buf = b"".join(m.encode() for m in ms)
    assert M.decode_all(buf) == ms
    with pytest.raises(MutationFormatError):
        M.decode_all(buf[:-1])


def test_start_time_ns_is_not_in_the_binary_format():
    m = Mutation(Gpid(1, 0), 1, 1, 0, 5, (Update(PUT, 1, b"x", start_time_ns=123),))
    back = M.decode(m.encode())[0]
    assert back.updates[0].start_time_ns is None
    assert back == m          # start_time_ns is tracing data, excluded from equality


def test_mutation_data_thrift_round_trip():
    m = Mutation(Gpid(3, 5), 9, 100, 98, 1234567, (
        Update(PUT, 1, b"payload-1", start_time_ns=42), Update(REMOVE, 1, b"p2")), log_offset=77)
    md = M.to_mutation_data(m)
    raw = thrift.encode(md)
    back, pos = thrift.decode(thrift.consensus.mutation_data, raw, 0)
    assert pos == len(raw)
    m2 = M.from_mutation_data(back)
    assert m2 == m
    assert m2.updates[0].start_time_ns == 42 and m2.updates[1].start_time_ns is None


def test_prepare_msg_carries_mutation_data():
    c = thrift.consensus
    m = M.make_mutation(Gpid(1, 2), 4, 10, 9, 99, [(PUT, rrdb.update_request(
        key=keys.encode_key(b"h", b"s"), value=b"v", expire_ts_seconds=0))])
    msg = c.prepare_msg(config=thrift.metadata.replica_configuration(
        pid=Gpid(1, 2), ballot=4, status=thrift.metadata.partition_status.PS_SECONDARY),
        mu=M.to_mutation_data(m))
    back = thrift.decode_all(c.prepare_msg, thrift.encode(msg))
    assert M.from_mutation_data(back.mu) == m
    assert back.config.ballot == 4


# -------------------------------------------------------------------------------------------
# client requests

def _put(hk, sk, v):
    return rrdb.update_request(key=keys.encode_key(hk, sk), value=v, expire_ts_seconds=0)


def test_request_payload_is_args_struct_field_1():
    req = _put(b"hk", b"sk", b"value")
    payload = M.encode_request(PUT, req)
    assert payload[:3] == b"\x0c\x00\x01"          # STRUCT, field id 1
    assert payload[-1:] == b"\x00"                 # STOP of the args struct
    assert payload[3:-1] == thrift.encode(req)
    assert M.decode_request(PUT, payload) == req


def test_request_payload_field_id_0_from_rdsn_is_accepted():
    req = _put(b"a", b"", b"b")
    payload = b"\x0c\x00\x00" + thrift.encode(req) + b"\x00"
    assert M.decode_request(PUT, payload) == req


def test_remove_payload_is_a_blob():
    key = keys.encode_key(b"hk", b"sk")
    payload = M.encode_request(REMOVE, key)
    assert M.decode_request(REMOVE, payload) == key


def test_bad_request_payloads():
    req = _put(b"a", b"", b"b")
    good = M.encode_request(PUT, req)
    with pytest.raises(MutationFormatError):
        M.decode_request(PUT, good[:-1])                 # no STOP
    with pytest.raises(MutationFormatError):
        M.decode_request(PUT, b"\x08" + good[1:])        # wrong wire type
    with pytest.raises(MutationFormatError):
        M.decode_request(PUT, good[:10])                 # truncated
    with pytest.raises(ValueError):
        M.encode_request("RPC_RRDB_RRDB_GET", b"k")      # not a write
    with pytest.raises(ValueError):
        M.update_from_payload("RPC_CM_LIST_APPS", b"")


def test_make_mutation_and_decode_requests():
    reqs = [(PUT, _put(b"h", b"1", b"one")), (PUT, _put(b"h", b"2", b"two")),
            (REMOVE, keys.encode_key(b"h", b"0"))]
    m = M.make_mutation(Gpid(1, 0), 2, 5, 4, 777, reqs, start_time_ns=1)
    assert [u.code for u in m.updates] == [PUT, PUT, REMOVE]
    assert all(u.serialization_type == M.DSF_THRIFT_BINARY for u in m.updates)
    back = M.decode(m.encode())[0]
    assert M.decode_requests(back) == reqs


def test_empty_mutation():
    m = M.make_mutation(Gpid(1, 0), 2, 5, 4, 777)
    assert m.updates == (Update(EMPTY, 0, b""),)
    assert m.is_empty
    assert M.decode_requests(M.decode(m.encode())[0]) == []


def test_decoded_requests_apply_to_storage(tmp_path):
    app = StorageApp.open(str(tmp_path / "data"), Gpid(1, 0), engine="memory")
    try:
        m1 = M.make_mutation(Gpid(1, 0), 1, 1, 0, 1000, [(PUT, _put(b"h", b"a", b"A")),
                                                         (PUT, _put(b"h", b"b", b"B"))])
        m2 = M.make_mutation(Gpid(1, 0), 1, 2, 1, 2000, [(REMOVE, keys.encode_key(b"h", b"a"))])
        m3 = M.make_mutation(Gpid(1, 0), 1, 3, 2, 3000)
        for m in (m1, m2, m3):
            wire = M.decode(m.encode())[0]
            app.write_batch(wire.decree, wire.timestamp_us, M.decode_requests(wire))
        assert app.last_committed_decree == 3
        assert app.read("RPC_RRDB_RRDB_GET", keys.encode_key(b"h", b"b")).value == b"B"
        assert app.read("RPC_RRDB_RRDB_GET", keys.encode_key(b"h", b"a")).error == 1
    finally:
        app.close()


def test_with_ballot_resets_log_offset():
    m = VECTOR_MUTATION.with_log_offset(100)
    r = m.with_ballot(4)
    assert (r.ballot, r.log_offset, r.decree, r.updates) == (4, -1, 7, m.updates)
