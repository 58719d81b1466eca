"""The RPC catalogue: every RPC name with its argument and result types (protocol.md §7).

One table; servers look handlers up by name in their own handler tables and take the types from
here, the peer client takes them from here too. Types are written as ``"<idl stem>.<struct>"``,
``"i64"`` / ``"string"``, or ``None`` (no reply: one-way RPCs and clear_scanner, spec D4), and are
resolved lazily against ``rpc/thrift.py``. ``write`` marks the storage writes (1 MiB body limit,
replication path). Must not import gevent or storage code.
"""
from __future__ import annotations

from typing import Dict, NamedTuple, Optional

from pegasus_server.rpc import thrift

# name: (argument type, result type, is storage write)
_TABLE = {
    # --- replica server: storage RPCs (protocol.md §7.1)
    "RPC_RRDB_RRDB_PUT": ("rrdb.update_request", "rrdb.update_response", True),
    "RPC_RRDB_RRDB_MULTI_PUT": ("rrdb.multi_put_request", "rrdb.update_response", True),
    "RPC_RRDB_RRDB_REMOVE": ("dsn.blob", "rrdb.update_response", True),
    "RPC_RRDB_RRDB_MULTI_REMOVE": ("rrdb.multi_remove_request", "rrdb.multi_remove_response", True),
    "RPC_RRDB_RRDB_INCR": ("rrdb.incr_request", "rrdb.incr_response", True),
    "RPC_RRDB_RRDB_CHECK_AND_SET": ("rrdb.check_and_set_request", "rrdb.check_and_set_response", True),
    "RPC_RRDB_RRDB_CHECK_AND_MUTATE": ("rrdb.check_and_mutate_request",
                                       "rrdb.check_and_mutate_response", True),
    "RPC_RRDB_RRDB_GET": ("dsn.blob", "rrdb.read_response", False),
    "RPC_RRDB_RRDB_MULTI_GET": ("rrdb.multi_get_request", "rrdb.multi_get_response", False),
    "RPC_RRDB_RRDB_BATCH_GET": ("rrdb.batch_get_request", "rrdb.batch_get_response", False),
    "RPC_RRDB_RRDB_SORTKEY_COUNT": ("dsn.blob", "rrdb.count_response", False),
    "RPC_RRDB_RRDB_TTL": ("dsn.blob", "rrdb.ttl_response", False),
    "RPC_RRDB_RRDB_GET_SCANNER": ("rrdb.get_scanner_request", "rrdb.scan_response", False),
    "RPC_RRDB_RRDB_SCAN": ("rrdb.scan_request", "rrdb.scan_response", False),
    "RPC_RRDB_RRDB_CLEAR_SCANNER": ("i64", None, False),
    # --- meta server (protocol.md §7.2)
    "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX": ("layer2.query_cfg_request", "layer2.query_cfg_response", False),
    "RPC_CM_CREATE_APP": ("meta_admin.configuration_create_app_request",
                          "meta_admin.configuration_create_app_response", False),
    "RPC_CM_DROP_APP": ("meta_admin.configuration_drop_app_request",
                        "meta_admin.configuration_drop_app_response", False),
    "RPC_CM_RECALL_APP": ("meta_admin.configuration_recall_app_request",
                          "meta_admin.configuration_recall_app_response", False),
    "RPC_CM_RENAME_APP": ("meta_admin.configuration_rename_app_request",
                          "meta_admin.configuration_rename_app_response", False),
    "RPC_CM_LIST_APPS": ("meta_admin.configuration_list_apps_request",
                         "meta_admin.configuration_list_apps_response", False),
    "RPC_CM_LIST_NODES": ("meta_admin.configuration_list_nodes_request",
                          "meta_admin.configuration_list_nodes_response", False),
    "RPC_CM_CLUSTER_INFO": ("meta_admin.configuration_cluster_info_request",
                            "meta_admin.configuration_cluster_info_response", False),
    "RPC_CM_CONTROL_META": ("meta_admin.configuration_meta_control_request",
                            "meta_admin.configuration_meta_control_response", False),
    "RPC_CM_PROPOSE_BALANCER": ("meta_admin.configuration_balancer_request",
                                "meta_admin.configuration_balancer_response", False),
    "RPC_CM_UPDATE_APP_ENV": ("meta_admin.configuration_update_app_env_request",
                              "meta_admin.configuration_update_app_env_response", False),
    "RPC_CM_GET_MAX_REPLICA_COUNT": ("meta_admin.configuration_get_max_replica_count_request",
                                     "meta_admin.configuration_get_max_replica_count_response", False),
    "RPC_CM_SET_MAX_REPLICA_COUNT": ("meta_admin.configuration_set_max_replica_count_request",
                                     "meta_admin.configuration_set_max_replica_count_response", False),
    "RPC_CM_GET_ATOMIC_IDEMPOTENT": ("meta_admin.configuration_get_atomic_idempotent_request",
                                     "meta_admin.configuration_get_atomic_idempotent_response", False),
    "RPC_CM_SET_ATOMIC_IDEMPOTENT": ("meta_admin.configuration_set_atomic_idempotent_request",
                                     "meta_admin.configuration_set_atomic_idempotent_response", False),
    "RPC_CM_START_MANUAL_COMPACT": ("meta_admin.start_app_manual_compact_request",
                                    "meta_admin.start_app_manual_compact_response", False),
    "RPC_CM_QUERY_MANUAL_COMPACT_STATUS": ("meta_admin.query_app_manual_compact_request",
                                           "meta_admin.query_app_manual_compact_response", False),
    "RPC_CM_DDD_DIAGNOSE": ("meta_admin.ddd_diagnose_request", "meta_admin.ddd_diagnose_response", False),
    "RPC_CLI_CLI_CALL": ("command.command", "string", False),
    # --- replica server: node-level administration (protocol.md §7.3)
    "RPC_QUERY_DISK_INFO": ("replica_admin.query_disk_info_request",
                            "replica_admin.query_disk_info_response", False),
    "RPC_QUERY_APP_INFO": ("meta_admin.query_app_info_request", "meta_admin.query_app_info_response", False),
    "RPC_QUERY_REPLICA_INFO": ("replica_admin.query_replica_info_request",
                               "replica_admin.query_replica_info_response", False),
    "RPC_QUERY_PN_DECREE": ("replica_admin.query_replica_decree_request",
                            "replica_admin.query_replica_decree_response", False),
    "RPC_DETECT_HOTKEY": ("replica_admin.detect_hotkey_request", "replica_admin.detect_hotkey_response", False),
    # --- server-internal (protocol.md §7.4; D2: THFT between our servers)
    "RPC_FD_FAILURE_DETECTOR_PING": ("fd.beacon_msg", "fd.beacon_ack", False),
    "RPC_CM_CONFIG_SYNC": ("meta_admin.configuration_query_by_node_request",
                           "meta_admin.configuration_query_by_node_response", False),
    "RPC_CM_UPDATE_PARTITION_CONFIGURATION": ("meta_admin.configuration_update_request",
                                              "meta_admin.configuration_update_response", False),
    "RPC_CONFIG_PROPOSAL": ("meta_admin.configuration_update_request", None, False),
    # replica <-> replica (replication.md §5; replica/wire.py converts to the core's messages)
    "RPC_PREPARE": ("consensus.prepare_msg", "consensus.prepare_ack", False),
    "RPC_GROUP_CHECK": ("consensus.group_check_request", "consensus.group_check_response", False),
    "RPC_LEARN": ("consensus.learn_request", "consensus.learn_response", False),
    "RPC_LEARN_COMPLETION_NOTIFY": ("consensus.group_check_response",
                                    "consensus.learn_notify_response", False),
    "RPC_LEARN_ADD_LEARNER": ("consensus.group_check_request", None, False),   # one-way
    "RPC_REMOVE_REPLICA": ("metadata.replica_configuration", None, False),      # one-way
    "RPC_QUERY_LAST_CHECKPOINT_INFO": ("consensus.learn_request", "consensus.learn_response", False),
    "RPC_NFS_COPY": ("nfs.copy_request", "nfs.copy_response", False),
    "RPC_NFS_GET_FILE_SIZE": ("nfs.get_file_size_request", "nfs.get_file_size_response", False),
}


class Entry(NamedTuple):
    name: str
    arg_spec: object
    result_spec: Optional[object]
    is_write: bool


def _resolve(t):
    if t is None:
        return None
    if t == "i64":
        return thrift.T_I64
    if t == "string":
        return thrift.T_STRING
    stem, _, cls = t.partition(".")
    return thrift.type_spec(getattr(thrift.load(stem), cls))


_resolved: Dict[str, Entry] = {}


def get(name: str) -> Entry:
    e = _resolved.get(name)
    if e is None:
        arg, res, write = _TABLE[name]
        e = _resolved[name] = Entry(name, _resolve(arg), _resolve(res), write)
    return e


def find(name: str) -> Optional[Entry]:
    return get(name) if name in _TABLE else None


def names():
    return list(_TABLE)


WRITE_RPCS = frozenset(n for n, (_, _, w) in _TABLE.items() if w)
