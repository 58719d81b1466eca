"""Table management commands (shell.md §2.1): ls, app, create, drop, recall, rename,
get/set_replica_count, get/enable/disable_atomic_idempotent; and the env commands
get/set/del/clear_app_envs (on the table chosen with ``use``).

Messages follow upstream's shell (``src/shell/commands/table_management.cpp`` and the ddl client
it calls); where upstream prints an error and still exits 0, this shell raises ``ShellError``
(status 1) with the same words. Upstream habits kept on purpose:

* ``ls``'s ``[summary]`` counts *available* tables only (``total_app_count`` with ``-a`` too); with
  ``-d`` it adds the table counters (``fully_healthy_app_count`` — every partition fully healthy —,
  ``unhealthy_app_count``, ``write_unhealthy_app_count``, ``read_unhealthy_app_count``: tables
  with at least one such partition); drop time and expiry are shown for dropped tables only.
* Meta calls answered ``ERR_BUSY_CREATING`` / ``ERR_BUSY_DROPPING`` are tried again (3 attempts,
  10 s apart), as upstream's ddl client does.
* ``create`` and ``recall`` wait until every partition has a primary and at least the replica
  count of members, printing ``<name> not ready yet, still waiting... (ready/total)``; the wait
  polls every half second (upstream every 2 s) and prints at most every 2 s or when the count
  changes; a progress bar shows on a terminal; Ctrl-C stops the wait (not the table's creation).
* ``set_replica_count`` asks for confirmation as upstream does, but only when standard input is a
  terminal; ``-y|--yes`` skips the question; declining exits with status 1.
* Unlike upstream, ``rename`` of the table chosen with ``use`` moves ``use`` to the new name.
"""
from __future__ import annotations

import socket
import sys
import time
from typing import Dict

from pegasus_server import errors
from pegasus_server.rpc import thrift
from pegasus_shell.commands import JSON, OUTPUT, RESOLVE, Arg, Opt, command
from pegasus_shell.context import AS_ALL, AS_AVAILABLE, ShellError, UsageError
from pegasus_shell.output import Progress, Report, emit

STATUS_NAMES = {0: "invalid", 1: "available", 2: "creating", 3: "create_failed",
                4: "dropping", 5: "drop_failed", 6: "dropped", 7: "recalling"}
STATUS_BY_NAME = {"all": AS_ALL, "available": 1, "creating": 2, "dropping": 4, "dropped": 6}
AS_DROPPED = 6
MATCH_TYPES = {"all": 1, "exact": 2, "anywhere": 3, "prefix": 4, "postfix": 5}
APP_ENV_OP_SET, APP_ENV_OP_DEL, APP_ENV_OP_CLEAR = 1, 2, 3

BUSY_ERRORS = (errors.ERR_BUSY_CREATING, errors.ERR_BUSY_DROPPING)
BUSY_ATTEMPTS, BUSY_RETRY_SECONDS = 3, 10.0       # upstream's ddl_client_max_attempt_count ...
WAIT_POLL_SECONDS, WAIT_PRINT_SECONDS = 0.5, 2.0
WAIT_MAX_SECONDS = 3600.0                          # upstream's 1 h
APP_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:")
HINT_RULE = "============================="


def _ma():
    return thrift.meta_admin


def _time(seconds) -> str:
    if not seconds:
        return "-"
    return time.strftime("%Y-%m-%d_%H:%M:%S", time.localtime(seconds))


def _valid_name(name: str) -> bool:
    return bool(name) and all(c in APP_NAME_CHARS for c in name)


def _hint(resp) -> str:
    return getattr(resp, "hint_message", None) or getattr(resp, "hint_msg", None) or ""


def ddl_call(ctx, rpc: str, req):
    """A meta call as upstream's ddl client makes it: busy answers are tried again."""
    for attempt in range(1, BUSY_ATTEMPTS + 1):
        resp = ctx.meta_call(rpc, req)
        if resp.err not in BUSY_ERRORS or attempt == BUSY_ATTEMPTS:
            return resp
        ctx.err.write(f"{rpc}: the meta server answered {resp.err}, trying again in "
                      f"{BUSY_RETRY_SECONDS:.0f} s ({attempt}/{BUSY_ATTEMPTS})\n")
        ctx.err.flush()
        time.sleep(BUSY_RETRY_SECONDS)
    raise AssertionError("unreachable")


class _Addresses:
    """``host:port`` of a node, or ``hostname:port`` with ``-r|--resolve_ip`` (cached)."""

    def __init__(self, resolve: bool):
        self.resolve = resolve
        self._names: Dict[str, str] = {}

    def __call__(self, addr) -> str:
        if addr is None or addr.is_invalid:
            return "-"
        if not self.resolve:
            return str(addr)
        host = self._names.get(addr.host)
        if host is None:
            try:
                host = socket.gethostbyaddr(addr.host)[0]
            except OSError:
                host = addr.host
            self._names[addr.host] = host
        return f"{host}:{addr.port}"


def _primary(pc):
    return None if pc.primary is None or pc.primary.is_invalid else pc.primary


def _members(pc) -> int:
    return (1 if _primary(pc) else 0) + len(pc.secondaries or [])


# ---------------------------------------------------------------------------------- health
def partition_health(pc):
    """(fully healthy, write unhealthy, read unhealthy) of one partition, upstream's rule: a
    primary and max_replica_count members -> fully healthy; a primary but fewer than 2 members
    -> write unhealthy; no primary -> read and write unhealthy."""
    if _primary(pc) is None:
        return False, True, True
    fully = _members(pc) >= pc.max_replica_count
    return fully, not fully and _members(pc) < 2, False


def health_counts(cfg):
    """(fully healthy, unhealthy, write unhealthy, read unhealthy) partitions of a
    query_cfg_response."""
    fully = write_bad = read_bad = 0
    for pc in cfg.partitions:
        f, w, r = partition_health(pc)
        fully += f
        write_bad += w
        read_bad += r
    return fully, len(cfg.partitions) - fully, write_bad, read_bad


def check_err(resp, what):
    if resp.err != errors.ERR_OK:
        hint = _hint(resp)
        raise ShellError(f"{what} failed, error = {resp.err}" + (f", {hint}" if hint else ""))


# ---------------------------------------------------------------------------------- ls / app
@command("ls", "table", "List tables (available ones unless -a or -s)", opts=[
    Opt("-a", "--all", flag=True, help="all tables, dropped ones too"),
    Opt("-d", "--detailed", flag=True, help="also the health of every available table"),
    JSON, OUTPUT,
    Opt("-s", "--status", choices=tuple(STATUS_BY_NAME), help="only tables in this status"),
    Opt("-p", "--app_name_pattern", help="only tables whose name matches (see -m)"),
    Opt("-m", "--match_type", choices=tuple(MATCH_TYPES), default="prefix",
        help="how -p matches (default prefix)")])
def cmd_ls(ctx, a):
    status = STATUS_BY_NAME[a.status] if a.status else (AS_ALL if a.all else AS_AVAILABLE)
    pattern = a.app_name_pattern
    infos = sorted(ctx.list_apps(status, pattern, MATCH_TYPES[a.match_type] if pattern else None),
                   key=lambda i: i.app_id)
    r = Report()
    t = r.table("general_info", ["app_id", "status", "app_name", "app_type", "partition_count",
                                 "replica_count", "is_stateful", "create_time", "drop_time",
                                 "drop_expire", "envs_count", "atomic_idempotent"])
    available = [i for i in infos if i.status == AS_AVAILABLE]
    for i in infos:
        dropped = i.status == AS_DROPPED and i.expire_second
        t.add(i.app_id, STATUS_NAMES.get(i.status, i.status), i.app_name, i.app_type,
              i.partition_count, i.max_replica_count, bool(i.is_stateful),
              _time(i.create_second), _time(i.drop_second) if dropped else "-",
              _time(i.expire_second) if dropped else "-",
              len(i.envs or {}), bool(i.atomic_idempotent))
    counts = None
    if a.detailed and available:
        h = r.table("healthy_info", ["app_id", "app_name", "partition_count", "fully_healthy",
                                     "unhealthy", "write_unhealthy", "read_unhealthy"])
        counts = dict.fromkeys(("fully_healthy_app_count", "unhealthy_app_count",
                                "write_unhealthy_app_count", "read_unhealthy_app_count"), 0)
        for i in available:
            fully, unhealthy, write_bad, read_bad = health_counts(ctx.query_config(i.app_name))
            h.add(i.app_id, i.app_name, i.partition_count, fully, unhealthy, write_bad, read_bad)
            counts["unhealthy_app_count" if unhealthy else "fully_healthy_app_count"] += 1
            counts["write_unhealthy_app_count"] += write_bad > 0
            counts["read_unhealthy_app_count"] += read_bad > 0
    summary = r.kv("summary")
    summary.add("total_app_count", len(available))
    for k, v in (counts or {}).items():
        summary.add(k, v)
    emit(ctx, r.render(a.json), a.output)


def _query_cfg(ctx, app_name: str, what: str):
    """The partition configs of a table (sorted by index); a clear error when it is missing."""
    resp = ctx.meta_call("RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX",
                         thrift.layer2.query_cfg_request(app_name=app_name, partition_indices=[]))
    if resp.err == errors.ERR_OBJECT_NOT_FOUND:
        raise ShellError(f"{what} failed, error = {resp.err} (table {app_name} does not exist)")
    check_err(resp, what)
    resp.partitions = sorted(resp.partitions or [], key=lambda p: p.pid.partition_index)
    return resp


@command("app", "table", "Show a table's partitions: -d adds every partition's replicas, the "
         "replica count of every node and the health counts",
         args=[Arg("app_name", completes="table")],
         opts=[Opt("-d", "--detailed", flag=True, help="replicas, nodes and health"),
               RESOLVE, OUTPUT, JSON])
def cmd_app(ctx, a):
    cfg = _query_cfg(ctx, a.app_name, f"query app {a.app_name}")
    r = Report()
    app_parameters(r, a)
    general = r.kv("general")
    general.add("app_name", a.app_name)
    general.add("app_id", cfg.app_id)
    general.add("partition_count", cfg.partition_count)
    general.add("max_replica_count", cfg.partitions[0].max_replica_count if cfg.partitions else 0)
    if a.detailed:
        _app_details(r, cfg, _Addresses(a.resolve_ip))
    emit(ctx, r.render(a.json), a.output)


def _app_details(r: Report, cfg, addr: _Addresses) -> None:
    replicas = r.table("replicas", ["pidx", "ballot", "replica_count", "primary", "secondaries"])
    per_node: Dict[str, list] = {}
    for pc in cfg.partitions:
        primary = _primary(pc)
        secondaries = list(pc.secondaries or [])
        replicas.add(pc.pid.partition_index, pc.ballot, f"{_members(pc)}/{pc.max_replica_count}",
                     addr(primary), "[" + ",".join(addr(s) for s in secondaries) + "]")
        if primary is not None:
            per_node.setdefault(str(primary), [primary, 0, 0])[1] += 1
        for s in secondaries:
            per_node.setdefault(str(s), [s, 0, 0])[2] += 1
    nodes = r.table("nodes", ["node", "primary", "secondary", "total"])
    total_p = total_s = 0
    for node, p, s in sorted(per_node.values(), key=lambda v: (v[0].host, v[0].port)):
        nodes.add(addr(node), p, s, p + s)
        total_p, total_s = total_p + p, total_s + s
    nodes.add("", total_p, total_s, total_p + total_s)
    fully, unhealthy, write_bad, read_bad = health_counts(cfg)
    healthy = r.kv("healthy")
    healthy.add("fully_healthy_partition_count", fully)
    healthy.add("unhealthy_partition_count", cfg.partition_count - fully)
    healthy.add("write_unhealthy_partition_count", write_bad)
    healthy.add("read_unhealthy_partition_count", read_bad)


# ---------------------------------------------------------------------------------- lifecycle
def _parse_envs(text: str) -> Dict[str, str]:
    """``k1=v1,k2=v2`` as upstream's ``parse_kv_map(text, ',', '=')``."""
    envs = {}
    for item in text.split(","):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"invalid envs: {text}")
        envs[key.strip()] = value.strip()
    return envs


def wait_app_ready(ctx, app_name: str, partition_count: int, replica_count: int) -> None:
    """Poll the table's partition configs until every partition has a primary and at least
    ``replica_count`` members (upstream's ``wait_app_ready``)."""
    req = thrift.layer2.query_cfg_request(app_name=app_name, partition_indices=[])
    deadline = time.monotonic() + WAIT_MAX_SECONDS
    last_print, last_ready = None, None
    with Progress(f"waiting for {app_name}", partition_count, stream=ctx.err) as bar:
        while True:
            resp = ctx.meta_call("RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX", req)
            if resp.err in BUSY_ERRORS:
                ready = 0
            elif resp.err != errors.ERR_OK:
                raise ShellError(f"wait for app {app_name} failed: [query] received server "
                                 f"error: {resp.err}")
            else:
                ready = sum(1 for pc in resp.partitions or []
                            if _primary(pc) and _members(pc) >= replica_count)
                partition_count = resp.partition_count
            bar.update(ready - bar.done, total=partition_count)
            if resp.err == errors.ERR_OK and ready == partition_count:
                ctx.out.write(f"{app_name} is ready now: ({ready}/{partition_count})\n")
                ctx.out.flush()
                return
            now = time.monotonic()
            if last_print is None or ready != last_ready or now - last_print >= WAIT_PRINT_SECONDS:
                ctx.out.write(f"{app_name} not ready yet, still waiting... "
                              f"({ready}/{partition_count})\n")
                ctx.out.flush()
                last_print, last_ready = now, ready
            if now >= deadline:
                raise ShellError(f"{app_name} is still not ready after {WAIT_MAX_SECONDS:.0f} s "
                                 f"({ready}/{partition_count} partitions ready)")
            time.sleep(WAIT_POLL_SECONDS)


@command("create", "table", "Create a table and wait until every partition is served",
         args=[Arg("app_name")],
         opts=[Opt("-p", "--partition_count", type=int, default=4, metavar="num",
                   help="number of partitions (default 4; use a power of two)"),
               Opt("-r", "--replica_count", type=int, default=3, metavar="num",
                   help="replicas of every partition (default 3)"),
               Opt("-f", "--fail_if_exist", flag=True,
                   help="fail when the table exists (default: succeed if it is the same)"),
               Opt("-i", "--atomic_idempotent", flag=True,
                   help="make atomic writes (incr, check_and_set...) idempotent"),
               Opt("-e", "--envs", metavar="k1=v1,k2=v2...", help="table envs")])
def cmd_create(ctx, a):
    name = a.app_name
    envs = _parse_envs(a.envs) if a.envs else {}
    failed = f'create app "{name}" failed'
    if a.partition_count < 1:
        raise ShellError(f"{failed}: partition_count should >= 1")
    if a.replica_count < 1:
        raise ShellError(f"{failed}: replica_count should >= 1")
    if not _valid_name(name):
        raise ShellError(f"{failed}, error = {errors.ERR_INVALID_PARAMETERS}: invalid app_name: "
                         f"'{name}' (only 0-9a-zA-Z.:_ are valid)")
    ma = _ma()
    opts = ma.create_app_options(partition_count=a.partition_count,
                                 replica_count=a.replica_count, success_if_exist=not a.fail_if_exist,
                                 app_type="pegasus", is_stateful=True, envs=envs,
                                 atomic_idempotent=bool(a.atomic_idempotent))
    resp = ddl_call(ctx, "RPC_CM_CREATE_APP",
                    ma.configuration_create_app_request(app_name=name, options=opts))
    if resp.err != errors.ERR_OK:
        raise ShellError(f"{failed}, error = {resp.err}")
    emit(ctx, f"create app {name} succeed, waiting for app ready\n")
    wait_app_ready(ctx, name, a.partition_count, a.replica_count)
    emit(ctx, f"{name} is ready now!\ncreate app \"{name}\" succeed\n")


@command("drop", "table", "Drop a table (it can be recalled until the reserve time passes)",
         args=[Arg("app_name", completes="table")],
         opts=[Opt("-r", "--reserve_seconds", type=int, default=0, metavar="num",
                   help="how long the dropped table can be recalled (0: the server's default, "
                        "7 days)")])
def cmd_drop(ctx, a):
    if not _valid_name(a.app_name):
        raise ShellError(f"drop app {a.app_name} failed, error={errors.ERR_INVALID_PARAMETERS}: "
                         f"invalid app_name (only 0-9a-zA-Z.:_ are valid)")
    emit(ctx, f"reserve_seconds = {a.reserve_seconds}\n")
    ma = _ma()
    resp = ddl_call(ctx, "RPC_CM_DROP_APP", ma.configuration_drop_app_request(
        app_name=a.app_name, options=ma.drop_app_options(success_if_not_exist=True,
                                                         reserve_seconds=a.reserve_seconds)))
    if resp.err != errors.ERR_OK:
        raise ShellError(f"drop app {a.app_name} failed, error={resp.err}")
    emit(ctx, f"drop app {a.app_name} succeed\n")


def _app_id(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"parse {text} as id failed") from None


@command("recall", "table", "Bring back a dropped table by its id (optionally under a new "
         "name) and wait until it is served",
         args=[Arg("app_id", type=_app_id), Arg("new_app_name", optional=True)])
def cmd_recall(ctx, a):
    new_name = a.new_app_name or ""
    if new_name and not _valid_name(new_name):
        raise ShellError(f"recall app {a.app_id} failed, error={errors.ERR_INVALID_PARAMETERS}: "
                         f"invalid new_app_name: '{new_name}' (only 0-9a-zA-Z.:_ are valid)")
    resp = ddl_call(ctx, "RPC_CM_RECALL_APP", _ma().configuration_recall_app_request(
        app_id=a.app_id, new_app_name=new_name))
    if resp.err != errors.ERR_OK:
        raise ShellError(f"recall app {a.app_id} failed, error={resp.err}")
    info = resp.info
    emit(ctx, f"recall app ok, id({info.app_id}), name({info.app_name}), "
              f"partition_count({info.partition_count}), wait it ready\n")
    wait_app_ready(ctx, info.app_name, info.partition_count, info.max_replica_count)
    emit(ctx, f"recall app {a.app_id} succeed\n")


@command("rename", "table", "Rename a table",
         args=[Arg("old_app_name", completes="table"), Arg("new_app_name")])
def cmd_rename(ctx, a):
    resp = ddl_call(ctx, "RPC_CM_RENAME_APP", _ma().configuration_rename_app_request(
        old_app_name=a.old_app_name, new_app_name=a.new_app_name))
    if resp.err != errors.ERR_OK:
        hint = _hint(resp)
        raise ShellError(f"rename app failed, old_app_name({a.old_app_name}), new_app_name("
                         f"{a.new_app_name}), failed: {resp.err}" + (f", {hint}" if hint else ""))
    if ctx.current_table == a.old_app_name:
        ctx.current_table = a.new_app_name
    emit(ctx, f"rename app ok, old_app_name({a.old_app_name}), new_app_name({a.new_app_name})\n")


def app_parameters(r: Report, a) -> None:
    """The ``parameters`` section that ``app`` and ``app_disk`` start with."""
    p = r.kv("parameters")
    p.add("app_name", a.app_name)
    if a.output:
        p.add("out_file", a.output)
    p.add("detailed", bool(a.detailed))


# ---------------------------------------------------------------------------------- replica count
@command("get_replica_count", "table", "Show a table's replica count (max_replica_count)",
         args=[Arg("app_name", completes="table")], opts=[JSON])
def cmd_get_replica_count(ctx, a):
    resp = ctx.meta_call("RPC_CM_GET_MAX_REPLICA_COUNT",
                         _ma().configuration_get_max_replica_count_request(app_name=a.app_name))
    if resp.err != errors.ERR_OK:
        hint = _hint(resp)
        raise ShellError(f"get replica count of app({a.app_name}) failed: {resp.err}"
                         + (f", {hint}" if hint else ""))
    r = Report()
    r.kv("max_replica_count").add("max_replica_count", resp.max_replica_count)
    emit(ctx, r.render(a.json))


def _replica_count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise UsageError(f"parse '{text}' as replica count failed") from None
    if n < 1:
        raise UsageError("replica count should be >= 1")
    return n


def confirm_unsafe(ctx, action: str, yes: bool) -> bool:
    """Upstream's ``confirm_unsafe_command``: asked only when standard input is a terminal
    (``-y`` or a script answers yes)."""
    if yes or not sys.stdin.isatty():
        return True
    for _ in range(5):
        ctx.out.write(f"PLEASE be CAUTIOUS with this operation ! Are you sure to {action} ? "
                      f"[y/n]: ")
        ctx.out.flush()
        try:
            answer = sys.stdin.readline()
        except EOFError:
            answer = ""
        if not answer:
            break
        answer = answer.rstrip("\n")
        if answer == "y":
            emit(ctx, "you've chosen YES, we will continue ...\n")
            return True
        if answer == "n":
            break
    emit(ctx, "you've chosen NO, we will stop !\n")
    return False


@command("set_replica_count", "table", "Change a table's replica count (the meta server then "
         "adds or removes secondaries); asks for confirmation on a terminal",
         args=[Arg("app_name", completes="table"), Arg("replica_count", type=_replica_count)],
         opts=[Opt("-y", "--yes", flag=True, help="do not ask for confirmation")])
def cmd_set_replica_count(ctx, a):
    name, new = a.app_name, a.replica_count
    if not confirm_unsafe(ctx, f"set the replica count of app({name}) to {new}", a.yes):
        return 1
    resp = ddl_call(ctx, "RPC_CM_SET_MAX_REPLICA_COUNT",
                    _ma().configuration_set_max_replica_count_request(app_name=name,
                                                                      max_replica_count=new))
    if resp.err != errors.ERR_OK:
        hint = _hint(resp)
        raise ShellError(f"set replica count of app({name}) failed: {resp.err}"
                         + (f", {hint}" if hint else ""))
    emit(ctx, f"set replica count of app({name}) from {resp.old_max_replica_count} to {new}: "
              f"{_hint(resp) or 'success'}\n")


# ---------------------------------------------------------------------------------- atomic idempotent
@command("get_atomic_idempotent", "table", "Show whether a table's atomic writes are idempotent",
         args=[Arg("app_name", completes="table")], opts=[JSON])
def cmd_get_atomic_idempotent(ctx, a):
    resp = ctx.meta_call("RPC_CM_GET_ATOMIC_IDEMPOTENT",
                         _ma().configuration_get_atomic_idempotent_request(app_name=a.app_name))
    if resp.err != errors.ERR_OK:
        hint = _hint(resp)
        raise ShellError(f"get_atomic_idempotent failed, error={resp.err}"
                         + (f": {hint}" if hint else ""))
    r = Report()
    r.kv("atomic_idempotent").add("atomic_idempotent", bool(resp.atomic_idempotent))
    emit(ctx, r.render(a.json))


def _set_atomic_idempotent(ctx, name: str, value: bool):
    resp = ddl_call(ctx, "RPC_CM_SET_ATOMIC_IDEMPOTENT",
                    _ma().configuration_set_atomic_idempotent_request(app_name=name,
                                                                      atomic_idempotent=value))
    if resp.err != errors.ERR_OK:
        hint = _hint(resp)
        raise ShellError(f"set_atomic_idempotent failed, error={resp.err}"
                         + (f": {hint}" if hint else ""))
    old = "true" if resp.old_atomic_idempotent else "false"
    emit(ctx, f"set_atomic_idempotent from {old} to {'true' if value else 'false'}: "
              f"{_hint(resp) or 'succeed'}\n")


@command("enable_atomic_idempotent", "table", "Make a table's atomic writes idempotent",
         args=[Arg("app_name", completes="table")])
def cmd_enable_atomic_idempotent(ctx, a):
    _set_atomic_idempotent(ctx, a.app_name, True)


@command("disable_atomic_idempotent", "table", "Make a table's atomic writes non-idempotent",
         args=[Arg("app_name", completes="table")])
def cmd_disable_atomic_idempotent(ctx, a):
    _set_atomic_idempotent(ctx, a.app_name, False)


# ---------------------------------------------------------------------------------- envs
def _current(ctx) -> str:
    if not ctx.current_table:
        raise ShellError("No app is using now: use <app_name> first")
    return ctx.current_table


def _update_envs(ctx, what: str, **fields) -> str:
    """RPC_CM_UPDATE_APP_ENV on the current table; the hint of a success."""
    name = _current(ctx)
    resp = ctx.meta_call("RPC_CM_UPDATE_APP_ENV", _ma().configuration_update_app_env_request(
        app_name=name, **fields))
    if resp.err != errors.ERR_OK:
        hint = _hint(resp)
        raise ShellError(f"{what} failed with err = {resp.err}" + (f' [hint:"{hint}"]' if hint
                                                                     else ""))
    return _hint(resp)


def _with_hint(text: str, hint: str) -> str:
    return text + (f"{HINT_RULE}\n{hint}\n{HINT_RULE}\n" if hint else "")


@command("get_app_envs", "envs", "Show the envs of the table chosen with use", opts=[JSON])
def cmd_get_app_envs(ctx, a):
    name = _current(ctx)
    info = next((i for i in ctx.list_apps(AS_AVAILABLE, name, MATCH_TYPES["exact"])
                 if i.app_name == name), None)
    if info is None:
        raise ShellError(f"get app env failed with err = {errors.ERR_OBJECT_NOT_FOUND} "
                         f"(table {name} does not exist)")
    r = Report()
    s = r.kv("app_envs")
    for k, v in sorted((info.envs or {}).items()):
        s.add(k, v)
    emit(ctx, r.render(a.json))


@command("set_app_envs", "envs", "Set envs of the table chosen with use",
         args=[Arg("key"), Arg("value"), Arg("more", many=True, metavar="key value")])
def cmd_set_app_envs(ctx, a):
    words = [a.key, a.value] + list(a.more)
    if len(words) % 2:
        raise UsageError(f"need to specify the value for key = {words[-1]}")
    _update_envs(ctx, "set app envs", op=APP_ENV_OP_SET, keys=words[0::2], values=words[1::2])
    emit(ctx, "set app envs succeed\n")


@command("del_app_envs", "envs", "Delete envs of the table chosen with use",
         args=[Arg("key"), Arg("more_keys", many=True, metavar="key")])
def cmd_del_app_envs(ctx, a):
    hint = _update_envs(ctx, "del app env", op=APP_ENV_OP_DEL, keys=[a.key] + list(a.more_keys))
    emit(ctx, _with_hint("del app envs succeed\n", hint))


@command("clear_app_envs", "envs", "Delete all envs (-a) or those under a prefix (-p) of the "
         "table chosen with use",
         opts=[Opt("-a", "--all", flag=True, help="delete every env"),
               Opt("-p", "--prefix", help="delete the envs named <prefix>.*")])
def cmd_clear_app_envs(ctx, a):
    if not a.all and not a.prefix:
        raise UsageError("must specify one of --all and --prefix options")
    hint = _update_envs(ctx, "clear app envs", op=APP_ENV_OP_CLEAR,
                        clear_prefix="" if a.all else a.prefix)
    emit(ctx, _with_hint("clear app envs succeed\n", hint))
