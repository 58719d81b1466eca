// pegasus-py IDL, written from /work/shared/spec/idl-structs.md §3 (not copied from upstream).
// Mirrors upstream idl/dsn.thrift: the six placeholder types.
//
// These are declared as EMPTY structs on purpose. On the wire each one is tagged 12 (STRUCT) but
// its payload is not a struct (protocol.md §2.2); our codec recognises these classes by name and
// by module (dsn_thrift) and encodes them specially. Never give them fields.

struct blob {
}

struct error_code {
}

struct task_code {
}

struct rpc_address {
}

struct host_port {
}

struct gpid {
}
