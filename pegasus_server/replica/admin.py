"""The replica server's operator surface: remote commands (meta.md §7, the replica rows),
metrics (``metrics.py``: a ``replica`` entity per partition replica with attributes
``table_id`` / ``partition_id``, and the ``server`` entity), the HTTP paths ``/replicas`` and
``/replica/data_version``, and the table env ``replica.deny_client_request``.

Remote commands that take replica ids accept ``app_id`` or ``app_id.partition_index`` items,
comma separated (none = every replica on the node). Node-wide switches follow upstream's
boolean-setter convention (``remote_command.bool_setter``):

* ``replica.deny-client`` — while true, client requests get no answer (they time out), as
  upstream's;
* ``replica.verbose-client-log`` / ``replica.verbose-commit-log`` — log every client request /
  every committed mutation at INFO;
* ``replica.disable-empty-write`` — primaries stop writing the empty mutation that moves the
  commit point of an idle partition.

A driver-side module of the node (it reads the node's replicas and calls its methods); must not
import rocksdict.
"""
from __future__ import annotations

import json
from typing import Dict, List, Optional, Tuple
from urllib.parse import parse_qsl

from loguru import logger

from pegasus_server import errors
from pegasus_server.base import Gpid
from pegasus_server.metrics import Metric, process_gauges
from pegasus_server.remote_command import bool_setter
from pegasus_server.replica import events as ev
from pegasus_server.replica.storage_jobs import FLUSH, MC_FINISHED, MC_IDLE, MC_QUEUING, MC_RUNNING

ENV_DENY_CLIENT_REQUEST = "replica.deny_client_request"
JSON = "application/json"

# storage RPC -> the request counter of the replica entity (upstream's metric names)
REQUEST_METRICS = {
    "RPC_RRDB_RRDB_GET": "get_requests",
    "RPC_RRDB_RRDB_MULTI_GET": "multi_get_requests",
    "RPC_RRDB_RRDB_BATCH_GET": "batch_get_requests",
    "RPC_RRDB_RRDB_PUT": "put_requests",
    "RPC_RRDB_RRDB_MULTI_PUT": "multi_put_requests",
    "RPC_RRDB_RRDB_REMOVE": "remove_requests",
    "RPC_RRDB_RRDB_MULTI_REMOVE": "multi_remove_requests",
    "RPC_RRDB_RRDB_INCR": "incr_requests",
    "RPC_RRDB_RRDB_CHECK_AND_SET": "check_and_set_requests",
    "RPC_RRDB_RRDB_CHECK_AND_MUTATE": "check_and_mutate_requests",
    "RPC_RRDB_RRDB_GET_SCANNER": "scan_requests",
    "RPC_RRDB_RRDB_SCAN": "scan_requests",
    "RPC_RRDB_RRDB_TTL": "ttl_requests",
    "RPC_RRDB_RRDB_SORTKEY_COUNT": "sortkey_count_requests",
}
READ_RPCS = {n for n, m in REQUEST_METRICS.items()
             if m in ("get_requests", "multi_get_requests", "batch_get_requests", "scan_requests",
                      "ttl_requests", "sortkey_count_requests")}
STORAGE_GAUGES = (  # metric, unit, what, from StorageApp.stats()
    ("rdb_total_sst_files", "files", "SST files of the replica's storage", "sst_files", 1),
    ("rdb_total_sst_size_mb", "megabytes", "size of the replica's SST files", "sst_size_bytes",
     1 << 20),
    ("rdb_estimated_keys", "keys", "estimated number of keys", "estimated_keys", 1),
    ("rdb_memtable_mem_usage_bytes", "bytes", "memory of the replica's memtables",
     "memtable_bytes", 1),
)
COMPACT_STATUS_NAMES = {MC_IDLE: "idle", MC_QUEUING: "queuing", MC_RUNNING: "running",
                        MC_FINISHED: "finished"}


def deny_policy(envs: Dict[str, str]) -> Optional[Tuple[str, str]]:
    """``replica.deny_client_request`` = ``timeout*all|write|read`` or ``reconfig*...``
    (protocol.md §6.8) -> ``(mode, scope)``; None when unset or malformed."""
    text = (envs or {}).get(ENV_DENY_CLIENT_REQUEST)
    if not text or "*" not in text:
        return None
    mode, scope = text.split("*", 1)
    if mode not in ("timeout", "reconfig") or scope not in ("all", "write", "read"):
        return None
    return mode, scope


def denied(policy: Optional[Tuple[str, str]], rpc_name: str) -> Optional[str]:
    """None when the request may pass; "timeout" (no answer) or an error name."""
    if policy is None:
        return None
    mode, scope = policy
    if scope != "all" and (scope == "read") != (rpc_name in READ_RPCS):
        return None
    return "timeout" if mode == "timeout" else errors.ERR_INVALID_STATE


class ReplicaAdmin:
    def __init__(self, node):
        self.node = node
        self.deny_client = False
        self.verbose_client_log = False
        self.verbose_commit_log = False
        reg = node.metrics
        server = reg.entity("server", "server")
        process_gauges(server, node.start_time)
        for status, name in ((ev.PS_PRIMARY, "primary"), (ev.PS_SECONDARY, "secondary"),
                             (ev.PS_POTENTIAL_SECONDARY, "learner"), (ev.PS_INACTIVE, "inactive")):
            server.gauge(f"replicas_{name}_count", "replicas", f"{name} replicas on this node",
                         self._status_count(status))
        server.gauge("replicas_count", "replicas", "replicas on this node",
                     lambda: len(node.replicas))

    def _status_count(self, status: int):
        return lambda: sum(1 for r in self.node.replicas.values() if r.core.status == status)

    # ------------------------------------------------------------------ replicas
    def opened(self, rep) -> None:
        """Create the replica's metrics entity; ``rep.counters`` maps storage RPC names to
        their request counters."""
        g = rep.gpid
        e = self.node.metrics.entity("replica", str(g), table_id=g.app_id,
                                     partition_id=g.partition_index)
        rep.counters = {}
        for rpc, name in REQUEST_METRICS.items():
            rep.counters[rpc] = e.counter(name, "requests", f"{name.replace('_', ' ')} served")
        e.counter("write_bytes", "bytes", "bytes of client write requests")
        for name, unit, desc, key, div in STORAGE_GAUGES:
            e.gauge(name, unit, desc, self._storage_gauge(rep, key, div))
        e.gauge("last_committed_decree", "decree", "last committed decree",
                lambda: rep.core.last_committed_decree)
        e.gauge("last_durable_decree", "decree", "last decree flushed to storage",
                lambda: rep.storage.last_durable_decree)

    @staticmethod
    def _storage_gauge(rep, key: str, div: int):
        def read():
            v = rep.storage.stats()[key]
            return v if div == 1 else round(v / div, 2)
        return read

    def closed(self, gpid: Gpid) -> None:
        self.node.metrics.remove("replica", str(gpid))

    def count(self, rep, rpc_name: str, body_length: int) -> None:
        c: Optional[Metric] = rep.counters.get(rpc_name)
        if c is not None:
            c.value += 1
        if self.verbose_client_log:
            logger.info("replica {}: client request {} ({} bytes)", rep.gpid, rpc_name,
                        body_length)

    # ------------------------------------------------------------------ wiring
    def register(self, dispatcher, commands) -> None:
        d = dispatcher
        d.route("/replicas", lambda h: (200, JSON, self.node.replicas_json()))
        d.route("/replica/data_version", self._http_data_version)
        node = self.node
        c = commands
        c.register(("replica.deny-client",), "replica.deny-client [true|false]",
                   "Ignore (do not answer) client requests while true",
                   bool_setter("replica.deny-client", lambda: self.deny_client,
                               lambda v: setattr(self, "deny_client", v)))
        c.register(("replica.verbose-client-log",), "replica.verbose-client-log [true|false]",
                   "Log every client request",
                   bool_setter("replica.verbose-client-log", lambda: self.verbose_client_log,
                               lambda v: setattr(self, "verbose_client_log", v)))
        c.register(("replica.verbose-commit-log",), "replica.verbose-commit-log [true|false]",
                   "Log every committed mutation",
                   bool_setter("replica.verbose-commit-log", lambda: self.verbose_commit_log,
                               lambda v: setattr(self, "verbose_commit_log", v)))
        c.register(("replica.disable-empty-write",), "replica.disable-empty-write [true|false]",
                   "Stop writing empty mutations on idle partitions",
                   bool_setter("replica.disable-empty-write",
                               lambda: node.options.empty_write_disabled,
                               lambda v: setattr(node.options, "empty_write_disabled", v)))
        c.register(("replica.release-tcmalloc-memory",), "replica.release-tcmalloc-memory",
                   "Release tcmalloc memory (not applicable: pegasus-py does not use tcmalloc)",
                   lambda args: json.dumps({"error": "ERR: not supported: pegasus-py does not "
                                            "use tcmalloc"}, indent=4))
        c.register(("replica.kill_partition",), "replica.kill_partition [app_id [partition_index]]",
                   "Close replicas on this node (the meta reassigns them)", self._cmd_kill)
        c.register(("replica.trigger-checkpoint",), "replica.trigger-checkpoint [id1,id2,...]",
                   "Flush the storage of replicas now (then collect their private logs)",
                   self._cmd_trigger_checkpoint)
        c.register(("replica.query-compact",), "replica.query-compact [id1,id2,...]",
                   "Manual compaction state of replicas", self._cmd_query_compact)
        c.register(("replica.query-app-envs",), "replica.query-app-envs [id1,id2,...]",
                   "The table envs each replica applies", self._cmd_app_envs)
        c.register(("replica.enable-plog-gc",), "replica.enable-plog-gc [id1,id2,...]",
                   "Collect private-log files below the flushed decree (default)",
                   self._plog_gc_setter(True))
        c.register(("replica.disable-plog-gc",), "replica.disable-plog-gc [id1,id2,...]",
                   "Keep every private-log file", self._plog_gc_setter(False))
        c.register(("replica.query-plog-gc-enabled-status",),
                   "replica.query-plog-gc-enabled-status [id1,id2,...]",
                   "Whether each replica collects its private log", self._cmd_plog_gc_status)
        c.register(("replica.list",), "replica.list",
                   "The replicas on this node: status, ballot, decrees",
                   lambda args: node.replicas_json())

    # ------------------------------------------------------------------ helpers
    def _select(self, args: List[str]) -> List:
        """Replicas named by ``id1,id2`` items (``app`` or ``app.pidx``); all without args."""
        reps = [r for _, r in sorted(self.node.replicas.items())]
        if not args or not "".join(args).strip():
            return reps
        want = set()
        for item in ",".join(args).split(","):
            item = item.strip()
            if not item:
                continue
            parts = item.split(".")
            if len(parts) > 2 or not all(p.lstrip("-").isdigit() for p in parts):
                raise ValueError(f"invalid replica id {item!r}: expected app_id or "
                                 "app_id.partition_index")
            want.add(tuple(int(p) for p in parts))
        return [r for r in reps if (r.gpid.app_id,) in want or tuple(r.gpid) in want]

    def _cmd_kill(self, args: List[str]) -> str:
        if len(args) > 2 or not all(a.isdigit() for a in args):
            return "invalid arguments: replica.kill_partition [app_id [partition_index]]"
        victims = [g for g in sorted(self.node.replicas)
                   if (not args or g.app_id == int(args[0]))
                   and (len(args) < 2 or g.partition_index == int(args[1]))]
        for g in victims:
            self.node.post(self.node.kill_replica, g)
        return f"kill partition of {len(victims)} replica(s): " + \
            (", ".join(str(g) for g in victims) or "none")

    def _cmd_trigger_checkpoint(self, args: List[str]) -> str:
        reps = self._select(args)
        for r in reps:
            self.node.jobs.request(r, FLUSH)
        return f"triggered checkpoint of {len(reps)} replica(s): " + \
            ", ".join(str(r.gpid) for r in reps)

    def _cmd_query_compact(self, args: List[str]) -> str:
        out = {}
        for r in self._select(args):
            st = r.storage
            out[str(r.gpid)] = {
                "status": COMPACT_STATUS_NAMES[self.node.jobs.compact_status(r)],
                "trigger_time": st.manual_compact_trigger(),
                "last_finish_time": st.last_manual_compact_finish_time}
        return json.dumps(out, indent=4)

    def _cmd_app_envs(self, args: List[str]) -> str:
        return json.dumps({str(r.gpid): r.app.envs for r in self._select(args)}, indent=4)

    def _plog_gc_setter(self, enabled: bool):
        def fn(args: List[str]) -> str:
            reps = self._select(args)
            for r in reps:
                r.plog_gc = enabled
            return f"{'enabled' if enabled else 'disabled'} private-log gc of " \
                   f"{len(reps)} replica(s)"
        return fn

    def _cmd_plog_gc_status(self, args: List[str]) -> str:
        return json.dumps({str(r.gpid): r.plog_gc for r in self._select(args)}, indent=4)

    def _http_data_version(self, h):
        q = dict(parse_qsl(h.query or "", keep_blank_values=True))
        text = q.get("app_id", "")
        if not text.isdigit():
            return 400, JSON, json.dumps({"error_message": "app_id must be a table id"})
        out = {str(g.partition_index): {"data_version": str(r.storage.view.data_version)}
               for g, r in sorted(self.node.replicas.items()) if g.app_id == int(text)}
        if not out:
            return 404, JSON, json.dumps({"error_message": f"no replica of table {text} here"})
        return 200, JSON, json.dumps(out, indent=4)
