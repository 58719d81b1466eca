"""The meta's sans-IO state: table administration, routing answers, failure detection, cure,
and persistence (reload from the store gives the same state)."""
import pytest

from pegasus_server.base import Gpid, RpcAddress
from pegasus_server.config import AppSpec, Config, MetaServerConfig
from pegasus_server.meta.state import CT_ASSIGN_PRIMARY, MetaState
from pegasus_server.meta.store import LocalMetaStore, MemoryMetaStore
from pegasus_server.rpc import thrift

MA = thrift.meta_admin
L2 = thrift.layer2
ME = RpcAddress("127.0.0.1", 34601)
R1, R2, R3 = (RpcAddress("127.0.0.1", 34800 + i) for i in (1, 2, 3))


def _config(**meta):
    meta.setdefault("min_live_node_count_for_unfreeze", 1)
    return Config(meta_server=MetaServerConfig(**meta),
                  apps=(AppSpec("stat", partition_count=4, max_replica_count=1),
                        AppSpec("temp", partition_count=8, max_replica_count=1)))


def _beacon(st, node, now):
    return st.on_beacon(thrift.fd.beacon_msg(time=1, from_node=node, to_node=ME), now)


def _state(store=None, nodes=(R1, R2, R3), now=100.0, **meta):
    st = MetaState(_config(**meta), store or MemoryMetaStore(), ME)
    st.load(now)
    for n in nodes:
        _beacon(st, n, now)
    return st


def _assign_all(st, now):
    """Play the replica side of every proposal: accept CT_ASSIGN_PRIMARY."""
    for p in st.cure(now):
        assert p.request.type == CT_ASSIGN_PRIMARY
        cfg = p.request.config
        cfg.ballot += 1
        cfg.primary = p.target
        resp = st.on_update_partition_configuration(MA.configuration_update_request(
            info=p.request.info, config=cfg, type=CT_ASSIGN_PRIMARY, node=p.target))
        assert resp.err == "ERR_OK"


def test_default_tables_created_in_sorted_order():
    st = _state()
    r = st.list_apps(MA.configuration_list_apps_request(status=0))
    assert [(i.app_id, i.app_name, i.partition_count) for i in r.infos] == [
        (1, "stat", 4), (2, "temp", 8)]


def test_query_cfg_before_and_after_assignment():
    st = _state()
    q = st.query_cfg(L2.query_cfg_request(app_name="temp", partition_indices=[]), False)
    assert q.err == "ERR_OK" and q.is_stateful and len(q.partitions) == 8
    assert all(p.ballot == 0 and p.primary.is_invalid for p in q.partitions)
    _assign_all(st, 101)
    q = st.query_cfg(L2.query_cfg_request(app_name="temp", partition_indices=[5, 99, 2]), False)
    assert [p.pid for p in q.partitions] == [Gpid(2, 5), Gpid(2, 2)]
    assert all(p.ballot == 1 and not p.primary.is_invalid for p in q.partitions)
    assert all(p.hp_primary is None for p in q.partitions)          # D1: no hp_* by default
    q = st.query_cfg(L2.query_cfg_request(app_name="temp", partition_indices=[]), True)
    assert q.partitions[0].hp_primary.port == q.partitions[0].primary.port
    counts = {}
    for app in ("stat", "temp"):
        for p in st.query_cfg(L2.query_cfg_request(app_name=app), False).partitions:
            counts[p.primary] = counts.get(p.primary, 0) + 1
    assert sorted(counts.values()) == [4, 4, 4]                      # spread evenly


def test_query_cfg_unknown_table():
    st = _state()
    q = st.query_cfg(L2.query_cfg_request(app_name="nope"), False)
    assert q.err == "ERR_OBJECT_NOT_FOUND" and not q.is_stateful and q.partitions == []


def _create(st, name, pc=4, rc=1, **opts):
    return st.create_app(MA.configuration_create_app_request(
        app_name=name, options=MA.create_app_options(partition_count=pc, replica_count=rc,
                                                     app_type="pegasus", is_stateful=True,
                                                     envs=opts.pop("envs", {}), **opts)), 200)


def test_create_checks():
    st = _state()
    assert _create(st, "t1").err == "ERR_OK"
    assert _create(st, "t1").err == "ERR_APP_EXIST"
    assert _create(st, "t1", success_if_exist=True).appid == 3
    assert _create(st, "t1", pc=8, success_if_exist=True).err == "ERR_INVALID_PARAMETERS"
    assert _create(st, "t2", pc=0).err == "ERR_INVALID_PARAMETERS"
    assert _create(st, "t2", rc=4).err == "ERR_INVALID_PARAMETERS"   # more than alive nodes
    assert _create(st, "t2", rc=6).err == "ERR_INVALID_PARAMETERS"


def test_create_frozen_below_min_live_nodes():
    st = _state(nodes=(R1,), min_live_node_count_for_unfreeze=3)
    assert _create(st, "t1").err == "ERR_STATE_FREEZED"
    assert st.cure(300) == []


def test_drop_recall_and_recreate_same_name():
    st = _state()
    _assign_all(st, 101)
    drop = MA.configuration_drop_app_request(app_name="temp",
                                             options=MA.drop_app_options(success_if_not_exist=False,
                                                                         reserve_seconds=60))
    assert st.drop_app(drop, 200).err == "ERR_OK"
    assert st.drop_app(drop, 200).err == "ERR_APP_NOT_EXIST"
    q = st.query_cfg(L2.query_cfg_request(app_name="temp"), False)
    assert q.err == "ERR_OBJECT_NOT_FOUND"
    avail = st.list_apps(MA.configuration_list_apps_request(status=1)).infos
    assert [i.app_name for i in avail] == ["stat"]
    all_ = st.list_apps(MA.configuration_list_apps_request(status=0)).infos
    assert [i.status for i in all_] == [1, 6]
    # recall within the reserve window keeps id and partitions, and the cure re-assigns the
    # primaries to the nodes that had them (their data is there)
    old = {p.pid: p.last_drops[-1] for p in st.apps[2].partitions}
    r = st.recall_app(MA.configuration_recall_app_request(app_id=2, new_app_name=""), 230)
    assert r.err == "ERR_OK" and r.info.app_name == "temp"
    props = st.cure(231)
    assert {p.request.config.pid: p.target for p in props if p.request.config.pid.app_id == 2} == old
    # a dropped name is re-creatable at once, with a new id
    assert st.drop_app(drop, 240).err == "ERR_OK"
    assert _create(st, "temp").appid == 3
    assert st.recall_app(MA.configuration_recall_app_request(app_id=2, new_app_name=""),
                         250).err == "ERR_INVALID_PARAMETERS"
    assert st.recall_app(MA.configuration_recall_app_request(app_id=2, new_app_name="old"),
                         400).err == "ERR_APP_NOT_EXIST"   # reserve window over


def test_list_apps_pattern_match():
    st = _state()
    req = MA.configuration_list_apps_request(status=0, app_name_pattern="te", match_type=4)
    assert [i.app_name for i in st.list_apps(req).infos] == ["temp"]
    req.match_type = 6
    assert st.list_apps(req).err == "ERR_NOT_IMPLEMENTED"


def test_app_envs():
    st = _state()
    upd = MA.configuration_update_app_env_request
    assert st.update_app_env(upd(app_name="temp", op=1, keys=["default_ttl"], values=["86400"])
                             ).err == "ERR_OK"
    assert st.update_app_env(upd(app_name="temp", op=1, keys=["no.such"], values=["1"])
                             ).err == "ERR_INVALID_PARAMETERS"
    assert st.update_app_env(upd(app_name="nope", op=1, keys=["default_ttl"], values=["1"])
                             ).err == "ERR_APP_NOT_EXIST"
    st.update_app_env(upd(app_name="temp", op=1, keys=["manual_compact.disabled",
                                                        "manual_compact.once.target_level"],
                          values=["true", "1"]))
    st.update_app_env(upd(app_name="temp", op=3, clear_prefix="manual_compact"))
    assert st.apps[2].envs == {"default_ttl": "86400"}
    r = st.update_app_env(upd(app_name="temp", op=2, keys=["default_ttl", "x"]))
    assert r.err == "ERR_OK" and st.apps[2].envs == {}


def test_failure_detector_and_reassignment_waits_for_data_owner():
    st = _state(now=100)
    _assign_all(st, 100)
    owned = [p.pid for a in st.apps.values() for p in a.partitions if p.primary == R1]
    for n in (R2, R3):
        _beacon(st, n, 120)
    st.check_nodes(123.5)                # R1 silent for 23.5 s > grace 22 s
    assert [n.address for n in st.nodes.values() if not n.alive] == [R1]
    for a in st.apps.values():
        for p in a.partitions:
            if p.pid in owned:
                assert p.primary.is_invalid and p.last_drops[-1] == R1 and p.ballot == 2
    # single replica: the partition waits for its only copy instead of starting empty elsewhere
    assert [p for p in st.cure(124) if p.request.config.pid in owned] == []
    _beacon(st, R1, 130)
    props = [p for p in st.cure(131) if p.request.config.pid in owned]
    assert sorted(p.request.config.pid for p in props) == sorted(owned)
    assert all(p.target == R1 for p in props)


def test_update_partition_configuration_ballot_rules():
    st = _state()
    p = st.cure(101)[0]
    cfg = p.request.config
    cfg.primary = p.target
    req = MA.configuration_update_request(info=p.request.info, config=cfg,
                                          type=CT_ASSIGN_PRIMARY, node=p.target)
    cfg.ballot = 5
    assert st.on_update_partition_configuration(req).err == "ERR_INVALID_VERSION"
    cfg.ballot = 1
    assert st.on_update_partition_configuration(req).err == "ERR_OK"
    assert st.on_update_partition_configuration(req).err == "ERR_OK"   # duplicate resend


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_state_survives_reload(tmp_path, kind):
    store = LocalMetaStore(str(tmp_path)) if kind == "local" else MemoryMetaStore()
    st = _state(store=store)
    _assign_all(st, 101)
    _create(st, "extra", pc=2)
    st.update_app_env(MA.configuration_update_app_env_request(
        app_name="extra", op=1, keys=["default_ttl"], values=["5"]))
    st.control_meta(MA.configuration_meta_control_request(level=500))
    st2 = MetaState(_config(), store, ME)
    st2.load(500)
    assert {a.app_name: (a.app_id, a.partition_count, a.envs) for a in st2.apps.values()} == {
        a.app_name: (a.app_id, a.partition_count, a.envs) for a in st.apps.values()}
    for app_id, app in st.apps.items():
        assert [p.to_json() for p in st2.apps[app_id].partitions] == \
            [p.to_json() for p in app.partitions]
    assert st2.level == 500
    assert {n.address for n in st2.nodes.values() if n.alive} == {R1, R2, R3}


def test_config_sync_lists_the_nodes_partitions():
    st = _state()
    _assign_all(st, 101)
    r = st.on_config_sync(MA.configuration_query_by_node_request(node=R2, stored_replicas=[]), 102)
    assert r.err == "ERR_OK" and len(r.partitions) == 4
    assert all(u.config.primary == R2 for u in r.partitions)
    unknown = RpcAddress("127.0.0.1", 40000)
    assert st.on_config_sync(MA.configuration_query_by_node_request(node=unknown), 102).err == \
        "ERR_OBJECT_NOT_FOUND"
