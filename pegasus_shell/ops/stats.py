"""Table statistics commands (shell.md §2.1, §2.2): ``app_stat`` (request rates and storage of
every table, or of every partition of one) and ``app_disk`` (SST size and file count of every
partition's replicas), from the replica servers' ``/metrics``; a partition is counted from its
primary only, as upstream."""
from __future__ import annotations

from typing import Dict, Tuple

from pegasus_shell.commands import JSON, OUTPUT, RESOLVE, Arg, Opt, command
from pegasus_shell.context import AS_AVAILABLE, UsageError
from pegasus_shell.metrics import (MB, Totals, accumulate, fetch, ok, query, ratio,
                                   sample_twice, seconds)
from pegasus_shell.ops.cluster import (INTERVAL, addr_text, replica_servers, sample_interval,
                                       secondaries_of, shown)
from pegasus_shell.ops.tables import app_parameters
from pegasus_shell.output import Report, emit


# app_stat: column -> (metric of the replica entities, "rate" | "increase" | "sum", scale)
APP_STAT_QPS = (
    ("GET", "get_requests", "rate"), ("MGET", "multi_get_requests", "rate"),
    ("BGET", "batch_get_requests", "rate"), ("PUT", "put_requests", "rate"),
    ("MPUT", "multi_put_requests", "rate"), ("DEL", "remove_requests", "rate"),
    ("MDEL", "multi_remove_requests", "rate"), ("INCR", "incr_requests", "rate"),
    ("CAS", "check_and_set_requests", "rate"), ("CAM", "check_and_mutate_requests", "rate"),
    ("SCAN", "scan_requests", "rate"), ("RCU", "read_capacity_units", "increase"),
    ("WCU", "write_capacity_units", "increase"), ("expire", "read_expired_values", "increase"),
    ("filter", "read_filtered_values", "increase"),
    ("abnormal", "abnormal_read_requests", "increase"),
    ("delay", "throttling_delayed_write_requests", "increase"),
    ("reject", "throttling_rejected_write_requests", "increase"),
)
APP_STAT_USAGE = (
    ("file_mb", "rdb_total_sst_size_mb", "sum"), ("file_num", "rdb_total_sst_files", "sum"),
    ("mem_tbl_mb", "rdb_memtable_mem_usage_bytes", "sum"),
    ("mem_idx_mb", "rdb_index_and_filter_blocks_mem_usage_bytes", "sum"),
)
_BF = ("rdb_bloom_filter_seek_negatives", "rdb_bloom_filter_seek_total",
       "rdb_bloom_filter_point_lookup_true_positives", "rdb_bloom_filter_point_lookup_positives",
       "rdb_bloom_filter_point_lookup_negatives")
APP_STAT_RATIO_METRICS = ("rdb_block_cache_hit_count", "rdb_block_cache_total_count") + _BF


def _point_fp(t: Totals):
    pos, true, neg = t.get(_BF[3]), t.get(_BF[2]), t.get(_BF[4])
    if None in (pos, true, neg):
        return None
    return ratio(pos - true, (pos - true) + neg)


# app_stat: ratio columns computed from the summed gauges
APP_STAT_RATIOS = (
    ("hit_rate", lambda t: ratio(t.get("rdb_block_cache_hit_count"),
                                  t.get("rdb_block_cache_total_count"))),
    ("seek_n_rate", lambda t: ratio(t.get(_BF[0]), t.get(_BF[1]))),
    ("point_n_rate", lambda t: None if t.get(_BF[4]) is None or t.get(_BF[3]) is None
     else ratio(t.get(_BF[4]), t.get(_BF[4]) + t.get(_BF[3]))),
    ("point_fp_rate", _point_fp),
)
_USAGE_SCALE = {"mem_tbl_mb": MB, "mem_idx_mb": MB}


def _stat_cells(t: Totals, only_qps: bool, only_usage: bool, as_json: bool) -> list:
    cells = []
    if not only_usage:
        cells += [shown(t.get(m), as_json, 3) for _, m, _ in APP_STAT_QPS]
    if not only_qps:
        for col, m, _ in APP_STAT_USAGE:
            v = t.get(m)
            if col == "file_num" and v is not None:
                v = int(v)
            elif v is not None:
                v = v / _USAGE_SCALE.get(col, 1.0)
            cells.append(shown(v, as_json, 3))
    cells += [shown(fn(t), as_json, 3) for _, fn in APP_STAT_RATIOS]
    return cells


def _merge(into: Totals, t: Totals) -> None:
    into.seen |= t.seen
    for k, v in t.values.items():
        into.add(k, v)


@command("app_stat", "cluster",
         "Request rates and storage of every table, or of every partition of one (-a)",
         opts=[Opt("-a", "--app_name", metavar="str", completes="table",
                   help="per partition of this table"),
               Opt("-q", "--only_qps", flag=True, help="only the request columns"),
               Opt("-u", "--only_usage", flag=True, help="only the storage columns"),
               JSON, OUTPUT, INTERVAL])
def cmd_app_stat(ctx, a):
    if a.only_qps and a.only_usage:
        raise UsageError("only_qps and only_usage should not be set at the same time")
    interval = sample_interval(a)
    if a.app_name:
        apps = [ctx.app_info(a.app_name)]
    else:
        apps = sorted(ctx.list_apps(AS_AVAILABLE), key=lambda x: x.app_id)
    servers = replica_servers(ctx)
    metrics = [m for _, m, _ in APP_STAT_QPS + APP_STAT_USAGE] + list(APP_STAT_RATIO_METRICS)
    attrs = ("table_id", str(apps[0].app_id)) if a.app_name else ()
    first, second = sample_twice(ctx, servers, query(("replica",), metrics, attrs), interval)
    # the primaries after sampling: each partition is counted from its primary only
    primary: Dict[Tuple[int, int], str] = {}
    for app in apps:
        for pc in ctx.query_config(app.app_name).partitions:
            primary[(app.app_id, pc.pid.partition_index)] = addr_text(pc.primary, pc.hp_primary)
    if a.app_name:
        keys = [(apps[0].app_id, i) for i in range(apps[0].partition_count)]
    else:
        keys = [(app.app_id, -1) for app in apps]
    totals = {k: Totals() for k in keys}
    sums = [m for _, m, k in APP_STAT_USAGE] + list(APP_STAT_RATIO_METRICS)
    rates = [m for _, m, k in APP_STAT_QPS if k == "rate"]
    incs = [m for _, m, k in APP_STAT_QPS if k == "increase"]
    seen: set = set()
    for addr, s1, s2 in zip(servers, first, second):
        s1, s2 = ok(s1, addr, "starting row data"), ok(s2, addr, "ending row data")

        def pick(eid, attrs, addr=addr):
            try:
                gpid = (int(attrs.get("table_id")), int(attrs.get("partition_id")))
            except (TypeError, ValueError):
                return None
            if primary.get(gpid) != addr:
                return None
            return totals.get(gpid if a.app_name else (gpid[0], -1))
        accumulate(pick, s1, s2, seconds(s1, s2, interval), ("replica",), sums, rates, incs,
                    seen)
    for t in totals.values():
        t.seen |= seen            # reported somewhere: 0 where no primary counted it

    r = Report()
    columns = ["pidx"] if a.app_name else ["app_name", "app_id", "pcount"]
    if not a.only_usage:
        columns += [c for c, _, _ in APP_STAT_QPS]
    if not a.only_qps:
        columns += [c for c, _, _ in APP_STAT_USAGE]
    columns += [c for c, _ in APP_STAT_RATIOS]
    tab = r.table("app_stat", columns)
    total = Totals()
    total.seen |= seen
    for (app_id, pidx), t in totals.items():
        _merge(total, t)
        if a.app_name:
            head = [str(pidx)]
        else:
            app = next(x for x in apps if x.app_id == app_id)
            head = [app.app_name, app.app_id, app.partition_count]
        tab.add(*head, *_stat_cells(t, a.only_qps, a.only_usage, a.json))
    head = [f"(total:{len(totals)})"]
    if not a.app_name:
        head += ["", sum(x.partition_count for x in apps)]
    tab.add(*head, *_stat_cells(total, a.only_qps, a.only_usage, a.json))
    emit(ctx, r.render(a.json), a.output)


def _num(v: float) -> str:
    """A number as C++'s ``ostream << double`` shows it (6 significant digits)."""
    return f"{v:g}"


@command("app_disk", "table", "SST size and file count of every partition's replicas",
         args=[Arg("app_name", completes="table")],
         opts=[Opt("-d", "--detailed", flag=True, help="per partition"), RESOLVE, JSON, OUTPUT])
def cmd_app_disk(ctx, a):
    cfg = ctx.query_config(a.app_name)
    pcs = cfg.partitions
    max_replicas = pcs[0].max_replica_count if pcs else 0
    servers = replica_servers(ctx)
    path = query(("replica",), ("rdb_total_sst_files", "rdb_total_sst_size_mb"),
                  ("table_id", str(cfg.app_id)))
    size: Dict[Tuple[str, int], float] = {}
    files: Dict[Tuple[str, int], float] = {}
    for addr, snap in zip(servers, fetch(ctx, servers, path)):
        for attrs, metrics in ok(snap, addr, "sst").by_entity(("replica",)).values():
            try:
                pidx = int(attrs.get("partition_id"))
            except (TypeError, ValueError):
                continue
            if "rdb_total_sst_files" in metrics:
                files[(addr, pidx)] = float(metrics["rdb_total_sst_files"].get("value") or 0)
            if "rdb_total_sst_size_mb" in metrics:
                size[(addr, pidx)] = float(metrics["rdb_total_sst_size_mb"].get("value") or 0)

    def cell(addr: str, pidx: int) -> str:
        s, f = size.get((addr, pidx)), files.get((addr, pidx))
        return (f"{addr}({'-' if s is None else _num(s)},"
                f"{'-' if f is None else '#' + _num(f)})")

    r = Report()
    app_parameters(r, a)
    res = r.kv("result")
    details = r.table("details", ["pidx", "ballot", "replica_count", "primary", "secondaries"])
    prim_mb = all_mb = 0.0
    prim_n = all_n = 0
    for pc in pcs:
        i = pc.pid.partition_index
        prim = addr_text(pc.primary, pc.hp_primary)
        prim_text = "-"
        if prim != "-":
            if (prim, i) in size:
                prim_mb += size[(prim, i)]
                all_mb += size[(prim, i)]
                prim_n += 1
                all_n += 1
            prim_text = cell(prim, i)
        secs = secondaries_of(pc)
        for s in secs:
            if (s, i) in size:
                all_mb += size[(s, i)]
                all_n += 1
        details.add(i, pc.ballot, f"{len(secs) + (prim != '-')}/{pc.max_replica_count}",
                    prim_text, "[" + ",".join(cell(s, i) for s in secs) + "]")
    n = cfg.partition_count
    for k, v in (("app_name", a.app_name), ("app_id", cfg.app_id), ("partition_count", n),
                 ("max_replica_count", max_replicas),
                 ("disk_used_for_primary_replicas(MB)", prim_mb),
                 ("disk_used_for_all_replicas(MB)", all_mb),
                 ("partitions not counted", f"{n - prim_n}/{n}"),
                 ("replicas not counted", f"{n * max_replicas - all_n}/{n * max_replicas}")):
        res.add(k, v)
    if not a.detailed:
        r.sections.remove(details)
    emit(ctx, r.render(a.json), a.output)
