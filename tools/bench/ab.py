#!/usr/bin/env python3
"""tools/bench/ab.py — interleaved A/B comparison of two versions of the server (`./run.sh bench-ab`).

On a shared 2-core machine one benchmark run drifts by 10-20 % from the next (BENCHMARKS.md),
so a change of a few per cent cannot be seen by running the bench before and after it. This
runs the two versions in pairs, each run on a fresh onebox (1 meta, 3 replica servers, tables
`temp` and `stat`, out of the way of the standard ports), alternating which goes first, and
reports the ratio B/A of every pair and their median:

* **peak**: closed-loop throughput (64 workers, official go-client load generator) of the
  workload (default `writeonly` on `temp`: three replicas per partition), after pre-loading the
  records;
* **CPU per write** (with ``--rate``): the servers' CPU divided by the rate of an open-loop run
  at that rate; below the peak it is what a change saves without the noise of saturation.

A version is a git revision (its files from ``git archive``, run with this checkout's
virtualenv) or ``worktree`` (this checkout as it is, uncommitted changes included). The load
generator is built as ``./run.sh bench`` builds it (`run_bench.sh` with ``BENCH_BUILD_ONLY=1``).
Every process is started by `tools/onebox.py` and stopped by its PID; results go to
``.build/ab/<time>/results.jsonl``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, ".build", "ab")
WORKTREE = "worktree"


def say(msg: str) -> None:
    print(f"ab: {msg}", file=sys.stderr, flush=True)


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", ROOT, *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def source_tree(version: str) -> str:
    """The directory holding ``version``'s files."""
    if version == WORKTREE:
        return ROOT
    sha = git("rev-parse", "--verify", f"{version}^{{commit}}")
    dest = os.path.join(BUILD, "src", sha)
    if not os.path.isdir(dest):
        tmp = dest + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        archive = subprocess.Popen(["git", "-C", ROOT, "archive", sha], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", tmp], stdin=archive.stdout, check=True)
        if archive.wait() != 0:
            raise SystemExit(f"ab: git archive {sha} failed")
        os.rename(tmp, dest)
    return dest


def build_loadgen() -> str:
    out = subprocess.run(["bash", os.path.join(ROOT, "tools", "bench", "run_bench.sh")],
                         env=dict(os.environ, BENCH_BUILD_ONLY="1"), capture_output=True,
                         text=True)
    path = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    if out.returncode != 0 or not os.access(path, os.X_OK):
        raise SystemExit(f"ab: cannot build the load generator: {out.stderr.strip()[-500:]}")
    return path


class Onebox:
    """A onebox of one version's files, at ``offset`` from the standard ports."""

    def __init__(self, tree: str, offset: int):
        self.tree = tree
        self.env = dict(os.environ, ONEBOX_PORT_OFFSET=str(offset),
                        ONEBOX_DIR=os.path.join(BUILD, "onebox"))
        self.meta = f"127.0.0.1:{34601 + offset}"

    def _onebox(self, *args: str, check: bool = True) -> str:
        out = subprocess.run([sys.executable, os.path.join(self.tree, "tools", "onebox.py"),
                              *args], env=self.env, capture_output=True, text=True, timeout=600)
        if check and out.returncode != 0:
            raise RuntimeError(f"onebox {' '.join(args)}: {(out.stdout + out.stderr)[-800:]}")
        return out.stdout

    def start(self) -> None:
        self._onebox("clear", check=False)
        self._onebox("start", "-m", "1", "-r", "3")

    def stop(self) -> None:
        self._onebox("stop", check=False)
        self._onebox("clear", check=False)

    def pids(self) -> str:
        out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bench", "ours_table.py"),
                              "--meta", self.meta, "pids"], capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=ROOT), timeout=60)
        return out.stdout.strip()


def loadgen(binary: str, box: Onebox, args, pids: str, *extra: str) -> dict:
    cmd = [binary, "-client", "official", "-meta", box.meta, "-table", args.table,
           "-workload", args.workload, "-records", str(args.records), "-value", "1024",
           "-threads", "64", "-duration", f"{args.seconds}s", "-warmup", "2s",
           "-server-pids", pids, *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 900)
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    if out.returncode != 0 or not line.startswith("{"):
        raise RuntimeError(f"loadgen failed: {out.stderr.strip()[-500:]}")
    return json.loads(line)


def measure(binary: str, tree: str, args) -> dict:
    box = Onebox(tree, args.offset)
    box.start()
    try:
        pids = box.pids()
        peak = loadgen(binary, box, args, pids, "-load")
        out = {"peak": peak["ops_per_sec"], "peak_p99_ms": peak["p99_ms"],
               "peak_errors": peak["errors"]}
        if args.rate:
            r = loadgen(binary, box, args, pids, "-target-qps", str(args.rate))
            cpu = (r.get("cpu") or {}).get("server_pct")
            out.update(rate_ops=r["ops_per_sec"], rate_p99_ms=r["p99_ms"], rate_cpu_pct=cpu,
                       cpu_us_per_op=(cpu * 1e4 / r["ops_per_sec"])
                       if cpu and r["ops_per_sec"] else None)
        return out
    finally:
        box.stop()


def describe(m: dict) -> str:
    text = f"peak {m['peak']:,.0f} ops/s (p99 {m['peak_p99_ms']} ms)"
    if "rate_ops" in m:
        text += (f"; at {m['rate_ops']:,.0f} ops/s: server CPU {m['rate_cpu_pct']} %, "
                 f"{m['cpu_us_per_op']:.0f} us/op, p99 {m['rate_p99_ms']} ms")
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description="Interleaved A/B benchmark of two versions of the server on fresh oneboxes.",
        epilog="example: ./run.sh bench-ab --a HEAD --b worktree --pairs 4 --rate 1500")
    ap.add_argument("--a", default="HEAD", help="version A: a git revision or 'worktree' "
                    "(default HEAD)")
    ap.add_argument("--b", default=WORKTREE, help="version B (default worktree: this checkout "
                    "with its uncommitted changes)")
    ap.add_argument("--pairs", type=int, default=4, help="A/B pairs (default 4)")
    ap.add_argument("--seconds", type=int, default=10, help="measured seconds per run (10)")
    ap.add_argument("--rate", type=int, default=0,
                    help="also an open-loop run at this many ops/s: CPU per operation (0: no)")
    ap.add_argument("--workload", default="writeonly",
                    choices=["writeonly", "readonly", "rw11", "rw30to1"])
    ap.add_argument("--table", default="temp", help="table (default temp: 3 replicas)")
    ap.add_argument("--records", type=int, default=100000, help="records pre-loaded (100000)")
    ap.add_argument("--offset", type=int, default=3000,
                    help="port offset of the oneboxes from the standard ports (3000)")
    args = ap.parse_args(argv)
    if not 1 <= args.pairs <= 50 or not 1 <= args.seconds <= 600 or args.rate < 0 \
            or args.records < 1 or args.offset < 1:
        ap.error("--pairs 1..50, --seconds 1..600, --rate >= 0, --records >= 1, --offset >= 1")
    trees = {"A": source_tree(args.a), "B": source_tree(args.b)}
    binary = build_loadgen()
    run_dir = os.path.join(BUILD, time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(run_dir)
    say(f"A = {args.a}, B = {args.b}; {args.pairs} pairs of {args.workload} on {args.table}; "
        f"results in {run_dir}")
    pairs = []
    with open(os.path.join(run_dir, "results.jsonl"), "w") as results:
        for i in range(args.pairs):
            got = {}
            for side in ("AB" if i % 2 == 0 else "BA"):
                try:
                    got[side] = measure(binary, trees[side], args)
                except RuntimeError as e:
                    say(f"pair {i + 1} {side}: {e}")
                    return 1
                say(f"pair {i + 1}/{args.pairs} {side}: {describe(got[side])}")
                results.write(json.dumps(dict(got[side], pair=i + 1, side=side,
                                              version=getattr(args, side.lower()))) + "\n")
                results.flush()
            pairs.append(got)
    ratios = {"peak": [p["B"]["peak"] / p["A"]["peak"] for p in pairs]}
    if args.rate:
        ratios["CPU per op"] = [p["B"]["cpu_us_per_op"] / p["A"]["cpu_us_per_op"]
                                for p in pairs if p["A"].get("cpu_us_per_op")
                                and p["B"].get("cpu_us_per_op")]
    for name, rs in ratios.items():
        if rs:
            print(f"{name} B/A: median {statistics.median(rs):.3f} "
                  f"(pairs: {', '.join(f'{r:.3f}' for r in rs)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
