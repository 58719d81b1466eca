// pegasus-py IDL, written from /work/shared/spec/idl-structs.md §3 (not copied from upstream).
// Mirrors upstream idl/partition_split.thrift.

include "dsn.thrift"
include "layer2.thrift"
include "metadata.thrift"

struct start_partition_split_request {
  1: string app_name;
  2: i32 new_partition_count;
}

struct start_partition_split_response {
  1: dsn.error_code err;
  2: string hint_msg;
}

enum split_control_type {
  PAUSE = 0,
  RESTART = 1,
  CANCEL = 2,
}

struct control_split_request {
  1: string app_name;
  2: split_control_type control_type;
  3: i32 parent_pidx;
  4: optional i32 old_partition_count;
}

struct control_split_response {
  1: dsn.error_code err;
  2: optional string hint_msg;
}

struct query_split_request {
  1: string app_name;
}

struct query_split_response {
  1: dsn.error_code err;
  2: i32 new_partition_count;
  3: map<i32, metadata.split_status> status;
  4: optional string hint_msg;
}

struct notify_catch_up_request {
  1: dsn.gpid parent_gpid;
  2: dsn.gpid child_gpid;
  3: i64 child_ballot;
  4: dsn.rpc_address child;
  5: optional dsn.host_port hp_child;
}

// The misspelling "cacth" is upstream's and part of the name.
struct notify_cacth_up_response {
  1: dsn.error_code err;
}

struct update_child_group_partition_count_request {
  1: dsn.rpc_address target;
  2: i32 new_partition_count;
  3: dsn.gpid child_pid;
  4: i64 ballot;
  5: optional dsn.host_port hp_target;
}

struct update_child_group_partition_count_response {
  1: dsn.error_code err;
}

struct register_child_request {
  1: layer2.app_info app;
  2: layer2.partition_configuration parent_config;
  3: layer2.partition_configuration child_config;
  4: dsn.rpc_address primary;
  5: optional dsn.host_port hp_primary;
}

struct register_child_response {
  1: dsn.error_code err;
  2: layer2.app_info app;
  3: layer2.partition_configuration parent_config;
  4: layer2.partition_configuration child_config;
}

struct notify_stop_split_request {
  1: string app_name;
  2: dsn.gpid parent_gpid;
  3: metadata.split_status meta_split_status;
  4: i32 partition_count;
}

struct notify_stop_split_response {
  1: dsn.error_code err;
}

struct query_child_state_request {
  1: string app_name;
  2: dsn.gpid pid;
  3: i32 partition_count;
}

struct query_child_state_response {
  1: dsn.error_code err;
  2: optional i32 partition_count;
  3: optional layer2.partition_configuration child_config;
}
