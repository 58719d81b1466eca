"""pegasus_shell's cluster, node and server commands (shell.md §2.2, plus app_disk), one-shot
against a live onebox: nodes, server_info, server_stat, remote_command, flush_log, app_stat,
app_disk, get/set_meta_level, balance, propose, ddd_diagnose (cluster_info: test_shell.py).

The tests run in file order on one cluster: the load and storage tests read the partition
layout before balance and propose move primaries, and ddd_diagnose (which stops a replica
server) comes last. Two tests at the end need no cluster: the action lists balance sends, and
ddd_diagnose's choice of a primary."""
import io
import json
import os
import subprocess
import sys

import pytest

from pegasus_server import errors
from pegasus_server.base import Gpid, RpcAddress
from pegasus_server.rpc import thrift
from pegasus_server.rpc.client import RpcClient
from pegasus_server.rpc.table import TableClient
from pegasus_shell import commands
from pegasus_shell.ops.cluster import _recommend   # importing the ops registers the commands

from conftest import wait_for
from onebox import META_BASE_PORT, REPLICA_BASE_PORT  # tools/, on the path via conftest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
META = ("127.0.0.1", META_BASE_PORT + 1)
META_TEXT = f"127.0.0.1:{META_BASE_PORT + 1}"
REPLICAS = [f"127.0.0.1:{REPLICA_BASE_PORT + i}" for i in (1, 2, 3)]


def shell(*args, input=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "pegasus_shell", "--meta", META_TEXT, *args],
                          capture_output=True, text=True, timeout=timeout, input=input, cwd=ROOT)


def ok(*args, **kw):
    out = shell(*args, **kw)
    assert out.returncode == 0, f"{args}: {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out.stdout


def ok_json(*args, **kw):
    return json.loads(ok(*args, **kw))


@pytest.fixture(scope="module")
def rpc():
    c = RpcClient()
    yield c
    c.close()


def config(rpc, table):
    r = rpc.call(META, "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX",
                 thrift.layer2.query_cfg_request(app_name=table, partition_indices=[]))
    assert r.err == errors.ERR_OK
    return r, {p.pid.partition_index: p for p in r.partitions}


def layout(rpc):
    """node -> [primaries, secondaries] over the available tables."""
    counts = {r: [0, 0] for r in REPLICAS}
    for table in ("stat", "temp"):
        for pc in config(rpc, table)[1].values():
            counts[str(pc.primary)][0] += 1
            for s in pc.secondaries:
                counts[str(s)][1] += 1
    return counts


# ---------------------------------------------------------------------------- nodes

def test_nodes_detailed_status_and_output_file(cluster, rpc, tmp_path):
    expected = layout(rpc)
    doc = ok_json("nodes", "-d", "-j")
    rows = {r["address"]: r for r in doc["details"]}
    assert sorted(rows) == REPLICAS
    for addr, (prim, sec) in expected.items():
        assert rows[addr]["status"] == "ALIVE"
        assert (rows[addr]["primary_count"], rows[addr]["secondary_count"],
                rows[addr]["replica_count"]) == (prim, sec, prim + sec)
    assert sum(r["primary_count"] for r in rows.values()) == 12       # stat 4 + temp 8
    assert doc["summary"] == {"total_node_count": 3, "alive_node_count": 3,
                              "unalive_node_count": 0}
    text = ok("nodes", "-d")
    assert text.startswith("[details]\naddress") and "[summary]" in text
    assert "replica_count  primary_count  secondary_count" in text
    assert [ln.split()[:2] for ln in text.splitlines()[2:5]] == [[r, "ALIVE"] for r in REPLICAS]

    assert len(ok_json("nodes", "-s", "alive", "-j")["details"]) == 3
    doc = ok_json("nodes", "-s", "unalive", "-j")
    assert doc["details"] == [] and doc["parameters"] == {"status": "unalive"}
    assert doc["summary"]["total_node_count"] == 0
    path = tmp_path / "nodes.txt"
    out = ok("nodes", "-o", str(path))
    assert out.strip() == f"output written to {path}"
    saved = path.read_text()
    assert f"out_file : {path}" in saved and saved.count("ALIVE") == 3

    assert shell("nodes", "-s", "dead").returncode == 2
    assert shell("nodes", "-q", "-i", "0").returncode == 2


LOADER = """
import sys, time
from pegasus_server.rpc.table import TableClient
t = TableClient([sys.argv[1]], "temp", timeout=10)
assert t.set(b"load_hk", b"", b"v").error == 0
print("ready", flush=True)
end, n = time.time() + float(sys.argv[2]), 0
while time.time() < end:
    assert t.get(b"load_hk", b"") == (0, b"v")
    n += 1
print(n, flush=True)
"""


def test_nodes_and_app_stat_rates_under_load(cluster, rpc):
    """Gets of one key for a few seconds: its partition's primary is the only node, and that
    partition the only row, with a GET rate, and the rate matches the loader's."""
    duration = 6.0
    t = TableClient([META_TEXT], "temp")
    pidx = t.partition_of(b"load_hk")
    t.close()
    primary = str(config(rpc, "temp")[1][pidx].primary)
    loader = subprocess.Popen([sys.executable, "-c", LOADER, META_TEXT, str(duration)],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert loader.stdout.readline().strip() == "ready"
        nodes = ok_json("nodes", "-u", "-q", "-i", "1000", "-j")["details"]
        stat = ok_json("app_stat", "-a", "temp", "-q", "-i", "1000", "-j")["app_stat"]
        tables = ok_json("app_stat", "-i", "500", "-j")["app_stat"]
        total = int(loader.stdout.readline())
    finally:
        loader.kill()
        loader.wait()
    rate = total / duration
    by_addr = {r["address"]: r for r in nodes}
    assert rate * 0.25 < by_addr[primary]["get_qps"] < rate * 4, (rate, by_addr[primary])
    for addr, r in by_addr.items():
        if addr != primary:
            assert r["get_qps"] == 0
        assert r["memused_res_mb"] > 0 and isinstance(r["mem_tbl_mb"], int)
        # metrics the servers do not report are null, not zero
        assert r["read_cu"] is None and r["get_p99(ms)"] is None
        assert r["block_cache_mb"] is None and r["disk_avl_total_ratio"] is None

    assert [r["pidx"] for r in stat] == [str(i) for i in range(8)] + ["(total:8)"]
    assert rate * 0.25 < stat[pidx]["GET"] < rate * 4
    assert all(r["GET"] == 0 for i, r in enumerate(stat[:8]) if i != pidx)
    assert stat[8]["GET"] == pytest.approx(stat[pidx]["GET"], abs=0.01)
    assert "file_mb" not in stat[0] and "RCU" in stat[0] and stat[0]["RCU"] is None

    assert [(r["app_name"], r["app_id"], r["pcount"]) for r in tables] == [
        ("stat", 1, 4), ("temp", 2, 8), ("(total:2)", "", 12)]
    assert tables[0]["GET"] == 0 and tables[1]["GET"] > 0

    idle = ok_json("nodes", "-q", "-i", "300", "-j")["details"]
    assert all(r["get_qps"] == 0 for r in idle)
    assert shell("app_stat", "-q", "-u").returncode == 2
    assert shell("app_stat", "-a", "no_such_table").returncode == 1


def test_app_disk_and_app_stat_storage_after_flush(cluster, rpc):
    t = TableClient([META_TEXT], "stat")
    for i in range(160):
        assert t.set(b"disk%03d" % i, b"", os.urandom(16 << 10)).error == 0   # 2.5 MB
    t.close()
    out = ok_json("remote_command", "-t", "replica-server", "replica.trigger-checkpoint", "1")
    assert out["command"] == "replica.trigger-checkpoint 1" and out["succeed_count"] == 3
    assert all(d["message"].startswith("triggered checkpoint of 4 replica(s)")
               for d in out["details"].values())

    def flushed():
        doc = ok_json("app_disk", "stat", "-d", "-j")
        res = doc["result"]
        return doc if res["disk_used_for_primary_replicas(MB)"] > 2.0 and \
            res["disk_used_for_all_replicas(MB)"] > 6.0 else None
    doc = wait_for(flushed, 30, "the sst files of stat on every replica")
    res = doc["result"]
    assert res["app_name"] == "stat" and res["app_id"] == 1 and res["partition_count"] == 4
    assert res["partitions not counted"] == "0/4" and res["replicas not counted"] == "0/12"
    assert doc["parameters"] == {"app_name": "stat", "detailed": True}
    _, pcs = config(rpc, "stat")
    files = 0
    for row in doc["details"]:
        pc = pcs[row["pidx"]]
        assert row["ballot"] == pc.ballot and row["replica_count"] == "3/3"
        prim = row["primary"]
        assert prim.startswith(f"{pc.primary}(") and ",#" in prim
        files += int(prim.split("#")[1].rstrip(")"))
        assert [s.split("(")[0] for s in row["secondaries"][1:-1].split("),")] == \
            [str(s) for s in pc.secondaries]
    assert files > 0

    # app_stat counts the same primaries (read twice in a row: a compaction may run between)
    def same_as_app_disk():
        usage = ok_json("app_stat", "-a", "stat", "-u", "-i", "100", "-j")["app_stat"]
        disk = ok_json("app_disk", "stat", "-d", "-j")
        n = sum(int(r["primary"].split("#")[1].rstrip(")")) for r in disk["details"])
        mb = disk["result"]["disk_used_for_primary_replicas(MB)"]
        assert "GET" not in usage[0] and len(usage) == 5
        return usage[-1]["file_num"] == n and usage[-1]["file_mb"] == pytest.approx(mb, rel=0.02)
    wait_for(same_as_app_disk, 15, "app_stat and app_disk agreeing")
    text = ok("app_disk", "stat")
    assert "[result]" in text and "[details]" not in text
    assert shell("app_disk", "no_such_table").returncode == 1
    assert shell("app_disk").returncode == 2


# ---------------------------------------------------------------------------- remote commands

def test_server_info_envelope_and_node_choice(cluster):
    doc = ok_json("server_info")
    assert doc["command"] == "server-info " and doc["succeed_count"] == 4
    assert doc["failed_count"] == 0
    assert {a: d["role"] for a, d in doc["details"].items()} == {
        META_TEXT: "meta-server", **{r: "replica-server" for r in REPLICAS}}
    for d in doc["details"].values():
        assert d["acked"] is True and d["message"]["version"].startswith("pegasus-py")
        assert d["message"]["start_time"]
    assert list(ok_json("server_info", "-t", "replica-server")["details"]) == REPLICAS
    assert list(ok_json("server_info", "-t", "meta-server")["details"]) == [META_TEXT]
    doc = ok_json("server_info", "-l", REPLICAS[1])
    assert doc["details"][REPLICAS[1]]["role"] == "user-specified"
    out = shell("server_info", "-t", "meta-server", "-l", REPLICAS[0])
    assert out.returncode == 2 and "can not specify both" in out.stderr
    assert shell("server_info", "-t", "nobody").returncode == 2
    assert shell("server_info", "-l", "not-an-address").returncode == 2


def test_flush_log(cluster):
    doc = ok_json("flush_log")
    assert doc["command"] == "flush-log " and doc["succeed_count"] == 4
    assert {d["message"] for d in doc["details"].values()} == {"Flush done."}


def test_remote_command_sets_and_reports(cluster):
    node = REPLICAS[2]
    doc = ok_json("remote_command", "-l", node, "replica.verbose-client-log", "true")
    assert doc["command"] == "replica.verbose-client-log true"
    assert doc["details"][node]["message"] == {"error": "ok",
                                               "replica.verbose-client-log": "true"}
    for addr, d in ok_json("remote_command", "-t", "replica-server",
                           "replica.verbose-client-log")["details"].items():
        assert d["message"]["replica.verbose-client-log"] == ("true" if addr == node
                                                              else "false")
    ok("remote_command", "-l", node, "replica.verbose-client-log", "false")

    doc = ok_json("remote_command", "-t", "meta-server", "no-such-command")
    assert doc["details"][META_TEXT] == {"role": "meta-server", "acked": True,
                                         "message": "unknown command 'no-such-command'"}
    # the shell's names map to the servers' (server_info -> server-info)
    doc = ok_json("remote_command", "-t", "meta-server", "server_info")
    assert doc["command"] == "server-info " and "version" in doc["details"][META_TEXT]["message"]
    # a node that does not answer: acked false, status 1
    dead = f"127.0.0.1:{REPLICA_BASE_PORT + 9}"
    out = shell("remote_command", "-l", f"{dead},{node}", "server-info")
    assert out.returncode == 1
    doc = json.loads(out.stdout)
    assert doc["succeed_count"] == 1 and doc["failed_count"] == 1
    assert doc["details"][dead]["acked"] is False and "ERR_NETWORK_FAILURE" in \
        doc["details"][dead]["message"]
    assert shell("remote_command", "-t", "all").returncode == 2      # no command


def test_server_stat_from_metrics(cluster, rpc):
    expected = layout(rpc)
    for cmd in (["server_stat"], ["remote_command", "server_stat"]):
        doc = ok_json(*cmd, "-i", "300")
        assert doc["command"] == "server_stat " and doc["succeed_count"] == 4
        meta = doc["details"][META_TEXT]["message"]
        assert set(meta) == {"virt_mem_mb", "res_mem_mb"} and meta["res_mem_mb"] > 0
        for addr in REPLICAS:
            m = doc["details"][addr]["message"]
            prim, sec = expected[addr]
            assert (m["primary_replicas"], m["secondary_replicas"], m["total_replicas"]) == \
                (prim, sec, prim + sec)
            assert m["res_mem_mb"] > 0 and m["get_qps"] >= 0
            assert "opening_replicas" not in m         # not reported by these servers


# ---------------------------------------------------------------------------- meta level

def test_meta_level(cluster):
    assert ok("get_meta_level") == "current meta level is fl_steady\n"
    assert ok("set_meta_level", "freezed") == "control meta level ok, the old level is fl_steady\n"
    try:
        assert ok("get_meta_level") == "current meta level is fl_freezed\n"
        assert "freezed" in ok("cluster_info")
    finally:
        assert ok("set_meta_level", "steady") == \
            "control meta level ok, the old level is fl_freezed\n"
    assert ok("get_meta_level") == "current meta level is fl_steady\n"
    out = shell("set_meta_level", "sleepy")
    assert out.returncode == 2 and "parse sleepy as meta function level failed" in out.stderr
    assert shell("set_meta_level").returncode == 2


# ---------------------------------------------------------------------------- balance, propose

def test_balance_move_pri_moves_the_primary(cluster, rpc):
    _, pcs = config(rpc, "temp")
    pc = pcs[0]
    src, dst = str(pc.primary), str(pc.secondaries[0])
    out = ok("balance", "-g", "2.0", "-p", "move_pri", "-f", src, "-t", dst)
    assert out == "send balance proposal result: ERR_OK\n"

    def moved():
        p = config(rpc, "temp")[1][0]
        return str(p.primary) == dst and len(p.secondaries) == 2 and src in map(str, p.secondaries)
    wait_for(moved, 30, f"primary of 2.0 moved from {src} to {dst}")

    out = shell("balance", "-g", "9.0", "-p", "move_pri", "-f", src, "-t", dst)
    assert out.returncode == 1 and out.stdout == \
        "send balance proposal result: ERR_APP_NOT_EXIST\n"
    assert shell("balance", "-g", "2.0", "-p", "move_pri", "-t", dst).returncode == 2
    assert shell("balance", "-g", "2.0", "-p", "swap", "-f", src, "-t", dst).returncode == 2
    assert shell("balance", "-g", "2", "-p", "move_pri", "-f", src, "-t", dst).returncode == 2


def test_propose_downgrade_primary(cluster, rpc):
    _, pcs = config(rpc, "temp")
    pc = pcs[3]
    prim = str(pc.primary)
    out = ok("propose", "-g", "2.3", "-p", "DOWNGRADE_TO_SECONDARY", "-t", prim, "-n", prim)
    assert out == "send proposal response: ERR_OK\n"

    def redone():   # the primary stepped down, the cure upgraded a secondary: two ballots
        p = config(rpc, "temp")[1][3]
        return p.ballot >= pc.ballot + 2 and not p.primary.is_invalid and \
            len(p.secondaries) == 2 and prim in {str(p.primary), *map(str, p.secondaries)}
    wait_for(redone, 30, "partition 2.3 with a new primary")
    out = shell("propose", "-g", "2.3", "-p", "NO_SUCH_TYPE", "-t", prim, "-n", prim)
    assert out.returncode == 2 and "parse CT_NO_SUCH_TYPE as config_type failed" in out.stderr
    assert shell("propose", "-g", "2.3", "-p", "REMOVE", "-t", prim).returncode == 2


# ---------------------------------------------------------------------------- ddd_diagnose

def test_ddd_diagnose_of_a_lost_single_replica(cluster, rpc):
    """A one-replica table whose server stops is DDD: listed with its dropped node and the
    reason; -d -s proposes nothing; -d with a node typed in forces that primary."""
    ma = thrift.meta_admin
    r = rpc.call(META, "RPC_CM_CREATE_APP", ma.configuration_create_app_request(
        app_name="ddd_t", options=ma.create_app_options(
            partition_count=1, replica_count=1, success_if_exist=True, app_type="pegasus",
            is_stateful=True, envs={})))
    assert r.err == errors.ERR_OK
    app_id = r.appid
    lost = str(wait_for(lambda: not config(rpc, "ddd_t")[1][0].primary.is_invalid and
                        config(rpc, "ddd_t")[1][0].primary, 30, "ddd_t served"))
    assert ok("ddd_diagnose") == "Total 0 ddd partitions:\n\nDiagnose ddd done.\n"

    cluster.box.stop_instance("replica", REPLICAS.index(lost) + 1)
    text = wait_for(lambda: (lambda o: o if "Total 1 ddd" in o else None)(
        ok("ddd_diagnose", "-g", str(app_id))), 40, "the partition of ddd_t reported DDD")
    lines = text.splitlines()
    assert lines[2] == f"({1}) {app_id}.0"
    assert lines[3].startswith("    config: ballot(")
    assert lines[5].startswith(f"    dropped[0]: node({lost}), drop_time(")
    assert "alive(false), collected(false)" in lines[5] and lines[5].endswith("<== the latest")
    assert lines[7] == f"    last_drops[0]: node({lost})  <== the latest"
    assert lines[9] == f"    ddd_reason: DDD: waiting for {lost}"
    assert lines[-1] == "Diagnose ddd done."

    doc = ok_json("nodes", "-s", "unalive", "-j")
    assert doc["details"] == [{"address": lost, "status": "UNALIVE"}]

    out = ok("ddd_diagnose", "-g", f"{app_id}.0", "-d", "-s")
    assert "    recommend_primary: none\n    propose_request: none\n" in out
    assert "Proposed count: 0/1" in out

    other = next(x for x in REPLICAS if x != lost)
    out = ok("ddd_diagnose", "-g", str(app_id), "-d", input=f"nonsense\n{other}\n")
    assert "> Sorry, you have input an invalid node address." in out
    assert f"propose_request: propose -f -g {app_id}.0 -p ASSIGN_PRIMARY -t {other} -n {other}" \
        in out
    assert "propose_response: ERR_OK" in out and "Proposed count: 1/1" in out
    wait_for(lambda: str(config(rpc, "ddd_t")[1][0].primary) == other, 30,
             f"ddd_t's primary forced onto {other}")
    assert ok("ddd_diagnose", "-g", str(app_id)).startswith("Total 0 ddd partitions:")
    assert shell("ddd_diagnose", "-g", "x.y").returncode == 2


# ---------------------------------------------------------------------------- without a cluster

class _Ctx:
    """Just enough of ShellContext to capture what a command sends to the meta."""

    def __init__(self, err=errors.ERR_OK):
        self.sent = []
        self.out, self.err = io.StringIO(), io.StringIO()
        self._err = err

    def meta_call(self, name, arg, timeout=None):
        self.sent.append((name, arg))
        return thrift.meta_admin.configuration_balancer_response(err=self._err)


def _actions(req):
    ct = {v: k for k, v in thrift.meta_admin.config_type._NAMES_TO_VALUES.items()}
    return [(str(a.target), str(a.node), ct[a.type]) for a in req.action_list]


@pytest.mark.parametrize("kind,expected", [
    ("move_pri", [("F", "F", "CT_DOWNGRADE_TO_SECONDARY"), ("T", "T", "CT_UPGRADE_TO_PRIMARY")]),
    ("copy_pri", [("F", "T", "CT_ADD_SECONDARY_FOR_LB"), ("F", "F", "CT_DOWNGRADE_TO_SECONDARY"),
                  ("T", "T", "CT_UPGRADE_TO_PRIMARY")]),
    ("copy_sec", [("0.0.0.0:0", "T", "CT_ADD_SECONDARY_FOR_LB"),
                  ("0.0.0.0:0", "F", "CT_DOWNGRADE_TO_INACTIVE")]),
])
def test_balance_action_lists(kind, expected):
    ctx = _Ctx()
    f, t = "10.0.0.1:34801", "10.0.0.2:34802"
    assert commands.run(ctx, ["balance", "-g", "3.7", "-p", kind, "-f", f, "-t", t]) == 0
    (name, req), = ctx.sent
    assert name == "RPC_CM_PROPOSE_BALANCER" and req.gpid == Gpid(3, 7) and not req.force
    names = {"F": f, "T": t}
    assert _actions(req) == [(names.get(a, a), names.get(b, b), c) for a, b, c in expected]
    assert ctx.out.getvalue() == "send balance proposal result: ERR_OK\n"


def test_propose_type_with_or_without_prefix_and_force():
    for typ, force in (("ASSIGN_PRIMARY", []), ("CT_ADD_SECONDARY", ["-f"]),
                       ("downgrade_to_inactive", [])):
        ctx = _Ctx(errors.ERR_INVALID_PARAMETERS)
        rc = commands.run(ctx, ["propose", *force, "-g", "1.2", "-p", typ, "-t",
                                "10.0.0.1:1", "-n", "10.0.0.2:2"])
        assert rc == 1 and ctx.out.getvalue() == \
            "send proposal response: ERR_INVALID_PARAMETERS\n"
        (_, req), = ctx.sent
        name = typ.upper() if typ.upper().startswith("CT_") else "CT_" + typ.upper()
        assert _actions(req) == [("10.0.0.1:1", "10.0.0.2:2", name)]
        assert bool(req.force) == bool(force)


def _ddd(last_drops, dropped, committed=10):
    ma = thrift.meta_admin
    cfg = thrift.layer2.partition_configuration(
        pid=Gpid(1, 0), ballot=5, last_committed_decree=committed,
        last_drops=[RpcAddress.parse(x) for x in last_drops])
    return ma.ddd_partition_info(config=cfg, reason="", dropped=[
        ma.ddd_node_info(node=RpcAddress.parse(n), drop_time_ms=0, is_alive=alive,
                         is_collected=True, ballot=b, last_committed_decree=c,
                         last_prepared_decree=c) for n, alive, b, c in dropped])


def test_ddd_recommendation_rules():
    a, b = "10.0.0.1:1", "10.0.0.2:2"
    assert _recommend(_ddd([a], [(a, True, 5, 10)])) is None              # fewer than two drops
    assert _recommend(_ddd([a, b], [(a, True, 5, 12), (b, True, 5, 11)])) == a   # larger decree
    assert _recommend(_ddd([a, b], [(a, True, 4, 11), (b, True, 5, 11)])) == b   # then ballot
    assert _recommend(_ddd([a, b], [(a, True, 6, 11), (b, True, 5, 11)])) == a
    assert _recommend(_ddd([a, b], [(a, False, 6, 11), (b, True, 5, 11)])) == b  # alive only
    assert _recommend(_ddd([a, b], [(a, False, 6, 11), (b, True, 5, 9)])) is None  # behind
    assert _recommend(_ddd([a, b], [(a, True, 6, 8), (b, True, 5, 9)])) is None
