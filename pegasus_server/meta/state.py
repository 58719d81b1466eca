"""The meta's server state: tables, partition configurations, replica nodes, function level.

Sans-IO core (design rule 1): every method takes its inputs as arguments (including ``now``, in
seconds) and returns replies and effects; it never sleeps, spawns or opens sockets. It persists
through an injected ``MetaStore`` *before* applying a change in memory (meta.md §2.5), and the
driver (``meta/service.py``) calls it from one greenlet at a time, so no locks are needed.

Effects returned by ``cure``/``check_nodes``: ``Proposal(target, request)`` — send
``RPC_CONFIG_PROPOSAL`` with that ``configuration_update_request`` to ``target``.

Two kinds of tables:

* single-replica tables (``max_replica_count`` 1, the onebox) keep the original rules: a
  primary-less partition gets CT_ASSIGN_PRIMARY to its last dropped node when that is alive
  again (else it waits), a fresh one to the least loaded alive node; a dead primary is taken
  out of the configuration by the meta itself. Nothing else is ever proposed to them. A
  partition of such a table that still has secondaries (its table's count was just lowered to
  1 by RPC_CM_SET_MAX_REPLICA_COUNT) is cured as a replicated group until they are removed.
* replicated groups are cured by ``meta/guardian.py`` (replication.md §6.2-§6.4: upgrade a
  secondary, assign a new partition, DDD, add / remove secondaries) over the nodes' replica
  reports (config sync ``stored_replicas``, ordered against drops, see "replica reports"
  below) and the drop times. A dead primary is removed by the meta writing a new configuration;
  a dead secondary by a CT_DOWNGRADE_TO_INACTIVE proposal to its primary (§6.5), re-sent by the
  periodic cure until the primary acts. A proposal is re-sent at most every
  ``GROUP_PROPOSAL_RESEND_SECONDS`` while the partition's ballot and the decision stay the same.

Soft state (drop times, reports, proposals sent, manual-compaction progress) is in memory only,
as upstream's: a restarted meta starts with every drop dated "now" and no reports.

The table RPCs (create, drop, list, envs, rename, replica count ...) are in ``meta/tables.py``
(``TableRpcs``, which ``MetaState`` inherits).

``Tunables``: the settings remote commands change at run time (meta.md §7: ``meta.lb.*``,
``meta.live_percentage``), in memory only and shared by the successive states of one process.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Set, Tuple

from loguru import logger

from pegasus_server import errors
from pegasus_server.base import INVALID_ADDRESS, Gpid, RpcAddress
from pegasus_server.config import Config
from pegasus_server.meta import balancer, guardian
from pegasus_server.meta.model import (AS_AVAILABLE, AS_CREATING, AS_DROPPED, AS_DROPPING,
                                       AS_RECALLING, FL_FREEZED, FL_LIVELY, FL_STEADY, LEVELS,
                                       App, Node, PartitionConfig, dumps, loads)
from pegasus_server.meta.store import MetaStore
from pegasus_server.meta.tables import (MCS_IDLE, UPDATE_MAX_REPLICA_COUNT, TableRpcs,
                                        _valid_int)
from pegasus_server.rpc import thrift


CT_INVALID, CT_ASSIGN_PRIMARY, CT_UPGRADE_TO_PRIMARY, CT_ADD_SECONDARY, \
    CT_UPGRADE_TO_SECONDARY, CT_DOWNGRADE_TO_SECONDARY, CT_DOWNGRADE_TO_INACTIVE, CT_REMOVE = range(8)
CT_ADD_SECONDARY_FOR_LB, CT_DROP_PARTITION = 8, 10

# how long the meta waits for a proposal to take effect before sending it again
PROPOSAL_RESEND_SECONDS = 3.0
# the same for replicated groups (same ballot, same decision)
GROUP_PROPOSAL_RESEND_SECONDS = 5.0
# a node the guardian chose by load alone (CT_ASSIGN_PRIMARY of a new partition, CT_ADD_SECONDARY
# on the least loaded node) stays the choice (same ballot and type, node alive and not a member)
# for this long, though the load changes meanwhile. Without it a second node was asked to be
# primary of the same new partition, and a primary was asked for another learner than the one it
# was teaching (which it ignores while the learner's slot is taken): a partition waited 100 s.
STICKY_DECISION_SECONDS = 30.0
# an upgrade to primary sent this many times for the same ballot without effect: prefer another
# secondary (guardian.GuardianView.avoid_upgrade)
UPGRADE_TRIES = 3
# replication.md §6.3: how long a dropped secondary's node is waited for before another node
# gets a new copy (replica_assign_delay_ms_for_dropouts)
REPLICA_ASSIGN_DELAY_SECONDS = 600.0

@dataclass(frozen=True)
class Proposal:
    target: RpcAddress
    request: object   # meta_admin.configuration_update_request


@dataclass
class Tunables:
    """What remote commands change at run time (meta.md §7), kept in memory only: the balancer
    options (``meta.lb.only_move_primary``, ``meta.lb.only_primary_balancer``,
    ``meta.lb.balancer_in_turn``), the tables it leaves alone (``meta.lb.ignored_app_list``) and
    ``node_live_percentage_threshold_for_update`` (``meta.live_percentage``)."""
    live_percentage: int = 65
    only_move_primary: bool = False
    only_primary_balancer: bool = False
    balancer_in_turn: bool = False
    ignored_apps: Set[int] = field(default_factory=set)

    @classmethod
    def from_config(cls, config: Config) -> "Tunables":
        return cls(live_percentage=config.meta_server.node_live_percentage_threshold_for_update)

    def balancer_options(self) -> balancer.Options:
        return balancer.Options(self.only_move_primary, self.only_primary_balancer,
                                self.balancer_in_turn)


def _ma():
    return thrift.meta_admin


def _lb_state(pc: PartitionConfig, a: guardian.Action, alive) -> str:
    """Where a balancer action stands against the partition's configuration: "done" (it took
    effect), "ready" (it can be sent now) or "invalid" (it no longer applies)."""
    t, target, node = a.type, a.target, a.node
    prim, secs = pc.primary, pc.secondaries
    if t == CT_DOWNGRADE_TO_SECONDARY:
        if prim != node and node in secs:
            return "done"
        ok = prim == node and node in alive
    elif t == CT_UPGRADE_TO_PRIMARY:
        if prim == node:
            return "done"
        ok = prim.is_invalid and node in secs and node in alive
    elif t in (CT_ADD_SECONDARY, CT_ADD_SECONDARY_FOR_LB):
        if node in secs:
            return "done"
        ok = prim == target and target in alive and node in alive and node not in pc.members()
    elif t in (CT_REMOVE, CT_DOWNGRADE_TO_INACTIVE):
        if node not in pc.members():
            return "done"
        ok = prim == target and target in alive and node in secs
    else:
        ok = False
    return "ready" if ok else "invalid"


class MetaState(TableRpcs):
    def __init__(self, config: Config, store: MetaStore, self_address: RpcAddress, *,
                 replica_assign_delay: float = REPLICA_ASSIGN_DELAY_SECONDS,
                 tunables: Optional[Tunables] = None):
        self.config = config
        self.tunables = tunables or Tunables.from_config(config)
        self.store = store
        self.address = self_address
        self.apps: Dict[int, App] = {}
        self.names: Dict[str, int] = {}
        self.nodes: Dict[RpcAddress, Node] = {}
        self.level = LEVELS[config.meta_server.meta_function_level_on_start]
        self._pending: Dict[Gpid, Tuple[float, RpcAddress]] = {}   # gpid -> (sent at, target)
        self.loaded = False
        self.replica_assign_delay = replica_assign_delay
        self._clock = float("-inf")
        # replicated groups (soft state)
        self.drop_times: Dict[Gpid, Dict[RpcAddress, float]] = {}
        self.reported: Dict[Gpid, Dict[RpcAddress, guardian.ReplicaState]] = {}
        self.waiting: Dict[Gpid, str] = {}          # why the cure waits (DDD diagnosis)
        # pid -> (ballot, type, node, last sent at, first sent at) of the last group proposal
        self._sent: Dict[Gpid, Tuple[int, int, RpcAddress, float, float]] = {}
        # pid -> (ballot, node -> CT_UPGRADE_TO_PRIMARY proposals sent at that ballot)
        self._upgrade_tries: Dict[Gpid, Tuple[int, Dict[RpcAddress, int]]] = {}
        self._sync_no: Dict[RpcAddress, int] = {}   # config syncs received per node
        self._fences: Dict[Gpid, Dict[RpcAddress, int]] = {}
        self._node_fences: Dict[RpcAddress, int] = {}
        # balancer proposals (meta.md §4.10): per partition the actions still to execute, in
        # order; the cure sends the first one that has not taken effect yet
        self.lb_queue: Dict[Gpid, List[guardian.Action]] = {}
        self.balance_ops = {"move_pri": 0, "copy_pri": 0, "copy_sec": 0, "total": 0}
        # manual compaction (meta.md §4.14): pid -> member node -> the status it last reported
        self.compact_status: Dict[Gpid, Dict[RpcAddress, int]] = {}

    # ---------------------------------------------------------------- persistence
    def load(self, now: float) -> None:
        """Read the whole state from the store; create the configured tables on a fresh store."""
        lvl = self.store.get("/meta/function_level")
        if lvl is not None:
            self.level = int(lvl.decode())
        for name in self.store.children("/apps"):
            raw = self.store.get(f"/apps/{name}")
            if raw is None:
                continue
            app = App.from_info_json(loads(raw))
            for i in range(app.partition_count):
                praw = self.store.get(f"/apps/{name}/{i}")
                app.partitions.append(PartitionConfig.from_json(loads(praw)) if praw else
                                      PartitionConfig(Gpid(app.app_id, i),
                                                      max_replica_count=app.max_replica_count))
            self.apps[app.app_id] = app
            if app.status == AS_AVAILABLE:
                self.names[app.app_name] = app.app_id
            marker = app.envs.get(UPDATE_MAX_REPLICA_COUNT, "").split(";")
            if marker[0] == "updating" and len(marker) == 2 and _valid_int(marker[1]):
                logger.warning("table {}: finishing the interrupted max_replica_count update "
                               "to {}", app.app_name, marker[1])
                self._update_max_replica_count(app, int(marker[1]))
        self._tick(now)
        # every node named in a stored configuration starts alive with a fresh grace period
        for app in self.apps.values():
            for pc in app.partitions:
                for a in pc.members():
                    self.nodes.setdefault(a, Node(a, alive=True, last_beacon=now))
                self.drop_times[pc.pid] = {a: now for a in pc.last_drops}
                for a in pc.last_drops:
                    self._fence(pc.pid, a)
        if not self.apps and self.store.get("/meta/initialized") is None:
            for spec in self.config.apps:
                self._create(spec.app_name, spec.app_type, spec.partition_count,
                             spec.max_replica_count, spec.stateful, {}, False, now)
            self.store.set("/meta/initialized", b"1")
        self.loaded = True
        logger.info("meta state loaded: {} apps, {} nodes", len(self.apps), len(self.nodes))

    def _persist_app(self, app: App) -> None:
        self.store.set(f"/apps/{app.app_id}", dumps(app.info_json()))

    def _persist_partition(self, pc: PartitionConfig) -> None:
        self.store.set(f"/apps/{pc.pid.app_id}/{pc.pid.partition_index}", dumps(pc.to_json()))

    # ---------------------------------------------------------------- levels and nodes
    def _tick(self, now: Optional[float]) -> float:
        """The latest time any input carried (for inputs that come without one)."""
        if now is not None and now > self._clock:
            self._clock = now
        return self._clock if now is None else now

    def alive_nodes(self) -> List[RpcAddress]:
        return sorted(a for a, n in self.nodes.items() if n.alive)

    def effective_level(self) -> int:
        if self.level > FL_FREEZED:
            alive = len(self.alive_nodes())
            total = len(self.nodes)
            ms = self.config.meta_server
            if alive < ms.min_live_node_count_for_unfreeze or \
                    alive * 100 < total * self.tunables.live_percentage:
                return FL_FREEZED
        return self.level

    def on_beacon(self, msg, now: float):
        self._tick(now)
        addr = msg.from_node
        node = self.nodes.get(addr)
        if node is None:
            node = self.nodes[addr] = Node(addr)
        if not node.alive:
            logger.info("node {} connected", addr)
        node.alive = True
        node.last_beacon = now
        if msg.start_time:
            node.start_time_ms = msg.start_time
        return thrift.fd.beacon_ack(time=msg.time, this_node=self.address,
                                    primary_node=self.address, is_master=True, allowed=True)

    def check_nodes(self, now: float) -> List[Proposal]:
        """Failure detector round: nodes silent for longer than the grace period die
        (meta.md §6.2). Returns the cure of the partitions a death touched (replication.md
        §6.5: a dead secondary of a replicated group is removed through a proposal to its
        primary); the periodic ``cure`` sends the same proposals again after
        ``GROUP_PROPOSAL_RESEND_SECONDS`` if the driver drops them."""
        self._tick(now)
        grace = self.config.replication.fd_grace_seconds
        died = []
        for node in self.nodes.values():
            if node.alive and now - node.last_beacon > grace:
                node.alive = False
                logger.warning("node {} disconnected (no beacon for {:.1f}s)", node.address,
                               now - node.last_beacon)
                died.append(node.address)
                self._fence_node(node.address)
        # persist the downgrade of every dead primary; at fl_stopped / fl_blind this is
        # postponed and retried on every round until the level allows it (meta.md §2.4)
        touched = self._downgrade_dead(now) if self.effective_level() > 200 else set()
        if not died:
            return []
        dead = set(died)
        for app in self.apps.values():
            if app.status == AS_AVAILABLE:
                for pc in app.partitions:
                    if dead & set(pc.members()):
                        touched.add(pc.pid)
        return self.cure(now, only=touched) if touched else []

    def _downgrade_dead(self, now: float) -> set:
        """Write the new configuration of every partition whose primary is dead (primary
        removed, ballot + 1, node appended to last_drops; no replica involved, §6.5). A dead
        secondary is removed by a CT_DOWNGRADE_TO_INACTIVE proposal to the primary (``cure``;
        only a partition cured as a replicated group has secondaries)."""
        touched = set()
        for app in self.apps.values():
            if app.status != AS_AVAILABLE:
                continue
            for pc in app.partitions:
                if pc.primary.is_invalid or self._alive(pc.primary):
                    continue
                addr = pc.primary
                new = PartitionConfig(pc.pid, pc.ballot + 1, pc.max_replica_count,
                                      INVALID_ADDRESS, list(pc.secondaries),
                                      self._with_drop(pc.last_drops, addr),
                                      pc.last_committed_decree, pc.partition_flags)
                self._persist_partition(new)
                app.partitions[pc.pid.partition_index] = new
                self._on_dropped(new, addr, now)
                touched.add(pc.pid)
        return touched

    def _alive(self, addr: RpcAddress) -> bool:
        n = self.nodes.get(addr)
        return n is not None and n.alive

    @staticmethod
    def _single(app: App) -> bool:
        """Single-replica tables keep the original assignment rules (CT_ASSIGN_PRIMARY only)."""
        return app.max_replica_count <= 1

    def _group_rules(self, app: App, pc: PartitionConfig) -> bool:
        """Whether ``pc`` is cured as a replicated group: every partition of a replicated
        table, and one of a single-replica table that still has secondaries to remove."""
        return not self._single(app) or bool(pc.secondaries)

    @staticmethod
    def _with_drop(drops: List[RpcAddress], addr: RpcAddress) -> List[RpcAddress]:
        out = [a for a in drops if a != addr] + [addr]
        return out[-3:]

    def partition(self, pid: Gpid) -> Optional[PartitionConfig]:
        app = self.apps.get(pid.app_id)
        if app is None or not 0 <= pid.partition_index < len(app.partitions):
            return None
        return app.partitions[pid.partition_index]

    # ---------------------------------------------------------------- replica reports
    # What nodes report about their replicas (config sync ``stored_replicas``) feeds the DDD
    # rule (replication.md §6.4). A report is only good if the node sent it after it left the
    # configuration: before, it may still have accepted prepares and commits (an isolated
    # primary keeps committing until its lease ends), so an older report can understate its
    # ballot and decrees and make the meta pick the wrong survivor. So when a node is dropped
    # from a partition (or declared dead) its report is forgotten, and a *fence* is set: the
    # meta numbers the config syncs it receives from each node, and a sync counts for that
    # partition only if its number is above the fence = (the node's sync count at the drop) +
    # 1, i.e. the first sync received after the drop is ignored, from the second one on they
    # count. Reason: the ballot and decrees of a report cannot tell a report sent just before
    # the drop (and delivered after it) from one sent after it — a dropped replica's member
    # ballot does not change and its decrees need not — and the request carries no sequence
    # of the node's. Relying on the replica side keeping at most one config sync in flight
    # (the next is sent only once the previous one was answered, or after its RPC timeout,
    # which exceeds the delivery bound), a sync in flight at the drop is the first one received
    # after it, so the second was sent after the drop. The same fence is set for every node
    # named in a last_drops list when the state is loaded (what was in flight to an earlier
    # meta incarnation is unknown). The cost: a DDD decision waits up to one config sync
    # interval longer.
    def _fence(self, pid: Gpid, addr: RpcAddress) -> None:
        self.reported.get(pid, {}).pop(addr, None)
        self._fences.setdefault(pid, {})[addr] = self._sync_no.get(addr, 0) + 1

    def _fence_node(self, addr: RpcAddress) -> None:
        """The node died: whatever it reported before it went silent is stale everywhere."""
        for pid in list(self.reported):
            self.reported[pid].pop(addr, None)
        self._node_fences[addr] = self._sync_no.get(addr, 0) + 1

    def _on_dropped(self, pc: PartitionConfig, addr: RpcAddress, now: float) -> None:
        times = self.drop_times.setdefault(pc.pid, {})
        times[addr] = now
        for a in list(times):
            if a not in pc.last_drops:
                del times[a]
        self._fence(pc.pid, addr)

    def _record_reports(self, node: RpcAddress, stored) -> None:
        seq = self._sync_no[node] = self._sync_no.get(node, 0) + 1
        if seq <= self._node_fences.get(node, 0):
            return
        have = {r.pid: r for r in stored or []}
        for app in self.apps.values():
            if app.status != AS_AVAILABLE:
                continue
            for pc in app.partitions:
                if seq <= self._fences.get(pc.pid, {}).get(node, 0):
                    continue
                r = have.get(pc.pid)
                if r is not None:
                    self.reported.setdefault(pc.pid, {})[node] = guardian.ReplicaState(
                        r.ballot or 0, r.last_committed_decree or 0, r.last_prepared_decree or 0)
                elif node in pc.last_drops:
                    self.reported.setdefault(pc.pid, {})[node] = guardian.ReplicaState.absent()

    def _record_compact_status(self, node: RpcAddress, stored) -> None:
        """The manual-compaction status of the node's replicas that are members (meta.md
        §4.14; a report without the field counts as IDLE, as upstream)."""
        for r in stored or []:
            pc = self.partition(r.pid)
            if pc is not None and node in pc.members():
                self.compact_status.setdefault(r.pid, {})[node] = \
                    r.manual_compact_status or MCS_IDLE

    # ---------------------------------------------------------------- cure
    def _replica_counts(self) -> Dict[RpcAddress, int]:
        counts = {a: 0 for a in self.alive_nodes()}
        for app in self.apps.values():
            if app.status != AS_AVAILABLE:
                continue
            for pc in app.partitions:
                for a in pc.members():
                    if a in counts:
                        counts[a] += 1
        for _, target in self._pending.values():
            if target in counts:
                counts[target] += 1
        return counts

    def cure(self, now: float, only=None) -> List[Proposal]:
        """One cure round (meta.md §2.4: steady and above) over every available partition, or
        over the partitions in ``only``. Single-replica tables: give every primary-less
        partition a primary (CT_ASSIGN_PRIMARY). Replicated groups: remove a dead secondary
        through its primary (§6.5), else the guardian's decision (§6.2-§6.4)."""
        self._tick(now)
        if not self.loaded or self.effective_level() < FL_STEADY:
            return []
        out: List[Proposal] = []
        alive = set(self.alive_nodes())
        if only is None:
            self._balance_round(alive)
        counts = None
        stats = None
        for app in sorted(self.apps.values(), key=lambda a: a.app_id):
            if app.status != AS_AVAILABLE:
                continue
            for pc in app.partitions:
                if only is not None and pc.pid not in only:
                    continue
                if self._group_rules(app, pc):
                    if stats is None:
                        stats = self._load_stats()
                    p = self._cure_group(app, pc, now, alive, stats)
                    if p is not None:
                        out.append(p)
                    continue
                if not pc.primary.is_invalid:
                    self._pending.pop(pc.pid, None)
                    continue
                pend = self._pending.get(pc.pid)
                if pend and now - pend[0] < PROPOSAL_RESEND_SECONDS and pend[1] in alive:
                    continue
                target = self._choose_primary(pc, alive)
                if target is None:
                    continue
                if target == INVALID_ADDRESS:
                    counts = self._replica_counts()
                    if not counts:
                        continue
                    target = min(counts, key=lambda a: (counts[a], a))
                    counts[target] += 1
                self._pending[pc.pid] = (now, target)
                req = _ma().configuration_update_request(
                    info=app.to_thrift(), config=pc.to_thrift(), type=CT_ASSIGN_PRIMARY,
                    node=target, host_node=INVALID_ADDRESS)
                out.append(Proposal(target, req))
        return out

    def _load_stats(self):
        prim: Dict[RpcAddress, int] = {}
        total: Dict[RpcAddress, int] = {}
        table: Dict[Tuple[int, RpcAddress], int] = {}
        for app in self.apps.values():
            if app.status != AS_AVAILABLE:
                continue
            for pc in app.partitions:
                if not pc.primary.is_invalid:
                    prim[pc.primary] = prim.get(pc.primary, 0) + 1
                for a in pc.members():
                    total[a] = total.get(a, 0) + 1
                    table[(app.app_id, a)] = table.get((app.app_id, a), 0) + 1
        return prim, total, table

    def _cure_group(self, app: App, pc: PartitionConfig, now: float, alive,
                    stats) -> Optional[Proposal]:
        action = None
        if not pc.primary.is_invalid and pc.primary in alive:
            dead = [s for s in pc.secondaries if s not in alive]
            if dead:
                action = guardian.Action(CT_DOWNGRADE_TO_INACTIVE, pc.primary, dead[0],
                                         "secondary is dead")
                self.waiting[pc.pid] = ""
        if pc.pid in self.lb_queue:
            if action is not None or any(a not in alive for a in pc.members()):
                logger.info("balancer proposals of {} discarded: a member is dead", pc.pid)
                del self.lb_queue[pc.pid]
            else:
                action = self._lb_next(pc, alive)
        if action is None:
            prim, total, table = stats
            tries = self._upgrade_tries.get(pc.pid)
            if tries is None or tries[0] != pc.ballot:
                tries = self._upgrade_tries[pc.pid] = (pc.ballot, {})
            avoid = frozenset(a for a, n in tries[1].items() if n >= UPGRADE_TRIES)
            if avoid and all(s in avoid for s in pc.secondaries if s in alive):
                tries[1].clear()             # every one was tried: start the round again
                avoid = frozenset()
            view = guardian.GuardianView(
                now=now, alive=frozenset(alive), primary_count=prim, replica_count=total,
                table_replica_count={a: table.get((app.app_id, a), 0) for a in alive},
                drop_times=self.drop_times.get(pc.pid, {}),
                reported=self.reported.get(pc.pid, {}),
                min_2pc=self.config.replication.mutation_2pc_min_replica_count,
                replica_assign_delay=self.replica_assign_delay, avoid_upgrade=avoid)
            d = guardian.decide(pc, view)
            self.waiting[pc.pid] = d.waiting
            action = d.action
        if action is None:
            return None
        last = self._sent.get(pc.pid)
        if (last is not None and action.by_load
                and last[:2] == (pc.ballot, action.type) and last[2] != action.node
                and last[2] in alive and last[2] not in pc.members()
                and now - last[4] < STICKY_DECISION_SECONDS):
            action = replace(
                action, node=last[2],
                target=last[2] if action.type == CT_ASSIGN_PRIMARY else action.target)
        if action.type in (CT_ASSIGN_PRIMARY, CT_UPGRADE_TO_PRIMARY, CT_ADD_SECONDARY):
            # count the decision into this round's load, so the partitions cured in one round
            # (a new table, the primaries of a dead node) spread over the nodes
            prim, total, table = stats
            n = action.node
            if action.type != CT_ADD_SECONDARY:
                prim[n] = prim.get(n, 0) + 1
            if action.type != CT_UPGRADE_TO_PRIMARY:
                total[n] = total.get(n, 0) + 1
                table[(app.app_id, n)] = table.get((app.app_id, n), 0) + 1
        key = (pc.ballot, action.type, action.node)
        if last is not None and last[:3] == key and now - last[3] < GROUP_PROPOSAL_RESEND_SECONDS:
            return None
        self._sent[pc.pid] = key + (now, last[4] if last is not None and last[:3] == key else now)
        if action.type == CT_UPGRADE_TO_PRIMARY:
            counts = self._upgrade_tries[pc.pid][1]
            counts[action.node] = counts.get(action.node, 0) + 1
        return Proposal(action.target, _ma().configuration_update_request(
            info=app.to_thrift(), config=pc.to_thrift(), type=action.type, node=action.node,
            host_node=INVALID_ADDRESS))

    # ---------------------------------------------------------------- balancer
    def _balance_round(self, alive) -> None:
        """The greedy balancer (replication.md §8): only when every partition of every
        replicated table is healthy on alive nodes, no table is changing status and no
        balancer proposal is still running. fl_steady publishes the plan's size
        (``balance_operation_count``), fl_lively also queues it. The tables of
        ``tunables.ignored_apps`` are left out of the plan (but must be healthy too); the
        ``meta.lb.*`` options go to the planner."""
        level = self.effective_level()
        if level < FL_STEADY or self.lb_queue:
            return
        tables = {}
        for app in self.apps.values():
            if app.status in (AS_CREATING, AS_DROPPING, AS_RECALLING):
                return
            if app.status != AS_AVAILABLE or self._single(app):
                continue
            parts = []
            for pc in app.partitions:
                if pc.primary.is_invalid or pc.primary not in alive or \
                        len(pc.secondaries) != app.max_replica_count - 1 or \
                        any(a not in alive for a in pc.secondaries):
                    return
                parts.append(balancer.Partition(pc.pid, pc.primary, tuple(pc.secondaries)))
            if app.app_id not in self.tunables.ignored_apps:
                tables[app.app_id] = parts
        plan = balancer.plan(tables, sorted(alive), self.tunables.balancer_options()) \
            if tables else {}
        ops = {"move_pri": 0, "copy_pri": 0, "copy_sec": 0}
        for moves in plan.values():
            if moves[0].type == CT_DOWNGRADE_TO_SECONDARY:
                ops["move_pri"] += 1
            elif any(m.type == CT_DOWNGRADE_TO_SECONDARY for m in moves):
                ops["copy_pri"] += 1
            else:
                ops["copy_sec"] += 1
        ops["total"] = sum(ops.values())
        self.balance_ops = ops
        if level >= FL_LIVELY and plan:
            logger.info("balancer: {} partitions to move ({})", len(plan), ops)
            for pid, moves in plan.items():
                self.lb_queue[pid] = [guardian.Action(m.type, m.target, m.node, "balancer")
                                      for m in moves]

    def _lb_next(self, pc: PartitionConfig, alive) -> Optional[guardian.Action]:
        """The first queued balancer action of ``pc`` that has not taken effect yet; the queue
        is dropped once every action took effect or when the next one no longer applies."""
        q = self.lb_queue[pc.pid]
        while q:
            state = _lb_state(pc, q[0], alive)
            if state == "done":
                q.pop(0)
                continue
            if state == "ready":
                return q[0]
            logger.info("balancer proposals of {} discarded: {} of {} no longer applies",
                        pc.pid, q[0].type, q[0].node)
            break
        del self.lb_queue[pc.pid]
        return None

    def propose_balancer(self, req):
        """RPC_CM_PROPOSE_BALANCER (meta.md §4.10). Returns ``(response, proposals)``: with
        ``force`` the proposals to send now, else the actions are queued for the cure."""
        resp = _ma().configuration_balancer_response
        pid = req.gpid
        app = self.apps.get(pid.app_id) if pid is not None else None
        if app is None:
            return resp(err=errors.ERR_APP_NOT_EXIST), []
        if app.status != AS_AVAILABLE or not (0 <= pid.partition_index < app.partition_count):
            return resp(err=errors.ERR_INVALID_PARAMETERS), []
        pc = app.partitions[pid.partition_index]
        actions = []
        for a in req.action_list or []:
            target = a.target if a.target is not None and not a.target.is_invalid else None
            if target is None:
                if pc.primary.is_invalid:
                    return resp(err=errors.ERR_INVALID_PARAMETERS), []
                target = pc.primary
            actions.append(guardian.Action(a.type, target, a.node or INVALID_ADDRESS,
                                           "proposed"))
        if req.force:
            return resp(err=errors.ERR_OK), [Proposal(a.target, _ma().configuration_update_request(
                info=app.to_thrift(), config=pc.to_thrift(), type=a.type, node=a.node,
                host_node=INVALID_ADDRESS)) for a in actions]
        if pc.pid in self.lb_queue or not actions:
            return resp(err=errors.ERR_INVALID_PARAMETERS), []
        self.lb_queue[pc.pid] = actions
        return resp(err=errors.ERR_OK), []

    def _choose_primary(self, pc: PartitionConfig, alive) -> Optional[RpcAddress]:
        """(Single-replica tables.) A secondary if one is alive; else, for a partition that
        once had replicas, the most recent dropped member when it is alive again (its data is
        there), else wait; a partition that never had a replica goes to the least loaded node
        (returned as INVALID_ADDRESS)."""
        for s in pc.secondaries:
            if s in alive:
                return s
        if pc.last_drops:
            latest = pc.last_drops[-1]
            return latest if latest in alive else None
        return INVALID_ADDRESS if alive else None

    # ---------------------------------------------------------------- replica -> meta
    def on_update_partition_configuration(self, req, now: Optional[float] = None):
        """RPC_CM_UPDATE_PARTITION_CONFIGURATION (meta.md §4.21). ``now`` defaults to the
        latest time seen by any other input."""
        now = self._tick(now)
        resp = _ma().configuration_update_response
        pid = req.config.pid
        app = self.apps.get(pid.app_id)
        if app is None or not (0 <= pid.partition_index < len(app.partitions)):
            return resp(err=errors.ERR_OBJECT_NOT_FOUND, config=req.config)
        cur = app.partitions[pid.partition_index]
        if self.effective_level() <= FL_FREEZED:
            return resp(err=errors.ERR_STATE_FREEZED, config=cur.to_thrift())
        proposed = PartitionConfig.from_thrift(req.config)
        # the meta owns these: a replica may still carry an older max_replica_count
        proposed.last_drops = list(cur.last_drops)
        proposed.max_replica_count = app.max_replica_count
        proposed.partition_flags = cur.partition_flags
        if proposed.to_json() == cur.to_json():
            return resp(err=errors.ERR_OK, config=cur.to_thrift())
        if proposed.ballot != cur.ballot + 1:
            return resp(err=errors.ERR_INVALID_VERSION, config=cur.to_thrift())
        node = req.node
        dropped = req.type in (CT_DOWNGRADE_TO_INACTIVE, CT_REMOVE, CT_DROP_PARTITION)
        if dropped:
            proposed.last_drops = self._with_drop(cur.last_drops, node)
        elif req.type in (CT_ASSIGN_PRIMARY, CT_UPGRADE_TO_PRIMARY, CT_UPGRADE_TO_SECONDARY):
            proposed.last_drops = [a for a in cur.last_drops if a != node]
        self._persist_partition(proposed)
        app.partitions[pid.partition_index] = proposed
        self._pending.pop(pid, None)
        if dropped:
            self._on_dropped(proposed, node, now)
        else:
            times = self.drop_times.get(pid, {})
            for a in list(times):
                if a not in proposed.last_drops:
                    del times[a]
        logger.info("partition {} config updated by {}: ballot {} primary {}", pid, node,
                    proposed.ballot, proposed.primary)
        return resp(err=errors.ERR_OK, config=proposed.to_thrift())

    def on_config_sync(self, req, now: float):
        """RPC_CM_CONFIG_SYNC: every partition the node serves in the meta's view; the node's
        ``stored_replicas`` are recorded for the DDD rule (see "replica reports" above)."""
        self._tick(now)
        ma = _ma()
        node = req.node
        if node not in self.nodes:
            return ma.configuration_query_by_node_response(err=errors.ERR_OBJECT_NOT_FOUND,
                                                           partitions=[])
        parts = []
        for app in self.apps.values():
            if app.status != AS_AVAILABLE:
                continue
            info = None
            for pc in app.partitions:
                if node in pc.members():
                    info = info or app.to_thrift()
                    parts.append(ma.configuration_update_request(
                        info=info, config=pc.to_thrift(), type=CT_INVALID, node=node,
                        host_node=INVALID_ADDRESS))
        gc = []
        for r in req.stored_replicas or []:
            app = self.apps.get(r.pid.app_id)
            if app is None:
                logger.warning("config sync from {}: replica {} of unknown table ignored", node,
                               r.pid)   # Q17
            elif app.status == AS_DROPPED and app.expire_second <= now \
                    and self.effective_level() >= 500:
                gc.append(r)
        self._record_reports(node, req.stored_replicas)
        self._record_compact_status(node, req.stored_replicas)
        out = ma.configuration_query_by_node_response(err=errors.ERR_OK, partitions=parts)
        if gc:
            out.gc_replicas = gc
        return out
