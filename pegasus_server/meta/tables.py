"""The meta's table RPCs (meta.md §4.1-§4.15): query config, create / drop / recall / rename /
list tables, list nodes, cluster info, meta level, app envs, max replica count,
atomic_idempotent, manual compaction and the DDD diagnosis.

``TableRpcs`` is a part of ``meta/state.MetaState`` (which inherits it): it reads and changes the
state's tables (``apps``, ``names``) and persists through the state's ``_persist_app`` /
``_persist_partition``; the cure loop and the replica-facing RPCs stay in ``state.py``.

Table administration (meta.md §4.5, §4.12-§4.15): rename, max replica count (persisted as
upstream does it, marked by the env ``max_replica_count.update = updating;<n>`` while the app and
its partitions are written; ``MetaState.load`` finishes an update a crash interrupted),
atomic_idempotent, manual compaction (envs set through ``update_app_env``; progress from the
``manual_compact_status`` of the members' config syncs) and the DDD diagnosis (the partitions
without any member whose primary the cure would not choose, with the guardian's reason).
Replicas learn a new name, count or flag from the app_info of the next config sync (or
proposal). These RPCs look a name up among the available tables first and then among the
others (the most recent dropped table of that name), so that the status errors the spec lists
(``ERR_APP_DROPPED``, ``ERR_INVALID_STATE``) are answered; upstream drops a dropped table's name
from its index and answers ``ERR_APP_NOT_EXIST`` instead.

Sans-IO like the state: no gevent, no sockets.
"""
from __future__ import annotations

from dataclasses import replace
from typing import List, Optional

from loguru import logger

from pegasus_server import errors
from pegasus_server.base import INVALID_ADDRESS, Gpid, HostPort, RpcAddress
from pegasus_server.meta import guardian
from pegasus_server.meta.model import (AS_AVAILABLE, AS_CREATING, AS_DROPPED, AS_DROPPING,
                                       AS_INVALID, AS_RECALLING, FL_FREEZED, FL_INVALID,
                                       FL_STEADY, LEVEL_NAMES, PARTITION_FLAG_DROPPED, App,
                                       PartitionConfig)
from pegasus_server.rpc import thrift

# the env that marks an in-flight max_replica_count change (meta.md §4.11 reserved keys)
UPDATE_MAX_REPLICA_COUNT = "max_replica_count.update"
# metadata.manual_compaction_status
MCS_IDLE, MCS_QUEUING, MCS_RUNNING, MCS_FINISHED = range(4)
FREEZED_HINT = "current meta function level is freezed, since there are too few alive nodes"
# what an admin RPC answers about a table that is not available (meta.md §4.1, §4.5)
BUSY_ERRORS = {AS_CREATING: errors.ERR_BUSY_CREATING, AS_RECALLING: errors.ERR_BUSY_CREATING,
               AS_DROPPING: errors.ERR_BUSY_DROPPING}
RENAME_ERRORS = {**BUSY_ERRORS, AS_DROPPED: errors.ERR_APP_DROPPED}

SUPPORTED_ENV_KEYS = frozenset("""
replica.deny_client_request replica.write_throttling replica.write_throttling_by_size
replica.read_throttling replica.read_throttling_by_size replica.backup_request_throttling
replica.slow_query_threshold replica.rocksdb_iteration_threshold_time_ms
replica.rocksdb_block_cache_enabled replica.split.validate_partition_hash rocksdb.usage_scenario
rocksdb.checkpoint.reserve_min_count rocksdb.checkpoint.reserve_time_seconds
rocksdb.allow_ingest_behind rocksdb.write_buffer_size rocksdb.num_levels default_ttl
manual_compact.disabled manual_compact.max_concurrent_running_count
manual_compact.once.trigger_time manual_compact.once.target_level
manual_compact.once.bottommost_level_compaction manual_compact.periodic.trigger_time
manual_compact.periodic.target_level manual_compact.periodic.bottommost_level_compaction
user_specified_compaction business.info replica_access_controller.allowed_users
replica_access_controller.ranger_policies
""".split())


def _ma():
    return thrift.meta_admin


class TableRpcs:
    """The table RPCs of ``MetaState`` (see the module docstring)."""

    def query_cfg(self, req, with_host_port: bool):
        L2 = thrift.layer2
        app_id = self.names.get(req.app_name)
        app = self.apps.get(app_id) if app_id is not None else None
        if app is None:
            return L2.query_cfg_response(err=errors.ERR_OBJECT_NOT_FOUND, app_id=0,
                                         partition_count=0, is_stateful=False, partitions=[])
        if app.status != AS_AVAILABLE:
            err = BUSY_ERRORS.get(app.status, errors.ERR_UNKNOWN)
            return L2.query_cfg_response(err=err, app_id=0, partition_count=0,
                                         is_stateful=False, partitions=[])
        idx = [i for i in (req.partition_indices or []) if 0 <= i < app.partition_count]
        if not idx:
            idx = range(app.partition_count)
        return L2.query_cfg_response(
            err=errors.ERR_OK, app_id=app.app_id, partition_count=app.partition_count,
            is_stateful=app.is_stateful,
            partitions=[app.partitions[i].to_thrift(with_host_port) for i in idx])

    def _create(self, name, app_type, partition_count, replica_count, stateful, envs,
                atomic_idempotent, now) -> App:
        app_id = max(self.apps, default=0) + 1
        app = App(app_id=app_id, app_name=name, app_type=app_type or "pegasus",
                  status=AS_AVAILABLE, partition_count=partition_count,
                  max_replica_count=replica_count, is_stateful=stateful, envs=dict(envs),
                  create_second=int(now), init_partition_count=partition_count,
                  atomic_idempotent=atomic_idempotent)
        app.partitions = [PartitionConfig(Gpid(app_id, i), max_replica_count=replica_count)
                          for i in range(partition_count)]
        for pc in app.partitions:
            self._persist_partition(pc)
        self._persist_app(app)
        self.apps[app_id] = app
        self.names[name] = app_id
        logger.info("table {} created: app_id {}, {} partitions, {} replicas", name, app_id,
                    partition_count, replica_count)
        return app

    def create_app(self, req, now: float):
        resp = _ma().configuration_create_app_response
        opts = req.options or _ma().create_app_options()
        ms = self.config.meta_server
        if self.effective_level() <= FL_FREEZED:
            return resp(err=errors.ERR_STATE_FREEZED, appid=0)
        pc = opts.partition_count or 0
        rc = opts.replica_count or 0
        if pc <= 0:
            return resp(err=errors.ERR_INVALID_PARAMETERS, appid=0)
        if not (ms.min_allowed_replica_count <= rc <= ms.max_allowed_replica_count) or \
                rc > len(self.alive_nodes()):
            return resp(err=errors.ERR_INVALID_PARAMETERS, appid=0)
        envs = dict(opts.envs or {})
        for k in ("rocksdb.write_buffer_size", "rocksdb.num_levels"):
            if k in envs and not _valid_int(envs[k]):
                return resp(err=errors.ERR_INVALID_PARAMETERS, appid=0)
        name = req.app_name or ""
        if not name:
            return resp(err=errors.ERR_INVALID_PARAMETERS, appid=0)
        existing = self.apps.get(self.names.get(name, -1))
        if existing is not None:
            if existing.status == AS_AVAILABLE:
                if opts.success_if_exist:
                    same = (existing.partition_count == pc and existing.max_replica_count == rc
                            and existing.app_type == (opts.app_type or "pegasus")
                            and existing.envs == envs
                            and existing.is_stateful == bool(opts.is_stateful))
                    return resp(err=errors.ERR_OK if same else errors.ERR_INVALID_PARAMETERS,
                                appid=existing.app_id if same else 0)
                return resp(err=errors.ERR_APP_EXIST, appid=0)
            if existing.status in (AS_CREATING, AS_RECALLING):
                return resp(err=errors.ERR_BUSY_CREATING, appid=0)
            if existing.status == AS_DROPPING:
                return resp(err=errors.ERR_BUSY_DROPPING, appid=0)
        app = self._create(name, opts.app_type, pc, rc, bool(opts.is_stateful), envs,
                           bool(opts.atomic_idempotent), now)
        return resp(err=errors.ERR_OK, appid=app.app_id)

    def drop_app(self, req, now: float):
        resp = _ma().configuration_drop_app_response
        opts = req.options or _ma().drop_app_options()
        app = self.apps.get(self.names.get(req.app_name or "", -1))
        if app is None:
            return resp(err=errors.ERR_OK if opts.success_if_not_exist else errors.ERR_APP_NOT_EXIST)
        if app.status in (AS_CREATING, AS_RECALLING):
            return resp(err=errors.ERR_BUSY_CREATING)
        if app.status == AS_DROPPING:
            return resp(err=errors.ERR_BUSY_DROPPING)
        reserve = opts.reserve_seconds if opts.reserve_seconds and opts.reserve_seconds > 0 \
            else self.config.meta_server.hold_seconds_for_dropped_app
        app.status = AS_DROPPED
        app.drop_second = int(now)
        app.expire_second = int(now + reserve)
        self._persist_app(app)
        del self.names[app.app_name]
        for i, pc in enumerate(app.partitions):
            drops = list(pc.last_drops)
            for a in pc.members():
                drops = self._with_drop(drops, a)
            new = PartitionConfig(pc.pid, pc.ballot + 1, pc.max_replica_count, INVALID_ADDRESS,
                                  [], drops, pc.last_committed_decree,
                                  pc.partition_flags | PARTITION_FLAG_DROPPED)
            self._persist_partition(new)
            app.partitions[i] = new
            self._pending.pop(pc.pid, None)
        logger.info("table {} (app_id {}) dropped, recallable until {}", app.app_name,
                    app.app_id, app.expire_second)
        return resp(err=errors.ERR_OK)

    def recall_app(self, req, now: float):
        ma = _ma()
        app = self.apps.get(req.app_id or 0)
        if app is None:
            return ma.configuration_recall_app_response(err=errors.ERR_APP_NOT_EXIST)
        if app.status == AS_AVAILABLE:
            return ma.configuration_recall_app_response(err=errors.ERR_APP_EXIST)
        if app.status in (AS_CREATING, AS_RECALLING):
            return ma.configuration_recall_app_response(err=errors.ERR_BUSY_CREATING)
        if app.status == AS_DROPPING:
            return ma.configuration_recall_app_response(err=errors.ERR_BUSY_DROPPING)
        if app.expire_second <= now:
            return ma.configuration_recall_app_response(err=errors.ERR_APP_NOT_EXIST)
        name = req.new_app_name or app.app_name
        if name in self.names:
            return ma.configuration_recall_app_response(err=errors.ERR_INVALID_PARAMETERS)
        app.app_name = name
        app.status = AS_AVAILABLE
        app.drop_second = app.expire_second = 0
        self._persist_app(app)
        for i, pc in enumerate(app.partitions):
            pc.partition_flags &= ~PARTITION_FLAG_DROPPED
            self._persist_partition(pc)
        self.names[name] = app.app_id
        return ma.configuration_recall_app_response(err=errors.ERR_OK, info=app.to_thrift())

    def list_apps(self, req):
        ma = _ma()
        status = req.status or AS_INVALID
        pattern, mt = req.app_name_pattern, req.match_type
        infos = []
        for app in sorted(self.apps.values(), key=lambda a: a.app_id):
            if pattern is not None and mt is not None:
                ok = _match(app.app_name, pattern, mt)
                if ok is None:
                    return ma.configuration_list_apps_response(
                        err=errors.ERR_NOT_IMPLEMENTED, infos=[],
                        hint_message=f"match type {mt} is not supported")
                if not ok:
                    continue
            if status != AS_INVALID and app.status != status:
                continue
            infos.append(app.to_thrift())
        return ma.configuration_list_apps_response(err=errors.ERR_OK, infos=infos)

    def list_nodes(self, req, with_host_port: bool):
        ma = _ma()
        want = req.status or 0
        infos = []
        for alive in (True, False):
            for a in sorted(n.address for n in self.nodes.values() if n.alive == alive):
                st = 1 if alive else 2
                if want and want != st:
                    continue
                ni = ma.node_info(status=st, node=a)
                if with_host_port:
                    ni.hp_node = HostPort.from_address(a)
                infos.append(ni)
        return ma.configuration_list_nodes_response(err=errors.ERR_OK, infos=infos)

    def control_meta(self, req):
        ma = _ma()
        old = self.level
        lvl = req.level
        if lvl is not None and lvl != FL_INVALID:
            if lvl not in LEVEL_NAMES:
                return ma.configuration_meta_control_response(err=errors.ERR_INVALID_PARAMETERS,
                                                              old_level=old)
            self.store.set("/meta/function_level", str(lvl).encode())
            self.level = lvl
            if lvl <= FL_STEADY and self.lb_queue:
                logger.info("meta level fl_{}: {} partitions' balancer proposals discarded",
                            LEVEL_NAMES[lvl], len(self.lb_queue))
                self.lb_queue.clear()
            logger.info("meta function level set to fl_{}", LEVEL_NAMES[lvl])
        return ma.configuration_meta_control_response(err=errors.ERR_OK, old_level=old)

    def update_app_env(self, req):
        ma = _ma()
        resp = ma.configuration_update_app_env_response
        SET, DEL, CLEAR = 1, 2, 3
        app = self.apps.get(self.names.get(req.app_name or "", -1))
        op = req.op or 0
        if op not in (SET, DEL, CLEAR):
            return resp(err=errors.ERR_INVALID_PARAMETERS,
                        hint_message="recv a invalid update_app_env request")
        if app is None:
            return resp(err=errors.ERR_APP_NOT_EXIST, hint_message="app cannot be found")
        envs = dict(app.envs)
        hint = ""
        if op == SET:
            keys, values = req.keys or [], req.values or []
            if not keys or len(keys) != len(values):
                return resp(err=errors.ERR_INVALID_PARAMETERS,
                            hint_message="keys and values must be non-empty and of equal length")
            for k, v in zip(keys, values):
                if k not in SUPPORTED_ENV_KEYS:
                    return resp(err=errors.ERR_INVALID_PARAMETERS,
                                hint_message=f"app_env '{k}' is not supported")
                if k == "default_ttl" and not (_valid_int(v) and int(v) >= 0):
                    return resp(err=errors.ERR_INVALID_PARAMETERS,
                                hint_message=f"invalid value '{v}' of app_env 'default_ttl'")
                envs[k] = v
        elif op == DEL:
            keys = req.keys or []
            if not keys:
                return resp(err=errors.ERR_INVALID_PARAMETERS, hint_message="keys are empty")
            deleted = [k for k in keys if k in envs]
            for k in deleted:
                del envs[k]
            hint = ("deleted keys: " + ",".join(deleted)) if deleted else "no key need to delete"
        else:
            prefix = req.clear_prefix
            if prefix is None:
                return resp(err=errors.ERR_INVALID_PARAMETERS, hint_message="clear_prefix is unset")
            if prefix == "":
                envs = {}
            else:
                envs = {k: v for k, v in envs.items()
                        if not (k.startswith(prefix + ".") and len(k) > len(prefix) + 1)}
        app.envs = envs
        self._persist_app(app)
        return resp(err=errors.ERR_OK, hint_message=hint)

    # ---------------------------------------------------------------- table administration
    def _app_named(self, name: Optional[str]) -> Optional[App]:
        """The table called ``name``: the available one, else the most recent other one (see
        the module docstring)."""
        app = self.apps.get(self.names.get(name or "", -1))
        if app is None:
            app = max((a for a in self.apps.values() if a.app_name == name),
                      key=lambda a: a.app_id, default=None)
        return app

    def rename_app(self, req):
        """RPC_CM_RENAME_APP (meta.md §4.5)."""
        resp = _ma().configuration_rename_app_response
        old, new = req.old_app_name or "", req.new_app_name or ""
        app = self._app_named(old)
        if app is None:
            return resp(err=errors.ERR_APP_NOT_EXIST, hint_message=f"ERROR: app({old}) not exist!")
        if app.status != AS_AVAILABLE:
            return resp(err=RENAME_ERRORS.get(app.status, errors.ERR_INVALID_STATE),
                        hint_message=f"ERROR: app({old}) status can't execute rename.")
        if new in self.names or not new:
            return resp(err=errors.ERR_INVALID_PARAMETERS,
                        hint_message=f"ERROR: app({new}) already exist!" if new else
                        "ERROR: the new app name is empty!")
        self._persist_app(replace(app, app_name=new))
        app.app_name = new
        del self.names[old]
        self.names[new] = app.app_id
        logger.info("table {} (app_id {}) renamed to {}", old, app.app_id, new)
        return resp(err=errors.ERR_OK, hint_message="")

    def _replica_count_app(self, name: str, resp, **zero):
        """The common checks of GET/SET max_replica_count: ``(app, None)`` or ``(None, the
        error response)``."""
        app = self._app_named(name)
        if app is None:
            return None, resp(err=errors.ERR_APP_NOT_EXIST,
                              hint_message=f"app({name}) does not exist", **zero)
        for pc in app.partitions:
            if pc.max_replica_count != app.max_replica_count:
                return None, resp(err=errors.ERR_INCONSISTENT_STATE, hint_message=(
                    f"partition_max_replica_count({pc.max_replica_count}) != "
                    f"app_max_replica_count({app.max_replica_count}) for partition {pc.pid}"),
                    **zero)
        return app, None

    def get_max_replica_count(self, req):
        """RPC_CM_GET_MAX_REPLICA_COUNT (meta.md §4.12)."""
        resp = _ma().configuration_get_max_replica_count_response
        app, bad = self._replica_count_app(req.app_name, resp, max_replica_count=0)
        if bad is not None:
            return bad
        if app.status != AS_AVAILABLE:
            return resp(err=errors.ERR_INVALID_STATE, max_replica_count=0,
                        hint_message=f"app({app.app_name}) is not in available status")
        return resp(err=errors.ERR_OK, max_replica_count=app.max_replica_count, hint_message="")

    def set_max_replica_count(self, req):
        """RPC_CM_SET_MAX_REPLICA_COUNT (meta.md §4.12): the app's and every partition's count
        change at once; the cure then adds or removes secondaries (``meta/guardian.py``)."""
        resp = _ma().configuration_set_max_replica_count_response
        name, new = req.app_name, req.max_replica_count or 0
        app, bad = self._replica_count_app(name, resp, old_max_replica_count=0)
        if bad is not None:
            return bad
        old = app.max_replica_count
        if app.status != AS_AVAILABLE:
            return resp(err=errors.ERR_INVALID_STATE, old_max_replica_count=old,
                        hint_message=f"app({name}) is not in available status")
        if self.effective_level() <= FL_FREEZED:
            return resp(err=errors.ERR_STATE_FREEZED, old_max_replica_count=old,
                        hint_message=FREEZED_HINT)
        ms, alive = self.config.meta_server, len(self.alive_nodes())
        hint = None
        if not ms.min_allowed_replica_count <= new <= ms.max_allowed_replica_count:
            hint = (f"requested replica count({new}) must be within the range of "
                    f"[min={ms.min_allowed_replica_count}, max={ms.max_allowed_replica_count}]")
        elif new > alive:
            hint = (f"there are not enough alive replica servers({alive}) for the requested "
                    f"replica count({new})")
        if hint is not None:
            return resp(err=errors.ERR_INVALID_PARAMETERS, old_max_replica_count=old,
                        hint_message=hint)
        if new == old:
            return resp(err=errors.ERR_OK, old_max_replica_count=old,
                        hint_message="no need to update max_replica_count since it's not changed")
        self._update_max_replica_count(app, new)
        logger.info("table {}: max_replica_count {} -> {}", name, old, new)
        return resp(err=errors.ERR_OK, old_max_replica_count=old, hint_message="")

    def _update_max_replica_count(self, app: App, new: int) -> None:
        """Persist and apply: the app marked as updating, every partition, then the app."""
        marked = dict(app.envs, **{UPDATE_MAX_REPLICA_COUNT: f"updating;{new}"})
        self._persist_app(replace(app, envs=marked))
        for i, pc in enumerate(app.partitions):
            if pc.max_replica_count != new:
                new_pc = replace(pc, secondaries=list(pc.secondaries),
                                 last_drops=list(pc.last_drops), max_replica_count=new)
                self._persist_partition(new_pc)
                app.partitions[i] = new_pc
        envs = {k: v for k, v in app.envs.items() if k != UPDATE_MAX_REPLICA_COUNT}
        self._persist_app(replace(app, envs=envs, max_replica_count=new))
        app.envs, app.max_replica_count = envs, new

    def get_atomic_idempotent(self, req):
        """RPC_CM_GET_ATOMIC_IDEMPOTENT (meta.md §4.13)."""
        resp = _ma().configuration_get_atomic_idempotent_response
        app = self._app_named(req.app_name)
        if app is None:
            return resp(err=errors.ERR_APP_NOT_EXIST, atomic_idempotent=False,
                        hint_message=f"app({req.app_name}) does not exist")
        if app.status != AS_AVAILABLE:
            return resp(err=errors.ERR_INVALID_STATE, atomic_idempotent=False,
                        hint_message=f"app({req.app_name}) is not in available status")
        return resp(err=errors.ERR_OK, atomic_idempotent=app.atomic_idempotent, hint_message="")

    def set_atomic_idempotent(self, req):
        """RPC_CM_SET_ATOMIC_IDEMPOTENT (meta.md §4.13): persisted in the app_info."""
        resp = _ma().configuration_set_atomic_idempotent_response
        name, new = req.app_name, bool(req.atomic_idempotent)
        app = self._app_named(name)
        if app is None:
            return resp(err=errors.ERR_APP_NOT_EXIST, old_atomic_idempotent=False,
                        hint_message=f"app({name}) does not exist")
        old = app.atomic_idempotent
        if app.status != AS_AVAILABLE:
            return resp(err=errors.ERR_INVALID_STATE, old_atomic_idempotent=old,
                        hint_message=f"app({name}) is not in available status")
        if self.effective_level() <= FL_FREEZED:
            return resp(err=errors.ERR_STATE_FREEZED, old_atomic_idempotent=old,
                        hint_message=FREEZED_HINT)
        if new == old:
            return resp(err=errors.ERR_OK, old_atomic_idempotent=old,
                        hint_message="no need to update atomic_idempotent since it's unchanged")
        self._persist_app(replace(app, atomic_idempotent=new))
        app.atomic_idempotent = new
        logger.info("table {}: atomic_idempotent {} -> {}", name, old, new)
        return resp(err=errors.ERR_OK, old_atomic_idempotent=old, hint_message="")

    def _compact_app(self, name: str, resp):
        """``(app, None)`` or ``(None, the error response)`` for the manual-compaction RPCs."""
        app = self._app_named(name)
        if app is None:
            return None, resp(err=errors.ERR_APP_NOT_EXIST, hint_msg=f"app {name} is not existed")
        if app.status != AS_AVAILABLE:
            return None, resp(err=errors.ERR_APP_DROPPED, hint_msg=f"app {name} is not available")
        return app, None

    def start_manual_compact(self, req, now: float):
        """RPC_CM_START_MANUAL_COMPACT (meta.md §4.14): sets the ``manual_compact.once.*`` envs
        (through ``update_app_env``) and forgets the progress reported so far."""
        resp = _ma().start_app_manual_compact_response
        name = req.app_name
        app, bad = self._compact_app(name, resp)
        if bad is not None:
            return bad
        if app.envs.get("manual_compact.disabled") == "true":
            return resp(err=errors.ERR_OPERATION_DISABLED,
                        hint_msg=f"app {name} disable manual compaction")
        level = -1 if req.target_level is None else req.target_level
        if level < -1:
            return resp(err=errors.ERR_INVALID_PARAMETERS, hint_msg=(
                f"invalid target_level({level}), should in range of [-1, num_levels]"))
        envs = {"manual_compact.once.target_level": str(level)}
        running = req.max_running_count
        if running is not None and running < 0:
            return resp(err=errors.ERR_INVALID_PARAMETERS, hint_msg=(
                f"invalid max_running_count({running}), should be greater than 0"))
        if running:
            envs["manual_compact.max_concurrent_running_count"] = str(running)
        envs["manual_compact.once.bottommost_level_compaction"] = \
            "force" if req.bottommost else "skip"
        envs["manual_compact.once.trigger_time"] = str(
            int(now) if req.trigger_time is None else req.trigger_time)
        r = self.update_app_env(_ma().configuration_update_app_env_request(
            app_name=name, op=1, keys=list(envs), values=list(envs.values())))
        if r.err != errors.ERR_OK:
            return resp(err=r.err, hint_msg=r.hint_message)
        for pc in app.partitions:
            self.compact_status.pop(pc.pid, None)
        return resp(err=errors.ERR_OK, hint_msg="succeed")

    def query_manual_compact(self, req):
        """RPC_CM_QUERY_MANUAL_COMPACT_STATUS (meta.md §4.14): finished replicas * 100 / (the
        table's partition count * max replica count), over the statuses the members reported."""
        resp = _ma().query_app_manual_compact_response
        app, bad = self._compact_app(req.app_name, resp)
        if bad is not None:
            return bad
        seen = []
        for pc in app.partitions:
            reported = self.compact_status.get(pc.pid, {})
            seen += [reported[m] for m in pc.members() if m in reported]
        if all(st == MCS_IDLE for st in seen):       # also: nothing reported
            return resp(err=errors.ERR_INVALID_STATE,
                        hint_msg=f"app {req.app_name} is not manual compaction")
        total = max(1, app.partition_count * app.max_replica_count)
        return resp(err=errors.ERR_OK, hint_msg="succeed",
                    progress=seen.count(MCS_FINISHED) * 100 // total)

    def ddd_diagnose(self, req, with_host_port: bool = False):
        """RPC_CM_DDD_DIAGNOSE (meta.md §4.15): the partitions without primary and secondaries
        whose primary the cure does not choose now, with the reason and the dropped nodes
        (last_drops, oldest first). ``pid``: app_id -1 = every table, partition -1 = every
        partition of the table."""
        ma = _ma()
        pid = req.pid if req.pid is not None else Gpid(-1, -1)
        if pid.app_id != -1 and pid.app_id not in self.apps:
            return ma.ddd_diagnose_response(err=errors.ERR_APP_NOT_EXIST, partitions=[])
        alive = frozenset(self.alive_nodes())
        out = []
        for app in sorted(self.apps.values(), key=lambda a: a.app_id):
            if app.status != AS_AVAILABLE or pid.app_id not in (-1, app.app_id):
                continue
            for pc in app.partitions:
                if pid.app_id != -1 and pid.partition_index not in (-1, pc.pid.partition_index):
                    continue
                reason = self._ddd_reason(app, pc, alive)
                if reason is not None:
                    out.append(ma.ddd_partition_info(
                        config=pc.to_thrift(with_host_port), reason=reason,
                        dropped=[self._ddd_node(pc.pid, n, alive, with_host_port)
                                 for n in pc.last_drops]))
        return ma.ddd_diagnose_response(err=errors.ERR_OK, partitions=out)

    def _ddd_reason(self, app: App, pc: PartitionConfig, alive) -> Optional[str]:
        """Why the cure picks no primary for a partition whose members are all gone, or None
        (it has a member, never had one, or the cure would assign a primary now)."""
        if not pc.primary.is_invalid or pc.secondaries or not pc.last_drops:
            return None
        if not self._group_rules(app, pc):
            last = pc.last_drops[-1]     # single replica: only its last copy will do
            return None if last in alive else f"DDD: waiting for {last}"
        d = guardian.decide(pc, guardian.GuardianView(
            now=self._clock, alive=alive, drop_times=self.drop_times.get(pc.pid, {}),
            reported=self.reported.get(pc.pid, {}),
            min_2pc=self.config.replication.mutation_2pc_min_replica_count,
            replica_assign_delay=self.replica_assign_delay))
        return None if d.action is not None else d.waiting

    def _ddd_node(self, pid: Gpid, node: RpcAddress, alive, with_host_port: bool):
        rs = self.reported.get(pid, {}).get(node)
        is_alive = node in alive
        known = is_alive and rs is not None
        info = _ma().ddd_node_info(
            node=node, drop_time_ms=int(self.drop_times.get(pid, {}).get(node, 0) * 1000),
            is_alive=is_alive, is_collected=rs is not None,
            ballot=rs.ballot if known else -1,
            last_committed_decree=rs.last_committed_decree if known else -1,
            last_prepared_decree=rs.last_prepared_decree if known else -1)
        if with_host_port:
            info.hp_node = HostPort.from_address(node)
        return info

    def cluster_info(self, meta_list: str, leader: str, level: int):
        import json as _json
        alive = self.alive_nodes()
        prim = {a: 0 for a in alive}
        total = {a: 0 for a in alive}
        for app in self.apps.values():
            if app.status != AS_AVAILABLE:
                continue
            for pc in app.partitions:
                if pc.primary in prim:
                    prim[pc.primary] += 1
                for a in pc.members():
                    if a in total:
                        total[a] += 1
        keys = ["meta_servers", "primary_meta_server", "zookeeper_hosts", "zookeeper_root",
                "meta_function_level", "balance_operation_count", "primary_replica_count_stddev",
                "total_replica_count_stddev", "cluster_name"]
        ms = self.config.meta_server
        zk = ms.meta_state_service_type == "meta_state_service_zookeeper"
        values = [meta_list, leader, self.config.zookeeper.hosts_list if zk else "",
                  ms.cluster_root if zk else "/pegasus/" + self.config.replication.cluster_name,
                  LEVEL_NAMES.get(level, "freezed"),
                  _json.dumps({k: self.balance_ops[k]
                               for k in ("copy_pri", "copy_sec", "move_pri", "total")}, indent=4),
                  "%.2f" % _stddev([v for v in prim.values() if v]),
                  "%.2f" % _stddev([v for v in total.values() if v]),
                  self.config.replication.cluster_name]
        return _ma().configuration_cluster_info_response(err=errors.ERR_OK, keys=keys,
                                                         values=values)


def _valid_int(v: str) -> bool:
    try:
        int(v)
        return True
    except (TypeError, ValueError):
        return False


def _stddev(vals: List[int]) -> float:
    if not vals:
        return 0.0
    mean = sum(vals) / len(vals)
    return (sum((v - mean) ** 2 for v in vals) / len(vals)) ** 0.5


def _match(name: str, pattern: str, mt: int) -> Optional[bool]:
    """utils.pattern_match_type: 0 INVALID, 1 MATCH_ALL, 2 EXACT, 3 ANYWHERE, 4 PREFIX,
    5 POSTFIX, 6 REGEX (unsupported)."""
    if mt == 1:
        return True
    if mt == 2:
        return name == pattern
    if mt == 3:
        return pattern in name
    if mt == 4:
        return name.startswith(pattern)
    if mt == 5:
        return name.endswith(pattern)
    return None
