"""Single-record and single-hash-key data commands (shell.md §2.3) on the table chosen with
``use``: set, multi_set, get, multi_get, multi_get_range, multi_get_sortkeys, del, multi_del,
incr, check_and_set, check_and_mutate, exist, count, ttl, hash. (The scanning ones, from
multi_del_range on, are in ``ops/scan.py``.)

Keys and values typed by the user are C-unescaped (``\\x00``); keys and values are printed
C-escaped in double quotes (``escape_all`` decides for bytes >= 0x80), in upstream's forms:
a result, a blank line, then the footer ``app_id / partition_index / [decree] / server`` of the
replica that served the request. Upstream writes all of it to stderr; we write the results to
stdout and upstream's echo of the parsed parameters ("hash_key: ...") to stderr, so a terminal
shows upstream's picture and a script reads only results.

Exit status: 0, or 1 when the answer is negative — ``get`` / ``ttl`` of a missing record,
``exist`` False, a ``check_and_set`` / ``check_and_mutate`` whose check did not pass — like
``grep``; 1 with ``ERROR: ...`` on stderr for failures (RPC errors, RocksDB statuses).

Talks to replica servers through ``TableClient.call_partition`` (routing, retries); RPC errors
become ``ShellError`` here (``data_command``), the one place they are translated. Imports of
the server package: only ``errors``, ``rpc`` and ``storage.keys`` (the wire, not the storage).
"""
from __future__ import annotations

import functools
import shlex
import sys
import time
from typing import List, Optional, Tuple

from pegasus_server.errors import RpcError
from pegasus_server.rpc import thrift
from pegasus_server.storage import keys
from pegasus_shell.commands import Arg, Opt, command
from pegasus_shell.context import ShellError, UsageError
from pegasus_shell.escaping import EscapeError, quoted, unescape
from pegasus_shell.output import Report, emit

rrdb = thrift.rrdb

#: expiry timestamps count seconds from 2016-01-01 00:00:00 UTC (data-operations.md §3)
EPOCH_BEGIN = 1451606400

#: RocksDB ``Status::Code`` names of the ``error`` field of every rrdb response (§5.1)
ROCKSDB_STATUS = ("kOk", "kNotFound", "kCorruption", "kNotSupported", "kInvalidArgument",
                  "kIOError", "kMergeInProgress", "kIncomplete", "kShutdownInProgress",
                  "kTimedOut", "kAborted", "kBusy", "kExpired", "kTryAgain",
                  "kCompactionTooLarge", "kColumnFamilyDropped")
ST_OK, ST_NOT_FOUND, ST_INVALID_ARGUMENT, ST_INCOMPLETE, ST_TRY_AGAIN = 0, 1, 4, 7, 13

#: ``-s|--sort_key_filter_type`` & co. -> ``filter_type`` (the server's filters, §7.1)
FILTER_TYPES = {"anywhere": 1, "prefix": 2, "postfix": 3}

#: ``-t|--check_type`` names, upstream's: the IDL names without ``CT_VALUE_``, lower case
CHECK_TYPES = {name[len("CT_VALUE_"):].lower(): value
               for name, value in sorted(rrdb.cas_check_type._NAMES_TO_VALUES.items(),
                                         key=lambda kv: kv[1])
               if name != "CT_NO_CHECK"}
CHECK_OPERAND_FROM = rrdb.cas_check_type.CT_VALUE_MATCH_ANYWHERE   # types from here need -o


# --------------------------------------------------------------------------- shared helpers


def ub(text: str) -> bytes:
    """A key or value typed by the user, C-unescaped."""
    try:
        return unescape(text)
    except EscapeError as e:
        raise UsageError(str(e)) from None


def parse_bool(text: str) -> bool:
    t = text.lower()
    if t in ("true", "1", "yes"):
        return True
    if t in ("false", "0", "no"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


parse_bool.__name__ = "bool"           # argparse names the type in its error message


def expire_ts(ttl_seconds: int) -> int:
    """Absolute expiry for a TTL (0: never expires)."""
    return int(time.time()) - EPOCH_BEGIN + ttl_seconds if ttl_seconds > 0 else 0


def status_name(code: int) -> str:
    name = ROCKSDB_STATUS[code] if 0 <= code < len(ROCKSDB_STATUS) else "unknown"
    return f"rocksdb status {code} ({name})"


def where(resp) -> str:
    return (f"{{app_id={resp.app_id}, partition_index={resp.partition_index}, "
            f"server={resp.server}}}")


def check_status(resp, what: str, allowed=(ST_OK,)) -> None:
    if resp.error not in allowed:
        raise ShellError(f"{what} failed: {status_name(resp.error)} {where(resp)}")


def footer(resp, decree: bool = False) -> str:
    """Upstream's footer after a single-key command."""
    lines = [f"app_id          : {resp.app_id}",
             f"partition_index : {resp.partition_index}"]
    if decree:
        lines.append(f"decree          : {resp.decree}")
    lines.append(f"server          : {resp.server}")
    return "\n".join(lines) + "\n"


def q(ctx, data: bytes) -> str:
    return quoted(data or b"", ctx.escape_all)


def echo(ctx, *pairs: Tuple[str, object]) -> None:
    """Upstream's echo of the parsed parameters, to stderr (bytes shown quoted)."""
    for name, v in pairs:
        if v is None:
            ctx.err.write(f"{name}:\n")
            continue
        if isinstance(v, (bytes, bytearray)):
            v = quoted(bytes(v))
        elif isinstance(v, bool):
            v = "true" if v else "false"
        ctx.err.write(f"{name}: {v}\n")
    ctx.err.write("\n")
    ctx.err.flush()


def need_hash_key(hk: bytes) -> bytes:
    if not hk:
        raise UsageError("invalid hash key: it must not be empty for this command")
    if len(hk) > keys.MAX_HASH_KEY_LEN:
        raise UsageError(f"invalid hash key: {len(hk)} bytes, at most {keys.MAX_HASH_KEY_LEN}")
    return hk


def table(ctx, name: Optional[str] = None, metas: Optional[List[str]] = None):
    """The table client (default: the table in use), resolved with one meta query so that a
    table that does not exist fails at once (the client would retry it until its timeout)."""
    t = ctx.table(name, metas)
    if not t.partitions:
        t.refresh()
    return t


def hash_call(t, name: str, hash_key: bytes, arg):
    """An RPC to the partition of ``hash_key`` (multi-key requests of one hash key)."""
    return t._single(name, hash_key, b"", arg)


def data_command(name: str, help: str, args=(), opts=(), group: str = "data"):
    """``@command`` whose handler may raise ``RpcError`` (shown as ``ERROR: <err>``) and
    ``keys.InvalidKey`` (a usage error)."""
    def register(fn):
        @functools.wraps(fn)
        def handler(ctx, a):
            try:
                return fn(ctx, a)
            except RpcError as e:
                raise ShellError(str(e)) from None
            except keys.InvalidKey as e:
                raise UsageError(str(e)) from None
        command(name, group, help, args=args, opts=opts)(handler)
        return fn
    return register


HK, SK = Arg("hash_key"), Arg("sort_key")
RANGE_OPTS = (
    Opt("-a", "--start_inclusive", type=parse_bool, default=True, metavar="true|false",
        completes="bool", help="include the start sort key (default true)"),
    Opt("-b", "--stop_inclusive", type=parse_bool, default=False, metavar="true|false",
        completes="bool", help="include the stop sort key (default false)"),
    Opt("-s", "--sort_key_filter_type", choices=tuple(FILTER_TYPES),
        help="only sort keys matching the pattern -y"),
    Opt("-y", "--sort_key_filter_pattern", default="", help="pattern of -s"))


def range_echo(a, hk: bytes) -> list:
    pairs = [("hash_key", hk), ("start_sort_key", ub(a.start_sort_key)),
             ("start_inclusive", a.start_inclusive), ("stop_sort_key", ub(a.stop_sort_key)),
             ("stop_inclusive", a.stop_inclusive),
             ("sort_key_filter_type", a.sort_key_filter_type or "no_filter")]
    if a.sort_key_filter_type:
        pairs.append(("sort_key_filter_pattern", ub(a.sort_key_filter_pattern)))
    return pairs


# --------------------------------------------------------------------------- single records


@data_command("set", "Write one record (TTL in seconds; none: never expires)",
              args=[HK, SK, Arg("value"), Arg("ttl_in_seconds", optional=True, type=int)])
def cmd_set(ctx, a):
    t = table(ctx)
    hk, sk = ub(a.hash_key), ub(a.sort_key)
    if a.ttl_in_seconds is not None and a.ttl_in_seconds <= 0:
        raise UsageError(f"invalid ttl {a.ttl_in_seconds}: it must be positive")
    req = rrdb.update_request(key=keys.encode_key(hk, sk), value=ub(a.value),
                              expire_ts_seconds=expire_ts(a.ttl_in_seconds or 0))
    resp = t._single("RPC_RRDB_RRDB_PUT", hk, sk, req)
    check_status(resp, "set")
    emit(ctx, "OK\n\n" + footer(resp, decree=True))


def point_read(ctx, a, rpc_name: str, what: str):
    """GET or TTL of the record ``a.hash_key`` / ``a.sort_key``: the response (status OK or
    NOT_FOUND, anything else raises)."""
    hk, sk = ub(a.hash_key), ub(a.sort_key)
    resp = table(ctx)._single(rpc_name, hk, sk, keys.encode_key(hk, sk))
    check_status(resp, what, (ST_OK, ST_NOT_FOUND))
    return resp


@data_command("get", "Read one record", args=[HK, SK])
def cmd_get(ctx, a):
    resp = point_read(ctx, a, "RPC_RRDB_RRDB_GET", "get")
    if resp.error == ST_NOT_FOUND:
        emit(ctx, "Not found\n\n" + footer(resp))
        return 1
    emit(ctx, q(ctx, resp.value) + "\n\n" + footer(resp))


@data_command("del", "Delete one record", args=[HK, SK])
def cmd_del(ctx, a):
    t = table(ctx)
    hk, sk = ub(a.hash_key), ub(a.sort_key)
    resp = t._single("RPC_RRDB_RRDB_REMOVE", hk, sk, keys.encode_key(hk, sk))
    check_status(resp, "del")
    emit(ctx, "OK\n\n" + footer(resp, decree=True))


@data_command("incr", "Add to the integer value of a record (default 1; a missing one "
              "counts as 0)", args=[HK, SK, Arg("increment", optional=True, type=int)])
def cmd_incr(ctx, a):
    t = table(ctx)
    hk, sk = ub(a.hash_key), ub(a.sort_key)
    inc = 1 if a.increment is None else a.increment
    if not -(1 << 63) <= inc < (1 << 63):
        raise UsageError("invalid increment param: it must fit in a signed 64-bit integer")
    resp = t._single("RPC_RRDB_RRDB_INCR", hk, sk, rrdb.incr_request(
        key=keys.encode_key(hk, sk), increment=inc, expire_ts_seconds=0))
    if resp.error == ST_INVALID_ARGUMENT:
        raise ShellError(f"incr failed: {status_name(resp.error)}: the stored value is not an "
                         f"integer or the sum overflows {where(resp)}")
    check_status(resp, "incr")
    emit(ctx, f"{resp.new_value}\n\n" + footer(resp, decree=True))


@data_command("exist", "Whether a record exists (True/False; exit status 1 for False)",
              args=[HK, SK])
def cmd_exist(ctx, a):
    resp = point_read(ctx, a, "RPC_RRDB_RRDB_TTL", "exist")
    found = resp.error == ST_OK
    emit(ctx, ("True" if found else "False") + "\n\n" + footer(resp))
    return 0 if found else 1


@data_command("ttl", "Remaining time to live of a record in seconds (Infinite: none)",
              args=[HK, SK])
def cmd_ttl(ctx, a):
    resp = point_read(ctx, a, "RPC_RRDB_RRDB_TTL", "ttl")
    if resp.error == ST_NOT_FOUND:
        emit(ctx, "Not found\n\n" + footer(resp))
        return 1
    text = "Infinite" if resp.ttl_seconds == -1 else str(resp.ttl_seconds)
    emit(ctx, text + "\n\n" + footer(resp))


@command("hash", "data", "The key hash of a record; with a table in use also its partition "
         "and the partition's primary and secondaries", args=[HK, SK])
def cmd_hash(ctx, a):
    hk, sk = ub(a.hash_key), ub(a.sort_key)
    try:
        key_hash = keys.key_hash(keys.encode_key(hk, sk))
    except keys.InvalidKey as e:
        raise UsageError(str(e)) from None
    r = Report()
    s = r.kv("")
    s.add("key_hash", key_hash)
    if ctx.current_table:
        cfg = ctx.query_config(ctx.current_table)
        pidx = key_hash % cfg.partition_count
        s.add("app_name", ctx.current_table).add("app_id", cfg.app_id)
        s.add("partition_count", cfg.partition_count).add("partition_index", pidx)
        if pidx < len(cfg.partitions):
            pc = cfg.partitions[pidx]
            s.add("primary", str(pc.primary) if pc.primary is not None else "-")
            s.add("secondaries", ",".join(str(x) for x in pc.secondaries or []))
    emit(ctx, r.text())


# --------------------------------------------------------------------------- one hash key


@data_command("multi_set", "Write several records of one hash key atomically",
              args=[HK, SK, Arg("value"), Arg("sort_key_values", many=True,
                                              help="further sort_key value pairs")])
def cmd_multi_set(ctx, a):
    t = table(ctx)
    hk = need_hash_key(ub(a.hash_key))
    words = [a.sort_key, a.value] + list(a.sort_key_values)
    if len(words) % 2:
        raise UsageError("sort keys and values must come in pairs")
    kvs = {}
    for i in range(0, len(words), 2):
        sk = ub(words[i])
        if sk in kvs:
            raise UsageError(f"duplicate sort key {quoted(sk)}")
        kvs[sk] = ub(words[i + 1])
    req = rrdb.multi_put_request(hash_key=hk, expire_ts_seconds=0, kvs=[
        rrdb.key_value(key=sk, value=v) for sk, v in sorted(kvs.items())])
    resp = hash_call(t, "RPC_RRDB_RRDB_MULTI_PUT", hk, req)
    check_status(resp, "multi_set")
    emit(ctx, "OK\n\n" + footer(resp, decree=True))


def multi_get_request(hk: bytes, sort_keys=(), max_count: int = -1, no_value: bool = False,
                      start: bytes = b"", stop: bytes = b"", start_inclusive: bool = True,
                      stop_inclusive: bool = False, filter_type: int = 0,
                      pattern: bytes = b"", reverse: bool = False):
    return rrdb.multi_get_request(
        hash_key=hk, sort_keys=list(sort_keys), max_kv_count=max_count, max_kv_size=-1,
        no_value=no_value, start_sortkey=start, stop_sortkey=stop,
        start_inclusive=start_inclusive, stop_inclusive=stop_inclusive,
        sort_key_filter_type=filter_type, sort_key_filter_pattern=pattern, reverse=reverse)


def fetched(resp) -> str:
    return "not completed" if resp.error == ST_INCOMPLETE else "completed"


def record_line(ctx, hk: bytes, kv, no_value: bool = False) -> str:
    line = f"{q(ctx, hk)} : {q(ctx, kv.key)}"
    return line if no_value else f"{line} => {q(ctx, kv.value)}"


@data_command("multi_get", "Read records of one hash key (no sort key: all of them)",
              args=[HK, Arg("sort_keys", many=True)])
def cmd_multi_get(ctx, a):
    t = table(ctx)
    hk = need_hash_key(ub(a.hash_key))
    sks = sorted({ub(s) for s in a.sort_keys})
    resp = hash_call(t, "RPC_RRDB_RRDB_MULTI_GET", hk, multi_get_request(hk, sks))
    check_status(resp, "multi_get", (ST_OK, ST_INCOMPLETE))
    kvs = sorted(resp.kvs or [], key=lambda kv: kv.key)
    out = [record_line(ctx, hk, kv) for kv in kvs]
    out.append(f"\n{len(kvs)} key-value pairs got, fetch {fetched(resp)}.\n")
    emit(ctx, "\n".join(out) + "\n" + footer(resp))


@data_command("multi_get_range", "Read the records of one hash key whose sort keys lie in a "
              "range (empty stop: to the end)",
              args=[HK, Arg("start_sort_key"), Arg("stop_sort_key")],
              opts=[*RANGE_OPTS,
                    Opt("-n", "--max_count", type=int, default=-1, metavar="num",
                        help="at most this many records (default: the server's limit)"),
                    Opt("-i", "--no_value", flag=True, help="sort keys only"),
                    Opt("-r", "--reverse", flag=True,
                        help="walk from the stop key down (with -n: the last records)")])
def cmd_multi_get_range(ctx, a):
    t = table(ctx)
    hk = need_hash_key(ub(a.hash_key))
    echo(ctx, *range_echo(a, hk), ("max_count", a.max_count), ("no_value", a.no_value),
         ("reverse", a.reverse))
    req = multi_get_request(
        hk, max_count=a.max_count, no_value=a.no_value, start=ub(a.start_sort_key),
        stop=ub(a.stop_sort_key), start_inclusive=a.start_inclusive,
        stop_inclusive=a.stop_inclusive,
        filter_type=FILTER_TYPES.get(a.sort_key_filter_type, 0),
        pattern=ub(a.sort_key_filter_pattern), reverse=a.reverse)
    resp = hash_call(t, "RPC_RRDB_RRDB_MULTI_GET", hk, req)
    check_status(resp, "multi_get_range", (ST_OK, ST_INCOMPLETE))
    kvs = sorted(resp.kvs or [], key=lambda kv: kv.key)
    out = [record_line(ctx, hk, kv, a.no_value) + "\n" for kv in kvs]
    if kvs:
        out.append("\n")
    out.append(f"{len(kvs)} key-value pairs got, fetch {fetched(resp)}.\n\n")
    emit(ctx, "".join(out) + footer(resp))


@data_command("multi_get_sortkeys", "List the sort keys of one hash key", args=[HK])
def cmd_multi_get_sortkeys(ctx, a):
    t = table(ctx)
    hk = need_hash_key(ub(a.hash_key))
    resp = hash_call(t, "RPC_RRDB_RRDB_MULTI_GET", hk, multi_get_request(hk, no_value=True))
    check_status(resp, "multi_get_sortkeys", (ST_OK, ST_INCOMPLETE))
    sks = sorted(kv.key for kv in resp.kvs or [])
    out = [q(ctx, sk) + "\n" for sk in sks]
    out.append(f"\n{len(sks)} sort keys got, fetch {fetched(resp)}.\n\n")
    emit(ctx, "".join(out) + footer(resp))


@data_command("multi_del", "Delete several records of one hash key atomically",
              args=[HK, SK, Arg("sort_keys", many=True, help="further sort keys")])
def cmd_multi_del(ctx, a):
    t = table(ctx)
    hk = need_hash_key(ub(a.hash_key))
    sks = sorted({ub(s) for s in [a.sort_key, *a.sort_keys]})
    resp = hash_call(t, "RPC_RRDB_RRDB_MULTI_REMOVE", hk,
                     rrdb.multi_remove_request(hash_key=hk, sort_keys=sks, max_count=0))
    check_status(resp, "multi_del", (ST_OK, ST_INCOMPLETE))
    tail = ", but not completed" if resp.error == ST_INCOMPLETE else ""
    emit(ctx, f"{resp.count} key-value pairs deleted{tail}.\n\n" + footer(resp, decree=True))


@data_command("count", "Count the records of one hash key", args=[HK])
def cmd_count(ctx, a):
    t = table(ctx)
    hk = need_hash_key(ub(a.hash_key))
    resp = hash_call(t, "RPC_RRDB_RRDB_SORTKEY_COUNT", hk, hk)
    check_status(resp, "count")
    if resp.count == -1:
        raise ShellError(f"it takes too long to count sortkey {where(resp)}")
    emit(ctx, f"{resp.count}\n\n" + footer(resp))


# --------------------------------------------------------------------------- check and write

CHECK_OPTS = (
    Opt("-c", "--check_sort_key", help="the record whose value is checked"),
    Opt("-t", "--check_type", choices=tuple(CHECK_TYPES), help="how it is checked"),
    Opt("-o", "--check_operand", help="operand of the match/compare check types"))
RETURN_CHECK = Opt("-r", "--return_check_value", flag=True,
                   help="also show the checked record's value")


def check_args(a) -> Tuple[bytes, int, bytes]:
    if a.check_sort_key is None:
        raise UsageError("check_sort_key not provided")
    if a.check_type is None:
        raise UsageError("check_type not provided")
    ctype = CHECK_TYPES[a.check_type]
    if a.check_operand is None and ctype >= CHECK_OPERAND_FROM:
        raise UsageError("check_operand not provided")
    return ub(a.check_sort_key), ctype, ub(a.check_operand or "")


def check_echo(hk: bytes, csk: bytes, a, ctype: int, operand: bytes) -> list:
    pairs = [("hash_key", hk), ("check_sort_key", csk), ("check_type", a.check_type)]
    if ctype >= CHECK_OPERAND_FROM:
        pairs.append(("check_operand", operand))
    return pairs


def check_result(ctx, resp, what: str, cmd: str) -> int:
    """Upstream's "<What> succeed." / "... failed, because check not passed." (+ the check
    value with -r); status 13 is the negative answer, 4 an integer check on a non-integer."""
    if resp.error == ST_INVALID_ARGUMENT:
        raise ShellError(f"{cmd} failed: {status_name(resp.error)}: an integer check "
                         f"on a value or operand that is not an integer {where(resp)}")
    check_status(resp, cmd, (ST_OK, ST_TRY_AGAIN))
    ok = resp.error == ST_OK
    out = [f"{what} succeed.\n" if ok else f"{what} failed, because check not passed.\n"]
    if resp.check_value_returned:
        out.append(f"\nCheck value: {q(ctx, resp.check_value)}\n" if resp.check_value_exist
                   else "\nCheck value not exist.\n")
    emit(ctx, "".join(out) + "\n" + footer(resp, decree=True))
    return 0 if ok else 1


@data_command("check_and_set", "Write a record if a check on a record of the same hash key "
              "passes (atomic; exit status 1 when the check does not pass)",
              args=[HK], opts=[*CHECK_OPTS,
                               Opt("-s", "--set_sort_key", help="the record to write"),
                               Opt("-v", "--set_value", help="the value to write"),
                               Opt("-l", "--set_value_ttl_seconds", type=int, default=0,
                                   metavar="num", help="TTL of the written record"),
                               RETURN_CHECK])
def cmd_check_and_set(ctx, a):
    t = table(ctx)
    hk = need_hash_key(ub(a.hash_key))
    csk, ctype, operand = check_args(a)
    if a.set_sort_key is None:
        raise UsageError("set_sort_key not provided")
    if a.set_value is None:
        raise UsageError("set_value not provided")
    if a.set_value_ttl_seconds < 0:
        raise UsageError("invalid set_value_ttl_seconds param: it must not be negative")
    ssk, value = ub(a.set_sort_key), ub(a.set_value)
    echo(ctx, *check_echo(hk, csk, a, ctype, operand), ("set_sort_key", ssk),
         ("set_value", value), ("set_value_ttl_seconds", a.set_value_ttl_seconds),
         ("return_check_value", a.return_check_value))
    req = rrdb.check_and_set_request(
        hash_key=hk, check_sort_key=csk, check_type=ctype, check_operand=operand,
        set_diff_sort_key=ssk != csk, set_sort_key=ssk, set_value=value,
        set_expire_ts_seconds=expire_ts(a.set_value_ttl_seconds),
        return_check_value=a.return_check_value)
    return check_result(ctx, hash_call(t, "RPC_RRDB_RRDB_CHECK_AND_SET", hk, req), "Set",
                        "check_and_set")


MUTATION_HELP = ('"put <sort_key> <value> [ttl]" or "del <sort_key>" (set = put); repeat for '
                 'several; without -m they are read from standard input, "ok" ends the list')


def parse_mutation(text: str):
    """``put|set <sort_key> <value> [ttl]`` / ``del <sort_key>`` -> an ``rrdb.mutate``."""
    try:
        words = shlex.split(text)
    except ValueError as e:
        raise UsageError(f"invalid mutation {text!r}: {e}") from None
    op = words[0].lower() if words else ""
    if op in ("put", "set") and len(words) in (3, 4):
        ttl = 0
        if len(words) == 4:
            try:
                ttl = int(words[3])
            except ValueError:
                raise UsageError(f"invalid mutation {text!r}: bad ttl {words[3]!r}") from None
            if ttl <= 0:
                raise UsageError(f"invalid mutation {text!r}: ttl must be positive")
        return rrdb.mutate(operation=rrdb.mutate_operation.MO_PUT, sort_key=ub(words[1]),
                           value=ub(words[2]), set_expire_ts_seconds=expire_ts(ttl))
    if op == "del" and len(words) == 2:
        return rrdb.mutate(operation=rrdb.mutate_operation.MO_DELETE, sort_key=ub(words[1]),
                           set_expire_ts_seconds=0)
    raise UsageError(f"invalid mutation {text!r}: expected \"put <sort_key> <value> [ttl]\" "
                     f"or \"del <sort_key>\"")


def read_mutations(ctx) -> Optional[List]:
    """Upstream's interactive loading from standard input; None when aborted."""
    tty = sys.stdin.isatty()
    ctx.err.write('Load mutations, like\n  set <sort_key> <value> [ttl]\n  del <sort_key>\n'
                  'Print "ok" to finish loading, "abort" to abort this command\n')
    ctx.err.flush()
    muts = []
    while True:
        if tty:
            try:
                line = input()
            except EOFError:
                line = None
        else:
            line = sys.stdin.readline() or None
        if line is None:
            raise ShellError('standard input ended before "ok": mutations not loaded')
        line = line.strip()
        if line == "abort":
            ctx.err.write("INFO: abort loading\n")
            return None
        if line == "ok":
            ctx.err.write("INFO: load mutations done.\n\n")
            return muts
        if not line:
            continue
        try:
            m = parse_mutation(line)
        except UsageError as e:
            ctx.err.write(f'ERROR: {e}, print "ok" to finish loading, print "abort" to '
                          f'abort this command\n')
            continue
        if m.operation == rrdb.mutate_operation.MO_PUT:
            ctx.err.write(f"LOAD: set sortkey {q(ctx, m.sort_key)}, value {q(ctx, m.value)}\n")
        else:
            ctx.err.write(f"LOAD: del sortkey {q(ctx, m.sort_key)}\n")
        muts.append(m)


@data_command("check_and_mutate", "Apply several writes to one hash key if a check passes "
              "(atomic; exit status 1 when the check does not pass)",
              args=[HK], opts=[*CHECK_OPTS, RETURN_CHECK,
                               Opt("-m", "--mutation", metavar="mutation", repeat=True,
                                   help=MUTATION_HELP)])
def cmd_check_and_mutate(ctx, a):
    t = table(ctx)
    hk = need_hash_key(ub(a.hash_key))
    csk, ctype, operand = check_args(a)
    if a.mutation:
        muts = [parse_mutation(m) for m in a.mutation]
    else:
        muts = read_mutations(ctx)
        if muts is None:
            ctx.err.write("INFO: abort check_and_mutate command\n")
            return 1
    if not muts:
        raise UsageError("mutations not provided")
    pairs = check_echo(hk, csk, a, ctype, operand)
    pairs += [("return_check_value", a.return_check_value), ("mutations", None)]
    for i, m in enumerate(muts):
        if m.operation == rrdb.mutate_operation.MO_PUT:
            pairs += [(f"  mutation[{i}].type", "SET"), (f"  mutation[{i}].sort_key", m.sort_key),
                      (f"  mutation[{i}].value", m.value),
                      (f"  mutation[{i}].expire_seconds", m.set_expire_ts_seconds)]
        else:
            pairs += [(f"  mutation[{i}].type", "DEL"), (f"  mutation[{i}].sort_key", m.sort_key)]
    echo(ctx, *pairs)
    req = rrdb.check_and_mutate_request(hash_key=hk, check_sort_key=csk, check_type=ctype,
                                        check_operand=operand, mutate_list=muts,
                                        return_check_value=a.return_check_value)
    return check_result(ctx, hash_call(t, "RPC_RRDB_RRDB_CHECK_AND_MUTATE", hk, req),
                        "Mutate", "check_and_mutate")


