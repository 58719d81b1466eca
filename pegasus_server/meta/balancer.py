"""Greedy load balancer: the meta's app-level balancing planner (replication.md §8).

A pure function over a snapshot: ``plan(tables, alive, options, disk_load)`` looks at the
membership of every partition of every table and returns the action lists of one balancer round,
``{pid: (Move, ...)}``, at most one list per partition. The caller (the meta) checks the
preconditions first (every partition healthy, level lively, no dead node still hosting replicas,
every node has reported its replicas, no table creating/dropping/bulk-loading/splitting, tables of
``meta.lb.ignored_app_list`` left out of ``tables``), queues the lists as balancer proposals and
executes each one action at a time; ``apply(p, moves)`` is the membership after a list (for tests
and simulations). Nothing here sends anything or reads a clock.

A round, per table in app_id order, with ``N = len(alive)``, ``low = partition_count // N`` and
``high = ceil(partition_count / N)``; every alive node counts, also a node holding nothing:

1. **Primary balance** (counts: primaries of the table per node). Balanced when no node holds more
   than ``high`` nor fewer than ``low`` primaries. Otherwise:

   * **move_primary** (no data copied). Flow network: source -> node with capacity
     ``primaries - low`` (nodes above ``low``), node -> sink with capacity ``low - primaries``
     (nodes below ``low``), node A -> node B with capacity "number of A's primaries whose partition
     has a secondary on B". Corner case (some node above ``high`` but none below ``low``): every
     source capacity is lowered by one and every node at exactly ``low`` gets sink capacity 1, so
     the over-loaded nodes feed the nodes that may still take a ``low+1``-th primary. ONE widest
     augmenting path is searched (Dijkstra-like: repeatedly visit the unvisited vertex with the
     widest bottleneck, ties to the lowest vertex index); its bottleneck ``f`` primaries move along
     every hop A -> B: ``f`` partitions primary on A with a secondary on B, in pid order, each
     getting ``(DOWNGRADE_TO_SECONDARY(A, A), UPGRADE_TO_PRIMARY(B, B))``.
   * no path and not ``only_move_primary`` -> **copy_primary**: repeatedly take the node A with
     the most primaries and move one of its primaries (not yet planned this round) to the least
     loaded node B that is not a member of that partition: ``(ADD_SECONDARY_FOR_LB(A, B),
     DOWNGRADE_TO_SECONDARY(A, A), UPGRADE_TO_PRIMARY(B, B), REMOVE(B, A))``. Stops when every
     node reached ``low`` (if some node was below ``low`` when the round started) or when
     ``max - min <= 1`` (otherwise).

2. **Replica balance**, only when the primary phase planned nothing for ANY table this round (as
   upstream: moving primaries first may change what the secondaries should do) and not
   ``only_primary_balancer`` -> **copy_secondary** (counts: replicas of the table per node):
   while ``max - min > 1`` and ``max > total_replicas // N``, move a replica on which the most
   loaded node A is a SECONDARY (never a primary) of a partition not yet planned to the least
   loaded node B that is not a member: ``(ADD_SECONDARY_FOR_LB(primary, B), REMOVE(primary, A))``
   (when no such move exists, a chain of them, see the deviations below).

3. ``balancer_in_turn``: each phase stops after the first table that produced actions.

Ties are broken deterministically. A node's order key is ``(count, disk_load, node)``: the copy
source is the largest key (so among equally loaded nodes the one with MORE disk usage gives), the
copy target the smallest (the one with LESS disk usage receives); the flow-network vertices are
numbered by ``(disk_load, node)``, so equally wide paths prefer nodes with less disk usage.

Deliberate deviations from upstream (all only make the planner more robust; on the states
upstream handles they choose the same kind of action):

* ``disk_load`` is one number per node (upstream counts primaries per disk tag of each node and
  uses it to choose *which* partition moves); here it only breaks ties between nodes, and the
  partition moved on a hop is the lowest pid.
* copy_primary / copy_secondary pick, for the most loaded node A, the least loaded node that is
  not a member of the chosen partition (upstream uses the global minimum and asserts, or skips A,
  when it is a member), and only make a move when it strictly evens out the counts
  (``count(A) - count(B) >= 2``); for copy_primary a node A without such a move is skipped for
  the rest of the loop (as upstream skips a node without a selectable partition). Each accepted
  move lowers the sum of squared counts, so repeated rounds always terminate.
* copy_secondary chains: upstream stays unbalanced for good when every node holding two replicas
  fewer than A is already a member of each partition A is a secondary of (seen in randomized
  placements: A=5, B=4, C=3 replicas, C in all of A's secondary partitions). Here the shortest
  chain A -> B -> ... -> C is planned instead (breadth-first over "x is a secondary of an
  unplanned partition y is not a member of"), one copy_secondary list per hop, each on a
  different partition: A loses one replica, C gains one, the nodes in between keep their count.
  A single hop, when possible, is exactly upstream's move.
* copy_secondary stops at ``max <= total_replicas // N`` where upstream writes
  ``partition_count // N``; both are implied by ``max - min <= 1`` in every reachable state.
* A table with a partition lacking a primary or with a member outside ``alive`` is skipped
  (upstream asserts; the meta must not call the balancer in that state anyway).

``only_move_primary`` only disables copy_primary: copy_secondary still runs (as upstream), so
with it alone ``ADD_SECONDARY_FOR_LB`` may still appear, in 2-action copy_secondary lists.

Must not import gevent, socket, time, kazoo, rocksdict or thriftpy2.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Set, Tuple

CT_UPGRADE_TO_PRIMARY = 2
CT_DOWNGRADE_TO_SECONDARY = 5
CT_REMOVE = 7
CT_ADD_SECONDARY_FOR_LB = 8

MOVE_TYPES = frozenset((CT_UPGRADE_TO_PRIMARY, CT_DOWNGRADE_TO_SECONDARY, CT_REMOVE,
                        CT_ADD_SECONDARY_FOR_LB))


@dataclass(frozen=True)
class Move:
    """One configuration_proposal_action."""
    type: int           # one of the CT_* above
    target: object      # the node that executes the proposal
    node: object        # the node concerned


@dataclass(frozen=True)
class Partition:
    pid: object         # hashable and orderable (Gpid in production)
    primary: object     # a node (None only between the steps of an action list, see ``apply``)
    secondaries: tuple  # nodes


@dataclass(frozen=True)
class Options:
    only_move_primary: bool = False
    only_primary_balancer: bool = False
    balancer_in_turn: bool = False


Plan = Dict[object, Tuple[Move, ...]]


# ---------------------------------------------------------------------------------------------
# action lists

def move_primary_actions(frm, to) -> Tuple[Move, ...]:
    return (Move(CT_DOWNGRADE_TO_SECONDARY, frm, frm), Move(CT_UPGRADE_TO_PRIMARY, to, to))


def copy_primary_actions(frm, to) -> Tuple[Move, ...]:
    return (Move(CT_ADD_SECONDARY_FOR_LB, frm, to), Move(CT_DOWNGRADE_TO_SECONDARY, frm, frm),
            Move(CT_UPGRADE_TO_PRIMARY, to, to), Move(CT_REMOVE, to, frm))


def copy_secondary_actions(primary, frm, to) -> Tuple[Move, ...]:
    return (Move(CT_ADD_SECONDARY_FOR_LB, primary, to), Move(CT_REMOVE, primary, frm))


def apply(p: Partition, moves) -> Partition:
    """The membership after executing ``moves`` in order; raises ValueError on a move the replica
    would refuse (so simulations catch a malformed plan)."""
    primary, secs = p.primary, list(p.secondaries)
    for m in moves:
        if m.type == CT_ADD_SECONDARY_FOR_LB:
            if m.target != primary or m.node == primary or m.node in secs:
                raise ValueError(f"{p.pid}: cannot add {m.node} via {m.target}")
            secs.append(m.node)
        elif m.type == CT_DOWNGRADE_TO_SECONDARY:
            if primary is None or m.target != primary or m.node != primary:
                raise ValueError(f"{p.pid}: {m.target} cannot downgrade {m.node}")
            secs.append(primary)
            primary = None
        elif m.type == CT_UPGRADE_TO_PRIMARY:
            if primary is not None or m.target != m.node or m.node not in secs:
                raise ValueError(f"{p.pid}: cannot upgrade {m.node}")
            secs.remove(m.node)
            primary = m.node
        elif m.type == CT_REMOVE:
            if primary is None or m.target != primary or m.node not in secs:
                raise ValueError(f"{p.pid}: {m.target} cannot remove {m.node}")
            secs.remove(m.node)
        else:
            raise ValueError(f"{p.pid}: unexpected config type {m.type}")
    return Partition(p.pid, primary, tuple(secs))


# ---------------------------------------------------------------------------------------------
# the round

def plan(tables: Mapping[object, Sequence[Partition]], alive: Sequence,
         options: Options = Options(), disk_load: Optional[Mapping[object, int]] = None) -> Plan:
    """The action lists of one balancer round (see the module docstring).

    ``tables``: app_id -> the table's partitions (all healthy, all members in ``alive``);
    ``alive``: the alive nodes (nodes holding nothing are valid targets); ``disk_load``: optional
    node -> disk usage, a tie-breaker only. Inputs are not modified."""
    nodes = sorted(set(alive))
    if not nodes:
        return {}
    disk = dict(disk_load or {})
    states = {}
    for app_id in sorted(tables):
        st = _TableState.build(tables[app_id], nodes, disk)
        if st is not None:
            states[app_id] = st

    result: Plan = {}
    for st in states.values():
        if _primary_balance(st, options.only_move_primary, result) and options.balancer_in_turn:
            return result
    if result or options.only_primary_balancer:
        return result
    for st in states.values():
        if _copy_secondary(st, result) and options.balancer_in_turn:
            break
    return result


class _TableState:
    """The planner's private copy of one table's membership, updated as moves are planned."""

    def __init__(self, parts: Dict[object, Partition], nodes: List, disk: Mapping):
        self.parts = parts
        self.nodes = nodes
        self.disk = disk
        self.planned: Set[object] = set()
        self.hosted: Dict[object, Set[object]] = {node: set() for node in nodes}  # node -> pids
        for p in parts.values():
            for m in (p.primary, *p.secondaries):
                self.hosted[m].add(p.pid)

    @classmethod
    def build(cls, partitions: Sequence[Partition], nodes: List, disk: Mapping):
        alive = set(nodes)
        parts = {}
        for p in partitions:
            members = (p.primary, *p.secondaries)
            if p.primary is None or any(m not in alive for m in members) \
                    or len(set(members)) != len(members):
                return None         # not healthy: the meta should not have asked
            parts[p.pid] = p
        return cls(parts, nodes, disk) if parts else None

    def primary_counts(self) -> Dict[object, int]:
        counts = dict.fromkeys(self.nodes, 0)
        for p in self.parts.values():
            counts[p.primary] += 1
        return counts

    def replica_counts(self) -> Dict[object, int]:
        counts = dict.fromkeys(self.nodes, 0)
        for p in self.parts.values():
            for m in (p.primary, *p.secondaries):
                counts[m] += 1
        return counts

    def key(self, counts: Mapping, node) -> Tuple:
        return counts[node], self.disk.get(node, 0), node

    def record(self, pid, moves: Tuple[Move, ...], result: Plan) -> None:
        assert pid not in self.planned and pid not in result
        old = self.parts[pid]
        new = self.parts[pid] = apply(old, moves)
        for m in (old.primary, *old.secondaries):
            self.hosted[m].discard(pid)
        for m in (new.primary, *new.secondaries):
            self.hosted[m].add(pid)
        self.planned.add(pid)
        result[pid] = moves


# ---------------------------------------------------------------------------------------------
# primary balance

def _primary_balance(st: _TableState, only_move_primary: bool, result: Plan) -> bool:
    """Plans move_primary or copy_primary for one table; True when something was planned."""
    n = len(st.nodes)
    total = len(st.parts)
    low, high = total // n, -(-total // n)
    counts = st.primary_counts()
    higher = sum(1 for c in counts.values() if c > high)
    lower = sum(1 for c in counts.values() if c < low)
    if higher == 0 and lower == 0:
        return False
    path = _widest_path(st, counts, low, corner=(lower == 0))
    if path is not None:
        hops, flow = path
        before = len(result)
        for frm, to in hops:
            cands = sorted(pid for pid in st.hosted[frm] if pid not in st.planned
                           and st.parts[pid].primary == frm and to in st.parts[pid].secondaries)
            for pid in cands[:flow]:
                st.record(pid, move_primary_actions(frm, to), result)
        return len(result) > before
    if only_move_primary:
        return False
    return _copy_primary(st, counts, have_lower=(lower > 0), low=low, result=result)


def _widest_path(st: _TableState, counts: Mapping, low: int, corner: bool):
    """One augmenting path of the primary flow network: ``([(A, B), ...], bottleneck)`` with the
    node hops from the source side to the sink side, or None."""
    order = sorted(st.nodes, key=lambda x: (st.disk.get(x, 0), x))
    index = {node: i + 1 for i, node in enumerate(order)}
    size = len(order) + 2
    src, sink = 0, size - 1
    cap = [[0] * size for _ in range(size)]
    for node in order:
        i, c = index[node], counts[node]
        if c > low:
            cap[src][i] = c - low
        else:
            cap[i][sink] = low - c
        if corner:      # some node above high, none below low: feed the nodes at exactly low
            if cap[src][i] > 0:
                cap[src][i] -= 1
            else:
                cap[i][sink] += 1
    for p in st.parts.values():
        i = index[p.primary]
        for s in p.secondaries:
            cap[i][index[s]] += 1

    width = [0] * size
    prev = [-1] * size
    visited = [False] * size
    width[src] = float("inf")
    while not visited[sink]:
        pos, best = -1, 0
        for v in range(size):
            if not visited[v] and width[v] > best:
                pos, best = v, width[v]
        if pos < 0:
            break
        visited[pos] = True
        for v in range(size):
            if not visited[v]:
                w = min(width[pos], cap[pos][v])
                if w > width[v]:
                    width[v], prev[v] = w, pos
    if not visited[sink] or width[sink] <= 0:
        return None
    hops = []
    v = prev[sink]
    while prev[v] != src:
        hops.append((order[prev[v] - 1], order[v - 1]))
        v = prev[v]
    hops.reverse()
    return hops, int(width[sink])


# ---------------------------------------------------------------------------------------------
# copy_primary

def _copy_primary(st: _TableState, counts: Dict, have_lower: bool, low: int, result: Plan) -> bool:
    """Greedy primary copies from the most to the least loaded nodes (``counts``: primaries per
    node, updated in place). ``have_lower``: stop once every node holds ``low``; otherwise stop
    once ``max - min <= 1``."""
    sources = set(st.nodes)
    planned_any = False
    while sources:
        least = min(counts.values())
        if have_lower and least >= low:
            break
        a = max(sources, key=lambda x: st.key(counts, x))
        if counts[a] - least <= 1:
            break
        choice = None
        for pid in sorted(st.hosted[a]):
            p = st.parts[pid]
            if pid in st.planned or p.primary != a:
                continue
            outsiders = [x for x in st.nodes if x != p.primary and x not in p.secondaries]
            if not outsiders:
                continue
            b = min(outsiders, key=lambda x: st.key(counts, x))
            if choice is None or st.key(counts, b) < st.key(counts, choice[1]):
                choice = (pid, b)
        if choice is None or counts[a] - counts[choice[1]] < 2:
            sources.discard(a)      # no move from a evens anything out any more
            continue
        pid, b = choice
        st.record(pid, copy_primary_actions(a, b), result)
        counts[a] -= 1
        counts[b] += 1
        planned_any = True
    return planned_any


# ---------------------------------------------------------------------------------------------
# copy_secondary

def _copy_secondary(st: _TableState, result: Plan) -> bool:
    """Secondary copies until the table's replica counts per node differ by at most one."""
    counts = st.replica_counts()
    low = sum(counts.values()) // len(st.nodes)
    planned_any = False
    while max(counts.values()) - min(counts.values()) > 1 and max(counts.values()) > low:
        chain = _secondary_chain(st, counts)
        if chain is None:
            break
        for pid, frm, to in chain:
            st.record(pid, copy_secondary_actions(st.parts[pid].primary, frm, to), result)
        counts[chain[0][1]] -= 1
        counts[chain[-1][2]] += 1
        planned_any = True
    return planned_any


def _secondary_chain(st: _TableState, counts: Mapping) -> Optional[List[Tuple]]:
    """``[(pid, from, to), ...]``: the shortest chain of secondary moves from the most loaded
    node that has one to a node holding at least two replicas fewer (intermediate nodes give one
    replica and get one). Usually a single hop; longer only when every such node is already a
    member of each partition the loaded node is a secondary of. Among equally short chains the
    least loaded end node wins; sources are tried from the most loaded down."""
    key = lambda x: st.key(counts, x)  # noqa: E731
    least = min(counts.values())
    for a in sorted(st.nodes, key=key, reverse=True):
        if counts[a] - least < 2:
            break
        parent = {a: None}
        level = [a]
        while level:
            found = []
            for x in level:
                for y in sorted(_secondary_targets(st, x), key=key):
                    if y not in parent:
                        parent[y] = x
                        found.append(y)
            goals = [y for y in found if counts[y] <= counts[a] - 2]
            if goals:
                chain = _realize_chain(st, parent, min(goals, key=key))
                if chain is not None:
                    return chain
                break               # the hops would need the same partition twice: next source
            level = sorted(found, key=key)
    return None


def _secondary_targets(st: _TableState, x) -> Set:
    """Nodes that can take one of x's secondaries: non-members of a partition x is a secondary of
    (a partition not planned yet this round)."""
    targets = set()
    for pid in st.hosted[x]:
        p = st.parts[pid]
        if pid not in st.planned and x in p.secondaries:
            targets.update(n for n in st.nodes if n != p.primary and n not in p.secondaries)
            if len(targets) + 1 >= len(st.nodes):
                break
    return targets


def _realize_chain(st: _TableState, parent: Mapping, end) -> Optional[List[Tuple]]:
    nodes = [end]
    while parent[nodes[-1]] is not None:
        nodes.append(parent[nodes[-1]])
    nodes.reverse()
    chain, used = [], set()
    for frm, to in zip(nodes, nodes[1:]):
        pid = next((pid for pid in sorted(st.hosted[frm])
                    if pid not in st.planned and pid not in used
                    and frm in st.parts[pid].secondaries and to != st.parts[pid].primary
                    and to not in st.parts[pid].secondaries), None)
        if pid is None:
            return None
        used.add(pid)
        chain.append((pid, frm, to))
    return chain
