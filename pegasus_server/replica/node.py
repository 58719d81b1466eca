"""The replica server process driver ("replica stub"): replicas by gpid, client requests,
beacons and configuration sync with the meta.

Routing of client requests (protocol.md §6.8): header app_id > 0 is a storage request for
gpid(app_id, partition_index); no replica here -> ERR_OBJECT_NOT_FOUND; a replica that is not
serving as primary -> ERR_INVALID_STATE; a write body over ``max_allowed_write_size`` ->
ERR_INVALID_DATA. Reads and writes are executed by the partition's ``StorageApp``.

Configuration follows upstream's flow (replication.md §5-§6): the meta proposes
CT_ASSIGN_PRIMARY with RPC_CONFIG_PROPOSAL; the replica opens the partition and asks the meta to
persist the new configuration (ballot + 1, itself as primary) with
RPC_CM_UPDATE_PARTITION_CONFIGURATION; on ERR_OK it serves. After a restart the replica server
reopens its partitions inactive and becomes primary again when config sync confirms it.

In this milestone every group has one member, so a write is applied once it is in the storage
engine's write-ahead log; the PacificA core (prepare list, secondaries, learning) replaces
``_write`` with a proposal to the core in the replication milestone. Must not import rocksdict.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import time
from typing import Dict

import gevent
from loguru import logger

from pegasus_server import errors
from pegasus_server.base import INVALID_ADDRESS, Gpid, RpcAddress
from pegasus_server.config import Config
from pegasus_server.errors import RpcError
from pegasus_server.meta.model import App, PartitionConfig
from pegasus_server.remote_command import CommandTable
from pegasus_server.rpc import catalogue, thrift
from pegasus_server.rpc.client import RpcClient
from pegasus_server.rpc.dispatch import NO_REPLY, Dispatcher, HeaderError
from pegasus_server.rpc.server import RpcServer
from pegasus_server.storage.app import StorageApp

CT_ASSIGN_PRIMARY = 1
PRIMARY, INACTIVE = "PS_PRIMARY", "PS_INACTIVE"


class Replica:
    """One partition replica on this node."""

    def __init__(self, gpid: Gpid, path: str, app: App, storage: StorageApp, ballot: int):
        self.gpid = gpid
        self.path = path
        self.app = app
        self.storage = storage
        self.ballot = ballot
        self.status = INACTIVE
        self.proposing = False
        self.primary_since = 0.0   # monotonic time it last became primary

    def save(self) -> None:
        tmp = os.path.join(self.path, "replica.json.tmp")
        with open(tmp, "w") as f:
            json.dump({"app_info": self.app.info_json(), "ballot": self.ballot}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(self.path, "replica.json"))


class ReplicaNode:
    def __init__(self, config: Config, workdir: str = "."):
        self.config = config
        self.start_time = time.time()
        self.address = RpcAddress(config.server.host, config.server.port)
        self.server_text = f"{self.address.host}:{self.address.port}"
        data_dir = config.replication.data_dirs.split(",")[0].split(":")[-1].strip()
        if not os.path.isabs(data_dir):
            data_dir = os.path.join(workdir, data_dir)
        self.reps_dir = os.path.join(data_dir, "replica", "reps")
        os.makedirs(self.reps_dir, exist_ok=True)
        self.replicas: Dict[Gpid, Replica] = {}
        self.metas = config.meta_server.servers
        self.meta_index = 0
        self.meta_connected = False
        self.client = RpcClient()
        self.commands = CommandTable(self.start_time)
        self.dispatcher = Dispatcher()
        self.server = RpcServer(config.server.host, config.server.port, self.dispatcher,
                                config.network.max_frame_bytes)
        self._last_ts_us = 0
        self._syncing = False
        self._loops = []
        self._register()

    # ------------------------------------------------------------------ wiring
    def _register(self) -> None:
        d = self.dispatcher
        for name in catalogue.names():
            if name.startswith("RPC_RRDB_RRDB_"):
                d.register(name, self._on_storage_rpc)
        d.register("RPC_CONFIG_PROPOSAL", self._on_proposal)
        d.register("RPC_CLI_CLI_CALL", lambda c, r, a: self.commands.call(a.cmd, a.arguments))
        d.register("RPC_QUERY_APP_INFO", self._on_query_app_info)
        d.route("/version", lambda h: (200, "application/json", json.dumps(
            {"Version": "pegasus-py", "GitCommit": ""})))
        d.route("/", lambda h: (200, "application/json", json.dumps(sorted(d.routes))))
        self.commands.register(("replica.query-app-envs",), "replica.query-app-envs [app_id]",
                               "Query the envs of the replicas of a table on this node",
                               self._cmd_app_envs)

    def _cmd_app_envs(self, args):
        out = {}
        for g, r in sorted(self.replicas.items()):
            if not args or str(g.app_id) == args[0]:
                out[str(g)] = r.app.envs
        return json.dumps(out, indent=4)

    # ------------------------------------------------------------------ client requests
    def _uniq_timestamp_us(self) -> int:
        now = int(time.time() * 1_000_000)
        self._last_ts_us = max(now, self._last_ts_us + 1)
        return self._last_ts_us

    def _on_storage_rpc(self, conn, req, arg):
        if req.app_id <= 0:
            raise HeaderError(errors.ERR_HANDLER_NOT_FOUND)
        rep = self.replicas.get(Gpid(req.app_id, req.partition_index))
        if rep is None:
            raise HeaderError(errors.ERR_OBJECT_NOT_FOUND)
        if rep.status != PRIMARY:
            raise HeaderError(errors.ERR_INVALID_STATE)
        name = req.name
        if name == "RPC_RRDB_RRDB_CLEAR_SCANNER":
            rep.storage.clear_scanner(arg)
            return NO_REPLY   # D4: never answered
        if name in catalogue.WRITE_RPCS:
            if req.body_length > self.config.replication.max_allowed_write_size:
                raise HeaderError(errors.ERR_INVALID_DATA)
            decree = rep.storage.last_committed_decree + 1
            resp = rep.storage.write(decree, self._uniq_timestamp_us(), name, arg)
        else:
            resp = rep.storage.read(name, arg)
        return resp

    def _on_query_app_info(self, conn, req, arg):
        apps = {}
        for r in self.replicas.values():
            apps[r.app.app_id] = r.app.to_thrift()
        return thrift.meta_admin.query_app_info_response(err=errors.ERR_OK,
                                                         apps=list(apps.values()))

    # ------------------------------------------------------------------ replicas
    def _replica_path(self, gpid: Gpid) -> str:
        return os.path.join(self.reps_dir, f"{gpid.app_id}.{gpid.partition_index}.pegasus")

    def _open_replica(self, gpid: Gpid, app: App, ballot: int = 0) -> Replica:
        rep = self.replicas.get(gpid)
        if rep is not None:
            return rep
        path = self._replica_path(gpid)
        os.makedirs(path, exist_ok=True)
        storage = StorageApp.open(os.path.join(path, "data"), gpid,
                                  engine=self.config.replication.storage_engine,
                                  envs=dict(app.envs), server=self.server_text,
                                  sync=self.config.replication.rocksdb_wal_sync)
        rep = Replica(gpid, path, app, storage, ballot)
        rep.save()
        self.replicas[gpid] = rep
        logger.info("replica {} opened at {} (decree {})", gpid, path,
                    storage.last_committed_decree)
        return rep

    def _load_local_replicas(self) -> None:
        for name in sorted(os.listdir(self.reps_dir)):
            meta_file = os.path.join(self.reps_dir, name, "replica.json")
            if not name.endswith(".pegasus") or not os.path.exists(meta_file):
                continue
            try:
                with open(meta_file) as f:
                    saved = json.load(f)
                app = App.from_info_json(saved["app_info"])
                a, p = name[:-len(".pegasus")].split(".")
                self._open_replica(Gpid(int(a), int(p)), app, int(saved.get("ballot", 0)))
            except Exception:
                logger.exception("cannot open local replica {}; left untouched", name)

    def _close_replica(self, gpid: Gpid, remove: bool = False) -> None:
        rep = self.replicas.pop(gpid, None)
        if rep is None:
            return
        rep.status = INACTIVE
        rep.storage.close()
        if remove:
            shutil.rmtree(rep.path, ignore_errors=True)
        logger.info("replica {} closed{}", gpid, " and removed" if remove else "")

    def _become_primary(self, rep: Replica, ballot: int) -> None:
        if rep.ballot != ballot or rep.status != PRIMARY:
            rep.ballot = ballot
            rep.save()
            rep.status = PRIMARY
            rep.primary_since = time.monotonic()
            logger.info("replica {} is primary at ballot {}", rep.gpid, ballot)

    def _apply_app_info(self, rep: Replica, info) -> None:
        app = App.from_thrift(info)
        if app.envs != rep.app.envs:
            rep.storage.set_envs(dict(app.envs))
        rep.app = app

    # ------------------------------------------------------------------ meta interaction
    def _meta_addr(self):
        return self.metas[self.meta_index % len(self.metas)]

    def _on_proposal(self, conn, req, arg):
        if arg.type == CT_ASSIGN_PRIMARY and arg.node == self.address:
            gevent.spawn(self._assign_primary, arg)
        else:
            logger.warning("proposal {} for {} ignored (not supported yet)", arg.type,
                           arg.config.pid if arg.config else None)
        return NO_REPLY

    def _assign_primary(self, proposal) -> None:
        pc = PartitionConfig.from_thrift(proposal.config)
        app = App.from_thrift(proposal.info)
        rep = self._open_replica(pc.pid, app)
        if rep.status == PRIMARY or rep.proposing:
            return
        rep.proposing = True
        try:
            new = PartitionConfig(pc.pid, pc.ballot + 1, pc.max_replica_count, self.address,
                                  [], list(pc.last_drops), rep.storage.last_committed_decree,
                                  pc.partition_flags)
            req = thrift.meta_admin.configuration_update_request(
                info=proposal.info, config=new.to_thrift(), type=CT_ASSIGN_PRIMARY,
                node=self.address, host_node=INVALID_ADDRESS)
            resp = self.client.call(self._meta_addr(), "RPC_CM_UPDATE_PARTITION_CONFIGURATION",
                                    req, timeout=5.0)
            if resp.err == errors.ERR_OK and resp.config.primary == self.address:
                self._apply_app_info(rep, proposal.info)
                self._become_primary(rep, resp.config.ballot)
            else:
                logger.info("assign primary of {} refused by meta: {}", pc.pid, resp.err)
        except RpcError as e:
            logger.warning("assign primary of {}: {}", pc.pid, e)
        finally:
            rep.proposing = False

    def _beacon_once(self) -> bool:
        addr = self._meta_addr()
        msg = thrift.fd.beacon_msg(time=int(time.time() * 1000), from_node=self.address,
                                   to_node=RpcAddress(addr[0], addr[1]),
                                   start_time=int(self.start_time * 1000))
        timeout = self.config.replication.fd_beacon_interval_seconds * 2 / 3
        try:
            ack = self.client.call(addr, "RPC_FD_FAILURE_DETECTOR_PING", msg, timeout=timeout)
        except RpcError:
            self.meta_index += 1
            return False
        if not ack.is_master:
            if ack.primary_node and not ack.primary_node.is_invalid:
                leader = (ack.primary_node.host, ack.primary_node.port)
                if leader in self.metas:
                    self.meta_index = self.metas.index(leader)
            else:
                self.meta_index += 1
            return False
        return True

    def _beacon_loop(self) -> None:
        interval = self.config.replication.fd_beacon_interval_seconds
        while True:
            ok = self._beacon_once()
            if ok and not self.meta_connected:
                self.meta_connected = True
                gevent.spawn(self._config_sync_once)
            elif not ok:
                self.meta_connected = False
            gevent.sleep(interval if ok else min(1.0, interval))

    def _config_sync_once(self) -> None:
        # At most one config sync in flight: the meta fences replica reports at drops by counting
        # syncs per node, which assumes a node never has two outstanding (meta/state.py).
        if self._syncing:
            return
        self._syncing = True
        try:
            self._config_sync()
        finally:
            self._syncing = False

    def _config_sync(self) -> None:
        stored = [thrift.metadata.replica_info(
            pid=g, ballot=r.ballot, status=0, last_committed_decree=r.storage.last_committed_decree,
            last_prepared_decree=r.storage.last_committed_decree,
            last_durable_decree=r.storage.last_committed_decree, app_type=r.app.app_type,
            disk_tag="") for g, r in self.replicas.items()]
        req = thrift.meta_admin.configuration_query_by_node_request(node=self.address,
                                                                   stored_replicas=stored)
        sent_at = time.monotonic()
        try:
            resp = self.client.call(self._meta_addr(), "RPC_CM_CONFIG_SYNC", req, timeout=5.0)
        except RpcError as e:
            logger.debug("config sync failed: {}", e)
            return
        if resp.err != errors.ERR_OK:
            logger.info("config sync answered {}", resp.err)
            return
        listed = set()
        for upd in resp.partitions or []:
            pc = PartitionConfig.from_thrift(upd.config)
            listed.add(pc.pid)
            if pc.primary == self.address:
                rep = self.replicas.get(pc.pid)
                if rep is None:
                    if not os.path.exists(self._replica_path(pc.pid)):
                        logger.warning("meta lists {} as primary here but it has no local data; "
                                       "opening it empty", pc.pid)
                    rep = self._open_replica(pc.pid, App.from_thrift(upd.info), pc.ballot)
                self._apply_app_info(rep, upd.info)
                self._become_primary(rep, pc.ballot)
        for g in list(self.replicas):
            rep = self.replicas[g]
            # a replica that became primary after this sync was sent is not in the answer yet
            if g not in listed and rep.status == PRIMARY and not rep.proposing \
                    and rep.primary_since < sent_at:
                logger.info("replica {} no longer assigned here; closing", g)
                self._close_replica(g)
        for r in resp.gc_replicas or []:
            if r.pid not in listed:
                self._close_replica(r.pid, remove=True)
                shutil.rmtree(self._replica_path(r.pid), ignore_errors=True)

    def _config_sync_loop(self) -> None:
        interval = self.config.replication.config_sync_interval_ms / 1000.0
        while True:
            gevent.sleep(interval)
            if self.meta_connected:
                self._config_sync_once()

    def _sweep_loop(self) -> None:
        interval = self.config.replication.expired_record_sweep_interval_seconds
        if interval <= 0:
            return
        while True:
            gevent.sleep(interval * (0.5 + random.random()))
            for rep in list(self.replicas.values()):
                try:
                    rep.storage.remove_expired(10000)
                except Exception:
                    logger.exception("expired-record sweep of {} failed", rep.gpid)
                gevent.sleep(0)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._load_local_replicas()
        self.server.start()
        self._loops = [gevent.spawn(self._beacon_loop), gevent.spawn(self._config_sync_loop),
                       gevent.spawn(self._sweep_loop)]
        logger.info("replica server started on {} with {} local replicas", self.address,
                    len(self.replicas))

    def stop(self) -> None:
        for g in self._loops:
            g.kill()
        self.server.stop()
        self.client.close()
        for g in list(self.replicas):
            self._close_replica(g)

