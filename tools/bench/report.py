"""Format the results of tools/bench/run_bench.sh.

Input: a JSON-lines file; each line is one loadgen result (``tools/bench/loadgen``) with an extra
``"target"`` key (``ours`` | ``ours1`` | ``ceiling``) and ``"phase"`` (``load`` | ``unload`` |
``peak`` | ``half``), a ``{"target": ..., "phase": "info", "table": ..., "partitions": N,
"replicas": R}`` line (shape of our tables), or a ``{"target": ..., "phase": "unavailable",
"reason": ...}`` line.  Output: the comparison tables on stdout.  Standard library only; no
project imports.

Usage: ``python3 tools/bench/report.py RESULTS.jsonl`` ; ``--half-rate ours [--workload W]``
prints the target rate (50 % of that target's W/uniform peak, W = readonly by default) and exits.

Acceptance figures (the replication issue): replicated writes (``ours`` writeonly) >= 20 % of the
same-run ceiling, and p99 < 10 ms for ``ours`` writeonly at half load.
"""

import argparse
import json
import sys

ACCEPT_WRITE_RATIO = 0.20
ACCEPT_HALF_P99_MS = 10.0
WORKLOAD_ORDER = ["readonly", "writeonly", "rw11", "rw30to1"]
DIST_ORDER = ["uniform", "zipfian"]


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def peak(rows, target, workload, dist):
    for r in rows:
        if (r.get("target"), r.get("phase"), r.get("workload"), r.get("dist")) == (
                target, "peak", workload, dist):
            return r
    return None


def fmt_ops(r):
    return "-" if r is None else f"{r['ops_per_sec']:,.0f}"


def fmt_lat(r):
    if r is None:
        return "-"
    return f"{r['p50_ms']:.2f}/{r['p99_ms']:.2f}/{r['p999_ms']:.2f}"


def fmt_cpu(r):
    c = (r or {}).get("cpu")
    if not c:
        return "-"
    return f"{c['server_pct']:.0f}/{c['loadgen_pct']:.0f}/{c['other_pct']:.0f}"


def ratio(a, b):
    if a is None or b is None or not b.get("ops_per_sec"):
        return None
    return a["ops_per_sec"] / b["ops_per_sec"]


def fmt_ratio(x):
    return "-" if x is None else f"{x:.2f}"


def note(r):
    if r is None:
        return ""
    bits = []
    what = f"{r['target']} {r.get('workload')}/{r.get('dist')}" + (
        " half load" if r.get("phase") == "half" else "")
    if r.get("errors"):
        bits.append(f"{what}: {r['errors']} errors {r.get('error_samples', [])[:1]}")
    other = (r.get("cpu") or {}).get("other_pct", 0)
    if other > 20:
        bits.append(f"{what}: {other:.0f}% CPU used by other processes during the run "
                    f"(shared machine?) - figures may be low")
    nf = r.get("counts", {}).get("get_notfound")
    if nf:
        bits.append(f"{what}: {nf} gets not found")
    return "; ".join(bits)


def print_table(head, table):
    widths = [max(len(x[i]) for x in [head] + table) for i in range(len(head))]
    line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths)))
    print(line)
    print("-" * len(line))
    for row in table:
        print("  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                        for i, (v, w) in enumerate(zip(row, widths))))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--half-rate", metavar="TARGET")
    ap.add_argument("--workload", default="readonly", help="with --half-rate")
    args = ap.parse_args(argv)
    rows = load(args.results)

    if args.half_rate:
        r = peak(rows, args.half_rate, args.workload, "uniform")
        if r is None or not r.get("ops_per_sec"):
            return 1
        print(max(1, int(r["ops_per_sec"] * 0.5)))
        return 0

    info = {r["target"]: r for r in rows if r.get("phase") == "info"}

    def label(target):
        i = info.get(target)
        return f"{target}({i['replicas']})" if i else target

    meta = next((r for r in rows if r.get("phase") == "peak"), {})
    print()
    print(f"pegasus-py bench: {meta.get('records', '?')} records x {meta.get('value_size', '?')} B, "
          f"{meta.get('threads', '?')} closed-loop workers, {meta.get('duration_s', '?')} s per run, "
          f"client={meta.get('client', '?')}")
    for t, i in info.items():
        print(f"  {label(t)}: table {i['table']}, {i['partitions']} partitions x {i['replicas']} "
              f"replica{'s' if i['replicas'] != 1 else ''} per partition")
    for r in rows:
        if r.get("phase") == "unavailable":
            print(f"  NOTE: {r['target']} unavailable: {r.get('reason', '')}")
        if r.get("phase") in ("load", "unload"):
            lr = r.get(r["phase"], {})
            print(f"  {r['phase']} {r['target']}: {lr.get('records')} records in {lr.get('seconds')} s "
                  f"({lr.get('ops_per_sec', 0):,.0f} ops/s), errors {lr.get('errors')}, "
                  f"verify {'ok' if lr.get('verify_ok') else 'FAILED'}")
    print()
    ours = label("ours")
    head = ("workload", f"{ours} ops/s", "ceiling ops/s", "ratio",
            f"{ours} p50/p99/p99.9 ms", "ceiling p50/p99/p99.9 ms", f"{ours} cpu s/l/o",
            "ceil cpu s/l/o")
    table = []
    notes = []
    combos = []
    for r in rows:
        if r.get("phase") == "peak" and (r["workload"], r["dist"]) not in combos:
            combos.append((r["workload"], r["dist"]))
    combos.sort(key=lambda c: (WORKLOAD_ORDER.index(c[0]) if c[0] in WORKLOAD_ORDER else 99,
                               DIST_ORDER.index(c[1]) if c[1] in DIST_ORDER else 99))
    for wl, dist in combos:
        o, c = peak(rows, "ours", wl, dist), peak(rows, "ceiling", wl, dist)
        if o is None and c is None:
            continue
        table.append((f"{wl}/{dist}", fmt_ops(o), fmt_ops(c), fmt_ratio(ratio(o, c)), fmt_lat(o),
                      fmt_lat(c), fmt_cpu(o), fmt_cpu(c)))
        notes += [n for n in (note(o), note(c)) if n]
    if table:
        print_table(head, table)

    # replication: ours (the replicated table) beside ours1 (one replica), same onebox and run
    rep = [(wl, dist) for wl, dist in combos if peak(rows, "ours1", wl, dist)]
    if rep:
        o1 = label("ours1")
        print()
        print("replication: " + " and ".join(
            f"{label(t)} = table {info[t]['table']}" for t in ("ours", "ours1") if t in info)
            + ", same onebox, runs interleaved")
        head = ("workload", f"{ours} ops/s", f"{o1} ops/s", "ceiling ops/s", f"{ours}/ceil",
                f"{o1}/ceil", f"{ours}/{o1}", f"{ours} p50/p99/p99.9 ms", f"{o1} p50/p99/p99.9 ms",
                f"{ours} cpu s/l/o", f"{o1} cpu s/l/o")
        table = []
        for wl, dist in rep:
            o, s, c = (peak(rows, t, wl, dist) for t in ("ours", "ours1", "ceiling"))
            table.append((f"{wl}/{dist}", fmt_ops(o), fmt_ops(s), fmt_ops(c),
                          fmt_ratio(ratio(o, c)), fmt_ratio(ratio(s, c)), fmt_ratio(ratio(o, s)),
                          fmt_lat(o), fmt_lat(s), fmt_cpu(o), fmt_cpu(s)))
            notes += [n for n in (note(s),) if n]
        print_table(head, table)
    if combos:
        print("(cpu s/l/o = % CPU of the server processes / the load generator / everything else "
              "during the measured window; 100 = one core)")

    halves = [r for r in rows if r.get("phase") == "half"]
    if halves:
        print()
        print("half load (open loop at 50% of that target's own closed-loop peak of the same "
              "workload, uniform keys; latency from the scheduled start):")
        for r in halves:
            print(f"  {label(r['target']):9s} {r['workload']:9s} target {r['target_qps']:,.0f} ops/s -> "
                  f"achieved {r['ops_per_sec']:,.0f} ops/s, p50 {r['p50_ms']:.2f} ms, "
                  f"p99 {r['p99_ms']:.2f} ms, p99.9 {r['p999_ms']:.2f} ms, errors {r['errors']}, "
                  f"cpu s/l/o {fmt_cpu(r)}")
            notes += [n for n in (note(r),) if n]

    # acceptance of the replication issue, when its figures were measured on a replicated table
    checks = []
    replicated = info.get("ours", {}).get("replicas", 0) > 1
    for dist in ("uniform", "zipfian") if replicated else ():
        x = ratio(peak(rows, "ours", "writeonly", dist), peak(rows, "ceiling", "writeonly", dist))
        if x is not None:
            checks.append((f"{ours} writeonly/{dist} / ceiling = {x:.2f} (>= {ACCEPT_WRITE_RATIO:.2f})",
                           x >= ACCEPT_WRITE_RATIO))
    for r in halves if replicated else ():
        if r["target"] == "ours" and r["workload"] == "writeonly":
            ok = r["p99_ms"] < ACCEPT_HALF_P99_MS and not r.get("errors")
            checks.append((f"{ours} writeonly half-load p99 = {r['p99_ms']:.2f} ms "
                           f"(< {ACCEPT_HALF_P99_MS:.0f} ms, no errors)", ok))
    if checks:
        print()
        print("acceptance (replicated writes):")
        for text, ok in checks:
            print(f"  {'PASS' if ok else 'FAIL'}  {text}")

    if notes:
        print()
        for n in notes:
            print(f"  NOTE: {n}")
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
