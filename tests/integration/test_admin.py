"""The operator surface of live servers: remote commands (RPC_CLI_CLI_CALL), HTTP (/metrics as
upstream's JSON and as Prometheus text, /configs, /config, /updateConfig,
/replica/data_version), the table env replica.deny_client_request and manual compaction
triggered through the meta's app envs."""
import json
import time
import urllib.error
import urllib.request

import pytest

from pegasus_server import errors
from pegasus_server.errors import RpcError
from pegasus_server.rpc import thrift
from pegasus_server.rpc.client import RpcClient
from pegasus_server.rpc.table import TableClient

from conftest import wait_for
from onebox import META_BASE_PORT, REPLICA_BASE_PORT  # tools/, on the path via conftest

META = ("127.0.0.1", META_BASE_PORT + 1)
META_TEXT = f"127.0.0.1:{META_BASE_PORT + 1}"
REPLICAS = [("127.0.0.1", REPLICA_BASE_PORT + i) for i in (1, 2, 3)]


@pytest.fixture(scope="module")
def rpc():
    c = RpcClient()
    yield c
    c.close()


def cmd(rpc, addr, name, *args):
    return rpc.call(addr, "RPC_CLI_CLI_CALL", thrift.command.command(cmd=name,
                                                                     arguments=list(args)))


def http(addr, path, headers=None):
    req = urllib.request.Request(f"http://{addr[0]}:{addr[1]}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def set_env(rpc, table, key, value):
    ma = thrift.meta_admin
    r = rpc.call(META, "RPC_CM_UPDATE_APP_ENV", ma.configuration_update_app_env_request(
        app_name=table, op=1, keys=[key], values=[value]))
    assert r.err == errors.ERR_OK, r.hint_message


def del_env(rpc, table, key):
    ma = thrift.meta_admin
    r = rpc.call(META, "RPC_CM_UPDATE_APP_ENV", ma.configuration_update_app_env_request(
        app_name=table, op=2, keys=[key]))
    assert r.err == errors.ERR_OK


def envs_on_every_replica(rpc, key, value):
    def check():
        for addr in REPLICAS:
            envs = json.loads(cmd(rpc, addr, "replica.query-app-envs", "2"))
            if not envs or any(e.get(key) != value for e in envs.values()):
                return False
        return True
    return check


# ---------------------------------------------------------------------------- remote commands

def test_help_and_server_info_on_every_process(cluster, rpc):
    for addr in [META] + REPLICAS:
        info = json.loads(cmd(rpc, addr, "server-info"))
        assert info["version"].startswith("pegasus-py") and info["start_time"]
        assert "help" in cmd(rpc, addr, "help")
    text = cmd(rpc, REPLICAS[0], "help")
    for name in ("replica.deny-client", "replica.kill_partition", "replica.trigger-checkpoint",
                 "replica.query-compact", "replica.disable-plog-gc"):
        assert name in text
    assert cmd(rpc, REPLICAS[0], "no-such-command") == "unknown command 'no-such-command'"


def test_common_server_commands(cluster, rpc):
    for addr in [META] + REPLICAS:
        dump = json.loads(cmd(rpc, addr, "config-dump"))
        assert dump["server_list"]["section"] == "meta_server"
        assert "uptime_seconds=" in cmd(rpc, addr, "server-stat")
    counters = json.loads(cmd(rpc, REPLICAS[0], "perf-counters-by-substr", "*put_requests@2."))
    assert counters["result"] == "ok" and len(counters["counters"]) == 8
    assert all(c["name"].startswith("replica*put_requests@2.") for c in counters["counters"])
    by_prefix = json.loads(cmd(rpc, REPLICAS[0], "perf-counters-by-prefix", "server*"))
    assert {c["name"] for c in by_prefix["counters"]} >= {"server*replicas_count@server"}
    assert cmd(rpc, REPLICAS[0], "reset-log-start-level", "LOG_LEVEL_WARNING") == \
        "OK: log level is WARNING"
    assert "unknown log level" in cmd(rpc, REPLICAS[0], "reset-log-start-level", "LOUD")
    assert cmd(rpc, REPLICAS[0], "reset-log-start-level", "INFO") == "OK: log level is INFO"


def test_bool_setters_report_and_set(cluster, rpc):
    addr = REPLICAS[0]
    assert json.loads(cmd(rpc, addr, "replica.verbose-commit-log")) == {
        "error": "ok", "replica.verbose-commit-log": "false"}
    assert json.loads(cmd(rpc, addr, "replica.verbose-commit-log", "TRUE"))[
        "replica.verbose-commit-log"] == "true"
    assert json.loads(cmd(rpc, addr, "replica.verbose-commit-log", "false"))[
        "replica.verbose-commit-log"] == "false"
    assert json.loads(cmd(rpc, addr, "replica.verbose-commit-log", "maybe"))["error"].startswith("ERR")


def test_deny_client_makes_requests_time_out(cluster, rpc):
    t = TableClient([META_TEXT], "temp", timeout=3)
    try:
        assert t.set(b"deny", b"", b"1").error == 0
        for addr in REPLICAS:
            cmd(rpc, addr, "replica.deny-client", "true")
        with pytest.raises(RpcError) as e:
            t.get(b"deny", b"")
        assert e.value.err == errors.ERR_TIMEOUT
    finally:
        for addr in REPLICAS:
            cmd(rpc, addr, "replica.deny-client", "false")
        t.close()
    t = TableClient([META_TEXT], "temp", timeout=10)
    assert t.get(b"deny", b"") == (0, b"1")
    t.close()


def test_trigger_checkpoint_flushes_and_plog_gc_switch(cluster, rpc):
    t = TableClient([META_TEXT], "temp", timeout=10)
    for i in range(50):
        assert t.set(b"ckpt%d" % i, b"", b"v").error == 0
    t.close()
    addr = REPLICAS[1]

    def storage():
        """Memtable bytes and SST files of temp's replicas on the node."""
        doc = json.loads(http(addr, "/metrics?types=replica&attributes=table_id,2"
                                    "&metrics=rdb_memtable_mem_usage_bytes,rdb_total_sst_files"
                                    "&with_metric_fields=name,value")[2])
        return {e["id"]: {m["name"]: m["value"] for m in e["metrics"]} for e in doc["entities"]}
    before = storage()
    assert sum(v["rdb_total_sst_files"] for v in before.values()) == 0
    out = cmd(rpc, addr, "replica.trigger-checkpoint", "2")
    assert out.startswith("triggered checkpoint of 8 replica(s)")
    wait_for(lambda: all(v["rdb_total_sst_files"] >= 1 for v in storage().values()), 30,
             "every replica of temp flushed to an SST file")
    assert "disabled private-log gc of 1 replica(s)" == cmd(rpc, addr, "replica.disable-plog-gc",
                                                            "2.3")
    status = json.loads(cmd(rpc, addr, "replica.query-plog-gc-enabled-status", "2"))
    assert status["2.3"] is False and status["2.4"] is True
    cmd(rpc, addr, "replica.enable-plog-gc", "2.3")
    assert json.loads(cmd(rpc, addr, "replica.query-plog-gc-enabled-status", "2.3")) == {"2.3": True}
    assert cmd(rpc, addr, "replica.query-plog-gc-enabled-status", "x.y").startswith("ERR: invalid")


# ---------------------------------------------------------------------------- HTTP

def test_metrics_json_filters_and_counts(cluster, rpc):
    q = "/metrics?with_metric_fields=name,value&types=replica&attributes=table_id,2" \
        "&metrics=put_requests,get_requests"

    def puts():
        total = 0
        for addr in REPLICAS:
            doc = json.loads(http(addr, q)[2])
            assert doc["role"] == "replica" and doc["port"] == addr[1] and doc["cluster"]
            assert len(doc["entities"]) == 8          # the 8 replicas of temp on every node
            for e in doc["entities"]:
                assert e["type"] == "replica" and e["attributes"]["table_id"] == "2"
                assert {m["name"] for m in e["metrics"]} == {"put_requests", "get_requests"}
                assert all(set(m) == {"name", "value"} for m in e["metrics"])
                total += sum(m["value"] for m in e["metrics"] if m["name"] == "put_requests")
        return total
    before = puts()
    t = TableClient([META_TEXT], "temp", timeout=10)
    for i in range(40):
        assert t.set(b"metric%d" % i, b"", b"v").error == 0
    t.close()
    assert puts() == before + 40                     # counted once, by the primary
    status, ctype, body = http(REPLICAS[0], "/metrics?nonsense=1")
    assert status == 400 and "nonsense" in json.loads(body)["error_message"]
    full = json.loads(http(REPLICAS[0], "/metrics?types=server")[2])
    server = full["entities"][0]
    names = {m["name"] for m in server["metrics"]}
    assert {"resident_mem_usage_mb", "replicas_count", "replicas_primary_count"} <= names
    assert all({"type", "name", "unit", "desc", "value"} == set(m) for m in server["metrics"])
    meta = json.loads(http(META, "/metrics")[2])
    assert meta["role"] == "meta" and meta["entities"]


def test_metrics_prometheus_text(cluster):
    status, ctype, body = http(REPLICAS[0], "/metrics",
                               {"Accept": "text/plain;version=0.0.4;q=1,*/*;q=0.1"})
    assert status == 200 and ctype.startswith("text/plain")
    assert "# TYPE put_requests counter" in body
    line = next(x for x in body.splitlines()
                if x.startswith("put_requests{") and 'table_id="2"' in x)
    assert 'entity="replica"' in line and 'id="2.' in line and 'role="replica"' in line
    assert float(line.rsplit(" ", 1)[1]) >= 0
    assert http(META, "/metrics?format=prometheus")[2].startswith("# HELP")


def test_configs_and_update_config(cluster):
    status, _, body = http(REPLICAS[0], "/configs")
    entries = json.loads(body)
    assert status == 200 and entries["rocksdb_wal_sync"]["section"] == "replication"
    one = json.loads(http(REPLICAS[0], "/config?name=mutation_2pc_min_replica_count")[2])
    assert one["value"] == entries["mutation_2pc_min_replica_count"]["value"]
    assert http(META, "/config?name=nope")[0] == 400
    upd = json.loads(http(META, "/updateConfig?fd_lease_seconds=9")[2])
    assert upd["update_status"].startswith("ERR_NO_PERMISSION")
    paths = json.loads(http(META, "/")[2])
    assert {"/metrics", "/configs", "/version"} <= set(paths)


def test_data_version(cluster):
    status, _, body = http(REPLICAS[0], "/replica/data_version?app_id=2")
    doc = json.loads(body)
    assert status == 200 and doc and all(v["data_version"] == "1" for v in doc.values())
    assert http(REPLICAS[0], "/replica/data_version?app_id=99")[0] == 404
    assert http(REPLICAS[0], "/replica/data_version?app_id=x")[0] == 400


# ---------------------------------------------------------------------------- table envs

def test_deny_client_request_env(cluster, rpc):
    t = TableClient([META_TEXT], "temp", timeout=10)
    assert t.set(b"env-deny", b"", b"1").error == 0
    set_env(rpc, "temp", "replica.deny_client_request", "reconfig*write")
    try:
        wait_for(envs_on_every_replica(rpc, "replica.deny_client_request", "reconfig*write"),
                 60, "the env on every replica (config sync)")
        short = TableClient([META_TEXT], "temp", timeout=1)
        with pytest.raises(RpcError) as e:
            short.set(b"env-deny", b"", b"2")
        assert e.value.err == errors.ERR_INVALID_STATE
        assert short.get(b"env-deny", b"") == (0, b"1")      # reads still pass
        short.close()
    finally:
        del_env(rpc, "temp", "replica.deny_client_request")
    wait_for(envs_on_every_replica(rpc, "replica.deny_client_request", None), 60,
             "the env gone from every replica")
    assert t.set(b"env-deny", b"", b"3").error == 0
    t.close()


def test_manual_compaction_through_app_envs(cluster, rpc):
    trigger = str(int(time.time()))
    set_env(rpc, "temp", "manual_compact.once.trigger_time", trigger)

    def finished():
        for addr in REPLICAS:
            states = json.loads(cmd(rpc, addr, "replica.query-compact", "2"))
            if len(states) != 8 or any(s["status"] != "finished" or
                                       s["last_finish_time"] < int(trigger)
                                       for s in states.values()):
                return False
        return True
    wait_for(finished, 90, "every replica of temp to finish its manual compaction")
