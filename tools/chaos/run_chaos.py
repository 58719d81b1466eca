#!/usr/bin/env python3
"""Chaos test of replication: SIGKILL replica servers under load, check linearizability.

    .venv/bin/python tools/chaos/run_chaos.py [--duration 150] [--replica-count 3] [--seed 1] ...
    .venv/bin/python tools/chaos/run_chaos.py --self-test     # the checker's own tests, no cluster

Builds the Go load/check program (tools/chaos/*.go, official go-client + Porcupine; cached in
.build/chaos/), starts a fresh onebox in .build/chaos-onebox (1 meta, 3 replica servers; ports
34601, 34801-34803), runs the Go clients against table `temp` and, for --duration seconds, every
--kill-interval seconds SIGKILLs a random replica server (by its PID), restarts it after a random
short pause and measures the time until every partition of every table has a primary serving it
and the full replica count again ("time to heal"). Then it waits for the cluster to heal, lets
the clients run --settle more seconds, stops them (they check the history with Porcupine) and
stops the onebox (by PID). See tools/chaos/README.md.

Exit status: 0 pass; 1 failure (heal timeout, too little progress, a server or the client
crashed); 2 linearizability violation; 3 check timed out (verdict unknown); 4 environment (build
failed, ports in use); 124 overall --timeout; 130/143 interrupted. Every process it started is
stopped (by PID) on every exit path.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import math
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.join(ROOT, ".build", "chaos")
DEFAULT_ONEBOX = os.path.join(ROOT, ".build", "chaos-onebox")
TABLE = "temp"
REPLICA_SERVERS = 3

sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))


def say(msg: str) -> None:
    print(f"chaos: {msg}", flush=True)


class Failure(Exception):
    """The run failed (exit 1, or the code given)."""

    def __init__(self, msg: str, code: int = 1):
        super().__init__(msg)
        self.code = code


class Interrupted(SystemExit):
    """SIGTERM / SIGALRM (overall timeout). A SystemExit, so gevent's hub hands it to us."""


# --------------------------------------------------------------------------------------------
# Go build (cached by source hash in .build/chaos/bin)

def go_env() -> dict:
    env = dict(os.environ)
    try:
        base = subprocess.run(["go", "env", "GOFLAGS"], text=True, capture_output=True,
                              env=env, timeout=60).stdout.split()
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Failure(f"`go` not usable: {e}", 4)
    for f in ("-modcacherw", "-buildvcs=false"):   # rm -rf-able cache; no VCS stamping
        if f not in base:
            base.append(f)
    env["GOFLAGS"] = " ".join(base)
    env["GOMODCACHE"] = os.path.join(BUILD, "modcache")
    env["GOCACHE"] = os.path.join(BUILD, "buildcache")
    env["GOTOOLCHAIN"] = "local"
    return env


def go_sources():
    return sorted(glob.glob(os.path.join(HERE, "*.go")) + [os.path.join(HERE, "go.mod"),
                                                           os.path.join(HERE, "go.sum")])


def build(env: dict) -> str:
    h = hashlib.sha256()
    gov = subprocess.run(["go", "env", "GOVERSION"], text=True, capture_output=True,
                         env=env).stdout.strip()
    h.update(gov.encode())
    for p in go_sources():
        if p.endswith("_test.go"):
            continue
        h.update(os.path.basename(p).encode())
        with open(p, "rb") as f:
            h.update(f.read())
    bindir = os.path.join(BUILD, "bin")
    binary = os.path.join(bindir, "chaos-" + h.hexdigest()[:16])
    if os.access(binary, os.X_OK):
        say(f"client: {os.path.relpath(binary, ROOT)} (cached; {gov})")
        return binary
    os.makedirs(bindir, exist_ok=True)
    say(f"client: building {os.path.relpath(binary, ROOT)} ({gov}; modules through the Go "
        f"module proxy into {os.path.relpath(env['GOMODCACHE'], ROOT)})")
    t0 = time.time()
    try:
        p = subprocess.run(["go", "build", "-o", binary + ".tmp", "."], cwd=HERE, env=env,
                           text=True, capture_output=True, timeout=900)
    except subprocess.TimeoutExpired:
        raise Failure("go build did not finish within 900 s", 4)
    if p.returncode != 0:
        print(p.stdout + p.stderr, file=sys.stderr)
        raise Failure("go build failed (is the Go module proxy reachable?)", 4)
    for old in glob.glob(os.path.join(bindir, "chaos-*")):
        if old != binary + ".tmp":
            os.unlink(old)
    os.replace(binary + ".tmp", binary)
    say(f"client: built in {time.time() - t0:.0f} s")
    return binary


def self_test(env: dict) -> int:
    """go test of the checker, then the binary's exit codes on hand-made histories."""
    say("self-test: go test (checker: violations found, linearizable histories pass, "
        "timeouts are 'unknown')")
    p = subprocess.run(["go", "test", "-count=1", "-v", "."], cwd=HERE, env=env, timeout=900)
    if p.returncode != 0:
        say("self-test: go test FAILED")
        return 1
    binary = build(env)
    d = os.path.join(BUILD, "selftest")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    head = {"keys": ["a", "b"]}
    good = [dict(c=0, k="w", key=0, v="x", call=0, ret=10, s="ok"),
            dict(c=1, k="r", key=0, v="x", call=20, ret=30, s="ok"),
            dict(c=1, k="w", key=1, v="y", call=20, ret=30, s="failed", err="ERR_TIMEOUT"),
            dict(c=0, k="r", key=1, v="y", call=40, ret=50, s="ok")]
    stale = good + [dict(c=0, k="w", key=0, v="z", call=60, ret=70, s="ok"),
                    dict(c=1, k="r", key=0, v="x", call=80, ret=90, s="ok")]
    ok = True
    for name, hist, want in (("linearizable", good, 0), ("stale-read", stale, 2)):
        path = os.path.join(d, name + ".jsonl")
        with open(path, "w") as f:
            for rec in [head] + hist:
                f.write(json.dumps(rec) + "\n")
        viz = os.path.join(d, name + ".html")
        r = subprocess.run([binary, "-check-history", path, "-viz", viz], text=True,
                           capture_output=True, timeout=120)
        line = (r.stdout.strip().splitlines() or ["{}"])[-1]
        verdict = json.loads(line).get("linearizable")
        good_run = r.returncode == want and (want != 2 or os.path.exists(viz))
        say(f"self-test: binary on the {name} history: exit {r.returncode} (want {want}), "
            f"linearizable={verdict}" + (f", visualisation {os.path.relpath(viz, ROOT)}"
                                         if os.path.exists(viz) else "")
            + ("" if good_run else "  <-- WRONG"))
        ok = ok and good_run
    say("self-test: " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


# --------------------------------------------------------------------------------------------
# Cluster health via the meta (the repo's RpcClient, as tools/onebox.py wait_healthy)

class Health:
    def __init__(self, box, replica_count: int):
        from pegasus_server.rpc import thrift
        from pegasus_server.rpc.client import RpcClient
        from pegasus_server.errors import RpcError
        self.thrift, self.RpcError = thrift, RpcError
        self.client = RpcClient(connect_timeout=1.0)
        self.meta = box.meta_addresses()[0]
        self.replica_count = replica_count

    def problems(self) -> list:
        """Empty when every partition of every available table has a primary that answers a
        get and primary + secondaries == the replica count; else what is missing."""
        t = self.thrift
        try:
            apps = self.client.call(self.meta, "RPC_CM_LIST_APPS",
                                    t.meta_admin.configuration_list_apps_request(status=1),
                                    timeout=2)
            if not apps.infos:
                return ["no tables"]
            out = []
            for info in apps.infos:
                q = self.client.call(self.meta, "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX",
                                     t.layer2.query_cfg_request(app_name=info.app_name,
                                                                partition_indices=[]),
                                     timeout=2)
                for pc in q.partitions:
                    name = f"{pc.pid.app_id}.{pc.pid.partition_index}"
                    if pc.primary.is_invalid:
                        out.append(f"{name}:no-primary")
                        continue
                    n = 1 + len([s for s in (pc.secondaries or []) if not s.is_invalid])
                    if n < self.replica_count:
                        out.append(f"{name}:{n}/{self.replica_count}")
                        continue
                    try:   # a get proves the primary serves it (as wait_healthy)
                        self.client.call((pc.primary.host, pc.primary.port), "RPC_RRDB_RRDB_GET",
                                         b"\x00\x00", timeout=2, app_id=pc.pid.app_id,
                                         partition_index=pc.pid.partition_index)
                    except self.RpcError as e:
                        out.append(f"{name}:{e.err}")
            return out
        except self.RpcError as e:
            return [f"meta: {e}"]

    def placement(self) -> str:
        """Primaries/secondaries per replica server, e.g. '127.0.0.1:34801 4p+0s, ...'."""
        t = self.thrift
        count = {}
        try:
            apps = self.client.call(self.meta, "RPC_CM_LIST_APPS",
                                    t.meta_admin.configuration_list_apps_request(status=1),
                                    timeout=2)
            for info in apps.infos:
                q = self.client.call(self.meta, "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX",
                                     t.layer2.query_cfg_request(app_name=info.app_name,
                                                                partition_indices=[]),
                                     timeout=2)
                for pc in q.partitions:
                    for i, a in enumerate([pc.primary] + list(pc.secondaries or [])):
                        if not a.is_invalid:
                            c = count.setdefault(f"{a.host}:{a.port}", [0, 0])
                            c[0 if i == 0 else 1] += 1
        except self.RpcError as e:
            return f"? ({e})"
        return ", ".join(f"{k} {p}p+{s}s" for k, (p, s) in sorted(count.items()))

    def wait(self, timeout: float, since: float) -> tuple:
        """Poll until healthy; returns (healthy_at or None, last problems)."""
        deadline = since + timeout
        last = []
        while True:
            last = self.problems()
            now = time.monotonic()
            if not last:
                return now, []
            if now >= deadline:
                return None, last
            time.sleep(0.2)

    def close(self):
        self.client.close()


# --------------------------------------------------------------------------------------------
# the run

def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Tail:
    """Echoes new lines of the client's stderr log."""

    def __init__(self, path):
        self.path, self.pos = path, 0

    def pump(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except OSError:
            return
        end = data.rfind(b"\n")
        if end < 0:
            return
        self.pos += end + 1
        for line in data[:end].decode(errors="replace").splitlines():
            print(f"  [client] {line}", flush=True)


def percentile_summary(xs):
    if not xs:
        return {"min": None, "median": None, "max": None}
    return {"min": round(min(xs), 2), "median": round(statistics.median(xs), 2),
            "max": round(max(xs), 2)}


class Run:
    def __init__(self, args):
        self.args = args
        self.box = None
        self.health = None
        self.client = None          # Popen of the Go program
        self.client_files = []
        self.kills = []             # dicts per kill
        self.summary = None
        self.rng = random.Random(args.seed)
        self.sabotage_idx = None

    # ------------------------------------------------------------------ pieces
    def start_cluster(self):
        from onebox import Onebox
        a = self.args
        self.box = Onebox(a.onebox_dir)
        self.box.clear()   # a previous chaos run's leftovers (its own PIDs) and data
        # the ports of the onebox (34601-34603, 34801-34803 unless tools/onebox.py moves them)
        ports = [self.box.port_of(r, i) for r in ("meta", "replica") for i in (1, 2, 3)]
        deadline = time.monotonic() + a.wait_ports
        while True:
            busy = [p for p in ports if port_in_use(p)]
            if not busy:
                break
            if time.monotonic() >= deadline:
                raise Failure(f"ports {busy} are in use: another cluster is running (stop it, "
                              f"or --wait-ports SECONDS to wait for it)", 4)
            time.sleep(2)
        say(f"onebox: {a.onebox_dir}: 1 meta, {REPLICA_SERVERS} replica servers, table {TABLE} "
            f"{a.partitions} partitions, replica count {a.replica_count}")
        try:
            self.box.start(1, REPLICA_SERVERS, a.partitions, a.replica_count, {}, wait=120)
        except SystemExit as e:
            if isinstance(e, Interrupted):
                raise
            raise Failure(f"onebox did not start: {e}")
        self.health = Health(self.box, a.replica_count)
        t0 = time.monotonic()
        ok, last = self.health.wait(a.heal_timeout, t0)
        if ok is None:
            raise Failure(f"onebox never reached replica count {a.replica_count} on every "
                          f"partition within {a.heal_timeout:.0f} s: {' '.join(last[:10])}")
        say(f"onebox: healthy (every partition {a.replica_count}/{a.replica_count}, serving) "
            f"after {ok - t0:.1f} s more; partitions (p=primary, s=secondary): "
            f"{self.health.placement()}")

    def start_client(self, binary):
        a = self.args
        rd = self.rundir
        upper = a.duration + a.heal_timeout + a.settle + 120   # the runner stops it earlier
        meta = ",".join(f"{h}:{p}" for h, p in self.box.meta_addresses())
        cmd = [binary, "-meta", meta, "-table", TABLE,
               "-clients", str(a.clients), "-sessions", str(a.sessions), "-keys", str(a.keys),
               "-partitions", str(a.partitions), "-duration", f"{upper:.0f}s",
               "-op-timeout", f"{a.op_timeout}s", "-check-timeout", f"{a.check_timeout:.0f}s",
               "-seed", str(a.seed), "-viz", os.path.join(rd, "violation.html"),
               "-history", os.path.join(rd, "history.jsonl"),
               "-faults", os.path.join(rd, "faults.jsonl"),
               "-client-log", os.path.join(rd, "go-client.log"), "-progress", "5s",
               "-rate", str(a.rate), "-client-refresh", f"{a.client_refresh}s"]
        with open(os.path.join(rd, "client.cmd"), "w") as f:
            f.write(" ".join(cmd) + "\n")
        out = open(os.path.join(rd, "client.stdout"), "wb")
        err = open(os.path.join(rd, "client.stderr"), "wb")
        self.client_files = [out, err]
        self.client = subprocess.Popen(cmd, cwd=rd, stdout=out, stderr=err,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        self.tail = Tail(os.path.join(rd, "client.stderr"))
        say(f"client: pid {self.client.pid}, {a.clients} workers over {a.sessions} "
            f"go-client instances (each replaced every {a.client_refresh:g} s), {a.keys} keys; log {os.path.relpath(rd, ROOT)}/client.stderr")

    def check_client_alive(self):
        if self.client.poll() is not None:
            self.tail.pump()
            raise Failure(f"the client exited early (rc={self.client.returncode}); see "
                          f"{os.path.relpath(self.rundir, ROOT)}/client.stderr")

    def sleep_until(self, t):
        while True:
            left = t - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.5))
            self.tail.pump()
            self.check_client_alive()

    def log_fault(self, rec):
        with open(os.path.join(self.rundir, "faults.jsonl"), "a") as f:
            f.write(json.dumps(rec) + "\n")

    def sabotage_target(self) -> int:
        """The replica server that is primary of the most partitions of the test table."""
        t = self.health.thrift
        q = self.health.client.call(self.health.meta, "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX",
                                    t.layer2.query_cfg_request(app_name=TABLE,
                                                               partition_indices=[]), timeout=2)
        ports = [pc.primary.port for pc in q.partitions if not pc.primary.is_invalid]
        return max(range(1, REPLICA_SERVERS + 1),
                   key=lambda i: ports.count(self.box.port_of("replica", i)))

    def sabotage(self, n, idx):
        """--sabotage rollback (a check of the harness, not of the servers): the killed server's
        data directory is copied at the first kill and put back at the second, so the server
        comes back having forgotten acknowledged writes; the checker must report a violation."""
        data = os.path.join(self.box.instance_dir("replica", idx), "data")
        snap = os.path.join(self.rundir, "sabotage-snapshot")
        if n == 1:
            shutil.copytree(data, snap, symlinks=True)
            say(f"sabotage: copied {os.path.relpath(data, ROOT)} (server down)")
        elif n == 2:
            shutil.rmtree(data)
            shutil.copytree(snap, data, symlinks=True)
            say(f"sabotage: ROLLED BACK {os.path.relpath(data, ROOT)} to the copy of kill #1")

    def one_kill(self, n):
        a = self.args
        idx = self.rng.randint(1, REPLICA_SERVERS)
        down = self.rng.uniform(a.down_min, a.down_max)
        if a.sabotage:
            if self.sabotage_idx is None:
                self.sabotage_idx = self.sabotage_target()
            idx = self.sabotage_idx
        pid = self.box.pid_of("replica", idx)
        if not pid:
            raise Failure(f"replica{idx} is not running before kill #{n}")
        wall0, t0 = time.time_ns(), time.monotonic()
        say(f"kill #{n}: SIGKILL replica{idx} (pid {pid}); restart in {down:.1f} s")
        self.box.stop_instance("replica", idx, kill=True)
        if a.sabotage:
            self.sabotage(n, idx)
        self.sleep_until(t0 + down)
        try:
            self.box.start_instance("replica", idx)
        except SystemExit as e:
            if isinstance(e, Interrupted):
                raise
            raise Failure(f"replica{idx} did not restart: {e}; see "
                          f"{self.box.instance_dir('replica', idx)}/stdout.log")
        restarted = time.monotonic() - t0
        healed_at, last = self.health.wait(a.heal_timeout, t0)
        rec = {"kill": n, "replica": idx, "pid": pid, "down_s": round(down, 2),
               "restart_s": round(restarted, 2)}
        if healed_at is None:
            rec["heal_s"] = None
            self.kills.append(rec)
            self.log_fault({"start_ns": wall0, "end_ns": time.time_ns(),
                            "what": f"SIGKILL replica{idx}: NOT healed"})
            raise Failure(f"kill #{n}: not healed {a.heal_timeout:.0f} s after killing "
                          f"replica{idx}: {' '.join(last[:10])}")
        rec["heal_s"] = round(healed_at - t0, 2)
        self.kills.append(rec)
        self.log_fault({"start_ns": wall0, "end_ns": wall0 + int(rec["heal_s"] * 1e9),
                        "what": f"SIGKILL replica{idx} (pid {pid}), restarted at "
                                f"+{restarted:.1f}s, healed at +{rec['heal_s']:.1f}s"})
        say(f"kill #{n}: healed {rec['heal_s']:.1f} s after the kill (restart at "
            f"+{restarted:.1f} s)")
        self.tail.pump()

    def fault_loop(self):
        a = self.args
        t_start = time.monotonic()
        t_end = t_start + a.duration
        next_kill = t_start + a.warmup
        n = 0
        while next_kill < t_end:
            self.sleep_until(next_kill)
            n += 1
            t_kill = time.monotonic()
            self.one_kill(n)
            next_kill = max(t_kill + a.kill_interval, time.monotonic() + a.min_healthy)
        self.sleep_until(t_end)
        say(f"faults: stopped after {time.monotonic() - t_start:.0f} s, {n} kills")

    def stop_client(self):
        a = self.args
        say("client: SIGTERM (stop the load, check the history)")
        self.client.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + a.op_timeout + a.check_timeout * 2 + 60
        while self.client.poll() is None:
            if time.monotonic() > deadline:
                self.kill_client()
                raise Failure("the client did not finish its check in time (killed)")
            time.sleep(0.5)
            self.tail.pump()
        self.tail.pump()
        for f in self.client_files:
            f.close()
        rc = self.client.returncode
        lines = [l for l in open(os.path.join(self.rundir, "client.stdout")).read().splitlines()
                 if l.startswith("{")]
        if not lines:
            raise Failure(f"the client exited with {rc} without a summary line")
        self.summary = json.loads(lines[-1])
        return rc

    def kill_client(self):
        c = self.client
        if c is not None and c.poll() is None:
            try:
                os.killpg(c.pid, signal.SIGKILL)   # its own session, started by us
            except OSError:
                pass
            try:
                c.wait(10)
            except subprocess.TimeoutExpired:
                pass

    # ------------------------------------------------------------------ main
    def execute(self, binary) -> int:
        a = self.args
        stamp = time.strftime("%Y%m%d-%H%M%S")
        runs = os.path.join(BUILD, "runs")
        self.rundir = os.path.join(runs, f"{stamp}-seed{a.seed}")
        os.makedirs(self.rundir, exist_ok=True)
        for old in sorted(glob.glob(os.path.join(runs, "*")))[:-10]:   # keep the last 10
            shutil.rmtree(old, ignore_errors=True)
        say(f"run: {os.path.relpath(self.rundir, ROOT)}; duration {a.duration:.0f} s, kill every "
            f"{a.kill_interval:.0f} s, seed {a.seed}")
        t_begin = time.monotonic()
        self.start_cluster()
        self.start_client(binary)
        try:
            self.fault_loop()
            t0 = time.monotonic()
            healed_at, last = self.health.wait(a.heal_timeout, t0)
            if healed_at is None:
                raise Failure(f"not healthy {a.heal_timeout:.0f} s after the faults stopped: "
                              f"{' '.join(last[:10])}")
        except Failure as e:
            # Still check what the clients saw: a heal failure may come with a violation.
            if self.client is not None and self.client.poll() is None:
                say(f"{e}; checking the history anyway")
                try:
                    self.stop_client()
                    v = self.summary.get("linearizable")
                    e.args = (f"{e} (history: linearizable={v}"
                              + (f", visualisation {self.summary['viz']}" if self.summary.get("viz")
                                 else "") + ")",)
                    if v is False:
                        e.code = 2
                except Failure as e2:
                    say(f"history not checked: {e2}")
            raise
        heal_wall = time.time()
        say(f"final: healthy; partitions: {self.health.placement()}; clients run "
            f"{a.settle:.0f} s more")
        self.sleep_until(time.monotonic() + a.settle)
        rc = self.stop_client()
        s = self.summary
        start_wall = s["start_wall_ns"] / 1e9
        first = max(0, math.ceil(heal_wall - start_wall))
        ok_after = sum(s["ok_per_sec"][first:])
        # the last bucket may be partial; count seconds between heal and the SIGTERM
        heals = [k["heal_s"] for k in self.kills if k.get("heal_s") is not None]
        result = {
            "duration_s": round(time.monotonic() - t_begin, 1),
            "fault_duration_s": a.duration, "replica_count": a.replica_count, "seed": a.seed,
            "kills": len(self.kills),
            "ops": s["ops"], "ok": s["ok"], "unknown_or_failed": s["failed_or_unknown"],
            "reads": s["reads"], "writes": s["writes"],
            "ok_after_final_heal": ok_after,
            "seconds_without_ok_op": sum(1 for x in s["ok_per_sec"][:-1] if x == 0),
            "linearizable": s["linearizable"], "violations": 0 if s["linearizable"] is True
            else (len(s.get("violating_keys", [])) or "unknown"),
            "check_s": s["check_seconds"], "heal_s": percentile_summary(heals),
            "heal_after_restart_s": percentile_summary(
                [k["heal_s"] - k["restart_s"] for k in self.kills if k.get("heal_s") is not None]),
            "client_refreshes": s.get("client_refreshes"),
            "client_exit": rc, "rundir": os.path.relpath(self.rundir, ROOT),
        }
        if s.get("viz"):
            result["viz"] = s["viz"]
        self.result = result
        with open(os.path.join(self.rundir, "kills.json"), "w") as f:
            json.dump(self.kills, f, indent=1)
        code = 0
        reasons = []
        if s["linearizable"] is False:
            code = 2
            reasons.append(f"NOT LINEARIZABLE (keys {s.get('violating_keys')}; visualisation "
                           f"{s.get('viz')})")
        elif s["linearizable"] != True:   # noqa: E712  "unknown"
            code = 3
            reasons.append("the linearizability check timed out: verdict unknown")
        elif rc not in (0, 4):
            code = 1
            reasons.append(f"the client exited with {rc}")
        if ok_after < a.min_ok_after_heal:
            code = code or 1
            reasons.append(f"too little progress: {ok_after} ok operations after the final heal "
                           f"(--min-ok-after-heal {a.min_ok_after_heal})")
        result["verdict"] = "PASS" if code == 0 else "FAIL"
        if code == 0 and not a.keep:   # large; only worth keeping for a failure
            try:
                os.unlink(os.path.join(self.rundir, "history.jsonl"))
            except OSError:
                pass
        if reasons:
            result["reasons"] = reasons
        return code

    def cleanup(self, graceful: bool):
        """Stop everything we started, by PID: the client, then the onebox servers."""
        self.kill_client()
        for f in self.client_files:
            try:
                f.close()
            except OSError:
                pass
        if self.health is not None:
            try:
                self.health.close()
            except Exception:   # noqa: BLE001  (a dead connection must not stop the cleanup)
                pass
        if self.box is not None:
            for role, idx in reversed(self.box.instances()):
                try:
                    self.box.stop_instance(role, idx, kill=not graceful)
                except OSError as e:
                    say(f"stopping {role}{idx}: {e}")


def print_result(run: Run, code: int, why: str = ""):
    r = getattr(run, "result", None)
    print("=" * 72)
    if r:
        h = r["heal_s"]
        say(f"duration {r['duration_s']} s (faults {r['fault_duration_s']:.0f} s), "
            f"replica count {r['replica_count']}, seed {r['seed']}")
        h2 = r["heal_after_restart_s"]
        say(f"kills {r['kills']}; time to heal (kill -> every partition healthy) min/median/max "
            f"{h['min']}/{h['median']}/{h['max']} s; of which after the restart "
            f"{h2['min']}/{h2['median']}/{h2['max']} s")
        say(f"operations {r['ops']} (ok {r['ok']}, failed/unknown {r['unknown_or_failed']}; "
            f"{r['reads']} reads, {r['writes']} writes); ok after the final heal {r['ok_after_final_heal']}; "
            f"seconds without any ok operation {r['seconds_without_ok_op']}")
        say(f"linearizable: {r['linearizable']} (violations: {r['violations']}; check "
            f"{r['check_s']} s); details in {r['rundir']}")
    elif run.kills:
        heals = [k["heal_s"] for k in run.kills if k.get("heal_s") is not None]
        say(f"kills {len(run.kills)}; heal times {heals}")
    if why:
        say(why)
    out = dict(r or {}, exit=code)
    if why and "reasons" not in out:
        out["reasons"] = [why]
    out["verdict"] = "PASS" if code == 0 else "FAIL"
    print("CHAOS_RESULT " + json.dumps(out, sort_keys=True), flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--duration", type=float, default=150, help="seconds of fault injection")
    ap.add_argument("--kill-interval", type=float, default=10,
                    help="seconds between kills (the next kill also waits for the heal)")
    ap.add_argument("--down-min", type=float, default=0.5, help="min seconds a killed server stays down")
    ap.add_argument("--down-max", type=float, default=12.0,
                    help="max seconds a killed server stays down (the onebox's failure detector "
                         "declares a server dead after about 8 s: longer pauses force a failover)")
    ap.add_argument("--warmup", type=float, default=5, help="seconds of load before the first kill")
    ap.add_argument("--settle", type=float, default=None,
                    help="seconds of load after the final heal (progress check); default 20, or "
                         "75 with --client-refresh 0 (a long-lived go-client redials a restarted "
                         "server only 60 s after its previous dial, session.kDialInterval)")
    ap.add_argument("--client-refresh", type=float, default=5,
                    help="replace each go-client instance by a new one every this many seconds "
                         "(0: never), so the workers reach a restarted server within seconds")
    ap.add_argument("--min-healthy", type=float, default=1.0,
                    help="at least this many seconds between a heal and the next kill")
    ap.add_argument("--clients", type=int, default=8, help="client worker goroutines")
    ap.add_argument("--rate", type=float, default=3000,
                    help="total client operations per second (0: unlimited; the history, and so "
                         "the check's time and memory, grow with it)")
    ap.add_argument("--sessions", type=int, default=2, help="go-client instances the workers share")
    ap.add_argument("--keys", type=int, default=20, help="hash keys (spread over the partitions)")
    ap.add_argument("--partitions", type=int, default=8, help="partitions of table temp")
    ap.add_argument("--replica-count", type=int, default=3, help="replicas per partition")
    ap.add_argument("--seed", type=int, default=1, help="seed of the random choices")
    ap.add_argument("--op-timeout", type=float, default=2, help="client per-operation timeout, s")
    ap.add_argument("--heal-timeout", type=float, default=60,
                    help="max seconds from a kill until every partition is healthy again")
    ap.add_argument("--check-timeout", type=float, default=300,
                    help="bound of the Porcupine check (then: unknown, exit 3)")
    ap.add_argument("--min-ok-after-heal", type=int, default=20,
                    help="fail if fewer operations succeeded after the final heal")
    ap.add_argument("--timeout", type=float, default=0,
                    help="overall bound after the build (0: computed from the other flags)")
    ap.add_argument("--wait-ports", type=float, default=0,
                    help="wait up to this many seconds for the onebox ports to be free")
    ap.add_argument("--sabotage", choices=["rollback"],
                    help="check the harness itself: always kill the same server and roll its "
                         "data back at the 2nd kill; the run must then FAIL with a violation")
    ap.add_argument("--onebox-dir", default=DEFAULT_ONEBOX)
    ap.add_argument("--keep", action="store_true",
                    help="keep the onebox directory (logs, data) even if the run passed")
    ap.add_argument("--self-test", action="store_true",
                    help="only the checker's tests (go test + the binary on hand-made histories)")
    ap.add_argument("--build-only", action="store_true", help="only build the Go program")
    a = ap.parse_args(argv)
    if a.settle is None:
        a.settle = 20.0 if a.client_refresh > 0 else 75.0
    if not a.self_test and not a.build_only:
        if not (1 <= a.replica_count <= REPLICA_SERVERS):
            ap.error(f"--replica-count must be 1..{REPLICA_SERVERS}")
        if a.duration <= 0 or a.kill_interval <= 0 or a.clients < 1 or a.keys < 1 \
                or a.partitions < 1 or not (0 <= a.down_min <= a.down_max) or a.rate < 0:
            ap.error("bad durations or counts")

    def on_signal(signo, _frame):
        raise Interrupted(124 if signo == signal.SIGALRM else 128 + signo)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_signal)

    try:
        env = go_env()
        if a.self_test:
            return self_test(env)
        binary = build(env)
        if a.build_only:
            print(binary)
            return 0
    except Failure as e:
        say(f"error: {e}")
        return e.code

    try:
        import gevent  # noqa: F401  (the repo's RpcClient needs the project's virtualenv)
    except ImportError:
        say("error: run me with the project's virtualenv: .venv/bin/python tools/chaos/run_chaos.py "
            "(./run.sh start_onebox creates it)")
        return 4
    overall = a.timeout or (a.duration + a.warmup + a.settle + 3 * a.heal_timeout
                            + 2 * a.check_timeout + a.op_timeout + 300)
    signal.setitimer(signal.ITIMER_REAL, overall)
    run = Run(a)
    code, why, graceful = 1, "", False
    try:
        code = run.execute(binary)
        graceful = True
    except Failure as e:
        code, why = e.code, f"FAILED: {e}"
    except KeyboardInterrupt:
        code, why = 130, "interrupted (Ctrl-C)"
    except Exception:   # noqa: BLE001  a bug here: still stop everything, then report it
        import traceback
        traceback.print_exc()
        code, why = 1, "FAILED: internal error (traceback above)"
    except Interrupted as e:
        code = e.code
        why = (f"overall timeout ({overall:.0f} s, --timeout)" if e.code == 124
               else f"interrupted (signal {e.code - 128})")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            say("stopping the client and the onebox (by PID)")
            run.cleanup(graceful)
        finally:
            # signals that arrived during the cleanup are dropped, not raised later
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
    keep = a.keep or code != 0
    if run.box is not None and os.path.isdir(a.onebox_dir):
        if keep:
            say(f"onebox kept: {a.onebox_dir}")
        else:
            shutil.rmtree(a.onebox_dir, ignore_errors=True)
    if code == 0 and getattr(run, "result", {}).get("verdict") == "FAIL":
        code = 1
    r = getattr(run, "result", None)
    if r and r.get("reasons") and not why:
        why = "FAILED: " + "; ".join(r["reasons"])
    print_result(run, code, why)
    return code


if __name__ == "__main__":
    sys.exit(main())
