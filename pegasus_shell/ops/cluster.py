"""Cluster, node and server commands (shell.md §2.2): cluster_info, nodes, server_info,
server_stat, remote_command, flush_log, get/set_meta_level, balance, propose, ddd_diagnose
(``app_stat`` and ``app_disk`` are in ``ops/stats.py``, the ``/metrics`` sampling in
``pegasus_shell/metrics.py``).

Statistics come from the servers' ``GET /metrics`` (upstream's JSON, meta.md §8), never from
legacy perf counters: gauges are read once, counters are sampled twice ``-i`` ms apart and
turned into rates with the two samples' ``timestamp_ns`` (or into increases over the
interval). The metric each output column reads is written in a table below; a column whose
metric no queried server reports is shown as ``-`` (JSON ``null``), never as an invented zero.
``app_stat`` and ``app_disk`` count a partition's statistics from its primary only (as upstream),
``nodes -u/-q`` sum every replica of a node.

Remote commands (``RPC_CLI_CLI_CALL``, meta.md §7) go to the nodes in parallel (greenlets of the
RPC client), 5 s each; the answer is upstream's JSON envelope
``{command, details: {node: {role, acked, message}}, succeed_count, failed_count}``; the
status is 1 when a node failed. ``ddd_diagnose -d`` sends its CT_ASSIGN_PRIMARY with
``force=true`` as shell.md and meta.md §4.15 say (upstream's shell sends force=false; this
project's meta queues such a proposal with the balancer's, which carry only move/copy actions,
so it would never apply). ``-r`` is
accepted and shows addresses as they are, as the shell's other commands.

Imports only ``pegasus_server.{base, errors, rpc}`` of the servers' code (the shell works over
the wire).
"""
from __future__ import annotations

import json
import socket
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import gevent

from pegasus_server import errors
from pegasus_server.base import INVALID_ADDRESS, INVALID_HOST_PORT, Gpid, HostPort, RpcAddress
from pegasus_server.errors import RpcError
from pegasus_server.rpc import thrift
from pegasus_shell.commands import JSON, OUTPUT, RESOLVE, Arg, Opt, command
from pegasus_shell.context import AS_AVAILABLE, ShellError, UsageError, check
from pegasus_shell.metrics import (Snapshot, Totals, accumulate, fetch, mb, ok, query,
                                   sample_twice, seconds)
from pegasus_shell.output import Report, emit

DEFAULT_SAMPLE_INTERVAL_MS = 1000
REMOTE_COMMAND_TIMEOUT = 5.0
NODE_TYPES = ("all", "meta-server", "replica-server")
NODE_STATUS = {"all": 0, "alive": 1, "unalive": 2}
STATUS_NAMES = {0: "INVALID", 1: "ALIVE", 2: "UNALIVE"}
META_LEVELS = {"stopped": 100, "blind": 200, "freezed": 300, "steady": 400, "lively": 500}
FL_INVALID = 10000
# remote_command: shell spellings of server commands (upstream's kCmdsMapping)
COMMAND_NAMES = {"server_info": "server-info", "flush_log": "flush-log"}


@command("cluster_info", "cluster", "Show the cluster's meta servers, level and balance",
         opts=[RESOLVE, OUTPUT, JSON])
def cmd_cluster_info(ctx, a):
    resp = ctx.meta_call("RPC_CM_CLUSTER_INFO",
                         thrift.meta_admin.configuration_cluster_info_request())
    check(resp.err, "get cluster info")
    r = Report()
    s = r.kv("cluster_info")
    for k, v in zip(resp.keys, resp.values):
        s.add(k, v)
    emit(ctx, r.render(a.json), a.output)


# ====================================================================== nodes and addresses

def addr_text(addr, hp=None) -> str:
    if addr is not None and not getattr(addr, "is_invalid", True):
        return str(addr)
    if hp is not None and not getattr(hp, "is_invalid", True):
        return str(hp)
    return "-"


def secondaries_of(pc) -> List[str]:
    if pc.secondaries:
        return [str(s) for s in pc.secondaries]
    return [str(h) for h in pc.hp_secondaries or []]


def _last_drops(pc) -> List[str]:
    if pc.last_drops:
        return [str(s) for s in pc.last_drops]
    return [str(h) for h in pc.hp_last_drops or []]


def _addr_key(text: str):
    host, _, port = text.rpartition(":")
    try:
        return (0, tuple(int(x) for x in host.split(".")), int(port))
    except ValueError:
        return (1, host, port)


def _endpoint(text: str, what: str) -> Tuple[RpcAddress, HostPort]:
    """``host:port`` typed by the user -> (rpc_address, host_port); a host name is resolved."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"parse {text} as {what} failed")
    try:
        ip = socket.gethostbyname(host)
        return RpcAddress.parse(f"{ip}:{port}"), HostPort(host, int(port))
    except (OSError, ValueError):
        raise UsageError(f"parse {text} as {what} failed (cannot resolve {host})") from None


def _gpid(text: str, app_only: bool = False) -> Gpid:
    try:
        if app_only and "." not in text:
            return Gpid(int(text), -1)
        g = Gpid.parse(text)
    except ValueError:
        raise UsageError(f"parse {text} as gpid failed") from None
    if g.app_id < 0 or g.partition_index < 0:
        raise UsageError(f"parse {text} as gpid failed")
    return g


def replica_servers(ctx) -> List[str]:
    """Alive replica servers, as upstream's ``fill_nodes(replica-server)``."""
    return sorted((addr_text(n.node, n.hp_node) for n in ctx.nodes(NODE_STATUS["alive"])),
                  key=_addr_key)


def _target_nodes(ctx, a) -> List[Tuple[str, str]]:
    """(role, address) of ``-t all|meta-server|replica-server`` or ``-l host:port,...``."""
    if a.node_type and a.node_list:
        raise UsageError("can not specify both node_type and node_list")
    if a.node_list:
        out = []
        for tok in a.node_list.split(","):
            if tok.strip():
                _endpoint(tok, "host:port")
                out.append(("user-specified", tok.strip()))
        if not out:
            raise UsageError(f"parse '{a.node_list}' as host:port failed")
        return out
    kind = a.node_type or "all"
    out = []
    if kind in ("all", "meta-server"):
        out += [("meta-server", m) for m in ctx.metas]
    if kind in ("all", "replica-server"):
        out += [("replica-server", n) for n in replica_servers(ctx)]
    return out


def sample_interval(a) -> int:
    v = a.sample_interval_ms
    if v is None:
        return DEFAULT_SAMPLE_INTERVAL_MS
    if v <= 0:
        raise UsageError("sample_interval_ms should be > 0")
    return v


NODE_TYPE = Opt("-t", "--node_type", choices=NODE_TYPES, help="which nodes (default all)")
NODE_LIST = Opt("-l", "--node_list", metavar="host:port,...", help="these nodes instead")
INTERVAL = Opt("-i", "--sample_interval_ms", type=int, metavar="num",
               help=f"interval between the two metric samples (default "
                    f"{DEFAULT_SAMPLE_INTERVAL_MS})")


# ====================================================================== nodes

# nodes -u: column -> (metric of the server or replica entities, conversion)
USAGE_COLUMNS = (
    ("memused_res_mb", "resident_mem_usage_mb", lambda v: None if v is None else int(v)),
    ("block_cache_mb", "rdb_block_cache_mem_usage_bytes", mb),
    ("wbm_total_mb", "rdb_wbm_total_mem_usage_bytes", mb),
    ("wbm_mutable_mb", "rdb_wbm_mutable_mem_usage_bytes", mb),
    ("mem_tbl_mb", "rdb_memtable_mem_usage_bytes", mb),
    ("mem_idx_mb", "rdb_index_and_filter_blocks_mem_usage_bytes", mb),
)
DISK_METRICS = ("disk_capacity_total_mb", "disk_capacity_avail_mb")
# nodes -q: column -> (counter of the replica entities, "rate" per second | "increase")
QPS_COLUMNS = (
    ("get_qps", "get_requests", "rate"), ("mget_qps", "multi_get_requests", "rate"),
    ("bget_qps", "batch_get_requests", "rate"), ("read_cu", "read_capacity_units", "increase"),
    ("put_qps", "put_requests", "rate"), ("mput_qps", "multi_put_requests", "rate"),
    ("write_cu", "write_capacity_units", "increase"),
)
# nodes -q: p99 latency of profiler entities (attribute task_name), nanoseconds -> ms
LATENCY_COLUMNS = (
    ("get_p99(ms)", "RPC_RRDB_RRDB_GET"), ("mget_p99(ms)", "RPC_RRDB_RRDB_MULTI_GET"),
    ("bget_p99(ms)", "RPC_RRDB_RRDB_BATCH_GET"), ("put_p99(ms)", "RPC_RRDB_RRDB_PUT"),
    ("mput_p99(ms)", "RPC_RRDB_RRDB_MULTI_PUT"),
)
LATENCY_METRIC = "profiler_server_rpc_latency_ns"


def _usage_of(snap: Snapshot) -> Dict[str, object]:
    t = Totals()
    accumulate(lambda i, at: t, None, snap, 1.0, ("server", "replica"),
                sums=[m for _, m, _ in USAGE_COLUMNS])
    out = {col: conv(t.get(m)) for col, m, conv in USAGE_COLUMNS}
    disks = [(ms.get(DISK_METRICS[0], {}).get("value"), ms.get(DISK_METRICS[1], {}).get("value"))
             for _, ms in snap.by_entity(("disk",)).values()]
    disks = [(float(c), float(v)) for c, v in disks if c is not None and v is not None]
    if disks:
        cap = sum(c for c, _ in disks)
        avail = sum(v for _, v in disks)
        out["disk_avl_total_ratio"] = int(avail * 100 / cap) if cap else 0
        out["disk_avl_min_ratio"] = min(int(v * 100 / c) if c else 0 for c, v in disks)
    else:
        out["disk_avl_total_ratio"] = out["disk_avl_min_ratio"] = None
    return out


def _qps_of(start: Snapshot, end: Snapshot, interval_ms: int) -> Dict[str, object]:
    t = Totals()
    accumulate(lambda i, at: t, start, end, seconds(start, end, interval_ms), ("replica",),
                rates=[m for _, m, k in QPS_COLUMNS if k == "rate"],
                increases=[m for _, m, k in QPS_COLUMNS if k == "increase"])
    return {col: t.get(m) for col, m, _ in QPS_COLUMNS}


def _latency_of(snap: Snapshot) -> Dict[str, object]:
    out = {col: None for col, _ in LATENCY_COLUMNS}
    by_task = {task: col for col, task in LATENCY_COLUMNS}
    for attrs, metrics in snap.by_entity(("profiler",)).values():
        col = by_task.get(attrs.get("task_name"))
        m = metrics.get(LATENCY_METRIC)
        if col and m is not None and m.get("p99") is not None:
            out[col] = float(m["p99"]) / 1e6
    return out


@command("nodes", "cluster", "List the replica servers, their replicas, resource usage and QPS",
         opts=[Opt("-d", "--detailed", flag=True,
                   help="replica/primary/secondary counts from the partition configs"),
               JSON, RESOLVE,
               Opt("-u", "--resource_usage", flag=True, help="memory and disk usage"),
               OUTPUT,
               Opt("-s", "--status", choices=tuple(NODE_STATUS), help="only nodes in this state"),
               Opt("-q", "--qps", flag=True, help="request rates and p99 latencies"),
               INTERVAL])
def cmd_nodes(ctx, a):
    interval = sample_interval(a)
    infos = ctx.nodes(NODE_STATUS[a.status] if a.status else 0)
    rows = {addr_text(n.node, n.hp_node): {"status": STATUS_NAMES.get(n.status, n.status)}
            for n in infos}
    if a.detailed:
        counts = {addr: [0, 0] for addr in rows}
        for app in ctx.list_apps(AS_AVAILABLE):
            for pc in ctx.query_config(app.app_name).partitions:
                p = addr_text(pc.primary, pc.hp_primary)
                if p in counts:
                    counts[p][0] += 1
                for s in secondaries_of(pc):
                    if s in counts:
                        counts[s][1] += 1
        for addr, (prim, sec) in counts.items():
            rows[addr].update(replica_count=prim + sec, primary_count=prim, secondary_count=sec)
    servers = replica_servers(ctx) if (a.resource_usage or a.qps) else []
    servers = [s for s in servers if s in rows]
    if a.resource_usage:
        path = query(("server", "replica", "disk"),
                      [m for _, m, _ in USAGE_COLUMNS] + list(DISK_METRICS))
        for addr, snap in zip(servers, fetch(ctx, servers, path)):
            rows[addr].update(_usage_of(ok(snap, addr, "resource usage")))
    if a.qps:
        path = query(("replica",), [m for _, m, _ in QPS_COLUMNS])
        first, second = sample_twice(ctx, servers, path, interval)
        for addr, s1, s2 in zip(servers, first, second):
            rows[addr].update(_qps_of(ok(s1, addr, "starting rw requests"),
                                      ok(s2, addr, "ending rw requests"), interval))
        # every field of the latency histograms: a server without p99 fields still answers
        path = query(("profiler",), [LATENCY_METRIC], fields=None)
        for addr, snap in zip(servers, fetch(ctx, servers, path)):
            rows[addr].update(_latency_of(ok(snap, addr, "profiler latency")))

    columns = ["address", "status"]
    if a.detailed:
        columns += ["replica_count", "primary_count", "secondary_count"]
    if a.resource_usage:
        columns += [c for c, _, _ in USAGE_COLUMNS] + ["disk_avl_total_ratio",
                                                         "disk_avl_min_ratio"]
    if a.qps:
        columns += [c for c, _, _ in QPS_COLUMNS] + [c for c, _ in LATENCY_COLUMNS]
    r = Report()
    if a.status or a.output:
        p = r.kv("parameters")
        if a.status:
            p.add("status", a.status)
        if a.output:
            p.add("out_file", a.output)
    t = r.table("details", columns)
    for addr in sorted(rows, key=_addr_key):
        row = rows[addr]
        t.add(addr, *[shown(row.get(c), a.json) for c in columns[1:]])
    alive = sum(1 for n in infos if n.status == NODE_STATUS["alive"])
    s = r.kv("summary")
    s.add("total_node_count", len(infos))
    s.add("alive_node_count", alive)
    s.add("unalive_node_count", len(infos) - alive)
    emit(ctx, r.render(a.json), a.output)


def shown(v, as_json: bool, precision: int = 2):
    """A cell: ``-`` (JSON null) for a metric no server reported; floats rounded."""
    if v is None:
        return None if as_json else "-"
    if isinstance(v, float):
        return round(v, precision) if as_json else f"{v:.{precision}f}"
    return v


# ====================================================================== remote commands

def _call_remote(ctx, nodes: Sequence[Tuple[str, str]], cmd: str,
                 args: Sequence[str]) -> List[Tuple[bool, str]]:
    """RPC_CLI_CLI_CALL on every node at once; (acked, reply or error) per node."""
    def one(addr):
        try:
            return True, ctx.remote_command(addr, cmd, list(args), timeout=REMOTE_COMMAND_TIMEOUT)
        except RpcError as e:
            return False, str(e)
        except (OSError, ValueError) as e:
            return False, f"{addr}: {e}"
    jobs = [gevent.spawn(one, addr) for _, addr in nodes]
    gevent.joinall(jobs)
    return [j.value if j.successful() else (False, str(j.exception)) for j in jobs]


# server_stat: output field -> metric names of the server entity (upstream's, then ours)
META_SERVER_STATS = (("virt_mem_mb", ("virtual_mem_usage_mb",)),
                     ("res_mem_mb", ("resident_mem_usage_mb",)))
REPLICA_SERVER_STATS = META_SERVER_STATS + (
    ("total_replicas", ("total_replicas", "replicas_count")),
    ("opening_replicas", ("opening_replicas",)),
    ("closing_replicas", ("closing_replicas",)),
    ("inactive_replicas", ("inactive_replicas", "replicas_inactive_count")),
    ("error_replicas", ("error_replicas",)),
    ("primary_replicas", ("primary_replicas", "replicas_primary_count")),
    ("secondary_replicas", ("secondary_replicas", "replicas_secondary_count")),
    ("learning_replicas", ("learning_replicas", "replicas_learner_count")),
    ("splitting_replicas", ("splitting_replicas",)),
)
# server_stat of a replica server: request rates over its replicas (field -> counter)
REPLICA_SERVER_RATES = (
    ("get_qps", "get_requests"), ("multi_get_qps", "multi_get_requests"),
    ("batch_get_qps", "batch_get_requests"), ("put_qps", "put_requests"),
    ("multi_put_qps", "multi_put_requests"), ("remove_qps", "remove_requests"),
    ("multi_remove_qps", "multi_remove_requests"), ("incr_qps", "incr_requests"),
    ("check_and_set_qps", "check_and_set_requests"),
    ("check_and_mutate_qps", "check_and_mutate_requests"), ("scan_qps", "scan_requests"),
)


def _server_stat(start: Snapshot, end: Snapshot, interval_ms: int) -> Tuple[bool, str]:
    table = {"meta": META_SERVER_STATS, "replica": REPLICA_SERVER_STATS}.get(end.role)
    if table is None:
        return False, f"role {end.role} is unsupported"
    t = Totals()
    names = [m for _, ms in table for m in ms]
    rates = [m for _, m in REPLICA_SERVER_RATES] if end.role == "replica" else []
    accumulate(lambda i, at: t, start, end, seconds(start, end, interval_ms),
                ("server", "replica"), sums=names, rates=rates)
    stats = {}
    for field, metrics in table + tuple((f, (m,)) for f, m in
                                        (REPLICA_SERVER_RATES if rates else ())):
        v = next((t.get(m) for m in metrics if t.get(m) is not None), None)
        if v is not None:
            stats[field] = round(v, 2)
    return True, json.dumps(stats)


def _server_stats(ctx, nodes, interval_ms: int) -> List[Tuple[bool, str]]:
    addrs = [addr for _, addr in nodes]
    names = [m for _, ms in REPLICA_SERVER_STATS for m in ms] + \
        [m for _, m in REPLICA_SERVER_RATES]
    first, second = sample_twice(ctx, addrs, query(("server", "replica"), names), interval_ms)
    out = []
    for s1, s2 in zip(first, second):
        bad = next((s for s in (s1, s2) if not isinstance(s, Snapshot)), None)
        out.append((False, bad) if bad is not None else _server_stat(s1, s2, interval_ms))
    return out


def _message(text: str):
    """The node's reply as JSON when it is JSON, else as the text."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def _remote(ctx, a, cmd: str, args: Sequence[str]) -> int:
    """Run ``cmd`` on the chosen nodes and print upstream's JSON envelope; status 1 when some
    node failed."""
    nodes = _target_nodes(ctx, a)
    cmd = COMMAND_NAMES.get(cmd, cmd)
    if cmd == "server_stat":
        results = _server_stats(ctx, nodes, sample_interval(a))
    else:
        results = _call_remote(ctx, nodes, cmd, args)
    details = {}
    for (role, addr), (acked, msg) in zip(nodes, results):
        details[addr] = {"role": role, "acked": acked, "message": _message(msg)}
    succeed = sum(1 for ok, _ in results if ok)
    info = {"command": f"{cmd} {' '.join(args)}", "details": details,
            "succeed_count": succeed, "failed_count": len(results) - succeed}
    emit(ctx, json.dumps(info, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return 1 if succeed < len(results) else 0


@command("remote_command", "cluster",
         "Run a remote command on meta and/or replica servers (server_stat reads /metrics)",
         args=[Arg("command", help="e.g. server-info, flush-log, help, replica.deny-client; "
                                   "server_info / flush_log / server_stat as the shell's"),
               Arg("arguments", many=True)],
         opts=[NODE_TYPE, RESOLVE, NODE_LIST, INTERVAL])
def cmd_remote_command(ctx, a):
    return _remote(ctx, a, a.command, a.arguments)


@command("server_info", "cluster", "Show version and start time of every server",
         opts=[NODE_TYPE, NODE_LIST, RESOLVE])
def cmd_server_info(ctx, a):
    return _remote(ctx, a, "server_info", [])


@command("server_stat", "cluster",
         "Show memory, replica counts and request rates of every server (from /metrics)",
         opts=[NODE_TYPE, NODE_LIST, RESOLVE, INTERVAL])
def cmd_server_stat(ctx, a):
    return _remote(ctx, a, "server_stat", [])


@command("flush_log", "cluster", "Flush the log of every server to disk",
         opts=[NODE_TYPE, NODE_LIST, RESOLVE])
def cmd_flush_log(ctx, a):
    return _remote(ctx, a, "flush_log", [])


# ====================================================================== meta level, balance

def _control_meta(ctx, level: int):
    return ctx.meta_call("RPC_CM_CONTROL_META",
                         thrift.meta_admin.configuration_meta_control_request(level=level))


def _level_name(v) -> str:
    return thrift.meta_admin.meta_function_level._VALUES_TO_NAMES.get(v, str(v))


@command("get_meta_level", "cluster", "Show the meta server's function level")
def cmd_get_meta_level(ctx, a):
    resp = _control_meta(ctx, FL_INVALID)
    if resp.err != errors.ERR_OK:
        raise ShellError(f"get meta level got error {resp.err}")
    emit(ctx, f"current meta level is {_level_name(resp.old_level)}\n")


@command("set_meta_level", "cluster",
         "Set the meta server's function level (steady: cure only; lively: also balance)",
         args=[Arg("level", completes=tuple(META_LEVELS),
                   help="|".join(META_LEVELS))])
def cmd_set_meta_level(ctx, a):
    level = META_LEVELS.get(a.level.lower())
    if level is None:
        raise UsageError(f"parse {a.level} as meta function level failed")
    resp = _control_meta(ctx, level)
    if resp.err != errors.ERR_OK:
        raise ShellError(f"control meta level got error {resp.err}")
    emit(ctx, f"control meta level ok, the old level is {_level_name(resp.old_level)}\n")


CONFIG_TYPES = thrift.meta_admin.config_type._NAMES_TO_VALUES


def _action(target, node, type_name: str):
    """A configuration_proposal_action; ``target``/``node``: (rpc_address, host_port) or
    None (empty: the meta uses the current primary)."""
    ta, th = target if target is not None else (INVALID_ADDRESS, INVALID_HOST_PORT)
    na, nh = node
    return thrift.meta_admin.configuration_proposal_action(
        target=ta, node=na, type=CONFIG_TYPES[type_name], hp_target=th, hp_node=nh)


# balance -p: the action list of each type (target, node, config type), upstream's table
BALANCE_ACTIONS = {
    "move_pri": (("from", "from", "CT_DOWNGRADE_TO_SECONDARY"),
                 ("to", "to", "CT_UPGRADE_TO_PRIMARY")),
    "copy_pri": (("from", "to", "CT_ADD_SECONDARY_FOR_LB"),
                 ("from", "from", "CT_DOWNGRADE_TO_SECONDARY"),
                 ("to", "to", "CT_UPGRADE_TO_PRIMARY")),
    "copy_sec": ((None, "to", "CT_ADD_SECONDARY_FOR_LB"),
                 (None, "from", "CT_DOWNGRADE_TO_INACTIVE")),
}


def _propose(ctx, gpid: Gpid, actions: list, force: bool) -> str:
    resp = ctx.meta_call("RPC_CM_PROPOSE_BALANCER",
                         thrift.meta_admin.configuration_balancer_request(
                             gpid=gpid, action_list=actions, force=force))
    return resp.err


@command("balance", "cluster", "Propose moving a primary or a replica of one partition",
         opts=[Opt("-g", "--gpid", metavar="appid.pidx", help="the partition", required=True),
               Opt("-p", "--type", choices=tuple(BALANCE_ACTIONS), required=True,
                   help="move_pri: the primary to a secondary; copy_pri: the primary to a new "
                        "node; copy_sec: a secondary to a new node"),
               Opt("-f", "--from", metavar="host:port", help="the node it leaves", required=True),
               Opt("-t", "--to", metavar="host:port", help="the node it goes to", required=True)])
def cmd_balance(ctx, a):
    if a.type is None:
        raise UsageError("need set the balance type by -p")
    ends = {"from": getattr(a, "from"), "to": a.to}
    if ends["from"] is None:
        raise UsageError("need set from address by -f")
    if ends["to"] is None:
        raise UsageError("need set target address by -t")
    if a.gpid is None:
        raise UsageError("need set the gpid by -g")
    gpid = _gpid(a.gpid)
    eps = {"from": _endpoint(ends["from"], "from_host_port"),
           "to": _endpoint(ends["to"], "target_address")}
    actions = [_action(eps[t] if t else None, eps[n], ct) for t, n, ct in BALANCE_ACTIONS[a.type]]
    err = _propose(ctx, gpid, actions, False)
    emit(ctx, f"send balance proposal result: {err}\n")
    return 0 if err == errors.ERR_OK else 1


@command("propose", "cluster", "Send one configuration proposal of a partition to the meta",
         opts=[Opt("-f", "--force", flag=True, help="send it to the target now, unchecked"),
               Opt("-g", "--gpid", metavar="appid.pidx", help="the partition", required=True),
               Opt("-p", "--type", required=True, metavar="ASSIGN_PRIMARY|ADD_SECONDARY|"
                                           "DOWNGRADE_TO_INACTIVE|...",
                   completes=tuple(n[3:] for n in CONFIG_TYPES if n != "CT_INVALID")),
               Opt("-t", "--target", metavar="host:port", help="the replica that executes it",
                   required=True),
               Opt("-n", "--node", metavar="host:port", help="the replica it is about",
                   required=True)])
def cmd_propose(ctx, a):
    if a.target is None:
        raise UsageError("need set target by -t")
    if a.node is None:
        raise UsageError("need set node by -n")
    if a.gpid is None:
        raise UsageError("need set gpid by -g")
    if a.type is None:
        raise UsageError("need set the proposal type by -p")
    gpid = _gpid(a.gpid)
    name = a.type.upper()
    name = name if name.startswith("CT_") else "CT_" + name
    if CONFIG_TYPES.get(name, 0) == 0:
        raise UsageError(f"parse {name} as config_type failed")
    action = _action(_endpoint(a.target, "target_host_port"), _endpoint(a.node, "node"), name)
    err = _propose(ctx, gpid, [action], a.force)
    emit(ctx, f"send proposal response: {err}\n")
    return 0 if err == errors.ERR_OK else 1


# ====================================================================== ddd_diagnose

def _time_ms(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) + f".{ms % 1000:03d}"


def _recommend(pinfo) -> Optional[str]:
    """Upstream's choice of a new primary among the last two dropped replicas: alive and
    collected ones, the larger last committed decree (then ballot), never behind the
    partition's last committed decree."""
    drops = _last_drops(pinfo.config)
    if len(drops) < 2:
        return None
    info = {addr_text(n.node, n.hp_node): n for n in pinfo.dropped or []}
    last = [info[d] for d in drops[-2:] if d in info and info[d].is_alive and
            info[d].is_collected]
    floor = pinfo.config.last_committed_decree or 0
    if len(last) == 1:
        n = last[0]
        return addr_text(n.node, n.hp_node) if n.last_committed_decree >= floor else None
    if len(last) == 2:
        sec, latest = last
        if latest.last_committed_decree == sec.last_committed_decree >= floor:
            best = latest if latest.ballot >= sec.ballot else sec
        elif latest.last_committed_decree > sec.last_committed_decree and \
                latest.last_committed_decree >= floor:
            best = latest
        elif sec.last_committed_decree > latest.last_committed_decree and \
                sec.last_committed_decree >= floor:
            best = sec
        else:
            return None
        return addr_text(best.node, best.hp_node)
    return None


def _ask(ctx, prompt: str) -> Optional[str]:
    """A prompt on the shell's output, the answer from standard input (None at its end)."""
    ctx.out.write(prompt)
    ctx.out.flush()
    line = sys.stdin.readline()
    if not sys.stdin.isatty():           # a script's answer: show it, as a terminal would
        ctx.out.write(line if line.endswith("\n") else line + "\n")
    return line.strip() if line else None


def _choose_primary(ctx, out, recommended: Optional[str], a) -> Optional[str]:
    """upstream's dialogue: confirm the recommendation (y/n/s) unless -a or -s, else ask for a
    node unless -s. Returns the node to propose, or None (skip)."""
    primary = recommended
    if primary and not a.auto_diagnose and not a.skip_prompt:
        while True:
            c = _ask(ctx, "    > Are you sure to use the recommend primary? [y/n/s(skip)]: ")
            if c is None or c == "s":
                out("    > You have choosed to skip diagnosing this partition.")
                return None
            if c == "y":
                break
            if c == "n":
                primary = None
                break
    if not primary and not a.skip_prompt:
        while True:
            node = _ask(ctx, "    > Please input the primary node: ")
            if node is None:
                return None
            try:
                _endpoint(node, "node")
                return node
            except UsageError:
                out("    > Sorry, you have input an invalid node address.")
    return primary


@command("ddd_diagnose", "cluster",
         "List partitions whose replicas all died (DDD) and, with -d, propose a new primary",
         opts=[Opt("-g", "--gpid", metavar="appid|appid.pidx"),
               Opt("-d", "--diagnose", flag=True, help="recommend a primary and propose it"),
               Opt("-a", "--auto_diagnose", flag=True, help="take the recommendation unasked"),
               Opt("-s", "--skip_prompt", flag=True, help="ask nothing: skip what needs asking"),
               OUTPUT])
def cmd_ddd_diagnose(ctx, a):
    pid = _gpid(a.gpid, app_only=True) if a.gpid else Gpid(-1, -1)
    resp = ctx.meta_call("RPC_CM_DDD_DIAGNOSE", thrift.meta_admin.ddd_diagnose_request(pid=pid))
    if resp.err != errors.ERR_OK:
        raise ShellError(f"DDD diagnose failed with err = {resp.err}")
    lines: List[str] = []

    def out(line: str = "") -> None:
        if a.output:
            lines.append(line)
        else:
            ctx.out.write(line + "\n")
            ctx.out.flush()

    parts = list(resp.partitions or [])
    out(f"Total {len(parts)} ddd partitions:")
    out()
    proposed = 0
    for i, p in enumerate(parts, 1):
        cfg = p.config
        drops = _last_drops(cfg)
        latest = drops[-1] if drops else None
        second = drops[-2] if len(drops) > 1 else None

        def mark(node):
            return "  <== the latest" if node == latest else \
                "  <== the secondary latest" if node == second else ""
        out(f"({i}) {cfg.pid}")
        out(f"    config: ballot({cfg.ballot}), last_committed({cfg.last_committed_decree})")
        out("    ----")
        for j, n in enumerate(p.dropped or []):
            node = addr_text(n.node, n.hp_node)
            out(f"    dropped[{j}]: node({node}), drop_time({_time_ms(n.drop_time_ms or 0)}), "
                f"alive({str(bool(n.is_alive)).lower()}), "
                f"collected({str(bool(n.is_collected)).lower()}), ballot({n.ballot}), "
                f"last_committed({n.last_committed_decree}), "
                f"last_prepared({n.last_prepared_decree}){mark(node)}")
        out("    ----")
        for j, node in enumerate(drops):
            out(f"    last_drops[{j}]: node({node}){mark(node)}")
        out("    ----")
        out(f"    ddd_reason: {p.reason}")
        if a.diagnose:
            out("    ----")
            rec = _recommend(p)
            out(f"    recommend_primary: {rec or 'none'}{mark(rec) if rec else ''}")
            primary = _choose_primary(ctx, out, rec, a)
            if primary:
                err = _propose(ctx, cfg.pid, [_action(_endpoint(primary, "node"),
                                                      _endpoint(primary, "node"),
                                                      "CT_ASSIGN_PRIMARY")], True)
                out(f"    propose_request: propose -f -g {cfg.pid} -p ASSIGN_PRIMARY "
                    f"-t {primary} -n {primary}")
                out(f"    propose_response: {err}")
                proposed += 1
            else:
                out("    propose_request: none")
        out()
    if a.diagnose:
        out(f"Proposed count: {proposed}/{len(parts)}")
        out()
    if a.output:
        emit(ctx, "\n".join(lines) + "\n", a.output)
    emit(ctx, "Diagnose ddd done.\n")
