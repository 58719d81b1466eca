"""Metrics of a server process and their HTTP form (meta.md §8): one registry per process.

A metric belongs to an *entity* (``server``, ``replica`` gpid "2.3" with attributes ``table_id``
and ``partition_id``, ...). Counters only grow (clients sample twice and divide by the interval,
as upstream's shell does); gauges are set, or read from a callable when the metrics are taken.

``GET /metrics`` answers upstream's JSON (what the shell's ``nodes -u/-q``, ``app_stat``,
``app_disk``, ``server_stat`` and ``count_data`` read)::

    {"cluster": ..., "role": "meta"|"replica", "host": ..., "port": ..., "timestamp_ns": ...,
     "entities": [{"type": ..., "id": ..., "attributes": {...},
                   "metrics": [{"type": ..., "name": ..., "unit": ..., "desc": ..., "value": ...}]}]}

filtered by the query keys ``with_metric_fields`` (fields of each metric, e.g. ``name,value``),
``types`` (entity types), ``ids`` (entity ids), ``attributes`` (``name,value,name,value...``: an
entity matches when any pair matches) and ``metrics`` (metric names); an entity left without
metrics is left out, an unknown key answers 400 ``{"error_message": ...}``. A request that
prefers ``text/plain`` (Prometheus scrapers send ``Accept: text/plain;version=0.0.4`` or
OpenMetrics), or ``GET /metrics?format=prometheus``, gets the Prometheus text exposition of the
same metrics: one sample per metric and entity, labelled with the entity's type, id and
attributes and the process's cluster, role, host and port.

Must not import gevent or storage code.
"""
from __future__ import annotations

import json
import os
import re
import time
from urllib.parse import parse_qsl
from typing import Callable, Dict, Iterable, List, Optional, Tuple, Union

COUNTER, GAUGE = "counter", "gauge"
QUERY_KEYS = ("with_metric_fields", "types", "ids", "attributes", "metrics", "format")
METRIC_FIELDS = ("type", "name", "unit", "desc", "value")

Value = Union[int, float]


class Metric:
    __slots__ = ("name", "kind", "unit", "desc", "value", "fn")

    def __init__(self, name: str, kind: str, unit: str, desc: str,
                 fn: Optional[Callable[[], Value]] = None):
        self.name = name
        self.kind = kind
        self.unit = unit
        self.desc = desc
        self.value: Value = 0
        self.fn = fn

    def incr(self, n: Value = 1) -> None:
        self.value += n

    def set(self, v: Value) -> None:
        self.value = v

    def read(self) -> Value:
        if self.fn is None:
            return self.value
        try:
            return self.fn()
        except Exception:           # a gauge over a closed resource reads 0, never fails
            return 0


class Entity:
    def __init__(self, type_: str, id_: str, attributes: Dict[str, str]):
        self.type = type_
        self.id = id_
        self.attributes = {k: str(v) for k, v in attributes.items()}
        self.metrics: Dict[str, Metric] = {}

    def counter(self, name: str, unit: str = "requests", desc: str = "") -> Metric:
        return self._add(name, COUNTER, unit, desc, None)

    def gauge(self, name: str, unit: str = "", desc: str = "",
              fn: Optional[Callable[[], Value]] = None) -> Metric:
        return self._add(name, GAUGE, unit, desc, fn)

    def _add(self, name, kind, unit, desc, fn) -> Metric:
        m = self.metrics.get(name)
        if m is None:
            m = self.metrics[name] = Metric(name, kind, unit, desc, fn)
        return m


class MetricsRegistry:
    """The entities of one process; ``role`` is ``meta`` or ``replica``."""

    def __init__(self, cluster: str, role: str, host: str, port: int):
        self.cluster = cluster
        self.role = role
        self.host = host
        self.port = port
        self._entities: Dict[Tuple[str, str], Entity] = {}

    def entity(self, type_: str, id_: str, **attributes) -> Entity:
        e = self._entities.get((type_, id_))
        if e is None:
            e = self._entities[(type_, id_)] = Entity(type_, id_, attributes)
        return e

    def remove(self, type_: str, id_: str) -> None:
        self._entities.pop((type_, id_), None)

    def entities(self) -> List[Entity]:
        return [self._entities[k] for k in sorted(self._entities)]

    # ------------------------------------------------------------------ snapshots
    def snapshot(self, query: Dict[str, str]) -> dict:
        """Upstream's JSON document for a parsed ``/metrics`` query (see the module docstring);
        raises ``ValueError`` for a bad query."""
        f = _Filters(query)
        out = []
        for e in self.entities():
            if not f.entity_ok(e):
                continue
            metrics = [f.fields(m) for name, m in sorted(e.metrics.items()) if f.metric_ok(name)]
            if metrics:
                out.append({"type": e.type, "id": e.id, "attributes": dict(e.attributes),
                            "metrics": metrics})
        return {"cluster": self.cluster, "role": self.role, "host": self.host,
                "port": self.port, "timestamp_ns": time.time_ns(), "entities": out}

    def prometheus(self, query: Dict[str, str]) -> str:
        f = _Filters(query)
        by_name: Dict[str, List[Tuple[Entity, Metric]]] = {}
        for e in self.entities():
            if f.entity_ok(e):
                for name, m in e.metrics.items():
                    if f.metric_ok(name):
                        by_name.setdefault(name, []).append((e, m))
        base = {"cluster": self.cluster, "role": self.role, "host": self.host,
                "port": str(self.port)}
        lines = []
        for name in sorted(by_name):
            series = by_name[name]
            pname = _prom_name(name)
            m0 = series[0][1]
            lines.append(f"# HELP {pname} {_help_text(m0.desc or name)}")
            lines.append(f"# TYPE {pname} {m0.kind}")
            for e, m in series:
                labels = dict(base, entity=e.type, id=e.id, **e.attributes)
                text = ",".join(f'{_prom_name(k)}="{_escape(v)}"' for k, v in labels.items())
                lines.append(f"{pname}{{{text}}} {_number(m.read())}")
        return "\n".join(lines) + "\n"


class _Filters:
    def __init__(self, query: Dict[str, str]):
        unknown = sorted(set(query) - set(QUERY_KEYS))
        if unknown:
            raise ValueError(f"unknown query key(s): {', '.join(unknown)}")

        def items(key) -> Optional[List[str]]:
            v = query.get(key)
            return None if v is None or v == "" else [x for x in v.split(",") if x != ""]
        self.with_fields = items("with_metric_fields")
        bad = sorted(set(self.with_fields or ()) - set(METRIC_FIELDS))
        if bad:
            raise ValueError(f"unknown metric field(s): {', '.join(bad)}")
        self.types = items("types")
        self.ids = items("ids")
        attrs = items("attributes")
        if attrs is not None and len(attrs) % 2:
            raise ValueError("attributes must be name,value pairs")
        self.attrs = None if attrs is None else list(zip(attrs[::2], attrs[1::2]))
        self.names = items("metrics")

    def entity_ok(self, e: Entity) -> bool:
        if self.types is not None and e.type not in self.types:
            return False
        if self.ids is not None and e.id not in self.ids:
            return False
        if self.attrs is not None and not any(e.attributes.get(k) == v for k, v in self.attrs):
            return False
        return True

    def metric_ok(self, name: str) -> bool:
        return self.names is None or name in self.names

    def fields(self, m: Metric) -> dict:
        full = {"type": m.kind, "name": m.name, "unit": m.unit, "desc": m.desc,
                "value": m.read()}
        if self.with_fields is None:
            return full
        return {k: full[k] for k in METRIC_FIELDS if k in self.with_fields}


def _prom_name(name: str) -> str:
    n = re.sub(r"[^a-zA-Z0-9_]", "_", name)
    return n if not n[:1].isdigit() else "_" + n


def _escape(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _help_text(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n")


def _number(v: Value) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    return repr(float(v))


def wants_prometheus(query: Dict[str, str], headers: Dict[str, str]) -> bool:
    """Prometheus text for ``format=prometheus`` or a client that accepts text/plain (or
    OpenMetrics) but not JSON; the shell and browsers get JSON."""
    fmt = query.get("format")
    if fmt:
        return fmt == "prometheus"
    accept = (headers.get("accept") or "").lower()
    return ("text/plain" in accept or "openmetrics" in accept) and "json" not in accept


def http_handler(registry: MetricsRegistry) -> Callable:
    """The ``/metrics`` route for ``rpc.dispatch.Dispatcher.route``."""
    def handle(hreq) -> Tuple[int, str, str]:
        query = dict(parse_qsl(hreq.query or "", keep_blank_values=True))
        try:
            if wants_prometheus(query, hreq.headers):
                query.pop("format", None)
                return 200, "text/plain; version=0.0.4; charset=utf-8", registry.prometheus(query)
            return 200, "application/json", json.dumps(registry.snapshot(query))
        except ValueError as e:
            return 400, "application/json", json.dumps({"error_message": str(e)})
    return handle


def process_gauges(entity: Entity, start_time: float) -> None:
    """Process-level gauges every server has: memory, open files, uptime."""
    entity.gauge("virtual_mem_usage_mb", "megabytes", "virtual memory of the process",
                 lambda: _statm(0))
    entity.gauge("resident_mem_usage_mb", "megabytes", "resident memory of the process",
                 lambda: _statm(1))
    entity.gauge("uptime_seconds", "seconds", "seconds since the process started",
                 lambda: int(time.time() - start_time))


def _statm(field: int) -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[field])
    return round(pages * os.sysconf("SC_PAGE_SIZE") / (1 << 20), 1)


def add_counters(entity: Entity, names: Iterable[str], unit: str = "requests") -> Dict[str, Metric]:
    return {n: entity.counter(n, unit) for n in names}
