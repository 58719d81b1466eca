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
  again (else it waits), a fresh one to the least loaded alive node; a dead member is taken out
  of the configuration by the meta itself. Nothing else is ever proposed to them (the replica
  driver ``replica/node.py`` understands only CT_ASSIGN_PRIMARY).
* replicated groups are cured by ``meta/guardian.py`` (replication.md §6.2-§6.4: upgrade a
  secondary, assign a new partition, DDD, add / remove secondaries) over the nodes' replica
  reports (config sync ``stored_replicas``, ordered against drops, see "replica reports"
  below) and the drop times. A dead primary is removed by the meta writing a new configuration;
  a dead secondary by a CT_DOWNGRADE_TO_INACTIVE proposal to its primary (§6.5), re-sent by the
  periodic cure until the primary acts. A proposal is re-sent at most every
  ``GROUP_PROPOSAL_RESEND_SECONDS`` while the partition's ballot and the decision stay the same.

Soft state (drop times, reports, proposals sent) is in memory only, as upstream's: a restarted
meta starts with every drop dated "now" and no reports.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from loguru import logger

from pegasus_server import errors
from pegasus_server.base import INVALID_ADDRESS, Gpid, HostPort, RpcAddress
from pegasus_server.config import Config
from pegasus_server.meta import balancer, guardian
from pegasus_server.meta.model import (AS_AVAILABLE, AS_CREATING, AS_DROPPED, AS_DROPPING,
                                       AS_INVALID, AS_RECALLING, PARTITION_FLAG_DROPPED, App,
                                       Node, PartitionConfig, dumps, loads)
from pegasus_server.meta.store import MetaStore
from pegasus_server.rpc import thrift

LEVELS = {"stopped": 100, "blind": 200, "freezed": 300, "steady": 400, "lively": 500}
LEVEL_NAMES = {v: k for k, v in LEVELS.items()}
FL_FREEZED, FL_STEADY, FL_LIVELY, FL_INVALID = 300, 400, 500, 10000

CT_INVALID, CT_ASSIGN_PRIMARY, CT_UPGRADE_TO_PRIMARY, CT_ADD_SECONDARY, \
    CT_UPGRADE_TO_SECONDARY, CT_DOWNGRADE_TO_SECONDARY, CT_DOWNGRADE_TO_INACTIVE, CT_REMOVE = range(8)
CT_ADD_SECONDARY_FOR_LB, CT_DROP_PARTITION = 8, 10

# how long the meta waits for a proposal to take effect before sending it again
PROPOSAL_RESEND_SECONDS = 3.0
# the same for replicated groups (same ballot, same decision)
GROUP_PROPOSAL_RESEND_SECONDS = 5.0
# an upgrade to primary sent this many times for the same ballot without effect: prefer another
# secondary (guardian.GuardianView.avoid_upgrade)
UPGRADE_TRIES = 3
# replication.md §6.3: how long a dropped secondary's node is waited for before another node
# gets a new copy (replica_assign_delay_ms_for_dropouts)
REPLICA_ASSIGN_DELAY_SECONDS = 600.0

SUPPORTED_ENV_KEYS = frozenset("""
replica.deny_client_request replica.write_throttling replica.write_throttling_by_size
replica.read_throttling replica.read_throttling_by_size replica.backup_request_throttling
replica.slow_query_threshold replica.rocksdb_iteration_threshold_time_ms
replica.rocksdb_block_cache_enabled replica.split.validate_partition_hash rocksdb.usage_scenario
rocksdb.checkpoint.reserve_min_count rocksdb.checkpoint.reserve_time_seconds
rocksdb.allow_ingest_behind rocksdb.write_buffer_size rocksdb.num_levels default_ttl
manual_compact.disabled manual_compact.max_concurrent_running_count
manual_compact.once.trigger_time manual_compact.once.target_level
manual_compact.once.bottommost_level_compaction manual_compact.periodic.trigger_time
manual_compact.periodic.target_level manual_compact.periodic.bottommost_level_compaction
user_specified_compaction business.info replica_access_controller.allowed_users
replica_access_controller.ranger_policies
""".split())


@dataclass(frozen=True)
class Proposal:
    target: RpcAddress
    request: object   # meta_admin.configuration_update_request


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


class MetaState:
    def __init__(self, config: Config, store: MetaStore, self_address: RpcAddress, *,
                 replica_assign_delay: float = REPLICA_ASSIGN_DELAY_SECONDS):
        self.config = config
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
        self._sent: Dict[Gpid, Tuple[int, int, RpcAddress, float]] = {}
        # pid -> (ballot, node -> CT_UPGRADE_TO_PRIMARY proposals sent at that ballot)
        self._upgrade_tries: Dict[Gpid, Tuple[int, Dict[RpcAddress, int]]] = {}
        self._sync_no: Dict[RpcAddress, int] = {}   # config syncs received per node
        self._fences: Dict[Gpid, Dict[RpcAddress, int]] = {}
        self._node_fences: Dict[RpcAddress, int] = {}
        # balancer proposals (meta.md §4.10): per partition the actions still to execute, in
        # order; the cure sends the first one that has not taken effect yet
        self.lb_queue: Dict[Gpid, List[guardian.Action]] = {}
        self.balance_ops = {"move_pri": 0, "copy_pri": 0, "copy_sec": 0, "total": 0}

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
                    alive * 100 < total * ms.node_live_percentage_threshold_for_update:
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
        removed, ballot + 1, node appended to last_drops; no replica involved, §6.5). In a
        single-replica table a dead secondary is taken out the same way (the replica driver of
        those tables understands no other proposal than CT_ASSIGN_PRIMARY); in a replicated
        group it is removed by a CT_DOWNGRADE_TO_INACTIVE proposal to the primary (``cure``)."""
        touched = set()
        for app in self.apps.values():
            if app.status != AS_AVAILABLE:
                continue
            for pc in app.partitions:
                prim_dead = not pc.primary.is_invalid and not self._alive(pc.primary)
                if prim_dead:
                    addr = pc.primary
                    new = PartitionConfig(pc.pid, pc.ballot + 1, pc.max_replica_count,
                                          INVALID_ADDRESS, list(pc.secondaries),
                                          self._with_drop(pc.last_drops, addr),
                                          pc.last_committed_decree, pc.partition_flags)
                elif self._single(app):
                    dead = [s for s in pc.secondaries if not self._alive(s)]
                    if not dead:
                        continue
                    addr = dead[0]
                    new = PartitionConfig(pc.pid, pc.ballot + 1, pc.max_replica_count, pc.primary,
                                          [a for a in pc.secondaries if a != addr],
                                          self._with_drop(pc.last_drops, addr),
                                          pc.last_committed_decree, pc.partition_flags)
                else:
                    continue
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
        """Single-replica tables keep the original assignment rules (CT_ASSIGN_PRIMARY only):
        the replica driver serving them (``replica/node.py``) understands nothing else."""
        return app.max_replica_count <= 1

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
                if not self._single(app):
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
        last = self._sent.get(pc.pid)
        if last is not None and last[:3] == key and now - last[3] < GROUP_PROPOSAL_RESEND_SECONDS:
            return None
        self._sent[pc.pid] = key + (now,)
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
        (``balance_operation_count``), fl_lively also queues it."""
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
            tables[app.app_id] = parts
        plan = balancer.plan(tables, sorted(alive)) if tables else {}
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
        proposed.last_drops = list(cur.last_drops)
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
        proposed.max_replica_count = app.max_replica_count
        proposed.partition_flags = cur.partition_flags
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
        out = ma.configuration_query_by_node_response(err=errors.ERR_OK, partitions=parts)
        if gc:
            out.gc_replicas = gc
        return out

    # ---------------------------------------------------------------- client-facing RPCs
    def query_cfg(self, req, with_host_port: bool):
        L2 = thrift.layer2
        app_id = self.names.get(req.app_name)
        app = self.apps.get(app_id) if app_id is not None else None
        if app is None:
            return L2.query_cfg_response(err=errors.ERR_OBJECT_NOT_FOUND, app_id=0,
                                         partition_count=0, is_stateful=False, partitions=[])
        if app.status != AS_AVAILABLE:
            err = {AS_CREATING: errors.ERR_BUSY_CREATING, AS_RECALLING: errors.ERR_BUSY_CREATING,
                   AS_DROPPING: errors.ERR_BUSY_DROPPING}.get(app.status, errors.ERR_UNKNOWN)
            return L2.query_cfg_response(err=err, app_id=0, partition_count=0,
                                         is_stateful=False, partitions=[])
        idx = [i for i in (req.partition_indices or []) if 0 <= i < app.partition_count]
        if not idx:
            idx = range(app.partition_count)
        return L2.query_cfg_response(
            err=errors.ERR_OK, app_id=app.app_id, partition_count=app.partition_count,
            is_stateful=app.is_stateful,
            partitions=[app.partitions[i].to_thrift(with_host_port) for i in idx])

    def _create(self, name, app_type, partition_count, replica_count, stateful, envs,
                atomic_idempotent, now) -> App:
        app_id = max(self.apps, default=0) + 1
        app = App(app_id=app_id, app_name=name, app_type=app_type or "pegasus",
                  status=AS_AVAILABLE, partition_count=partition_count,
                  max_replica_count=replica_count, is_stateful=stateful, envs=dict(envs),
                  create_second=int(now), init_partition_count=partition_count,
                  atomic_idempotent=atomic_idempotent)
        app.partitions = [PartitionConfig(Gpid(app_id, i), max_replica_count=replica_count)
                          for i in range(partition_count)]
        for pc in app.partitions:
            self._persist_partition(pc)
        self._persist_app(app)
        self.apps[app_id] = app
        self.names[name] = app_id
        logger.info("table {} created: app_id {}, {} partitions, {} replicas", name, app_id,
                    partition_count, replica_count)
        return app

    def create_app(self, req, now: float):
        resp = _ma().configuration_create_app_response
        opts = req.options or _ma().create_app_options()
        ms = self.config.meta_server
        if self.effective_level() <= FL_FREEZED:
            return resp(err=errors.ERR_STATE_FREEZED, appid=0)
        pc = opts.partition_count or 0
        rc = opts.replica_count or 0
        if pc <= 0:
            return resp(err=errors.ERR_INVALID_PARAMETERS, appid=0)
        if not (ms.min_allowed_replica_count <= rc <= ms.max_allowed_replica_count) or \
                rc > len(self.alive_nodes()):
            return resp(err=errors.ERR_INVALID_PARAMETERS, appid=0)
        envs = dict(opts.envs or {})
        for k in ("rocksdb.write_buffer_size", "rocksdb.num_levels"):
            if k in envs and not _valid_int(envs[k]):
                return resp(err=errors.ERR_INVALID_PARAMETERS, appid=0)
        name = req.app_name or ""
        if not name:
            return resp(err=errors.ERR_INVALID_PARAMETERS, appid=0)
        existing = self.apps.get(self.names.get(name, -1))
        if existing is not None:
            if existing.status == AS_AVAILABLE:
                if opts.success_if_exist:
                    same = (existing.partition_count == pc and existing.max_replica_count == rc
                            and existing.app_type == (opts.app_type or "pegasus")
                            and existing.envs == envs
                            and existing.is_stateful == bool(opts.is_stateful))
                    return resp(err=errors.ERR_OK if same else errors.ERR_INVALID_PARAMETERS,
                                appid=existing.app_id if same else 0)
                return resp(err=errors.ERR_APP_EXIST, appid=0)
            if existing.status in (AS_CREATING, AS_RECALLING):
                return resp(err=errors.ERR_BUSY_CREATING, appid=0)
            if existing.status == AS_DROPPING:
                return resp(err=errors.ERR_BUSY_DROPPING, appid=0)
        app = self._create(name, opts.app_type, pc, rc, bool(opts.is_stateful), envs,
                           bool(opts.atomic_idempotent), now)
        return resp(err=errors.ERR_OK, appid=app.app_id)

    def drop_app(self, req, now: float):
        resp = _ma().configuration_drop_app_response
        opts = req.options or _ma().drop_app_options()
        app = self.apps.get(self.names.get(req.app_name or "", -1))
        if app is None:
            return resp(err=errors.ERR_OK if opts.success_if_not_exist else errors.ERR_APP_NOT_EXIST)
        if app.status in (AS_CREATING, AS_RECALLING):
            return resp(err=errors.ERR_BUSY_CREATING)
        if app.status == AS_DROPPING:
            return resp(err=errors.ERR_BUSY_DROPPING)
        reserve = opts.reserve_seconds if opts.reserve_seconds and opts.reserve_seconds > 0 \
            else self.config.meta_server.hold_seconds_for_dropped_app
        app.status = AS_DROPPED
        app.drop_second = int(now)
        app.expire_second = int(now + reserve)
        self._persist_app(app)
        del self.names[app.app_name]
        for i, pc in enumerate(app.partitions):
            drops = list(pc.last_drops)
            for a in pc.members():
                drops = self._with_drop(drops, a)
            new = PartitionConfig(pc.pid, pc.ballot + 1, pc.max_replica_count, INVALID_ADDRESS,
                                  [], drops, pc.last_committed_decree,
                                  pc.partition_flags | PARTITION_FLAG_DROPPED)
            self._persist_partition(new)
            app.partitions[i] = new
            self._pending.pop(pc.pid, None)
        logger.info("table {} (app_id {}) dropped, recallable until {}", app.app_name,
                    app.app_id, app.expire_second)
        return resp(err=errors.ERR_OK)

    def recall_app(self, req, now: float):
        ma = _ma()
        app = self.apps.get(req.app_id or 0)
        if app is None:
            return ma.configuration_recall_app_response(err=errors.ERR_APP_NOT_EXIST)
        if app.status == AS_AVAILABLE:
            return ma.configuration_recall_app_response(err=errors.ERR_APP_EXIST)
        if app.status in (AS_CREATING, AS_RECALLING):
            return ma.configuration_recall_app_response(err=errors.ERR_BUSY_CREATING)
        if app.status == AS_DROPPING:
            return ma.configuration_recall_app_response(err=errors.ERR_BUSY_DROPPING)
        if app.expire_second <= now:
            return ma.configuration_recall_app_response(err=errors.ERR_APP_NOT_EXIST)
        name = req.new_app_name or app.app_name
        if name in self.names:
            return ma.configuration_recall_app_response(err=errors.ERR_INVALID_PARAMETERS)
        app.app_name = name
        app.status = AS_AVAILABLE
        app.drop_second = app.expire_second = 0
        self._persist_app(app)
        for i, pc in enumerate(app.partitions):
            pc.partition_flags &= ~PARTITION_FLAG_DROPPED
            self._persist_partition(pc)
        self.names[name] = app.app_id
        return ma.configuration_recall_app_response(err=errors.ERR_OK, info=app.to_thrift())

    def list_apps(self, req):
        ma = _ma()
        status = req.status or AS_INVALID
        pattern, mt = req.app_name_pattern, req.match_type
        infos = []
        for app in sorted(self.apps.values(), key=lambda a: a.app_id):
            if pattern is not None and mt is not None:
                ok = _match(app.app_name, pattern, mt)
                if ok is None:
                    return ma.configuration_list_apps_response(
                        err=errors.ERR_NOT_IMPLEMENTED, infos=[],
                        hint_message=f"match type {mt} is not supported")
                if not ok:
                    continue
            if status != AS_INVALID and app.status != status:
                continue
            infos.append(app.to_thrift())
        return ma.configuration_list_apps_response(err=errors.ERR_OK, infos=infos)

    def list_nodes(self, req, with_host_port: bool):
        ma = _ma()
        want = req.status or 0
        infos = []
        for alive in (True, False):
            for a in sorted(n.address for n in self.nodes.values() if n.alive == alive):
                st = 1 if alive else 2
                if want and want != st:
                    continue
                ni = ma.node_info(status=st, node=a)
                if with_host_port:
                    ni.hp_node = HostPort.from_address(a)
                infos.append(ni)
        return ma.configuration_list_nodes_response(err=errors.ERR_OK, infos=infos)

    def control_meta(self, req):
        ma = _ma()
        old = self.level
        lvl = req.level
        if lvl is not None and lvl != FL_INVALID:
            if lvl not in LEVEL_NAMES:
                return ma.configuration_meta_control_response(err=errors.ERR_INVALID_PARAMETERS,
                                                              old_level=old)
            self.store.set("/meta/function_level", str(lvl).encode())
            self.level = lvl
            if lvl <= FL_STEADY and self.lb_queue:
                logger.info("meta level fl_{}: {} partitions' balancer proposals discarded",
                            LEVEL_NAMES[lvl], len(self.lb_queue))
                self.lb_queue.clear()
            logger.info("meta function level set to fl_{}", LEVEL_NAMES[lvl])
        return ma.configuration_meta_control_response(err=errors.ERR_OK, old_level=old)

    def update_app_env(self, req):
        ma = _ma()
        resp = ma.configuration_update_app_env_response
        SET, DEL, CLEAR = 1, 2, 3
        app = self.apps.get(self.names.get(req.app_name or "", -1))
        op = req.op or 0
        if op not in (SET, DEL, CLEAR):
            return resp(err=errors.ERR_INVALID_PARAMETERS,
                        hint_message="recv a invalid update_app_env request")
        if app is None:
            return resp(err=errors.ERR_APP_NOT_EXIST, hint_message="app cannot be found")
        envs = dict(app.envs)
        hint = ""
        if op == SET:
            keys, values = req.keys or [], req.values or []
            if not keys or len(keys) != len(values):
                return resp(err=errors.ERR_INVALID_PARAMETERS,
                            hint_message="keys and values must be non-empty and of equal length")
            for k, v in zip(keys, values):
                if k not in SUPPORTED_ENV_KEYS:
                    return resp(err=errors.ERR_INVALID_PARAMETERS,
                                hint_message=f"app_env '{k}' is not supported")
                if k == "default_ttl" and not (_valid_int(v) and int(v) >= 0):
                    return resp(err=errors.ERR_INVALID_PARAMETERS,
                                hint_message=f"invalid value '{v}' of app_env 'default_ttl'")
                envs[k] = v
        elif op == DEL:
            keys = req.keys or []
            if not keys:
                return resp(err=errors.ERR_INVALID_PARAMETERS, hint_message="keys are empty")
            deleted = [k for k in keys if k in envs]
            for k in deleted:
                del envs[k]
            hint = ("deleted keys: " + ",".join(deleted)) if deleted else "no key need to delete"
        else:
            prefix = req.clear_prefix
            if prefix is None:
                return resp(err=errors.ERR_INVALID_PARAMETERS, hint_message="clear_prefix is unset")
            if prefix == "":
                envs = {}
            else:
                envs = {k: v for k, v in envs.items()
                        if not (k.startswith(prefix + ".") and len(k) > len(prefix) + 1)}
        app.envs = envs
        self._persist_app(app)
        return resp(err=errors.ERR_OK, hint_message=hint)

    def cluster_info(self, meta_list: str, leader: str, level: int):
        import json as _json
        alive = self.alive_nodes()
        prim = {a: 0 for a in alive}
        total = {a: 0 for a in alive}
        for app in self.apps.values():
            if app.status != AS_AVAILABLE:
                continue
            for pc in app.partitions:
                if pc.primary in prim:
                    prim[pc.primary] += 1
                for a in pc.members():
                    if a in total:
                        total[a] += 1
        keys = ["meta_servers", "primary_meta_server", "zookeeper_hosts", "zookeeper_root",
                "meta_function_level", "balance_operation_count", "primary_replica_count_stddev",
                "total_replica_count_stddev", "cluster_name"]
        ms = self.config.meta_server
        zk = ms.meta_state_service_type == "meta_state_service_zookeeper"
        values = [meta_list, leader, self.config.zookeeper.hosts_list if zk else "",
                  ms.cluster_root if zk else "/pegasus/" + self.config.replication.cluster_name,
                  LEVEL_NAMES.get(level, "freezed"),
                  _json.dumps({k: self.balance_ops[k]
                               for k in ("copy_pri", "copy_sec", "move_pri", "total")}, indent=4),
                  "%.2f" % _stddev([v for v in prim.values() if v]),
                  "%.2f" % _stddev([v for v in total.values() if v]),
                  self.config.replication.cluster_name]
        return _ma().configuration_cluster_info_response(err=errors.ERR_OK, keys=keys,
                                                         values=values)


def _valid_int(v: str) -> bool:
    try:
        int(v)
        return True
    except (TypeError, ValueError):
        return False


def _stddev(vals: List[int]) -> float:
    if not vals:
        return 0.0
    mean = sum(vals) / len(vals)
    return (sum((v - mean) ** 2 for v in vals) / len(vals)) ** 0.5


def _match(name: str, pattern: str, mt: int) -> Optional[bool]:
    """utils.pattern_match_type: 0 INVALID, 1 MATCH_ALL, 2 EXACT, 3 ANYWHERE, 4 PREFIX,
    5 POSTFIX, 6 REGEX (unsupported)."""
    if mt == 1:
        return True
    if mt == 2:
        return name == pattern
    if mt == 3:
        return pattern in name
    if mt == 4:
        return name.startswith(pattern)
    if mt == 5:
        return name.endswith(pattern)
    return None
