"""Format the results of tools/bench/run_bench.sh.

Input: a JSON-lines file; each line is one loadgen result (``tools/bench/loadgen``) with an extra
``"target"`` key (``ours`` | ``ceiling``) and ``"phase"`` (``load`` | ``peak`` | ``half``), or a
``{"target": ..., "phase": "unavailable", "reason": ...}`` line.  Output: the comparison table on
stdout.  Standard library only; no project imports.

Usage: ``python3 tools/bench/report.py RESULTS.jsonl`` ; ``--half-rate ours`` prints the target
rate (50 % of the readonly/uniform peak of that target) and exits.
"""

import argparse
import json
import sys


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


def note(r):
    if r is None:
        return ""
    bits = []
    if r.get("errors"):
        bits.append(f"{r['target']}: {r['errors']} errors {r.get('error_samples', [])[:1]}")
    other = (r.get("cpu") or {}).get("other_pct", 0)
    if other > 20:
        bits.append(f"{r['target']} {r['workload']}/{r['dist']}: {other:.0f}% CPU used by other "
                    f"processes during the run (shared machine?) - figures may be low")
    nf = r.get("counts", {}).get("get_notfound")
    if nf:
        bits.append(f"{r['target']}: {nf} gets not found")
    return "; ".join(bits)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--half-rate", metavar="TARGET")
    args = ap.parse_args(argv)
    rows = load(args.results)

    if args.half_rate:
        r = peak(rows, args.half_rate, "readonly", "uniform")
        if r is None or not r.get("ops_per_sec"):
            return 1
        print(max(1, int(r["ops_per_sec"] * 0.5)))
        return 0

    meta = next((r for r in rows if r.get("phase") == "peak"), {})
    print()
    print(f"pegasus-py bench: {meta.get('records', '?')} records x {meta.get('value_size', '?')} B, "
          f"{meta.get('threads', '?')} closed-loop workers, {meta.get('duration_s', '?')} s per run, "
          f"client={meta.get('client', '?')}")
    for r in rows:
        if r.get("phase") == "unavailable":
            print(f"  NOTE: {r['target']} unavailable: {r.get('reason', '')}")
        if r.get("phase") in ("load", "unload"):
            lr = r.get(r["phase"], {})
            print(f"  {r['phase']} {r['target']}: {lr.get('records')} records in {lr.get('seconds')} s "
                  f"({lr.get('ops_per_sec', 0):,.0f} ops/s), errors {lr.get('errors')}, "
                  f"verify {'ok' if lr.get('verify_ok') else 'FAILED'}")
    print()
    head = ("workload", "ours ops/s", "ceiling ops/s", "ratio",
            "ours p50/p99/p99.9 ms", "ceiling p50/p99/p99.9 ms", "ours cpu s/l/o", "ceil cpu s/l/o")
    table = []
    notes = []
    combos = []
    for r in rows:
        if r.get("phase") == "peak" and (r["workload"], r["dist"]) not in combos:
            combos.append((r["workload"], r["dist"]))
    for wl, dist in combos:
        o, c = peak(rows, "ours", wl, dist), peak(rows, "ceiling", wl, dist)
        ratio = "-"
        if o and c and c["ops_per_sec"]:
            ratio = f"{o['ops_per_sec'] / c['ops_per_sec']:.2f}"
        table.append((f"{wl}/{dist}", fmt_ops(o), fmt_ops(c), ratio, fmt_lat(o), fmt_lat(c),
                      fmt_cpu(o), fmt_cpu(c)))
        notes += [n for n in (note(o), note(c)) if n]
    widths = [max(len(x[i]) for x in [head] + table) for i in range(len(head))]
    line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths)))
    print(line)
    print("-" * len(line))
    for row in table:
        print("  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                        for i, (v, w) in enumerate(zip(row, widths))))
    print("(cpu s/l/o = % CPU of the server processes / the load generator / everything else "
          "during the measured window; 100 = one core)")
    halves = [r for r in rows if r.get("phase") == "half"]
    if halves:
        print()
        print("half load (readonly/uniform, open loop at 50% of that target's peak; latency from "
              "the scheduled start):")
        for r in halves:
            print(f"  {r['target']:8s} target {r['target_qps']:,.0f} ops/s -> achieved "
                  f"{r['ops_per_sec']:,.0f} ops/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
                  f"p99.9 {r['p999_ms']:.2f} ms, errors {r['errors']}, cpu s/l/o {fmt_cpu(r)}")
            notes += [n for n in (note(r),) if n]
    if notes:
        print()
        for n in notes:
            print(f"  NOTE: {n}")
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
