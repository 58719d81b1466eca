"""The point and range reads of rrdb: get, ttl, multi_get, batch_get, sortkey_count.

Owns the behaviour of data-operations.md §8.1, §8.2, §8.7, §8.8, §8.9: status codes, limits,
range bounds and inclusivity, prefix narrowing, filters, reverse walks, the status-7 rule (Q6,
only when the next record is still inside the range), sortkey_count's ``count = -1`` on timeout
(Q7) and status 4 for hash keys of 65535 bytes or more (Q8). Each function takes a
``PartitionView`` and the request as decoded (placeholder blobs as bytes, absent fields None) and
returns a response struct of ``thrift.rrdb`` with every non-optional field set except the common
``app_id`` / ``partition_index`` / ``server`` which the caller (``app.StorageApp``) fills in.

Must not import rocksdict, gevent or sockets.
"""
from __future__ import annotations

from typing import Optional

from pegasus_server.rpc import thrift

from . import keys, values
from .engine import EngineError
from .rules import (
    CORRUPTION,
    INCOMPLETE,
    INT_MAX,
    INVALID_ARGUMENT,
    IO_ERROR,
    NOT_FOUND,
    OK,
    FT_MATCH_PREFIX,
    RangeReadLimiter,
    filter_matches,
    is_filter_type_supported,
)
from .view import PartitionView

rrdb = thrift.rrdb


def failure_status(exc: Exception) -> int:
    """RocksDB status code for a storage exception (corrupt value -> 2, other failures -> 5)."""
    if isinstance(exc, values.InvalidValue):
        return CORRUPTION
    return IO_ERROR


def _b(v: Optional[bytes]) -> bytes:
    return b"" if v is None else bytes(v)


# --------------------------------------------------------------------------- get / ttl


def get(view: PartitionView, key: Optional[bytes]):
    key = _b(key)
    resp = rrdb.read_response(error=OK, value=b"")
    try:
        keys.validate_key(key)
    except keys.InvalidKey:
        resp.error = INVALID_ARGUMENT
        return resp
    try:
        rec = view.lookup(key, view.now())
    except (EngineError, values.InvalidValue) as e:
        resp.error = failure_status(e)
        return resp
    if rec is None:
        resp.error = NOT_FOUND
    else:
        resp.value = rec.value
    return resp


def ttl(view: PartitionView, key: Optional[bytes]):
    key = _b(key)
    resp = rrdb.ttl_response(error=OK, ttl_seconds=0)
    try:
        keys.validate_key(key)
    except keys.InvalidKey:
        resp.error = INVALID_ARGUMENT
        return resp
    now = view.now()
    try:
        rec = view.lookup(key, now)
    except (EngineError, values.InvalidValue) as e:
        resp.error = failure_status(e)
        return resp
    if rec is None:
        resp.error = NOT_FOUND
    else:
        resp.ttl_seconds = values.ttl_seconds(rec.expire_ts, now)
    return resp


# --------------------------------------------------------------------------- batch_get


def batch_get(view: PartitionView, request):
    resp = rrdb.batch_get_response(error=OK, data=[])
    items = request.keys or []
    if not items:
        resp.error = INVALID_ARGUMENT
        return resp
    try:
        raw = [keys.encode_key(_b(fk.hash_key), _b(fk.sort_key)) for fk in items]
    except keys.InvalidKey:
        resp.error = INVALID_ARGUMENT
        return resp
    now = view.now()
    data = []
    try:
        for fk, rk in zip(items, raw):
            rec = view.lookup(rk, now)
            if rec is not None:
                data.append(rrdb.full_data(hash_key=_b(fk.hash_key), sort_key=_b(fk.sort_key),
                                           value=rec.value))
    except (EngineError, values.InvalidValue) as e:
        resp.error = failure_status(e)
        return resp
    resp.data = data
    return resp


# --------------------------------------------------------------------------- sortkey_count


def sortkey_count(view: PartitionView, hash_key: Optional[bytes]):
    hash_key = _b(hash_key)
    resp = rrdb.count_response(error=OK, count=0)
    try:
        start = keys.encode_key(hash_key, b"")
    except keys.InvalidKey:
        resp.error = INVALID_ARGUMENT
        return resp
    stop = keys.next_key(hash_key)
    now = view.now()
    limiter = RangeReadLimiter(view.options.rocksdb_max_iteration_count, 0,
                               view.iteration_threshold_ms, view.timer)
    count = 0
    try:
        with view.engine.cursor(start, stop) as cur:
            cur.seek_to_first()
            while limiter.time_check() and cur.valid:
                limiter.add_count()
                if not values.is_expired(view.expire_ts_of(cur.value()), now):
                    count += 1
                cur.next()
    except (EngineError, values.InvalidValue) as e:
        resp.error = failure_status(e)
        return resp
    resp.count = -1 if limiter.exceeded else count  # Q7: timeout -> status 0, count -1
    return resp


# --------------------------------------------------------------------------- multi_get


def multi_get(view: PartitionView, request):
    resp = rrdb.multi_get_response(error=OK, kvs=[])
    ftype = request.sort_key_filter_type or 0
    if not is_filter_type_supported(ftype):
        resp.error = INVALID_ARGUMENT
        return resp
    hash_key = _b(request.hash_key)
    if len(hash_key) > keys.MAX_HASH_KEY_LEN:
        resp.error = INVALID_ARGUMENT  # Q8
        return resp
    opts = view.options
    max_kv_count = opts.rocksdb_multi_get_max_iteration_count
    req_count = request.max_kv_count or 0
    if 0 < req_count < max_kv_count:
        max_kv_count = req_count
    req_size = request.max_kv_size or 0
    max_kv_size = req_size if req_size > 0 else INT_MAX
    no_value = bool(request.no_value)
    try:
        if request.sort_keys:
            status, kvs = _multi_get_points(view, hash_key, request.sort_keys, max_kv_count,
                                            max_kv_size, no_value)
        else:
            cfg_size = opts.rocksdb_multi_get_max_iteration_size
            max_iter_size = min(max_kv_size, cfg_size if cfg_size > 0 else INT_MAX)
            status, kvs = _multi_get_range(view, request, hash_key, ftype, max_kv_count,
                                           max_iter_size, no_value)
    except (EngineError, values.InvalidValue) as e:
        resp.error = failure_status(e)
        return resp
    resp.error = status
    resp.kvs = kvs
    return resp


def _multi_get_points(view, hash_key, sort_keys, max_kv_count, max_kv_size, no_value):
    now = view.now()
    kvs = []
    count = size = 0
    for sk in sort_keys:
        sk = _b(sk)
        rec = view.lookup(keys.encode_key(hash_key, sk), now)
        if rec is None:
            continue
        if count >= max_kv_count or size >= max_kv_size:
            return INCOMPLETE, kvs
        v = b"" if no_value else rec.value
        kvs.append(rrdb.key_value(key=sk, value=v))
        count += 1
        size += len(sk) + len(v)
    return OK, kvs


def _multi_get_range(view, request, hash_key, ftype, max_kv_count, max_iter_size, no_value):
    pattern = _b(request.sort_key_filter_pattern)
    start = keys.encode_key(hash_key, _b(request.start_sortkey))
    start_incl = bool(request.start_inclusive)
    stop_sk = _b(request.stop_sortkey)
    if not stop_sk:
        stop, stop_incl = keys.next_key(hash_key), False
    else:
        stop, stop_incl = keys.encode_key(hash_key, stop_sk), bool(request.stop_inclusive)

    if ftype == FT_MATCH_PREFIX and pattern:
        ps = keys.encode_key(hash_key, pattern)
        pe = keys.next_key(hash_key, pattern)
        if ps > start:
            start, start_incl = ps, True
        if pe <= stop:
            stop, stop_incl = pe, False

    if start > stop or (start == stop and not (start_incl and stop_incl)):
        return OK, []

    now = view.now()
    hk_len = 2 + len(hash_key)
    limiter = RangeReadLimiter(view.options.rocksdb_multi_get_max_iteration_count, max_iter_size,
                               view.iteration_threshold_ms, view.timer)
    collected = []
    count = 0
    complete = False
    reverse = bool(request.reverse)

    def visit(k: bytes, stored: bytes) -> None:
        nonlocal count
        limiter.add_count()
        ets, _tt, user = view.decode(stored)
        if values.is_expired(ets, now):
            return
        sk = k[hk_len:]
        if not filter_matches(ftype, pattern, sk):
            return
        v = b"" if no_value else user
        collected.append(rrdb.key_value(key=sk, value=v))
        count += 1
        limiter.add_size(len(sk) + len(v))

    # The cursor is confined to this hash key, so it never leaves the caller's records.
    with view.engine.cursor(keys.encode_key(hash_key, b""), keys.next_key(hash_key)) as cur:
        if not reverse:
            cur.seek(start)
            first_exclusive = not start_incl
            while count < max_kv_count and limiter.valid() and cur.valid:
                k = cur.key()
                if k > stop or (k == stop and not stop_incl):
                    complete = True
                    break
                if first_exclusive:
                    first_exclusive = False
                    if k == start:
                        cur.next()
                        continue
                visit(k, cur.value())
                if k == stop:
                    complete = True
                    break
                cur.next()
            more = (not complete and cur.valid
                    and (cur.key() < stop or (cur.key() == stop and stop_incl)))
        else:
            cur.seek_for_prev(stop)
            first_exclusive = not stop_incl
            while count < max_kv_count and limiter.valid() and cur.valid:
                k = cur.key()
                if k < start or (k == start and not start_incl):
                    complete = True
                    break
                if first_exclusive:
                    first_exclusive = False
                    if k == stop:
                        cur.prev()
                        continue
                visit(k, cur.value())
                if k == start:
                    complete = True
                    break
                cur.prev()
            more = (not complete and cur.valid
                    and (cur.key() > start or (cur.key() == start and start_incl)))
            collected.reverse()
    # Q6: 7 only when the walk stopped at a limit while a record inside the range remains.
    return (INCOMPLETE if more else OK), collected
