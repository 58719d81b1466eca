"""IDL loading (thriftpy2) and the Thrift binary codec with Pegasus's placeholder types.

This is the only module that loads IDL with thriftpy2. ``thrift.<stem>`` is the module loaded from
``idl/<stem>.thrift`` (``thrift.rrdb.update_request``, ``thrift.layer2.query_cfg_response`` ...).

Why our own codec instead of thriftpy2's Cython protocol: Pegasus declares ``blob``, ``error_code``,
``task_code``, ``rpc_address``, ``host_port`` and ``gpid`` as empty structs whose wire form is a
STRUCT tag (12) followed by a bare, non-struct payload (protocol.md §2.2). thriftpy2's protocols
(pure Python and Cython alike) are schema-driven from ``thrift_spec`` with no per-type hook, so they
can only write such a field as a real struct and would skip it on read, desynchronising the
stream. We therefore keep thriftpy2 as the IDL parser and class factory and compile, once per
struct, a reader and a writer from its ``thrift_spec``: Python source generated per struct, with
scalars, blobs and strings unrolled inline (see "Struct readers and writers" below).
thriftpy2 does not record ``optional``; we read that keyword from our own IDL text.

Python values of the placeholder types: blob -> bytes, error_code / task_code -> str (the name),
rpc_address -> base.RpcAddress, host_port -> base.HostPort, gpid -> base.Gpid.

Encoding rules (protocol.md §2.1): every non-optional field is written, a ``None`` there is written
as its IDL default or zero value; optional fields are written only when not ``None``. Readers accept
fields in any order, skip unknown ids by wire type, and leave absent fields at their defaults.
Must not import gevent, socket I/O or storage code.
"""
from __future__ import annotations

import glob
import os
import re
import struct
import sys
from typing import Any, Callable, Dict, Tuple

import thriftpy2
from thriftpy2.thrift import TType

from pegasus_server.base import INVALID_ADDRESS, INVALID_HOST_PORT, Gpid, HostPort, RpcAddress
from pegasus_server.errors import ProtocolError

T_STOP, T_BOOL, T_BYTE, T_DOUBLE, T_I16, T_I32, T_I64, T_STRING, T_STRUCT, T_MAP, T_SET, T_LIST = (
    0, 2, 3, 4, 6, 8, 10, 11, 12, 13, 14, 15)
T_BINARY = int(TType.BINARY)  # thriftpy2's pseudo type for `binary`; wire tag is STRING (11)

_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_U16 = struct.Struct(">H")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_U64 = struct.Struct(">Q")
_DBL = struct.Struct(">d")
_FIELD = struct.Struct(">bh")
_LIST_HDR = struct.Struct(">bi")
_MAP_HDR = struct.Struct(">bbi")

_pack_i32 = _I32.pack
_unpack_i32 = _I32.unpack_from

MAX_CONTAINER = 64 * 1024 * 1024  # sanity bound on declared lengths; frames are capped anyway

# --------------------------------------------------------------------------------------------
# IDL loading

IDL_DIR = os.environ.get("PEGASUS_IDL_DIR") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "idl")

_modules: Dict[str, Any] = {}
_optional: Dict[Tuple[str, str], set] = {}   # (module stem, struct name) -> optional field ids

_STRUCT_RE = re.compile(r"\b(?:struct|exception|union)\s+(\w+)\s*\{(.*?)\}", re.S)
_FIELD_RE = re.compile(r"^\s*(-?\d+)\s*:\s*(optional\b)?", re.M)


def _scan_optionals(stem: str, path: str) -> None:
    with open(path) as f:
        text = re.sub(r"//[^\n]*|#[^\n]*|/\*.*?\*/", "", f.read(), flags=re.S)
    for m in _STRUCT_RE.finditer(text):
        ids = {int(fm.group(1)) for fm in _FIELD_RE.finditer(m.group(2)) if fm.group(2)}
        _optional[(stem, m.group(1))] = ids


def load(stem: str):
    """Load ``idl/<stem>.thrift`` (cached)."""
    mod = _modules.get(stem)
    if mod is None:
        path = os.path.join(IDL_DIR, stem + ".thrift")
        mod = thriftpy2.load(path, module_name=f"{stem}_thrift", include_dirs=[IDL_DIR])
        _modules[stem] = mod
        for p in glob.glob(os.path.join(IDL_DIR, "*.thrift")):
            s = os.path.basename(p)[:-7]
            if not any(k[0] == s for k in _optional):
                _scan_optionals(s, p)
    return mod


def __getattr__(name: str):  # module-level lazy attributes: thrift.rrdb, thrift.layer2, ...
    if name.startswith("__"):
        raise AttributeError(name)
    mod = _modules.get(name)
    if mod is not None:
        return mod
    path = os.path.join(IDL_DIR, name + ".thrift")
    if not os.path.exists(path):
        raise AttributeError(f"no IDL file {name}.thrift in {IDL_DIR}")
    return load(name)


def _stem_of(cls) -> str:
    mod = cls.__module__
    return mod[:-7] if mod.endswith("_thrift") else mod


def is_optional(cls, fid: int) -> bool:
    return fid in _optional.get((_stem_of(cls), cls.__name__), ())


# --------------------------------------------------------------------------------------------
# Placeholder types

def _w_blob(b: bytearray, v) -> None:
    if v is None:
        v = b""
    elif isinstance(v, str):
        v = v.encode()
    b += _pack_i32(len(v))
    b += v


def _r_blob(buf, pos):
    n = _unpack_i32(buf, pos)[0]
    pos += 4
    if n < 0 or pos + n > len(buf):
        raise ProtocolError(f"bad blob length {n}")
    return bytes(buf[pos:pos + n]), pos + n


def _w_name(b: bytearray, v) -> None:
    v = (v or "").encode("ascii")
    b += _pack_i32(len(v))
    b += v


def _r_name(buf, pos):
    raw, pos = _r_blob(buf, pos)
    return raw.decode("ascii", "replace"), pos


def _w_address(b: bytearray, v) -> None:
    if v is None:
        b += b"\0" * 8
    elif isinstance(v, int):
        b += _U64.pack(v & 0xFFFF_FFFF_FFFF_FFFF)
    else:
        b += _U64.pack(v.to_u64())


def _r_address(buf, pos):
    if pos + 8 > len(buf):
        raise ProtocolError("truncated rpc_address")
    return RpcAddress.from_u64(_U64.unpack_from(buf, pos)[0]), pos + 8


def _w_host_port(b: bytearray, v) -> None:
    if v is None:
        v = INVALID_HOST_PORT
    h = v.host.encode()
    b += _pack_i32(len(h))
    b += h
    b += _U16.pack(v.port & 0xFFFF)
    b += _I8.pack(v.type)


def _r_host_port(buf, pos):
    h, pos = _r_blob(buf, pos)
    if pos + 3 > len(buf):
        raise ProtocolError("truncated host_port")
    port = _U16.unpack_from(buf, pos)[0]
    typ = _I8.unpack_from(buf, pos + 2)[0]
    return HostPort(h.decode("utf-8", "replace"), port, typ), pos + 3


def _w_gpid(b: bytearray, v) -> None:
    if v is None:
        b += b"\0" * 8
    else:
        b += _I64.pack(v.to_i64())


def _r_gpid(buf, pos):
    if pos + 8 > len(buf):
        raise ProtocolError("truncated gpid")
    return Gpid.from_i64(_I64.unpack_from(buf, pos)[0]), pos + 8


PLACEHOLDERS = {
    "blob": (_w_blob, _r_blob, b""),
    "error_code": (_w_name, _r_name, "ERR_OK"),
    "task_code": (_w_name, _r_name, ""),
    "rpc_address": (_w_address, _r_address, INVALID_ADDRESS),
    "host_port": (_w_host_port, _r_host_port, INVALID_HOST_PORT),
    "gpid": (_w_gpid, _r_gpid, Gpid(0, 0)),
}


def placeholder_name(cls) -> str | None:
    """'blob', 'gpid', ... when ``cls`` is one of dsn.thrift's placeholder structs."""
    if isinstance(cls, type) and cls.__name__ in PLACEHOLDERS and _stem_of(cls) == "dsn":
        return cls.__name__
    return None


# --------------------------------------------------------------------------------------------
# Compiling readers and writers from thriftpy2 specs
#
# A "type spec" is what thriftpy2 stores for a value: an int ttype for scalars, or a tuple
# (ttype, extra) where extra is a struct class / enum class / element spec / (key, value) specs.

Writer = Callable[[bytearray, Any], None]
Reader = Callable[[Any, int], Tuple[Any, int]]


def _split(spec) -> Tuple[int, Any]:
    if isinstance(spec, tuple):
        return spec[0], spec[1]
    return spec, None


def wire_type(spec) -> int:
    t, _ = _split(spec)
    return T_STRING if t == T_BINARY else t


def _w_bool(b, v):
    b.append(1 if v else 0)


def _r_bool(buf, pos):
    return buf[pos] != 0, pos + 1


def _scalar_rw(pk: struct.Struct):
    pack, unpack, size = pk.pack, pk.unpack_from, pk.size

    def w(b, v):
        b += pack(v or 0)

    def r(buf, pos):
        if pos + size > len(buf):
            raise ProtocolError("truncated value")
        return unpack(buf, pos)[0], pos + size
    return w, r


_W_I8, _R_I8 = _scalar_rw(_I8)
_W_I16, _R_I16 = _scalar_rw(_I16)
_W_I32, _R_I32 = _scalar_rw(_I32)
_W_I64, _R_I64 = _scalar_rw(_I64)
_W_DBL, _R_DBL = _scalar_rw(_DBL)


def _w_string(b, v):
    if v is None:
        v = b""
    elif isinstance(v, str):
        v = v.encode("utf-8", "surrogateescape")
    b += _pack_i32(len(v))
    b += v


def _r_string(buf, pos):
    raw, pos = _r_blob(buf, pos)
    return raw.decode("utf-8", "surrogateescape"), pos


# scalar type -> (writer, reader); `binary` reads as bytes, `string` as str
_SCALARS = {
    T_BOOL: (_w_bool, _r_bool), T_BYTE: (_W_I8, _R_I8), T_I16: (_W_I16, _R_I16),
    T_I32: (_W_I32, _R_I32), T_I64: (_W_I64, _R_I64), T_DOUBLE: (_W_DBL, _R_DBL),
    T_STRING: (_w_string, _r_string), T_BINARY: (_w_string, _r_blob),
}

_writers: Dict[Any, Writer] = {}
_readers: Dict[Any, Reader] = {}


def writer_for(spec) -> Writer:
    w = _writers.get(spec)
    if w is None:
        w = _writers[spec] = _make_writer(spec)
    return w


def reader_for(spec) -> Reader:
    r = _readers.get(spec)
    if r is None:
        r = _readers[spec] = _make_reader(spec)
    return r


def _make_writer(spec) -> Writer:
    t, extra = _split(spec)
    if t in _SCALARS:
        return _SCALARS[t][0]
    if t == T_STRUCT:
        ph = placeholder_name(extra)
        if ph:
            return PLACEHOLDERS[ph][0]
        return _struct_writer(extra)
    if t in (T_LIST, T_SET):
        etag = wire_type(extra)
        ew = writer_for(extra)

        def w_list(b, v):
            v = v or ()
            b += _LIST_HDR.pack(etag, len(v))
            for e in v:
                ew(b, e)
        return w_list
    if t == T_MAP:
        kspec, vspec = extra
        ktag, vtag = wire_type(kspec), wire_type(vspec)
        kw, vw = writer_for(kspec), writer_for(vspec)

        def w_map(b, v):
            v = v or {}
            b += _MAP_HDR.pack(ktag, vtag, len(v))
            for k, e in v.items():
                kw(b, k)
                vw(b, e)
        return w_map
    raise ValueError(f"unsupported thrift type {spec!r}")


def _make_reader(spec) -> Reader:
    t, extra = _split(spec)
    if t in _SCALARS:
        return _SCALARS[t][1]
    if t == T_STRUCT:
        ph = placeholder_name(extra)
        if ph:
            return PLACEHOLDERS[ph][1]
        return _struct_reader(extra)
    if t in (T_LIST, T_SET):
        etag = wire_type(extra)
        er = reader_for(extra)
        is_set = t == T_SET

        def r_list(buf, pos):
            if pos + 5 > len(buf):
                raise ProtocolError("truncated list header")
            tag, n = _LIST_HDR.unpack_from(buf, pos)
            pos += 5
            if n < 0 or n > MAX_CONTAINER:
                raise ProtocolError(f"bad list size {n}")
            out = []
            if n and tag != etag:
                for _ in range(n):
                    pos = skip(buf, pos, tag)
                return (set() if is_set else out), pos
            for _ in range(n):
                e, pos = er(buf, pos)
                out.append(e)
            return (set(out) if is_set else out), pos
        return r_list
    if t == T_MAP:
        kspec, vspec = extra
        ktag, vtag = wire_type(kspec), wire_type(vspec)
        kr, vr = reader_for(kspec), reader_for(vspec)

        def r_map(buf, pos):
            if pos + 6 > len(buf):
                raise ProtocolError("truncated map header")
            kt, vt, n = _MAP_HDR.unpack_from(buf, pos)
            pos += 6
            if n < 0 or n > MAX_CONTAINER:
                raise ProtocolError(f"bad map size {n}")
            out = {}
            if n and (kt != ktag or vt != vtag):
                for _ in range(n):
                    pos = skip(buf, pos, kt)
                    pos = skip(buf, pos, vt)
                return out, pos
            for _ in range(n):
                k, pos = kr(buf, pos)
                v, pos = vr(buf, pos)
                out[k] = v
            return out, pos
        return r_map
    raise ValueError(f"unsupported thrift type {spec!r}")


def _field_type_spec(fspec) -> Any:
    """thriftpy2 field spec (ttype, name, [extra,] required) -> our type spec."""
    if len(fspec) == 3:
        return fspec[0]
    t, extra = fspec[0], fspec[2]
    if t == T_I32 and isinstance(extra, type):  # enum: thriftpy2 keeps the enum class
        return T_I32
    return (t, extra)


# Struct readers and writers are generated Python source, one function per struct, compiled once
# (``compile`` + ``exec``): the fields' wire forms are unrolled into straight-line code, scalars,
# blobs and strings are read and written inline, and only nested structs and containers are
# separate calls. Behaviour is that of the field-by-field interpretation they replace (same
# bytes, same defaults, same errors); the generic closures above remain for containers and the
# top-level value of an RPC.

# scalars read inline: type -> (its struct.Struct's name, size)
_INLINE_READ = {
    T_BOOL: (None, 1),
    T_BYTE: ("_I8", 1), T_I16: ("_I16", 2), T_I32: ("_I32", 4), T_I64: ("_I64", 8),
    T_DOUBLE: ("_DBL", 8),
}
_INLINE_BYTES = {  # (type, placeholder name) -> how the raw bytes ``raw`` become the value
    (T_BINARY, None): "v = raw",
    (T_STRING, None): "v = raw.decode('utf-8', 'surrogateescape')",
    (T_STRUCT, "blob"): "v = raw",
    (T_STRUCT, "error_code"): "v = raw.decode('ascii', 'replace')",
    (T_STRUCT, "task_code"): "v = raw.decode('ascii', 'replace')",
}
_PACKERS = {T_BYTE: "_I8", T_I16: "_I16", T_I32: "_I32", T_I64: "_I64", T_DOUBLE: "_DBL"}
_CODEGEN_NS = {"_I8": _I8, "_I16": _I16, "_I32": _I32, "_I64": _I64, "_DBL": _DBL,
               "_unpack_i32": _unpack_i32, "_pack_i32": _pack_i32, "ProtocolError": ProtocolError}
_compiling: Dict[Any, Any] = {}   # structs whose function is being generated -> stand-in


def _nested(spec, table: dict, kind: str) -> str:
    """The name under which a generated function calls the reader/writer of ``spec``."""
    name = f"_{kind}{len(table)}"
    fn = (reader_for if kind == "r" else writer_for)(spec)
    table[name] = fn
    return name


def _compile(src: str, ns: dict, fname: str, label: str):
    code = compile(src, f"<thrift {label}>", "exec")
    exec(code, ns)
    return ns[fname]


def _generated(table: dict, cls, generate):
    """The generated function of struct ``cls`` (``generate(cls)``). A struct met again while
    its own function is being generated (a type that contains itself) gets a stand-in that
    calls the finished function through ``table`` (``_readers`` / ``_writers``)."""
    spec = (T_STRUCT, cls)
    key = (id(table), spec)
    stand_in = _compiling.get(key)
    if stand_in is not None:
        return stand_in
    _compiling[key] = lambda a, b: table[spec](a, b)
    try:
        return generate(cls)
    finally:
        del _compiling[key]


def _struct_writer(cls) -> Writer:
    return _generated(_writers, cls, _generate_writer)


def _struct_reader(cls) -> Reader:
    return _generated(_readers, cls, _generate_reader)


def _generate_writer(cls) -> Writer:
    defaults = dict(cls.default_spec) if hasattr(cls, "default_spec") else {}
    ns = dict(_CODEGEN_NS, _cls=cls, _TypeError=TypeError)
    lines = ["def w_struct(b, obj):",
             "    if obj.__class__ is not _cls and not isinstance(obj, _cls):",
             "        raise _TypeError(f'expected {_cls.__name__}, got {type(obj).__name__}')"]
    for fid in sorted(cls.thrift_spec):
        fspec = cls.thrift_spec[fid]
        name = fspec[1]
        tspec = _field_type_spec(fspec)
        t, extra = _split(tspec)
        ph = placeholder_name(extra) if t == T_STRUCT else None
        header = f"_H{fid & 0xFFFF}"
        ns[header] = _FIELD.pack(wire_type(tspec), fid)
        lines.append(f"    v = getattr(obj, {name!r}, None)")
        lines.append("    if v is None:")
        dflt = defaults.get(name)
        if is_optional(cls, fid):
            lines.append("        pass")
            lines.append("    else:")
        elif dflt is not None:
            ns[f"_D{fid & 0xFFFF}"] = dflt
            lines.append(f"        v = _D{fid & 0xFFFF}")
        elif t == T_STRUCT and ph is None:
            ns[f"_C{fid & 0xFFFF}"] = extra
            lines.append(f"        v = _C{fid & 0xFFFF}()")
        else:
            lines.append("        pass")      # the writers below take None as zero
        ind = "        " if is_optional(cls, fid) else "    "
        lines.append(f"{ind}b += {header}")
        if t == T_BOOL:
            lines.append(f"{ind}b.append(1 if v else 0)")
        elif t in _PACKERS:
            lines.append(f"{ind}b += {_PACKERS[t]}.pack(v or 0)")
        elif t in (T_STRING, T_BINARY) or ph == "blob":
            enc = "v.encode()" if ph == "blob" else "v.encode('utf-8', 'surrogateescape')"
            lines.append(f"{ind}if v is None:")
            lines.append(f"{ind}    v = b''")
            lines.append(f"{ind}elif isinstance(v, str):")
            lines.append(f"{ind}    v = {enc}")
            lines.append(f"{ind}b += _pack_i32(len(v))")
            lines.append(f"{ind}b += v")
        else:
            w = _nested(tspec, ns, "w")
            lines.append(f"{ind}{w}(b, v)")
    lines.append("    b.append(0)")
    return _compile("\n".join(lines) + "\n", ns, "w_struct", f"writer {cls.__name__}")


def _generate_reader(cls) -> Reader:
    names = [n for n, _ in getattr(cls, "default_spec", ())]
    ns = dict(_CODEGEN_NS, _cls=cls, skip=skip)
    init = cls.__init__.__defaults__ or ()
    for i, d in enumerate(init):
        ns[f"_D{i}"] = d
    local = {n: f"f{i}" for i, n in enumerate(names)}
    lines = ["def r_struct(buf, pos):", "    end = len(buf)"]
    lines += [f"    f{i} = _D{i}" for i in range(len(names))]
    lines += ["    while True:",
              "        if pos >= end:",
              f"            raise ProtocolError({'truncated struct ' + cls.__name__!r})",
              "        tag = buf[pos]",
              "        if tag == 0:",
              f"            return _cls({', '.join(local[n] for n in names)}), pos + 1",
              "        if pos + 3 > end:",
              f"            raise ProtocolError({'truncated field header in ' + cls.__name__!r})",
              "        fid = _I16.unpack_from(buf, pos + 1)[0]",
              "        pos += 3"]
    first = True
    for fid in sorted(cls.thrift_spec):
        fspec = cls.thrift_spec[fid]
        tspec = _field_type_spec(fspec)
        t, extra = _split(tspec)
        ph = placeholder_name(extra) if t == T_STRUCT else None
        var = local[fspec[1]]
        kw = "if" if first else "elif"
        first = False
        lines.append(f"        {kw} fid == {fid} and tag == {wire_type(tspec)}:")
        i = "            "
        if t in _INLINE_READ:
            how, size = _INLINE_READ[t]
            if t == T_BOOL:
                lines.append(f"{i}{var} = buf[pos] != 0")
            else:
                lines.append(f"{i}if pos + {size} > end:")
                lines.append(f"{i}    raise ProtocolError('truncated value')")
                lines.append(f"{i}{var} = {how}.unpack_from(buf, pos)[0]")
            lines.append(f"{i}pos += {size}")
        elif (t, ph) in _INLINE_BYTES:
            lines.append(f"{i}n = _unpack_i32(buf, pos)[0]")
            lines.append(f"{i}pos += 4")
            lines.append(f"{i}if n < 0 or pos + n > end:")
            lines.append(f"{i}    raise ProtocolError(f'bad blob length {{n}}')")
            lines.append(f"{i}raw = bytes(buf[pos:pos + n])")
            lines.append(f"{i}pos += n")
            lines.append(f"{i}{_INLINE_BYTES[(t, ph)]}")
            lines.append(f"{i}{var} = v")
        else:
            r = _nested(tspec, ns, "r")
            lines.append(f"{i}{var}, pos = {r}(buf, pos)")
    lines.append("        else:" if not first else "        if True:")
    lines.append("            pos = skip(buf, pos, tag)")
    return _compile("\n".join(lines) + "\n", ns, "r_struct", f"reader {cls.__name__}")


def skip(buf, pos: int, tag: int, depth: int = 0) -> int:
    """Skip one value of wire type ``tag`` (only for fields unknown to our schema)."""
    if depth > 64:
        raise ProtocolError("nesting too deep")
    end = len(buf)
    if tag == T_BOOL or tag == T_BYTE:
        pos += 1
    elif tag == T_I16:
        pos += 2
    elif tag == T_I32:
        pos += 4
    elif tag == T_I64 or tag == T_DOUBLE:
        pos += 8
    elif tag == T_STRING:
        if pos + 4 > end:
            raise ProtocolError("truncated string")
        n = _unpack_i32(buf, pos)[0]
        if n < 0:
            raise ProtocolError("negative string length")
        pos += 4 + n
    elif tag == T_STRUCT:
        while True:
            if pos >= end:
                raise ProtocolError("truncated struct")
            t = buf[pos]
            pos += 1
            if t == 0:
                break
            pos = skip(buf, pos + 2, t, depth + 1)
    elif tag in (T_LIST, T_SET):
        if pos + 5 > end:
            raise ProtocolError("truncated list")
        et, n = _LIST_HDR.unpack_from(buf, pos)
        pos += 5
        if n < 0 or n > MAX_CONTAINER:
            raise ProtocolError("bad list size")
        for _ in range(n):
            pos = skip(buf, pos, et, depth + 1)
    elif tag == T_MAP:
        if pos + 6 > end:
            raise ProtocolError("truncated map")
        kt, vt, n = _MAP_HDR.unpack_from(buf, pos)
        pos += 6
        if n < 0 or n > MAX_CONTAINER:
            raise ProtocolError("bad map size")
        for _ in range(n):
            pos = skip(buf, pos, kt, depth + 1)
            pos = skip(buf, pos, vt, depth + 1)
    else:
        raise ProtocolError(f"unknown thrift type {tag}")
    if pos > end:
        raise ProtocolError("truncated value")
    return pos


# --------------------------------------------------------------------------------------------
# Public helpers

def type_spec(t) -> Any:
    """A type spec for an RPC argument/result: a struct/placeholder class, or a TType int."""
    if isinstance(t, type):
        return (T_STRUCT, t)
    return t


def encode(obj, spec=None) -> bytes:
    """Encode a struct (or any value with an explicit spec) to bytes."""
    b = bytearray()
    writer_for(spec if spec is not None else (T_STRUCT, type(obj)))(b, obj)
    return bytes(b)


def decode(cls_or_spec, buf, pos: int = 0):
    """Decode one value; returns (value, new_pos)."""
    spec = type_spec(cls_or_spec)
    return reader_for(spec)(buf, pos)


def decode_all(cls, buf):
    v, _ = decode(cls, buf, 0)
    return v


def all_modules():
    """Load every IDL file; returns {stem: module}."""
    for p in sorted(glob.glob(os.path.join(IDL_DIR, "*.thrift"))):
        load(os.path.basename(p)[:-7])
    return dict(_modules)


sys.setrecursionlimit(max(sys.getrecursionlimit(), 4000))
