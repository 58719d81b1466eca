"""The meta's sans-IO state: table administration, routing answers, failure detection, cure,
and persistence (reload from the store gives the same state)."""
import pytest

from pegasus_server.base import Gpid, RpcAddress
from pegasus_server.base import INVALID_ADDRESS
from pegasus_server.config import AppSpec, Config, MetaServerConfig
from pegasus_server.meta.state import CT_ASSIGN_PRIMARY, MetaState
from pegasus_server.meta.state import (CT_ADD_SECONDARY, CT_DOWNGRADE_TO_INACTIVE,
                                       CT_UPGRADE_TO_PRIMARY)
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


# ---------------------------------------------------------------- replicated groups (guardian)
def _group_state(nodes=(R1, R2, R3), now=100.0, replica_count=3, **kw):
    cfg = Config(meta_server=MetaServerConfig(min_live_node_count_for_unfreeze=1,
                                              node_live_percentage_threshold_for_update=0),
                 apps=(AppSpec("one", partition_count=2, max_replica_count=1),
                       AppSpec("three", partition_count=1, max_replica_count=replica_count)))
    st = MetaState(cfg, MemoryMetaStore(), ME, **kw)
    st.load(now)
    for n in nodes:
        _beacon(st, n, now)
    return st


def _apply(st, p, cfg_change, now):
    """Play the replica side of a proposal: ``cfg_change(cfg)`` edits the config (ballot + 1
    is added here) and the replica reports it."""
    cfg = p.request.config
    cfg_change(cfg)
    cfg.ballot += 1
    resp = st.on_update_partition_configuration(MA.configuration_update_request(
        info=p.request.info, config=cfg, type=p.request.type, node=p.request.node), now)
    assert resp.err == "ERR_OK"


def _sync(st, node, now, replicas=()):
    return st.on_config_sync(MA.configuration_query_by_node_request(
        node=node, stored_replicas=[thrift.metadata.replica_info(
            pid=pid, ballot=b, status=0, last_committed_decree=lcd, last_prepared_decree=lpd,
            last_durable_decree=0, app_type="pegasus", disk_tag="")
            for pid, b, lcd, lpd in replicas]), now)


G3 = Gpid(2, 0)


def _build_group(st, now=101.0):
    """Assign the primary and two secondaries of table "three"; returns the config."""
    props = st.cure(now)
    for p in props:
        if p.request.config.pid.app_id == 1:
            assert p.request.type == CT_ASSIGN_PRIMARY
            _apply(st, p, lambda c, t=p.target: setattr(c, "primary", t), now)
    (p,) = [p for p in props if p.request.config.pid == G3]
    assert p.request.type == CT_ASSIGN_PRIMARY
    _apply(st, p, lambda c: setattr(c, "primary", p.target), now)
    for _ in range(2):
        (p,) = [p for p in st.cure(now) if p.request.config.pid == G3]
        assert p.request.type == CT_ADD_SECONDARY and p.target == st.partition(G3).primary
        # (the learner's CT_UPGRADE_TO_SECONDARY is folded into the add here)
        _apply(st, p, lambda c: c.secondaries.append(p.request.node), now)
    pc = st.partition(G3)
    assert len(pc.secondaries) == 2 and st.cure(now) == []
    return pc


def test_group_cure_assigns_then_adds_secondaries_and_single_tables_only_get_assign():
    st = _group_state()
    pc = _build_group(st)
    assert len(set(pc.members())) == 3
    # the single-replica table kept the assignment rules and saw nothing but CT_ASSIGN_PRIMARY
    assert all(not p.primary.is_invalid and not p.secondaries for p in st.apps[1].partitions)


def test_group_dead_secondary_removed_through_its_primary():
    st = _group_state()
    pc = _build_group(st)
    victim = pc.secondaries[0]
    for n in pc.members():
        if n != victim:
            _beacon(st, n, 120)
    props = st.check_nodes(123.5)
    # the single-replica partitions on the victim are rewritten by the meta and wait for it
    for p in st.apps[1].partitions:
        assert p.primary != victim and all(q.request.config.pid != p.pid for q in props)
    assert st.partition(G3).to_json() == pc.to_json()       # not rewritten by the meta
    assert [(p.target, p.request.type, p.request.node) for p in props] == [
        (pc.primary, CT_DOWNGRADE_TO_INACTIVE, victim)]
    assert st.cure(124) == []                               # not re-sent at once ...
    (p,) = st.cure(129)                                     # ... but until the primary acts
    assert p.request.type == CT_DOWNGRADE_TO_INACTIVE
    _apply(st, p, lambda c: c.secondaries.remove(victim), 129)
    new = st.partition(G3)
    assert victim not in new.members() and new.last_drops[-1] == victim
    # not an emergency: the guardian waits for the dropped node instead of a new copy
    assert st.cure(140) == [] and "waiting" in st.waiting[G3]


def test_group_dead_primary_rewritten_and_a_secondary_upgraded():
    st = _group_state()
    pc = _build_group(st)
    for n in pc.secondaries:
        _beacon(st, n, 120)
    props = st.check_nodes(123.5)
    new = st.partition(G3)
    assert new.primary.is_invalid and new.ballot == pc.ballot + 1
    assert new.last_drops[-1] == pc.primary
    assert [(p.request.type, p.request.config.pid) for p in props
            if p.request.config.pid == G3] == [(CT_UPGRADE_TO_PRIMARY, G3)]
    assert all(p.request.type == CT_ASSIGN_PRIMARY for p in props if p.request.config.pid != G3)


def _ddd(st, pc, now):
    """All three members of G3 leave; returns the drop order (last two: b, c)."""
    a, b, c = pc.secondaries[0], pc.secondaries[1], pc.primary
    for victim in (a, b):
        cfg = st.partition(G3).to_thrift()
        cfg.ballot += 1
        cfg.secondaries = [s for s in cfg.secondaries if s != victim]
        assert st.on_update_partition_configuration(MA.configuration_update_request(
            config=cfg, type=CT_DOWNGRADE_TO_INACTIVE, node=victim), now).err == "ERR_OK"
    cfg = st.partition(G3).to_thrift()
    cfg.ballot += 1
    cfg.primary = INVALID_ADDRESS
    assert st.on_update_partition_configuration(MA.configuration_update_request(
        config=cfg, type=CT_DOWNGRADE_TO_INACTIVE, node=c), now).err == "ERR_OK"
    assert list(st.partition(G3).last_drops) == [a, b, c]
    return a, b, c


def test_ddd_ignores_the_first_sync_after_a_drop():
    """A config sync sent just before the drop and delivered after it must not count as the
    node's post-drop report: the first sync received after a drop is ignored."""
    st = _group_state()
    pc = _build_group(st)
    _, b, c = _ddd(st, pc, 110)
    # both send a sync each that was on the way at the drop: c's understates its state
    _sync(st, b, 111, [(G3, 3, 10, 10)])
    _sync(st, c, 111, [(G3, 2, 5, 5)])
    assert st.cure(112) == [] and "report" in st.waiting[G3]
    # the next syncs count; the larger ballot wins
    _sync(st, b, 140, [(G3, 3, 10, 10)])
    _sync(st, c, 140, [(G3, 4, 12, 12)])
    (p,) = st.cure(141)
    assert (p.request.type, p.target) == (CT_ASSIGN_PRIMARY, c)


def test_ddd_forgets_reports_when_the_node_dies():
    st = _group_state()
    pc = _build_group(st)
    _, b, c = _ddd(st, pc, 110)
    for n in (b, c):
        _sync(st, n, 111)
        _sync(st, n, 112, [(G3, 3, 10, 10)])
    _beacon(st, b, 130)
    st.check_nodes(135)                       # c silent since 100: dead, its report forgotten
    _beacon(st, c, 136)

    def g3(props):
        return [p for p in props if p.request.config.pid == G3]
    assert g3(st.cure(137)) == [] and "report" in st.waiting[G3]
    _sync(st, c, 138, [(G3, 3, 10, 10)])      # first after its death: ignored
    assert g3(st.cure(139)) == []
    _sync(st, c, 168, [(G3, 3, 10, 10)])
    (p,) = g3(st.cure(169))
    assert p.request.type == CT_ASSIGN_PRIMARY and p.target == c


def test_single_replica_tables_never_get_other_proposals_even_when_replicated_ones_do():
    st = _group_state()
    _build_group(st)
    seen = set()
    for t in (120.0, 123.5, 130.0, 160.0):
        _beacon(st, R2, t)
        _beacon(st, R3, t)
        props = st.check_nodes(t) + st.cure(t)
        seen |= {p.request.type for p in props if p.request.config.pid.app_id == 1}
    assert seen <= {CT_ASSIGN_PRIMARY}


def test_group_upgrade_rotates_away_from_a_secondary_that_never_acts():
    """(sweep seed 1024) A secondary the meta accepted whose learner never finished (its primary
    died first) refuses CT_UPGRADE_TO_PRIMARY forever; after a few unanswered proposals the
    guardian must try the other alive secondary."""
    st = _group_state()
    pc = _build_group(st)
    for n in pc.secondaries:
        _beacon(st, n, 120)
    first = [p for p in st.check_nodes(123.5) if p.request.config.pid == G3]
    assert [p.request.type for p in first] == [CT_UPGRADE_TO_PRIMARY]
    stuck = first[0].request.node
    targets = [stuck]
    t = 123.5
    for _ in range(6):
        t += 6
        for n in pc.secondaries:
            _beacon(st, n, t)
        targets += [p.request.node for p in st.cure(t) if p.request.config.pid == G3]
    assert targets[:3] == [stuck] * 3
    other = [s for s in pc.secondaries if s != stuck][0]
    assert targets[3] == other


def _g3(props):
    return [(p.target, p.request.type, p.request.node) for p in props
            if p.request.config.pid == G3]


def test_group_load_choice_sticks_while_its_proposal_is_out():
    """Regression (CI, test_shell_tables): the primary of a new partition and the node of a new
    secondary are chosen by load; the load changed before the chosen node answered and the next
    round asked another node. Two nodes then proposed themselves as primary, and a primary was
    asked for a learner it had no room for. The choice now stays until it takes effect, its node
    dies, or STICKY_DECISION_SECONDS pass."""
    from pegasus_server.meta.state import STICKY_DECISION_SECONDS
    st = _group_state(replica_count=2)
    props = st.cure(101)
    ((x, t, n),) = _g3(props)
    assert t == CT_ASSIGN_PRIMARY and n == x
    # the single-replica table's partitions all land on x: x is now the most loaded node
    for p in props:
        if p.request.config.pid.app_id == 1:
            _apply(st, p, lambda c: setattr(c, "primary", x), 101)
    assert _g3(st.cure(102)) == []                       # not another node at once ...
    assert _g3(st.cure(107)) == [(x, CT_ASSIGN_PRIMARY, x)]   # ... the same one again
    later = _g3(st.cure(101 + STICKY_DECISION_SECONDS + 1))
    assert len(later) == 1 and later[0][0] != x          # then the load decides again
    # the secondary is chosen by load, and sticks the same way
    st2 = _group_state(replica_count=2)
    props = st2.cure(101)
    (p,) = [p for p in props if p.request.config.pid == G3]
    _apply(st2, p, lambda c: setattr(c, "primary", p.target), 101)
    ((prim, t, y),) = _g3(st2.cure(101))
    assert t == CT_ADD_SECONDARY and prim == p.target and y != prim
    for q in props:
        if q.request.config.pid.app_id == 1:
            _apply(st2, q, lambda c: setattr(c, "primary", y), 101)
    assert _g3(st2.cure(102)) == []
    assert _g3(st2.cure(107)) == [(prim, CT_ADD_SECONDARY, y)]
    # the chosen node dies: another one at once
    for z in (R1, R2, R3):
        if z != y:
            _beacon(st2, z, 120)
    st2.check_nodes(123.5)
    (w,) = [z for z in (R1, R2, R3) if z not in (prim, y)]
    assert _g3(st2.cure(124)) == [(prim, CT_ADD_SECONDARY, w)]
