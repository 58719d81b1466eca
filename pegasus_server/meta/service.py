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
writes yield to other greenlets). Must not import rocksdict or storage code.
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

from pegasus_server import errors
from pegasus_server.base import INVALID_ADDRESS, HostPort, RpcAddress
from pegasus_server.config import LOCK_ZOOKEEPER, STATE_ZOOKEEPER, Config
from pegasus_server.errors import PegasusError, RpcError
from pegasus_server.meta.state import LEVEL_NAMES, MetaState
from pegasus_server.meta.store import LocalMetaStore
from pegasus_server.remote_command import CommandTable
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
        self.state = MetaState(config, self.store, self.address)
        self.leading = False
        self.leader: Optional[RpcAddress] = None      # who leads, as far as we know
        self.leader_since = 0.0
        self._mutex = gevent.lock.RLock()
        self._lost = gevent.event.Event()
        self._lock = None
        self.client = RpcClient()
        self.commands = CommandTable(self.start_time)
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
        for name in ("RPC_CM_RENAME_APP",
                     "RPC_CM_GET_MAX_REPLICA_COUNT", "RPC_CM_SET_MAX_REPLICA_COUNT",
                     "RPC_CM_GET_ATOMIC_IDEMPOTENT", "RPC_CM_SET_ATOMIC_IDEMPOTENT",
                     "RPC_CM_START_MANUAL_COMPACT", "RPC_CM_QUERY_MANUAL_COMPACT_STATUS",
                     "RPC_CM_DDD_DIAGNOSE"):
            lead(name, self._not_active(name))
        d.route("/version", lambda h: (200, "application/json", json.dumps(
            {"Version": "pegasus-py", "GitCommit": ""})))
        d.route("/recentStartTime", lambda h: (200, "application/json", json.dumps(
            {"RecentStartTime": time.strftime("%Y-%m-%d %H:%M:%S",
                                              time.localtime(self.start_time))})))
        d.route("/meta/cluster", self._http_cluster)
        d.route("/", lambda h: (200, "application/json", json.dumps(sorted(d.routes))))

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
            state = MetaState(self.config, self.store, self.address)
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
            self.state = MetaState(self.config, self.store, self.address)   # forget, unloaded
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

    def _not_active(self, name):
        """Meta RPCs of later milestones answer ERR_SERVICE_NOT_ACTIVE in the body (protocol.md
        §7: tools print the error and continue)."""
        spec = catalogue.get(name).result_spec

        def handler(conn, req, arg):
            return spec[1](err=errors.ERR_SERVICE_NOT_ACTIVE)
        return handler

    def _on_propose_balancer(self, conn, req, arg):
        resp, proposals = self.state.propose_balancer(arg)
        for p in proposals:
            gevent.spawn(self._send_proposal, p)
        if not proposals:
            gevent.spawn(self._cure_once)      # queued: the cure sends the first action
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
