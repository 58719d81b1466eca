"""The meta service's remote commands (meta.md §7), dashboards (§8) and admin RPC registration,
through ``MetaService``'s command table, HTTP routes and dispatcher handlers (the service is
built but not started: no socket is opened)."""
import json

import pytest

from pegasus_server.base import Gpid, RpcAddress
from pegasus_server.config import AppSpec, Config, MetaServerConfig, ServerConfig
from pegasus_server.meta.service import MetaService
from pegasus_server.rpc import thrift
from pegasus_server.rpc.codec import HttpRequest

MA = thrift.meta_admin
R1, R2, R3 = (RpcAddress("127.0.0.1", 34800 + i) for i in (1, 2, 3))


@pytest.fixture
def svc(tmp_path):
    config = Config(server=ServerConfig(host="127.0.0.1", port=5601),
                    meta_server=MetaServerConfig(min_live_node_count_for_unfreeze=1),
                    apps=(AppSpec("one", partition_count=2, max_replica_count=1),
                          AppSpec("three", partition_count=1, max_replica_count=3)))
    s = MetaService(config, workdir=str(tmp_path))
    s.state.load(100.0)
    s.leading = True
    for n in (R1, R2, R3):
        s.state.on_beacon(thrift.fd.beacon_msg(time=1, from_node=n, to_node=s.address), 100.0)
    yield s
    s.client.close()
    s.store.close()


def _cmd(svc, cmd, *args):
    out = svc.commands.call(cmd, list(args))
    return json.loads(out)


def _http(svc, path, query=""):
    status, ctype, body = svc.dispatcher.routes[path](
        HttpRequest("GET", path, query, {}, b"", "HTTP/1.1"))
    assert ctype == "application/json"
    return status, json.loads(body)


def _assign(svc, now=101.0):
    """Give every partition its members (the replica side of the cure, in short)."""
    st = svc.state
    for _ in range(5):
        props = st.cure(now)
        if not props:
            return
        for p in props:
            cfg = p.request.config
            if p.request.type == 1:
                cfg.primary = p.request.node
            else:
                cfg.secondaries.append(p.request.node)
            cfg.ballot += 1
            assert st.on_update_partition_configuration(MA.configuration_update_request(
                info=p.request.info, config=cfg, type=p.request.type, node=p.request.node),
                now).err == "ERR_OK"


# ---------------------------------------------------------------------------- remote commands
@pytest.mark.parametrize("name,attr", [("meta.lb.only_move_primary", "only_move_primary"),
                                       ("meta.lb.only_primary_balancer", "only_primary_balancer"),
                                       ("meta.lb.balancer_in_turn", "balancer_in_turn")])
def test_balancer_bool_commands(svc, name, attr):
    assert _cmd(svc, name) == {"error": "ok", name: "false"}
    assert _cmd(svc, name, "TRUE") == {"error": "ok", name: "true"}
    assert getattr(svc.tunables, attr) is True and svc.state.tunables is svc.tunables
    assert _cmd(svc, name, "maybe")["error"].startswith("ERR")
    assert _cmd(svc, name, "false")[name] == "false"


def test_ignored_app_list_command(svc):
    assert _cmd(svc, "meta.lb.ignored_app_list", "get") == {"ignored_app_id_list": ""}
    assert _cmd(svc, "meta.lb.ignored_app_list", "set", "3,1") == {"error": "ok"}
    assert svc.state.tunables.ignored_apps == {1, 3}
    assert _cmd(svc, "meta.lb.ignored_app_list", "get") == {"ignored_app_id_list": "1,3"}
    for bad in (("set",), ("set", "a,b"), ("set", "")):
        assert _cmd(svc, "meta.lb.ignored_app_list", *bad) == {"error": "invalid argument"}
    assert svc.tunables.ignored_apps == {1, 3}
    assert _cmd(svc, "meta.lb.ignored_app_list") == {"error": "invalid arguments"}
    assert _cmd(svc, "meta.lb.ignored_app_list", "clear") == {"error": "ok"}
    assert svc.tunables.ignored_apps == set()


def test_get_balance_operation_count_command(svc):
    svc.state.balance_ops = {"move_pri": 1, "copy_pri": 2, "copy_sec": 3, "total": 6}
    cmd = "meta.lb.get_balance_operation_count"
    assert _cmd(svc, cmd) == {"total": 6}
    assert _cmd(svc, cmd, "total") == {"total": 6}
    assert _cmd(svc, cmd, "copy_pri") == {"copy_pri": 2}
    assert _cmd(svc, cmd, "detail") == {"move_pri": 1, "copy_pri": 2, "copy_sec": 3, "total": 6}
    assert _cmd(svc, cmd, "nope") == {"error": "invalid arguments"}
    assert _cmd(svc, cmd, "total", "x") == {"error": "invalid arguments"}


def test_live_percentage_command(svc):
    cmd = "meta.live_percentage"
    assert _cmd(svc, cmd) == {"error": "ok", cmd: "65"}
    assert _cmd(svc, cmd, "0") == {"error": "ok"}
    assert svc.state.tunables.live_percentage == 0
    for bad in ("101", "-1", "x"):
        assert _cmd(svc, cmd, bad)["error"].startswith("ERR: invalid argument")
    assert _cmd(svc, cmd, "1", "2")["error"].startswith("ERR: invalid arguments")
    assert _cmd(svc, cmd, "DEFAULT") == {"error": "ok", cmd: 65}
    assert svc.tunables.live_percentage == 65


def test_live_percentage_survives_a_new_leader_state(svc):
    assert _cmd(svc, "meta.live_percentage", "10") == {"error": "ok"}
    svc._become_leader()
    assert svc.state.tunables.live_percentage == 10
    svc._step_down()


def test_fd_allow_list_command(svc):
    assert _cmd(svc, "fd.allow_list") == {"enabled": False, "allow_list": ""}


def test_help_lists_the_meta_commands(svc):
    out = svc.commands.call("help", [])
    for name in ("meta.lb.only_move_primary", "meta.lb.ignored_app_list", "meta.live_percentage",
                 "meta.lb.get_balance_operation_count", "fd.allow_list"):
        assert name in out


# ---------------------------------------------------------------------------- dashboards
def test_meta_apps_dashboard(svc):
    _assign(svc)
    status, body = _http(svc, "/meta/apps")
    assert status == 200 and sorted(body) == ["general_info", "summary"]
    assert body["general_info"]["2"]["app_name"] == "three"
    assert body["general_info"]["2"]["replica_count"] == "3"
    assert body["general_info"]["1"]["status"] == "AVAILABLE"
    assert body["summary"] == {"total_app_count": "2"}
    status, body = _http(svc, "/meta/apps", "detail")
    assert body["healthy_info"]["2"]["fully_healthy"] == "1"
    assert body["summary"]["fully_healthy_app_count"] == "2"
    assert _http(svc, "/meta/apps", "bogus=1")[0] == 400


def test_meta_app_dashboard(svc):
    _assign(svc)
    status, body = _http(svc, "/meta/app", "name=three")
    assert status == 200 and body == {"general": {"app_name": "three", "app_id": "2",
                                                  "partition_count": "1",
                                                  "max_replica_count": "3"}}
    status, body = _http(svc, "/meta/app", "name=three&detail")
    assert body["replicas"]["0"]["replica_count"] == "3/3"
    assert body["nodes"]["total"] == {"node": "total", "primary": "1", "secondary": "2",
                                      "total": "3"}
    assert body["healthy"]["fully_healthy_partition_count"] == "1"
    status, body = _http(svc, "/meta/app", "name=nope")
    assert status == 404 and "nope" in body["error_message"]
    assert _http(svc, "/meta/app", "")[0] == 400


def test_meta_app_envs_dashboard(svc):
    svc.state.update_app_env(MA.configuration_update_app_env_request(
        app_name="three", op=1, keys=["default_ttl"], values=["60"]))
    assert _http(svc, "/meta/app_envs", "name=three") == (200, {"default_ttl": "60"})
    status, body = _http(svc, "/meta/app_envs", "name=nope")
    assert status == 404 and "error_message" in body


def test_meta_nodes_dashboard(svc):
    _assign(svc)
    status, body = _http(svc, "/meta/nodes", "detail")
    assert status == 200
    assert body["summary"] == {"total_node_count": "3", "alive_node_count": "3",
                               "unalive_node_count": "0"}
    rows = body["details"].values()
    assert sum(int(r["replica_count"]) for r in rows) == 5       # 2 single + 3 replicas
    assert all(r["status"] == "ALIVE" for r in rows)
    status, body = _http(svc, "/meta/nodes")
    assert "replica_count" not in next(iter(body["details"].values()))


def test_dashboards_are_served_by_the_leader_only(svc):
    svc.leading = False
    status, body = _http(svc, "/meta/apps")
    assert status == 500 and "not the leader" in body["error_message"]


# ---------------------------------------------------------------------------- RPC registration
@pytest.mark.parametrize("name,arg,field", [
    ("RPC_CM_RENAME_APP", MA.configuration_rename_app_request(old_app_name="one",
                                                              new_app_name="uno"), "err"),
    ("RPC_CM_GET_MAX_REPLICA_COUNT",
     MA.configuration_get_max_replica_count_request(app_name="three"), "max_replica_count"),
    ("RPC_CM_SET_MAX_REPLICA_COUNT",
     MA.configuration_set_max_replica_count_request(app_name="three", max_replica_count=2),
     "old_max_replica_count"),
    ("RPC_CM_GET_ATOMIC_IDEMPOTENT",
     MA.configuration_get_atomic_idempotent_request(app_name="three"), "atomic_idempotent"),
    ("RPC_CM_SET_ATOMIC_IDEMPOTENT",
     MA.configuration_set_atomic_idempotent_request(app_name="three", atomic_idempotent=True),
     "old_atomic_idempotent"),
    ("RPC_CM_START_MANUAL_COMPACT", MA.start_app_manual_compact_request(app_name="three"),
     "hint_msg"),
    ("RPC_CM_QUERY_MANUAL_COMPACT_STATUS", MA.query_app_manual_compact_request(app_name="three"),
     "hint_msg"),
    ("RPC_CM_DDD_DIAGNOSE", MA.ddd_diagnose_request(pid=Gpid(-1, -1)), "partitions"),
])
def test_admin_rpcs_are_served_by_the_leader(svc, name, arg, field):
    handler = svc.dispatcher.handlers[name]
    resp = handler(None, None, arg)
    assert resp.err != "ERR_SERVICE_NOT_ACTIVE" and getattr(resp, field) is not None
    svc.leading = False
    assert handler(None, None, arg).err == "ERR_FORWARD_TO_OTHERS"
