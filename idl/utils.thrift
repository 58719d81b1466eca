// pegasus-py IDL, written from /work/shared/spec/idl-structs.md §3 (not copied from upstream).
// Mirrors upstream idl/utils.thrift.

enum pattern_match_type {
  PMT_INVALID = 0,
  PMT_MATCH_ALL = 1,
  PMT_MATCH_EXACT = 2,
  PMT_MATCH_ANYWHERE = 3,
  PMT_MATCH_PREFIX = 4,
  PMT_MATCH_POSTFIX = 5,
  PMT_MATCH_REGEX = 6,
}

enum checksum_type {
  CST_INVALID = 0,
  CST_NONE = 1,
  CST_MD5 = 2,
}
