"""Tests for our IDL files in idl/ (written from ../shared/spec/idl-structs.md §3).

1. Every .thrift file loads with thriftpy2, the way the rest of the code loads it
   (module name ``<stem>_thrift``, include dir ``idl/``).
2. The placeholder types of dsn.thrift are empty structs with exactly the expected names.
3. A cross-check against the spec: the markdown tables of idl-structs.md §3 are parsed and, for
   every struct and enum of every file we mirror, field ids, names, IDL types, wire type codes
   (container element codes included), requiredness, explicit defaults and enum values must match
   in both directions (nothing missing, nothing extra). Includes and service method names are
   checked too. Types, wire codes and defaults come from what thriftpy2 loaded; requiredness is
   read from the .thrift text (thriftpy2 does not keep ``optional``).
"""
import os
import re

import pytest
import thriftpy2

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IDL_DIR = os.path.join(REPO_ROOT, "idl")
SPEC_PATH = os.path.join(REPO_ROOT, "..", "shared", "spec", "idl-structs.md")

STEMS = [
    "dsn", "layer2", "rrdb", "meta_admin", "metadata", "replica_admin", "duplication", "backup",
    "bulk_load", "partition_split", "utils", "command", "request_meta", "duplication_internal",
    "consensus", "fd", "nfs",
]
# Upstream files the spec covers but we deliberately do not mirror.
NOT_MIRRORED = {"security"}
PLACEHOLDERS = ["blob", "error_code", "task_code", "rpc_address", "host_port", "gpid"]

PRIMITIVES = {2: "bool", 3: "byte", 4: "double", 6: "i16", 8: "i32", 10: "i64", 11: "string"}
T_STRUCT, T_MAP, T_SET, T_LIST, T_I32 = 12, 13, 14, 15, 8


# --------------------------------------------------------------------------- loading

def _load(stem):
    return thriftpy2.load(os.path.join(IDL_DIR, stem + ".thrift"),
                          module_name=f"{stem}_thrift", include_dirs=[IDL_DIR])


_MODULES = {}


def _module(stem):
    if stem not in _MODULES:
        _MODULES[stem] = _load(stem)
    return _MODULES[stem]


def _spec_stem(upstream_path):
    """Upstream file path -> our file stem (idl/dsn.layer2.thrift -> layer2)."""
    base = os.path.basename(upstream_path)
    if base == "dsn.layer2.thrift":
        return "layer2"
    assert base.endswith(".thrift") and base.count(".") == 1, upstream_path
    return base[: -len(".thrift")]


def _spec_prefix(stem):
    """How the spec qualifies a type of another file (layer2 is written dsn.layer2)."""
    return "dsn.layer2" if stem == "layer2" else stem


# --------------------------------------------------------------------------- .thrift text

_BLOCK_RE = re.compile(r"^(struct|enum|service)\s+(\w+)\s*\{(.*?)^\}", re.S | re.M)
_FIELD_RE = re.compile(
    r"^\s*(\d+)\s*:\s*(optional\s+|required\s+)?(\S.*?)\s+(\w+)\s*(?:=\s*([^;]+?))?\s*;\s*(?://.*)?$")
_INCLUDE_RE = re.compile(r'^include\s+"([^"]+)"', re.M)


def _strip_comments(text):
    return re.sub(r"//[^\n]*", "", text)


def _text_info(stem):
    """Parse our .thrift text: includes, and per struct {id: (optional?, type text, name, default)}."""
    with open(os.path.join(IDL_DIR, stem + ".thrift")) as f:
        text = f.read()
    includes = _INCLUDE_RE.findall(text)
    structs = {}
    for kind, name, body in _BLOCK_RE.findall(text):
        if kind != "struct":
            continue
        fields = {}
        for line in body.splitlines():
            if not _strip_comments(line).strip():
                continue
            m = _FIELD_RE.match(line)
            assert m, f"{stem}.thrift struct {name}: field line not in the expected form: {line!r}"
            fid, req, ftype, fname, default = m.groups()
            assert not (req and req.strip() == "required"), f"{stem}.{name}.{fname}: no Pegasus field is required"
            fields[int(fid)] = (bool(req), ftype, fname, default)
        structs[name] = fields
    return includes, structs


# --------------------------------------------------------------------------- spec markdown

_HEADING_RE = re.compile(r"^### upstream (\S+)\s*$")
_STRUCT_RE = re.compile(r"^\*\*struct `(\w+)`\*\*(.*)$")
_ENUM_RE = re.compile(r"^\*\*enum `(\w+)`\*\* \(i32\): (.*)$")
_SERVICE_RE = re.compile(r"^\*\*service `(\w+)`\*\*: (.*)$")
_INCLUDES_RE = re.compile(r"^Includes: (.*)\.$")
# dsn.thrift is described in prose: "`rpc_address`, `host_port`, ...: declared as empty structs".
_EMPTY_STRUCTS_RE = re.compile(r"^((?:`\w+`(?:, )?)+): declared as empty structs")
_TABLE_HEADER = ["id", "name", "type", "wire", "req", "default"]


def _cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _unquote(cell):
    return cell.strip().strip("`").strip()


def _parse_spec(path):
    """Return {stem: {"includes": [...], "structs": {name: {id: row}}, "enums": {...}, "services": {...}}}."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("## 3."))
    end = next(i for i, ln in enumerate(lines) if i > start and ln.startswith("## "))
    files = {}
    cur = None
    struct = None
    with_table = []  # (file entry, struct name) of structs announced with a field table
    for line in lines[start:end]:
        m = _HEADING_RE.match(line)
        if m:
            cur = files.setdefault(_spec_stem(m.group(1)),
                                   {"includes": None, "structs": {}, "enums": {}, "services": {}})
            struct = None
            continue
        if cur is None:
            continue
        m = _INCLUDES_RE.match(line)
        if m:
            cur["includes"] = sorted(_spec_stem(x.strip()) for x in m.group(1).split(","))
            continue
        m = _EMPTY_STRUCTS_RE.match(line)
        if m:
            for name in re.findall(r"`(\w+)`", m.group(1)):
                cur["structs"][name] = {}
            continue
        m = _STRUCT_RE.match(line)
        if m:
            name, rest = m.groups()
            assert name not in cur["structs"], f"struct {name} twice in the spec"
            cur["structs"][name] = {}
            # "— no fields" declares an empty struct; otherwise a table follows.
            struct = None if "no fields" in rest else name
            if struct is not None:
                with_table.append((cur, name))
            continue
        m = _ENUM_RE.match(line)
        if m:
            values = {}
            for item in m.group(2).split(","):
                num, vname = item.split()
                values[vname] = int(num)
            cur["enums"][m.group(1)] = values
            struct = None
            continue
        m = _SERVICE_RE.match(line)
        if m:
            methods = re.findall(r"(?:^|;\s*)(?:oneway\s+)?(\w+)\(", m.group(2))
            cur["services"][m.group(1)] = methods
            struct = None
            continue
        if struct is not None and line.startswith("|"):
            cells = _cells(line)
            if cells[0] == "id":
                assert cells == _TABLE_HEADER, f"unexpected table layout for {struct}: {cells}"
                continue
            if set(line.replace("|", "").strip()) <= {"-", " "}:
                continue
            assert len(cells) == 6, f"{struct}: bad row {line!r}"
            fid, name, ftype, wire, req, default = cells
            assert req in ("", "opt"), f"{struct}.{name}: unknown requiredness {req!r}"
            table = cur["structs"][struct]
            assert int(fid) not in table, f"{struct}: id {fid} twice"
            table[int(fid)] = {
                "name": name,
                "type": re.sub(r"\s+", "", _unquote(ftype)),
                "wire": wire,
                "optional": req == "opt",
                "default": _unquote(default),
            }
    for entry, name in with_table:
        assert entry["structs"][name], f"struct {name}: no table rows parsed"
    return files


@pytest.fixture(scope="module")
def spec():
    if not os.path.exists(SPEC_PATH):
        pytest.skip(f"spec file not found at {os.path.normpath(SPEC_PATH)} "
                    "(the shared spec directory is not next to this checkout)")
    files = _parse_spec(SPEC_PATH)
    # Guard against a parser that silently matches nothing.
    assert set(files) == set(STEMS) | NOT_MIRRORED, sorted(files)
    n_structs = sum(len(f["structs"]) for f in files.values())
    n_fields = sum(len(s) for f in files.values() for s in f["structs"].values())
    assert n_structs > 150 and n_fields > 600, (n_structs, n_fields)
    return files


# --------------------------------------------------------------------------- thriftpy2 specs

def _class_name(cls, home):
    stem = cls.__module__[: -len("_thrift")]
    return cls.__name__ if stem == home else f"{_spec_prefix(stem)}.{cls.__name__}"


def _elem_type(e, home):
    """Render a thriftpy2 element spec as the spec's IDL type text (no whitespace)."""
    if isinstance(e, int):
        return PRIMITIVES[e]
    ttype, extra = e
    return _compound_type(ttype, extra, home)


def _compound_type(ttype, extra, home):
    if ttype in (T_STRUCT, T_I32) and isinstance(extra, type):
        return _class_name(extra, home)
    if ttype == T_LIST:
        return f"list<{_elem_type(extra, home)}>"
    if ttype == T_SET:
        return f"set<{_elem_type(extra, home)}>"
    if ttype == T_MAP:
        k, v = extra
        return f"map<{_elem_type(k, home)},{_elem_type(v, home)}>"
    raise AssertionError(f"unexpected thriftpy2 spec {ttype} {extra!r}")


def _elem_wire(e):
    """Render a thriftpy2 element spec as the spec's wire column (e.g. ``13 (8→14 (12))``)."""
    if isinstance(e, int):
        return str(e)
    ttype, extra = e
    return _compound_wire(ttype, extra)


def _compound_wire(ttype, extra):
    if ttype in (T_LIST, T_SET):
        return f"{ttype} ({_elem_wire(extra)})"
    if ttype == T_MAP:
        k, v = extra
        return f"{ttype} ({_elem_wire(k)}→{_elem_wire(v)})"
    return str(ttype)


def _field_type_and_wire(fspec, home):
    if len(fspec) == 3:  # (ttype, name, required): primitive
        return PRIMITIVES[fspec[0]], str(fspec[0])
    ttype, _name, extra, _req = fspec
    return _compound_type(ttype, extra, home), _compound_wire(ttype, extra)


def _enum_value(text, home):
    """Resolve a spec default like ``app_status.AS_INVALID`` / ``utils.checksum_type.CST_NONE``."""
    parts = text.split(".")
    enum_name, value_name = parts[-2], parts[-1]
    if len(parts) >= 3:
        stem = "layer2" if parts[:-2] == ["dsn", "layer2"] else parts[-3]
        candidates = [stem]
    else:
        candidates = [home] + [s for s in STEMS if s != home]
    for stem in candidates:
        enum = getattr(_module(stem), enum_name, None)
        if enum is not None and hasattr(enum, "_NAMES_TO_VALUES"):
            return enum._NAMES_TO_VALUES[value_name]
    raise AssertionError(f"cannot resolve enum default {text!r}")


def _spec_default(text, home):
    if text == "":
        return None
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return _enum_value(text, home)


def _module_enums(mod):
    return {e.__name__: e for e in mod.__thrift_meta__.get("enums", [])}


def _module_structs(mod):
    return {s.__name__: s for s in mod.__thrift_meta__.get("structs", [])}


def _module_services(mod):
    return {s.__name__: s for s in mod.__thrift_meta__.get("services", [])}


# --------------------------------------------------------------------------- tests

@pytest.mark.parametrize("stem", STEMS)
def test_loads_with_thriftpy2(stem):
    mod = _load(stem)
    # thriftpy2 caches modules by module name and shares them with files that include them (and
    # then renames the shared module object to the bare stem), so check the classes instead.
    for cls in _module_structs(mod).values():
        assert cls.__module__ == f"{stem}_thrift"


def test_no_unexpected_files():
    found = sorted(f[: -len(".thrift")] for f in os.listdir(IDL_DIR) if f.endswith(".thrift"))
    assert found == sorted(STEMS)


def test_placeholders_are_empty_structs():
    mod = _module("dsn")
    assert sorted(_module_structs(mod)) == sorted(PLACEHOLDERS)
    assert not _module_enums(mod) and not _module_services(mod)
    for name in PLACEHOLDERS:
        cls = getattr(mod, name)
        assert cls.__module__ == "dsn_thrift"
        assert cls.thrift_spec == {}, f"dsn.{name} must be an empty struct"


def test_header_comment():
    for stem in STEMS:
        with open(os.path.join(IDL_DIR, stem + ".thrift")) as f:
            first = f.readline()
        assert first.startswith("//") and "spec" in first, f"{stem}.thrift lacks the header comment"


@pytest.mark.parametrize("stem", STEMS)
def test_matches_spec(stem, spec):
    want = spec[stem]
    mod = _module(stem)
    includes, text_structs = _text_info(stem)

    # Includes.
    if want["includes"] is not None:
        assert sorted(i[: -len(".thrift")] for i in includes) == want["includes"]
    else:
        assert includes == []

    # Enums: same set, same name -> value maps.
    got_enums = _module_enums(mod)
    assert sorted(got_enums) == sorted(want["enums"])
    for name, values in want["enums"].items():
        assert got_enums[name]._NAMES_TO_VALUES == values, f"{stem}.{name}"

    # Structs: same set; the text parse must agree with what thriftpy2 loaded.
    got_structs = _module_structs(mod)
    assert sorted(got_structs) == sorted(want["structs"])
    assert sorted(text_structs) == sorted(got_structs)
    for sname, rows in want["structs"].items():
        cls = got_structs[sname]
        tspec = cls.thrift_spec
        defaults = dict(cls.default_spec)
        text = text_structs[sname]
        where = f"{stem}.{sname}"
        assert sorted(tspec) == sorted(rows), f"{where}: field ids"
        assert sorted(text) == sorted(rows), f"{where}: field ids in the .thrift text"
        for fid, row in rows.items():
            fspec = tspec[fid]
            fname = fspec[1]
            assert fname == row["name"], f"{where} id {fid}: name"
            ftype, wire = _field_type_and_wire(fspec, stem)
            assert ftype == row["type"], f"{where}.{fname}: type {ftype} != spec {row['type']}"
            assert wire == row["wire"], f"{where}.{fname}: wire {wire} != spec {row['wire']}"
            t_optional, _t_type, t_name, _t_default = text[fid]
            assert t_name == fname, f"{where} id {fid}: text name"
            assert t_optional == row["optional"], f"{where}.{fname}: optional={t_optional}, spec {row['optional']}"
            assert fspec[-1] is False, f"{where}.{fname}: must not be required"
            want_default = _spec_default(row["default"], stem)
            got_default = defaults[fname]
            assert got_default == want_default and type(got_default) is type(want_default), \
                f"{where}.{fname}: default {got_default!r} != spec {want_default!r}"

    # Services (documentation only): same services, same method names.
    got_services = _module_services(mod)
    assert sorted(got_services) == sorted(want["services"])
    for name, methods in want["services"].items():
        assert list(got_services[name].thrift_services) == methods, f"{stem}.{name}"
