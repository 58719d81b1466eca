"""Bad input from the network: clear errors, a logged close of that one connection, nothing lost,
and the server keeps serving (protocol.md §1.1, §4.4, §6.8)."""
import socket
import struct

import pytest

from pegasus_server.errors import RpcError
from pegasus_server.rpc import catalogue, codec, thrift
from pegasus_server.rpc.client import RpcClient
from pegasus_server.rpc.table import TableClient
from pegasus_server.storage import keys

from onebox import META_BASE_PORT, REPLICA_BASE_PORT  # tools/, on the path via conftest

META = ("127.0.0.1", META_BASE_PORT + 1)
REPLICA = ("127.0.0.1", REPLICA_BASE_PORT + 1)
META_TEXT = f"127.0.0.1:{META[1]}"


def _raw_call(addr, frame, read=True, timeout=5.0):
    """Send raw bytes; return the parsed replies, or 'closed' when the server closed on us."""
    with socket.create_connection(addr, timeout=timeout) as s:
        s.sendall(frame)
        if not read:
            return None
        parser = codec.ReplyParser()
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    return "closed"
                reps = parser.feed(data)
                if reps:
                    return reps
        except socket.timeout:
            return "timeout"


def _frame(name, arg_spec, arg, app_id=0, pidx=0, phash=0, seqid=7):
    return codec.encode_request(name, seqid, arg_spec, arg, app_id, pidx, phash)


def _table(cluster):
    t = TableClient([META_TEXT], "temp")
    t.refresh()
    return t


def _assert_still_serving(cluster):
    t = _table(cluster)
    t.set(b"alive", b"check", b"yes")
    assert t.get(b"alive", b"check") == (0, b"yes")
    t.close()


@pytest.mark.parametrize("junk", [b"GARBAGE" * 10, b"RDSN" + b"\x00" * 300, b"_RAW" * 20,
                                  b"THFT\x00\x00\x00\x09" + b"\x00" * 40])
@pytest.mark.parametrize("addr", [META, REPLICA])
def test_garbage_closes_only_that_connection(cluster, junk, addr):
    assert _raw_call(addr, junk) == "closed"
    _assert_still_serving(cluster)


def test_truncated_frame_then_close_loses_nothing(cluster):
    t = _table(cluster)
    t.set(b"trunc", b"k", b"before")
    frame = _frame("RPC_RRDB_RRDB_PUT", catalogue.get("RPC_RRDB_RRDB_PUT").arg_spec,
                   thrift.rrdb.update_request(key=keys.encode_key(b"trunc", b"k"), value=b"x",
                                              expire_ts_seconds=0),
                   app_id=t.app_id, pidx=t.partition_of(b"trunc"))
    pc = t.partitions[t.partition_of(b"trunc")]
    with socket.create_connection((pc.primary.host, pc.primary.port)) as s:
        s.sendall(frame[: len(frame) // 2])
    assert t.get(b"trunc", b"k") == (0, b"before")   # the half-sent write was not applied
    t.close()


def test_unknown_rpc_name(cluster):
    for addr in (META, REPLICA):
        frame = codec.encode_request("RPC_NO_SUCH_THING", 9, thrift.T_I64, 5)
        reps = _raw_call(addr, frame)
        assert reps[0].err == "ERR_HANDLER_NOT_FOUND"
        assert reps[0].name == "RPC_NO_SUCH_THING_ACK" and reps[0].seqid == 9


def test_bad_gpid_and_app_id_zero(cluster):
    spec = catalogue.get("RPC_RRDB_RRDB_GET").arg_spec
    reps = _raw_call(REPLICA, _frame("RPC_RRDB_RRDB_GET", spec, b"\x00\x01ab", app_id=999, pidx=0))
    assert reps[0].err == "ERR_OBJECT_NOT_FOUND"
    reps = _raw_call(REPLICA, _frame("RPC_RRDB_RRDB_GET", spec, b"\x00\x01ab", app_id=2, pidx=4096))
    assert reps[0].err == "ERR_OBJECT_NOT_FOUND"
    reps = _raw_call(REPLICA, _frame("RPC_RRDB_RRDB_GET", spec, b"\x00\x01ab", app_id=0, pidx=0))
    assert reps[0].err == "ERR_HANDLER_NOT_FOUND"


def test_oversized_value_rejected_and_nothing_written(cluster):
    t = _table(cluster)
    with pytest.raises(RpcError) as e:
        t.set(b"big", b"v", b"x" * (1024 * 1024 + 10))
    assert e.value.err == "ERR_INVALID_DATA"
    assert t.get(b"big", b"v") == (1, b"")
    t.close()


def test_wrong_partition_hash_is_ignored(cluster):
    """Q9: a mismatching header partition_hash never crashes the server; the write applies to the
    addressed partition."""
    t = _table(cluster)
    pidx = t.partition_of(b"hashy")
    t.call_partition(pidx, "RPC_RRDB_RRDB_PUT",
                     thrift.rrdb.update_request(key=keys.encode_key(b"hashy", b"s"), value=b"v",
                                                expire_ts_seconds=0),
                     partition_hash=0xDEADBEEF)
    assert t.get(b"hashy", b"s") == (0, b"v")
    t.close()


def test_undecodable_argument(cluster):
    t = _table(cluster)
    pidx = t.partition_of(b"x")
    pc = t.partitions[pidx]
    good = _frame("RPC_RRDB_RRDB_GET", catalogue.get("RPC_RRDB_RRDB_GET").arg_spec,
                  b"\x00\x01xy", app_id=t.app_id, pidx=pidx)
    bad = bytearray(good)
    struct.pack_into(">i", bad, len(bad) - 1 - 4 - 4, 1 << 20)   # blob length past the body end
    reps = _raw_call((pc.primary.host, pc.primary.port), bytes(bad))
    assert reps[0].err == "ERR_INVALID_DATA"
    _assert_still_serving(cluster)
    t.close()


def test_frame_over_limit_closes(cluster):
    hdr = struct.pack(">4sIIIIIiiiiQ", b"THFT", 0, 48, 0, 200 * 1024 * 1024, 0, 2, 0, 0, 0, 0)
    assert _raw_call(REPLICA, hdr) == "closed"
    _assert_still_serving(cluster)


def test_http_on_rpc_port(cluster):
    for addr in (META, REPLICA):
        with socket.create_connection(addr, timeout=5) as s:
            s.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        assert data.startswith(b"HTTP/1.1 200") and b"pegasus-py" in data


def test_remote_command_help(cluster):
    c = RpcClient()
    for addr in (META, REPLICA):
        out = c.call(addr, "RPC_CLI_CLI_CALL", thrift.command.command(cmd="help", arguments=[]))
        assert "server-info" in out
        out = c.call(addr, "RPC_CLI_CLI_CALL", thrift.command.command(cmd="nope", arguments=[]))
        assert out == "unknown command 'nope'"
    c.close()
