"""Benchmark ceiling server -- NOT the product.

What it is: the smallest gevent + rocksdict Python program that the official Pegasus clients
(and ``tools/bench/loadgen``) can drive with gets and puts.  It exists only to measure an upper
bound ("ceiling") for a Python/gevent/RocksDB Pegasus server on this machine, so that
``tools/bench/run_bench.sh`` can report the real servers' throughput as a fraction of it.

What it does, and nothing else:

* listens on ONE port (default 127.0.0.1:34701) that is both "meta" and "replica";
* answers ``RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX`` for ANY table name with app_id 1 and
  ``--partitions`` (default 8, a power of two as the Go client requires) partitions, every one
  with ballot 1 and primary = this server (spec protocol.md §6.1, example X3);
* answers ``RPC_RRDB_RRDB_GET`` and ``RPC_RRDB_RRDB_PUT`` against ONE rocksdict ``Rdict``
  (raw bytes mode, WAL on, no fsync -- the durability of our replica server), storing the
  client's storage key and value bytes verbatim (no value header, no TTL, no expiry check);
* answers any other RPC name with the header error ``ERR_HANDLER_NOT_FOUND`` (spec §4.4);
* hand-parses THFT v0 request frames (protocol.md §3.1) and hand-builds reply frames (§4.1,
  examples X5/X7/X8/X10 of §10) -- no thriftpy2, no validation, no v1 (Java) headers;
* per connection: one ``recv``, every complete frame in the buffer handled, all replies sent
  with ONE ``sendall``.

No replication, no mutation log, no partitions on disk, no meta state, no TTL, no checks on the
partition hash or gpid, no HTTP, no RDSN.  A malformed frame closes the connection.  Do not use
it for anything but benchmarking; it is deliberately not built on ``pegasus_server``.

Usage: ``python tools/bench/ceiling.py [--host 127.0.0.1] [--port 34701] [--db DIR]
[--partitions 8] [--keep-db]``.  Stops on SIGTERM/SIGINT (the DB directory is deleted at start
unless ``--keep-db``).
"""

import argparse
import os
import shutil
import signal
import socket
import struct
import sys

import gevent
import gevent.event
from gevent.server import StreamServer
import rocksdict

_U32 = struct.Struct(">I")
_GET = b"RPC_RRDB_RRDB_GET"
_PUT = b"RPC_RRDB_RRDB_PUT"
_QCFG = b"RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX"
_ERR_OK = b"\x00\x00\x00\x06ERR_OK"
_REPLY = b"\x80\x01\x00\x02"  # strict message begin, type REPLY


def _string(b: bytes) -> bytes:
    return _U32.pack(len(b)) + b


def _ack_prefix(name: bytes, err: bytes = b"ERR_OK") -> bytes:
    """Everything of a reply frame after the length and before the seqid."""
    return _string(err) + _REPLY + _string(name + b"_ACK")


class Ceiling:
    def __init__(self, host: str, port: int, db_path: str, partitions: int) -> None:
        self.host, self.port, self.partitions = host, port, partitions
        opt = rocksdict.Options(raw_mode=True)
        opt.create_if_missing(True)
        self.db = rocksdict.Rdict(db_path, opt)
        self.wopt = rocksdict.WriteOptions()  # WAL on (default), sync off (default)
        server = _string(f"{host}:{port}".encode())
        # GET reply: [len] prefix seqid | 0c 00 00 | 08 00 01 err | 0c 00 02 vlen value |
        #            08 00 03 app_id | 08 00 04 pidx | 0b 00 06 server | 00 00
        self.get_pre = _ack_prefix(_GET)
        self.get_ok = b"\x0c\x00\x00\x08\x00\x01\x00\x00\x00\x00\x0c\x00\x02"
        self.get_nf = b"\x0c\x00\x00\x08\x00\x01\x00\x00\x00\x01\x0c\x00\x02\x00\x00\x00\x00"
        self.get_post = b"\x0b\x00\x06" + server + b"\x00\x00"
        # PUT reply: [len] prefix seqid | 0c 00 00 | 08 00 01 0 | 08 00 02 app_id |
        #            08 00 03 pidx | 0a 00 04 decree | 0b 00 05 server | 00 00
        self.put_pre = _ack_prefix(_PUT)
        self.put_post = b"\x0b\x00\x05" + server + b"\x00\x00"
        self.decree = 0
        self.qcfg_pre = _ack_prefix(_QCFG)
        self.qcfg_body = self._qcfg_body()

    def _qcfg_body(self) -> bytes:
        """query_cfg_response for app 1, every partition primary on this server (X3 layout)."""
        ip = struct.unpack(">I", socket.inet_aton(self.host))[0]
        addr = struct.pack(">Q", (ip << 32) | (self.port << 16) | 1)
        n = self.partitions
        out = [
            b"\x0c\x00\x00",  # result field 0
            b"\x0c\x00\x01" + _string(b"ERR_OK"),  # err
            b"\x08\x00\x02" + struct.pack(">i", 1),  # app_id
            b"\x08\x00\x03" + struct.pack(">i", n),  # partition_count
            b"\x02\x00\x04\x01",  # is_stateful
            b"\x0f\x00\x05\x0c" + struct.pack(">i", n),  # partitions list<struct>
        ]
        for i in range(n):
            out += [
                b"\x0c\x00\x01" + struct.pack(">ii", i, 1),  # pid (partition, app)
                b"\x0a\x00\x02" + struct.pack(">q", 1),  # ballot
                b"\x08\x00\x03" + struct.pack(">i", 1),  # max_replica_count
                b"\x0c\x00\x04" + addr,  # primary
                b"\x0f\x00\x05\x0c\x00\x00\x00\x00",  # secondaries []
                b"\x0f\x00\x06\x0c\x00\x00\x00\x00",  # last_drops []
                b"\x0a\x00\x07" + struct.pack(">q", 0),  # last_committed_decree
                b"\x08\x00\x08" + struct.pack(">i", 0),  # partition_flags
                b"\x00",
            ]
        out.append(b"\x00\x00")  # STOP response, STOP result
        return b"".join(out)

    # ---- connection loop -------------------------------------------------------------------
    def handle(self, sock, _addr) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        db_get, db_put, wopt = self.db.get, self.db.put, self.wopt
        get_pre, get_ok, get_nf, get_post = self.get_pre, self.get_ok, self.get_nf, self.get_post
        put_pre, put_post = self.put_pre, self.put_post
        u32 = _U32.pack
        buf = b""
        try:
            while True:
                data = sock.recv(262144)
                if not data:
                    return
                buf = buf + data if buf else data
                n = len(buf)
                pos = 0
                out = []
                while n - pos >= 48:
                    body_len = int.from_bytes(buf[pos + 16:pos + 20], "big")
                    end = pos + 48 + body_len
                    if end > n:
                        break
                    hdr_ids = buf[pos + 24:pos + 32]  # app_id, partition_index (raw)
                    b = pos + 48
                    nl = int.from_bytes(buf[b + 4:b + 8], "big")
                    name = buf[b + 8:b + 8 + nl]
                    a = b + 8 + nl
                    seq = buf[a:a + 4]
                    a += 4  # args: 0c 00 01 <argument>
                    if name == _GET:
                        kl = int.from_bytes(buf[a + 3:a + 7], "big")
                        v = db_get(buf[a + 7:a + 7 + kl])
                        if v is None:
                            body = b"".join((get_pre, seq, get_nf, b"\x08\x00\x03", hdr_ids[:4],
                                             b"\x08\x00\x04", hdr_ids[4:], get_post))
                        else:
                            body = b"".join((get_pre, seq, get_ok, u32(len(v)), v,
                                             b"\x08\x00\x03", hdr_ids[:4], b"\x08\x00\x04",
                                             hdr_ids[4:], get_post))
                    elif name == _PUT:
                        # 0c 00 01 (args.update) 0c 00 01 klen key 0c 00 02 vlen value 08 00 03 ttl
                        kl = int.from_bytes(buf[a + 6:a + 10], "big")
                        k_end = a + 10 + kl
                        vl = int.from_bytes(buf[k_end + 3:k_end + 7], "big")
                        db_put(buf[a + 10:k_end], buf[k_end + 7:k_end + 7 + vl], wopt)
                        self.decree += 1
                        body = b"".join((put_pre, seq, b"\x0c\x00\x00\x08\x00\x01\x00\x00\x00\x00",
                                         b"\x08\x00\x02", hdr_ids[:4], b"\x08\x00\x03",
                                         hdr_ids[4:], b"\x0a\x00\x04",
                                         self.decree.to_bytes(8, "big"), put_post))
                    elif name == _QCFG:
                        body = self.qcfg_pre + seq + self.qcfg_body
                    else:
                        body = _ack_prefix(name, b"ERR_HANDLER_NOT_FOUND") + seq
                    out.append(u32(len(body) + 4))
                    out.append(body)
                    pos = end
                buf = buf[pos:] if pos < n else b""
                if out:
                    sock.sendall(b"".join(out))
        except (ConnectionError, OSError):
            return
        except Exception as e:  # malformed frame: drop this connection only
            print(f"ceiling: closing connection: {e!r}", file=sys.stderr, flush=True)
        finally:
            sock.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1", help="IPv4 address to bind and advertise")
    ap.add_argument("--port", type=int, default=34701)
    ap.add_argument("--db", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "..", "..", ".build", "bench", "ceiling-db"))
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--keep-db", action="store_true", help="do not wipe --db at start")
    args = ap.parse_args(argv)
    n = args.partitions
    if n < 2 or n & (n - 1):
        ap.error("--partitions must be a power of two >= 2 (the Go client requires it)")
    db_path = os.path.abspath(args.db)
    if not args.keep_db:
        shutil.rmtree(db_path, ignore_errors=True)
    os.makedirs(db_path, exist_ok=True)

    ceiling = Ceiling(args.host, args.port, db_path, n)
    server = StreamServer((args.host, args.port), ceiling.handle, backlog=1024)
    server.init_socket()
    stop = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    server.start()
    print(f"ceiling: listening on {args.host}:{args.port} db={db_path} pid={os.getpid()}",
          flush=True)
    stop.wait()
    server.stop(timeout=1)
    ceiling.db.close()
    print("ceiling: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
