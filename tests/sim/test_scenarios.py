"""Scripted failure scenarios on the simulated cluster (replication.md §3.5, §6, §7; meta.md §6).

Every step of every scenario also runs the per-event invariants of ``Checker`` (at most one
serving primary, identical committed prefixes, contiguous applies, acked writes committed)."""
from pegasus_server.base import Gpid
from pegasus_server.replica import events as ev
from pegasus_server.replica.pacifica import Options
from pegasus_server.rpc import thrift
from tests.sim.cluster import CLIENT, META, RPC_PUT


G0 = Gpid(1, 0)


def _writes(sim, n, gpid=None, gap=0.02):
    for _ in range(n):
        sim.client.write(gpid)
        sim.run_for(gap)


def _primary(sim, gpid=G0):
    return sim.nodes[sim.meta_config(gpid).primary]


def _heal_and_check(sim, timeout=400):
    sim.bus.heal()
    sim.bus.drop_rate = sim.bus.dup_rate = 0.0
    if not sim.meta.alive:
        sim.meta.restart()
    for a, n in sim.nodes.items():
        if not n.alive:
            sim.restart(a)
    sim.run_until(sim.all_healthy, timeout, "all partitions healthy after heal")
    _writes(sim, 5)                 # commit points travel with the next prepares
    sim.run_for(15)
    sim.client.expire()
    sim.checker.check_final()


def _ready(sim, **kw):
    sim.run_until(sim.all_healthy, 60, "initial health")
    return sim


def test_primary_dies_mid_2pc(make_sim):
    sim = _ready(make_sim(seed=11, partitions=1))
    _writes(sim, 10)
    sim.run_for(1)
    assert len(sim.client.acked) == 10
    old = _primary(sim)
    secs = [sim.nodes[a] for a in sim.meta_config(G0).secondaries]
    before = old.cores[G0].last_prepared_decree
    rid = sim.client.write(G0)
    # let the prepare reach and be logged by both secondaries, then kill the primary before
    # it can commit and answer
    sim.run_until(lambda: all((s.cores[G0].plist.get(before + 1) or 0) and
                              s.cores[G0].plist.get(before + 1).logged for s in secs), 1,
                  "secondaries logged the in-flight mutation")
    assert old.cores[G0].last_committed_decree == before
    sim.crash(old.addr)
    assert rid in sim.client.pending
    t_crash = sim.now
    sim.run_until(lambda: sim.serving_primary(G0) is not None, 60, "a new primary")
    assert sim.now - t_crash > 20            # only after the dead node's lease surely ran out
    new = sim.serving_primary(G0)
    assert new.addr in {s.addr for s in secs}
    # reconciliation re-proposed and committed the in-flight mutation: it is kept
    sim.run_for(1)
    assert new.cores[G0].last_committed_decree >= before + 1
    key = sim.client.pending[rid][1]
    assert new.storages[G0].read("RPC_RRDB_RRDB_GET", key).error == 0
    _writes(sim, 5, G0)
    sim.run_for(1)
    assert len(sim.client.acked) == 15       # writable again with two members
    _heal_and_check(sim)
    assert sim.checker.max_serving == 1


def test_secondary_dies_and_returns(make_sim):
    sim = _ready(make_sim(seed=12, partitions=1))
    _writes(sim, 5)
    pc = sim.meta_config(G0)
    victim = pc.secondaries[0]
    sim.crash(victim)
    _writes(sim, 20)                # the first stall until the prepare timeout removes it
    sim.run_for(5)
    pc = sim.meta_config(G0)
    assert victim not in pc.members() and victim in pc.last_drops
    assert len(pc.secondaries) == 1
    n_acked = len(sim.client.acked)
    assert n_acked >= 20
    # not an emergency (recent drop): the guardian waits for the dropped node, no new learner
    sim.run_for(30)
    assert len(sim.meta_config(G0).secondaries) == 1
    sim.restart(victim)
    sim.run_until(sim.all_healthy, 120, "the returned node re-added")
    assert victim in sim.meta_config(G0).secondaries
    _heal_and_check(sim)


def test_dropped_node_gone_for_long_gets_replaced(make_sim):
    sim = _ready(make_sim(seed=13, partitions=1, nodes=4, replica_assign_delay=60))
    pc = sim.meta_config(G0)
    victim = pc.secondaries[1]
    sim.crash(victim)
    _writes(sim, 10)
    sim.run_until(sim.all_healthy, 200, "a replacement secondary")
    pc = sim.meta_config(G0)
    assert victim not in pc.members() and len(pc.members()) == 3
    _heal_and_check(sim)


def test_primary_partitioned_from_meta(make_sim):
    sim = _ready(make_sim(seed=14, partitions=1))
    _writes(sim, 5)
    old = _primary(sim)
    sim.bus.isolate(old.addr, [META])
    t0 = sim.now
    serving_until = None
    new_from = None
    while sim.now - t0 < 60:
        sim.client.write(G0)
        sim.run_for(0.5)
        if old.cores[G0].is_serving(sim.now):
            serving_until = sim.now
        p = sim.serving_primary(G0)
        if p is not None and p is not old and new_from is None:
            new_from = sim.now
    assert serving_until is not None and new_from is not None
    assert serving_until < new_from                       # handover, never overlap
    assert serving_until - t0 <= 20.5                     # lease: 20 s after the last ack
    assert not old.cores[G0].is_serving(sim.now)
    assert old.cores[G0].status == ev.PS_INACTIVE
    _heal_and_check(sim)
    assert sim.checker.max_serving == 1


def _write_until_healthy(sim, gpid, limit=200):
    """Write every 50 ms until every partition is healthy again (bounded in simulated time)."""
    t0 = sim.now
    while not sim.all_healthy():
        sim.client.write(gpid)
        sim.run_for(0.05)
        assert sim.now - t0 < limit, sim.describe()


def test_learner_catches_up_under_writes_from_checkpoint(make_sim):
    opts = Options(group_check_interval=10.0, max_mutation_count_in_prepare_list=30)
    sim = _ready(make_sim(seed=15, partitions=1, options=opts, checkpoint_interval=2.0,
                          log_gc_keep=2))
    victim = sim.meta_config(G0).secondaries[0]
    sim.crash(victim)
    _writes(sim, 150, G0, gap=0.05)
    sim.restart(victim)
    _write_until_healthy(sim, G0)   # keep writing while it learns
    assert any("installed checkpoint" in t and str(victim) in t for t in sim.trace), \
        "expected the learner to take the LT_APP path"
    _writes(sim, 20, G0)
    _heal_and_check(sim)
    n = sim.nodes[victim]
    assert n.storages[G0].last_committed_decree >= 150


def test_learner_catches_up_from_log(make_sim):
    opts = Options(group_check_interval=10.0, max_mutation_count_in_prepare_list=30)
    sim = _ready(make_sim(seed=16, partitions=1, options=opts))
    victim = sim.meta_config(G0).secondaries[0]
    sim.crash(victim)
    _writes(sim, 80, G0, gap=0.05)
    sim.restart(victim)
    _write_until_healthy(sim, G0)
    assert any("learn response 3" in t for t in sim.trace), "expected an LT_LOG round"
    _heal_and_check(sim)


def test_meta_restarts(make_sim):
    sim = _ready(make_sim(seed=17, partitions=2))
    _writes(sim, 10)
    # short outage: leases hold, writes go on
    sim.meta.crash()
    _writes(sim, 10)
    sim.run_for(5)
    assert len(sim.client.acked) >= 15
    sim.meta.restart()
    sim.run_for(10)
    # long outage: every node loses its lease; nobody serves; then everything comes back
    sim.meta.crash()
    sim.run_for(40)
    assert all(sim.serving_primary(g) is None for g in sim.gpids())
    sim.meta.restart()
    sim.run_until(sim.all_healthy, 120, "health after the meta came back")
    before = len(sim.client.acked)
    _writes(sim, 10)
    sim.run_for(1)
    assert len(sim.client.acked) == before + 10
    _heal_and_check(sim)


def test_primary_restart_fences_with_new_ballot(make_sim):
    sim = _ready(make_sim(seed=18, partitions=1))
    _writes(sim, 10)
    old = _primary(sim)
    b0 = sim.meta_config(G0).ballot
    sim.crash(old.addr)
    sim.run_for(2)
    sim.restart(old.addr)          # back before the meta noticed: it is still primary there
    sim.run_until(sim.all_healthy, 60, "the restarted primary serving again")
    pc = sim.meta_config(G0)
    assert pc.primary == old.addr and pc.ballot > b0
    assert any("reports 9" in t for t in sim.trace)     # CT_PRIMARY_FORCE_UPDATE_BALLOT
    _heal_and_check(sim)


def test_all_replicas_die_ddd_waits_for_the_last(make_sim):
    sim = _ready(make_sim(seed=19, partitions=1, nodes=3))
    _writes(sim, 10)
    pc = sim.meta_config(G0)
    s1, s2 = pc.secondaries
    p = pc.primary
    sim.crash(s1)
    _writes(sim, 5)
    sim.run_for(30)
    sim.crash(s2)
    _writes(sim, 5)
    sim.run_for(30)
    sim.crash(p)
    sim.run_for(40)
    pc = sim.meta_config(G0)
    assert pc.primary.is_invalid and not pc.secondaries
    assert list(pc.last_drops[-3:]) == [s1, s2, p]
    # only an unrelated node and the oldest drop come back: the guardian must keep waiting
    sim.restart(s1)
    sim.run_for(60)
    assert sim.meta_config(G0).primary.is_invalid, "DDD must not pick a stale replica"
    sim.restart(s2)
    sim.restart(p)
    _heal_and_check(sim)
    assert sim.meta_config(G0).primary in (p, s2)


def test_stalled_primary_does_not_serve_after_resume(make_sim):
    """A primary frozen longer than the grace period (GC / VM stall) resumes with client writes
    queued for it; the meta has moved on, and only its own lease check keeps it from serving
    them before its lease timer runs."""
    sim = _ready(make_sim(seed=20, partitions=1))
    _writes(sim, 5)
    old = _primary(sim)
    old.pause(30)
    sim.run_for(29)
    new = sim.serving_primary(G0)
    assert new is not None and new is not old
    # clients that still route to the old primary: their writes wait in its socket buffers
    rids = [sim.client.write(G0) for _ in range(3)]      # routed to the new primary
    stale = []
    for i in range(3):                   # clients that still route to the old primary
        sim.client.next_id += 1
        rid = sim.client.next_id
        key = f"stale{i}".encode()
        sim.client.pending[rid] = (G0, key, b"stale", sim.now + 5)
        sim.bus.send(CLIENT, old.addr, ("client_write", G0, rid, RPC_PUT, thrift.rrdb.update_request(
            key=key, value=b"stale", expire_ts_seconds=0)))
        stale.append((rid, key))
    sim.run_for(0.5)                     # still paused: nothing answered
    assert all(r in sim.client.pending for r, _ in stale)
    sim.run_for(1.0)                     # resumed: the stale writes are refused, not applied
    assert all(r not in sim.client.pending for r, _ in stale)
    assert not any((G0, k) in sim.client.acked or (G0, k) in sim.checker.key_decree
                   for _, k in stale)
    assert all(r not in sim.client.pending for r in rids)
    assert not old.cores[G0].is_serving(sim.now)
    assert rids and sim.checker.max_serving == 1
    _heal_and_check(sim)


def _lose_config_syncs(sim, addr):
    """Fault injection: every config sync ``addr`` sends is lost (its beacons still arrive, so
    the meta keeps it alive). Returns a function that ends the loss."""
    send = sim.bus.send
    on = [True]

    def lossy(src, dst, payload):
        if on[0] and src == addr and dst == META and payload[0] == "config_sync":
            sim.bus.dropped += 1
            return
        send(src, dst, payload)
    sim.bus.send = lossy

    def stop():
        on[0] = False
    return stop


def test_ddd_ignores_replica_reports_from_before_the_drop(make_sim):
    """(sweep seed 1186) The primary loses both secondaries, commits alone, then is cut from the
    meta and declared dead: the partition is DDD with the last drops [secondary, primary]. The
    only report the meta holds from the old primary predates all of that (its config syncs got
    lost), and understates its ballot and decrees. Choosing by it would make the secondary the
    new primary and overwrite decrees the old primary committed and acknowledged; the meta must
    wait for a report sent after the drop."""
    sim = _ready(make_sim(seed=21, partitions=1, nodes=3, min_2pc=1))
    _writes(sim, 5)
    sim.run_for(1)
    pc = sim.meta_config(G0)
    p, (s1, s2) = pc.primary, pc.secondaries
    resume_syncs = _lose_config_syncs(sim, p)
    _writes(sim, 5)
    sim.bus.isolate(p, [s1, s2])
    _writes(sim, 5)
    sim.run_until(lambda: not sim.meta_config(G0).secondaries, 60, "both secondaries removed")
    assert sim.meta_config(G0).primary == p
    _writes(sim, 10)                      # committed by the primary alone (min_2pc = 1)
    sim.run_for(35)                       # the removed secondaries report their final state
    acked = len(sim.client.acked)
    sim.bus.isolate(p, [META])
    sim.run_until(lambda: sim.meta_config(G0).primary.is_invalid, 60, "primary declared dead")
    pc = sim.meta_config(G0)
    assert pc.last_drops[-1] == p and not pc.secondaries
    sim.bus.heal()                        # the old primary is alive again, but unreported
    sim.run_for(40)
    pc = sim.meta_config(G0)
    assert pc.primary.is_invalid, "DDD chose by a report from before the drop"
    assert "report" in sim.meta.state.waiting.get(G0, "")
    resume_syncs()
    _heal_and_check(sim)
    assert sim.meta_config(G0).primary == p
    assert len(sim.client.acked) >= acked


def test_heal_waits_for_a_stalled_primary(make_sim):
    """(sweep seed 1273) The primary stalls for 25 s shortly before the final heal. Its lease
    still runs when the heal starts, so it looked healthy although it was about to stop serving
    with the meta not yet having noticed: health must count a stalled member as unhealthy (the
    cluster is healthy again once it resumes or the meta moves the partition on)."""
    sim = _ready(make_sim(seed=22, partitions=1, nodes=3))
    _writes(sim, 5)
    old = _primary(sim)
    old.pause(25)
    sim.run_for(6)
    assert old.cores[G0].is_serving(sim.now) and not sim.all_healthy()
    _heal_and_check(sim)


def test_ddd_ignores_a_sync_sent_before_the_drop_and_delivered_after(make_sim):
    """Like the test above, but the old primary's last config sync from before its drop is not
    lost: it arrives only after the meta dropped the node (a slow network). It carries the same
    understated ballot and decrees; the meta must not take it as the node's post-drop report
    (it ignores the first sync received after a drop, see "replica reports" in meta/state.py)."""
    sim = _ready(make_sim(seed=23, partitions=1, nodes=3, min_2pc=1))
    _writes(sim, 5)
    sim.run_for(1)
    pc = sim.meta_config(G0)
    p, (s1, s2) = pc.primary, pc.secondaries
    held = []
    send = sim.bus.send
    holding = [True]

    def holding_send(src, dst, payload):
        if holding[0] and src == p and dst == META and payload[0] == "config_sync":
            held.append(payload)
            return
        send(src, dst, payload)
    sim.bus.send = holding_send
    sim.nodes[p]._config_sync()           # sent while the group is complete
    _writes(sim, 5)
    sim.bus.isolate(p, [s1, s2])
    _writes(sim, 5)
    sim.run_until(lambda: not sim.meta_config(G0).secondaries, 60, "both secondaries removed")
    _writes(sim, 10)                      # committed by the primary alone (min_2pc = 1)
    sim.run_for(35)
    assert held, "expected the old primary to have sent config syncs"
    stale = held[0]                       # from before the secondaries' removal
    acked = len(sim.client.acked)
    sim.bus.isolate(p, [META])
    sim.run_until(lambda: sim.meta_config(G0).primary.is_invalid, 60, "primary declared dead")
    assert sim.meta_config(G0).last_drops[-1] == p
    sim.deliver(p, META, stale)           # the delayed pre-drop sync finally arrives
    sim.bus.heal()                        # the old primary is alive again, its syncs still held
    sim.run_for(40)
    pc = sim.meta_config(G0)
    assert pc.primary.is_invalid, "DDD chose by a sync sent before the drop"
    assert "report" in sim.meta.state.waiting.get(G0, "")
    holding[0] = False
    _heal_and_check(sim)
    assert sim.meta_config(G0).primary == p
    assert len(sim.client.acked) >= acked


def _placement(sim):
    prim, total = {a: 0 for a in sim.nodes}, {a: 0 for a in sim.nodes}
    for g in sim.gpids():
        pc = sim.meta_config(g)
        prim[pc.primary] += 1
        for a in pc.members():
            total[a] += 1
    return prim, total


def test_balancer_spreads_onto_a_new_node_under_writes(make_sim):
    """meta.md §2.4 / replication.md §8: a node joins a cluster whose partitions all live on
    the other three; at fl_lively the balancer moves primaries (downgrade + upgrade) and copies
    secondaries (add for LB + remove) until every node holds its share, with writes going on
    and every invariant checked at every step."""
    sim = make_sim(seed=21, nodes=4, partitions=8)
    newcomer = sorted(sim.nodes)[-1]
    sim.crash(newcomer)                          # never beaconed: everything goes to 3 nodes
    _ready(sim)
    prim, total = _placement(sim)
    assert prim[newcomer] == total[newcomer] == 0
    sim.restart(newcomer)
    sim.run_until(lambda: newcomer in sim.meta.state.alive_nodes(), 30, "the new node alive")
    sim.run_for(15)                              # fl_steady: the plan is only counted
    assert _placement(sim)[1][newcomer] == 0
    assert sim.meta.state.balance_ops["total"] > 0
    sim.meta.state.control_meta(thrift.meta_admin.configuration_meta_control_request(level=500))

    def balanced():
        if not sim.all_healthy() or sim.meta.state.lb_queue:
            return False
        p, t = _placement(sim)
        return max(p.values()) - min(p.values()) <= 1 and max(t.values()) - min(t.values()) <= 1
    deadline = sim.now + 600
    while not balanced():
        assert sim.now < deadline, f"not balanced after 600 s\n{sim.describe()}"
        _writes(sim, 5, gap=0.2)
    prim, total = _placement(sim)
    assert prim == {a: 2 for a in sim.nodes} and total == {a: 6 for a in sim.nodes}
    _heal_and_check(sim)
    assert sim.checker.max_serving == 1
    assert sim.meta.state.balance_ops["total"] == 0     # a later round finds nothing to do
