"""The replica server process driver ("replica stub"): one PacificA core per partition replica,
their private logs and storage, the RPCs between replicas, and the node's dealings with the meta.

Each partition replica is a ``ReplicaCore`` (``replica/pacifica.py``, sans-IO) plus its
``StorageApp`` and ``ReplicaLog``. This module turns messages into core calls and performs the
effects the core returns (``replica/events.py``):

* **One executor greenlet** runs every core call and every effect, in order. RPC handlers,
  reply callbacks and timers only queue work for it (``post``), so a core is never entered twice
  and applies reach storage in decree order. Effects never wait on the network: peer messages
  go through ``Messenger`` (batched per peer, replies by callback) and client replies are
  collected per connection and written by a short-lived greenlet after each round.
* **Group commit**: ``AppendLog`` effects of a round are collected and written per replica with
  one ``ReplicaLog.append`` (one write; one fdatasync when ``[replication] plog_force_flush``,
  then in gevent's threadpool so the process keeps serving) before the round's
  ``on_log_appended`` calls. A client write is acknowledged only after it is in the private log
  of every member (the core's rule) and applied to storage.
* **Replies of the replication RPCs** are RPC replies, as upstream: RPC_PREPARE is answered by
  the ``prepare_ack`` the core sends once the mutation is logged; RPC_GROUP_CHECK, RPC_LEARN and
  RPC_LEARN_COMPLETION_NOTIFY likewise. The driver keeps the open request under a key the reply
  message carries (gpid, ballot and decree for a prepare; the learn round it numbers itself) and
  answers it when the core's ``Send`` of that reply comes out.
* **Meta**: beacons (RPC_FD_FAILURE_DETECTOR_PING) renew a lease of ``fd_lease_seconds`` from
  the send time of the last acknowledged beacon; when it runs out every core stops serving
  (meta.md §6.3). A new lease triggers a config sync (RPC_CM_CONFIG_SYNC, at most one in
  flight), which reopens, updates or closes replicas; proposals (RPC_CONFIG_PROPOSAL) go to the
  cores, their reports to RPC_CM_UPDATE_PARTITION_CONFIGURATION.
* **Learning by checkpoint** copies the learnee's RocksDB checkpoint with the nfs RPCs
  (``replica/nfs.py``) in a separate greenlet, then swaps it in on the executor.

Client requests (protocol.md §6.8): header app_id > 0 is a storage request for
gpid(app_id, partition_index); no replica here -> ERR_OBJECT_NOT_FOUND; a replica that is not
the serving primary -> ERR_INVALID_STATE; a write body over ``max_allowed_write_size`` ->
ERR_INVALID_DATA; fewer live members than ``mutation_2pc_min_replica_count`` ->
ERR_NOT_ENOUGH_MEMBER.

Files: ``<data>/replica/reps/<app>.<pidx>.pegasus/{replica.json, data/rdb, plog/}``;
``replica.json`` holds the app info, the ballot and the member ballot (``PersistBallot``).

The core's clock (``now``) is the monotonic clock shifted to the wall clock at start, so that
mutation timestamps are wall-clock microseconds and deadlines never jump.

Must not import rocksdict.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Tuple

import gevent
import gevent.event
from loguru import logger

from pegasus_server import admin_http, errors
from pegasus_server.base import Gpid, RpcAddress
from pegasus_server.config import Config
from pegasus_server.meta.model import App
from pegasus_server.metrics import MetricsRegistry
from pegasus_server.remote_command import CommandTable, register_server_commands
from pegasus_server.replica import events as ev
from pegasus_server.replica import mutation as mu
from pegasus_server.replica import nfs
from pegasus_server.replica import wire
from pegasus_server.replica.admin import ReplicaAdmin, denied, deny_policy
from pegasus_server.replica.log_store import ReplicaLog
from pegasus_server.replica.pacifica import Options, ReplicaCore
from pegasus_server.replica.plog import PlogError, sync_policy
from pegasus_server.replica.storage_jobs import StorageJobs
from pegasus_server.rpc import catalogue, codec, thrift
from pegasus_server.rpc.client import Messenger, RpcClient
from pegasus_server.rpc.dispatch import DEFERRED, NO_REPLY, Dispatcher, HeaderError
from pegasus_server.rpc.server import RpcServer
from pegasus_server.storage.app import StorageApp

TICK_SECONDS = 0.02
CONFIG_SYNC_TIMEOUT = 5.0
INACTIVE_KEEP_SECONDS = 600.0     # an unlisted INACTIVE replica stays open this long
PENDING_REPLY_SECONDS = 10.0      # an inbound request the core never answers is forgotten
LEARN_LOG_LIMIT = 5000            # learning by log ships at most this many mutations
CHECKPOINTS_KEPT = 2

DISCONNECTED, CONNECTING, CONNECTED = "disconnected", "connecting", "connected"


@dataclass(frozen=True)
class _ClientUpdate(mu.Update):
    """A client write as the primary received it: the argument bytes (what is logged and sent
    to the secondaries) and the already decoded request (what the primary applies)."""
    request: object = field(default=None, compare=False)


def _requests_of(m) -> List[Tuple[str, object]]:
    """``[(rpc_name, request)]`` of a mutation, empty writes left out: the core's stand-in
    (primary) carries ``_ClientUpdate`` payloads, mutations from the wire or the log bytes."""
    if isinstance(m, mu.Mutation):
        return mu.decode_requests(m)
    out = []
    for u in m.updates:
        if u.code == ev.RPC_WRITE_EMPTY:
            continue
        p = u.payload
        req = getattr(p, "request", None)
        if req is None:
            req = mu.decode_request(u.code, p.data if isinstance(p, mu.Update) else p)
        out.append((u.code, req))
    return out


class Replica:
    """One partition replica on this node."""

    def __init__(self, gpid: Gpid, path: str, app: App, storage: StorageApp, log: ReplicaLog,
                 core: ReplicaCore, now: float):
        self.gpid = gpid
        self.path = path
        self.app = app
        self.storage = storage
        self.log = log
        self.core = core
        self.inactive_since = now
        self.plog_gc = True              # replica.disable-plog-gc turns it off
        self.deny = deny_policy(app.envs)    # env replica.deny_client_request
        self.counters: dict = {}         # storage RPC name -> request counter (ReplicaAdmin)

    @property
    def data_dir(self) -> str:
        return os.path.join(self.path, "data")

    def save(self) -> None:
        save_replica_info(self.path, self.app, self.core.ballot, self.core.member_ballot)


def save_replica_info(path: str, app: App, ballot: int, member_ballot: int) -> None:
    tmp = os.path.join(path, "replica.json.tmp")
    with open(tmp, "w") as f:
        json.dump({"app_info": app.info_json(), "ballot": ballot,
                   "member_ballot": member_ballot}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(path, "replica.json"))


def load_replica_info(path: str) -> Tuple[App, int, int]:
    with open(os.path.join(path, "replica.json")) as f:
        saved = json.load(f)
    ballot = int(saved.get("ballot", 0))
    return App.from_info_json(saved["app_info"]), ballot, int(saved.get("member_ballot", ballot))


# reply messages of the replication RPCs -> the key their request waits under
def _reply_key(to, gpid, msg):
    t = type(msg)
    if t is ev.PrepareAck:
        return (to, gpid, "prepare", msg.ballot, msg.decree)
    if t is ev.GroupCheckReply:
        return (to, gpid, "group_check")
    if t is ev.LearnResponse:
        return (to, gpid, "learn", msg.seq)
    if t is ev.LearnNotifyReply:
        return (to, gpid, "notify", msg.signature)
    return None


_REPLY_ENCODERS = {
    ev.PrepareAck: wire.to_prepare_ack,
    ev.GroupCheckReply: wire.to_group_check_reply,
    ev.LearnResponse: wire.to_learn_response,
    ev.LearnNotifyReply: wire.to_learn_notify_reply,
}


class ReplicaNode:
    def __init__(self, config: Config, workdir: str = "."):
        self.config = config
        rc = config.replication
        self.start_time = time.time()
        self._clock_offset = time.time() - time.monotonic()
        self.address = RpcAddress(config.server.host, config.server.port)
        self.server_text = f"{self.address.host}:{self.address.port}"
        data_dir = rc.data_dirs.split(",")[0].split(":")[-1].strip()
        if not os.path.isabs(data_dir):
            data_dir = os.path.join(workdir, data_dir)
        self.reps_dir = os.path.join(data_dir, "replica", "reps")
        os.makedirs(self.reps_dir, exist_ok=True)
        self.options = Options(mutation_2pc_min_replica_count=rc.mutation_2pc_min_replica_count,
                               group_check_interval=rc.group_check_interval_ms / 1000.0,
                               prepare_timeout_secondary=rc.prepare_timeout_ms_for_secondaries
                               / 1000.0,
                               prepare_timeout_learner=rc.prepare_timeout_ms_for_potential_secondaries
                               / 1000.0,
                               staleness_for_commit=rc.staleness_for_commit,
                               max_mutation_count_in_prepare_list=rc.max_mutation_count_in_prepare_list)
        self.replicas: Dict[Gpid, Replica] = {}
        self.closed: Dict[Gpid, Tuple[int, int, int]] = {}   # files kept, reported as PS_ERROR
        self.metas = config.meta_server.servers
        self.meta_index = 0
        self.client = RpcClient()
        self.messenger = Messenger(self.client)
        self.commands = CommandTable(self.start_time)
        self.metrics = MetricsRegistry(rc.cluster_name, "replica", config.server.host,
                                       config.server.port)
        self.admin = ReplicaAdmin(self)
        self.dispatcher = Dispatcher()
        self.server = RpcServer(config.server.host, config.server.port, self.dispatcher,
                                config.network.max_frame_bytes)
        self.nfs = nfs.NfsService(self._checkpoint_dirs)
        # meta connection state (replication.md §6.6, meta.md §6.3)
        self.conn = DISCONNECTED
        self.last_acked = float("-inf")
        self.sync_seq = 0
        self.sync_outstanding: Optional[Tuple[int, float]] = None
        self.sync_wanted = False
        # executor
        self._inbox: deque = deque()
        self._wake = gevent.event.Event()
        self._appends: Dict[Gpid, list] = {}
        self._queued: set = set()                 # replicas with client writes to flush
        self._frames: Dict[object, list] = {}
        self._pending_replies: Dict[tuple, list] = {}
        self._learn_seq = 0
        self._last_apply: Tuple[Optional[Gpid], int, list] = (None, 0, [])
        self._threadpool_appends = rc.plog_force_flush
        self.jobs = StorageJobs(self)
        self._loops: List[gevent.Greenlet] = []
        self._register()

    # ------------------------------------------------------------------ clock, executor
    def now(self) -> float:
        return time.monotonic() + self._clock_offset

    def post(self, fn, *args) -> None:
        """Queue ``fn(*args)`` for the executor. Never blocks; safe from any greenlet."""
        self._inbox.append((fn, args))
        self._wake.set()

    def _executor(self) -> None:
        inbox = self._inbox
        while True:
            self._wake.wait()
            self._wake.clear()
            while inbox:
                for _ in range(min(len(inbox), 512)):
                    fn, args = inbox.popleft()
                    try:
                        fn(*args)
                    except Exception:
                        logger.exception("replica executor: {} failed", getattr(fn, "__name__", fn))
                # the round's tail; a failure is logged and never ends the executor
                for step in (self._flush_writes, self._flush_appends, self._flush_frames):
                    try:
                        step()
                    except Exception:
                        logger.exception("replica executor: {} failed", step.__name__)
                if inbox:
                    gevent.sleep(0)          # let connections read while busy

    def _flush_writes(self) -> None:
        """The client writes of this round enter 2PC together: one mutation per partition
        carries as many of them as batching allows."""
        if not self._queued:
            return
        queued, self._queued = self._queued, set()
        now = self.now()
        for rep in queued:
            if self.replicas.get(rep.gpid) is rep:
                self._perform(rep, rep.core.flush_writes(now))

    def _flush_frames(self) -> None:
        if not self._frames:
            return
        frames, self._frames = self._frames, {}
        for conn, out in frames.items():
            # written at the end of the round, after every core call of it: a send that has to
            # wait for a slow reader only delays the next round
            conn.send(out[0] if len(out) == 1 else b"".join(out))

    def _reply_frame(self, conn, req, err: str, value=None) -> None:
        if err == errors.ERR_OK:
            entry = catalogue.get(req.name)
            result = codec.encode_result(entry.result_spec, value)
            frame = codec.encode_reply(req.name, req.seqid, err, result)
        else:
            frame = codec.encode_reply(req.name, req.seqid, err)
        self._frames.setdefault(conn, []).append(frame)

    # ------------------------------------------------------------------ wiring
    def _register(self) -> None:
        d = self.dispatcher
        for name in catalogue.names():
            if name.startswith("RPC_RRDB_RRDB_"):
                d.register(name, self._on_storage_rpc)
        d.register("RPC_CONFIG_PROPOSAL", self._on_proposal_rpc)
        d.register("RPC_PREPARE", self._inbound(wire.from_prepare_msg))
        d.register("RPC_GROUP_CHECK", self._inbound(wire.from_group_check_request))
        d.register("RPC_LEARN", self._inbound(wire.from_learn_request))
        d.register("RPC_LEARN_COMPLETION_NOTIFY", self._inbound(wire.from_learn_completion))
        d.register("RPC_LEARN_ADD_LEARNER", self._inbound(wire.from_add_learner))
        d.register("RPC_REMOVE_REPLICA", self._inbound(wire.from_remove_replica))
        self.nfs.register(d)
        d.register("RPC_CLI_CLI_CALL", lambda c, r, a: self.commands.call(a.cmd, a.arguments))
        d.register("RPC_QUERY_APP_INFO", self._on_query_app_info)
        admin_http.register(d, self.config, self.start_time, self.metrics)
        register_server_commands(self.commands, self.config, self.metrics)
        self.admin.register(d, self.commands)

    def replicas_json(self) -> str:
        out = {}
        for g, r in sorted(self.replicas.items()):
            c = r.core
            out[str(g)] = {"status": ev.STATUS_NAMES[c.status], "ballot": c.ballot,
                           "last_committed_decree": c.last_committed_decree,
                           "last_prepared_decree": c.last_prepared_decree,
                           "last_durable_decree": r.storage.last_durable_decree,
                           "primary": str(c.primary) if c.primary else "",
                           "learner_status": c.learner_status}
        for g, (b, lcd, lpd) in sorted(self.closed.items()):
            out[str(g)] = {"status": "PS_ERROR", "ballot": b, "last_committed_decree": lcd,
                           "last_prepared_decree": lpd, "closed": True}
        return json.dumps(out, indent=4)

    # ------------------------------------------------------------------ client requests
    def _on_storage_rpc(self, conn, req, arg):
        if req.app_id <= 0:
            raise HeaderError(errors.ERR_HANDLER_NOT_FOUND)
        rep = self.replicas.get(Gpid(req.app_id, req.partition_index))
        if rep is None:
            raise HeaderError(errors.ERR_OBJECT_NOT_FOUND)
        if not rep.core.is_serving(self.now()):
            raise HeaderError(errors.ERR_INVALID_STATE)
        name = req.name
        if self.admin.deny_client:
            return NO_REPLY                  # replica.deny-client: the client times out
        if rep.deny is not None:
            refused = denied(rep.deny, name)
            if refused == "timeout":
                return NO_REPLY
            if refused is not None:
                raise HeaderError(refused)
        self.admin.count(rep, name, req.body_length)
        if name == "RPC_RRDB_RRDB_CLEAR_SCANNER":
            rep.storage.clear_scanner(arg)
            return NO_REPLY   # D4: never answered
        if name in catalogue.WRITE_RPCS:
            if req.body_length > self.config.replication.max_allowed_write_size:
                raise HeaderError(errors.ERR_INVALID_DATA)
            upd = _ClientUpdate(name, mu.DSF_THRIFT_BINARY, bytes(req.body[req.arg_pos:]),
                                request=arg)
            self.post(self._client_write, rep, conn, req, upd)
            return DEFERRED
        return rep.storage.read(name, arg)

    def _client_write(self, rep: Replica, conn, req, upd) -> None:
        if self.replicas.get(rep.gpid) is not rep:
            self._reply_frame(conn, req, errors.ERR_OBJECT_NOT_FOUND)
            return
        self._perform(rep, rep.core.client_write(self.now(), req.name, upd, (conn, req),
                                                 len(upd.data), defer=True))
        self._queued.add(rep)

    def _on_query_app_info(self, conn, req, arg):
        apps = {}
        for r in self.replicas.values():
            apps[r.app.app_id] = r.app.to_thrift()
        return thrift.meta_admin.query_app_info_response(err=errors.ERR_OK,
                                                         apps=list(apps.values()))

    # ------------------------------------------------------------------ replicas
    def _replica_path(self, gpid: Gpid) -> str:
        return os.path.join(self.reps_dir, f"{gpid.app_id}.{gpid.partition_index}.pegasus")

    def _open_replica(self, gpid: Gpid, app: Optional[App] = None) -> Replica:
        """Open a replica from its files, creating them if there are none."""
        self.closed.pop(gpid, None)
        path = self._replica_path(gpid)
        ballot = member = 0
        if os.path.exists(os.path.join(path, "replica.json")):
            saved_app, ballot, member = load_replica_info(path)
            app = app or saved_app
        elif app is None:
            raise ValueError(f"no app info for new replica {gpid}")
        os.makedirs(path, exist_ok=True)
        rc = self.config.replication
        storage = self._open_storage(gpid, os.path.join(path, "data"), app)
        log = ReplicaLog(os.path.join(path, "plog"), gpid, sync=sync_policy(rc.plog_force_flush),
                         file_size_limit=rc.log_private_file_size_mb << 20,
                         reserve_max_bytes=rc.log_private_reserve_max_size_mb << 20,
                         reserve_max_seconds=rc.log_private_reserve_max_time_seconds)
        if log.problem is not None:
            logger.warning("replica {}: private log tail repaired: {}", gpid, log.problem)
        now = self.now()
        core = ReplicaCore(gpid, self.address, self.options, ballot=ballot, member_ballot=member,
                           last_committed_decree=storage.last_committed_decree,
                           max_replica_count=app.max_replica_count)
        rep = Replica(gpid, path, app, storage, log, core, now)
        rep.save()
        self.replicas[gpid] = rep
        self.admin.opened(rep)
        self._perform(rep, core.on_lease(now, self.lease_until()))
        self._perform(rep, core.replay(now, log.mutations()))
        logger.info("replica {} opened at {} (ballot {}, storage decree {}, log {} mutations)",
                    gpid, path, ballot, storage.last_committed_decree, len(log.index))
        return rep

    def _replica_for(self, gpid: Gpid, app: Optional[App]) -> Optional[Replica]:
        rep = self.replicas.get(gpid)
        if rep is not None:
            return rep
        try:
            return self._open_replica(gpid, app)
        except Exception:
            logger.exception("cannot open replica {}", gpid)
            return None

    def _load_local_replicas(self) -> None:
        for name in sorted(os.listdir(self.reps_dir)):
            path = os.path.join(self.reps_dir, name)
            if not name.endswith(".pegasus") or not os.path.exists(
                    os.path.join(path, "replica.json")):
                continue
            try:
                a, p = name[:-len(".pegasus")].split(".")
                self._open_replica(Gpid(int(a), int(p)))
            except Exception:
                logger.exception("cannot open local replica {}; left untouched", name)

    def _close_replica(self, gpid: Gpid, remove: bool = False) -> None:
        rep = self.replicas.pop(gpid, None)
        self._appends.pop(gpid, None)
        if rep is not None:
            c = rep.core
            if not remove:
                self.closed[gpid] = (c.member_ballot, c.last_committed_decree,
                                     c.last_prepared_decree)
            if c.status == ev.PS_PRIMARY:
                self._perform(rep, c.on_meta_disconnected(self.now()))   # answers the queue
            self.jobs.wait(rep.storage)
            rep.storage.close()
            rep.log.close()
        self.admin.closed(gpid)
        if remove:
            self.closed.pop(gpid, None)
            shutil.rmtree(self._replica_path(gpid), ignore_errors=True)
        logger.info("replica {} closed{}", gpid, " and removed" if remove else "")

    def _apply_app_info(self, rep: Replica, info) -> None:
        if info is None:
            return
        app = App.from_thrift(info)
        if app.envs != rep.app.envs:
            rep.storage.set_envs(dict(app.envs))
            rep.deny = deny_policy(app.envs)
        if app != rep.app:
            rep.app = app
            rep.save()

    def _checkpoint_dirs(self) -> List[str]:
        out = []
        for rep in list(self.replicas.values()):
            for d in rep.storage.list_checkpoints():
                out.append(os.path.join(rep.data_dir, f"checkpoint.{d}"))
        return out

    # ------------------------------------------------------------------ effects
    def _perform(self, rep: Replica, effects) -> None:
        gpid = rep.gpid
        for e in effects:
            t = type(e)
            if t is ev.Send:
                self._send(rep, e.to, e.msg)
            elif t is ev.AppendLog:
                self._appends.setdefault(gpid, []).append(
                    (rep.core, wire.to_real_mutation(e.mutation)))
            elif t is ev.Apply:
                m = e.mutation
                resps = rep.storage.write_batch(m.decree, m.timestamp_us, _requests_of(m))
                self._last_apply = (gpid, m.decree, resps)
                if self.admin.verbose_commit_log:
                    logger.info("replica {}: committed decree {} ({} updates)", gpid, m.decree,
                                len(m.updates))
            elif t is ev.ReplyClient:
                self._reply_clients(rep, e)
            elif t is ev.ReportToMeta:
                self._report(rep, e)
            elif t is ev.PersistBallot:
                rep.save()
            elif t is ev.DiscardLogAfter:
                pend = self._appends.get(gpid)
                if pend:
                    self._appends[gpid] = [(c, m) for c, m in pend if m.decree <= e.decree]
                rep.log.discard_after(e.decree)
            elif t is ev.ResetStorage:
                self._reset_storage(rep, None)
            elif t is ev.SendLearnResponse:
                self._send_learn_response(rep, e)
            elif t is ev.InstallCheckpoint:
                gevent.spawn(self._copy_checkpoint, rep, rep.core, e)
            elif t is ev.StatusChanged:
                logger.info("replica {}: {} -> {} at ballot {}", gpid, ev.STATUS_NAMES[e.old],
                            ev.STATUS_NAMES[e.new], e.ballot)
                if e.new == ev.PS_INACTIVE:
                    rep.inactive_since = self.now()
            else:
                raise TypeError(f"unknown effect {e!r}")

    def _reply_clients(self, rep: Replica, e: ev.ReplyClient) -> None:
        resps: list = []
        if e.err == errors.ERR_OK:
            g, decree, applied = self._last_apply
            if g == rep.gpid and decree == e.decree:
                resps = applied
        for i, (conn, req) in enumerate(e.clients):
            if e.err != errors.ERR_OK:
                self._reply_frame(conn, req, e.err)
            elif i < len(resps):
                self._reply_frame(conn, req, errors.ERR_OK, resps[i])
            else:
                logger.error("replica {}: no response for client {} of decree {}", rep.gpid, i,
                             e.decree)
                self._reply_frame(conn, req, errors.ERR_UNKNOWN)

    def _flush_appends(self) -> None:
        while self._appends:
            appends, self._appends = self._appends, {}
            work = [(self.replicas.get(g), items) for g, items in appends.items()]
            work = [(rep, items) for rep, items in work if rep is not None and items]
            if not work:
                return

            def write():
                failed = []
                for rep, items in work:
                    try:
                        rep.log.append([m for _, m in items])
                    except PlogError as err:
                        failed.append((rep, err))
                return failed
            if self._threadpool_appends:
                failed = gevent.get_hub().threadpool.apply(write)
            else:
                failed = write()
            bad = {id(rep) for rep, _ in failed}
            for rep, err in failed:
                logger.error("replica {}: private log append failed, closing the replica: {}",
                             rep.gpid, err)
                self._close_replica(rep.gpid)
            now = self.now()
            for rep, items in work:
                if id(rep) in bad or self.replicas.get(rep.gpid) is not rep:
                    continue
                rep.log.trim(rep.storage.last_committed_decree)
                for core, m in items:
                    if rep.core is core:
                        self._perform(rep, core.on_log_appended(now, m.decree, m.ballot))

    def _open_storage(self, gpid: Gpid, data_dir: str, app: App) -> StorageApp:
        rc = self.config.replication
        return StorageApp.open(data_dir, gpid, engine=rc.storage_engine, envs=dict(app.envs),
                               server=self.server_text, sync=rc.rocksdb_wal_sync)

    def _reset_storage(self, rep: Replica, checkpoint_dir: Optional[str]) -> None:
        self.jobs.wait(rep.storage)
        rep.storage.close()
        if checkpoint_dir is None:
            logger.info("replica {}: storage wiped to learn from scratch", rep.gpid)
            shutil.rmtree(rep.data_dir, ignore_errors=True)
        else:
            StorageApp.install_checkpoint(rep.data_dir, checkpoint_dir)
        rep.storage = self._open_storage(rep.gpid, rep.data_dir, rep.app)

    # ------------------------------------------------------------------ peer messages
    def _answer(self, gpid: Gpid, to, msg) -> None:
        """Answer the oldest open inbound request that ``msg`` (a reply message) answers."""
        key = _reply_key(to, gpid, msg)
        waiting = self._pending_replies.get(key)
        if not waiting:
            logger.debug("replica {}: {} to {} has no open request", gpid, type(msg).__name__, to)
            return
        conn, req, _ = waiting.pop(0)
        if not waiting:
            del self._pending_replies[key]
        self._reply_frame(conn, req, errors.ERR_OK, _REPLY_ENCODERS[type(msg)](msg))

    def _send(self, rep: Replica, to, msg) -> None:
        if type(msg) in _REPLY_ENCODERS:             # the answer of an inbound request
            self._answer(rep.gpid, to, msg)
            return
        t = type(msg)
        g = rep.gpid
        core = rep.core
        addr = (to.host, to.port)
        kw = dict(app_id=g.app_id, partition_index=g.partition_index)
        if t is ev.Prepare:
            self.messenger.send(addr, "RPC_PREPARE", wire.to_prepare_msg(msg),
                                on_reply=self._reply_cb(rep, core, to, msg), **kw)
        elif t is ev.GroupCheck:
            self.messenger.send(addr, "RPC_GROUP_CHECK", wire.to_group_check_request(msg, to, rep.app.to_thrift()),
                                on_reply=self._reply_cb(rep, core, to, msg), **kw)
        elif t is ev.LearnRequest:
            self.messenger.send(addr, "RPC_LEARN", wire.to_learn_request(msg),
                                on_reply=self._reply_cb(rep, core, to, msg),
                                timeout=self.options.learn_timeout + 30, **kw)
        elif t is ev.LearnCompletion:
            self.messenger.send(addr, "RPC_LEARN_COMPLETION_NOTIFY",
                                wire.to_learn_completion(msg),
                                on_reply=self._reply_cb(rep, core, to, msg), **kw)
        elif t is ev.AddLearner:
            self.messenger.send(addr, "RPC_LEARN_ADD_LEARNER", wire.to_add_learner(msg, to, rep.app.to_thrift()),
                                **kw)
        elif t is ev.RemoveReplica:
            self.messenger.send(addr, "RPC_REMOVE_REPLICA", wire.to_remove_replica(msg), **kw)
        else:
            raise TypeError(f"cannot send {msg!r}")

    def _reply_cb(self, rep: Replica, core: ReplicaCore, to, msg):
        def on_reply(err, result):
            self.post(self._on_peer_reply, rep, core, to, msg, err, result)
        return on_reply

    def _on_peer_reply(self, rep: Replica, core: ReplicaCore, to, req_msg, err, result) -> None:
        if self.replicas.get(rep.gpid) is not rep or rep.core is not core:
            return
        g = rep.gpid
        now = self.now()
        t = type(req_msg)
        try:
            if t is ev.Prepare:
                m = req_msg.mutation
                ack = (wire.from_prepare_ack(result) if err == errors.ERR_OK
                       else ev.PrepareAck(g, err, m.ballot, m.decree, 0, 0))
                self._perform(rep, core.on_prepare_ack(now, to, ack))
            elif t is ev.GroupCheck:
                r = (wire.from_group_check_reply(result) if err == errors.ERR_OK
                     else ev.GroupCheckReply(g, err, to, 0, 0))
                self._perform(rep, core.on_group_check_reply(now, to, r))
            elif t is ev.LearnRequest:
                if err == errors.ERR_OK:
                    r = wire.from_learn_response(result, g, seq=req_msg.seq)
                else:
                    r = ev.LearnResponse(g, err, None, seq=req_msg.seq)
                if r.err != errors.ERR_OK:
                    logger.info("replica {}: learning from {} answered {} (signature {})", g, to,
                                r.err, req_msg.signature)
                self._perform(rep, core.on_learn_response(now, to, r))
            elif t is ev.LearnCompletion and err == errors.ERR_OK:
                self._perform(rep, core.on_learn_notify_reply(
                    now, to, wire.from_learn_notify_reply(result)))
        except wire.WireError as e:
            logger.warning("replica {}: bad reply from {}: {}", g, to, e)

    def _inbound(self, decode):
        """Handler of a replication RPC: decode, queue for the executor, answer later (or
        never, for the one-way ones)."""
        def handler(conn, req, arg):
            try:
                msg = decode(arg)
            except wire.WireError as e:
                logger.warning("{} from {}: {}", req.name, getattr(conn, "peer", "?"), e)
                raise HeaderError(errors.ERR_INVALID_DATA)
            gpid = Gpid(req.app_id, req.partition_index)
            app = getattr(arg, "app", None)
            self.post(self._on_replica_msg, conn, req, gpid, msg, app)
            return DEFERRED if catalogue.get(req.name).result_spec is not None else NO_REPLY
        return handler

    def _on_replica_msg(self, conn, req, gpid: Gpid, msg, app_info) -> None:
        now = self.now()
        t = type(msg)
        # who sent it (the core's peer identity), and where its answer waits
        if t is ev.Prepare:
            sender = msg.config.primary
            key = (sender, gpid, "prepare", msg.mutation.ballot, msg.mutation.decree)
        elif t in (ev.GroupCheck, ev.AddLearner):
            sender = msg.config.primary
            key = (sender, gpid, "group_check") if t is ev.GroupCheck else None
        elif t is ev.LearnRequest:
            sender = msg.learner
            self._learn_seq += 1
            msg = replace(msg, seq=self._learn_seq)
            key = (sender, gpid, "learn", msg.seq)
        elif t is ev.LearnCompletion:
            sender = msg.node
            key = (sender, gpid, "notify", msg.signature)
        else:                                          # RemoveReplica
            sender, key = msg.config.primary, None
        if key is not None:
            self._pending_replies.setdefault(key, []).append((conn, req, now + PENDING_REPLY_SECONDS))
        rep = self.replicas.get(gpid)
        if t is ev.GroupCheck and self.conn != CONNECTED:
            return                                     # §6.7: not connected -> ignore
        if rep is None:
            if t is ev.AddLearner or (t is ev.GroupCheck and
                                      msg.config.status == ev.PS_POTENTIAL_SECONDARY):
                if self.conn != CONNECTED:
                    return
                rep = self._replica_for(gpid, App.from_thrift(app_info) if app_info else None)
                if rep is None:
                    return
            else:
                self._answer_missing(gpid, sender, msg)
                return
        core = rep.core
        if t is ev.Prepare:
            eff = core.on_prepare(now, sender, msg)
        elif t is ev.GroupCheck:
            self._apply_app_info(rep, app_info)
            eff = core.on_group_check(now, sender, msg)
        elif t is ev.AddLearner:
            self._apply_app_info(rep, app_info)
            eff = core.on_add_learner(now, sender, msg)
        elif t is ev.LearnRequest:
            limit = LEARN_LOG_LIMIT
            first = rep.log.first_contiguous(core.last_committed_decree, limit)
            eff = core.on_learn(now, sender, msg, first)
        elif t is ev.LearnCompletion:
            eff = core.on_learn_completion(now, sender, msg)
        else:
            eff = core.on_remove(now, msg)
        self._perform(rep, eff)

    def _answer_missing(self, gpid: Gpid, sender, msg) -> None:
        """A request for a replica this node does not have."""
        t = type(msg)
        nf = errors.ERR_OBJECT_NOT_FOUND
        if t is ev.Prepare:
            m = msg.mutation
            reply = ev.PrepareAck(gpid, nf, m.ballot, m.decree, 0, 0)
        elif t is ev.GroupCheck:
            reply = ev.GroupCheckReply(gpid, nf, self.address, 0, 0)
        elif t is ev.LearnRequest:
            reply = ev.LearnResponse(gpid, nf, None, seq=msg.seq)
        elif t is ev.LearnCompletion:
            reply = ev.LearnNotifyReply(gpid, errors.ERR_INVALID_STATE, msg.signature)
        else:
            return
        self._answer(gpid, sender, reply)

    # ------------------------------------------------------------------ learning
    def _send_learn_response(self, rep: Replica, e: ev.SendLearnResponse) -> None:
        resp = e.response
        if e.fill == ev.LT_LOG:
            s = resp.state
            muts = rep.log.range(s.from_decree_excluded, s.to_decree_included)
            resp = replace(resp, state=replace(s, mutations=muts))
        else:
            decree, path = rep.storage.checkpoint()
            self._prune_checkpoints(rep)
            names = []
            for root, _, files in os.walk(path):
                for f in files:
                    names.append(os.path.relpath(os.path.join(root, f), path))
            resp = replace(resp, state=ev.LearnState(0, decree, files=wire.LearnFiles(
                path, tuple(sorted(names)))))
        logger.info("replica {}: learn response to {}: {} ({}, {}]", rep.gpid, e.to,
                    "log" if e.fill == ev.LT_LOG else "checkpoint",
                    resp.state.from_decree_excluded, resp.state.to_decree_included)
        self._send(rep, e.to, resp)

    def _prune_checkpoints(self, rep: Replica) -> None:
        for d in rep.storage.list_checkpoints()[:-CHECKPOINTS_KEPT]:
            shutil.rmtree(os.path.join(rep.data_dir, f"checkpoint.{d}"), ignore_errors=True)

    def _copy_checkpoint(self, rep: Replica, core: ReplicaCore, e: ev.InstallCheckpoint) -> None:
        files = e.state.files
        dest = os.path.join(rep.path, f"learn.{e.seq}.tmp")   # one per round: rounds may overlap
        ok = False
        try:
            shutil.rmtree(dest, ignore_errors=True)
            os.makedirs(dest)
            n, size = nfs.copy_files(self.client, (e.source.host, e.source.port),
                                     files.base_dir, dest, list(files.names))
            logger.info("replica {}: copied checkpoint {} from {}: {} files, {} bytes", rep.gpid,
                        e.state.to_decree_included, e.source, n, size)
            ok = True
        except Exception as exc:
            logger.warning("replica {}: checkpoint copy from {} failed: {}", rep.gpid, e.source,
                           exc)
        self.post(self._install_checkpoint, rep, core, dest, ok, e.seq)

    def _install_checkpoint(self, rep: Replica, core: ReplicaCore, dest: str, ok: bool,
                            seq: int) -> None:
        if self.replicas.get(rep.gpid) is not rep or rep.core is not core or \
                (ok and not core.checkpoint_wanted(seq)):
            shutil.rmtree(dest, ignore_errors=True)     # an earlier round's copy: never swapped in
            return
        now = self.now()
        if ok:
            try:
                self._reset_storage(rep, dest)
            except Exception:
                logger.exception("replica {}: installing the learned checkpoint failed", rep.gpid)
                ok = False
        shutil.rmtree(dest, ignore_errors=True)
        if ok:
            self._perform(rep, core.on_checkpoint_installed(
                now, rep.storage.last_committed_decree, seq))
        else:
            self._perform(rep, core.on_checkpoint_install_failed(now, seq))

    # ------------------------------------------------------------------ meta interaction
    def _meta_addr(self):
        return self.metas[self.meta_index % len(self.metas)]

    def lease_until(self) -> float:
        return self.last_acked + self.config.replication.fd_lease_seconds

    def _report(self, rep: Replica, e: ev.ReportToMeta) -> None:
        logger.info("replica {}: proposing type {} node {} ballot {} to the meta", rep.gpid,
                    e.type, e.node, e.config.ballot)
        core = rep.core
        req = wire.to_update_request(e, app=rep.app.to_thrift())

        def on_reply(err, result):
            self.post(self._on_meta_reply, rep, core, err, result)
        self.messenger.send(self._meta_addr(), "RPC_CM_UPDATE_PARTITION_CONFIGURATION", req,
                            on_reply=on_reply)

    def _on_meta_reply(self, rep: Replica, core: ReplicaCore, err, result) -> None:
        if self.replicas.get(rep.gpid) is not rep or rep.core is not core:
            return
        cfg = None
        if err == errors.ERR_OK:
            err, cfg = wire.from_update_response(result)
        self._perform(rep, core.on_meta_update_reply(self.now(), err, cfg))

    def _on_proposal_rpc(self, conn, req, arg):
        self.post(self._on_proposal, arg)
        return NO_REPLY

    def _on_proposal(self, arg) -> None:
        if self.conn != CONNECTED:
            return
        p = wire.from_config_proposal(arg)
        gpid = p.config.gpid
        rep = self.replicas.get(gpid)
        if rep is None:
            if p.type != ev.CT_ASSIGN_PRIMARY or arg.info is None:
                return
            rep = self._replica_for(gpid, App.from_thrift(arg.info))
            if rep is None:
                return
        self._apply_app_info(rep, arg.info)
        self._perform(rep, rep.core.on_proposal(self.now(), p))

    def _beacon_loop(self) -> None:
        interval = self.config.replication.fd_beacon_interval_seconds
        failed_at: Dict[tuple, float] = {}   # meta -> when a beacon to it last failed
        while True:
            addr = self._meta_addr()
            sent_at = self.now()
            msg = thrift.fd.beacon_msg(time=int(time.time() * 1000), from_node=self.address,
                                       to_node=RpcAddress(addr[0], addr[1]),
                                       start_time=int(self.start_time * 1000))
            ok = False
            try:
                ack = self.client.call(addr, "RPC_FD_FAILURE_DETECTOR_PING", msg,
                                       timeout=interval * 2 / 3)
                if ack.is_master:
                    ok = True
                    self.post(self._on_beacon_ack, sent_at)
                else:
                    hint = ack.primary_node
                    hint = (hint.host, hint.port) if hint and not hint.is_invalid else None
                    # a follower names the old leader until ZooKeeper ends its session: a hint
                    # to a meta that just failed us is stale, try the next one instead
                    if hint in self.metas and \
                            time.monotonic() - failed_at.get(hint, -1e9) > 3 * interval:
                        self.meta_index = self.metas.index(hint)
                    else:
                        self.meta_index += 1
            except errors.RpcError:
                failed_at[addr] = time.monotonic()
                self.meta_index += 1
            gevent.sleep(interval if ok else min(1.0, interval))

    def _on_beacon_ack(self, sent_at: float) -> None:
        now = self.now()
        lapsed = now >= self.lease_until()
        self.last_acked = max(self.last_acked, sent_at)
        lease = self.lease_until()
        for rep in list(self.replicas.values()):
            self._perform(rep, rep.core.on_lease(now, lease))
        if lapsed and self.conn != DISCONNECTED:
            logger.warning("meta lease had lapsed unnoticed; reconnecting")
            self.conn = DISCONNECTED
        if self.conn == DISCONNECTED and now < lease:
            logger.info("connected to the meta server {}:{}", *self._meta_addr())
            self.conn = CONNECTING
            self._config_sync()

    def _lease_check(self) -> None:
        rc = self.config.replication
        now = self.now()
        if self.conn != DISCONNECTED and \
                now + rc.fd_check_interval_seconds - self.last_acked > rc.fd_lease_seconds:
            logger.warning("lost the meta lease (last beacon acknowledged {:.1f}s ago)",
                           now - self.last_acked)
            self.conn = DISCONNECTED
            self.sync_seq += 1                 # answers to earlier syncs are stale now
            for rep in list(self.replicas.values()):
                self._perform(rep, rep.core.on_meta_disconnected(now))
        out = self.sync_outstanding
        if out is not None and now - out[1] >= CONFIG_SYNC_TIMEOUT:
            self.sync_outstanding = None       # given up: may send again
            if self.sync_wanted:
                self._config_sync()

    def _config_sync(self) -> None:
        """Send RPC_CM_CONFIG_SYNC unless one is outstanding (then send once it is answered):
        the meta fences replica reports by counting syncs per node."""
        if self.conn == DISCONNECTED:
            return
        now = self.now()
        if self.sync_outstanding is not None:
            self.sync_wanted = True
            return
        self.sync_wanted = False
        md = thrift.metadata
        infos = [md.replica_info(
            pid=g, ballot=r.core.member_ballot, status=r.core.status,
            last_committed_decree=r.core.last_committed_decree,
            last_prepared_decree=r.core.last_prepared_decree,
            last_durable_decree=r.storage.last_durable_decree, app_type=r.app.app_type,
            disk_tag="", manual_compact_status=self.jobs.compact_status(r))
            for g, r in sorted(self.replicas.items())]
        infos += [md.replica_info(
            pid=g, ballot=b, status=ev.PS_ERROR, last_committed_decree=lcd,
            last_prepared_decree=lpd, last_durable_decree=0, app_type="pegasus", disk_tag="")
            for g, (b, lcd, lpd) in sorted(self.closed.items())]
        req = thrift.meta_admin.configuration_query_by_node_request(node=self.address,
                                                                   stored_replicas=infos)
        self.sync_seq += 1
        seq = self.sync_seq
        self.sync_outstanding = (seq, now)

        def on_reply(err, result):
            self.post(self._on_config_sync_reply, seq, err, result)
        self.messenger.send(self._meta_addr(), "RPC_CM_CONFIG_SYNC", req, on_reply=on_reply,
                            timeout=CONFIG_SYNC_TIMEOUT)

    def _on_config_sync_reply(self, seq: int, err, resp) -> None:
        if self.sync_outstanding is not None and self.sync_outstanding[0] == seq:
            self.sync_outstanding = None
        if seq == self.sync_seq and err == errors.ERR_OK:
            self._apply_config_sync(resp)
        if self.sync_outstanding is None and self.sync_wanted:
            self._config_sync()

    def _apply_config_sync(self, resp) -> None:
        now = self.now()
        if resp.err != errors.ERR_OK:
            logger.info("config sync answered {}", resp.err)
            return
        if self.conn == DISCONNECTED:
            return
        listed = set()
        for upd in resp.partitions or []:
            m = wire.from_partition_configuration(upd.config)
            listed.add(m.gpid)
            rep = self.replicas.get(m.gpid)
            if rep is None:
                if m.primary == self.address:   # the meta thinks we are primary; we have nothing
                    logger.warning("meta lists {} as primary here but it has no local data",
                                   m.gpid)
                    new = replace(m, ballot=m.ballot + 1, primary=None)
                    req = wire.to_update_request(ev.ReportToMeta(
                        m.gpid, ev.CT_DOWNGRADE_TO_INACTIVE, self.address, new), app=upd.info)
                    self.messenger.send(self._meta_addr(), "RPC_CM_UPDATE_PARTITION_CONFIGURATION",
                                        req)
                continue
            self._apply_app_info(rep, upd.info)
            self._perform(rep, rep.core.on_config_sync(now, m))
        for g, rep in list(self.replicas.items()):
            c = rep.core
            if g in listed or c.status == ev.PS_POTENTIAL_SECONDARY or c.proposing is not None:
                continue
            if c.status == ev.PS_INACTIVE and now - rep.inactive_since < INACTIVE_KEEP_SECONDS:
                continue
            logger.info("replica {} is no longer assigned here", g)
            self._close_replica(g)
        for r in resp.gc_replicas or []:
            if r.pid not in listed:
                logger.info("replica {} of a dropped table: removing its files", r.pid)
                self._close_replica(r.pid, remove=True)
        self.conn = CONNECTED

    # ------------------------------------------------------------------ timers
    def _tick(self) -> None:
        now = self.now()
        for rep in list(self.replicas.values()):
            if self.replicas.get(rep.gpid) is rep:
                self._perform(rep, rep.core.tick(now))

    def _housekeeping(self) -> None:
        now = self.now()
        for key in [k for k, v in self._pending_replies.items() if v[0][2] < now]:
            waiting = [w for w in self._pending_replies[key] if w[2] >= now]
            if waiting:
                self._pending_replies[key] = waiting
            else:
                del self._pending_replies[key]
        self.messenger.sweep()

    def _checkpoint_all(self) -> None:
        """Drop private-log files below each replica's durable decree (what its storage has
        flushed: storage runs without RocksDB's write-ahead log, the private log is the WAL and
        replays the rest after a crash) and prune old learning checkpoints."""
        for rep in list(self.replicas.values()):
            self.collect_log(rep)
            try:
                self._prune_checkpoints(rep)
            except Exception:
                logger.exception("replica {}: checkpoint round failed", rep.gpid)

    def kill_replica(self, gpid: Gpid) -> None:
        """``replica.kill_partition``: close the replica (its files stay; the meta sees it gone
        at the next config sync and restores the group)."""
        if gpid in self.replicas:
            logger.warning("replica {}: killed by remote command", gpid)
            self._close_replica(gpid)

    def collect_log(self, rep: Replica) -> None:
        """Remove the replica's private-log files below its durable decree (unless an operator
        turned that off with ``replica.disable-plog-gc``)."""
        if not rep.plog_gc:
            return
        try:
            rep.log.gc(rep.storage.last_durable_decree)
        except Exception:
            logger.exception("replica {}: private log collection failed", rep.gpid)

    def _every(self, interval: float, fn, jitter: bool = False) -> None:
        while True:
            gevent.sleep(interval * (0.5 + random.random()) if jitter else interval)
            self.post(fn)

    def _sweep_expired(self) -> None:
        for rep in list(self.replicas.values()):
            if rep.core.status == ev.PS_PRIMARY:
                try:
                    rep.storage.remove_expired(10000)
                except Exception:
                    logger.exception("expired-record sweep of {} failed", rep.gpid)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._load_local_replicas()
        self.server.start()
        rc = self.config.replication
        self._loops = [
            gevent.spawn(self._executor),
            gevent.spawn(self._beacon_loop),
            gevent.spawn(self._every, TICK_SECONDS, self._tick),
            gevent.spawn(self._every, rc.fd_check_interval_seconds, self._lease_check),
            gevent.spawn(self._every, rc.config_sync_interval_ms / 1000.0, self._config_sync),
            gevent.spawn(self._every, 1.0, self._housekeeping),
            gevent.spawn(self._every, rc.checkpoint_interval_seconds, self._checkpoint_all),
            gevent.spawn(self._every, 1.0, self.jobs.round),
        ]
        if rc.expired_record_sweep_interval_seconds > 0:
            self._loops.append(gevent.spawn(self._every, rc.expired_record_sweep_interval_seconds,
                                            self._sweep_expired, True))
        logger.info("replica server started on {} with {} local replicas", self.address,
                    len(self.replicas))

    def stop(self) -> None:
        for g in self._loops:
            g.kill()
        self.jobs.wait_all()
        self.server.stop()
        self.messenger.close()
        self.client.close()
        for g in list(self.replicas):
            rep = self.replicas.pop(g)
            rep.storage.close()
            rep.log.close()
