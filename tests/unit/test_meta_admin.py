"""The meta's table administration (meta.md §4.5, §4.12-§4.15), the balancer tunables and the
live-percentage threshold, driven through the sans-IO ``MetaState`` (the remote commands and
dashboards over them: ``test_meta_admin_service.py``)."""
import pytest

from pegasus_server.base import INVALID_ADDRESS, Gpid, RpcAddress
from pegasus_server.config import AppSpec, Config, MetaServerConfig
from pegasus_server.meta import state as state_mod
from pegasus_server.meta.model import AS_CREATING, AS_DROPPING, AS_RECALLING, App, dumps
from pegasus_server.meta.state import CT_ADD_SECONDARY, CT_ASSIGN_PRIMARY, CT_REMOVE, MetaState
from pegasus_server.meta.tables import (MCS_FINISHED, MCS_IDLE, MCS_RUNNING,
                                        UPDATE_MAX_REPLICA_COUNT)
from pegasus_server.meta.store import MemoryMetaStore
from pegasus_server.rpc import thrift

MA = thrift.meta_admin
L2 = thrift.layer2
ME = RpcAddress("127.0.0.1", 34601)
R1, R2, R3, R4 = (RpcAddress("127.0.0.1", 34800 + i) for i in (1, 2, 3, 4))
ONE, THREE = 1, 2           # app ids of the configured tables
G3 = Gpid(THREE, 0)


def _config(**meta):
    meta.setdefault("min_live_node_count_for_unfreeze", 1)
    meta.setdefault("node_live_percentage_threshold_for_update", 0)
    return Config(meta_server=MetaServerConfig(**meta),
                  apps=(AppSpec("one", partition_count=2, max_replica_count=1),
                        AppSpec("three", partition_count=1, max_replica_count=3)))


def _beacon(st, node, now):
    st.on_beacon(thrift.fd.beacon_msg(time=1, from_node=node, to_node=ME), now)


def _state(store=None, nodes=(R1, R2, R3), now=100.0, **meta):
    st = MetaState(_config(**meta), store or MemoryMetaStore(), ME)
    st.load(now)
    for n in nodes:
        _beacon(st, n, now)
    return st


def _apply(st, p, change, now):
    """Play the replica side of a proposal: ``change(cfg)``, ballot + 1, report it."""
    cfg = p.request.config
    change(cfg)
    cfg.ballot += 1
    assert st.on_update_partition_configuration(MA.configuration_update_request(
        info=p.request.info, config=cfg, type=p.request.type, node=p.request.node),
        now).err == "ERR_OK"


def _play(st, p, now):
    """Apply a proposal the way the replicas would end it."""
    t, node = p.request.type, p.request.node
    if t == CT_ASSIGN_PRIMARY:
        _apply(st, p, lambda c: setattr(c, "primary", node), now)
    elif t == CT_ADD_SECONDARY:
        _apply(st, p, lambda c: c.secondaries.append(node), now)
    elif t == CT_REMOVE:
        _apply(st, p, lambda c: c.secondaries.remove(node), now)
    else:
        raise AssertionError(f"unexpected proposal {t}")


def _heal(st, now, rounds=10):
    """Run cure rounds, playing every proposal, until nothing is proposed; the types seen."""
    seen = []
    for i in range(rounds):
        props = st.cure(now + i * 10)
        if not props:
            return seen
        for p in props:
            seen.append((p.request.config.pid, p.request.type))
            _play(st, p, now + i * 10)
    raise AssertionError("the cure does not settle")


def _sync(st, node, now, replicas=()):
    """A config sync of ``node`` reporting ``(pid, ballot, lcd, lpd, compact_status)``."""
    return st.on_config_sync(MA.configuration_query_by_node_request(
        node=node, stored_replicas=[thrift.metadata.replica_info(
            pid=pid, ballot=b, status=0, last_committed_decree=lcd, last_prepared_decree=lpd,
            last_durable_decree=0, app_type="pegasus", disk_tag="", manual_compact_status=mcs)
            for pid, b, lcd, lpd, mcs in replicas]), now)


def _drop(st, name, now=150):
    assert st.drop_app(MA.configuration_drop_app_request(
        app_name=name, options=MA.drop_app_options(success_if_not_exist=False,
                                                   reserve_seconds=1000)), now).err == "ERR_OK"


def _reload(st, now=500):
    st2 = MetaState(st.config, st.store, ME)
    st2.load(now)
    return st2


# ---------------------------------------------------------------------------- RENAME_APP
def _rename(st, old, new):
    return st.rename_app(MA.configuration_rename_app_request(old_app_name=old, new_app_name=new))


def test_rename_renames_persists_and_replicas_learn_it_by_config_sync():
    st = _state()
    _heal(st, 101)
    r = _rename(st, "three", "tri")
    assert (r.err, r.hint_message) == ("ERR_OK", "")
    assert st.query_cfg(L2.query_cfg_request(app_name="three"), False).err == \
        "ERR_OBJECT_NOT_FOUND"
    q = st.query_cfg(L2.query_cfg_request(app_name="tri"), False)
    assert q.err == "ERR_OK" and q.app_id == THREE
    parts = [u for u in _sync(st, st.partition(G3).primary, 200).partitions
             if u.config.pid == G3]
    assert [u.info.app_name for u in parts] == ["tri"]
    assert _reload(st).apps[THREE].app_name == "tri"
    assert _reload(st).names == {"one": ONE, "tri": THREE}


def test_rename_errors():
    st = _state()
    r = _rename(st, "nope", "x")
    assert (r.err, r.hint_message) == ("ERR_APP_NOT_EXIST", "ERROR: app(nope) not exist!")
    r = _rename(st, "three", "one")
    assert (r.err, r.hint_message) == ("ERR_INVALID_PARAMETERS", "ERROR: app(one) already exist!")
    assert _rename(st, "three", "three").err == "ERR_INVALID_PARAMETERS"
    assert _rename(st, "three", "").err == "ERR_INVALID_PARAMETERS"
    _drop(st, "three")
    r = _rename(st, "three", "x")
    assert (r.err, r.hint_message) == ("ERR_APP_DROPPED",
                                       "ERROR: app(three) status can't execute rename.")
    assert st.apps[THREE].app_name == "three"


@pytest.mark.parametrize("status,err", [(AS_CREATING, "ERR_BUSY_CREATING"),
                                        (AS_RECALLING, "ERR_BUSY_CREATING"),
                                        (AS_DROPPING, "ERR_BUSY_DROPPING")])
def test_rename_of_a_table_changing_status(status, err):
    st = _state()
    st.apps[THREE].status = status
    assert _rename(st, "three", "x").err == err


def test_rename_to_the_name_of_a_dropped_table_and_recall_then_conflicts():
    st = _state()
    _drop(st, "one")
    assert _rename(st, "three", "one").err == "ERR_OK"
    r = st.recall_app(MA.configuration_recall_app_request(app_id=ONE, new_app_name=""), 200)
    assert r.err == "ERR_INVALID_PARAMETERS"


# ---------------------------------------------------------------------------- max_replica_count
def _get_rc(st, name):
    return st.get_max_replica_count(MA.configuration_get_max_replica_count_request(app_name=name))


def _set_rc(st, name, n):
    return st.set_max_replica_count(MA.configuration_set_max_replica_count_request(
        app_name=name, max_replica_count=n))


def test_get_max_replica_count():
    st = _state()
    assert (_get_rc(st, "three").err, _get_rc(st, "three").max_replica_count) == ("ERR_OK", 3)
    r = _get_rc(st, "nope")
    assert (r.err, r.max_replica_count, r.hint_message) == ("ERR_APP_NOT_EXIST", 0,
                                                             "app(nope) does not exist")
    st.apps[THREE].partitions[0].max_replica_count = 2
    r = _get_rc(st, "three")
    assert r.err == "ERR_INCONSISTENT_STATE" and "for partition 2.0" in r.hint_message
    _drop(st, "one")
    assert _get_rc(st, "one").err == "ERR_INVALID_STATE"


def test_set_max_replica_count_errors():
    st = _state()
    r = _set_rc(st, "nope", 2)
    assert (r.err, r.old_max_replica_count) == ("ERR_APP_NOT_EXIST", 0)
    for n in (0, 6):
        r = _set_rc(st, "three", n)
        assert (r.err, r.old_max_replica_count) == ("ERR_INVALID_PARAMETERS", 3)
        assert "must be within the range of [min=1, max=5]" in r.hint_message
    r = _set_rc(st, "three", 4)                           # only three nodes are alive
    assert r.err == "ERR_INVALID_PARAMETERS" and "not enough alive replica servers(3)" in \
        r.hint_message
    r = _set_rc(st, "three", 3)
    assert (r.err, r.hint_message) == (
        "ERR_OK", "no need to update max_replica_count since it's not changed")
    st.apps[THREE].partitions[0].max_replica_count = 2
    assert _set_rc(st, "three", 2).err == "ERR_INCONSISTENT_STATE"
    _drop(st, "one")
    r = _set_rc(st, "one", 2)
    assert (r.err, r.old_max_replica_count) == ("ERR_INVALID_STATE", 1)


def test_set_max_replica_count_frozen():
    st = _state(nodes=(R1,), min_live_node_count_for_unfreeze=2)
    r = _set_rc(st, "three", 1)
    assert (r.err, r.old_max_replica_count) == ("ERR_STATE_FREEZED", 3)


def test_set_max_replica_count_changes_app_and_partitions_persisted_and_synced():
    st = _state()
    _heal(st, 101)
    r = _set_rc(st, "three", 2)
    assert (r.err, r.old_max_replica_count) == ("ERR_OK", 3)
    assert st.apps[THREE].max_replica_count == 2 and st.partition(G3).max_replica_count == 2
    assert UPDATE_MAX_REPLICA_COUNT not in st.apps[THREE].envs
    assert _get_rc(st, "three").max_replica_count == 2
    (u,) = [u for u in _sync(st, st.partition(G3).primary, 200).partitions
            if u.config.pid == G3]
    assert (u.info.max_replica_count, u.config.max_replica_count) == (2, 2)
    st2 = _reload(st)
    assert st2.apps[THREE].max_replica_count == 2
    assert st2.partition(G3).max_replica_count == 2
    assert UPDATE_MAX_REPLICA_COUNT not in st2.apps[THREE].envs


def test_interrupted_max_replica_count_update_is_finished_on_load():
    st = _state()
    store = st.store
    app = st.apps[THREE]
    # the crash came after the marker and before the partition was written
    marked = App.from_info_json(app.info_json())
    marked.envs[UPDATE_MAX_REPLICA_COUNT] = "updating;2"
    store.set(f"/apps/{THREE}", dumps(marked.info_json()))
    st2 = _reload(st)
    assert st2.apps[THREE].max_replica_count == 2 and st2.partition(G3).max_replica_count == 2
    assert UPDATE_MAX_REPLICA_COUNT not in st2.apps[THREE].envs
    assert _get_rc(st2, "three").err == "ERR_OK"
    assert UPDATE_MAX_REPLICA_COUNT not in _reload(st2).apps[THREE].envs


def test_lowering_max_replica_count_removes_secondaries_through_the_cure():
    st = _state()
    _heal(st, 101)
    assert _set_rc(st, "three", 2).err == "ERR_OK"
    pc = st.partition(G3)
    (p,) = [p for p in st.cure(200) if p.request.config.pid == G3]
    assert (p.request.type, p.target) == (CT_REMOVE, pc.primary)
    assert p.request.config.max_replica_count == 2        # the primary learns the count here
    _play(st, p, 200)
    assert len(st.partition(G3).secondaries) == 1 and st.cure(210) == []
    # down to one replica: the last secondary goes too, then the single-replica rules apply
    assert _set_rc(st, "three", 1).err == "ERR_OK"
    assert _heal(st, 300) == [(G3, CT_REMOVE)]
    new = st.partition(G3)
    assert new.primary == pc.primary and new.secondaries == []


def test_raising_max_replica_count_adds_secondaries_through_the_cure():
    st = _state(nodes=(R1, R2, R3, R4))
    _heal(st, 101)
    assert _set_rc(st, "three", 4).err == "ERR_OK"
    assert _heal(st, 200) == [(G3, CT_ADD_SECONDARY)]
    assert len(st.partition(G3).members()) == 4
    # a single-replica table becomes a replicated group
    assert _set_rc(st, "one", 2).err == "ERR_OK"
    seen = _heal(st, 300)
    assert sorted(seen) == [(Gpid(ONE, 0), CT_ADD_SECONDARY), (Gpid(ONE, 1), CT_ADD_SECONDARY)]
    assert all(len(pc.members()) == 2 for pc in st.apps[ONE].partitions)


# ---------------------------------------------------------------------------- atomic_idempotent
def _get_ai(st, name):
    return st.get_atomic_idempotent(MA.configuration_get_atomic_idempotent_request(app_name=name))


def _set_ai(st, name, v):
    return st.set_atomic_idempotent(MA.configuration_set_atomic_idempotent_request(
        app_name=name, atomic_idempotent=v))


def test_atomic_idempotent_get_set_persist_and_sync():
    st = _state()
    _heal(st, 101)
    assert (_get_ai(st, "three").err, _get_ai(st, "three").atomic_idempotent) == ("ERR_OK", False)
    r = _set_ai(st, "three", True)
    assert (r.err, r.old_atomic_idempotent) == ("ERR_OK", False)
    assert _get_ai(st, "three").atomic_idempotent is True
    r = _set_ai(st, "three", True)
    assert (r.err, r.old_atomic_idempotent, r.hint_message) == (
        "ERR_OK", True, "no need to update atomic_idempotent since it's unchanged")
    (u,) = [u for u in _sync(st, st.partition(G3).primary, 200).partitions
            if u.config.pid == G3]
    assert u.info.atomic_idempotent is True
    assert _reload(st).apps[THREE].atomic_idempotent is True
    infos = st.list_apps(MA.configuration_list_apps_request(status=0)).infos
    assert [i.atomic_idempotent for i in infos] == [False, True]


def test_atomic_idempotent_errors():
    st = _state()
    assert _get_ai(st, "nope").err == "ERR_APP_NOT_EXIST"
    r = _set_ai(st, "nope", True)
    assert (r.err, r.hint_message) == ("ERR_APP_NOT_EXIST", "app(nope) does not exist")
    _drop(st, "one")
    assert _get_ai(st, "one").err == "ERR_INVALID_STATE"
    assert _set_ai(st, "one", True).err == "ERR_INVALID_STATE"
    frozen = _state(nodes=(R1,), min_live_node_count_for_unfreeze=2)
    r = _set_ai(frozen, "three", True)
    assert (r.err, r.old_atomic_idempotent) == ("ERR_STATE_FREEZED", False)
    assert frozen.apps[THREE].atomic_idempotent is False


def test_stored_apps_without_atomic_idempotent_load_as_false():
    st = _state()
    d = st.apps[THREE].info_json()
    del d["atomic_idempotent"]
    st.store.set(f"/apps/{THREE}", dumps(d))
    assert _reload(st).apps[THREE].atomic_idempotent is False


# ---------------------------------------------------------------------------- manual compaction
def _start(st, name, now=1000.0, **kw):
    return st.start_manual_compact(MA.start_app_manual_compact_request(app_name=name, **kw), now)


def _query(st, name):
    return st.query_manual_compact(MA.query_app_manual_compact_request(app_name=name))


def test_start_manual_compact_sets_the_envs():
    st = _state()
    r = _start(st, "three")
    assert (r.err, r.hint_msg) == ("ERR_OK", "succeed")
    assert st.apps[THREE].envs == {
        "manual_compact.once.target_level": "-1",
        "manual_compact.once.bottommost_level_compaction": "skip",
        "manual_compact.once.trigger_time": "1000"}
    assert _start(st, "three", trigger_time=77, target_level=2, bottommost=True,
                  max_running_count=3).err == "ERR_OK"
    assert st.apps[THREE].envs == {
        "manual_compact.once.target_level": "2",
        "manual_compact.max_concurrent_running_count": "3",
        "manual_compact.once.bottommost_level_compaction": "force",
        "manual_compact.once.trigger_time": "77"}
    assert _reload(st).apps[THREE].envs == st.apps[THREE].envs
    # max_running_count 0 leaves the concurrency env alone
    assert _start(st, "one", max_running_count=0).err == "ERR_OK"
    assert "manual_compact.max_concurrent_running_count" not in st.apps[ONE].envs


def test_start_manual_compact_errors():
    st = _state()
    r = _start(st, "nope")
    assert (r.err, r.hint_msg) == ("ERR_APP_NOT_EXIST", "app nope is not existed")
    r = _start(st, "three", target_level=-2)
    assert r.err == "ERR_INVALID_PARAMETERS" and "target_level(-2)" in r.hint_msg
    r = _start(st, "three", max_running_count=-1)
    assert r.err == "ERR_INVALID_PARAMETERS" and "max_running_count(-1)" in r.hint_msg
    assert st.apps[THREE].envs == {}
    st.update_app_env(MA.configuration_update_app_env_request(
        app_name="three", op=1, keys=["manual_compact.disabled"], values=["true"]))
    r = _start(st, "three")
    assert (r.err, r.hint_msg) == ("ERR_OPERATION_DISABLED", "app three disable manual compaction")
    _drop(st, "one")
    r = _start(st, "one")
    assert (r.err, r.hint_msg) == ("ERR_APP_DROPPED", "app one is not available")


def test_query_manual_compact_progress_from_config_sync():
    st = _state()
    _heal(st, 101)
    pc = st.partition(G3)
    a, b, c = pc.members()
    r = _query(st, "three")
    assert (r.err, r.hint_msg) == ("ERR_INVALID_STATE", "app three is not manual compaction")
    for n in (a, b, c):
        _sync(st, n, 200, [(G3, 1, 0, 0, MCS_IDLE)])
    assert _query(st, "three").err == "ERR_INVALID_STATE"            # all idle
    _sync(st, a, 210, [(G3, 1, 0, 0, MCS_FINISHED)])
    _sync(st, b, 210, [(G3, 1, 0, 0, MCS_RUNNING)])
    r = _query(st, "three")
    assert (r.err, r.hint_msg, r.progress) == ("ERR_OK", "succeed", 33)
    _sync(st, b, 220, [(G3, 1, 0, 0, MCS_FINISHED)])
    _sync(st, c, 220, [(G3, 1, 0, 0, None)])                         # no field: IDLE
    assert _query(st, "three").progress == 66
    _sync(st, c, 230, [(G3, 1, 0, 0, MCS_FINISHED)])
    assert _query(st, "three").progress == 100
    # a new compaction starts from nothing
    assert _start(st, "three").err == "ERR_OK"
    assert _query(st, "three").err == "ERR_INVALID_STATE"


def test_query_manual_compact_ignores_nodes_that_are_not_members():
    st = _state(nodes=(R1, R2, R3, R4))
    _heal(st, 101)
    (outsider,) = {R1, R2, R3, R4} - set(st.partition(G3).members())
    _sync(st, outsider, 200, [(G3, 1, 0, 0, MCS_FINISHED)])
    assert _query(st, "three").err == "ERR_INVALID_STATE"
    _sync(st, st.partition(G3).primary, 200, [(G3, 1, 0, 0, MCS_FINISHED)])
    assert _query(st, "three").progress == 33


def test_query_manual_compact_counts_only_current_members():
    st = _state()
    _heal(st, 101)
    pc = st.partition(G3)
    for n in pc.members():
        _sync(st, n, 200, [(G3, 1, 0, 0, MCS_FINISHED)])
    assert _query(st, "three").progress == 100
    assert _set_rc(st, "three", 2).err == "ERR_OK"
    _heal(st, 210)                                   # one secondary removed
    assert _query(st, "three").progress == 100       # 2 finished of 1 * 2


def test_query_manual_compact_errors():
    st = _state()
    assert _query(st, "nope").err == "ERR_APP_NOT_EXIST"
    _drop(st, "one")
    assert _query(st, "one").err == "ERR_APP_DROPPED"


# ---------------------------------------------------------------------------- DDD diagnose
def _ddd(st, app_id=-1, pidx=-1, hp=False):
    return st.ddd_diagnose(MA.ddd_diagnose_request(pid=Gpid(app_id, pidx)), hp)


def _all_dead(st, now):
    """Every member of G3 leaves (drop order: the two secondaries, then the primary)."""
    pc = st.partition(G3)
    order = [pc.secondaries[0], pc.secondaries[1], pc.primary]
    for victim in order:
        cfg = st.partition(G3).to_thrift()
        cfg.ballot += 1
        if victim == cfg.primary:
            cfg.primary = INVALID_ADDRESS
        else:
            cfg.secondaries = [s for s in cfg.secondaries if s != victim]
        assert st.on_update_partition_configuration(MA.configuration_update_request(
            config=cfg, type=state_mod.CT_DOWNGRADE_TO_INACTIVE, node=victim), now).err == "ERR_OK"
    return order


def test_ddd_diagnose_empty_when_healthy():
    st = _state()
    assert (_ddd(st).err, _ddd(st).partitions) == ("ERR_OK", [])     # new partitions: not DDD
    _heal(st, 101)
    assert _ddd(st).partitions == []
    assert _ddd(st, 99).err == "ERR_APP_NOT_EXIST"


def test_ddd_diagnose_reports_the_reason_and_the_dropped_nodes():
    st = _state()
    _heal(st, 101)
    a, b, c = _all_dead(st, 110)
    (info,) = _ddd(st).partitions
    assert info.config.pid == G3 and info.config.primary.is_invalid
    assert "report" in info.reason
    assert [n.node for n in info.dropped] == [a, b, c]
    assert all(n.is_alive and not n.is_collected and n.ballot == -1 for n in info.dropped)
    assert [n.drop_time_ms for n in info.dropped] == [110000] * 3
    assert info.dropped[0].hp_node is None
    # filters: the table, the partition
    assert len(_ddd(st, THREE).partitions) == 1 and len(_ddd(st, THREE, 0).partitions) == 1
    assert _ddd(st, ONE).partitions == [] and _ddd(st, THREE, 1).partitions == []
    assert _ddd(st, THREE, hp=True).partitions[0].dropped[0].hp_node.port == a.port
    # the last two report (the first sync after a drop does not count): c can be chosen
    for t in (111, 140):
        _sync(st, b, t, [(G3, 3, 10, 10, None)])
        _sync(st, c, t, [(G3, 4, 12, 12, None)])
    assert _ddd(st).partitions == []
    (p,) = [p for p in st.cure(141) if p.request.config.pid == G3]
    assert (p.request.type, p.target) == (CT_ASSIGN_PRIMARY, c)


def test_ddd_diagnose_shows_what_the_nodes_reported_and_who_is_dead():
    st = _state()
    _heal(st, 101)
    a, b, c = _all_dead(st, 110)
    for t in (111, 140):
        _sync(st, b, t, [(G3, 5, 20, 20, None)])     # larger ballot, smaller decrees
        _sync(st, c, t, [(G3, 4, 30, 30, None)])
    (info,) = _ddd(st).partitions
    assert info.reason == "DDD: ballot and committed decree disagree"
    nb, nc = info.dropped[1:]
    assert (nb.is_collected, nb.ballot, nb.last_committed_decree) == (True, 5, 20)
    assert (nc.is_collected, nc.ballot, nc.last_prepared_decree) == (True, 4, 30)
    for n in (a, b):
        _beacon(st, n, 150)
    st.check_nodes(150)                               # c is dead now
    (info,) = _ddd(st, THREE).partitions
    assert f"waiting for {c}" in info.reason
    nc = info.dropped[2]
    assert (nc.is_alive, nc.is_collected, nc.ballot) == (False, False, -1)


def test_ddd_diagnose_single_replica_table_waits_for_its_only_copy():
    st = _state()
    _heal(st, 101)
    owner = st.apps[ONE].partitions[0].primary
    for n in (R1, R2, R3):
        if n != owner:
            _beacon(st, n, 120)
    st.check_nodes(123.5)
    infos = _ddd(st, ONE).partitions
    assert infos and all(i.reason == f"DDD: waiting for {owner}" for i in infos)
    assert all([n.node for n in i.dropped] == [owner] for i in infos)
    _beacon(st, owner, 130)
    assert _ddd(st, ONE).partitions == []


# ---------------------------------------------------------------------------- balancer options
def test_balancer_gets_the_tunables_and_leaves_ignored_tables_out(monkeypatch):
    st = _state(meta_function_level_on_start="lively")
    _heal(st, 101)
    seen = []

    def plan(tables, alive, options=None, disk_load=None):
        seen.append((sorted(tables), options))
        return {}
    monkeypatch.setattr(state_mod.balancer, "plan", plan)
    st.cure(200)
    assert seen[-1] == ([THREE], state_mod.balancer.Options(False, False, False))
    st.tunables.only_move_primary = st.tunables.balancer_in_turn = True
    st.tunables.ignored_apps = {THREE}
    st.cure(210)
    assert len(seen) == 1                             # nothing left to plan: not called
    st.tunables.ignored_apps = set()
    st.cure(220)
    assert seen[-1] == ([THREE], state_mod.balancer.Options(True, False, True))


def test_live_percentage_tunable_freezes():
    st = _state(nodes=(R1, R2, R3, R4))
    for n in (R1, R2):
        _beacon(st, n, 130)
    st.check_nodes(130)                               # R3, R4 dead: 2 of 4 alive
    assert st.effective_level() == 400
    st.tunables.live_percentage = 65
    assert st.effective_level() == 300
