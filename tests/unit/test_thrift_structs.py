"""The generated struct readers and writers of ``rpc/thrift.py``, over every struct of every IDL
file, against thriftpy2's own binary protocol (an independent implementation) where a struct
holds no Pegasus placeholder type, and by round trip everywhere.

Random instances: every non-optional field set, optional fields set or ``None`` at random,
containers of 0-3 elements down to depth 4 and empty below. Seeds are fixed, so a failure reproduces.
"""
import random
import zlib

import pytest
from thriftpy2.protocol import TBinaryProtocolFactory
from thriftpy2.thrift import TPayload
from thriftpy2.utils import deserialize, serialize

from pegasus_server.base import Gpid, HostPort, RpcAddress
from pegasus_server.errors import ProtocolError
from pegasus_server.rpc import thrift

T = thrift
ERROR_NAMES = ["ERR_OK", "ERR_TIMEOUT", "ERR_OBJECT_NOT_FOUND", "ERR_INVALID_STATE"]


def _structs():
    out = []
    for stem, mod in sorted(thrift.all_modules().items()):
        for name in sorted(dir(mod)):
            cls = getattr(mod, name)
            if isinstance(cls, type) and issubclass(cls, TPayload) and \
                    getattr(cls, "thrift_spec", None) is not None and \
                    thrift.placeholder_name(cls) is None:
                out.append(cls)
    return out


STRUCTS = _structs()


def _has_placeholder(spec, seen=()) -> bool:
    t, extra = thrift._split(spec)
    if t == T.T_STRUCT:
        if thrift.placeholder_name(extra):
            return True
        if extra in seen:
            return False
        return any(_has_placeholder(thrift._field_type_spec(f), seen + (extra,))
                   for f in extra.thrift_spec.values())
    if t in (T.T_LIST, T.T_SET):
        return _has_placeholder(extra, seen)
    if t == T.T_MAP:
        return _has_placeholder(extra[0], seen) or _has_placeholder(extra[1], seen)
    return False


def _value(rng, spec, depth):
    t, extra = thrift._split(spec)
    if t == T.T_BOOL:
        return rng.random() < 0.5
    if t == T.T_BYTE:
        return rng.randint(-128, 127)
    if t == T.T_I16:
        return rng.randint(-2 ** 15, 2 ** 15 - 1)
    if t == T.T_I32:
        return rng.randint(-2 ** 31, 2 ** 31 - 1)
    if t == T.T_I64:
        return rng.randint(-2 ** 63, 2 ** 63 - 1)
    if t == T.T_DOUBLE:
        return rng.uniform(-1e9, 1e9)
    if t == T.T_STRING:
        return "".join(rng.choice("abc\u00e9\u4e2d ") for _ in range(rng.randint(0, 6)))
    if t == T.T_BINARY:
        return bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 6)))
    if t == T.T_STRUCT:
        ph = thrift.placeholder_name(extra)
        if ph == "blob":
            return bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 8)))
        if ph in ("error_code", "task_code"):
            return rng.choice(ERROR_NAMES)
        if ph == "rpc_address":
            return RpcAddress("127.0.0.%d" % rng.randint(1, 9), rng.randint(1, 65535))
        if ph == "host_port":
            return HostPort("host%d" % rng.randint(0, 9), rng.randint(1, 65535), 1)
        if ph == "gpid":
            return Gpid(rng.randint(1, 100), rng.randint(0, 63))
        return _instance(rng, extra, depth + 1)
    if t in (T.T_LIST, T.T_SET):
        n = rng.randint(0, 3) if depth < 4 else 0
        items = [_value(rng, extra, depth + 1) for _ in range(n)]
        if t == T.T_SET:
            try:
                return set(items)
            except TypeError:            # unhashable elements: thriftpy2 uses lists then
                return items
        return items
    if t == T.T_MAP:
        n = rng.randint(0, 3) if depth < 4 else 0
        out = {}
        for _ in range(n):
            try:
                out[_value(rng, extra[0], depth + 1)] = _value(rng, extra[1], depth + 1)
            except TypeError:
                pass
        return out
    raise AssertionError(spec)


def _instance(rng, cls, depth=0):
    obj = cls()
    assert depth < 12, f"{cls.__name__} nests itself"
    defaults = dict(cls.default_spec)
    for fid, fspec in cls.thrift_spec.items():
        # an absent optional field reads back as its IDL default: only those without one may be
        # left unset here
        if thrift.is_optional(cls, fid) and defaults.get(fspec[1]) is None and \
                rng.random() < 0.3:
            setattr(obj, fspec[1], None)
            continue
        setattr(obj, fspec[1], _value(rng, thrift._field_type_spec(fspec), depth))
    return obj


@pytest.mark.parametrize("cls", STRUCTS, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_round_trip(cls):
    rng = random.Random(zlib.crc32(cls.__name__.encode()))
    for _ in range(20):
        obj = _instance(rng, cls)
        data = thrift.encode(obj)
        back, pos = thrift.decode(cls, data)
        assert pos == len(data)
        assert back == obj
        assert thrift.decode(cls, thrift.encode(back))[0] == obj   # (sets may reorder)


PLAIN = [c for c in STRUCTS if not _has_placeholder((T.T_STRUCT, c))]


@pytest.mark.parametrize("cls", PLAIN, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_same_bytes_as_thriftpy2(cls):
    rng = random.Random(zlib.crc32(cls.__name__.encode()) + 1)
    factory = TBinaryProtocolFactory()
    for _ in range(20):
        obj = _instance(rng, cls)
        if any(isinstance(getattr(obj, f[1]), set) for f in cls.thrift_spec.values()):
            continue                     # element order of a set is not part of the contract
        theirs = serialize(obj, factory)
        assert thrift.encode(obj) == theirs
        assert thrift.decode(cls, theirs)[0] == deserialize(cls(), theirs, factory)


def test_there_are_structs_of_both_kinds():
    assert len(STRUCTS) > 100 and 20 < len(PLAIN) < len(STRUCTS)


def test_unknown_fields_and_wrong_wire_types_are_skipped():
    rr = thrift.rrdb
    # field 9 (unknown) as a list of strings, field 1 (key, a blob) sent as an i32, then value
    data = (b"\x0f\x00\x09\x0b\x00\x00\x00\x01\x00\x00\x00\x02hi"
            b"\x08\x00\x01\x00\x00\x00\x07"
            b"\x0c\x00\x02\x00\x00\x00\x01v" b"\x00")
    req, pos = thrift.decode(rr.update_request, data)
    assert pos == len(data)
    assert req.key is None and req.value == b"v" and req.expire_ts_seconds is None


@pytest.mark.parametrize("cut", range(1, 30))
def test_truncated_input_raises_protocol_errors(cut):
    rr = thrift.rrdb
    data = thrift.encode(rr.update_request(key=b"\x00\x02hksk", value=b"value", expire_ts_seconds=5))
    with pytest.raises((ProtocolError, Exception)) as e:
        thrift.decode(rr.update_request, data[:cut])
    assert isinstance(e.value, (ProtocolError, IndexError)) or "unpack" in str(e.value)


def test_bad_blob_length():
    data = b"\x0c\x00\x01\xff\xff\xff\xff\x00"
    with pytest.raises(ProtocolError, match="bad blob length -1"):
        thrift.decode(thrift.rrdb.update_request, data)


def test_non_optional_none_is_written_as_default_and_optional_none_is_omitted():
    c = thrift.consensus
    blank = thrift.encode(c.mutation_update())
    back = thrift.decode(c.mutation_update, blank)[0]
    assert back.code == "" and back.serialization_type == 0 and back.data == b""
    assert back.start_time_ns is None            # optional: not written
    assert b"\x0a\x00\x04" not in blank
