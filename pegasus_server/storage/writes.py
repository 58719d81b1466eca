"""The writes of rrdb applied as one mutation: put, remove, multi_put, multi_remove, incr,
check_and_set, check_and_mutate.

Owns data-operations.md §4.2-§4.4, §6.2, §8.3-§8.6, §8.10-§8.12: a ``Mutation`` gathers every
engine operation of one decree into a single ``WriteBatch`` stamped with the mutation's timetag,
applies ``default_ttl`` to records written without expiry, falls back to the empty record (key
``b""``, bare header) when nothing else was written, and records the decree under
``pegasus_last_flushed_decree`` in the meta column family in the same batch — so data and decree
are atomic. Each ``apply_*`` function appends to the mutation and returns the response struct with
every non-optional field set except ``app_id`` / ``partition_index`` / ``server``.

Read-modify-write operations (incr, check_and_*) read the engine, not the pending batch, so they
must be alone in their mutation (upstream batches only PUT and REMOVE); ``Mutation`` enforces it.
Storage failures raise ``EngineError`` (the replica cannot continue, as upstream).

Must not import rocksdict, gevent or sockets.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional

from pegasus_server.rpc import thrift

from . import keys, values
from .engine import CF_META, WriteBatch
from .rules import (
    INT64_MAX,
    INT64_MIN,
    INVALID_ARGUMENT,
    OK,
    TRY_AGAIN,
    buf2int64,
    evaluate_check,
    is_check_type_supported,
)
from .view import PartitionView

rrdb = thrift.rrdb

META_DATA_VERSION = b"pegasus_data_version"
META_LAST_FLUSHED_DECREE = b"pegasus_last_flushed_decree"
META_LAST_MANUAL_COMPACT_FINISH_TIME = b"pegasus_last_manual_compact_finish_time"
META_USAGE_SCENARIO = b"rocksdb.usage_scenario"

EMPTY_RECORD_KEY = b""

MO_PUT = 0
MO_DELETE = 1

RPC_PUT = "RPC_RRDB_RRDB_PUT"
RPC_MULTI_PUT = "RPC_RRDB_RRDB_MULTI_PUT"
RPC_REMOVE = "RPC_RRDB_RRDB_REMOVE"
RPC_MULTI_REMOVE = "RPC_RRDB_RRDB_MULTI_REMOVE"
RPC_INCR = "RPC_RRDB_RRDB_INCR"
RPC_CHECK_AND_SET = "RPC_RRDB_RRDB_CHECK_AND_SET"
RPC_CHECK_AND_MUTATE = "RPC_RRDB_RRDB_CHECK_AND_MUTATE"

#: writes upstream may group into one mutation (ALLOW_BATCH)
BATCHABLE = frozenset({RPC_PUT, RPC_REMOVE})


def _b(v: Optional[bytes]) -> bytes:
    return b"" if v is None else bytes(v)


class Mutation:
    """The engine operations of one decree."""

    def __init__(self, view: PartitionView, decree: int, timestamp_us: int) -> None:
        self.view = view
        self.decree = decree
        self.timetag = values.make_timetag(timestamp_us, view.options.cluster_id)
        self.now = view.now()
        self.batch = WriteBatch()
        self.data_ops = 0
        self.requests = 0
        self._rmw = False

    # ---- engine operations

    def put(self, key: bytes, user_value: bytes, expire_ts: int) -> None:
        ets = values.apply_default_ttl(values.to_stored_expire_ts(expire_ts or 0),
                                       self.view.default_ttl, self.now)
        self.batch.put(key, values.encode_value(user_value, ets, self.timetag,
                                                self.view.data_version))
        self.data_ops += 1

    def delete(self, key: bytes) -> None:
        self.batch.delete(key)
        self.data_ops += 1

    def finish(self) -> WriteBatch:
        """The complete batch: data (or the empty record) plus the decree in the meta family."""
        if self.data_ops == 0:
            self.batch.put(EMPTY_RECORD_KEY,
                           values.encode_value(b"", 0, self.timetag, self.view.data_version))
        self.batch.put(META_LAST_FLUSHED_DECREE, str(self.decree).encode(), CF_META)
        return self.batch

    # ---- request bookkeeping

    def begin(self, rpc_name: str) -> None:
        rmw = rpc_name not in BATCHABLE
        if self.requests and (rmw or self._rmw):
            raise ValueError(f"{rpc_name} cannot share a mutation with other writes")
        self._rmw = self._rmw or rmw
        self.requests += 1


# --------------------------------------------------------------------------- responses


def _update_response(m: Mutation, error: int = OK):
    return rrdb.update_response(error=error, decree=m.decree)


def _cas_response(m: Mutation, cls, error: int = OK):
    return cls(error=error, check_value_returned=False, check_value_exist=False,
               check_value=b"", decree=m.decree)


# --------------------------------------------------------------------------- simple writes


def apply_put(m: Mutation, req):
    key = _b(req.key)
    try:
        keys.validate_key(key)
    except keys.InvalidKey:
        return _update_response(m, INVALID_ARGUMENT)
    m.put(key, _b(req.value), req.expire_ts_seconds or 0)
    return _update_response(m)


def apply_remove(m: Mutation, key: Optional[bytes]):
    key = _b(key)
    try:
        keys.validate_key(key)
    except keys.InvalidKey:
        return _update_response(m, INVALID_ARGUMENT)
    m.delete(key)
    return _update_response(m)


def apply_multi_put(m: Mutation, req):
    hash_key = _b(req.hash_key)
    kvs = req.kvs or []
    if not kvs or len(hash_key) > keys.MAX_HASH_KEY_LEN:
        return _update_response(m, INVALID_ARGUMENT)
    ets = req.expire_ts_seconds or 0
    for kv in kvs:  # later entries win: batch order is preserved
        m.put(keys.encode_key(hash_key, _b(kv.key)), _b(kv.value), ets)
    return _update_response(m)


def apply_multi_remove(m: Mutation, req):
    hash_key = _b(req.hash_key)
    sort_keys = req.sort_keys or []
    resp = rrdb.multi_remove_response(error=OK, count=0, decree=m.decree)
    if not sort_keys or len(hash_key) > keys.MAX_HASH_KEY_LEN:  # Q5 (empty list) / Q8
        resp.error = INVALID_ARGUMENT
        return resp
    for sk in sort_keys:
        m.delete(keys.encode_key(hash_key, _b(sk)))
    resp.count = len(sort_keys)  # Q4: the number requested, not the number that existed
    return resp


# --------------------------------------------------------------------------- incr


def apply_incr(m: Mutation, req):
    resp = rrdb.incr_response(error=OK, new_value=0, decree=m.decree)
    key = _b(req.key)
    try:
        keys.validate_key(key)
    except keys.InvalidKey:
        resp.error = INVALID_ARGUMENT
        return resp
    increment = req.increment or 0
    req_ets = req.expire_ts_seconds or 0
    rec = m.view.lookup(key, m.now)
    if rec is None:
        new = increment
        ets = req_ets if req_ets > 0 else 0
    else:
        if not rec.value:
            new = increment
        else:
            old = buf2int64(rec.value)
            if old is None:
                resp.error = INVALID_ARGUMENT
                return resp
            new = old + increment
            if new > INT64_MAX or new < INT64_MIN:
                resp.error = INVALID_ARGUMENT
                resp.new_value = old
                return resp
        if req_ets == 0:
            ets = rec.expire_ts
        elif req_ets < 0:
            ets = 0
        else:
            ets = req_ets
    m.put(key, str(new).encode(), ets)
    resp.new_value = new
    return resp


# --------------------------------------------------------------------------- check_and_*


def _read_check(m: Mutation, hash_key: bytes, check_sort_key: bytes, req, resp):
    """Steps 2-3 of §8.11: read the check record and fill the check-value fields."""
    rec = m.view.lookup(keys.encode_key(hash_key, check_sort_key), m.now)
    exists = rec is not None
    value = rec.value if exists else b""
    if req.return_check_value:
        resp.check_value_returned = True
        if exists:
            resp.check_value_exist = True
            resp.check_value = value
    return exists, value


def apply_check_and_set(m: Mutation, req):
    resp = _cas_response(m, rrdb.check_and_set_response)
    check_type = req.check_type or 0
    hash_key = _b(req.hash_key)
    if not is_check_type_supported(check_type) or len(hash_key) > keys.MAX_HASH_KEY_LEN:
        resp.error = INVALID_ARGUMENT
        return resp
    check_sk = _b(req.check_sort_key)
    exists, value = _read_check(m, hash_key, check_sk, req, resp)
    passed, invalid = evaluate_check(check_type, _b(req.check_operand), exists, value)
    if not passed:
        resp.error = INVALID_ARGUMENT if invalid else TRY_AGAIN
        return resp
    set_sk = _b(req.set_sort_key) if req.set_diff_sort_key else check_sk
    m.put(keys.encode_key(hash_key, set_sk), _b(req.set_value), req.set_expire_ts_seconds or 0)
    return resp


def apply_check_and_mutate(m: Mutation, req):
    resp = _cas_response(m, rrdb.check_and_mutate_response)
    mutations = req.mutate_list or []
    check_type = req.check_type or 0
    hash_key = _b(req.hash_key)
    if (not mutations
            or any((mu.operation or 0) not in (MO_PUT, MO_DELETE) for mu in mutations)
            or not is_check_type_supported(check_type)
            or len(hash_key) > keys.MAX_HASH_KEY_LEN):
        resp.error = INVALID_ARGUMENT
        return resp
    exists, value = _read_check(m, hash_key, _b(req.check_sort_key), req, resp)
    passed, invalid = evaluate_check(check_type, _b(req.check_operand), exists, value)
    if not passed:
        resp.error = INVALID_ARGUMENT if invalid else TRY_AGAIN
        return resp
    for mu in mutations:
        k = keys.encode_key(hash_key, _b(mu.sort_key))
        if (mu.operation or 0) == MO_PUT:
            m.put(k, _b(mu.value), mu.set_expire_ts_seconds or 0)
        else:
            m.delete(k)
    return resp


#: rpc name -> handler(mutation, request) -> response
WRITE_HANDLERS: Dict[str, Callable] = {
    RPC_PUT: apply_put,
    RPC_REMOVE: apply_remove,
    RPC_MULTI_PUT: apply_multi_put,
    RPC_MULTI_REMOVE: apply_multi_remove,
    RPC_INCR: apply_incr,
    RPC_CHECK_AND_SET: apply_check_and_set,
    RPC_CHECK_AND_MUTATE: apply_check_and_mutate,
}
