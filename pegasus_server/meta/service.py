"""The meta server process driver: RPC handlers, leadership, failure detector and cure loops.

A thin driver around ``meta/state.py``: it decodes nothing itself (the dispatcher does), calls the
state, performs the effects it returns (proposals to replica servers, over the peer client, each
in its own greenlet) and runs two periodic loops while it leads: the failure-detector check and
the cure round.

Leadership (meta.md §2): with ``[meta_server] distributed_lock_service_type =
distributed_lock_service_simple`` (the embedded default) this meta always leads, over the local
directory ``meta_state_dir`` or ZooKeeper. With ``distributed_lock_service_zookeeper`` several
metas share the state in ZooKeeper (``meta_state_service_zookeeper``, ``[zookeeper] hosts_list``,
under ``cluster_root``) and the holder of the lock ``dsn.meta.server.leader`` leads: on winning it
loads the whole state from ZooKeeper, then serves; when ZooKeeper suspends or loses its session it
stops leading at once (before its session can expire and another meta win the lock), drops its
in-memory state and contends again. A meta that does not lead answers every meta RPC as §2.2 says:
the response struct with ``err = ERR_FORWARD_TO_OTHERS`` (for a query-config, a dummy partition
whose primary is the leader, when known), and a beacon with ``is_master = false`` and the leader as
``primary_node``; remote commands and HTTP are served by every meta.

Every leader RPC and loop round runs under one lock (§2.5: one serial state machine; ZooKeeper
writes yield to other greenlets).

Also here: the meta's remote commands (meta.md §7: ``meta.lb.*`` over the process's
``state.Tunables``, ``meta.live_percentage``, ``fd.allow_list`` — no white list: every node is
accepted) and the dashboards ``/meta/apps``, ``/meta/app``, ``/meta/nodes``, ``/meta/app_envs``
(§8; upstream's JSON shapes, served by the leader only), as plain functions of their input
below the class. Must not import rocksdict or storage code.
"""
from __future__ import annotations

import json
import os
import time
from typing import Optional

import gevent
import gevent.event
import gevent.lock
from loguru import logger

from pegasus_server import admin_http, errors
from pegasus_server.base import INVALID_ADDRESS, HostPort, RpcAddress
from pegasus_server.config import LOCK_ZOOKEEPER, STATE_ZOOKEEPER, Config
from pegasus_server.errors import PegasusError, RpcError
from pegasus_server.meta.model import AS_AVAILABLE, LEVEL_NAMES, STATUS_NAMES
from pegasus_server.meta.state import MetaState, Tunables
from pegasus_server.meta.store import LocalMetaStore
from pegasus_server.metrics import MetricsRegistry, process_gauges
from pegasus_server.remote_command import CommandTable, bool_setter, register_server_commands
from pegasus_server.rpc import catalogue, thrift
from pegasus_server.rpc.client import RpcClient
from pegasus_server.rpc.dispatch import Dispatcher, parse_query
from pegasus_server.rpc.server import RpcServer

CURE_INTERVAL_SECONDS = 1.0
LEADER_POLL_SECONDS = 0.5      # how often a non-leader looks up who leads
CONTEND_RETRY_SECONDS = 1.0


def _parse_identity(text: Optional[str]) -> Optional[RpcAddress]:
    try:
        host, port = (text or "").rsplit(":", 1)
        return RpcAddress(host, int(port))
    except ValueError:
        return None


class MetaService:
    def __init__(self, config: Config, workdir: str = "."):
        self.config = config
        ms = config.meta_server
        self.start_time = time.time()
        self.address = RpcAddress(config.server.host, config.server.port)
        self.elected = ms.distributed_lock_service_type == LOCK_ZOOKEEPER
        if ms.meta_state_service_type == STATE_ZOOKEEPER:
            from pegasus_server.meta.zk_store import ZkMetaStore
            zk = config.zookeeper
            self.store = ZkMetaStore(zk.hosts_list, ms.cluster_root, timeout=zk.timeout_ms / 1000)
        else:
            store_dir = ms.meta_state_dir
            if not os.path.isabs(store_dir):
                store_dir = os.path.join(workdir, store_dir)
            self.store = LocalMetaStore(store_dir)
        self.tunables = Tunables.from_config(config)     # remote commands, kept by the process
        self.state = MetaState(config, self.store, self.address, tunables=self.tunables)
        self.leading = False
        self.leader: Optional[RpcAddress] = None      # who leads, as far as we know
        self.leader_since = 0.0
        self._mutex = gevent.lock.RLock()
        self._lost = gevent.event.Event()
        self._lock = None
        self.client = RpcClient()
        self.commands = CommandTable(self.start_time)
        self.metrics = MetricsRegistry(config.replication.cluster_name, "meta",
                                       config.server.host, config.server.port)
        process_gauges(self.metrics.entity("server", "server"), self.start_time)
        self.dispatcher = Dispatcher()
        self.server = RpcServer(config.server.host, config.server.port, self.dispatcher,
                                config.network.max_frame_bytes)
        self._loops = []          # loops of the leader
        self._greenlets = []      # loops of the process
        self._register()

    @property
    def hp(self) -> bool:
        return self.config.network.thft_send_host_port

    def _register(self) -> None:
        d = self.dispatcher
        lead = self._leader_only
        lead("RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX", lambda c, r, a: self.state.query_cfg(a, self.hp))
        lead("RPC_CM_CREATE_APP", lambda c, r, a: self.state.create_app(a, time.time()))
        lead("RPC_CM_DROP_APP", lambda c, r, a: self.state.drop_app(a, time.time()))
        lead("RPC_CM_RECALL_APP", lambda c, r, a: self.state.recall_app(a, time.time()))
        lead("RPC_CM_LIST_APPS", lambda c, r, a: self.state.list_apps(a))
        lead("RPC_CM_LIST_NODES", lambda c, r, a: self.state.list_nodes(a, self.hp))
        lead("RPC_CM_CLUSTER_INFO", lambda c, r, a: self.state.cluster_info(
            self.config.meta_server.server_list, str(self.address), self.state.effective_level()))
        lead("RPC_CM_CONTROL_META", lambda c, r, a: self.state.control_meta(a))
        lead("RPC_CM_UPDATE_APP_ENV", lambda c, r, a: self.state.update_app_env(a))
        lead("RPC_FD_FAILURE_DETECTOR_PING", lambda c, r, a: self.state.on_beacon(a, time.time()))
        lead("RPC_CM_CONFIG_SYNC", lambda c, r, a: self.state.on_config_sync(a, time.time()))
        lead("RPC_CM_UPDATE_PARTITION_CONFIGURATION", self._on_update_config)
        d.register("RPC_CLI_CLI_CALL", lambda c, r, a: self.commands.call(a.cmd, a.arguments))
        lead("RPC_CM_PROPOSE_BALANCER", self._on_propose_balancer)
        lead("RPC_CM_RENAME_APP", lambda c, r, a: self.state.rename_app(a))
        lead("RPC_CM_GET_MAX_REPLICA_COUNT", lambda c, r, a: self.state.get_max_replica_count(a))
        lead("RPC_CM_SET_MAX_REPLICA_COUNT", self._on_set_max_replica_count)
        lead("RPC_CM_GET_ATOMIC_IDEMPOTENT", lambda c, r, a: self.state.get_atomic_idempotent(a))
        lead("RPC_CM_SET_ATOMIC_IDEMPOTENT", lambda c, r, a: self.state.set_atomic_idempotent(a))
        lead("RPC_CM_START_MANUAL_COMPACT",
             lambda c, r, a: self.state.start_manual_compact(a, time.time()))
        lead("RPC_CM_QUERY_MANUAL_COMPACT_STATUS",
             lambda c, r, a: self.state.query_manual_compact(a))
        lead("RPC_CM_DDD_DIAGNOSE", lambda c, r, a: self.state.ddd_diagnose(a, self.hp))
        admin_http.register(d, self.config, self.start_time, self.metrics)
        register_server_commands(self.commands, self.config, self.metrics)
        d.route("/meta/cluster", self._http_cluster)
        for path, fn in (("/meta/apps", apps_page), ("/meta/app", app_page),
                         ("/meta/nodes", nodes_page), ("/meta/app_envs", app_envs_page)):
            d.route(path, self._dashboard(fn))
        self._register_commands()

    # ------------------------------------------------------------------ leadership
    def _leader_only(self, name: str, fn) -> None:
        """Register ``fn`` for ``name``, run under the state lock while this meta leads and
        answered as a non-leader (meta.md §2.2) otherwise."""
        spec = catalogue.get(name).result_spec

        def handler(conn, req, arg):
            if self.leading:
                with self._mutex:
                    if self.leading:
                        return fn(conn, req, arg)
            return self._not_leader_answer(name, spec, arg)
        self.dispatcher.register(name, handler)

    def _not_leader_answer(self, name, spec, arg):
        leader = self.leader
        if name == "RPC_FD_FAILURE_DETECTOR_PING":
            return thrift.fd.beacon_ack(time=arg.time, this_node=self.address,
                                        primary_node=leader or INVALID_ADDRESS, is_master=False,
                                        allowed=True)
        if name == "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX":
            L2 = thrift.layer2
            parts = []
            if leader is not None:
                pc = L2.partition_configuration(primary=leader)
                if self.hp:
                    pc.hp_primary = HostPort.from_address(leader)
                parts = [pc]
            return L2.query_cfg_response(err=errors.ERR_FORWARD_TO_OTHERS, app_id=0,
                                         partition_count=0, is_stateful=False, partitions=parts)
        return spec[1](err=errors.ERR_FORWARD_TO_OTHERS)

    def _on_lock_lost(self, reason: str) -> None:
        # kazoo's event greenlet: only flip flags here; the lead loop does the rest
        if self.leading:
            logger.warning("meta {} lost the leader lock ({}): stepping down", self.address, reason)
        self.leading = False
        self._lost.set()

    def _lead_loop(self) -> None:
        from pegasus_server.meta.zk_store import ZkLeaderLock
        ms = self.config.meta_server
        lock_root = ms.distributed_lock_service_parameters or None
        while True:
            self._lost.clear()
            lock = self._lock = ZkLeaderLock(self.store, str(self.address),
                                             on_lost=self._on_lock_lost, lock_root=lock_root)
            try:
                got = lock.acquire()
            except PegasusError as e:
                logger.warning("meta {}: cannot contend for leadership: {}", self.address, e)
                gevent.sleep(CONTEND_RETRY_SECONDS)
                continue
            if not got:
                continue
            try:
                if not self._lost.is_set():
                    self._become_leader()
            except Exception:
                logger.exception("meta {}: taking over as leader failed", self.address)
                self._lost.set()
            self._lost.wait()
            self._step_down()
            while not lock.release():      # our node must go, or it blocks every contender
                gevent.sleep(CONTEND_RETRY_SECONDS)
            gevent.sleep(CONTEND_RETRY_SECONDS)

    def _become_leader(self) -> None:
        with self._mutex:
            state = MetaState(self.config, self.store, self.address, tunables=self.tunables)
            state.load(time.time())
            if self._lost.is_set():
                return
            self.state = state
            self.leader = self.address
            self.leader_since = time.time()
            self.leading = True
            self._loops = [gevent.spawn(self._fd_loop), gevent.spawn(self._cure_loop)]
        logger.info("meta server {} is the leader now", self.address)

    def _step_down(self) -> None:
        self.leading = False
        for g in self._loops:
            g.kill()
        self._loops = []
        with self._mutex:
            self.state = MetaState(self.config, self.store, self.address,   # forget, unloaded
                                   tunables=self.tunables)
            if self.leader == self.address:
                self.leader = None

    def _watch_leader(self) -> None:
        """A non-leader keeps ``leader`` current for its redirections."""
        while True:
            lock = self._lock
            if not self.leading and lock is not None:
                try:
                    self.leader = _parse_identity(lock.leader())
                except PegasusError:
                    self.leader = None
            gevent.sleep(LEADER_POLL_SECONDS)

    def _on_propose_balancer(self, conn, req, arg):
        resp, proposals = self.state.propose_balancer(arg)
        for p in proposals:
            gevent.spawn(self._send_proposal, p)
        if not proposals:
            gevent.spawn(self._cure_once)      # queued: the cure sends the first action
        return resp

    def _on_set_max_replica_count(self, conn, req, arg):
        resp = self.state.set_max_replica_count(arg)
        gevent.spawn(self._cure_once)          # add or remove the secondaries now
        return resp

    def _on_update_config(self, conn, req, arg):
        resp = self.state.on_update_partition_configuration(arg)
        gevent.spawn(self._cure_once)
        return resp

    def _http_cluster(self, hreq):
        parse_query(hreq.query)
        return 200, "application/json", json.dumps({
            "meta_servers": self.config.meta_server.server_list,
            "primary_meta_server": str(self.leader) if self.leader else "",
            "meta_function_level": "fl_" + LEVEL_NAMES.get(self.state.effective_level(), "freezed"),
            "alive_nodes": [str(a) for a in self.state.alive_nodes()],
        })

    def _dashboard(self, page):
        """An HTTP route over ``page(state, query) -> (status, JSON-able)``; only the leader
        has the state (a follower answers 500 and names the leader)."""
        def route(hreq):
            if not self.leading:
                leader = str(self.leader) if self.leader else "unknown"
                return 500, "application/json", json.dumps(
                    {"error_message": f"this meta is not the leader (the leader is {leader})"})
            with self._mutex:
                status, body = page(self.state, parse_query(hreq.query or ""))
            return status, "application/json", json.dumps(body)
        return route

    # ------------------------------------------------------------------ remote commands
    def _register_commands(self) -> None:
        """The meta's remote commands (meta.md §7), over ``self.tunables`` and the state."""
        t, reg = self.tunables, self.commands.register
        for name, attr, desc in (
                ("meta.lb.only_move_primary", "only_move_primary",
                 "control whether the balancer only moves primaries (no copy_primary)"),
                ("meta.lb.only_primary_balancer", "only_primary_balancer",
                 "control whether the balancer only balances primaries"),
                ("meta.lb.balancer_in_turn", "balancer_in_turn",
                 "control whether the balancer balances the apps one by one")):
            reg((name,), f"{name} [true|false]", desc,
                bool_setter(name, lambda a=attr: getattr(t, a),
                            lambda v, a=attr: setattr(t, a, v)))
        reg(("meta.lb.ignored_app_list",),
            "meta.lb.ignored_app_list <get|set|clear> [app_id1,app_id2,...]",
            "Get, set or clear balancer ignored_app_list",
            lambda args: ignored_app_list(t, args))
        reg(("meta.lb.get_balance_operation_count",),
            "meta.lb.get_balance_operation_count [total | move_pri | copy_pri | copy_sec | detail]",
            "Get balance operation count",
            lambda args: balance_operation_count(self.state.balance_ops, args))
        default = self.config.meta_server.node_live_percentage_threshold_for_update
        reg(("meta.live_percentage",), "meta.live_percentage [num | DEFAULT]",
            "node live percentage threshold for update",
            lambda args: live_percentage(t, default, args))
        reg(("fd.allow_list",), "fd.allow_list", "Show the allow list of failure detector",
            lambda args: json.dumps({"enabled": False, "allow_list": ""}, indent=4))

    # ------------------------------------------------------------------ loops
    def _send_proposal(self, p) -> None:
        try:
            self.client.call((p.target.host, p.target.port), "RPC_CONFIG_PROPOSAL", p.request,
                             oneway=True)
        except RpcError as e:
            logger.debug("proposal to {} failed: {}", p.target, e)

    def _cure_once(self) -> None:
        with self._mutex:
            if not self.leading:
                return
            proposals = self.state.cure(time.time())
        for p in proposals:
            gevent.spawn(self._send_proposal, p)

    def _fd_loop(self) -> None:
        interval = self.config.replication.fd_check_interval_seconds
        while True:
            gevent.sleep(interval)
            try:
                with self._mutex:
                    proposals = self.state.check_nodes(time.time()) if self.leading else []
                for p in proposals or []:
                    gevent.spawn(self._send_proposal, p)
            except Exception:
                logger.exception("failure detector round failed")

    def _cure_loop(self) -> None:
        while True:
            try:
                self._cure_once()
            except Exception:
                logger.exception("cure round failed")
            gevent.sleep(CURE_INTERVAL_SECONDS)

    def start(self) -> None:
        if self.elected:
            self.server.start()
            self._greenlets = [gevent.spawn(self._lead_loop), gevent.spawn(self._watch_leader)]
            logger.info("meta server started on {} (contending for leadership in ZooKeeper)",
                        self.address)
            return
        self.state.load(time.time())
        self.leader = self.address
        self.leader_since = time.time()
        self.leading = True
        self.server.start()
        self._loops = [gevent.spawn(self._fd_loop), gevent.spawn(self._cure_loop)]
        logger.info("meta server started on {} (single meta, leader)", self.address)

    def stop(self) -> None:
        self.leading = False
        for g in self._greenlets + self._loops:
            g.kill()
        if self._lock is not None:
            self._lock.release()
        self.server.stop()
        self.client.close()
        self.store.close()


# ---------------------------------------------------------------------- remote command bodies
def _reply(**kv) -> str:
    return json.dumps(kv, indent=4)


def ignored_app_list(t: Tunables, args) -> str:
    """``meta.lb.ignored_app_list get | set <id1,id2,...> | clear`` (upstream's replies)."""
    if args[:1] == ["get"]:
        return _reply(ignored_app_id_list=",".join(str(i) for i in sorted(t.ignored_apps)))
    if args[:1] == ["clear"]:
        t.ignored_apps = set()
        return _reply(error="ok")
    if args[:1] == ["set"]:
        ids = [x for x in args[1].split(",") if x] if len(args) == 2 else []
        if not ids or not all(x.lstrip("-").isdigit() for x in ids):
            return _reply(error="invalid argument")
        t.ignored_apps = {int(x) for x in ids}
        return _reply(error="ok")
    return _reply(error="invalid arguments")


BALANCE_OP_KEYS = {"total": ("total",), "move_pri": ("move_pri",), "copy_pri": ("copy_pri",),
                   "copy_sec": ("copy_sec",),
                   "detail": ("move_pri", "copy_pri", "copy_sec", "total")}


def balance_operation_count(ops, args) -> str:
    """``meta.lb.get_balance_operation_count [total|move_pri|copy_pri|copy_sec|detail]``."""
    keys = BALANCE_OP_KEYS.get(args[0] if args else "total") if len(args) <= 1 else None
    if keys is None:
        return _reply(error="invalid arguments")
    return _reply(**{k: ops[k] for k in keys})


def live_percentage(t: Tunables, default: int, args) -> str:
    """``meta.live_percentage [num | DEFAULT]``: upstream's int setter (0..100)."""
    name = "meta.live_percentage"
    if not args:
        return _reply(**{"error": "ok", name: str(t.live_percentage)})
    if len(args) > 1:
        return _reply(error=f"ERR: invalid arguments '{' '.join(args)}', "
                            "only one argument is acceptable")
    if args[0].upper() == "DEFAULT":
        t.live_percentage = default
        return _reply(**{"error": "ok", name: default})
    v = args[0]
    if not v.isdigit() or not 0 <= int(v) <= 100:
        return _reply(error=f"ERR: invalid argument '{v}', the value is not acceptable")
    t.live_percentage = int(v)
    logger.info("set {} to {} by remote command", name, v)
    return _reply(error="ok")


# ---------------------------------------------------------------------- HTTP dashboards (§8)
# Upstream's shapes (its table printer in compact JSON: one object per section, rows keyed by
# their first column, every value a string).
def _time(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) if seconds > 0 else "-"


def _bad_query(q, allowed):
    extra = sorted(set(q) - set(allowed))
    return (400, {"error_message": f"unknown query parameter(s): {', '.join(extra)}"}) \
        if extra else None


def _health(app) -> dict:
    """Partition health counts as upstream's dashboards and shell count them."""
    fully = write = read = 0
    for pc in app.partitions:
        n = len(pc.members())
        if pc.primary.is_invalid:
            write, read = write + 1, read + 1
        elif n >= pc.max_replica_count:
            fully += 1
        elif n < 2:
            write += 1
    return {"fully_healthy": fully, "unhealthy": app.partition_count - fully,
            "write_unhealthy": write, "read_unhealthy": read}


def _strs(d: dict) -> dict:
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in d.items()}


def apps_page(state: MetaState, q):
    """``/meta/apps[?detail]``: the available tables (and their health with ``detail``)."""
    bad = _bad_query(q, ("detail",))
    if bad:
        return bad
    apps = sorted((a for a in state.apps.values() if a.status == AS_AVAILABLE),
                  key=lambda a: a.app_id)
    out = {"general_info": {str(a.app_id): _strs({
        "app_id": a.app_id, "status": STATUS_NAMES[a.status][3:], "app_name": a.app_name,
        "app_type": a.app_type, "partition_count": a.partition_count,
        "replica_count": a.max_replica_count, "is_stateful": a.is_stateful,
        "create_time": _time(a.create_second), "drop_time": "-", "drop_expire": "-",
        "envs_count": len(a.envs)}) for a in apps}}
    summary = {"total_app_count": len(apps)}
    if "detail" in q and apps:
        health = {a.app_id: _health(a) for a in apps}
        out["healthy_info"] = {str(a.app_id): _strs(dict(
            app_id=a.app_id, app_name=a.app_name, partition_count=a.partition_count,
            **health[a.app_id])) for a in apps}
        h = health.values()
        summary.update(
            fully_healthy_app_count=sum(1 for x in h if x["unhealthy"] == 0),
            unhealthy_app_count=sum(1 for x in h if x["unhealthy"] > 0),
            write_unhealthy_app_count=sum(1 for x in h if x["write_unhealthy"] > 0),
            read_unhealthy_app_count=sum(1 for x in h if x["read_unhealthy"] > 0))
    out["summary"] = _strs(summary)
    return 200, out


def _table(state: MetaState, q):
    name = q.get("name", "")
    if not name:
        return None, (400, {"error_message": "app name shouldn't be empty"})
    app = state.apps.get(state.names.get(name, -1))
    if app is None:
        return None, (404, {"error_message": f"table not found: \"{name}\""})
    return app, None


def app_page(state: MetaState, q):
    """``/meta/app?name=X[&detail]``: one table (partitions, nodes, health with ``detail``)."""
    bad = _bad_query(q, ("name", "detail"))
    app, bad = (None, bad) if bad else _table(state, q)
    if bad:
        return bad
    out = {"general": _strs({"app_name": app.app_name, "app_id": app.app_id,
                             "partition_count": app.partition_count,
                             "max_replica_count": app.max_replica_count})}
    if "detail" not in q:
        return 200, out
    replicas, nodes = {}, {}
    for pc in app.partitions:
        i = pc.pid.partition_index
        replicas[str(i)] = _strs({
            "pidx": i, "ballot": pc.ballot,
            "replica_count": f"{len(pc.members())}/{pc.max_replica_count}",
            "primary": "-" if pc.primary.is_invalid else str(pc.primary),
            "secondaries": "[" + ",".join(str(s) for s in pc.secondaries) + "]"})
        for m in pc.members():
            nodes.setdefault(str(m), [0, 0])[m != pc.primary] += 1
    total = [sum(v[0] for v in nodes.values()), sum(v[1] for v in nodes.values())]
    out["replicas"] = replicas
    out["nodes"] = {n: _strs({"node": n, "primary": p, "secondary": s, "total": p + s})
                    for n, (p, s) in sorted(nodes.items()) + [("total", total)]}
    h = _health(app)
    out["healthy"] = _strs({"fully_healthy_partition_count": h["fully_healthy"],
                            "unhealthy_partition_count": h["unhealthy"],
                            "write_unhealthy_partition_count": h["write_unhealthy"],
                            "read_unhealthy_partition_count": h["read_unhealthy"]})
    return 200, out


def app_envs_page(state: MetaState, q):
    """``/meta/app_envs?name=X``: the table's envs."""
    app, bad = _table(state, q)
    return bad or (200, dict(sorted(app.envs.items())))


def nodes_page(state: MetaState, q):
    """``/meta/nodes[?detail]``: every known replica server (with its replica counts)."""
    bad = _bad_query(q, ("detail",))
    if bad:
        return bad
    counts = {a: [0, 0] for a in state.nodes}
    for app in state.apps.values():
        if app.status == AS_AVAILABLE:
            for pc in app.partitions:
                for m in pc.members():
                    if m in counts:
                        counts[m][m != pc.primary] += 1
    details = {}
    for a in sorted(state.nodes):
        row = {"address": str(a), "status": "ALIVE" if state.nodes[a].alive else "UNALIVE"}
        if "detail" in q:
            p, s = counts[a]
            row.update(replica_count=p + s, primary_count=p, secondary_count=s)
        details[str(a)] = _strs(row)
    alive = len(state.alive_nodes())
    return 200, {"details": details, "summary": _strs({
        "total_node_count": len(state.nodes), "alive_node_count": alive,
        "unalive_node_count": len(state.nodes) - alive})}
