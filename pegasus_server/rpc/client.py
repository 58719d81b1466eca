"""The gevent peer client: pipelined THFT calls to meta and replica servers.

Used between our own servers (beacons, config sync, proposals; spec D2), by tools, the shell and
tests. One connection per address, requests pipelined, replies matched by seqid. A call returns
the decoded result or raises ``RpcError`` with the header error name (``ERR_TIMEOUT`` /
``ERR_NETWORK_FAILURE`` for local failures, as the official clients report them).
"""
from __future__ import annotations

import itertools
import time
from gevent import socket
from typing import Dict, Tuple

import gevent
import gevent.event
from gevent.event import AsyncResult
from gevent.lock import Semaphore
from loguru import logger

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



class _Callback:
    """Stands where ``_PeerConnection.pending`` keeps an ``AsyncResult``: the reader greenlet
    calls ``set`` / ``set_exception``, which run ``fn(err, result)`` right there (so ``fn`` must
    not block: the replica driver's callbacks only queue work)."""

    __slots__ = ("fn", "spec", "deadline")

    def __init__(self, fn, spec, deadline: float):
        self.fn = fn
        self.spec = spec
        self.deadline = deadline

    def set(self, rep) -> None:
        if rep.err != errors.ERR_OK:
            self.fn(rep.err, None)
            return
        try:
            result = rep.result(self.spec)
        except ProtocolError:
            self.fn(errors.ERR_INVALID_DATA, None)
            return
        self.fn(errors.ERR_OK, result)

    def set_exception(self, exc) -> None:
        self.fn(getattr(exc, "err", errors.ERR_NETWORK_FAILURE), None)


class Messenger:
    """Fire-and-forget sends with reply callbacks, batched per peer (replica <-> replica and
    replica -> meta traffic of the replication protocol).

    ``send`` never blocks and never switches greenlets: it queues the call for the peer; one
    sender greenlet per peer encodes everything queued since its last round and writes it with
    one ``sendall``. A reply runs ``on_reply(err, result)`` in the connection's reader greenlet;
    a connection failure runs it with ERR_NETWORK_FAILURE. Calls without an answer are dropped
    by ``sweep`` after their timeout (the replication core keeps its own deadlines, so nobody
    waits on them)."""

    def __init__(self, client: "RpcClient"):
        self.client = client
        self._queues: Dict[Address, list] = {}
        self._wake: Dict[Address, gevent.event.Event] = {}
        self._senders: Dict[Address, gevent.Greenlet] = {}
        self.closed = False

    def send(self, addr: Address, name: str, arg, *, app_id: int = 0, partition_index: int = 0,
             on_reply=None, timeout: float = 5.0) -> None:
        q = self._queues.get(addr)
        if q is None:
            q = self._queues[addr] = []
            self._wake[addr] = gevent.event.Event()
            self._senders[addr] = gevent.spawn(self._sender, addr)
        q.append((name, arg, app_id, partition_index, on_reply, timeout))
        self._wake[addr].set()

    def _sender(self, addr: Address) -> None:
        wake = self._wake[addr]
        while not self.closed:
            wake.wait()
            wake.clear()
            batch, self._queues[addr] = self._queues[addr], []
            if not batch:
                continue
            try:
                conn = self.client._conn(addr)
            except RpcError as e:
                for item in batch:
                    if item[4] is not None:
                        item[4](e.err, None)
                gevent.sleep(0.05)            # do not spin on a dead peer
                continue
            frames = []
            now = time.monotonic()
            for name, arg, app_id, pidx, on_reply, timeout in batch:
                entry = catalogue.get(name)
                seqid = next(conn.seq) & 0x7FFFFFFF
                if on_reply is not None and entry.result_spec is not None:
                    conn.pending[seqid] = _Callback(on_reply, entry.result_spec, now + timeout)
                try:
                    frames.append(codec.encode_request(name, seqid, entry.arg_spec, arg, app_id,
                                                       pidx, 0, int(timeout * 1000)))
                except Exception:
                    conn.pending.pop(seqid, None)
                    logger.exception("cannot encode {} to {}:{}", name, addr[0], addr[1])
            with conn.lock:
                try:
                    conn.sock.sendall(b"".join(frames))
                except OSError:
                    conn.close()                 # fails the pending callbacks

    def sweep(self) -> None:
        """Forget calls whose timeout passed without an answer."""
        now = time.monotonic()
        for conn in list(self.client._conns.values()):
            stale = [s for s, w in conn.pending.items()
                     if isinstance(w, _Callback) and w.deadline < now]
            for s in stale:
                del conn.pending[s]

    def close(self) -> None:
        self.closed = True
        for g in self._senders.values():
            g.kill(block=False)
