"""The replicated write unit: ``Mutation`` and its upstream binary format (replication.md §4.2).

Owns:

* ``Update`` / ``Mutation``: immutable values. A mutation is one decree of one partition (gpid,
  ballot, decree, last_committed_decree, timestamp in microseconds, log offset) carrying one or
  more updates; an update is (task code name, serialization type, raw request payload,
  optional ``start_time_ns``).
* ``encode`` / ``decode``: the binary "mutation wire/log format" of §4.2, byte for byte as
  upstream writes it (``mutation::write_to`` / ``read_from``). This is the payload of private-log
  blocks (``replica/plog.py``) and of upstream's RDSN ``RPC_PREPARE`` body.
* ``to_mutation_data`` / ``from_mutation_data``: the same value as the Thrift struct
  ``consensus.mutation_data`` that travels inside ``prepare_msg`` between our servers (D2).
* Helpers turning client write requests into updates (``update_from_request``: the request
  object encoded with our codec as the ``<method>_args`` struct ``{1: request}`` + STOP, i.e. the
  payload exactly as a THFT client sends it) and back (``decode_requests``: the list of
  ``(rpc_name, request)`` that ``StorageApp.write_batch`` takes).

Binary layout (all integers little-endian, §4.2)::

    i64 version = 0 | u64 gpid | i64 ballot | i64 decree | i64 log_offset
    | i64 last_committed_decree | i64 timestamp | i32 update_count
    | update_count x (i32 name_len, name bytes, i32 serialization_type, i32 data_len)
    | update_count x data bytes

``start_time_ns`` is not part of the binary format (upstream drops it too); it survives only the
Thrift form, and it is excluded from ``Update`` equality because it is tracing data.
A legacy header whose first word is > 64 (an old C++ vptr) is accepted with timestamp 0, as
upstream does; writers always write version 0.

Must not import gevent, sockets, threads or storage code; pure functions over bytes.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from typing import List, Optional, Sequence, Tuple

from pegasus_server.base import Gpid
from pegasus_server.errors import ProtocolError
from pegasus_server.rpc import catalogue, codec, thrift

RPC_REPLICATION_WRITE_EMPTY = "RPC_REPLICATION_WRITE_EMPTY"

# upstream dsn_msg_serialize_format (src/task/task_spec.h)
DSF_INVALID = 0
DSF_THRIFT_BINARY = 1
DSF_THRIFT_COMPACT = 2
DSF_THRIFT_JSON = 3
DSF_PROTOC_BINARY = 4
DSF_PROTOC_JSON = 5
DSF_JSON = 6

HEADER_VERSION = 0
_HEADER = struct.Struct("<qQqqqqqi")   # version, gpid, ballot, decree, log_offset, lcd, ts, count
HEADER_SIZE = _HEADER.size             # 60 = 7 x i64 + update_count
_I32 = struct.Struct("<i")
_I32X2 = struct.Struct("<ii")
_LEGACY_VPTR_MIN = 64                  # first word > 64: legacy vptr layout (timestamp := 0)
MAX_NAME_LEN = 256                     # task code names are short; a sanity bound for garbage


class MutationFormatError(ProtocolError):
    """Bytes that are not a well-formed mutation (truncated, bad version, bad lengths)."""


@dataclass(frozen=True)
class Update:
    """One client request inside a mutation. ``data`` is the request payload after framing:
    the ``<method>_args`` struct (one field, any id, then STOP)."""

    code: str
    serialization_type: int = DSF_THRIFT_BINARY
    data: bytes = b""
    start_time_ns: Optional[int] = field(default=None, compare=False)

    @property
    def is_empty_write(self) -> bool:
        return self.code == RPC_REPLICATION_WRITE_EMPTY


# upstream writes empty updates with serialization type 0 (DSF_INVALID) and no data
EMPTY_UPDATE = Update(RPC_REPLICATION_WRITE_EMPTY, DSF_INVALID, b"")


@dataclass(frozen=True)
class Mutation:
    """One decree of one partition. ``log_offset`` is the global private-log offset of the
    mutation's first byte, −1 before it is logged (set by ``plog`` at append time)."""

    gpid: Gpid
    ballot: int
    decree: int
    last_committed_decree: int
    timestamp_us: int
    updates: Tuple[Update, ...]
    log_offset: int = -1

    @property
    def name(self) -> str:
        """``app.pidx.ballot.decree`` as upstream names mutations in its logs."""
        return f"{self.gpid.app_id}.{self.gpid.partition_index}.{self.ballot}.{self.decree}"

    @property
    def is_empty(self) -> bool:
        """Only empty writes (``RPC_REPLICATION_WRITE_EMPTY``)."""
        return all(u.is_empty_write for u in self.updates)

    is_empty_write = is_empty   # the name replica/events.py's stand-in uses

    def with_log_offset(self, log_offset: int) -> "Mutation":
        return replace(self, log_offset=log_offset)

    def with_ballot(self, ballot: int) -> "Mutation":
        """A copy re-proposed under a new ballot (reconciliation, §3.6): not yet logged."""
        return replace(self, ballot=ballot, log_offset=-1)

    def encode(self, log_offset: Optional[int] = None) -> bytes:
        return encode(self, log_offset)

    @property
    def encoded_size(self) -> int:
        return HEADER_SIZE + sum(12 + len(u.code) + len(u.data) for u in self.updates)


# ------------------------------------------------------------------------------------------
# Binary format (§4.2)

def encode(m: Mutation, log_offset: Optional[int] = None) -> bytes:
    """The §4.2 bytes of ``m``; ``log_offset`` (if given) replaces ``m.log_offset``."""
    parts = [_HEADER.pack(HEADER_VERSION, m.gpid.to_i64() & 0xFFFF_FFFF_FFFF_FFFF, m.ballot,
                          m.decree, m.log_offset if log_offset is None else log_offset,
                          m.last_committed_decree, m.timestamp_us, len(m.updates))]
    for u in m.updates:
        name = u.code.encode("ascii")
        parts.append(_I32.pack(len(name)))
        parts.append(name)
        parts.append(_I32X2.pack(u.serialization_type, len(u.data)))
    for u in m.updates:
        parts.append(u.data)
    return b"".join(parts)


def decode(buf, pos: int = 0, end: Optional[int] = None) -> Tuple[Mutation, int]:
    """Decode one mutation from ``buf[pos:end]``; returns ``(mutation, new_pos)``.
    Raises ``MutationFormatError`` on anything malformed (never reads past ``end``)."""
    if end is None:
        end = len(buf)
    if pos + HEADER_SIZE > end:
        raise MutationFormatError(f"truncated mutation header at {pos}")
    version, gpid, ballot, decree, log_offset, lcd, ts, count = _HEADER.unpack_from(buf, pos)
    if version == HEADER_VERSION:
        pass
    elif version > _LEGACY_VPTR_MIN:
        ts = 0  # legacy layout: the 7th word is the thrift __isset mask, not a timestamp
    else:
        raise MutationFormatError(f"invalid mutation header version {version:#x}")
    pos += HEADER_SIZE
    if count < 0 or count > (end - pos) // 12:
        raise MutationFormatError(f"invalid update count {count}")
    heads = []
    for _ in range(count):
        if pos + 4 > end:
            raise MutationFormatError("truncated update name length")
        (nlen,) = _I32.unpack_from(buf, pos)
        pos += 4
        if nlen < 0 or nlen > MAX_NAME_LEN or pos + nlen + 8 > end:
            raise MutationFormatError(f"invalid task code length {nlen}")
        try:
            name = bytes(buf[pos:pos + nlen]).decode("ascii")
        except UnicodeDecodeError:
            raise MutationFormatError("task code name is not ASCII") from None
        pos += nlen
        stype, dlen = _I32X2.unpack_from(buf, pos)
        pos += 8
        if dlen < 0:
            raise MutationFormatError(f"negative data length {dlen}")
        heads.append((name, stype, dlen))
    updates = []
    for name, stype, dlen in heads:
        if pos + dlen > end:
            raise MutationFormatError(f"truncated update data ({dlen} bytes at {pos})")
        updates.append(Update(name, stype, bytes(buf[pos:pos + dlen])))
        pos += dlen
    m = Mutation(Gpid.from_i64(gpid), ballot, decree, lcd, ts, tuple(updates), log_offset)
    return m, pos


def decode_all(buf, pos: int = 0, end: Optional[int] = None) -> List[Mutation]:
    """Decode back-to-back mutations filling ``buf[pos:end]`` exactly (a log block body)."""
    if end is None:
        end = len(buf)
    out = []
    while pos < end:
        m, pos = decode(buf, pos, end)
        out.append(m)
    return out


# ------------------------------------------------------------------------------------------
# Thrift form (mutation_data inside prepare_msg, §3.4)

def to_mutation_data(m: Mutation):
    c = thrift.consensus
    header = c.mutation_header(pid=m.gpid, ballot=m.ballot, decree=m.decree,
                               log_offset=m.log_offset,
                               last_committed_decree=m.last_committed_decree,
                               timestamp=m.timestamp_us)
    updates = [c.mutation_update(code=u.code, serialization_type=u.serialization_type,
                                 data=u.data, start_time_ns=u.start_time_ns)
               for u in m.updates]
    return c.mutation_data(header=header, updates=updates)


def from_mutation_data(md) -> Mutation:
    h = md.header
    if h is None:
        raise MutationFormatError("mutation_data without header")
    updates = tuple(Update(u.code or "", u.serialization_type or 0, u.data or b"",
                           u.start_time_ns) for u in (md.updates or ()))
    gpid = h.pid if h.pid is not None else Gpid(0, 0)
    return Mutation(Gpid(*gpid), h.ballot or 0, h.decree or 0, h.last_committed_decree or 0,
                    h.timestamp or 0, updates, -1 if h.log_offset is None else h.log_offset)


# ------------------------------------------------------------------------------------------
# Client requests <-> updates

def _write_entry(rpc_name: str):
    e = catalogue.find(rpc_name)
    if e is None or not e.is_write:
        raise ValueError(f"{rpc_name} is not a storage write RPC")
    return e


def encode_request(rpc_name: str, request) -> bytes:
    """The payload a THFT client sends for ``rpc_name``: ``{1: request}`` then STOP."""
    return bytes(codec.encode_single_field(1, _write_entry(rpc_name).arg_spec, request))


def decode_request(rpc_name: str, data: bytes):
    """Read a payload as one field of any id (1 from THFT, 0 from RDSN; spec D5), then STOP."""
    spec = _write_entry(rpc_name).arg_spec
    if len(data) < 4:
        raise MutationFormatError(f"{rpc_name}: payload of {len(data)} bytes")
    if data[0] != thrift.wire_type(spec):
        raise MutationFormatError(f"{rpc_name}: argument has wire type {data[0]}")
    try:
        value, pos = thrift.reader_for(spec)(data, 3)
    except ProtocolError as e:
        raise MutationFormatError(f"{rpc_name}: {e}") from None
    except (IndexError, ValueError, struct.error) as e:
        raise MutationFormatError(f"{rpc_name}: malformed argument ({e})") from None
    if pos >= len(data) or data[pos] != 0:
        raise MutationFormatError(f"{rpc_name}: argument struct not followed by STOP")
    return value


def update_from_request(rpc_name: str, request, start_time_ns: Optional[int] = None) -> Update:
    return Update(rpc_name, DSF_THRIFT_BINARY, encode_request(rpc_name, request), start_time_ns)


def update_from_payload(rpc_name: str, payload: bytes,
                        start_time_ns: Optional[int] = None) -> Update:
    """An update from the raw argument bytes as received (kept verbatim, not re-encoded)."""
    _write_entry(rpc_name)
    return Update(rpc_name, DSF_THRIFT_BINARY, bytes(payload), start_time_ns)


def make_mutation(gpid: Gpid, ballot: int, decree: int, last_committed_decree: int,
                  timestamp_us: int, requests: Sequence[Tuple[str, object]] = (),
                  start_time_ns: Optional[int] = None) -> Mutation:
    """A mutation from client write requests ``[(rpc_name, request object), ...]``; no requests
    gives the empty write (one ``RPC_REPLICATION_WRITE_EMPTY`` update with no data)."""
    updates = tuple(update_from_request(n, r, start_time_ns) for n, r in requests)
    return Mutation(Gpid(*gpid), ballot, decree, last_committed_decree, timestamp_us,
                    updates or (EMPTY_UPDATE,))


def decode_requests(m: Mutation) -> List[Tuple[str, object]]:
    """``[(rpc_name, request)]`` of the client updates, empty writes left out: the argument of
    ``StorageApp.write_batch(m.decree, m.timestamp_us, ...)``."""
    out = []
    for u in m.updates:
        if u.is_empty_write:
            continue
        if u.serialization_type != DSF_THRIFT_BINARY:
            raise MutationFormatError(f"{u.code}: unsupported serialization type "
                                      f"{u.serialization_type}")
        out.append((u.code, decode_request(u.code, u.data)))
    return out
