"""Byte-exact codec vectors from protocol.md §10 (X1-X11) and framing error cases."""
import pytest

from pegasus_server.base import Gpid, HostPort, RpcAddress
from pegasus_server.errors import ProtocolError
from pegasus_server.rpc import codec, thrift

X = {
    "X1": "544846540000000000000030000000000000004a0000000000000000000000000000138800000000000000000000000080010001000000265250435f434d5f51554552595f504152544954494f4e5f434f4e4649475f42595f494e444558000000010c00010b00010000000474656d700f000208000000000000",
    "X2": "5448465400000001000000250000004a080001ffffffff080002ffffffff080003000013880a00040000000000000000020005000080010001000000265250435f434d5f51554552595f504152544954494f4e5f434f4e4649475f42595f494e444558000000000c00010b00010000000474656d700f000208000000000000",
    "X3": "00000106000000064552525f4f4b800100020000002a5250435f434d5f51554552595f504152544954494f4e5f434f4e4649475f42595f494e4445585f41434b000000010c00000c0001000000064552525f4f4b0800020000000108000300000002020004010f00050c000000020c000100000000000000010a00020000000000000001080003000000010c00047f00000187f100010f00050c000000000f00060c000000000a0007000000000000000008000800000000000c000100000001000000010a00020000000000000001080003000000010c00047f00000187f100010f00050c000000000f00060c000000000a0007000000000000000008000800000000000000",
    "X4": "0000014c000000064552525f4f4b800100020000002a5250435f434d5f51554552595f504152544954494f4e5f434f4e4649475f42595f494e4445585f41434b000000010c00000c0001000000064552525f4f4b0800020000000208000300000002020004010f00050c000000020c000100000000000000020a00020000000000000003080003000000030c00047f00000187f100010f00050c000000000f00060c000000000a00070000000000000000080008000000000c0009000000093132372e302e302e3187f1010f000a0c000000000f000b0c00000000000c000100000001000000020a00020000000000000003080003000000030c00047f00000187f100010f00050c000000000f00060c000000000a00070000000000000000080008000000000c0009000000093132372e302e302e3187f1010f000a0c000000000f000b0c00000000000000",
    "X5": "5448465400000000000000300000000000000029000000000000000200000000000007d000003dde555d9839ecea8b3080010001000000115250435f525244425f525244425f474554000000020c0001000000040001687300",
    "X6": "544846540000000100000025000000290800010000000208000200000000080003000003e80a0004555d9839ecea8b30020005000080010001000000115250435f525244425f525244425f474554000000000c0001000000040001687300",
    "X7": "00000067000000064552525f4f4b80010002000000155250435f525244425f525244425f4745545f41434b000000020c0000080001000000000c0002000000017608000300000002080004000000000b00060000000f3132372e302e302e313a33343830310000",
    "X8": "544846540000000000000030000000000000003e000000000000000100000001000003e800001ef05d9ad5b51c9a4ab380010001000000115250435f525244425f525244425f505554000000010c00010c0001000000060002686b736b0c00020000000176080003000000000000",
    "X9": "5448465400000001000000250000003e0800010000000108000200000001080003000003e80a00045d9ad5b51c9a4ab3020005000080010001000000115250435f525244425f525244425f505554000000000c00010c0001000000060002686b736b0c00020000000176080003000000000000",
    "X10": "0000006a000000064552525f4f4b80010002000000155250435f525244425f525244425f5055545f41434b000000010c00000800010000000008000200000001080003000000010a000400000000000000010b00050000000f3132372e302e302e313a33343830310000",
    "X11": "0000003d000000144552525f4f424a4543545f4e4f545f464f554e4480010002000000155250435f525244425f525244425f5055545f41434b00000001",
}
B = {k: bytes.fromhex(v) for k, v in X.items()}
L2 = thrift.layer2
RR = thrift.rrdb
QCFG = "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX"
ADDR = RpcAddress("127.0.0.1", 34801)


def _one(data):
    conn = codec.ServerConnection()
    evs = conn.feed(data)
    assert len(evs) == 1
    return evs[0]


def test_x1_query_cfg_v0():
    req = _one(B["X1"])
    assert (req.name, req.seqid, req.header_version, req.client_timeout) == (QCFG, 1, 0, 5000)
    q = codec.decode_argument(req, thrift.type_spec(L2.query_cfg_request))
    assert q.app_name == "temp" and q.partition_indices == []
    out = codec.encode_request(QCFG, 1, thrift.type_spec(L2.query_cfg_request), q, client_timeout=5000)
    assert out == B["X1"]


def test_x2_query_cfg_v1():
    req = _one(B["X2"])
    assert (req.app_id, req.partition_index, req.seqid, req.header_version) == (-1, -1, 0, 1)
    q = codec.decode_argument(req, thrift.type_spec(L2.query_cfg_request))
    assert q.app_name == "temp"


def _pc(pidx, app, ballot, replicas, hp):
    pc = L2.partition_configuration(
        pid=Gpid(app, pidx), ballot=ballot, max_replica_count=replicas, primary=ADDR,
        secondaries=[], last_drops=[], last_committed_decree=0, partition_flags=0)
    if hp:
        pc.hp_primary = HostPort("127.0.0.1", 34801)
        pc.hp_secondaries = []
        pc.hp_last_drops = []
    return pc


def _qcfg_reply(app, ballot, replicas, hp):
    resp = L2.query_cfg_response(err="ERR_OK", app_id=app, partition_count=2, is_stateful=True,
                                 partitions=[_pc(i, app, ballot, replicas, hp) for i in range(2)])
    res = codec.encode_result(thrift.type_spec(L2.query_cfg_response), resp)
    return codec.encode_reply(QCFG, 1, "ERR_OK", res)


def test_x3_x4_query_cfg_replies():
    assert _qcfg_reply(1, 1, 1, hp=False) == B["X3"]
    assert _qcfg_reply(2, 3, 3, hp=True) == B["X4"]
    rep = codec.ReplyParser().feed(B["X4"])[0]
    resp = rep.result(thrift.type_spec(L2.query_cfg_response))
    assert resp.partitions[1].pid == Gpid(2, 1) and resp.partitions[0].primary == ADDR
    assert resp.partitions[0].hp_primary == HostPort("127.0.0.1", 34801, 1)


def test_x5_x6_get():
    for k in ("X5", "X6"):
        req = _one(B[k])
        assert req.name == "RPC_RRDB_RRDB_GET" and req.app_id == 2
        assert req.partition_hash == 0x555D9839ECEA8B30
        assert codec.decode_argument(req, thrift.type_spec(thrift.dsn.blob)) == b"\x00\x01hs"


def test_x7_read_response():
    resp = RR.read_response(error=0, value=b"v", app_id=2, partition_index=0,
                            server="127.0.0.1:34801")
    res = codec.encode_result(thrift.type_spec(RR.read_response), resp)
    assert codec.encode_reply("RPC_RRDB_RRDB_GET", 2, "ERR_OK", res) == B["X7"]


def test_x8_x9_put_and_x10_reply():
    for k in ("X8", "X9"):
        req = _one(B[k])
        u = codec.decode_argument(req, thrift.type_spec(RR.update_request))
        assert (u.key, u.value, u.expire_ts_seconds) == (b"\x00\x02hksk", b"v", 0)
    resp = RR.update_response(error=0, app_id=1, partition_index=1, decree=1,
                              server="127.0.0.1:34801")
    res = codec.encode_result(thrift.type_spec(RR.update_response), resp)
    assert codec.encode_reply("RPC_RRDB_RRDB_PUT", 1, "ERR_OK", res) == B["X10"]


def test_x11_header_error():
    assert codec.encode_reply("RPC_RRDB_RRDB_PUT", 1, "ERR_OBJECT_NOT_FOUND") == B["X11"]


def test_pipelined_and_split_frames():
    data = B["X5"] + B["X6"] + B["X8"]
    conn = codec.ServerConnection()
    got = []
    for i in range(0, len(data), 7):   # byte dribble
        got += conn.feed(data[i:i + 7])
    assert [r.name for r in got] == ["RPC_RRDB_RRDB_GET", "RPC_RRDB_RRDB_GET", "RPC_RRDB_RRDB_PUT"]


@pytest.mark.parametrize("data", [
    b"GARBAGE!", b"RDSN" + b"\0" * 200, b"_RAW1234",
    b"THFT\x00\x00\x00\x07" + b"\0" * 60,                  # unknown header version
    b"THFT\x00\x00\x00\x00\x00\x00\x00\x31" + b"\0" * 60,  # v0 header length != 48
])
def test_framing_errors_close(data):
    with pytest.raises(ProtocolError):
        codec.ServerConnection().feed(data)


def test_oversized_frame_rejected():
    hdr = bytearray(B["X5"][:48])
    hdr[16:20] = (1 << 30).to_bytes(4, "big")
    with pytest.raises(ProtocolError):
        codec.ServerConnection(max_frame=1 << 20).feed(bytes(hdr))


def test_truncated_argument_is_protocol_error():
    bad = bytearray(B["X5"])
    bad[0x50:0x54] = (100).to_bytes(4, "big")  # blob length beyond the body
    req = _one(bytes(bad))
    with pytest.raises(ProtocolError):
        codec.decode_argument(req, thrift.type_spec(thrift.dsn.blob))


def test_unknown_fields_skipped_and_absent_defaults():
    # a read_response with an extra unknown i64 field 9 and a missing value field
    body = bytes.fromhex("0800010000000a" "0a0009" + "00" * 8 + "00")
    resp, pos = thrift.decode(RR.read_response, body)
    assert resp.error == 10 and resp.value is None and pos == len(body)


def test_nonstrict_message_header_accepted():
    body = (b"\x00\x00\x00\x11RPC_RRDB_RRDB_GET" + b"\x01" + b"\x00\x00\x00\x05"
            + bytes.fromhex("0c0001000000040001687300"))
    frame = B["X5"][:16] + len(body).to_bytes(4, "big") + B["X5"][20:48] + body
    req = _one(frame)
    assert (req.name, req.seqid) == ("RPC_RRDB_RRDB_GET", 5)
