"""The dispatcher answers every request, whatever its handler does."""
from pegasus_server.rpc import codec, thrift
from pegasus_server.rpc.dispatch import DEFERRED, NO_REPLY, Dispatcher, HeaderError

GET = "RPC_RRDB_RRDB_GET"


def _req(name=GET, key=b"\x00\x01ab"):
    from pegasus_server.rpc import catalogue
    spec = catalogue.get(GET).arg_spec
    frame = codec.encode_request(name, 3, spec, key, app_id=2, partition_index=0)
    return codec.ServerConnection().feed(frame)[0]


def _reply(frame):
    return codec.ReplyParser().feed(frame)[0]


def test_unknown_name_and_unregistered_handler():
    d = Dispatcher()
    assert _reply(d.dispatch(None, _req("RPC_NOPE"))).err == "ERR_HANDLER_NOT_FOUND"
    assert _reply(d.dispatch(None, _req())).err == "ERR_HANDLER_NOT_FOUND"


def test_handler_outcomes():
    d = Dispatcher()
    resp = thrift.rrdb.read_response(error=0, value=b"v", app_id=2, partition_index=0, server="s")
    d.register(GET, lambda c, r, a: resp)
    rep = _reply(d.dispatch(None, _req()))
    assert rep.err == "ERR_OK" and rep.seqid == 3
    from pegasus_server.rpc import catalogue
    assert rep.result(catalogue.get(GET).result_spec).value == b"v"

    def header_error(c, r, a):
        raise HeaderError("ERR_INVALID_STATE")
    d.register(GET, header_error)
    assert _reply(d.dispatch(None, _req())).err == "ERR_INVALID_STATE"
    d.register(GET, lambda c, r, a: 1 / 0)                     # a handler bug
    assert _reply(d.dispatch(None, _req())).err == "ERR_UNKNOWN"
    d.register(GET, lambda c, r, a: "not a read_response")      # cannot be encoded
    assert _reply(d.dispatch(None, _req())).err == "ERR_UNKNOWN"
    for sentinel in (NO_REPLY, DEFERRED):
        d.register(GET, lambda c, r, a, s=sentinel: s)
        assert d.dispatch(None, _req()) is None


def test_undecodable_argument():
    d = Dispatcher()
    d.register(GET, lambda c, r, a: None)
    req = _req()
    req.body = req.body[:-3]        # truncate the blob
    assert _reply(d.dispatch(None, req)).err == "ERR_INVALID_DATA"


def test_server_on_a_connections_local_port_says_why():
    """A port held as the local port of a connection (nothing listens there) cannot be listened
    on; the server's error names the address and that cause instead of a bare errno."""
    import socket

    import pytest

    from pegasus_server.rpc.server import RpcServer
    with socket.socket() as srv, socket.socket() as cli:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        cli.connect(srv.getsockname())
        port = cli.getsockname()[1]
        server = RpcServer("127.0.0.1", port, Dispatcher())
        with pytest.raises(OSError) as e:
            server.start()
        assert f"127.0.0.1:{port}: address already in use" in str(e.value)
        assert "connection's local port" in str(e.value)
