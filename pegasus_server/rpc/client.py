"""The gevent peer client: pipelined THFT calls to meta and replica servers.

Used between our own servers (beacons, config sync, proposals; spec D2), by tools, the shell and
tests. One connection per address, requests pipelined, replies matched by seqid. A call returns
the decoded result or raises ``RpcError`` with the header error name (``ERR_TIMEOUT`` /
``ERR_NETWORK_FAILURE`` for local failures, as the official clients report them).
"""
from __future__ import annotations

import itertools
from gevent import socket
from typing import Dict, Tuple

import gevent
from gevent.event import AsyncResult
from gevent.lock import Semaphore

from pegasus_server import errors
from pegasus_server.errors import ProtocolError, RpcError
from pegasus_server.rpc import catalogue, codec

Address = Tuple[str, int]


class _PeerConnection:
    def __init__(self, addr: Address, connect_timeout: float):
        self.addr = addr
        self.sock = socket.create_connection(addr, timeout=connect_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(None)
        self.pending: Dict[int, AsyncResult] = {}
        self.seq = itertools.count(1)
        self.lock = Semaphore()
        self.closed = False
        self.reader = gevent.spawn(self._read_loop)

    def _read_loop(self):
        parser = codec.ReplyParser()
        try:
            while True:
                data = self.sock.recv(256 * 1024)
                if not data:
                    break
                for rep in parser.feed(data):
                    waiter = self.pending.pop(rep.seqid, None)
                    if waiter is not None:
                        waiter.set(rep)
        except (OSError, ProtocolError):
            pass
        finally:
            self.close()

    def close(self):
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
        pending, self.pending = self.pending, {}
        for w in pending.values():
            w.set_exception(RpcError(errors.ERR_NETWORK_FAILURE, f"connection to {self.addr} lost"))

    def send(self, frame_builder) -> Tuple[int, AsyncResult]:
        seqid = next(self.seq) & 0x7FFFFFFF
        waiter = AsyncResult()
        self.pending[seqid] = waiter
        data = frame_builder(seqid)
        with self.lock:
            try:
                self.sock.sendall(data)
            except OSError as e:
                self.pending.pop(seqid, None)
                self.close()
                raise RpcError(errors.ERR_NETWORK_FAILURE, str(e))
        return seqid, waiter


class RpcClient:
    """Calls by RPC name; argument and result types come from the catalogue."""

    def __init__(self, connect_timeout: float = 3.0):
        self.connect_timeout = connect_timeout
        self._conns: Dict[Address, _PeerConnection] = {}
        self._dial_lock: Dict[Address, Semaphore] = {}

    def _conn(self, addr: Address) -> _PeerConnection:
        c = self._conns.get(addr)
        if c is not None and not c.closed:
            return c
        lock = self._dial_lock.setdefault(addr, Semaphore())
        with lock:
            c = self._conns.get(addr)
            if c is not None and not c.closed:
                return c
            try:
                c = _PeerConnection(addr, self.connect_timeout)
            except OSError as e:
                raise RpcError(errors.ERR_NETWORK_FAILURE, f"connect {addr[0]}:{addr[1]}: {e}")
            self._conns[addr] = c
            return c

    def call(self, addr: Address, name: str, arg, timeout: float = 5.0, app_id: int = 0,
             partition_index: int = 0, partition_hash: int = 0, oneway: bool = False):
        """Send ``name(arg)`` to ``addr``; return the result (None for one-way calls)."""
        entry = catalogue.get(name)
        conn = self._conn(addr)
        ms = int(timeout * 1000) if timeout else 0

        def build(seqid):
            return codec.encode_request(name, seqid, entry.arg_spec, arg, app_id,
                                        partition_index, partition_hash, ms)
        seqid, waiter = conn.send(build)
        if oneway or entry.result_spec is None:
            conn.pending.pop(seqid, None)
            return None
        try:
            rep = waiter.get(timeout=timeout)
        except gevent.Timeout:
            conn.pending.pop(seqid, None)
            raise RpcError(errors.ERR_TIMEOUT, f"{name} to {addr[0]}:{addr[1]}")
        if rep.err != errors.ERR_OK:
            raise RpcError(rep.err, f"{name} to {addr[0]}:{addr[1]}")
        return rep.result(entry.result_spec)

    def close(self) -> None:
        for c in list(self._conns.values()):
            c.close()
        self._conns.clear()


def parse_address(text: str) -> Address:
    host, port = text.strip().rsplit(":", 1)
    return (host, int(port))

