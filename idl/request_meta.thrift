// pegasus-py IDL, written from /work/shared/spec/idl-structs.md §3 (not copied from upstream).
// Mirrors upstream src/rpc/request_meta.thrift: the server-side view of the v1 THFT header
// (protocol.md §3.2). Absent fields read as 0 / false.

struct thrift_request_meta_v1 {
  1: optional i32 app_id;
  2: optional i32 partition_index;
  3: optional i32 client_timeout;
  4: optional i64 client_partition_hash;
  5: optional bool is_backup_request;
}
