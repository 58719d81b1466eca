// pegasus-py IDL, written from /work/shared/spec/idl-structs.md §3 (not copied from upstream).
// Mirrors upstream src/common/duplication_internal.thrift (the duplicate RPC between clusters).

include "dsn.thrift"

struct duplicate_request {
  1: list<duplicate_entry> entries;
}

struct duplicate_entry {
  1: optional i64 timestamp;
  2: optional dsn.task_code task_code;
  3: optional dsn.blob raw_message;
  4: optional byte cluster_id;
  5: optional bool verify_timetag;
}

struct duplicate_response {
  1: optional i32 error;
  2: optional string error_hint;
}
