"""Partition guardian: the meta's cure decision for one partition (replication.md §6.2-§6.4).

A pure function over a snapshot: ``cure(pc, view)`` looks at one ``PartitionConfig`` and a
``GuardianView`` of the cluster (alive nodes, per-node load, the partition's dropped replicas and
the replica states nodes reported through config sync) and returns at most one ``Action``
(config type, the node that must act = ``target``, the node concerned = ``node``) or ``None``
(healthy, or nothing may be done yet: the DDD and "wait for the dropped node" rules). The caller
(``meta/state.py``) turns an action into an RPC_CONFIG_PROPOSAL, keeps proposals from being
re-sent too often, and maintains the dropped list.

Deviation from upstream (found by the simulation tier): upstream refuses the DDD choice when the
node with the larger ballot reports the smaller last committed decree. A replica's LCD is only
what it *knows* to be committed (secondaries learn it lazily, and a primary that restarts can
prove from its log only the LCD carried by its last mutation), so that happens after a perfectly
normal history and the partition stays dead for good. A member of a later configuration holds
every mutation committed before it, so here the larger ballot is accepted as long as its *last
prepared* decree covers the other's LCD. Ballots are the replicas' "member ballots" (the last
configuration they were PRIMARY/SECONDARY in, see ``replica/pacifica.py``).

Decision table (first matching row wins):

* no primary, an alive secondary -> CT_UPGRADE_TO_PRIMARY to the alive secondary with the fewest
  primaries (then fewest replicas of this table, then overall, then address), preferring those
  not in ``view.avoid_upgrade`` (the caller lists there the secondaries that ignored the same
  upgrade several times: a secondary the meta accepted whose learner never finished — its
  primary died first — refuses the upgrade forever, while another secondary could take over);
* no primary, no secondary, ``last_drops`` empty (new partition) -> CT_ASSIGN_PRIMARY to the
  alive node with the fewest primaries (same tie-breaks);
* no primary, no secondary, ``last_drops`` non-empty -> DDD (§6.4): one drop: wait for it and
  assign it; otherwise the last two drops must both be alive and have reported; choose by
  ballot, then LCD, then last prepared decree, if their states are consistent; else wait;
* 1 + #secondaries < max_replica_count -> CT_ADD_SECONDARY (sent to the primary) on the node
  chosen by §6.3 (emergency: newest alive dropped node, else least loaded alive non-member;
  not emergency: only the most recently dropped node, when alive again; else wait);
* #secondaries >= max_replica_count -> CT_REMOVE of the secondary on the most loaded node;
* otherwise healthy.

Must not import gevent, socket, time or kazoo.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import FrozenSet, Mapping, Optional, Sequence, Tuple

CT_ASSIGN_PRIMARY, CT_UPGRADE_TO_PRIMARY, CT_ADD_SECONDARY = 1, 2, 3
CT_REMOVE = 7


@dataclass(frozen=True)
class ReplicaState:
    """What a node reported about its replica of the partition (config sync
    ``stored_replicas``); a node that reported no replica is ``ReplicaState.absent()``."""
    ballot: int
    last_committed_decree: int
    last_prepared_decree: int

    @classmethod
    def absent(cls) -> "ReplicaState":
        return cls(-1, -1, -1)


@dataclass(frozen=True)
class Action:
    type: int
    target: object      # the node the proposal is sent to
    node: object        # the node concerned
    reason: str = ""
    by_load: bool = False   # ``node`` is only the least loaded candidate: another would do


@dataclass(frozen=True)
class GuardianView:
    """The cluster as the cure sees it. Counts default to 0 for nodes not listed."""
    now: float
    alive: FrozenSet[object]
    primary_count: Mapping[object, int] = field(default_factory=dict)
    replica_count: Mapping[object, int] = field(default_factory=dict)        # all tables
    table_replica_count: Mapping[object, int] = field(default_factory=dict)  # this table
    # this partition: node -> time it was dropped (nodes of last_drops; missing = unknown)
    drop_times: Mapping[object, float] = field(default_factory=dict)
    # this partition: node -> reported replica state (a key present = the node has reported)
    reported: Mapping[object, ReplicaState] = field(default_factory=dict)
    min_2pc: int = 2
    replica_assign_delay: float = 600.0
    black_list: FrozenSet[object] = frozenset()
    # this partition: secondaries not to upgrade to primary if another alive one exists
    avoid_upgrade: FrozenSet[object] = frozenset()


@dataclass
class Decision:
    """``cure`` result with the reason it waits (for DDD diagnosis); ``action`` may be None."""
    action: Optional[Action]
    waiting: str = ""


def _load_key(view: GuardianView, node) -> Tuple:
    return (view.primary_count.get(node, 0), view.table_replica_count.get(node, 0),
            view.replica_count.get(node, 0), str(node))


def _least_partitions_key(view: GuardianView, node) -> Tuple:
    return (view.table_replica_count.get(node, 0), view.replica_count.get(node, 0), str(node))


def decide(pc, view: GuardianView) -> Decision:
    """The cure for one partition; ``pc`` is a ``meta.model.PartitionConfig`` (or anything with
    ``primary`` (None or invalid = no primary), ``secondaries``, ``last_drops``,
    ``max_replica_count`` and ``last_committed_decree``)."""
    primary = _valid(pc.primary)
    secondaries = [s for s in pc.secondaries if _valid(s) is not None]
    alive = view.alive
    if primary is None:
        live_secs = [s for s in secondaries if s in alive]
        if live_secs:
            t = min([s for s in live_secs if s not in view.avoid_upgrade] or live_secs,
                    key=lambda n: _load_key(view, n))
            return Decision(Action(CT_UPGRADE_TO_PRIMARY, t, t, "no primary"))
        if secondaries:
            return Decision(None, "no primary; every secondary is dead")
        if not pc.last_drops:
            cands = [n for n in alive if n not in view.black_list] or list(alive)
            if not cands:
                return Decision(None, "no alive node")
            t = min(cands, key=lambda n: _load_key(view, n))
            return Decision(Action(CT_ASSIGN_PRIMARY, t, t, "new partition", by_load=True))
        return _ddd(pc, view)
    if 1 + len(secondaries) < pc.max_replica_count:
        return _add_secondary(pc, primary, secondaries, view)
    if len(secondaries) >= pc.max_replica_count:
        victim = max(secondaries, key=lambda n: (view.replica_count.get(n, 0), str(n)))
        return Decision(Action(CT_REMOVE, primary, victim, "too many secondaries"))
    return Decision(None)


def cure(pc, view: GuardianView) -> Optional[Action]:
    return decide(pc, view).action


def _valid(addr):
    if addr is None or getattr(addr, "is_invalid", False):
        return None
    return addr


def _ddd(pc, view: GuardianView) -> Decision:
    drops = list(pc.last_drops)
    if len(drops) == 1:
        n = drops[0]
        if n in view.alive:
            return Decision(Action(CT_ASSIGN_PRIMARY, n, n, "DDD: the only dropped node is back"))
        return Decision(None, f"DDD: waiting for {n}")
    prev, last = drops[-2], drops[-1]
    for n in (prev, last):
        if n not in view.alive:
            return Decision(None, f"DDD: waiting for {n} to come back")
        if n not in view.reported:
            return Decision(None, f"DDD: waiting for {n} to report its replica")
    a, b = view.reported[prev], view.reported[last]
    if a.ballot < 0 and b.ballot < 0:
        return Decision(None, "DDD: neither of the last two dropped nodes has the replica")
    hi, lo = (a, b) if a.ballot > b.ballot else (b, a)
    if hi.ballot != lo.ballot and hi.last_committed_decree < lo.last_committed_decree \
            and hi.last_prepared_decree < lo.last_committed_decree:
        return Decision(None, "DDD: ballot and committed decree disagree")
    top_prepared = max(a.last_prepared_decree, b.last_prepared_decree)
    if top_prepared < pc.last_committed_decree or \
            top_prepared < max(a.last_committed_decree, b.last_committed_decree):
        return Decision(None, "DDD: nobody holds every committed mutation")
    key = lambda s: (s.ballot, s.last_committed_decree, s.last_prepared_decree)  # noqa: E731
    chosen = last if key(b) >= key(a) else prev
    return Decision(Action(CT_ASSIGN_PRIMARY, chosen, chosen, "DDD: most recent replica"))


def _add_secondary(pc, primary, secondaries: Sequence, view: GuardianView) -> Decision:
    members = {primary, *secondaries}
    drops = [n for n in pc.last_drops if n not in members]
    count = 1 + len(secondaries)
    newest = drops[-1] if drops else None
    newest_time = view.drop_times.get(newest, float("-inf")) if newest is not None else None
    emergency = ((pc.max_replica_count > view.min_2pc and count < view.min_2pc)
                 or newest is None
                 or view.now - newest_time > view.replica_assign_delay
                 or newest in view.black_list)
    if not emergency:
        if newest in view.alive:
            return Decision(Action(CT_ADD_SECONDARY, primary, newest, "dropped node is back"))
        return Decision(None, f"waiting for the dropped node {newest} "
                              f"(up to {view.replica_assign_delay:.0f}s)")
    for n in reversed(drops):
        if n in view.alive and n not in view.black_list:
            return Decision(Action(CT_ADD_SECONDARY, primary, n, "newest alive dropped node"))
    cands = [n for n in view.alive if n not in members and n not in view.black_list]
    if not cands:
        return Decision(None, "no node to add a secondary on")
    t = min(cands, key=lambda n: _least_partitions_key(view, n))
    return Decision(Action(CT_ADD_SECONDARY, primary, t, "least loaded node", by_load=True))
