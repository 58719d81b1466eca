"""Error names (upstream ``dsn::error_code``) and the exception hierarchy of pegasus-py.

Error codes travel on the wire only as names (protocol.md §5). ``ERROR_NAMES`` is upstream's
definition order; ``SAFE_NAMES`` are the 73 names every client (Java, Go, Python) knows and so the
only ones that may appear in a reply header or in the ``err`` field of a body that Java or Python
decode (spec D6). Imports nothing beyond the standard library.
"""
from __future__ import annotations

# (name, known to the Go client) in upstream definition order; numbers 0..87.
_TABLE = [
    ("ERR_OK", True),
    ("ERR_UNKNOWN", True),
    ("ERR_SERVICE_NOT_FOUND", True),
    ("ERR_SERVICE_ALREADY_RUNNING", True),
    ("ERR_IO_PENDING", True),
    ("ERR_TIMEOUT", True),
    ("ERR_SERVICE_NOT_ACTIVE", True),
    ("ERR_BUSY", True),
    ("ERR_NETWORK_INIT_FAILED", True),
    ("ERR_FORWARD_TO_OTHERS", True),
    ("ERR_OBJECT_NOT_FOUND", True),
    ("ERR_HANDLER_NOT_FOUND", True),
    ("ERR_LEARN_FILE_FAILED", True),
    ("ERR_GET_LEARN_STATE_FAILED", True),
    ("ERR_INVALID_VERSION", True),
    ("ERR_INVALID_PARAMETERS", True),
    ("ERR_CAPACITY_EXCEEDED", True),
    ("ERR_INVALID_STATE", True),
    ("ERR_INACTIVE_STATE", True),
    ("ERR_NOT_ENOUGH_MEMBER", True),
    ("ERR_FILE_OPERATION_FAILED", True),
    ("ERR_HANDLE_EOF", True),
    ("ERR_WRONG_CHECKSUM", True),
    ("ERR_INVALID_DATA", True),
    ("ERR_INVALID_HANDLE", True),
    ("ERR_INCOMPLETE_DATA", True),
    ("ERR_VERSION_OUTDATED", True),
    ("ERR_PATH_NOT_FOUND", True),
    ("ERR_PATH_ALREADY_EXIST", True),
    ("ERR_ADDRESS_ALREADY_USED", True),
    ("ERR_STATE_FREEZED", True),
    ("ERR_LOCAL_APP_FAILURE", True),
    ("ERR_BIND_IOCP_FAILED", True),
    ("ERR_NETWORK_START_FAILED", True),
    ("ERR_NOT_IMPLEMENTED", True),
    ("ERR_CHECKPOINT_FAILED", True),
    ("ERR_WRONG_TIMING", True),
    ("ERR_NO_NEED_OPERATE", True),
    ("ERR_CORRUPTION", True),
    ("ERR_TRY_AGAIN", True),
    ("ERR_CLUSTER_NOT_FOUND", True),
    ("ERR_CLUSTER_ALREADY_EXIST", True),
    ("ERR_SERVICE_ALREADY_EXIST", True),
    ("ERR_INJECTED", True),
    ("ERR_REPLICATION_FAILURE", True),
    ("ERR_APP_EXIST", True),
    ("ERR_APP_NOT_EXIST", True),
    ("ERR_BUSY_CREATING", True),
    ("ERR_BUSY_DROPPING", True),
    ("ERR_NETWORK_FAILURE", True),
    ("ERR_UNDER_RECOVERY", True),
    ("ERR_LEARNER_NOT_FOUND", False),
    ("ERR_OPERATION_DISABLED", True),
    ("ERR_EXPIRED", True),
    ("ERR_LOCK_ALREADY_EXIST", True),
    ("ERR_HOLD_BY_OTHERS", True),
    ("ERR_RECURSIVE_LOCK", True),
    ("ERR_NO_OWNER", True),
    ("ERR_NODE_ALREADY_EXIST", True),
    ("ERR_INCONSISTENT_STATE", True),
    ("ERR_ARRAY_INDEX_OUT_OF_RANGE", True),
    ("ERR_DIR_NOT_EMPTY", False),
    ("ERR_FS_INTERNAL", False),
    ("ERR_IGNORE_BAD_DATA", False),
    ("ERR_APP_DROPPED", True),
    ("ERR_MOCK_INTERNAL", False),
    ("ERR_ZOOKEEPER_OPERATION", True),
    ("ERR_CHILD_REGISTERED", True),
    ("ERR_INGESTION_FAILED", True),
    ("ERR_UNAUTHENTICATED", True),
    ("ERR_KRB5_INTERNAL", True),
    ("ERR_SASL_INTERNAL", True),
    ("ERR_SASL_INCOMPLETE", True),
    ("ERR_ACL_DENY", True),
    ("ERR_SPLITTING", True),
    ("ERR_PARENT_PARTITION_MISUSED", True),
    ("ERR_CHILD_NOT_READY", True),
    ("ERR_DISK_INSUFFICIENT", True),
    ("ERR_RETRY_EXHAUSTED", False),  # upstream-only, never in a header
    ("ERR_SYNC_RANGER_POLICIES_FAILED", False),  # upstream-only, never in a header
    ("ERR_RANGER_PARSE_ACL", False),  # upstream-only, never in a header
    ("ERR_RANGER_POLICIES_NO_NEED_UPDATE", False),  # upstream-only, never in a header
    ("ERR_RDB_CORRUPTION", False),  # upstream-only, never in a header
    ("ERR_DISK_IO_ERROR", False),  # upstream-only, never in a header
    ("ERR_CURL_FAILED", False),  # upstream-only, never in a header
    ("ERR_DUP_EXIST", False),  # upstream-only, never in a header
    ("ERR_HTTP_ERROR", False),  # upstream-only, never in a header
    ("ERR_NOT_MATCHED", False),  # upstream-only, never in a header
]

ERROR_NAMES = [name for name, _ in _TABLE]
ERROR_CODES = {name: i for i, name in enumerate(ERROR_NAMES)}
# Known to J, G and P: names 0..77 that the Go client also knows.
SAFE_NAMES = frozenset(name for i, (name, go) in enumerate(_TABLE) if i <= 77 and go)

# Make every name a module constant: errors.ERR_OK == "ERR_OK".
globals().update({name: name for name in ERROR_NAMES})


class PegasusError(Exception):
    """Base of every exception raised by pegasus-py code (bugs and violations, not outcomes)."""


class ProtocolError(PegasusError):
    """The peer broke the wire protocol; the connection that carried it is closed."""


class ConfigError(PegasusError):
    """A configuration file or option is invalid."""


class RpcError(PegasusError):
    """A remote call ended with a header error (or a transport failure, as ERR_TIMEOUT /
    ERR_NETWORK_FAILURE)."""

    def __init__(self, err: str, message: str = ""):
        super().__init__(f"{err}{': ' + message if message else ''}")
        self.err = err
