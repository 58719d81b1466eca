"""The PacificA replica core in isolation (replication.md §2-§3, §5-§7): effects in, effects out.

A tiny synchronous pump routes ``Send`` effects between cores and completes log appends at
once; tests look at the effects themselves."""
from dataclasses import replace

import pytest

from pegasus_server.replica import events as ev
from pegasus_server.replica.pacifica import Options, ReplicaCore

G = (1, 0)
P, S1, S2, L = "p", "s1", "s2", "l"


def _of(effects, kind):
    return [e for e in effects if isinstance(e, kind)]


class Pump:
    """Deliver Send effects between cores; complete AppendLog immediately; collect the rest."""

    def __init__(self, cores, now=0.0):
        self.cores = cores
        self.now = now
        self.applied = {n: [] for n in cores}
        self.replies = []
        self.reports = []
        self.other = []
        self.hold = set()          # (src, dst) pairs whose messages are dropped
        self.drop_types = set()    # message types that are dropped
        self.logged = {n: [] for n in cores}

    def run(self, node, effects):
        queue = [(node, e) for e in effects]
        while queue:
            src, e = queue.pop(0)
            core = self.cores[src]
            t = type(e)
            if t is ev.Send:
                if (src, e.to) in self.hold or e.to not in self.cores or \
                        type(e.msg) in self.drop_types:
                    continue
                queue += [(e.to, x) for x in self.deliver(src, e.to, e.msg)]
            elif t is ev.AppendLog:
                self.logged[src].append(e.mutation)
                queue += [(src, x) for x in core.on_log_appended(self.now, e.mutation.decree,
                                                                 e.mutation.ballot)]
            elif t is ev.Apply:
                self.applied[src].append(e.mutation)
            elif t is ev.ReplyClient:
                self.replies.append(e)
            elif t is ev.ReportToMeta:
                self.reports.append((src, e))
            else:
                self.other.append((src, e))

    def deliver(self, src, dst, msg):
        c, now = self.cores[dst], self.now
        handler = {ev.Prepare: c.on_prepare, ev.PrepareAck: c.on_prepare_ack,
                   ev.GroupCheck: c.on_group_check, ev.GroupCheckReply: c.on_group_check_reply,
                   ev.AddLearner: c.on_add_learner, ev.LearnResponse: c.on_learn_response,
                   ev.LearnCompletion: c.on_learn_completion,
                   ev.LearnNotifyReply: c.on_learn_notify_reply}.get(type(msg))
        if type(msg) is ev.LearnRequest:
            return c.on_learn(now, src, msg, None)
        if type(msg) is ev.RemoveReplica:
            return c.on_remove(now, msg)
        return handler(now, src, msg)

    def meta_ok(self, node, *, lcd=0):
        """Answer the node's last ReportToMeta with ERR_OK (what the meta would store)."""
        src, rep = [r for r in self.reports if r[0] == node][-1]
        self.run(node, self.cores[node].on_meta_update_reply(self.now, "ERR_OK", rep.config))
        return rep


def _group(n_secondaries=2, opts=None, lease=1e9):
    names = [P, S1, S2][:1 + n_secondaries]
    cores = {n: ReplicaCore(G, n, opts or Options()) for n in names + [L]}
    pump = Pump(cores)
    for c in cores.values():
        c.on_lease(0, lease)
    m = ev.Membership(G, 0, None, ())
    pump.run(P, cores[P].on_proposal(0, ev.ConfigProposal(ev.CT_ASSIGN_PRIMARY, P, m)))
    rep = pump.reports[-1][1]
    assert rep.type == ev.CT_ASSIGN_PRIMARY and rep.config.ballot == 1 and rep.config.primary == P
    assert cores[P].status == ev.PS_INACTIVE and cores[P].transient
    # the meta stores it; for the unit test the secondaries are already members
    full = replace(rep.config, secondaries=tuple(names[1:]))
    pump.run(P, cores[P].on_meta_update_reply(0, "ERR_OK", full))
    return cores, pump


def _write(pump, cores, key, client=None):
    pump.run(P, cores[P].client_write(pump.now, "RPC_RRDB_RRDB_PUT", key, client or key))


def test_happy_path_three_replicas_apply_identically():
    cores, pump = _group()
    assert cores[P].status == ev.PS_PRIMARY
    # the first group check told the secondaries their role and ballot
    assert [cores[n].status for n in (S1, S2)] == [ev.PS_SECONDARY] * 2
    assert [cores[n].ballot for n in (P, S1, S2)] == [1, 1, 1]
    eff = cores[P].client_write(0, "RPC_RRDB_RRDB_PUT", "a", "c1")
    assert [type(e) for e in eff] == [ev.AppendLog, ev.Send, ev.Send]
    assert {e.to for e in _of(eff, ev.Send)} == {S1, S2}
    prep = _of(eff, ev.Send)[0].msg
    assert prep.mutation.decree == 1 and prep.mutation.ballot == 1
    assert prep.config.status == ev.PS_SECONDARY and prep.config.primary == P
    pump.run(P, eff)
    for k in "bcd":
        _write(pump, cores, k)
    assert [m.decree for m in pump.applied[P]] == [1, 2, 3, 4]
    assert [(r.clients, r.err, r.decree) for r in pump.replies] == [
        (("c1",), "ERR_OK", 1), (("b",), "ERR_OK", 2), (("c",), "ERR_OK", 3), (("d",), "ERR_OK", 4)]
    # secondaries learned the commit point from the next prepare: all but the last
    assert [m.decree for m in pump.applied[S1]] == [1, 2, 3]
    pump.now = 200
    pump.run(P, cores[P].tick(200))          # group check carries LCD 4 (then an empty write)
    for n in (S1, S2):
        assert [m.updates for m in pump.applied[n][:4]] == [m.updates for m in pump.applied[P][:4]]
        assert cores[n].last_committed_decree >= 4


def test_admission_errors():
    cores, pump = _group()
    eff = cores[S1].client_write(0, "RPC_RRDB_RRDB_PUT", "x", "c")
    assert eff == [ev.ReplyClient(G, ("c",), "ERR_INVALID_STATE")]
    cores[P].on_lease(0, 5.0)
    eff = cores[P].client_write(6.0, "RPC_RRDB_RRDB_PUT", "x", "c")
    assert eff == [ev.ReplyClient(G, ("c",), "ERR_INVALID_STATE")]   # lease expired
    assert not cores[P].is_serving(6.0) and cores[P].can_read(6.0) == "ERR_INVALID_STATE"
    solo, pump2 = _group(n_secondaries=0)
    eff = solo[P].client_write(0, "RPC_RRDB_RRDB_PUT", "x", "c")
    assert eff == [ev.ReplyClient(G, ("c",), "ERR_NOT_ENOUGH_MEMBER")]
    solo1, pump3 = _group(n_secondaries=0, opts=Options(mutation_2pc_min_replica_count=1))
    _write(pump3, solo1, "x")
    assert [r.err for r in pump3.replies] == ["ERR_OK"]


def test_commit_waits_for_every_secondary():
    cores, pump = _group()
    pump.hold.add((S2, P))                    # S2's acks get lost
    _write(pump, cores, "a")
    assert pump.applied[P] == [] and pump.replies == []
    assert cores[S2].plist.get(1).logged
    pump.hold.clear()
    # S2 acks again when the primary re-sends (duplicate prepare of a logged mutation)
    pump.run(P, [ev.Send(S2, ev.Prepare(cores[P]._config_for(S2), cores[P].plist.mutation(1)))])
    assert [m.decree for m in pump.applied[P]] == [1]


def test_prepare_timeout_removes_the_secondary_and_reconciles():
    cores, pump = _group()
    pump.hold.add((P, S2))
    _write(pump, cores, "a")
    _write(pump, cores, "b")
    assert pump.applied[P] == []
    pump.now = 3.5
    pump.run(P, cores[P].tick(3.5))
    src, rep = pump.reports[-1]
    assert rep.type == ev.CT_DOWNGRADE_TO_INACTIVE and rep.node == S2
    assert rep.config.ballot == 2 and rep.config.secondaries == (S1,) and rep.config.primary == P
    assert cores[P].status == ev.PS_INACTIVE and cores[P].transient
    assert cores[P].client_write(3.5, "RPC_RRDB_RRDB_PUT", "c", "c")[0].err == "ERR_INVALID_STATE"
    pump.meta_ok(P)
    # primary again at ballot 2; both uncommitted mutations re-prepared with ballot 2 and
    # committed with S1 alone; their clients get their answer now
    assert cores[P].status == ev.PS_PRIMARY and cores[P].ballot == 2
    assert [(m.decree, m.ballot) for m in pump.applied[P]] == [(1, 2), (2, 2)]
    assert sorted(r.clients[0] for r in pump.replies if r.err == "ERR_OK") == ["a", "b"]
    assert cores[S1].ballot == 2
    # S2 (old ballot) drops a stale prepare of ballot 1 silently; the new one gets no answer
    assert cores[S2].on_prepare(4, P, ev.Prepare(ev.ReplicaConfig(G, 1, P, ev.PS_SECONDARY),
                                                 replace(pump.applied[P][0], ballot=0))) == []


def test_inactive_ack_is_retried_after_5ms():
    cores, pump = _group()
    pump.run(S2, cores[S2].on_meta_disconnected(0))     # S2 lost its lease: transient inactive
    assert cores[S2].status == ev.PS_INACTIVE and cores[S2].transient
    _write(pump, cores, "a")
    assert pump.applied[P] == []
    assert pump.cores[P].tick(0.001) == []              # not yet
    eff = cores[P].tick(0.006)
    assert [(type(e), e.to) for e in eff] == [(ev.Send, S2)]
    # S2 back as a secondary (config sync, same ballot): the retried prepare succeeds
    pump.run(S2, cores[S2].on_config_sync(0.006, cores[P].membership))
    assert cores[S2].status == ev.PS_SECONDARY
    pump.run(P, eff)
    assert [m.decree for m in pump.applied[P]] == [1]


def test_staleness_queues_writes_beyond_20_in_flight():
    cores, pump = _group()
    pump.hold.add((S1, P))
    for i in range(25):
        _write(pump, cores, f"k{i}")
    assert cores[P].last_prepared_decree == 20 and len(cores[P].pc.queue) == 5
    pump.hold.clear()
    for d in range(1, 21):   # S1's acks arrive now
        pump.run(S1, [ev.Send(P, ev.PrepareAck(G, "ERR_OK", 1, d, 0, 0))])
    # the 5 queued PUTs left the queue together: one mutation (decree 21) carries them
    assert cores[P].last_committed_decree == 21 and not cores[P].pc.queue
    assert sum(len(r.clients) for r in pump.replies if r.err == "ERR_OK") == 25
    assert len(pump.applied[P][-1].updates) == 5


def test_secondary_commit_point_from_group_check_and_ballot_rules():
    cores, pump = _group()
    _write(pump, cores, "a")
    assert cores[S1].last_committed_decree == 0
    eff = cores[S1].on_group_check(1, P, ev.GroupCheck(ev.ReplicaConfig(G, 1, P, ev.PS_SECONDARY), 1))
    assert [type(e) for e in eff] == [ev.Apply, ev.Send]
    assert eff[1].msg.err == "ERR_OK" and eff[1].msg.last_committed_decree_in_app == 1
    # lower ballot: outdated
    eff = cores[S1].on_group_check(1, P, ev.GroupCheck(ev.ReplicaConfig(G, 0, P, ev.PS_SECONDARY), 1))
    assert eff[0].msg.err == "ERR_VERSION_OUTDATED"
    # same ballot, SECONDARY -> PRIMARY is not an allowed transition
    eff = cores[S1].on_group_check(1, P, ev.GroupCheck(ev.ReplicaConfig(G, 1, S1, ev.PS_PRIMARY), 1))
    assert eff[-1].msg.err == "ERR_INVALID_STATE" and cores[S1].status == ev.PS_SECONDARY
    # higher ballot always wins and is persisted
    eff = cores[S1].on_group_check(1, P, ev.GroupCheck(ev.ReplicaConfig(G, 5, P, ev.PS_SECONDARY), 1))
    assert ev.PersistBallot(G, 5, 5) in eff and cores[S1].ballot == 5


def test_member_ballot_ignores_configurations_the_replica_is_not_in():
    c = ReplicaCore(G, S1, ballot=1)
    c.on_config_sync(0, ev.Membership(G, 3, P, (S1,)))
    assert (c.ballot, c.member_ballot, c.status) == (3, 3, ev.PS_SECONDARY)
    # a proposal whose config no longer lists it: fenced to ballot 7, but its data is from 3
    eff = c.on_proposal(1, ev.ConfigProposal(ev.CT_ADD_SECONDARY, L, ev.Membership(G, 7, P, (S2,))))
    assert (c.ballot, c.member_ballot, c.status) == (7, 3, ev.PS_INACTIVE)
    assert ev.PersistBallot(G, 7, 3) in eff
    assert not c.transient                     # removed, not a lease hiccup


def test_lease_loss_and_return_at_same_ballot():
    cores, pump = _group()
    _write(pump, cores, "a")
    eff = cores[P].on_meta_disconnected(10)
    assert cores[P].status == ev.PS_INACTIVE and cores[P].transient
    assert not cores[P].is_serving(10)
    assert _of(eff, ev.StatusChanged)[0].new == ev.PS_INACTIVE
    m = ev.Membership(G, 1, P, (S1, S2))
    cores[P].on_lease(11, 40)
    pump.run(P, cores[P].on_config_sync(11, m))
    assert cores[P].status == ev.PS_PRIMARY and cores[P].is_serving(11)


def test_restarted_primary_forces_a_new_ballot():
    cores, pump = _group()
    for k in "abc":
        _write(pump, cores, k)
    fresh = ReplicaCore(G, P, ballot=1, last_committed_decree=1)
    eff = fresh.replay(0, pump.logged[P])
    # the log proves decree 2 committed (decree 3 carries LCD 2); decree 3 stays prepared
    assert [e.mutation.decree for e in _of(eff, ev.Apply)] == [2]
    assert fresh.last_prepared_decree == 3 and fresh.status == ev.PS_INACTIVE
    eff = fresh.on_config_sync(1, ev.Membership(G, 1, P, (S1, S2)))
    rep = _of(eff, ev.ReportToMeta)[0]
    assert rep.type == ev.CT_PRIMARY_FORCE_UPDATE_BALLOT and rep.config.ballot == 2
    assert rep.config.primary == P and rep.config.secondaries == (S1, S2)


def _learner_setup():
    cores, pump = _group(n_secondaries=1)
    for k in "abc":
        _write(pump, cores, k)
    m = cores[P].membership
    pump.run(P, cores[P].on_proposal(1, ev.ConfigProposal(ev.CT_ADD_SECONDARY, L, m)))
    return cores, pump


def test_learning_from_cache_then_promotion():
    cores, pump = _learner_setup()
    lc = cores[L]
    assert lc.status == ev.PS_POTENTIAL_SECONDARY
    assert lc.learner_status == ev.LEARNING_SUCCEEDED
    assert [m.decree for m in pump.applied[L]] == [1, 2, 3]       # LT_CACHE mutations
    src, rep = pump.reports[-1]
    assert src == P and rep.type == ev.CT_UPGRADE_TO_SECONDARY and rep.node == L
    assert rep.config.secondaries == (S1, L) and rep.config.ballot == 2
    pump.meta_ok(P)
    assert lc.status == ev.PS_SECONDARY and lc.ballot == 2
    _write(pump, cores, "d")
    assert [m.decree for m in pump.applied[P]] == [1, 2, 3, 4]
    assert lc.plist.get(4).logged


def test_refused_completion_notice_keeps_the_learner_upgradable():
    """Regression (randomized seed 9137): the primary proposed the upgrade and, while its
    proposal was out, refused the learner's completion notice; the learner must still accept
    the configuration that lists it as a secondary (and may become primary from it)."""
    cores, pump = _learner_setup()
    lc = cores[L]
    src, rep = pump.reports[-1]
    assert rep.type == ev.CT_UPGRADE_TO_SECONDARY and rep.node == L
    pump.run(L, lc.on_learn_notify_reply(0, P, ev.LearnNotifyReply(G, "ERR_INVALID_STATE",
                                                                    lc.lc.signature)))
    assert lc.learner_status == ev.LEARNING_SUCCEEDED
    # the primary died after the meta stored the upgrade; the meta then offers L the primary
    upgraded = rep.config
    after = replace(upgraded, ballot=upgraded.ballot + 1, primary=None,
                    secondaries=tuple(x for x in upgraded.secondaries if x != S1))
    pump.run(L, lc.on_proposal(0, ev.ConfigProposal(ev.CT_UPGRADE_TO_PRIMARY, L, after)))
    assert lc.ballot == after.ballot
    src, rep2 = pump.reports[-1]
    assert src == L and rep2.type == ev.CT_UPGRADE_TO_PRIMARY and rep2.config.primary == L


def test_learning_under_writes_prepares_wait_for_the_learner():
    cores, pump = _group(n_secondaries=1)
    _write(pump, cores, "a")
    pump.hold.add((L, P))                   # the learner's first request is lost
    m = cores[P].membership
    pump.run(P, cores[P].on_proposal(1, ev.ConfigProposal(ev.CT_ADD_SECONDARY, L, m)))
    assert cores[L].learner_status == ev.LEARNING_WITHOUT_PREPARE
    _write(pump, cores, "b")                # not sent to the learner yet (no prepare_start)
    assert cores[P].last_committed_decree == 2
    pump.hold.clear()
    pump.now = 4
    pump.drop_types = {ev.LearnCompletion}  # keep it a learner for a while
    pump.run(L, cores[L].tick(4))           # request times out and is sent again
    assert cores[L].learner_status == ev.LEARNING_SUCCEEDED
    assert [m.decree for m in pump.applied[L]] == [1, 2]
    assert cores[P].status == ev.PS_PRIMARY and cores[P].pc.learners[L].prepare_start == 3
    # prepare_start is 3: new writes are also prepared on the learner and wait for its ack
    pump.hold.add((L, P))
    _write(pump, cores, "c")
    assert cores[P].last_committed_decree == 2 and cores[L].plist.get(3).logged
    pump.hold.clear()
    pump.run(L, [ev.Send(P, ev.PrepareAck(G, "ERR_OK", 1, 3, 2, 2))])
    assert cores[P].last_committed_decree == 3
    # the next group check sees LearningSucceeded and proposes the upgrade
    pump.now = 200
    pump.run(P, cores[P].tick(200))
    assert pump.reports[-1][1].type == ev.CT_UPGRADE_TO_SECONDARY


def test_learnee_chooses_log_or_checkpoint():
    opts = Options(max_mutation_count_in_prepare_list=3)
    cores, pump = _group(n_secondaries=1, opts=opts)
    for i in range(8):
        _write(pump, cores, f"k{i}")
    p = cores[P]
    assert p.plist.min_decree > 1
    m = p.membership
    eff = p.on_proposal(1, ev.ConfigProposal(ev.CT_ADD_SECONDARY, L, m))
    sig = _of(eff, ev.Send)[0].msg.config.learner_signature
    req = ev.LearnRequest(G, L, sig, 0, 0, seq=1)
    eff = p.on_learn(1, L, req, log_first_decree=1)
    assert _of(eff, ev.SendLearnResponse)[0].fill == ev.LT_LOG
    r = _of(eff, ev.SendLearnResponse)[0].response
    assert (r.state.from_decree_excluded, r.state.to_decree_included) == (0, 8)
    eff = p.on_learn(1, L, req, log_first_decree=5)
    assert _of(eff, ev.SendLearnResponse)[0].fill == ev.LT_APP
    eff = p.on_learn(1, L, replace(req, signature=sig + 1), log_first_decree=1)
    assert _of(eff, ev.Send)[0].msg.err == "ERR_WRONG_CHECKSUM"
    eff = p.on_learn(1, "stranger", replace(req, learner="stranger"), log_first_decree=1)
    assert _of(eff, ev.Send)[0].msg.err == "ERR_OBJECT_NOT_FOUND"
    eff = p.on_learn(1, L, replace(req, last_committed_decree_in_app=7), log_first_decree=None)
    r = _of(eff, ev.Send)[0].msg
    assert r.type == ev.LT_CACHE and r.prepare_start_decree == 9
    assert [m.decree for m in r.state.mutations] == [8]


def test_learner_wipes_when_learnee_is_behind():
    lc = ReplicaCore(G, L, last_committed_decree=5)
    lc.on_add_learner(0, P, ev.AddLearner(ev.ReplicaConfig(G, 3, P, ev.PS_POTENTIAL_SECONDARY, 7), 2))
    assert lc.lc.seq == 1
    eff = lc.on_learn_response(0, P, ev.LearnResponse(G, "ERR_OK", None, last_committed_decree=2,
                                                      type=ev.LT_CACHE, seq=1))
    assert ev.ResetStorage(G) in eff and ev.DiscardLogAfter(G, 0) in eff
    assert lc.last_committed_decree == 0
    assert _of(eff, ev.Send)[0].msg.last_committed_decree_in_app == 0
    # a stale response (old seq) is ignored
    assert lc.on_learn_response(0, P, ev.LearnResponse(G, "ERR_OK", None, seq=1)) == []


def test_learner_installs_checkpoint_then_learns_again():
    lc = ReplicaCore(G, L)
    lc.on_add_learner(0, P, ev.AddLearner(ev.ReplicaConfig(G, 3, P, ev.PS_POTENTIAL_SECONDARY, 7), 2))
    eff = lc.on_learn_response(0, P, ev.LearnResponse(
        G, "ERR_OK", None, last_committed_decree=50, type=ev.LT_APP,
        state=ev.LearnState(0, 40, files="/ckpt"), seq=1))
    assert _of(eff, ev.InstallCheckpoint)[0].state.files == "/ckpt"
    eff = lc.on_checkpoint_installed(1, 40)
    assert lc.last_committed_decree == 40
    req = _of(eff, ev.Send)[0].msg
    assert isinstance(req, ev.LearnRequest) and req.last_committed_decree_in_app == 40


@pytest.mark.parametrize("status,ballot,target,ok", [
    (ev.PS_SECONDARY, 1, ev.PS_PRIMARY, False),        # same ballot: only listed transitions
    (ev.PS_SECONDARY, 2, ev.PS_PRIMARY, True),         # higher ballot always wins
    (ev.PS_SECONDARY, 0, ev.PS_SECONDARY, False),      # lower ballot refused
])
def test_transition_rules(status, ballot, target, ok):
    c = ReplicaCore(G, S1, ballot=1)
    c.on_config_sync(0, ev.Membership(G, 1, P, (S1,)))
    assert c.status == ev.PS_SECONDARY
    out = []
    assert c._set_config(0, out, ballot, S1 if target == ev.PS_PRIMARY else P, target) is ok


def test_proposal_overtaking_the_meta_reply_is_held_not_dropped():
    """The meta's next proposal can arrive before its answer to the primary's own proposal (two
    connections); the primary acts on it once answered instead of dropping it (which left the
    partition a replica short until the meta re-sent it, seconds later)."""
    cores, pump = _group()
    m1 = cores[P].membership
    pump.run(P, cores[P].on_proposal(0, ev.ConfigProposal(ev.CT_REMOVE, S2, m1)))
    src, rep = pump.reports[-1]
    assert src == P and rep.type == ev.CT_REMOVE and rep.config.ballot == 2
    assert cores[P].proposing is not None
    assert cores[P].on_proposal(0, ev.ConfigProposal(ev.CT_ADD_SECONDARY, L, rep.config)) == []
    pump.meta_ok(P)
    # P became primary at ballot 2 and ran the held proposal: L was added as a learner,
    # learned, and P now proposes its upgrade (the synchronous pump ran all of it)
    assert cores[P].ballot == 2 and cores[P].proposing is not None
    assert cores[L].learner_status == ev.LEARNING_SUCCEEDED
    src, up = pump.reports[-1]
    assert src == P and up.type == ev.CT_UPGRADE_TO_SECONDARY and up.node == L


def test_refused_own_primary_proposal_does_not_end_the_learning_it_received():
    """Regression (CI, test_shell_tables): the meta asked two nodes to be primary of a new
    partition. The one it refused was meanwhile made a learner by the accepted primary; the
    meta's refusal (ERR_INVALID_VERSION with the ballot-1 configuration, where learners are not
    listed) made it inactive, and the partition waited 100 s for the next group check."""
    cores, pump = _group(n_secondaries=1)
    lc = cores[L]
    pump.run(L, lc.on_proposal(0, ev.ConfigProposal(ev.CT_ASSIGN_PRIMARY, L,
                                                    ev.Membership(G, 0, None, ()))))
    assert pump.reports[-1][0] == L and lc.proposing is not None
    pump.drop_types = {ev.LearnCompletion}   # keep it a learner
    m = cores[P].membership
    pump.run(P, cores[P].on_proposal(1, ev.ConfigProposal(ev.CT_ADD_SECONDARY, L, m)))
    assert lc.status == ev.PS_POTENTIAL_SECONDARY and lc.proposing is None
    sig = lc.lc.signature
    pump.run(L, lc.on_meta_update_reply(1, "ERR_INVALID_VERSION", m))
    assert lc.status == ev.PS_POTENTIAL_SECONDARY and lc.lc.signature == sig
    assert lc.learner_status == ev.LEARNING_SUCCEEDED
    # and it no longer repeats its own stale proposal
    n = len(pump.reports)
    pump.now = 10
    pump.run(L, lc.tick(10))
    assert [r for r in pump.reports[n:] if r[0] == L] == []


def test_primary_with_no_room_reinvites_its_learner():
    """The meta asks for a learner on another node than the one the primary is teaching; the
    primary has no room for it, and invites its own learner again, which had lost its learning
    state and starts over (it used to wait for the next group check)."""
    cores, pump = _group(n_secondaries=1)
    for k in "ab":
        _write(pump, cores, k)
    pump.drop_types = {ev.LearnCompletion}
    m = cores[P].membership
    pump.run(P, cores[P].on_proposal(1, ev.ConfigProposal(ev.CT_ADD_SECONDARY, L, m)))
    lc = cores[L]
    assert lc.learner_status == ev.LEARNING_SUCCEEDED
    lc._go_inactive([], transient=False)     # what the stale answer above used to do
    assert lc.status == ev.PS_INACTIVE
    eff = cores[P].on_proposal(2, ev.ConfigProposal(ev.CT_ADD_SECONDARY, S2, m))
    assert {e.to for e in _of(eff, ev.Send)} == {L}           # S2 is not invited
    assert set(cores[P].pc.learners) == {L}
    pump.run(P, eff)
    assert lc.status == ev.PS_POTENTIAL_SECONDARY and lc.learner_status == ev.LEARNING_SUCCEEDED
    assert [x.decree for x in pump.applied[L]][-2:] == [1, 2]
