"""The gevent RPC server: one listening port serving THFT and HTTP (protocol.md §1).

A thin driver around the sans-IO ``codec.ServerConnection``. Per connection one greenlet reads
whatever is waiting, decodes every complete request, dispatches each, and sends all immediate
replies with one ``sendall``; it yields between batches so one busy client cannot starve others.
Replies produced later (a replicated write, say) go through ``Connection.send`` under a lock.

The server knows nothing of meta or replica logic: it calls ``dispatcher.dispatch(conn, request)``
for THFT requests and ``dispatcher.http(conn, http_request)`` for HTTP. A framing error closes that
one connection with a logged reason; an exception in a handler is logged and answered with
``ERR_UNKNOWN``; nothing a peer sends can stop the server.
"""
from __future__ import annotations

import errno

from gevent import socket
from typing import Optional

import gevent
from gevent.lock import Semaphore
from gevent.server import StreamServer
from loguru import logger

from pegasus_server.errors import ProtocolError
from pegasus_server.rpc import codec

RECV_SIZE = 256 * 1024


class Connection:
    """One accepted connection. ``send`` is safe from any greenlet."""

    __slots__ = ("sock", "peer", "closed", "_lock", "_parser", "local_port")

    def __init__(self, sock, peer, max_frame: int, local_port: int):
        self.sock = sock
        self.peer = peer
        self.closed = False
        self._lock = Semaphore()
        self._parser = codec.ServerConnection(max_frame=max_frame)
        self.local_port = local_port

    def send(self, data: bytes) -> None:
        if self.closed or not data:
            return
        with self._lock:
            try:
                self.sock.sendall(data)
            except OSError as e:
                logger.debug("send to {} failed: {}", self.peer, e)
                self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass

    def __repr__(self):
        return f"Connection({self.peer[0]}:{self.peer[1]})"


class RpcServer:
    def __init__(self, host: str, port: int, dispatcher, max_frame: int = codec.MAX_FRAME):
        self.host = host
        self.port = port
        self.dispatcher = dispatcher
        self.max_frame = max_frame
        self._server: Optional[StreamServer] = None
        self.connections = set()

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.port))
        except OSError as e:
            listener.close()
            if e.errno != errno.EADDRINUSE:
                raise
            # Nothing may be listening there: Linux also hands out ports of its ephemeral range
            # (net.ipv4.ip_local_port_range, 32768-60999 by default, which holds the onebox's
            # 34601-34803) as the local ports of outgoing connections.
            raise OSError(e.errno, f"cannot listen on {self.host}:{self.port}: address already in "
                          "use, by another server or by a connection's local port (reserve the "
                          "servers' ports in net.ipv4.ip_local_reserved_ports)") from e
        listener.listen(1024)
        self._server = StreamServer(listener, self._handle)
        self._server.start()
        logger.info("rpc server listening on {}:{}", self.host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(timeout=1)
        for c in list(self.connections):
            c.close()

    def _handle(self, sock, peer) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        conn = Connection(sock, peer, self.max_frame, self.port)
        self.connections.add(conn)
        parser = conn._parser
        dispatcher = self.dispatcher
        try:
            while not conn.closed:
                try:
                    data = sock.recv(RECV_SIZE)
                except OSError:
                    break
                if not data:
                    break
                try:
                    events = parser.feed(data)
                except ProtocolError as e:
                    logger.warning("closing connection from {}:{}: {}", peer[0], peer[1], e)
                    break
                out = []
                for ev in events:
                    if isinstance(ev, codec.Request):
                        frame = dispatcher.dispatch(conn, ev)
                    else:
                        frame = dispatcher.http(conn, ev)
                    if frame:
                        out.append(frame)
                if out:
                    conn.send(out[0] if len(out) == 1 else b"".join(out))
                if parser.kind == "http" and events:
                    break  # one request per HTTP connection (we answer Connection: close)
                gevent.sleep(0)
        finally:
            conn.close()
            self.connections.discard(conn)
