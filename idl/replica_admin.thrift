// pegasus-py IDL, written from /work/shared/spec/idl-structs.md §3 (not copied from upstream).
// Mirrors upstream idl/replica_admin.thrift (node-level replica administration).

include "dsn.thrift"
include "layer2.thrift"
include "metadata.thrift"

struct query_replica_decree_request {
  1: dsn.gpid pid;
  2: dsn.rpc_address node1;
  3: optional dsn.host_port hp_node1;
}

struct query_replica_decree_response {
  1: dsn.error_code err;
  2: i64 last_decree;
}

struct query_replica_info_request {
  1: dsn.rpc_address node1;
  2: optional dsn.host_port hp_node1;
}

struct query_replica_info_response {
  1: dsn.error_code err;
  2: list<metadata.replica_info> replicas;
}

struct disk_info {
  1: string tag;
  2: string full_dir;
  3: i64 disk_capacity_mb;
  4: i64 disk_available_mb;
  5: map<i32, set<dsn.gpid>> holding_primary_replicas;
  6: map<i32, set<dsn.gpid>> holding_secondary_replicas;
}

struct query_disk_info_request {
  1: dsn.rpc_address node1;
  2: string app_name;
  3: optional dsn.host_port hp_node1;
}

struct query_disk_info_response {
  1: dsn.error_code err;
  2: i64 total_capacity_mb;
  3: i64 total_available_mb;
  4: list<disk_info> disk_infos;
}

struct replica_disk_migrate_request {
  1: dsn.gpid pid;
  2: string origin_disk;
  3: string target_disk;
}

struct replica_disk_migrate_response {
  1: dsn.error_code err;
  2: optional string hint;
}

enum disk_migration_status {
  IDLE = 0,
  MOVING = 1,
  MOVED = 2,
  CLOSED = 3,
}

enum hotkey_type {
  READ = 0,
  WRITE = 1,
}

enum detect_action {
  START = 0,
  STOP = 1,
  QUERY = 2,
}

struct detect_hotkey_request {
  1: hotkey_type type;
  2: detect_action action;
  3: dsn.gpid pid;
}

struct detect_hotkey_response {
  1: dsn.error_code err;
  2: optional string err_hint;
  3: optional string hotkey_result;
}

struct add_new_disk_request {
  1: string disk_str;
}

struct add_new_disk_response {
  1: dsn.error_code err;
  2: optional string err_hint;
}

// Documentation only.
service replica_client {
  query_disk_info_response query_disk_info(1: query_disk_info_request req);
  replica_disk_migrate_response disk_migrate(1: replica_disk_migrate_request req);
  detect_hotkey_response detect_hotkey(1: detect_hotkey_request req);
  add_new_disk_response add_disk(1: add_new_disk_request req);
}
