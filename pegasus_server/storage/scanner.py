"""Scanners: get_scanner / scan / clear_scanner and the per-partition scan-context store.

Owns data-operations.md §8.13: bounds and hash-key prefix narrowing, filters, expiry and optional
split-hash validation, batch and iteration limits, the time budget (status 7), ``no_value``,
``return_expire_ts``, ``only_return_count`` / ``kv_count``, and the context protocol: a continuing
scan is stored under a fresh id in ``0 … 2⁶³−1`` (Q2), a finished one answers ``context_id = −1``,
as do the empty-range (Q1) and every reply that stores no context (Q3); an unknown or expired id
answers status 1. A stored context remembers the next unread key (not a live iterator), so it
holds no engine resources; it expires ``scan_context_timeout_seconds`` after it was stored.

Must not import rocksdict, gevent or sockets; time comes from the view's injected timer.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Dict, Optional

from pegasus_server.rpc import thrift

from . import keys, values
from .engine import EngineError
from .reads import failure_status
from .rules import (
    FT_MATCH_PREFIX,
    INCOMPLETE,
    INVALID_ARGUMENT,
    NOT_FOUND,
    OK,
    SCAN_CONTEXT_ID_COMPLETED,
    RangeReadLimiter,
    filter_matches,
    is_filter_type_supported,
)
from .view import PartitionView

rrdb = thrift.rrdb

_ID_SPACE = 1 << 63


@dataclass
class ScanContext:
    """What a scan needs to continue: the next key to read and the saved options."""

    next_key: bytes
    stop: bytes
    stop_inclusive: bool
    hash_key_filter_type: int
    hash_key_filter_pattern: bytes
    sort_key_filter_type: int
    sort_key_filter_pattern: bytes
    batch_size: int
    no_value: bool
    validate_partition_hash: bool
    return_expire_ts: bool
    only_return_count: bool


class ScanContextStore:
    """Live scan contexts of one partition replica, keyed by non-negative int64 ids.

    Ids come from a counter that starts at a random point of ``[0, 2⁶²)`` (so restarts and
    primary changes rarely reuse recent ids) and wraps within ``[0, 2⁶³)``.
    """

    def __init__(self, timeout_seconds: float, timer: Callable[[], float],
                 rng: Optional[random.Random] = None) -> None:
        self.timeout = timeout_seconds
        self.timer = timer
        self._rng = rng or random.Random()
        self._next_id = self._rng.randrange(0, 1 << 62)
        self._items: Dict[int, tuple[float, ScanContext]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def put(self, ctx: ScanContext) -> int:
        self.expire()
        cid = self._next_id
        while cid in self._items:
            cid = (cid + 1) % _ID_SPACE
        self._next_id = (cid + 1) % _ID_SPACE
        self._items[cid] = (self.timer() + self.timeout, ctx)
        return cid

    def fetch(self, context_id: int) -> Optional[ScanContext]:
        """Take the context out of the store (None when unknown or expired)."""
        item = self._items.pop(context_id, None)
        if item is None:
            return None
        deadline, ctx = item
        if self.timer() >= deadline:
            return None
        return ctx

    def expire(self) -> int:
        """Drop every expired context; returns how many were dropped."""
        now = self.timer()
        dead = [cid for cid, (deadline, _) in self._items.items() if now >= deadline]
        for cid in dead:
            del self._items[cid]
        return len(dead)

    def clear(self) -> None:
        self._items.clear()


def _b(v: Optional[bytes]) -> bytes:
    return b"" if v is None else bytes(v)


def _scan_response(error: int = OK, context_id: int = SCAN_CONTEXT_ID_COMPLETED):
    return rrdb.scan_response(error=error, kvs=[], context_id=context_id)


def get_scanner(view: PartitionView, store: ScanContextStore, request):
    hk_type = request.hash_key_filter_type or 0
    sk_type = request.sort_key_filter_type or 0
    if not is_filter_type_supported(hk_type) or not is_filter_type_supported(sk_type):
        return _scan_response(INVALID_ARGUMENT)

    start = _b(request.start_key)
    stop = _b(request.stop_key)
    start_incl = bool(request.start_inclusive)
    stop_incl = bool(request.stop_inclusive)
    hk_pattern = _b(request.hash_key_filter_pattern)
    if hk_type == FT_MATCH_PREFIX and hk_pattern:
        try:
            ps = keys.encode_key(hk_pattern, b"")
        except keys.InvalidKey:
            return _scan_response(INVALID_ARGUMENT)
        if ps > start:
            start, start_incl = ps, True

    if start > stop or (start == stop and not (start_incl and stop_incl)):
        return _scan_response(OK)  # Q1: -1, not upstream's 0

    batch = view.options.rocksdb_max_iteration_count
    bs = request.batch_size or 0
    if 0 < bs < batch:
        batch = bs
    ctx = ScanContext(
        next_key=start,
        stop=stop,
        stop_inclusive=stop_incl,
        hash_key_filter_type=hk_type,
        hash_key_filter_pattern=hk_pattern,
        sort_key_filter_type=sk_type,
        sort_key_filter_pattern=_b(request.sort_key_filter_pattern),
        batch_size=batch,
        no_value=bool(request.no_value),
        validate_partition_hash=(True if request.validate_partition_hash is None
                                 else bool(request.validate_partition_hash)),
        return_expire_ts=bool(request.return_expire_ts),
        only_return_count=bool(request.only_return_count),
    )
    return _run_batch(view, store, ctx, view.options.rocksdb_max_iteration_count,
                      skip_key=None if start_incl else start)


def scan(view: PartitionView, store: ScanContextStore, request):
    ctx = store.fetch(request.context_id if request.context_id is not None else 0)
    if ctx is None:
        return _scan_response(NOT_FOUND)
    # upstream uses the batch size as the iteration limit when continuing
    return _run_batch(view, store, ctx, ctx.batch_size, skip_key=None)


def clear_scanner(store: ScanContextStore, context_id: int) -> None:
    store.fetch(context_id)


def _accept(view: PartitionView, ctx: ScanContext, key: bytes, ets: int, now: int) -> bool:
    if values.is_expired(ets, now):
        return False
    if ctx.validate_partition_hash and not view.hash_in_partition(key):
        return False
    if ctx.hash_key_filter_type or ctx.sort_key_filter_type:
        try:
            hk, sk = keys.restore_key(key)
        except keys.InvalidKey:
            return False
        if not filter_matches(ctx.hash_key_filter_type, ctx.hash_key_filter_pattern, hk):
            return False
        if not filter_matches(ctx.sort_key_filter_type, ctx.sort_key_filter_pattern, sk):
            return False
    return True


def _run_batch(view: PartitionView, store: ScanContextStore, ctx: ScanContext,
               max_iterations: int, skip_key: Optional[bytes]):
    """One batch from ``ctx.next_key``; ``skip_key`` = exclusive start to discard once."""
    resp = _scan_response(OK)
    now = view.now()
    limiter = RangeReadLimiter(max_iterations, 0, view.iteration_threshold_ms, view.timer)
    kvs = []
    count = 0
    complete = False
    next_key: Optional[bytes] = None
    stop, stop_incl = ctx.stop, ctx.stop_inclusive
    try:
        # never yield the empty record (key b"", §4.3): every valid key is >= 00 00
        with view.engine.cursor(keys.MIN_KEY, None) as cur:
            cur.seek(ctx.next_key)
            first = skip_key is not None
            while count < ctx.batch_size and limiter.valid() and cur.valid:
                k = cur.key()
                if k > stop or (k == stop and not stop_incl):
                    complete = True
                    break
                if first:
                    first = False
                    if k == skip_key:
                        cur.next()
                        continue
                limiter.add_count()
                stored = cur.value()
                ets = view.expire_ts_of(stored)
                if _accept(view, ctx, k, ets, now):
                    count += 1
                    if not ctx.only_return_count:
                        v = b"" if ctx.no_value else view.decode(stored)[2]
                        kv = rrdb.key_value(key=k, value=v)
                        if ctx.return_expire_ts:
                            kv.expire_ts_seconds = _i32(ets)
                        kvs.append(kv)
                if k == stop:
                    complete = True
                    break
                cur.next()
            if not complete and cur.valid:
                next_key = cur.key()
    except (EngineError, values.InvalidValue) as e:
        return _scan_response(failure_status(e))

    if ctx.only_return_count:
        resp.kv_count = count
    if not complete:
        limiter.time_check_after_incomplete_scan()
    if limiter.exceeded:
        resp.error = INCOMPLETE
        resp.kvs = kvs
        return resp  # no context (Q3: -1)
    resp.kvs = kvs
    if next_key is not None:
        ctx.next_key = next_key
        resp.context_id = store.put(ctx)
    return resp


def _i32(v: int) -> int:
    """A stored u32 expiry as the I32 of ``key_value.expire_ts_seconds``."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= (1 << 31) else v
