"""The PacificA replica state machine of one partition replica (sans-IO, design rules 1-2).

Owns (replication.md §2, §3, §5-§7): the replica's status and ballot, the "update local
configuration" transition rules, the primary's two-phase commit (decree assignment, prepare
list, acks, ordered commit, reconciliation on becoming primary), the secondaries' prepare
handling and commit-point learning (from the next prepare and from group checks), group checks,
the meta lease gate on serving, reconfiguration requests to the meta, and learning (both the
learnee's decision and the learner's rounds).

Inputs are method calls carrying ``now`` (seconds, any monotonic origin) and a message or
completion; every call returns a list of effect dataclasses from ``replica/events.py`` (``Send``,
``AppendLog``, ``Apply``, ``ReplyClient``, ``ReportToMeta`` …) that the driver performs, feeding
completions back in (``on_log_appended``, ``on_meta_update_reply``, ``on_checkpoint_installed``).
Timeouts are deadlines checked by ``tick(now)``; nothing here sleeps, spawns or reads a clock.

Entry points (driver -> core):
  client_write, flush_writes, can_read, is_serving; on_prepare, on_prepare_ack, on_log_appended;
  on_group_check, on_group_check_reply; on_add_learner, on_learn, on_learn_response,
  checkpoint_wanted, on_checkpoint_installed, on_checkpoint_install_failed, on_learn_completion,
  on_learn_notify_reply, on_remove; on_proposal, on_meta_update_reply, on_config_sync;
  on_lease, on_meta_disconnected; replay (after a restart); tick.

Decisions where the spec is silent or was found wanting (by the simulation tier):

* ``member_ballot``: besides ``ballot`` (raised by any newer configuration the replica hears of,
  which fences stale messages), the core keeps the ballot of the last configuration it was
  PRIMARY/SECONDARY in, persists it with the ballot, and the driver reports *that* in config sync
  (``replica_info.ballot``). Upstream reports the plain ballot; a removed replica whose stale
  proposal is answered ERR_INVALID_VERSION then adopts the newest ballot without the data, and
  the DDD rule (§6.4: larger ballot must not have smaller LCD) refuses forever to pick between it
  and the replica that really holds the newest data (seen in randomized runs).
* Learning rounds carry a sequence number (``LearnRequest.seq``, echoed in the response): only
  the answer to the outstanding request is used, so duplicated or late responses cannot reset a
  learner that already moved on. On the wire this is the RPC's own request/response pairing.
* The learner signature is ``(ballot << 32) + n`` as upstream, so it is unique across primaries.
* Becoming PRIMARY from a meta reply does not wait for the node's lease; the lease only gates
  serving (``is_serving``), which is what the at-most-one-primary invariant needs; commits stay
  safe without it because they need every member of the new ballot.

Batching (§3.2): writes wait in a queue while ``staleness_for_commit`` mutations are in 2PC
(and, with ``client_write(defer=True)``, until the driver's ``flush_writes``); queued PUT /
REMOVE requests leave the queue together as one mutation (up to ``batch_max_count`` /
``batch_max_bytes``); any other request gets its own mutation.

Deliberate simplifications: no disk-status / throttling / ACL admission (those live in the
driver); split/bulk-load/duplication hooks are not handled here.

Must not import gevent, socket, time, rocksdict, thrift or storage code.
"""
from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Any, Dict, Optional, Tuple

from pegasus_server import errors as E
from pegasus_server.replica.events import (
    CT_ADD_SECONDARY, CT_ADD_SECONDARY_FOR_LB, CT_ASSIGN_PRIMARY, CT_DOWNGRADE_TO_INACTIVE,
    CT_DOWNGRADE_TO_SECONDARY,
    CT_PRIMARY_FORCE_UPDATE_BALLOT, CT_REMOVE, CT_UPGRADE_TO_PRIMARY, CT_UPGRADE_TO_SECONDARY,
    LEARNING_FAILED, LEARNING_INVALID, LEARNING_SUCCEEDED, LEARNING_WITH_PREPARE,
    LEARNING_WITHOUT_PREPARE, LT_APP, LT_CACHE, LT_LOG, PS_ERROR, PS_INACTIVE, PS_POTENTIAL_SECONDARY,
    PS_PRIMARY, PS_SECONDARY, RPC_WRITE_EMPTY, STATUS_NAMES, AddLearner, AppendLog, Apply,
    ConfigProposal, DiscardLogAfter, GroupCheck, GroupCheckReply, InstallCheckpoint,
    LearnCompletion, LearnNotifyReply, LearnRequest, LearnResponse, LearnState, Membership,
    Mutation, PersistBallot, Prepare, PrepareAck, RemoveReplica, ReplicaConfig, ReplyClient,
    ReportToMeta, ResetStorage, Send, SendLearnResponse, StatusChanged, Update)
from pegasus_server.replica.prepare_list import PrepareList

NEG_INF = float("-inf")
# requests that may share a mutation (upstream batches PUT and REMOVE only, §3.2)
BATCHABLE = frozenset({"RPC_RRDB_RRDB_PUT", "RPC_RRDB_RRDB_REMOVE"})


class Options:
    """Tunables (replication.md §12 defaults; times in seconds)."""

    def __init__(self, *, mutation_2pc_min_replica_count: int = 2,
                 staleness_for_commit: int = 20,
                 max_mutation_count_in_prepare_list: int = 110,
                 prepare_timeout_secondary: float = 3.0,
                 prepare_timeout_learner: float = 5.0,
                 prepare_retry_delay: float = 0.005,
                 prepare_retry_min_left: float = 0.007,
                 group_check_interval: float = 100.0,
                 group_check_timeout: float = 5.0,
                 empty_write_disabled: bool = False,
                 config_retry: float = 1.0,
                 learn_timeout: float = 3.0,
                 learn_retry: float = 1.0,
                 learn_completion_resend: float = 2.0,
                 batch_max_count: int = 64,
                 batch_max_bytes: int = 1 << 20):
        self.mutation_2pc_min_replica_count = mutation_2pc_min_replica_count
        self.staleness_for_commit = staleness_for_commit
        self.max_mutation_count_in_prepare_list = max_mutation_count_in_prepare_list
        self.prepare_timeout_secondary = prepare_timeout_secondary
        self.prepare_timeout_learner = prepare_timeout_learner
        self.prepare_retry_delay = prepare_retry_delay
        self.prepare_retry_min_left = prepare_retry_min_left
        self.group_check_interval = group_check_interval
        self.group_check_timeout = group_check_timeout
        self.empty_write_disabled = empty_write_disabled
        self.config_retry = config_retry
        self.learn_timeout = learn_timeout
        self.learn_retry = learn_retry
        self.learn_completion_resend = learn_completion_resend
        # PUT / REMOVE requests queued behind the staleness limit share one mutation, up to
        # this many updates and bytes (``Update.size``); 1 disables batching
        self.batch_max_count = batch_max_count
        self.batch_max_bytes = batch_max_bytes


class _Learner:
    """Primary's view of one learner."""
    __slots__ = ("signature", "prepare_start")

    def __init__(self, signature: int):
        self.signature = signature
        self.prepare_start = -1


class _Inflight:
    __slots__ = ("deadline", "retry_at")

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.retry_at: Optional[float] = None


class _PrimaryCtx:
    """Role-specific state of a primary; dropped whenever the replica leaves PRIMARY."""

    def __init__(self, membership: Membership, now: float):
        self.membership = membership
        self.learners: Dict[Any, _Learner] = {}
        self.inflight: Dict[Tuple[int, Any], _Inflight] = {}
        self.gc_pending: Dict[Any, float] = {}
        self.next_group_check = now
        self.last_prepare = now
        self.queue: deque = deque()            # (Update, client) not yet in a mutation
        self.next_signature = (membership.ballot << 32) + 1


class _LearnerCtx:
    """Role-specific state of a learner (PS_POTENTIAL_SECONDARY)."""

    def __init__(self, signature: int):
        self.signature = signature
        self.status = LEARNING_WITHOUT_PREPARE
        self.seq = 0
        self.inflight = False
        self.deadline = NEG_INF
        self.retry_at: Optional[float] = None
        self.installing = False
        self.notify_at = NEG_INF


class _Proposal:
    __slots__ = ("type", "node", "config", "next_retry", "learners")

    def __init__(self, type_: int, node, config: Membership, next_retry: float, learners=()):
        self.type = type_
        self.node = node
        self.config = config
        self.next_retry = next_retry
        # the proposing primary's other learners: added again (new signatures) when it is
        # primary of the new configuration, instead of waiting for the meta to ask again
        self.learners = tuple(learners)


class ReplicaCore:
    def __init__(self, gpid, me, options: Optional[Options] = None, *, ballot: int = 0,
                 member_ballot: Optional[int] = None, last_committed_decree: int = 0,
                 max_replica_count: int = 3, last_timestamp_us: int = 0):
        self.gpid = gpid
        self.me = me
        self.opts = options or Options()
        self.status = PS_INACTIVE
        self.transient = True          # INACTIVE flavour: transient may return at same ballot
        self.initializing = True       # opened (or restarted) and not yet configured by meta
        self.ballot = ballot
        # ballot of the last configuration this replica was PRIMARY or SECONDARY in: reported
        # to the meta for the DDD choice instead of ``ballot``, which a replica also raises
        # when it merely learns of a newer configuration without being in it
        self.member_ballot = ballot if member_ballot is None else member_ballot
        self.primary = None
        self.max_replica_count = max_replica_count
        self.plist = PrepareList(last_committed_decree, self.opts.max_mutation_count_in_prepare_list)
        self.lease_until = NEG_INF
        self.lease_epoch = 0           # +1 whenever the meta lease lapses (see on_lease)
        self.pc: Optional[_PrimaryCtx] = None
        self.lc: Optional[_LearnerCtx] = None
        self.proposing: Optional[_Proposal] = None
        self._last_ts = last_timestamp_us
        self._learn_round = 0          # LearnRequest.seq, unique over the core's life
        self._held_proposal: Optional[ConfigProposal] = None

    # ================================================================ queries
    @property
    def last_committed_decree(self) -> int:
        return self.plist.last_committed_decree

    @property
    def last_prepared_decree(self) -> int:
        return self.plist.max_decree

    @property
    def membership(self) -> Optional[Membership]:
        return self.pc.membership if self.pc else None

    @property
    def learner_status(self) -> int:
        return self.lc.status if self.lc else LEARNING_INVALID

    def is_serving(self, now: float) -> bool:
        return self.status == PS_PRIMARY and now < self.lease_until

    def can_read(self, now: float) -> str:
        return E.ERR_OK if self.is_serving(now) else E.ERR_INVALID_STATE

    def __repr__(self) -> str:
        return (f"ReplicaCore({self.gpid}@{self.me} {STATUS_NAMES[self.status]} b={self.ballot} "
                f"{self.plist})")

    # ================================================================ helpers
    def _ts(self, now: float) -> int:
        self._last_ts = max(int(now * 1_000_000), self._last_ts + 1)
        return self._last_ts

    def _config_for(self, node) -> ReplicaConfig:
        if self.pc and node in self.pc.learners:
            return ReplicaConfig(self.gpid, self.ballot, self.me, PS_POTENTIAL_SECONDARY,
                                 self.pc.learners[node].signature)
        return ReplicaConfig(self.gpid, self.ballot, self.me, PS_SECONDARY)

    def _apply(self, out: list, committed) -> None:
        for m in committed:
            out.append(Apply(self.gpid, m))
            if self.status == PS_PRIMARY:
                slot = self.plist.get(m.decree)
                if slot is not None and slot.clients:
                    out.append(ReplyClient(self.gpid, slot.clients, E.ERR_OK, m.decree))
                    slot.clients = ()

    def _reply_lcds(self) -> Tuple[int, int]:
        lcd = self.plist.last_committed_decree
        return lcd, lcd

    # ================================================================ configuration
    def _set_config(self, now: float, out: list, ballot: int, primary, status: int, *,
                    membership: Optional[Membership] = None, signature: int = 0,
                    transient: bool = False) -> bool:
        """"Update local configuration" (§2). Returns False when the change is refused."""
        old = self.status
        if old == PS_ERROR or ballot < self.ballot:
            return False
        if ballot == self.ballot and status not in (PS_INACTIVE, PS_ERROR):
            same = status == old and (status != PS_POTENTIAL_SECONDARY or
                                      (self.lc is not None and self.lc.signature == signature))
            ok = (same or (old == PS_INACTIVE and status == PS_POTENTIAL_SECONDARY)
                  or (old == PS_POTENTIAL_SECONDARY and status in (PS_SECONDARY,
                                                                   PS_POTENTIAL_SECONDARY))
                  or (old == PS_INACTIVE and self.transient
                      and status in (PS_SECONDARY, PS_PRIMARY)))
            if not ok:
                return False
            if same:
                self.primary = primary
                self.initializing = False
                return True
        if (status == PS_SECONDARY and old == PS_POTENTIAL_SECONDARY and
                self.learner_status not in (LEARNING_WITH_PREPARE, LEARNING_SUCCEEDED)):
            return False   # a learner that has not caught up must not become a member
        persist = ballot > self.ballot
        self.ballot = ballot
        if status in (PS_PRIMARY, PS_SECONDARY) and self.member_ballot != ballot:
            self.member_ballot = ballot
            persist = True
        if persist:
            out.append(PersistBallot(self.gpid, ballot, self.member_ballot))
        self.primary = primary
        self.initializing = False
        if old == PS_PRIMARY:
            self._leave_primary(out)
        if status != PS_POTENTIAL_SECONDARY:
            self.lc = None
        self.status = status
        self.transient = transient
        if status == PS_PRIMARY:
            if membership is not None:
                self.max_replica_count = membership.max_replica_count or self.max_replica_count
            self._become_primary(now, out, membership)
        elif status == PS_POTENTIAL_SECONDARY:
            if self.lc is None or self.lc.signature != signature:
                self._start_learning(now, out, signature)
        if old != status:
            out.append(StatusChanged(self.gpid, old, status, self.ballot))
        return True

    def _adopt(self, now: float, out: list, m: Membership) -> bool:
        if m.primary == self.me:
            st = PS_PRIMARY
        elif self.me in m.secondaries:
            st = PS_SECONDARY
        else:
            st = PS_INACTIVE
        return self._set_config(now, out, m.ballot, m.primary, st, membership=m)

    def _go_inactive(self, out: list, transient: bool) -> None:
        old = self.status
        if old == PS_PRIMARY:
            self._leave_primary(out)
        self.lc = None
        self.status = PS_INACTIVE
        self.transient = transient
        if old != PS_INACTIVE:
            out.append(StatusChanged(self.gpid, old, PS_INACTIVE, self.ballot))

    def _leave_primary(self, out: list) -> None:
        pc = self.pc
        self.pc = None
        if pc and pc.queue:
            out.append(ReplyClient(self.gpid, tuple(c for _, c in pc.queue), E.ERR_INVALID_STATE))
        # prepared-but-uncommitted slots keep their clients: if this replica becomes primary
        # again it re-proposes them and the clients get their answer then.
        for d in self.plist.uncommitted():
            slot = self.plist.get(d)
            if slot is not None:
                slot.waiting.clear()

    def _propose(self, now: float, out: list, type_: int, node, config: Membership) -> None:
        """Ask the meta to persist ``config`` (ballot + 1); INACTIVE(transient) meanwhile."""
        learners = [n for n in self.pc.learners if n != node] if self.pc else []
        self._go_inactive(out, transient=True)
        self.proposing = _Proposal(type_, node, config, now + self.opts.config_retry, learners)
        out.append(ReportToMeta(self.gpid, type_, node, config))

    def _membership_now(self) -> Membership:
        m = self.pc.membership
        return replace(m, last_committed_decree=self.plist.last_committed_decree)

    # ================================================================ primary: 2PC
    def _become_primary(self, now: float, out: list, membership: Optional[Membership]) -> None:
        if membership is None:
            membership = Membership(self.gpid, self.ballot, self.me, (),
                                    self.max_replica_count)
        self.pc = _PrimaryCtx(replace(membership, ballot=self.ballot), now)
        # reconciliation (§3.6): re-propose every decree above the commit point with our ballot
        lcd = self.plist.last_committed_decree
        for d in list(self.plist.uncommitted()):
            slot = self.plist.get(d)
            if slot is None:
                mu = Mutation(self.gpid, self.ballot, d, lcd, self._ts(now),
                              (Update(RPC_WRITE_EMPTY),))
                clients = ()
            else:
                mu = replace(slot.mutation, ballot=self.ballot, last_committed_decree=lcd)
                clients = slot.clients
            self._prepare(now, out, mu, clients)
        self._group_check(now, out)
        self._commit(now, out)

    def _prepare(self, now: float, out: list, mu: Mutation, clients) -> None:
        pc = self.pc
        targets = list(pc.membership.secondaries)
        for node, st in pc.learners.items():
            if 0 <= st.prepare_start <= mu.decree:
                targets.append(node)
        old = self.plist.get(mu.decree)
        if old is not None and old.mutation == mu:
            old.waiting = set(targets)
            old.clients = tuple(clients) or old.clients
        else:
            self.plist.put(mu, waiting=targets, clients=clients)
            out.append(AppendLog(self.gpid, mu))
        for t in targets:
            self._send_prepare(now, out, t, mu)
        pc.last_prepare = now

    def _send_prepare(self, now: float, out: list, node, mu: Mutation) -> None:
        pc = self.pc
        timeout = (self.opts.prepare_timeout_learner if node in pc.learners
                   else self.opts.prepare_timeout_secondary)
        infl = pc.inflight.get((mu.decree, node))
        if infl is None:
            pc.inflight[(mu.decree, node)] = _Inflight(now + timeout)
        else:
            infl.retry_at = None
        out.append(Send(node, Prepare(self._config_for(node), mu)))

    def _commit(self, now: float, out: list) -> None:
        self._apply(out, self.plist.commit_ready())
        self._drain(now, out)

    def _drain(self, now: float, out: list) -> None:
        pc = self.pc
        if pc is None:
            return
        pl = self.plist
        q, opts = pc.queue, self.opts
        while q and pl.max_decree < pl.last_committed_decree + opts.staleness_for_commit:
            upd, client = q.popleft()
            upds, clients = [upd], [client]
            if upd.code in BATCHABLE:
                size = upd.size
                while (q and len(upds) < opts.batch_max_count and q[0][0].code in BATCHABLE
                       and size + q[0][0].size <= opts.batch_max_bytes):
                    u, c = q.popleft()
                    upds.append(u)
                    clients.append(c)
                    size += u.size
            mu = Mutation(self.gpid, self.ballot, pl.max_decree + 1, pl.last_committed_decree,
                          self._ts(now), tuple(upds))
            self._prepare(now, out, mu, tuple(clients))

    def client_write(self, now: float, code: str, payload, client, size: int = 0,
                     defer: bool = False) -> list:
        """A client write request (§3.1 admission from "not PS_PRIMARY" on). ``size`` (bytes)
        bounds batching; the answer is the ``ReplyClient`` of the mutation that carries it.
        ``defer``: only queue it; the driver calls ``flush_writes`` once it has taken every
        request that arrived together, so they share mutations (upstream batches the same
        way: what is queued when the write queue is serviced goes out as one mutation)."""
        if not self.is_serving(now):
            return [ReplyClient(self.gpid, (client,), E.ERR_INVALID_STATE)]
        if 1 + len(self.pc.membership.secondaries) < self.opts.mutation_2pc_min_replica_count:
            return [ReplyClient(self.gpid, (client,), E.ERR_NOT_ENOUGH_MEMBER)]
        self.pc.queue.append((Update(code, payload, size), client))
        if defer:
            return []
        out: list = []
        self._drain(now, out)
        return out

    def flush_writes(self, now: float) -> list:
        """Put the queued client writes into mutations (as far as the 2PC window allows)."""
        out: list = []
        if self.pc is not None and self.pc.queue:
            self._drain(now, out)
        return out

    def on_prepare_ack(self, now: float, sender, ack: PrepareAck) -> list:
        out: list = []
        pc = self.pc
        if self.status != PS_PRIMARY or ack.ballot != self.ballot:
            return out
        infl = pc.inflight.get((ack.decree, sender))
        if infl is None:
            return out
        if ack.err == E.ERR_OK:
            del pc.inflight[(ack.decree, sender)]
            slot = self.plist.get(ack.decree)
            if slot is not None and slot.mutation.ballot == self.ballot:
                slot.waiting.discard(sender)
                self._commit(now, out)
        elif ack.err in (E.ERR_INACTIVE_STATE, E.ERR_TRY_AGAIN):
            if infl.deadline - now >= self.opts.prepare_retry_min_left:
                infl.retry_at = now + self.opts.prepare_retry_delay
            else:
                self._remote_failure(now, out, sender)
        else:
            self._remote_failure(now, out, sender)
        return out

    def _remote_failure(self, now: float, out: list, node) -> None:
        """§3.5: a prepare or group check towards ``node`` failed."""
        pc = self.pc
        if pc is None:
            return
        if node in pc.learners:
            del pc.learners[node]
            pc.gc_pending.pop(node, None)
            for key in [k for k in pc.inflight if k[1] == node]:
                del pc.inflight[key]
            for d in self.plist.uncommitted():
                slot = self.plist.get(d)
                if slot is not None:
                    slot.waiting.discard(node)
            self._commit(now, out)
        elif node in pc.membership.secondaries and self.proposing is None:
            m = self._membership_now()
            new = replace(m, ballot=self.ballot + 1,
                          secondaries=tuple(s for s in m.secondaries if s != node))
            self._propose(now, out, CT_DOWNGRADE_TO_INACTIVE, node, new)

    # ================================================================ secondary: prepare
    def _ack(self, out: list, to, err: str, mu: Mutation) -> None:
        a, p = self._reply_lcds()
        out.append(Send(to, PrepareAck(self.gpid, err, mu.ballot, mu.decree, a, p)))

    def on_prepare(self, now: float, sender, msg: Prepare) -> list:
        out: list = []
        mu, cfg = msg.mutation, msg.config
        if mu.ballot < self.ballot:
            return out                                     # stale: dropped silently
        if cfg.ballot > self.ballot:
            if not self._set_config(now, out, cfg.ballot, cfg.primary, cfg.status,
                                    signature=cfg.learner_signature):
                self._ack(out, sender, E.ERR_INVALID_STATE, mu)
                return out
        st = self.status
        if st == PS_INACTIVE:
            self._ack(out, sender, E.ERR_INACTIVE_STATE if self.transient
                      else E.ERR_INVALID_STATE, mu)
            return out
        if st in (PS_ERROR, PS_PRIMARY):
            self._ack(out, sender, E.ERR_INVALID_STATE, mu)
            return out
        if st == PS_POTENTIAL_SECONDARY:
            lc = self.lc
            if lc is None or lc.signature != cfg.learner_signature:
                self._ack(out, sender, E.ERR_INVALID_STATE, mu)
                return out
            if lc.status == LEARNING_WITHOUT_PREPARE:
                self._ack(out, sender, E.ERR_TRY_AGAIN, mu)
                return out
            if lc.status not in (LEARNING_WITH_PREPARE, LEARNING_SUCCEEDED):
                self._ack(out, sender, E.ERR_INVALID_STATE, mu)
                return out
        if mu.decree <= self.plist.last_committed_decree:
            self._ack(out, sender, E.ERR_OK, mu)
            return out
        slot = self.plist.get(mu.decree)
        if slot is not None and slot.mutation.ballot == mu.ballot:
            if slot.logged:
                self._ack(out, sender, E.ERR_OK, mu)
            return out                                     # acked when its append completes
        _, committed = self.plist.prepare(mu)
        self._apply(out, committed)
        out.append(AppendLog(self.gpid, mu))
        return out

    def on_log_appended(self, now: float, decree: int, ballot: int) -> list:
        out: list = []
        slot = self.plist.get(decree)
        if slot is None or slot.mutation.ballot != ballot or slot.logged:
            return out
        slot.logged = True
        if self.status == PS_PRIMARY:
            self._commit(now, out)
        elif self.status in (PS_SECONDARY, PS_POTENTIAL_SECONDARY) and ballot == self.ballot:
            mu = slot.mutation
            self._apply(out, self.plist.commit_hard(mu.last_committed_decree))
            self._ack(out, self.primary, E.ERR_OK, mu)
        return out

    # ================================================================ group check (§6.7)
    def _group_check(self, now: float, out: list) -> None:
        pc = self.pc
        pc.next_group_check = now + self.opts.group_check_interval
        lcd = self.plist.last_committed_decree
        for node in list(pc.membership.secondaries) + list(pc.learners):
            pc.gc_pending[node] = now + self.opts.group_check_timeout
            out.append(Send(node, GroupCheck(self._config_for(node), lcd)))

    def on_group_check(self, now: float, sender, msg: GroupCheck) -> list:
        out: list = []
        cfg = msg.config

        def reply(err):
            a, p = self._reply_lcds()
            lc = self.lc
            out.append(Send(sender, GroupCheckReply(
                self.gpid, err, self.me, a, p, lc.status if lc else LEARNING_INVALID,
                lc.signature if lc else 0)))
            return out

        if self.status == PS_ERROR:
            return reply(E.ERR_INVALID_STATE)
        if cfg.ballot < self.ballot:
            return reply(E.ERR_VERSION_OUTDATED)
        if not self._set_config(now, out, cfg.ballot, cfg.primary, cfg.status,
                                signature=cfg.learner_signature):
            return reply(E.ERR_INVALID_STATE)
        if self.status == PS_SECONDARY:
            self._apply(out, self.plist.commit_hard(msg.last_committed_decree))
        elif self.status == PS_POTENTIAL_SECONDARY:
            lc = self.lc
            if lc.status == LEARNING_FAILED or (
                    lc.status == LEARNING_WITHOUT_PREPARE and not lc.inflight
                    and not lc.installing and lc.retry_at is None):
                lc.status = LEARNING_WITHOUT_PREPARE
                self._send_learn(now, out)
            elif lc.status == LEARNING_WITH_PREPARE:
                self._check_learned(now, out)
        return reply(E.ERR_OK)

    def on_group_check_reply(self, now: float, sender, msg: GroupCheckReply) -> list:
        out: list = []
        pc = self.pc
        if self.status != PS_PRIMARY or pc.gc_pending.pop(sender, None) is None:
            return out
        if msg.err != E.ERR_OK:
            self._remote_failure(now, out, sender)
            return out
        st = pc.learners.get(sender)
        if st is not None and msg.learner_status == LEARNING_SUCCEEDED \
                and msg.learner_signature == st.signature:
            self._promote(now, out, sender)
        return out

    # ================================================================ learning (§7)
    def _add_learner(self, now: float, out: list, node, for_lb: bool) -> None:
        pc = self.pc
        if node == self.me or node in pc.membership.secondaries:
            return
        invite = [node]
        if node not in pc.learners:
            limit = self.max_replica_count - (0 if for_lb else 1)
            if len(pc.membership.secondaries) + len(pc.learners) >= limit:
                # no room for another learner (upstream ignores the proposal too); invite the
                # current ones again: one still learning ignores it, one that lost its learning
                # state starts again, so the slot cannot stay taken by a learner doing nothing
                invite = list(pc.learners)
            else:
                pc.learners[node] = _Learner(pc.next_signature)
                pc.next_signature += 1
        lcd = self.plist.last_committed_decree
        for n in invite:
            out.append(Send(n, AddLearner(self._config_for(n), lcd)))

    def on_add_learner(self, now: float, sender, msg: AddLearner) -> list:
        out: list = []
        cfg = msg.config
        if self.status == PS_ERROR or cfg.ballot < self.ballot:
            return out
        if self.proposing is not None and cfg.ballot >= self.proposing.config.ballot:
            # a primary of that ballot exists, so our own proposal for it (say, to be primary
            # of a new partition, when the meta asked two nodes) can only be refused; its
            # answer must not end the learning that starts here
            self.proposing = None
        if self.status == PS_POTENTIAL_SECONDARY and self.lc and \
                self.lc.signature == cfg.learner_signature and cfg.ballot == self.ballot:
            lc = self.lc
            if lc.status == LEARNING_FAILED and not lc.inflight and not lc.installing:
                lc.status = LEARNING_WITHOUT_PREPARE       # the primary asks again: retry
                self._send_learn(now, out)
            return out                                     # duplicate: the round is running
        self._set_config(now, out, cfg.ballot, cfg.primary, PS_POTENTIAL_SECONDARY,
                         signature=cfg.learner_signature)
        return out

    def _start_learning(self, now: float, out: list, signature: int) -> None:
        self.lc = _LearnerCtx(signature)
        lcd = self.plist.last_committed_decree
        if self.plist.max_decree > lcd:
            out.append(DiscardLogAfter(self.gpid, lcd))    # uncommitted leftovers
        self.plist.reset(lcd)
        self._send_learn(now, out)

    def _send_learn(self, now: float, out: list) -> None:
        lc = self.lc
        # numbered across rounds: a response to an earlier round's request (another signature)
        # must not be taken for this round's
        self._learn_round += 1
        lc.seq = self._learn_round
        lc.inflight = True
        lc.retry_at = None
        lc.deadline = now + self.opts.learn_timeout
        a, p = self._reply_lcds()
        out.append(Send(self.primary, LearnRequest(self.gpid, self.me, lc.signature, a, p,
                                                   lc.seq)))

    def on_learn(self, now: float, sender, req: LearnRequest,
                 log_first_decree: Optional[int] = None) -> list:
        """Learnee side (§7.3). ``log_first_decree``: the lowest decree from which the private
        log holds every mutation up to the commit point (None: nothing usable)."""
        out: list = []

        def respond(err, cfg=None, **kw):
            out.append(Send(sender, LearnResponse(self.gpid, err, cfg, learnee=self.me,
                                                  seq=req.seq, **kw)))
            return out

        if self.status != PS_PRIMARY:
            return respond(E.ERR_INACTIVE_STATE if self.status == PS_INACTIVE and self.transient
                           else E.ERR_INVALID_STATE)
        pc = self.pc
        st = pc.learners.get(req.learner)
        if st is None:
            return respond(E.ERR_OBJECT_NOT_FOUND,
                           ReplicaConfig(self.gpid, self.ballot, self.me, PS_INACTIVE))
        cfg = self._config_for(req.learner)
        if st.signature != req.signature:
            return respond(E.ERR_WRONG_CHECKSUM, cfg)
        pl = self.plist
        learner_lcd = req.last_committed_decree_in_app
        if learner_lcd > pl.max_decree:
            learner_lcd = 0                                # learner diverged: start it over
        elif learner_lcd > pl.last_committed_decree:
            self._commit(now, out)
            if learner_lcd > pl.last_committed_decree:
                return respond(E.ERR_INCONSISTENT_STATE, cfg)
        lcd = pl.last_committed_decree
        start = learner_lcd + 1
        if start >= pl.min_decree and pl.covers(start, lcd):
            st.prepare_start = lcd + 1
            muts = tuple(pl.mutation(d) for d in range(start, lcd + 1))
            respond(E.ERR_OK, cfg, last_committed_decree=lcd, prepare_start_decree=lcd + 1,
                    type=LT_CACHE, state=LearnState(learner_lcd, lcd, muts))
            for d in range(lcd + 1, pl.max_decree + 1):   # replay the uncommitted window
                slot = pl.get(d)
                if slot is not None and slot.mutation.ballot == self.ballot:
                    slot.waiting.add(req.learner)
                    self._send_prepare(now, out, req.learner, slot.mutation)
            return out
        kind = LT_LOG if (log_first_decree is not None and log_first_decree <= start) else LT_APP
        state = LearnState(learner_lcd, lcd) if kind == LT_LOG else LearnState(0, 0)
        out.append(SendLearnResponse(sender, LearnResponse(
            self.gpid, E.ERR_OK, cfg, last_committed_decree=lcd, type=kind, state=state,
            learnee=self.me, seq=req.seq), kind))
        return out

    def on_learn_response(self, now: float, sender, resp: LearnResponse) -> list:
        out: list = []
        lc = self.lc
        if (self.status != PS_POTENTIAL_SECONDARY or lc is None or not lc.inflight
                or resp.seq != lc.seq):
            return out
        lc.inflight = False
        if resp.err != E.ERR_OK:
            if resp.err in (E.ERR_INACTIVE_STATE, E.ERR_INCONSISTENT_STATE):
                lc.retry_at = now + self.opts.learn_retry
            else:
                lc.status = LEARNING_FAILED
            return out
        if resp.last_committed_decree < self.plist.last_committed_decree:
            # the learnee is behind our store: wipe it and start from empty (§7.4)
            out.append(ResetStorage(self.gpid))
            out.append(DiscardLogAfter(self.gpid, 0))
            self.plist.reset(0)
            self._send_learn(now, out)
            return out
        if resp.type == LT_CACHE:
            if not self._apply_learned(out, resp.state.mutations,
                                       resp.prepare_start_decree - 1):
                lc.status = LEARNING_FAILED
                return out
            self.plist.reset(resp.prepare_start_decree - 1)
            lc.status = LEARNING_WITH_PREPARE
            self._check_learned(now, out)
        elif resp.type == LT_LOG:
            if not self._apply_learned(out, resp.state.mutations, resp.state.to_decree_included):
                lc.status = LEARNING_FAILED
                return out
            self._send_learn(now, out)
        elif resp.type == LT_APP:
            lc.installing = True
            out.append(InstallCheckpoint(self.gpid, sender, resp.state, lc.seq))
        else:
            lc.status = LEARNING_FAILED
        return out

    def _apply_learned(self, out: list, mutations, upto: int) -> bool:
        """Apply learned committed mutations (already ordered) through ``upto``."""
        pl = self.plist
        for m in sorted(mutations, key=lambda m: m.decree):
            if m.decree <= pl.last_committed_decree or m.decree > upto:
                continue
            if m.decree != pl.last_committed_decree + 1:
                return False
            out.append(AppendLog(self.gpid, m))
            out.append(Apply(self.gpid, m))
            pl.reset(m.decree)
        return pl.last_committed_decree >= upto

    def checkpoint_wanted(self, seq: int) -> bool:
        """Whether the checkpoint copied for learning round ``seq`` may replace the store."""
        lc = self.lc
        return (self.status == PS_POTENTIAL_SECONDARY and lc is not None and lc.installing
                and lc.seq == seq)

    def on_checkpoint_installed(self, now: float, decree: int, seq: Optional[int] = None) -> list:
        out: list = []
        lc = self.lc
        if lc is None or not lc.installing or (seq is not None and seq != lc.seq):
            return out
        lc.installing = False
        self.plist.reset(decree)
        out.append(DiscardLogAfter(self.gpid, 0))
        self._send_learn(now, out)
        return out

    def on_checkpoint_install_failed(self, now: float, seq: Optional[int] = None) -> list:
        if self.lc is not None and self.lc.installing and (seq is None or seq == self.lc.seq):
            self.lc.installing = False
            self.lc.retry_at = now + self.opts.learn_retry
        return []

    def _check_learned(self, now: float, out: list) -> None:
        lc, pl = self.lc, self.plist
        if lc.status == LEARNING_WITH_PREPARE and (len(pl) == 0 or
                                                  pl.last_committed_decree + 1 >= pl.min_decree):
            lc.status = LEARNING_SUCCEEDED
            self._notify_learned(now, out)

    def _notify_learned(self, now: float, out: list) -> None:
        lc = self.lc
        lc.notify_at = now + self.opts.learn_completion_resend
        a, p = self._reply_lcds()
        out.append(Send(self.primary, LearnCompletion(self.gpid, self.me, lc.signature, a, p)))

    def on_learn_completion(self, now: float, sender, msg: LearnCompletion) -> list:
        out: list = []
        pc = self.pc
        st = pc.learners.get(sender) if (pc and self.status == PS_PRIMARY) else None
        if st is None or st.signature != msg.signature or st.prepare_start < 0:
            out.append(Send(sender, LearnNotifyReply(self.gpid, E.ERR_INVALID_STATE,
                                                     msg.signature)))
            return out
        out.append(Send(sender, LearnNotifyReply(self.gpid, E.ERR_OK, msg.signature)))
        self._promote(now, out, sender)
        return out

    def on_learn_notify_reply(self, now: float, sender, msg: LearnNotifyReply) -> list:
        """A refused completion notice does not undo the learning: the learner's data is
        complete either way. The primary may already have proposed the upgrade (it answers
        ERR_INVALID_STATE while its proposal is out), and if the meta accepted it this replica
        is a secondary in the next configuration; marking it LEARNING_FAILED would make it refuse
        that configuration for ever (seen in randomized runs: the only live secondary of a
        partition stuck as a failed learner). A stale round ends when a primary starts a new
        one (AddLearner / group check with another signature) or removes the replica."""
        return []

    def _promote(self, now: float, out: list, node) -> None:
        if self.proposing is not None or self.pc.learners[node].prepare_start < 0:
            return
        m = self._membership_now()
        new = replace(m, ballot=self.ballot + 1, secondaries=tuple(m.secondaries) + (node,))
        self._propose(now, out, CT_UPGRADE_TO_SECONDARY, node, new)

    # ================================================================ meta interaction
    def on_proposal(self, now: float, p: ConfigProposal) -> list:
        """RPC_CONFIG_PROPOSAL (§6.1)."""
        out: list = []
        cfg = p.config
        if self.proposing is not None and self.status != PS_ERROR and cfg.ballot >= self.ballot:
            # the meta's next proposal can overtake its answer to ours (two connections):
            # keep the latest and look at it once our proposal is answered
            self._held_proposal = p
            return out
        if self.status == PS_ERROR or cfg.ballot < self.ballot or self.proposing is not None:
            return out
        if cfg.ballot > self.ballot:
            self._adopt(now, out, cfg)
        self.max_replica_count = cfg.max_replica_count or self.max_replica_count
        t = p.type
        if t in (CT_ASSIGN_PRIMARY, CT_UPGRADE_TO_PRIMARY):
            if p.node != self.me or self.status == PS_PRIMARY:
                return out
            if t == CT_UPGRADE_TO_PRIMARY and self.status != PS_SECONDARY:
                return out
            new = replace(cfg, ballot=self.ballot + 1, primary=self.me,
                          secondaries=tuple(s for s in cfg.secondaries if s != self.me),
                          last_committed_decree=self.plist.last_committed_decree)
            self._propose(now, out, t, self.me, new)
            return out
        if self.status != PS_PRIMARY or cfg.ballot != self.ballot:
            return out
        m = self.pc.membership
        if cfg.primary != m.primary or set(cfg.secondaries) != set(m.secondaries):
            return out
        if t in (CT_ADD_SECONDARY, CT_ADD_SECONDARY_FOR_LB):
            self._add_learner(now, out, p.node, t == CT_ADD_SECONDARY_FOR_LB)
        elif t == CT_DOWNGRADE_TO_SECONDARY:
            # the balancer moves the primary role (§8): this primary becomes a secondary of a
            # configuration without primary; the meta then upgrades another secondary
            if p.node == self.me:
                cur = self._membership_now()
                new = replace(cur, ballot=self.ballot + 1, primary=None,
                              secondaries=tuple(cur.secondaries) + (self.me,))
                self._propose(now, out, t, self.me, new)
        elif t in (CT_DOWNGRADE_TO_INACTIVE, CT_REMOVE):
            if p.node in self.pc.learners:
                self._remote_failure(now, out, p.node)
            elif p.node in m.secondaries:
                cur = self._membership_now()
                new = replace(cur, ballot=self.ballot + 1,
                              secondaries=tuple(s for s in m.secondaries if s != p.node))
                self._propose(now, out, t, p.node, new)
        return out

    def on_meta_update_reply(self, now: float, err: str, config: Optional[Membership]) -> list:
        out: list = []
        p = self.proposing
        if p is None:
            return out
        if err == E.ERR_OK and config is not None and config.ballot == p.config.ballot:
            self.proposing = None
            self._adopt(now, out, config)
            if self.status == PS_PRIMARY:
                for n in p.learners:
                    if n not in config.secondaries:
                        self._add_learner(now, out, n, False)
            if p.type == CT_REMOVE:
                out.append(Send(p.node, RemoveReplica(
                    ReplicaConfig(self.gpid, config.ballot, config.primary, PS_INACTIVE))))
            held, self._held_proposal = self._held_proposal, None
            if held is not None and held.config.ballot == self.ballot:
                out += self.on_proposal(now, held)
        elif err in (E.ERR_OK, E.ERR_INVALID_VERSION) and config is not None:
            self.proposing = None
            if config.ballot >= self.ballot:
                self._adopt(now, out, config)
        else:
            p.next_retry = now + self.opts.config_retry
        return out

    def on_config_sync(self, now: float, m: Membership) -> list:
        """One partition of an RPC_CM_CONFIG_SYNC reply that concerns this replica (§6.6)."""
        out: list = []
        if self.status in (PS_ERROR, PS_PRIMARY) or self.proposing is not None:
            return out
        if m.ballot < self.ballot:
            return out
        self.max_replica_count = m.max_replica_count or self.max_replica_count
        if self.initializing and m.primary == self.me:
            # restarted primary: fence off the previous incarnation's messages
            new = replace(m, ballot=m.ballot + 1,
                          last_committed_decree=self.plist.last_committed_decree)
            self._propose(now, out, CT_PRIMARY_FORCE_UPDATE_BALLOT, self.me, new)
            return out
        if self.status == PS_INACTIVE and not self.transient and not self.initializing and (
                m.primary == self.me or m.primary is None) and self.me in m.members():
            new = replace(m, ballot=m.ballot + 1,
                          primary=None if m.primary == self.me else m.primary,
                          secondaries=tuple(s for s in m.secondaries if s != self.me))
            self._propose(now, out, CT_DOWNGRADE_TO_INACTIVE, self.me, new)
            return out
        self._adopt(now, out, m)
        return out

    def on_remove(self, now: float, msg: RemoveReplica) -> list:
        out: list = []
        if msg.config.ballot >= self.ballot and self.status != PS_PRIMARY:
            if msg.config.ballot > self.ballot:
                self.ballot = msg.config.ballot
                out.append(PersistBallot(self.gpid, self.ballot, self.member_ballot))
            self._go_inactive(out, transient=False)
        return out

    def on_lease(self, now: float, lease_until: float) -> list:
        """The node's meta lease now runs until ``lease_until`` (an acked beacon's send time +
        fd_lease_seconds). Call it for a new core right away with the node's current lease.

        A renewal that comes after the previous lease had already run out starts a new lease
        epoch: while it was out the meta may have declared this node dead and moved the
        partition on, and a beacon still in flight at that moment renews the lease afterwards.
        So the replica drops back to INACTIVE(transient) and forgets any reconfiguration it was
        waiting for; only the config sync the node sends after reconnecting restores it (the
        node must not answer with a config sync reply requested before the lapse)."""
        out: list = []
        if now >= self.lease_until:
            self._lease_lapsed(now, out)
        self.lease_until = lease_until
        return out

    def on_meta_disconnected(self, now: float) -> list:
        """The node lost its meta lease (meta.md §6.3): stop serving."""
        out: list = []
        self.lease_until = min(self.lease_until, now)
        self._lease_lapsed(now, out)
        return out

    def _lease_lapsed(self, now: float, out: list) -> None:
        self.lease_epoch += 1
        self.proposing = None
        self._held_proposal = None
        if self.status in (PS_PRIMARY, PS_SECONDARY):
            self._go_inactive(out, transient=True)
        elif self.status == PS_POTENTIAL_SECONDARY:
            self._go_inactive(out, transient=False)

    # ================================================================ restart
    def replay(self, now: float, mutations) -> list:
        """Rebuild the prepare list from the private log after a restart (decree order, latest
        append per decree); commits what the log itself proves committed."""
        out: list = []
        pl = self.plist
        top = pl.last_committed_decree
        for m in sorted(mutations, key=lambda m: m.decree):
            self._last_ts = max(self._last_ts, m.timestamp_us)
            if m.decree <= pl.last_committed_decree:
                continue
            if m.decree - pl.min_decree >= pl.capacity and pl.last_committed_decree < pl.min_decree:
                break                     # a hole below: the rest is relearned later
            pl.put(m, logged=True)
            top = max(top, m.last_committed_decree)
            self._apply(out, pl.commit_soft(min(top, m.decree)))
        self._apply(out, pl.commit_soft(top))
        return out

    # ================================================================ timers
    def tick(self, now: float) -> list:
        out: list = []
        p = self.proposing
        if p is not None and now >= p.next_retry and now < self.lease_until:
            p.next_retry = now + self.opts.config_retry
            out.append(ReportToMeta(self.gpid, p.type, p.node, p.config))
        if self.status == PS_PRIMARY:
            self._tick_primary(now, out)
        elif self.status == PS_POTENTIAL_SECONDARY and self.lc is not None:
            lc = self.lc
            if lc.inflight and now >= lc.deadline:
                self._send_learn(now, out)
            elif (not lc.inflight and not lc.installing and lc.retry_at is not None
                  and now >= lc.retry_at):
                self._send_learn(now, out)
            elif lc.status == LEARNING_SUCCEEDED and now >= lc.notify_at:
                self._notify_learned(now, out)
        return out

    def _tick_primary(self, now: float, out: list) -> None:
        pc = self.pc
        failed = []
        for (d, node), infl in list(pc.inflight.items()):
            if infl.retry_at is not None and now >= infl.retry_at:
                slot = self.plist.get(d)
                if slot is not None and node in slot.waiting:
                    self._send_prepare(now, out, node, slot.mutation)
                else:
                    del pc.inflight[(d, node)]
            elif now >= infl.deadline:
                failed.append(node)
        failed += [n for n, dl in pc.gc_pending.items() if now >= dl]
        for node in dict.fromkeys(failed):
            if self.status != PS_PRIMARY:
                return
            self._remote_failure(now, out, node)
        if self.status != PS_PRIMARY:
            return
        if now >= pc.next_group_check:
            idle = now - pc.last_prepare >= self.opts.group_check_interval
            self._group_check(now, out)
            if idle and not self.opts.empty_write_disabled and not pc.queue:
                pl = self.plist
                if pl.max_decree < pl.last_committed_decree + self.opts.staleness_for_commit:
                    mu = Mutation(self.gpid, self.ballot, pl.max_decree + 1,
                                  pl.last_committed_decree, self._ts(now),
                                  (Update(RPC_WRITE_EMPTY),))
                    self._prepare(now, out, mu, ())
