"""The partition guardian's cure decisions (replication.md §6.2-§6.4) as a pure function."""
from pegasus_server.base import INVALID_ADDRESS, Gpid, RpcAddress
from pegasus_server.meta import guardian as gd
from pegasus_server.meta.model import PartitionConfig

A, B, C, D, E = (RpcAddress(f"10.0.0.{i}", 34801) for i in range(1, 6))
PID = Gpid(1, 0)


def pc(primary=INVALID_ADDRESS, secondaries=(), drops=(), lcd=0, max_rc=3):
    return PartitionConfig(PID, 5, max_rc, primary, list(secondaries), list(drops), lcd)


def view(alive=(A, B, C, D, E), now=1000.0, **kw):
    return gd.GuardianView(now=now, alive=frozenset(alive), **kw)


def act(p, v):
    a = gd.cure(p, v)
    return None if a is None else (a.type, a.target, a.node)


def test_new_partition_assigns_the_node_with_fewest_primaries():
    v = view(primary_count={A: 2, B: 1, C: 1, D: 3, E: 5}, table_replica_count={B: 2, C: 1})
    assert act(pc(), v) == (gd.CT_ASSIGN_PRIMARY, C, C)
    assert act(pc(), view(alive=())) is None


def test_no_primary_upgrades_the_least_loaded_alive_secondary():
    v = view(alive=(B, C), primary_count={B: 3, C: 1})
    assert act(pc(secondaries=(A, B, C)), v) == (gd.CT_UPGRADE_TO_PRIMARY, C, C)
    # secondaries exist but all are dead: wait, never assign elsewhere
    d = gd.decide(pc(secondaries=(A,), drops=(B,)), view(alive=(B, C)))
    assert d.action is None and "dead" in d.waiting


def test_add_secondary_emergency_picks_least_loaded_non_member():
    # no dropped node at all -> emergency -> least partitions of this table, then overall
    v = view(table_replica_count={C: 3, D: 1, E: 1}, replica_count={D: 9, E: 2})
    assert act(pc(A, (B,)), v) == (gd.CT_ADD_SECONDARY, A, E)


def test_add_secondary_waits_for_recently_dropped_node():
    p = pc(A, (B,), drops=(C,))
    v = view(alive=(A, B, D), drop_times={C: 990.0}, replica_assign_delay=600)
    d = gd.decide(p, v)
    assert d.action is None and "waiting for the dropped node" in d.waiting
    # the dropped node is back: it gets its replica again
    assert act(p, view(drop_times={C: 990.0})) == (gd.CT_ADD_SECONDARY, A, C)
    # gone too long: emergency, someone else
    assert act(p, view(alive=(A, B, D), now=2000.0, drop_times={C: 990.0})) == \
        (gd.CT_ADD_SECONDARY, A, D)


def test_add_secondary_emergency_when_below_min_2pc():
    p = pc(A, (), drops=(B, C))
    v = view(alive=(A, B, D, E), drop_times={B: 995.0, C: 999.0}, min_2pc=2)
    # emergency: newest alive dropped node first (C is dead, B is alive)
    assert act(p, v) == (gd.CT_ADD_SECONDARY, A, B)


def test_black_listed_dropped_node_is_skipped():
    p = pc(A, (B,), drops=(C,))
    v = view(drop_times={C: 999.0}, black_list=frozenset({C}),
             table_replica_count={D: 0, E: 1})
    assert act(p, v) == (gd.CT_ADD_SECONDARY, A, D)


def test_too_many_secondaries_removes_the_most_loaded():
    p = pc(A, (B, C, D))
    assert act(p, view(replica_count={B: 1, C: 7, D: 3})) == (gd.CT_REMOVE, A, C)
    assert act(pc(A, (B, C)), view()) is None          # healthy


def test_ddd_single_drop_waits_for_it():
    p = pc(drops=(C,))
    assert act(p, view(alive=(A, B))) is None
    assert act(p, view(alive=(A, C))) == (gd.CT_ASSIGN_PRIMARY, C, C)


def test_ddd_needs_both_last_drops_alive_and_reported():
    p = pc(drops=(A, B, C), lcd=10)
    assert "come back" in gd.decide(p, view(alive=(A, C, D))).waiting
    assert "report" in gd.decide(p, view(alive=(B, C),
                                         reported={C: gd.ReplicaState(7, 10, 12)})).waiting
    rep = {B: gd.ReplicaState(6, 10, 11), C: gd.ReplicaState(7, 10, 12)}
    assert act(p, view(alive=(B, C), reported=rep)) == (gd.CT_ASSIGN_PRIMARY, C, C)
    # larger ballot with a smaller known LCD, but it prepared past the other's LCD: its LCD is
    # only stale knowledge (deviation from upstream, see the module docstring) -> chosen
    lazy = {B: gd.ReplicaState(6, 11, 11), C: gd.ReplicaState(7, 10, 12)}
    assert act(p, view(alive=(B, C), reported=lazy)) == (gd.CT_ASSIGN_PRIMARY, C, C)
    # larger ballot that does not even hold the other's committed decree: inconsistent, wait
    bad = {B: gd.ReplicaState(6, 13, 13), C: gd.ReplicaState(7, 10, 12)}
    assert "disagree" in gd.decide(p, view(alive=(B, C), reported=bad)).waiting
    # nobody holds the partition's committed decree
    short = {B: gd.ReplicaState(6, 5, 6), C: gd.ReplicaState(7, 6, 8)}
    assert "every committed" in gd.decide(p, view(alive=(B, C), reported=short)).waiting
    # one of them has no replica (ballot -1): the other is chosen if it covers everything
    one = {B: gd.ReplicaState.absent(), C: gd.ReplicaState(7, 10, 12)}
    assert act(p, view(alive=(B, C), reported=one)) == (gd.CT_ASSIGN_PRIMARY, C, C)
    none = {B: gd.ReplicaState.absent(), C: gd.ReplicaState.absent()}
    assert "neither" in gd.decide(p, view(alive=(B, C), reported=none)).waiting


def test_ddd_tie_breaks_on_lcd_then_prepared():
    p = pc(drops=(B, C))
    rep = {B: gd.ReplicaState(7, 12, 12), C: gd.ReplicaState(7, 10, 13)}
    assert act(p, view(reported=rep)) == (gd.CT_ASSIGN_PRIMARY, B, B)
    rep = {B: gd.ReplicaState(7, 10, 14), C: gd.ReplicaState(7, 10, 13)}
    assert act(p, view(reported=rep)) == (gd.CT_ASSIGN_PRIMARY, B, B)
