"""The meta server process driver: RPC handlers, failure detector and cure loops.

A thin driver around ``meta/state.py``: it decodes nothing itself (the dispatcher does), calls the
state, performs the effects it returns (proposals to replica servers, over the peer client, each
in its own greenlet) and runs two periodic loops: the failure-detector check and the cure round.
This is a single meta, always the leader; the ZooKeeper-backed multi-meta arrives with the HA
issue and plugs in at ``is_leader``. Must not import rocksdict or storage code.
"""
from __future__ import annotations

import json
import os
import time

import gevent
from loguru import logger

from pegasus_server import errors
from pegasus_server.base import RpcAddress
from pegasus_server.config import Config
from pegasus_server.errors import RpcError
from pegasus_server.meta.state import LEVEL_NAMES, MetaState
from pegasus_server.meta.store import LocalMetaStore
from pegasus_server.remote_command import CommandTable
from pegasus_server.rpc import thrift
from pegasus_server.rpc.client import RpcClient
from pegasus_server.rpc.dispatch import Dispatcher, parse_query
from pegasus_server.rpc.server import RpcServer

CURE_INTERVAL_SECONDS = 1.0


class MetaService:
    def __init__(self, config: Config, workdir: str = "."):
        self.config = config
        self.start_time = time.time()
        self.address = RpcAddress(config.server.host, config.server.port)
        store_dir = config.meta_server.meta_state_dir
        if not os.path.isabs(store_dir):
            store_dir = os.path.join(workdir, store_dir)
        self.store = LocalMetaStore(store_dir)
        self.state = MetaState(config, self.store, self.address)
        self.client = RpcClient()
        self.commands = CommandTable(self.start_time)
        self.dispatcher = Dispatcher()
        self.server = RpcServer(config.server.host, config.server.port, self.dispatcher,
                                config.network.max_frame_bytes)
        self._loops = []
        self._register()

    @property
    def hp(self) -> bool:
        return self.config.network.thft_send_host_port

    def _register(self) -> None:
        d, st = self.dispatcher, self.state
        d.register("RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX",
                   lambda c, r, a: st.query_cfg(a, self.hp))
        d.register("RPC_CM_CREATE_APP", lambda c, r, a: st.create_app(a, time.time()))
        d.register("RPC_CM_DROP_APP", lambda c, r, a: st.drop_app(a, time.time()))
        d.register("RPC_CM_RECALL_APP", lambda c, r, a: st.recall_app(a, time.time()))
        d.register("RPC_CM_LIST_APPS", lambda c, r, a: st.list_apps(a))
        d.register("RPC_CM_LIST_NODES", lambda c, r, a: st.list_nodes(a, self.hp))
        d.register("RPC_CM_CLUSTER_INFO", lambda c, r, a: st.cluster_info(
            self.config.meta_server.server_list, str(self.address), st.effective_level()))
        d.register("RPC_CM_CONTROL_META", lambda c, r, a: st.control_meta(a))
        d.register("RPC_CM_UPDATE_APP_ENV", lambda c, r, a: st.update_app_env(a))
        d.register("RPC_CLI_CLI_CALL", lambda c, r, a: self.commands.call(a.cmd, a.arguments))
        d.register("RPC_FD_FAILURE_DETECTOR_PING", lambda c, r, a: st.on_beacon(a, time.time()))
        d.register("RPC_CM_CONFIG_SYNC", lambda c, r, a: st.on_config_sync(a, time.time()))
        d.register("RPC_CM_UPDATE_PARTITION_CONFIGURATION", self._on_update_config)
        for name in ("RPC_CM_RENAME_APP", "RPC_CM_PROPOSE_BALANCER",
                     "RPC_CM_GET_MAX_REPLICA_COUNT", "RPC_CM_SET_MAX_REPLICA_COUNT",
                     "RPC_CM_GET_ATOMIC_IDEMPOTENT", "RPC_CM_SET_ATOMIC_IDEMPOTENT",
                     "RPC_CM_START_MANUAL_COMPACT", "RPC_CM_QUERY_MANUAL_COMPACT_STATUS",
                     "RPC_CM_DDD_DIAGNOSE"):
            d.register(name, self._not_active(name))
        d.route("/version", lambda h: (200, "application/json", json.dumps(
            {"Version": "pegasus-py", "GitCommit": ""})))
        d.route("/recentStartTime", lambda h: (200, "application/json", json.dumps(
            {"RecentStartTime": time.strftime("%Y-%m-%d %H:%M:%S",
                                              time.localtime(self.start_time))})))
        d.route("/meta/cluster", self._http_cluster)
        d.route("/", lambda h: (200, "application/json", json.dumps(sorted(d.routes))))

    def _not_active(self, name):
        """Meta RPCs of later milestones answer ERR_SERVICE_NOT_ACTIVE in the body (protocol.md
        §7: tools print the error and continue)."""
        from pegasus_server.rpc import catalogue
        spec = catalogue.get(name).result_spec

        def handler(conn, req, arg):
            return spec[1](err=errors.ERR_SERVICE_NOT_ACTIVE)
        return handler

    def _on_update_config(self, conn, req, arg):
        resp = self.state.on_update_partition_configuration(arg)
        gevent.spawn(self._cure_once)
        return resp

    def _http_cluster(self, hreq):
        parse_query(hreq.query)
        return 200, "application/json", json.dumps({
            "meta_servers": self.config.meta_server.server_list,
            "primary_meta_server": str(self.address),
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
        for p in self.state.cure(time.time()):
            gevent.spawn(self._send_proposal, p)

    def _fd_loop(self) -> None:
        interval = self.config.replication.fd_check_interval_seconds
        while True:
            gevent.sleep(interval)
            try:
                for p in self.state.check_nodes(time.time()) or []:
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
        self.state.load(time.time())
        self.server.start()
        self._loops = [gevent.spawn(self._fd_loop), gevent.spawn(self._cure_loop)]
        logger.info("meta server started on {} (single meta, leader)", self.address)

    def stop(self) -> None:
        for g in self._loops:
            g.kill()
        self.server.stop()
        self.client.close()
        self.store.close()
