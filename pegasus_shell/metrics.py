"""Reading the servers' ``GET /metrics`` (upstream's JSON, meta.md §8) for the statistics
commands: one ``Snapshot`` per server, several servers fetched in parallel, two samples
``interval`` apart, and ``Totals`` that sum gauges and turn counter differences into rates (with
the samples' ``timestamp_ns``) or increases. A metric no server reports stays unknown (shown as
``-``), never an invented zero."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from pegasus_shell.context import ShellError

MB = float(1 << 20)


class Snapshot:
    """One ``GET /metrics`` answer of one server."""

    def __init__(self, doc: dict):
        self.role = doc.get("role", "")
        self.timestamp_ns = doc.get("timestamp_ns")
        self.entities = doc.get("entities") or []

    def by_entity(self, types: Sequence[str] = ()) -> Dict[Tuple[str, str], Tuple[dict, dict]]:
        """(type, id) -> (attributes, {metric name: metric object})."""
        out = {}
        for e in self.entities:
            if types and e.get("type") not in types:
                continue
            out[(e.get("type"), str(e.get("id")))] = (
                e.get("attributes") or {}, {m.get("name"): m for m in e.get("metrics") or []})
        return out


def query(types: Iterable[str] = (), metrics: Iterable[str] = (), attrs: Sequence[str] = (),
           fields: Optional[str] = "name,value") -> str:
    parts = []
    if fields:
        parts.append(f"with_metric_fields={fields}")
    if types:
        parts.append("types=" + ",".join(types))
    if attrs:
        parts.append("attributes=" + ",".join(attrs))
    if metrics:
        parts.append("metrics=" + ",".join(metrics))
    return "/metrics?" + "&".join(parts)


def fetch(ctx, addrs: Sequence[str], path: str) -> List[object]:
    """``GET path`` of every node in parallel: a Snapshot or the error text, per node."""
    def one(addr):
        try:
            return Snapshot(ctx.http_json(addr, path, timeout=ctx.timeout_ms / 1000))
        except ShellError as e:
            return str(e)
    if len(addrs) <= 1:
        return [one(x) for x in addrs]
    pool = ThreadPoolExecutor(max_workers=min(16, len(addrs)))
    try:
        return list(pool.map(one, addrs))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def sample_twice(ctx, addrs: Sequence[str], path: str, interval_ms: int):
    """Two samples of every node ``interval_ms`` apart (Ctrl-C stops the wait)."""
    first = fetch(ctx, addrs, path)
    time.sleep(interval_ms / 1000)
    return first, fetch(ctx, addrs, path)


def ok(snap, addr: str, what: str) -> "Snapshot":
    if not isinstance(snap, Snapshot):
        raise ShellError(f"get {what} metrics from {addr} failed: {snap}")
    return snap


def seconds(start: Snapshot, end: Snapshot, interval_ms: int) -> float:
    if start.timestamp_ns and end.timestamp_ns and end.timestamp_ns > start.timestamp_ns:
        return (end.timestamp_ns - start.timestamp_ns) / 1e9
    return interval_ms / 1000


class Totals:
    """Metric totals over entities: gauges summed (``sums``), counters as rates per second
    (``rates``) or as increases over the interval (``increases``). ``seen``: the metric names
    some entity reported (others are shown as ``-``)."""

    def __init__(self):
        self.values: Dict[str, float] = {}
        self.seen = set()

    def add(self, name: str, v: float) -> None:
        self.values[name] = self.values.get(name, 0) + v

    def get(self, name: str):
        if name not in self.seen:
            return None
        return self.values.get(name, 0)


def accumulate(totals_of: Callable[[str, dict], Optional[Totals]], start: Optional[Snapshot],
                end: Snapshot, seconds: float, types: Sequence[str], sums=(), rates=(),
                increases=(), seen: Optional[set] = None) -> None:
    """Add the metrics of ``end`` (and its difference from ``start``) into the Totals that
    ``totals_of(entity id, attributes)`` picks (None: the entity is not counted)."""
    before = start.by_entity(types) if start is not None else {}
    for key, (attrs, metrics) in end.by_entity(types).items():
        if seen is not None:
            seen.update(metrics)
        t = totals_of(key[1], attrs)
        if t is None:
            continue
        for name in sums:
            if name in metrics:
                t.seen.add(name)
                t.add(name, float(metrics[name].get("value") or 0))
        old = before.get(key, ({}, {}))[1]
        for names, per in ((rates, seconds), (increases, 1.0)):
            for name in names:
                if name in metrics and name in old:
                    t.seen.add(name)
                    delta = float(metrics[name].get("value") or 0) - \
                        float(old[name].get("value") or 0)
                    t.add(name, max(0.0, delta) / per)


def mb(v):
    return None if v is None else int(v) >> 20


def ratio(a, b):
    if a is None or b is None:
        return None
    return a / b if b else 0.0
