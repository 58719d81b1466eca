// pegasus-py IDL, written from /work/shared/spec/idl-structs.md §3 (not copied from upstream).
// Mirrors upstream src/common/consensus.thrift (2PC prepare, learning, group check).

include "dsn.thrift"
include "layer2.thrift"
include "metadata.thrift"
include "utils.thrift"

struct mutation_header {
  1: dsn.gpid pid;
  2: i64 ballot;
  3: i64 decree;
  4: i64 log_offset;
  5: i64 last_committed_decree;
  6: i64 timestamp;
}

struct mutation_update {
  1: dsn.task_code code;
  2: i32 serialization_type;
  3: dsn.blob data;
  4: optional i64 start_time_ns;
}

struct mutation_data {
  1: mutation_header header;
  2: list<mutation_update> updates;
}

struct prepare_msg {
  1: metadata.replica_configuration config;
  2: mutation_data mu;
}

// read_semantic, read_request_header, write_request_header and rw_response_header are declared
// upstream but never on the wire.
enum read_semantic {
  ReadInvalid = 0,
  ReadLastUpdate = 1,
  ReadOutdated = 2,
  ReadSnapshot = 3,
}

struct read_request_header {
  1: dsn.gpid pid;
  2: dsn.task_code code;
  3: read_semantic semantic = read_semantic.ReadLastUpdate;
  4: i64 version_decree = -1;
}

struct write_request_header {
  1: dsn.gpid pid;
  2: dsn.task_code code;
}

struct rw_response_header {
  1: dsn.error_code err;
}

struct prepare_ack {
  1: dsn.gpid pid;
  2: dsn.error_code err;
  3: i64 ballot;
  4: i64 decree;
  5: i64 last_committed_decree_in_app;
  6: i64 last_committed_decree_in_prepare_list;
  7: optional i64 receive_timestamp;
  8: optional i64 response_timestamp;
}

enum learn_type {
  LT_INVALID = 0,
  LT_CACHE = 1,
  LT_APP = 2,
  LT_LOG = 3,
}

struct learn_state {
  1: i64 from_decree_excluded;
  2: i64 to_decree_included;
  3: dsn.blob meta;
  4: list<string> files;
  5: optional i64 learn_start_decree;
  6: optional list<i64> file_sizes;
  7: optional list<string> file_checksums;
}

enum learner_status {
  LearningInvalid = 0,
  LearningWithoutPrepare = 1,
  LearningWithPrepareTransient = 2,
  LearningWithPrepare = 3,
  LearningSucceeded = 4,
  LearningFailed = 5,
}

struct learn_request {
  1: dsn.gpid pid;
  2: dsn.rpc_address learner;
  3: i64 signature;
  4: i64 last_committed_decree_in_app;
  5: i64 last_committed_decree_in_prepare_list;
  6: dsn.blob app_specific_learn_request;
  7: optional i64 max_gced_decree;
  8: optional dsn.host_port hp_learner;
  9: optional utils.checksum_type checksum_type = utils.checksum_type.CST_NONE;
}

struct learn_response {
  1: dsn.error_code err;
  2: metadata.replica_configuration config;
  3: i64 last_committed_decree;
  4: i64 prepare_start_decree;
  5: learn_type type = learn_type.LT_INVALID;
  6: learn_state state;
  7: dsn.rpc_address learnee;
  8: string base_local_dir;
  9: optional string replica_disk_tag;
  10: optional dsn.host_port hp_learnee;
}

struct learn_notify_response {
  1: dsn.gpid pid;
  2: dsn.error_code err;
  3: i64 signature;
}

struct group_check_request {
  1: layer2.app_info app;
  2: dsn.rpc_address node;
  3: metadata.replica_configuration config;
  4: i64 last_committed_decree;
  5: optional i64 confirmed_decree;
  6: optional dsn.gpid child_gpid;
  7: optional metadata.split_status meta_split_status;
  8: optional dsn.host_port hp_node;
}

struct group_check_response {
  1: dsn.gpid pid;
  2: dsn.error_code err;
  3: i64 last_committed_decree_in_app;
  4: i64 last_committed_decree_in_prepare_list;
  5: learner_status learner_status_ = learner_status.LearningInvalid;
  6: i64 learner_signature;
  7: dsn.rpc_address node;
  8: optional bool is_split_stopped;
  9: optional metadata.disk_status disk_status = metadata.disk_status.NORMAL;
  10: optional dsn.host_port hp_node;
}
