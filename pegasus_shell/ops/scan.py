"""Scanning data commands (shell.md §2.3) on the table chosen with ``use``: multi_del_range,
hash_scan, full_scan, count_data, copy_data, clear_data.

Scans follow data-operations.md §8.13: ``RPC_RRDB_RRDB_GET_SCANNER`` opens a partition's scan
and returns the first batch and a context id, ``RPC_RRDB_RRDB_SCAN`` continues it, context id
-1 means the partition is complete, ``RPC_RRDB_RRDB_CLEAR_SCANNER`` (one-way) drops a context
we stop early (always, in a ``finally``: Ctrl-C, ``-n`` reached, an error). A context that
expired on the server (status 1 from SCAN) is reopened after the last key received, as the
Java and Go clients do. A hash-key scan goes to the partition of the hash key (header hash =
CRC64 of the hash key, ``validate_partition_hash`` false); a table scan opens one *unordered*
scanner per partition over ``[00 00, FF FF)`` (header hash = the partition index,
``validate_partition_hash`` and ``full_scan`` true), like the C++ client's
``get_unordered_scanners``.

Filters: hash-key and sort-key filters run on the server (the sort-key type ``exact`` is sent as
``prefix`` and completed here, as upstream's shell does); the value filter runs here. The
full-table commands (count_data -c, copy_data, clear_data) scan every partition concurrently,
one greenlet each, with at most ``-b|--max_batch_count`` writes in flight per partition.

Output: records and results on stdout (``-o FILE``: the records go to FILE), upstream's echo of
the parameters and ``INFO:`` lines on stderr, a progress counter on stderr when it is a terminal.
Imports of the server package: only ``errors``, ``rpc`` and ``storage.keys``; gevent for the
concurrent splits (the RPC client it drives is gevent-based).
"""
from __future__ import annotations

import contextlib
import copy
import heapq
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional

import gevent
import gevent.event
from gevent.pool import Pool

from pegasus_server.errors import RpcError
from pegasus_server.rpc import thrift
from pegasus_server.storage import keys
from pegasus_shell.commands import Arg, Opt
from pegasus_shell.context import ShellError, UsageError
from pegasus_shell.ops.data import (EPOCH_BEGIN, FILTER_TYPES, RANGE_OPTS, ST_NOT_FOUND, ST_OK,
                                    ST_TRY_AGAIN, check_status, data_command, echo,
                                    need_hash_key, q, range_echo, status_name, table, ub,
                                    where)
from pegasus_shell.escaping import quoted
from pegasus_shell.output import Progress, Report

rrdb = thrift.rrdb

GET_SCANNER, SCAN, CLEAR_SCANNER = ("RPC_RRDB_RRDB_GET_SCANNER", "RPC_RRDB_RRDB_SCAN",
                                    "RPC_RRDB_RRDB_CLEAR_SCANNER")
SCAN_BATCH = 100            # records per batch of hash_scan / full_scan (upstream's default)
BULK_BATCH = 1000           # records per batch of count_data / clear_data / copy_data
DEL_BATCH = 100             # sort keys per multi_remove of multi_del_range
VALUE_FILTERS = {**FILTER_TYPES, "exact": 4}      # 4: client-side only (FT_MATCH_EXACT)
SORT_FILTERS_WITH_EXACT = VALUE_FILTERS


# --------------------------------------------------------------------------- filters


def matches(ftype: Optional[str], pattern: bytes, data: bytes) -> bool:
    """Upstream's ``validate_filter`` (client side): the value filter and ``exact``."""
    if not ftype:
        return True
    if ftype == "exact":
        return data == pattern
    if not pattern:
        return True
    if ftype == "anywhere":
        return pattern in data
    return data.startswith(pattern) if ftype == "prefix" else data.endswith(pattern)


@dataclass
class Filters:
    """The filter options of the table scans (-h -x -s -y -v -z)."""
    hash_type: Optional[str] = None
    hash_pattern: bytes = b""
    sort_type: Optional[str] = None
    sort_pattern: bytes = b""
    value_type: Optional[str] = None
    value_pattern: bytes = b""

    @classmethod
    def of(cls, a) -> "Filters":
        f = cls(a.hash_key_filter_type, ub(a.hash_key_filter_pattern or ""),
                a.sort_key_filter_type, ub(a.sort_key_filter_pattern or ""),
                a.value_filter_type, ub(a.value_filter_pattern or ""))
        if f.value_type and getattr(a, "no_value", False):
            raise UsageError("no_value should not be set when value_filter_type is set")
        return f

    def server_sort(self):
        """(type, pattern) sent to the server: ``exact`` narrows as ``prefix``."""
        if not self.sort_type:
            return 0, b""
        return FILTER_TYPES["prefix" if self.sort_type == "exact" else self.sort_type], \
            self.sort_pattern

    @property
    def client_side(self) -> bool:
        """Whether records must come back to be filtered here."""
        return bool(self.value_type) or self.sort_type == "exact"

    def passes(self, sort_key: bytes, value: bytes) -> bool:
        if self.sort_type == "exact" and sort_key != self.sort_pattern:
            return False
        return matches(self.value_type, self.value_pattern, value)

    def echo(self, names=("hash_key", "sort_key", "value")) -> list:
        pairs = []
        for name, t, p in (("hash_key", self.hash_type, self.hash_pattern),
                           ("sort_key", self.sort_type, self.sort_pattern),
                           ("value", self.value_type, self.value_pattern)):
            if name not in names:
                continue
            pairs.append((f"{name}_filter_type", t or "no_filter"))
            if t:
                pairs.append((f"{name}_filter_pattern", p))
        return pairs


FILTER_OPTS = (
    Opt("-h", "--hash_key_filter_type", choices=tuple(FILTER_TYPES),
        help="only hash keys matching -x"),
    Opt("-x", "--hash_key_filter_pattern", default="", help="pattern of -h"),
    Opt("-s", "--sort_key_filter_type", choices=tuple(SORT_FILTERS_WITH_EXACT),
        help="only sort keys matching -y"),
    Opt("-y", "--sort_key_filter_pattern", default="", help="pattern of -s"),
    Opt("-v", "--value_filter_type", choices=tuple(VALUE_FILTERS),
        help="only values matching -z (checked by the shell)"),
    Opt("-z", "--value_filter_pattern", default="", help="pattern of -v"))
VALUE_OPTS = FILTER_OPTS[4:]


# --------------------------------------------------------------------------- scanning


def table_scan_request(filters: Filters, batch: int, no_value: bool = False,
                       return_expire_ts: bool = False, only_count: bool = False):
    stype, spattern = filters.server_sort()
    return rrdb.get_scanner_request(
        start_key=keys.MIN_KEY, stop_key=keys.MAX_KEY, start_inclusive=True,
        stop_inclusive=False, batch_size=batch, no_value=no_value,
        hash_key_filter_type=FILTER_TYPES.get(filters.hash_type, 0),
        hash_key_filter_pattern=filters.hash_pattern, sort_key_filter_type=stype,
        sort_key_filter_pattern=spattern, validate_partition_hash=True,
        return_expire_ts=return_expire_ts, full_scan=True, only_return_count=only_count)


def hash_scan_request(hk: bytes, start_sk: bytes, stop_sk: bytes, start_inclusive: bool,
                      stop_inclusive: bool, sort_type: Optional[str], pattern: bytes,
                      batch: int, no_value: bool):
    """The request of a hash-key scan (the C++ client's ``get_scanner``), or None when the
    range is empty."""
    start = keys.encode_key(hk, start_sk)
    if stop_sk:
        stop = keys.encode_key(hk, stop_sk)
    else:
        stop, stop_inclusive = keys.next_key(hk), False
    if sort_type == "prefix" and pattern:
        ps, pe = keys.encode_key(hk, pattern), keys.next_key(hk, pattern)
        if ps > start:
            start, start_inclusive = ps, True
        if pe <= stop:
            stop, stop_inclusive = pe, False
    if start > stop or (start == stop and not (start_inclusive and stop_inclusive)):
        return None
    return rrdb.get_scanner_request(
        start_key=start, stop_key=stop, start_inclusive=start_inclusive,
        stop_inclusive=stop_inclusive, batch_size=batch, no_value=no_value,
        hash_key_filter_type=0, hash_key_filter_pattern=b"",
        sort_key_filter_type=FILTER_TYPES.get(sort_type, 0), sort_key_filter_pattern=pattern,
        validate_partition_hash=False, full_scan=False)


def scan_partition(t, pidx: int, partition_hash: int, req) -> Iterator:
    """The ``scan_response`` batches of one partition's scan. Close it (``contextlib.closing``)
    to drop the server's context when stopping early."""
    live = None                 # a context id the server may still hold
    last_key = None
    try:
        resp = t.call_partition(pidx, GET_SCANNER, req, partition_hash)
        from_scan = False
        while True:
            live = None
            if resp.error == ST_NOT_FOUND and from_scan and not req.only_return_count:
                # the context expired on the server: reopen after the last key received
                if last_key is not None:
                    req.start_key, req.start_inclusive = last_key, False
                resp = t.call_partition(pidx, GET_SCANNER, req, partition_hash)
                from_scan = False
                continue
            if resp.error != ST_OK:
                raise ShellError(f"scan data failed: {status_name(resp.error)} {where(resp)}")
            if resp.context_id >= 0:
                live = resp.context_id
            if resp.kvs:
                last_key = resp.kvs[-1].key
            yield resp
            if live is None:
                return
            resp = t.call_partition(pidx, SCAN, rrdb.scan_request(context_id=live),
                                    partition_hash)
            from_scan = True
    finally:
        if live is not None:
            with contextlib.suppress(Exception):
                t.client.call(_primary(t, pidx), CLEAR_SCANNER, live, timeout=1.0,
                              app_id=t.app_id, partition_index=pidx,
                              partition_hash=partition_hash, oneway=True)


def _primary(t, pidx: int):
    p = t.partitions[pidx].primary
    return (p.host, p.port)


def records(resp) -> Iterator:
    """(hash_key, sort_key, key_value) of a batch."""
    for kv in resp.kvs or []:
        hk, sk = keys.restore_key(kv.key)
        yield hk, sk, kv


def check_partition(t, partition: Optional[int]) -> List[int]:
    """The partitions to scan: all, or the one of ``-p``."""
    if partition is None:
        return list(range(t.partition_count))
    if not 0 <= partition < t.partition_count:
        raise ShellError(f"partition {partition} out of range, should be in range of "
                         f"[0,{t.partition_count - 1}]")
    return [partition]


def timed_table(ctx, timeout_ms: Optional[int]):
    t = table(ctx)
    if timeout_ms is not None:
        if timeout_ms <= 0:
            raise UsageError("timeout_ms should be greater than 0")
        t.timeout = timeout_ms / 1000
    return t


class RecordSink:
    """Where scanned records are printed: stdout, or ``-o FILE``."""

    def __init__(self, ctx, path: Optional[str]):
        self.ctx, self.path = ctx, path
        try:
            self.f = open(path, "w") if path else ctx.out
        except OSError as e:
            raise ShellError(f"open filename {path} failed: {e}") from None

    def line(self, text: str) -> None:
        self.f.write(text + "\n")

    def close(self) -> None:
        if self.path:
            self.f.close()


def print_scan(ctx, a, sink: RecordSink, batches, filters: Filters, count: int) -> int:
    """Print the records of ``batches`` as ``"hk" : "sk" => "value"`` until ``-n``."""
    for resp in batches:
        for hk, sk, kv in records(resp):
            if not filters.passes(sk, kv.value or b""):
                continue
            line = f"{q(ctx, hk)} : {q(ctx, sk)}"
            if not a.no_value:
                line += f" => {q(ctx, kv.value)}"
            if a.detailed:
                line += " " + where(resp)
            sink.line(line)
            count += 1
            if 0 < a.max_count <= count:
                return count        # the caller closes the scan (CLEAR_SCANNER)
    return count


SCAN_OPTS = (
    Opt("-o", "--output", metavar="file", help="write the records to this file"),
    Opt("-n", "--max_count", type=int, default=-1, metavar="num",
        help="stop after this many records"),
    Opt("-t", "--timeout_ms", type=int, metavar="num",
        help="timeout of each RPC (default: the shell's timeout)"),
    Opt("-d", "--detailed", flag=True, help="also show the partition and server of each record"),
    Opt("-i", "--no_value", flag=True, help="keys only"))


def finish_scan(ctx, sink: RecordSink, count: int, error: Optional[Exception]) -> None:
    if error is not None and sink.path:
        sink.line(f"ERROR: {error}")
    sink.close()
    if not sink.path and count > 0:
        ctx.out.write("\n")
    ctx.out.write(f"{count} key-value pairs got.\n")
    ctx.out.flush()
    if error is not None:
        raise error


@data_command("hash_scan", "Print the records of one hash key whose sort keys lie in a range "
              "(empty stop: to the end)", group="scan",
              args=[Arg("hash_key"), Arg("start_sort_key"), Arg("stop_sort_key")],
              opts=[*RANGE_OPTS, *VALUE_OPTS, *SCAN_OPTS])
def cmd_hash_scan(ctx, a):
    filters = Filters(sort_type=a.sort_key_filter_type,
                      sort_pattern=ub(a.sort_key_filter_pattern),
                      value_type=a.value_filter_type, value_pattern=ub(a.value_filter_pattern))
    if filters.value_type and a.no_value:
        raise UsageError("no_value should not be set when value_filter_type is set")
    t = timed_table(ctx, a.timeout_ms)
    hk = need_hash_key(ub(a.hash_key))
    echo(ctx, *range_echo(a, hk), *filters.echo(("value",)), ("max_count", a.max_count),
         ("timeout_ms", int(t.timeout * 1000)), ("detailed", a.detailed),
         ("no_value", a.no_value))
    req = hash_scan_request(hk, ub(a.start_sort_key), ub(a.stop_sort_key), a.start_inclusive,
                            a.stop_inclusive, filters.sort_type, filters.sort_pattern,
                            SCAN_BATCH, a.no_value)
    sink, count, error = RecordSink(ctx, a.output), 0, None
    try:
        if req is not None:
            pidx = t.partition_of(hk)
            with contextlib.closing(scan_partition(t, pidx, keys.crc64(hk), req)) as batches:
                count = print_scan(ctx, a, sink, batches, filters, count)
    except (ShellError, RpcError) as e:
        error = ShellError(str(e))
    finish_scan(ctx, sink, count, error)


@data_command("full_scan", "Print the records of the whole table (or of one partition)",
              group="scan",
              opts=[*FILTER_OPTS, *SCAN_OPTS,
                    Opt("-p", "--partition", type=int, metavar="num",
                        help="only this partition")])
def cmd_full_scan(ctx, a):
    filters = Filters.of(a)
    t = timed_table(ctx, a.timeout_ms)
    echo(ctx, ("partition", "all" if a.partition is None else a.partition), *filters.echo(),
         ("max_count", a.max_count), ("timeout_ms", int(t.timeout * 1000)),
         ("detailed", a.detailed), ("no_value", a.no_value))
    pidxs = check_partition(t, a.partition)
    req = table_scan_request(filters, SCAN_BATCH, no_value=a.no_value)
    sink, count, error = RecordSink(ctx, a.output), 0, None
    try:
        with Progress("scanning partitions", len(pidxs)) if a.output else \
                contextlib.nullcontext() as progress:
            for pidx in pidxs:
                if a.max_count > 0 and count >= a.max_count:
                    break
                with contextlib.closing(scan_partition(t, pidx, pidx, copy.copy(req))) as batches:
                    count = print_scan(ctx, a, sink, batches, filters, count)
                if progress:
                    progress.update(1)
    except (ShellError, RpcError) as e:
        error = ShellError(str(e))
    finish_scan(ctx, sink, count, error)


@data_command("multi_del_range", "Delete the records of one hash key whose sort keys lie in a "
              "range (empty stop: to the end)", group="scan",
              args=[Arg("hash_key"), Arg("start_sort_key"), Arg("stop_sort_key")],
              opts=[*RANGE_OPTS,
                    Opt("-o", "--output", metavar="file",
                        help="write the deleted sort keys to this file"),
                    Opt("-i", "--silent", flag=True, help="do not list the deleted sort keys")])
def cmd_multi_del_range(ctx, a):
    t = table(ctx)
    hk = need_hash_key(ub(a.hash_key))
    echo(ctx, *range_echo(a, hk), ("silent", a.silent))
    pattern = ub(a.sort_key_filter_pattern)
    req = hash_scan_request(hk, ub(a.start_sort_key), ub(a.stop_sort_key), a.start_inclusive,
                            a.stop_inclusive, a.sort_key_filter_type, pattern, SCAN_BATCH, True)
    sink, deleted, pending = RecordSink(ctx, a.output), 0, []

    def delete(sort_keys):
        resp = t._single("RPC_RRDB_RRDB_MULTI_REMOVE", hk, b"", rrdb.multi_remove_request(
            hash_key=hk, sort_keys=sort_keys, max_count=0))
        check_status(resp, "delete data")
        if not a.silent:
            for sk in sort_keys:
                sink.line(f"Deleted: {q(ctx, sk)}")
        return len(sort_keys)

    try:
        if req is not None:
            pidx = t.partition_of(hk)
            with contextlib.closing(scan_partition(t, pidx, keys.crc64(hk), req)) as batches:
                for resp in batches:
                    pending += [sk for _, sk, _ in records(resp)]
                    while len(pending) >= DEL_BATCH:
                        deleted += delete(pending[:DEL_BATCH])
                        del pending[:DEL_BATCH]
            if pending:
                deleted += delete(pending)
    except (ShellError, RpcError) as e:
        if sink.path:
            sink.line(f"ERROR: {e}")
        sink.close()
        ctx.out.write(f"\nTerminated for error, {deleted} sort keys deleted.\n")
        raise ShellError(str(e)) from None
    sink.close()
    if not sink.path and not a.silent and deleted:
        ctx.out.write("\n")
    ctx.out.write(f"OK, {deleted} sort keys deleted.\n")


# --------------------------------------------------------------------------- splits


@dataclass
class Splits:
    """The per-partition workers of a full-table command and what they counted."""
    pidxs: List[int]
    rows: List[int] = field(default_factory=list)
    hash_keys: List[int] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)
    progress: Optional[Progress] = None

    def __post_init__(self):
        self.rows = [0] * len(self.pidxs)
        self.hash_keys = [0] * len(self.pidxs)

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    def add(self, i: int, n: int = 1) -> None:
        self.rows[i] += n
        if self.progress is not None:
            self.progress.update(n)

    def run(self, work: Callable[[int, int], None], run_seconds: int = 0) -> bool:
        """Run ``work(split, pidx)`` for every split concurrently; stop them all at the first
        error, on Ctrl-C, or after ``run_seconds``. True when the time ran out."""
        def guarded(i, pidx):
            try:
                work(i, pidx)
            except (ShellError, RpcError, keys.InvalidKey) as e:
                self.errors.append(f"split[{i}] (partition {pidx}): {e}")
        pending = [gevent.spawn(guarded, i, p) for i, p in enumerate(self.pidxs)]
        deadline = time.monotonic() + run_seconds if run_seconds > 0 else None
        timed_out = False
        # Ctrl-C while many greenlets run would land in any of them (and gevent would print
        # its traceback): take it as an event here and raise it in this greenlet instead
        interrupted = gevent.event.Event()
        old = signal.getsignal(signal.SIGINT)
        if old not in (signal.SIG_IGN, None):
            signal.signal(signal.SIGINT, lambda *_: interrupted.set())
        try:
            while pending and not self.errors:
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                ready = gevent.wait(pending + [interrupted], timeout=timeout, count=1)
                if interrupted.is_set():
                    raise KeyboardInterrupt
                if not ready:
                    timed_out = True
                    break
                pending = [g for g in pending if g not in ready]
        finally:
            if old not in (signal.SIG_IGN, None):
                signal.signal(signal.SIGINT, old)
            gevent.killall(pending, block=True, timeout=5)
        return timed_out

    def summary(self, ctx, verb: str, stop_desc: str, hash_keys: bool = False) -> None:
        for i, n in enumerate(self.rows):
            extra = f" ({self.hash_keys[i]} hash keys)" if hash_keys else ""
            ctx.out.write(f"INFO: split[{i}]: {n} rows{extra}\n")
        extra = f" ({sum(self.hash_keys)} hash keys)" if hash_keys else ""
        ctx.out.write(f"{verb} {stop_desc}, total {sum(self.rows)} rows.{extra}\n")
        ctx.out.flush()


def run_splits(ctx, splits: Splits, label: str, work, run_seconds: int = 0) -> bool:
    """Run ``work`` over the partitions of ``splits`` (a greenlet each) under a progress bar,
    print the workers' errors; True when ``run_seconds`` ran out."""
    ctx.err.write(f"INFO: prepare scanners succeed, split_count = {len(splits.pidxs)}\n")
    with Progress(label) as progress:
        splits.progress = progress
        timed_out = splits.run(work, run_seconds)
    for e in splits.errors:
        ctx.err.write(f"ERROR: {e}\n")
    return timed_out


def bulk_opts(batch_help: str):
    return (Opt("-p", "--partition", type=int, metavar="num", help="only this partition"),
            Opt("-b", "--max_batch_count", type=int, metavar="num", help=batch_help),
            Opt("-t", "--timeout_ms", type=int, metavar="num",
                help="timeout of each RPC (default: the shell's timeout)"),
            *FILTER_OPTS)


def bulk_args(ctx, a):
    """Validate the common options of count_data -c / copy_data / clear_data; print upstream's
    INFO lines; return (table client, partitions, filters)."""
    if a.max_batch_count is None:
        a.max_batch_count = 500
    if a.max_batch_count <= 1:
        raise UsageError("max_batch_count should be greater than 1")
    if a.partition is not None and a.partition < 0:
        raise UsageError("partition should be greater than 0")
    filters = Filters.of(a)
    t = timed_table(ctx, a.timeout_ms)
    info = [("partition", "all" if a.partition is None else a.partition),
            ("max_batch_count", a.max_batch_count), ("timeout_ms", int(t.timeout * 1000)),
            *filters.echo()]
    for name, v in info:
        ctx.err.write(f"INFO: {name} = {quote_info(v)}\n")
    return t, check_partition(t, a.partition), filters


def quote_info(v) -> str:
    if isinstance(v, bytes):
        return quoted(v)
    return str(v).lower() if isinstance(v, bool) else str(v)


# --------------------------------------------------------------------------- count_data


class SizeStats:
    """Count, min, max, average and percentiles of one size (hash key, sort key, value, row)."""

    def __init__(self):
        self.sizes: Dict[int, int] = {}

    def add(self, n: int) -> None:
        self.sizes[n] = self.sizes.get(n, 0) + 1

    def row(self, name: str) -> list:
        count = sum(self.sizes.values())
        if not count:
            return [name, 0, 0, 0, 0.0, 0, 0, 0]
        total = sum(k * v for k, v in self.sizes.items())
        return [name, count, min(self.sizes), max(self.sizes), total / count,
                *(self.percentile(p, count) for p in (50, 90, 99))]

    def percentile(self, p: int, count: int) -> int:
        rank, seen = count * p / 100, 0
        for size in sorted(self.sizes):
            seen += self.sizes[size]
            if seen >= rank:
                return size
        return max(self.sizes)


COUNT_SCAN_OPTS = ("partition", "max_batch_count", "timeout_ms", "hash_key_filter_type",
                   "sort_key_filter_type", "value_filter_type", "top_count", "run_seconds")
COUNT_SCAN_FLAGS = ("diff_hash_key", "stat_size", "hash_key_filter_pattern",
                    "sort_key_filter_pattern", "value_filter_pattern")


@data_command("count_data", "Count the records of the table: estimated from the servers' "
              "metrics, or precisely by scanning with -c", group="scan",
              opts=[Opt("-c", "--precise", flag=True, help="scan the table to count exactly"),
                    *bulk_opts("accepted for upstream compatibility (scans need no writes)"),
                    Opt("-d", "--diff_hash_key", flag=True, help="also count the hash keys"),
                    Opt("-a", "--stat_size", flag=True,
                        help="also the size statistics of keys, values and rows"),
                    Opt("-n", "--top_count", type=int, metavar="num",
                        help="with -a: the largest rows"),
                    Opt("-r", "--run_seconds", type=int, metavar="num",
                        help="stop after this many seconds")])
def cmd_count_data(ctx, a):
    if not a.precise:
        if any(getattr(a, o) is not None for o in COUNT_SCAN_OPTS) or \
                any(getattr(a, o) for o in COUNT_SCAN_FLAGS):
            raise UsageError("you must input [-c|--precise] flag when you expect to get "
                             "precise result by scaning all record online")
        return count_estimate(ctx)
    top, run_seconds = a.top_count or 0, a.run_seconds or 0
    if top < 0:
        raise UsageError("top_count should be no less than 0")
    if run_seconds < 0:
        raise UsageError("run_seconds should be no less than 0")
    t, pidxs, filters = bulk_args(ctx, a)
    for name, v in (("diff_hash_key", a.diff_hash_key), ("stat_size", a.stat_size),
                    ("top_count", top), ("run_seconds", run_seconds)):
        ctx.err.write(f"INFO: {name} = {quote_info(v)}\n")
    only_count = not (a.diff_hash_key or a.stat_size or filters.client_side)
    if only_count:
        ctx.err.write("INFO: scanner only return kv count, not return value\n")
    no_value = not (a.stat_size or filters.value_type)
    req = table_scan_request(filters, BULK_BATCH, no_value=no_value, only_count=only_count)
    stats = {n: SizeStats() for n in ("hash_key_size", "sort_key_size", "value_size",
                                      "row_size")}
    tops: List[tuple] = []

    splits = Splits(pidxs)

    def work(i, pidx):
        last_hk = None
        with contextlib.closing(scan_partition(t, pidx, pidx, copy.copy(req))) as batches:
            for resp in batches:
                if only_count:
                    splits.add(i, resp.kv_count or 0)
                    continue
                for hk, sk, kv in records(resp):
                    value = kv.value or b""
                    if not filters.passes(sk, value):
                        continue
                    splits.add(i)
                    if a.diff_hash_key and hk != last_hk:
                        splits.hash_keys[i] += 1
                        last_hk = hk
                    if a.stat_size:
                        row = len(hk) + len(sk) + len(value)
                        for name, n in zip(stats, (len(hk), len(sk), len(value), row)):
                            stats[name].add(n)
                        if top:
                            item = (row, hk, sk)
                            (heapq.heappush if len(tops) < top else heapq.heappushpop)(tops,
                                                                                      item)

    timed_out = run_splits(ctx, splits, "counting rows", work, run_seconds)
    desc = "terminated as error occurred" if splits.failed else \
        "terminated as run time used out" if timed_out else "done"
    splits.summary(ctx, "Count", desc, a.diff_hash_key)
    if a.stat_size:
        r = Report()
        s = r.table("stat_size", ["item", "count", "min", "max", "average", "p50", "p90", "p99"])
        for name, st in stats.items():
            s.add(*st.row(name))
        ctx.out.write("\n" + r.text())
        for n, (row, hk, sk) in enumerate(sorted(tops, reverse=True), 1):
            ctx.out.write(f"[top][{n}].hash_key = {q(ctx, hk)}\n[top][{n}].sort_key = "
                          f"{q(ctx, sk)}\n[top][{n}].row_size = {row}\n")
    if splits.failed:
        raise ShellError("error occurred, terminate processing")


def count_estimate(ctx) -> None:
    """Upstream's default: the sum of ``rdb_estimated_keys`` of every partition's primary."""
    table = ctx.current_table
    if not table:
        raise ShellError("no table selected: use <app_name> first")
    cfg = ctx.query_config(table)
    rows = [0] * cfg.partition_count
    primaries = {i: str(pc.primary) for i, pc in enumerate(cfg.partitions)
                 if pc.primary is not None and not pc.primary.is_invalid}
    path = (f"/metrics?with_metric_fields=name,value&types=replica&attributes=table_id,"
            f"{cfg.app_id}&metrics=rdb_estimated_keys")
    for node in ctx.alive_nodes():
        doc = ctx.http_json(node, path)
        for e in doc.get("entities", []):
            attrs = e.get("attributes", {})
            if str(attrs.get("table_id")) != str(cfg.app_id):
                continue
            pidx = int(attrs.get("partition_id", -1))
            if primaries.get(pidx) != str(node):
                continue            # only the primary's numbers count, as upstream
            for m in e.get("metrics", []):
                if m.get("name") == "rdb_estimated_keys" and 0 <= pidx < len(rows):
                    rows[pidx] = int(m.get("value", 0))
    r = Report()
    s = r.table("count_data", ["pidx", "estimate_count"])
    for i, n in enumerate(rows):
        s.add(i, n)
    s.add(f"(total:{len(rows)})", sum(rows))
    ctx.out.write(r.text())


# --------------------------------------------------------------------------- copy_data / clear


def now_epoch() -> int:
    return int(time.time()) - EPOCH_BEGIN


@data_command("copy_data", "Copy the records of this table (or of one partition) to a table "
              "of a cluster of [pegasus.clusters]", group="scan",
              opts=[Opt("-c", "--target_cluster_name", completes="cluster",
                        help="the target cluster, a name of [pegasus.clusters]"),
                    Opt("-a", "--target_app_name", help="the target table"),
                    *bulk_opts("writes in flight per partition (default 500)"),
                    Opt("-m", "--max_multi_set_concurrency", type=int, default=20,
                        metavar="num", help="with -u: multi_sets in flight per partition"),
                    Opt("-o", "--scan_option_batch_size", type=int, default=BULK_BATCH,
                        metavar="num", help=f"records per scan batch (default {BULK_BATCH})"),
                    Opt("-e", "--no_ttl", flag=True, help="copied records never expire"),
                    Opt("-n", "--no_overwrite", flag=True,
                        help="keep records that exist in the target (check_and_set)"),
                    Opt("-i", "--no_value", flag=True, help="copy keys with empty values"),
                    Opt("-g", "--geo_data", flag=True, help="copy into a geo table (not "
                        "supported)"),
                    Opt("-u", "--use_multi_set", flag=True,
                        help="write with multi_set per hash key (a batch shares one TTL)")])
def cmd_copy_data(ctx, a):
    if not a.target_cluster_name:
        raise UsageError("target_cluster_name not specified")
    if not a.target_app_name:
        raise UsageError("target_app_name not specified")
    if a.geo_data:
        raise ShellError("copy_data -g|--geo_data is not supported: pegasus-py has no geo "
                         "client library (upstream's geo::geo_client)")
    if a.max_multi_set_concurrency <= 0:
        raise UsageError("max_multi_set_concurrency should be greater than 0")
    if a.scan_option_batch_size <= 0:
        raise UsageError("scan_option_batch_size should be greater than 0")
    if a.use_multi_set and a.no_overwrite:
        raise UsageError("copy with multi_set not support no_overwrite!")
    metas = ctx.clusters.get(a.target_cluster_name)
    if not metas:
        raise ShellError(f"cluster {a.target_cluster_name} is not in [pegasus.clusters]" +
                         (f" (known: {', '.join(sorted(ctx.clusters))})" if ctx.clusters
                          else " (no config file with [pegasus.clusters] was read)"))
    for name, v in (("source_cluster_name", ctx.cluster_name),
                    ("source_app_name", ctx.current_table),
                    ("target_cluster_name", a.target_cluster_name),
                    ("target_app_name", a.target_app_name)):
        ctx.err.write(f"INFO: {name} = {v}\n")
    t, pidxs, filters = bulk_args(ctx, a)
    for name, v in (("no_overwrite", a.no_overwrite), ("no_value", a.no_value),
                    ("no_ttl", a.no_ttl), ("use_multi_set", a.use_multi_set)):
        ctx.err.write(f"INFO: {name} = {quote_info(v)}\n")
    if sorted(metas) == sorted(ctx.metas) and a.target_app_name == ctx.current_table:
        raise ShellError("source app and target app is the same")
    target = table(ctx, a.target_app_name, metas)
    target.timeout = t.timeout
    probe = target._single("RPC_RRDB_RRDB_TTL", b"a", b"b", keys.encode_key(b"a", b"b"))
    if probe.error not in (ST_OK, ST_NOT_FOUND):
        raise ShellError(f"test target app failed: {status_name(probe.error)}")
    if a.use_multi_set:
        ctx.err.write("WARN: used multi_set will lose accurate ttl time per value! ttl time "
                      "will be assign the max value of this batch data.\n")
    req = table_scan_request(filters, a.scan_option_batch_size, no_value=a.no_value,
                             return_expire_ts=not a.no_ttl)
    writer = Writer(target, a.no_overwrite)

    splits = Splits(pidxs)

    def work(i, pidx):
        pool = Pool(a.max_multi_set_concurrency if a.use_multi_set else a.max_batch_count)
        groups: Dict[bytes, list] = {}
        grouped = 0
        try:
            with contextlib.closing(scan_partition(t, pidx, pidx, copy.copy(req))) as batches:
                for resp in batches:
                    now = now_epoch()
                    for hk, sk, kv in records(resp):
                        value = kv.value or b""
                        ets = kv.expire_ts_seconds or 0
                        if not filters.passes(sk, value) or 0 < ets <= now:
                            continue
                        if a.use_multi_set and hk:
                            groups.setdefault(hk, []).append((sk, value, ets))
                            grouped += 1
                            if grouped >= a.max_batch_count:
                                writer.multi_set_all(pool, groups, splits, i)
                                groups, grouped = {}, 0
                        else:
                            pool.spawn(writer.put, hk, sk, value, ets, splits, i)
                    if splits.failed:
                        return
                writer.multi_set_all(pool, groups, splits, i)
                pool.join()
        finally:
            pool.kill()

    run_splits(ctx, splits, "copying rows", work)
    splits.summary(ctx, "\nCopy", "terminated" if splits.failed else "done")
    if splits.failed:
        raise ShellError("error occurred, processing terminated")


class Writer:
    """The target-side writes of copy_data, run in a per-partition pool; a failure is recorded
    in the splits (which stops every worker)."""

    def __init__(self, target, no_overwrite: bool):
        self.t, self.no_overwrite = target, no_overwrite

    def put(self, hk: bytes, sk: bytes, value: bytes, ets: int, splits: Splits, i: int):
        try:
            if self.no_overwrite:
                resp = self.t._single("RPC_RRDB_RRDB_CHECK_AND_SET", hk, sk,
                                      rrdb.check_and_set_request(
                                          hash_key=hk, check_sort_key=sk,
                                          check_type=rrdb.cas_check_type.CT_VALUE_NOT_EXIST,
                                          check_operand=b"", set_diff_sort_key=False,
                                          set_sort_key=sk, set_value=value,
                                          set_expire_ts_seconds=ets, return_check_value=False))
                check_status(resp, "check_and_set", (ST_OK, ST_TRY_AGAIN))
                if resp.error == ST_OK:
                    splits.add(i)
                return
            resp = self.t._single("RPC_RRDB_RRDB_PUT", hk, sk, rrdb.update_request(
                key=keys.encode_key(hk, sk), value=value, expire_ts_seconds=ets))
            check_status(resp, "set")
            splits.add(i)
        except (ShellError, RpcError) as e:
            splits.errors.append(f"split[{i}] write failed: {e}")

    def multi_set_all(self, pool: Pool, groups: Dict[bytes, list], splits: Splits, i: int):
        for hk, rows in groups.items():
            pool.spawn(self.multi_set, hk, rows, splits, i)

    def multi_set(self, hk: bytes, rows: list, splits: Splits, i: int):
        # one expiry for the batch: none if any record has none, else the latest
        ets = 0 if any(r[2] == 0 for r in rows) else max(r[2] for r in rows)
        try:
            resp = self.t._single("RPC_RRDB_RRDB_MULTI_PUT", hk, b"", rrdb.multi_put_request(
                hash_key=hk, expire_ts_seconds=ets,
                kvs=[rrdb.key_value(key=sk, value=v) for sk, v, _ in rows]))
            check_status(resp, "multi_set")
            splits.add(i, len(rows))
        except (ShellError, RpcError) as e:
            splits.errors.append(f"split[{i}] multi_set failed: {e}")


@data_command("clear_data", "Delete the records of this table (or of one partition) that match "
              "the filters; asks for confirmation unless -f", group="scan",
              opts=[*bulk_opts("deletes in flight per partition (default 500)"),
                    Opt("-f", "--force", flag=True, help="do not ask for confirmation")])
def cmd_clear_data(ctx, a):
    ctx.err.write(f"INFO: cluster_name = {ctx.cluster_name}\nINFO: app_name = "
                  f"{ctx.current_table}\n")
    t, pidxs, filters = bulk_args(ctx, a)
    ctx.err.write(f"INFO: force = {quote_info(a.force)}\n")
    if not a.force:
        if not sys.stdin.isatty():
            raise UsageError("be careful to clear data!!! Please specify --force if you are "
                             "determined to do.")
        if not confirm(ctx, f"clear the data of table {ctx.current_table}"):
            raise ShellError("clear_data aborted: not confirmed")
    req = table_scan_request(filters, BULK_BATCH, no_value=not filters.value_type)

    def delete(hk: bytes, sort_keys: List[bytes], i: int):
        try:
            if hk:
                resp = t._single("RPC_RRDB_RRDB_MULTI_REMOVE", hk, b"",
                                 rrdb.multi_remove_request(hash_key=hk, sort_keys=sort_keys,
                                                           max_count=0))
                check_status(resp, "multi_del")
            else:       # an empty hash key: each record lives in its sort key's partition
                for sk in sort_keys:
                    check_status(t._single("RPC_RRDB_RRDB_REMOVE", hk, sk,
                                           keys.encode_key(hk, sk)), "del")
            splits.add(i, len(sort_keys))
        except (ShellError, RpcError) as e:
            splits.errors.append(f"split[{i}] delete failed: {e}")

    splits = Splits(pidxs)

    def work(i, pidx):
        pool = Pool(a.max_batch_count)
        try:
            with contextlib.closing(scan_partition(t, pidx, pidx, copy.copy(req))) as batches:
                for resp in batches:
                    groups: Dict[bytes, List[bytes]] = {}
                    for hk, sk, kv in records(resp):
                        if filters.passes(sk, kv.value or b""):
                            groups.setdefault(hk, []).append(sk)
                    for hk, sks in groups.items():
                        pool.spawn(delete, hk, sks, i)
                    if splits.failed:
                        return
                pool.join()
        finally:
            pool.kill()

    run_splits(ctx, splits, "clearing rows", work)
    splits.summary(ctx, "\nClear", "terminated" if splits.failed else "done")
    if splits.failed:
        raise ShellError("error occurred, processing terminated")


def confirm(ctx, what: str) -> bool:
    """Ask on the terminal (scripts pass -f)."""
    ctx.err.write(f"Are you sure to {what}? [y/N]: ")
    ctx.err.flush()
    try:
        answer = input()
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")
