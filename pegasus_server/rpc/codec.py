"""Sans-IO framing: THFT requests and replies, framing detection, and HTTP request heads.

Bytes in, events out (protocol.md §1, §3, §4). No sockets, no clock, no gevent. The server feeds
what it reads to ``ServerConnection.feed`` and gets ``Request`` / ``HttpRequest`` events; it builds
replies with ``encode_reply``. The peer client uses ``encode_request`` and ``ReplyParser``.

A framing violation (unknown first four bytes, bad header version, v0 header length other than
48, message type other than CALL/ONEWAY, a frame over ``MAX_FRAME``) raises ``ProtocolError``: the
caller logs it and closes that one connection (no reply is possible before a seqid is known).
Must not import gevent, socket or storage code.
"""
from __future__ import annotations

import struct
from typing import List, Optional, Union

from pegasus_server.errors import ProtocolError
from pegasus_server.rpc import thrift

MAX_FRAME = 64 * 1024 * 1024

_V0 = struct.Struct(">4sIIIIIiiiiQ")   # 48 bytes
_V1 = struct.Struct(">4sIII")          # 16 bytes
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_I16 = struct.Struct(">h")

CALL, REPLY, EXCEPTION, ONEWAY = 1, 2, 3, 4
_STRICT_REPLY = _U32.pack(0x80010000 | REPLY)
_STRICT_CALL = _U32.pack(0x80010000 | CALL)


class Request:
    """One decoded THFT request. ``body``/``arg_pos`` locate the argument struct for
    ``decode_argument``; header fields as protocol.md §3."""

    __slots__ = ("name", "seqid", "msg_type", "app_id", "partition_index", "client_timeout",
                 "partition_hash", "is_backup_request", "header_version", "body", "arg_pos")

    def __init__(self, name, seqid, msg_type, app_id, partition_index, client_timeout,
                 partition_hash, is_backup_request, header_version, body, arg_pos):
        self.name = name
        self.seqid = seqid
        self.msg_type = msg_type
        self.app_id = app_id
        self.partition_index = partition_index
        self.client_timeout = client_timeout
        self.partition_hash = partition_hash
        self.is_backup_request = is_backup_request
        self.header_version = header_version
        self.body = body
        self.arg_pos = arg_pos

    @property
    def body_length(self) -> int:
        return len(self.body)

    def __repr__(self):
        return (f"Request({self.name} seq={self.seqid} gpid={self.app_id}.{self.partition_index}"
                f" hash={self.partition_hash} v{self.header_version})")


class HttpRequest:
    __slots__ = ("method", "path", "query", "headers", "body", "version")

    def __init__(self, method, path, query, headers, body, version):
        self.method, self.path, self.query = method, path, query
        self.headers, self.body, self.version = headers, body, version

    def __repr__(self):
        return f"HttpRequest({self.method} {self.path}?{self.query})"


Event = Union[Request, HttpRequest]


def _read_message_begin(body: bytes, pos: int):
    """TMessage begin, strict or non-strict form -> (name, type, seqid, pos)."""
    if len(body) < pos + 4:
        raise ProtocolError("truncated message header")
    first = _I32.unpack_from(body, pos)[0]
    if first < 0:
        if (first & 0xFFFF0000) != 0x80010000:
            raise ProtocolError(f"bad thrift message version {first & 0xFFFFFFFF:#x}")
        mtype = first & 0xFF
        name, pos = thrift._r_name(body, pos + 4)
        if len(body) < pos + 4:
            raise ProtocolError("truncated seqid")
        seqid = _I32.unpack_from(body, pos)[0]
        return name, mtype, seqid, pos + 4
    name, pos = thrift._r_name(body, pos)
    if len(body) < pos + 5:
        raise ProtocolError("truncated message header")
    mtype = body[pos]
    seqid = _I32.unpack_from(body, pos + 1)[0]
    return name, mtype, seqid, pos + 5


def _parse_request_meta_v1(meta: bytes):
    """thrift_request_meta_v1: 1 app_id, 2 partition_index, 3 client_timeout, 4 partition_hash,
    5 is_backup_request; any subset, any order, unknown ids skipped."""
    app_id = pidx = timeout = phash = 0
    backup = False
    pos, end = 0, len(meta)
    while True:
        if pos >= end:
            raise ProtocolError("truncated request meta")
        tag = meta[pos]
        if tag == 0:
            break
        if pos + 3 > end:
            raise ProtocolError("truncated request meta")
        fid = _I16.unpack_from(meta, pos + 1)[0]
        pos += 3
        if tag == 8 and fid in (1, 2, 3) and pos + 4 <= end:
            v = _I32.unpack_from(meta, pos)[0]
            pos += 4
            if fid == 1:
                app_id = v
            elif fid == 2:
                pidx = v
            else:
                timeout = v
        elif tag == 10 and fid == 4 and pos + 8 <= end:
            phash = _I64.unpack_from(meta, pos)[0] & 0xFFFF_FFFF_FFFF_FFFF
            pos += 8
        elif tag == 2 and fid == 5 and pos + 1 <= end:
            backup = meta[pos] != 0
            pos += 1
        else:
            pos = thrift.skip(meta, pos, tag)
    return app_id, pidx, timeout, phash, backup


class ServerConnection:
    """Server side of one connection: framing detection, then THFT frames or HTTP requests."""

    def __init__(self, max_frame: int = MAX_FRAME):
        self.kind: Optional[str] = None   # "thft" | "http"
        self._buf = bytearray()
        self.max_frame = max_frame

    def feed(self, data: bytes) -> List[Event]:
        self._buf += data
        if self.kind is None:
            if len(self._buf) < 4:
                return []
            head = bytes(self._buf[:4])
            if head == b"THFT":
                self.kind = "thft"
            elif head in (b"GET ", b"POST"):
                self.kind = "http"
            else:
                raise ProtocolError(f"unsupported framing {head!r}")
        if self.kind == "thft":
            return self._thft_frames()
        return self._http_requests()

    # THFT ---------------------------------------------------------------------------------
    def _thft_frames(self) -> List[Event]:
        out: List[Event] = []
        buf = self._buf
        pos = 0
        n = len(buf)
        while n - pos >= 16:
            if buf[pos:pos + 4] != b"THFT":
                raise ProtocolError(f"bad magic {bytes(buf[pos:pos + 4])!r}")
            version = _U32.unpack_from(buf, pos + 4)[0]
            if version == 0:
                if n - pos < 48:
                    break
                (_, _, hdr_len, _, body_len, _, app_id, pidx, timeout, _thash,
                 phash) = _V0.unpack_from(buf, pos)
                if hdr_len != 48:
                    raise ProtocolError(f"THFT v0 header length {hdr_len} != 48")
                if body_len > self.max_frame:
                    raise ProtocolError(f"frame of {body_len} bytes exceeds {self.max_frame}")
                end = pos + 48 + body_len
                if end > n:
                    break
                body = bytes(buf[pos + 48:end])
                backup = False
            elif version == 1:
                _, _, meta_len, body_len = _V1.unpack_from(buf, pos)
                if meta_len + body_len > self.max_frame:
                    raise ProtocolError(f"frame of {meta_len + body_len} bytes exceeds limit")
                end = pos + 16 + meta_len + body_len
                if end > n:
                    break
                meta = bytes(buf[pos + 16:pos + 16 + meta_len])
                app_id, pidx, timeout, phash, backup = _parse_request_meta_v1(meta)
                body = bytes(buf[pos + 16 + meta_len:end])
            else:
                raise ProtocolError(f"unknown THFT header version {version}")
            name, mtype, seqid, arg_pos = _read_message_begin(body, 0)
            if mtype not in (CALL, ONEWAY):
                raise ProtocolError(f"message type {mtype} is not CALL/ONEWAY")
            out.append(Request(name, seqid, mtype, app_id, pidx, timeout, phash, backup,
                               version, body, arg_pos))
            pos = end
        if pos:
            del buf[:pos]
        return out

    # HTTP ---------------------------------------------------------------------------------
    def _http_requests(self) -> List[Event]:
        out: List[Event] = []
        buf = self._buf
        while True:
            idx = buf.find(b"\r\n\r\n")
            if idx < 0:
                if len(buf) > 64 * 1024:
                    raise ProtocolError("HTTP header too large")
                break
            head = bytes(buf[:idx]).decode("latin-1")
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3:
                raise ProtocolError(f"bad HTTP request line {lines[0]!r}")
            method, target, version = parts
            headers = {}
            for ln in lines[1:]:
                k, _, v = ln.partition(":")
                headers[k.strip().lower()] = v.strip()
            try:
                clen = int(headers.get("content-length", "0"))
            except ValueError:
                raise ProtocolError("bad Content-Length")
            if clen < 0 or clen > self.max_frame:
                raise ProtocolError("bad Content-Length")
            if len(buf) < idx + 4 + clen:
                break
            body = bytes(buf[idx + 4:idx + 4 + clen])
            del buf[:idx + 4 + clen]
            path, _, query = target.partition("?")
            out.append(HttpRequest(method, path, query, headers, body, version))
        return out


def decode_argument(req: Request, arg_spec):
    """Read the single argument field whatever its id (spec D5). Absent -> None."""
    body, pos = req.body, req.arg_pos
    if pos >= len(body):
        raise ProtocolError(f"{req.name}: missing argument struct")
    tag = body[pos]
    if tag == 0:
        return None
    if pos + 3 > len(body):
        raise ProtocolError(f"{req.name}: truncated argument")
    if tag != thrift.wire_type(arg_spec):
        raise ProtocolError(f"{req.name}: argument has wire type {tag}")
    value, _ = thrift.reader_for(arg_spec)(body, pos + 3)
    return value


def _message_begin(name: bytes, mtype_word: bytes, seqid: int) -> bytes:
    return mtype_word + _I32.pack(len(name)) + name + _I32.pack(seqid)


def encode_single_field(field_id: int, spec, value, out: bytearray = None) -> bytearray:
    """A struct of one field (``<method>_args`` is field 1, ``<method>_result`` field 0), then
    STOP, appended to ``out``."""
    b = bytearray() if out is None else out
    b.append(thrift.wire_type(spec))
    b += field_id.to_bytes(2, "big", signed=True)
    thrift.writer_for(spec)(b, value)
    b.append(0)
    return b


def encode_result(result_spec, value) -> bytes:
    """``<method>_result``: field 0 holding the response, then STOP."""
    return bytes(encode_single_field(0, result_spec, value))


def encode_reply(name: str, seqid: int, err: str = "ERR_OK", result: bytes = b"") -> bytes:
    """A THFT reply frame (protocol.md §4.1). ``result`` is ``encode_result(...)`` output, sent
    only with ERR_OK."""
    errb = err.encode("ascii")
    ack = (name + "_ACK").encode("ascii", "replace")
    payload = b"".join((_I32.pack(len(errb)), errb, _message_begin(ack, _STRICT_REPLY, seqid),
                        result if err == "ERR_OK" else b""))
    return _U32.pack(len(payload) + 4) + payload


# ---------------------------------------------------------------------------------------------
# Client side (our peer client and tools)

def encode_request(name: str, seqid: int, arg_spec, arg, app_id: int = 0,
                   partition_index: int = 0, partition_hash: int = 0,
                   client_timeout: int = 0) -> bytes:
    """A THFT v0 request frame (what the Go and Python clients send)."""
    b = encode_single_field(1, arg_spec, arg,
                            bytearray(_message_begin(name.encode("ascii"), _STRICT_CALL, seqid)))
    thread_hash = (app_id * 7919 + partition_index) & 0xFFFFFFFF
    if thread_hash >= 1 << 31:
        thread_hash -= 1 << 32
    header = _V0.pack(b"THFT", 0, 48, 0, len(b), 0, app_id, partition_index, client_timeout,
                      thread_hash, partition_hash & 0xFFFF_FFFF_FFFF_FFFF)
    return header + bytes(b)


class Reply:
    __slots__ = ("name", "seqid", "err", "body", "result_pos")

    def __init__(self, name, seqid, err, body, result_pos):
        self.name, self.seqid, self.err, self.body, self.result_pos = (
            name, seqid, err, body, result_pos)

    def result(self, result_spec):
        """Decode field 0 of the result struct (only meaningful when err == ERR_OK)."""
        body, pos = self.body, self.result_pos
        if pos >= len(body) or body[pos] == 0:
            raise ProtocolError(f"{self.name}: reply carries no result")
        value, _ = thrift.reader_for(result_spec)(body, pos + 3)
        return value


class ReplyParser:
    """Client side: THFT reply frames -> ``Reply`` events."""

    def __init__(self, max_frame: int = MAX_FRAME):
        self._buf = bytearray()
        self.max_frame = max_frame

    def feed(self, data: bytes) -> List[Reply]:
        buf = self._buf
        buf += data
        out = []
        pos = 0
        while len(buf) - pos >= 4:
            total = _U32.unpack_from(buf, pos)[0]
            if total < 4 or total > self.max_frame:
                raise ProtocolError(f"bad reply length {total}")
            if len(buf) - pos < total:
                break
            frame = bytes(buf[pos + 4:pos + total])
            err, p = thrift._r_name(frame, 0)
            name, _mtype, seqid, p = _read_message_begin(frame, p)
            out.append(Reply(name, seqid, err, frame, p))
            pos += total
        if pos:
            del buf[:pos]
        return out
