"""Deterministic in-process cluster simulation (design rule 10; raft-rs harness style).

One meta (``MetaState`` from ``meta/state.py``, which cures replicated groups with
``meta/guardian.py``), several replica nodes each running one ``ReplicaCore`` per partition over
``StorageApp(engine="memory")`` and a simulated private log, a client model, and a message bus
with drop / delay / duplicate / partition filters. Everything runs on one fake clock in a
discrete-event loop driven by one seeded RNG, so a seed replays exactly.

The node here (``SimNode``) is a miniature of the replica driver: it owns the failure-detector
lease, config sync (§6.6 of replication.md), the private log and storage, and performs the
cores' effects. Messages are passed as Python objects (the thrift structs for meta RPCs, the
``replica/events.py`` dataclasses between replicas); no serialisation.

Invariants are checked after every event (``Checker``): at most one primary serving per
partition; every applied decree has the same mutation on every replica that ever applied it
(committed prefixes identical); applied decrees are contiguous per replica; every write
acknowledged to the client is in the committed history. After healing, every acknowledged write
must be readable from the partition's primary and all members' stores must be identical.
"""
from __future__ import annotations

import heapq
import os
import random
import shutil
from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Optional, Set, Tuple

from pegasus_server import errors as E
from pegasus_server.base import INVALID_ADDRESS, Gpid, RpcAddress
from pegasus_server.config import AppSpec, Config, MetaServerConfig, ReplicationConfig
from pegasus_server.meta.model import PartitionConfig
from pegasus_server.meta.state import MetaState
from pegasus_server.meta.store import MemoryMetaStore
from pegasus_server.replica import events as ev
from pegasus_server.replica.pacifica import Options, ReplicaCore
from pegasus_server.rpc import thrift
from pegasus_server.storage import keys
from pegasus_server.storage.app import StorageApp

MA = thrift.meta_admin
META = RpcAddress("10.0.0.100", 34601)
CLIENT = RpcAddress("10.0.0.200", 1)
RPC_PUT = "RPC_RRDB_RRDB_PUT"
RPC_GET = "RPC_RRDB_RRDB_GET"


class InvariantViolation(AssertionError):
    pass


# ============================================================================ conversions
def to_membership(pc) -> ev.Membership:
    """thrift ``partition_configuration`` -> core ``Membership``."""
    prim = pc.primary if pc.primary and not pc.primary.is_invalid else None
    return ev.Membership(pc.pid, pc.ballot or 0, prim, tuple(pc.secondaries or ()),
                         pc.max_replica_count or 0, pc.last_committed_decree or 0,
                         tuple(pc.last_drops or ()))


def to_thrift_config(m: ev.Membership):
    return thrift.layer2.partition_configuration(
        pid=m.gpid, ballot=m.ballot, max_replica_count=m.max_replica_count,
        primary=m.primary if m.primary is not None else INVALID_ADDRESS,
        secondaries=list(m.secondaries), last_drops=list(m.last_drops),
        last_committed_decree=m.last_committed_decree, partition_flags=0)


# ============================================================================ simulated disk
class SimLog:
    """The private log of one replica: latest append per decree (what an in-order replay of an
    append-only log yields), durable once appended."""

    def __init__(self):
        self.entries: Dict[int, ev.Mutation] = {}

    def append(self, m: ev.Mutation) -> None:
        self.entries[m.decree] = m

    def discard_after(self, decree: int) -> None:
        for d in [d for d in self.entries if d > decree]:
            del self.entries[d]

    def gc_upto(self, decree: int) -> None:
        for d in [d for d in self.entries if d <= decree]:
            del self.entries[d]

    def first_contiguous(self, upto: int) -> Optional[int]:
        """Lowest d with every decree of [d, upto] present (None if ``upto`` is missing)."""
        if upto not in self.entries:
            return None
        d = upto
        while d - 1 in self.entries:
            d -= 1
        return d

    def range(self, lo_excl: int, hi_incl: int) -> Tuple[ev.Mutation, ...]:
        return tuple(self.entries[d] for d in range(lo_excl + 1, hi_incl + 1)
                     if d in self.entries)


@dataclass
class Disk:
    """What survives a node crash: logs, persisted ballots, storage directories."""
    root: str
    logs: Dict[Gpid, SimLog]
    ballots: Dict[Gpid, Tuple[int, int]]   # (ballot, member ballot)


# ============================================================================ event loop, bus
class Bus:
    """Message delivery with filters. ``drop_rate``, ``dup_rate``, ``delay`` range, and a set of
    blocked (src, dst) pairs (network partitions). Config syncs are never duplicated (see
    ``send``); every delay is below ``SimNode.CONFIG_SYNC_TIMEOUT``."""

    def __init__(self, sim: "Sim"):
        self.sim = sim
        self.drop_rate = 0.0
        self.dup_rate = 0.0
        self.delay = (0.001, 0.005)
        self.blocked: Set[Tuple[RpcAddress, RpcAddress]] = set()
        self.sent = 0
        self.dropped = 0

    def send(self, src, dst, payload) -> None:
        self.sent += 1
        rng = self.sim.rng
        if (src, dst) in self.blocked or (self.drop_rate and rng.random() < self.drop_rate):
            self.dropped += 1
            return
        copies = 2 if (self.dup_rate and rng.random() < self.dup_rate) else 1
        if payload[0] == "config_sync":
            # one RPC on the node's meta connection: the network does not duplicate it (a retry
            # is a new sync, sent only once the previous one is answered or given up on)
            copies = 1
        for _ in range(copies):
            self.sim.after(rng.uniform(*self.delay), self.sim.deliver, src, dst, payload)

    # partitions
    def isolate(self, a, others) -> None:
        for b in others:
            if b != a:
                self.blocked.add((a, b))
                self.blocked.add((b, a))

    def split(self, group_a, group_b) -> None:
        for a in group_a:
            self.isolate(a, group_b)

    def heal(self) -> None:
        self.blocked.clear()


class Sim:
    """The whole simulated cluster. ``Sim(seed, tmpdir)`` then ``start()``."""

    def __init__(self, seed: int, tmpdir: str, *, nodes: int = 4, partitions: int = 2,
                 replica_count: int = 3, min_2pc: int = 2, options: Optional[Options] = None,
                 replica_assign_delay: float = 600.0, tick: float = 0.1,
                 checkpoint_interval: float = 0.0, log_gc_keep: int = 5):
        self.seed = seed
        self.rng = random.Random(seed)
        self.now = 0.0
        self._q: list = []
        self._seq = 0
        self.events = 0
        self.tmpdir = tmpdir
        self.tick_interval = tick
        self.checkpoint_interval = checkpoint_interval
        self.log_gc_keep = log_gc_keep
        self.opts = options or Options(group_check_interval=10.0)
        self.config = Config(
            meta_server=MetaServerConfig(min_live_node_count_for_unfreeze=1,
                                         node_live_percentage_threshold_for_update=0),
            replication=ReplicationConfig(mutation_2pc_min_replica_count=min_2pc),
            apps=(AppSpec("sim", partition_count=partitions, max_replica_count=replica_count),))
        self.replica_assign_delay = replica_assign_delay
        self.bus = Bus(self)
        self.checker = Checker(self)
        self.meta = MetaHost(self)
        self.nodes: Dict[RpcAddress, SimNode] = {}
        for i in range(nodes):
            addr = RpcAddress(f"10.0.0.{i + 1}", 34801)
            self.nodes[addr] = SimNode(self, addr)
        self.client = ClientModel(self)
        self.trace: List[str] = []

    # ------------------------------------------------------------------ events
    def at(self, t: float, fn: Callable, *args) -> None:
        self._seq += 1
        heapq.heappush(self._q, (t, self._seq, fn, args))

    def after(self, dt: float, fn: Callable, *args) -> None:
        self.at(self.now + dt, fn, *args)

    def every(self, interval: float, fn: Callable, alive: Callable[[], bool],
              first: Optional[float] = None) -> None:
        def run():
            if not alive():
                return
            fn()
            self.after(interval, run)
        self.after(self.rng.uniform(0, interval) if first is None else first, run)

    def step(self) -> bool:
        if not self._q:
            return False
        t, _, fn, args = heapq.heappop(self._q)
        self.now = max(self.now, t)
        fn(*args)
        self.events += 1
        self.checker.check_step()
        return True

    def run_for(self, seconds: float) -> None:
        end = self.now + seconds
        while self._q and self._q[0][0] <= end:
            self.step()
        self.now = max(self.now, end)

    def run_until(self, pred: Callable[[], bool], timeout: float, what: str = "") -> None:
        end = self.now + timeout
        while not pred():
            if not self._q or self._q[0][0] > end:
                raise AssertionError(f"timed out after {timeout}s waiting for {what or pred} "
                                     f"(seed {self.seed}, t={self.now:.3f})\n{self.describe()}")
            self.step()

    def deliver(self, src, dst, payload) -> None:
        if dst == META:
            self.meta.receive(src, payload)
        elif dst == CLIENT:
            self.client.receive(src, payload)
        else:
            node = self.nodes.get(dst)
            if node is not None and node.alive:
                node.receive(src, payload)

    def log(self, text: str) -> None:
        self.trace.append(f"{self.now:10.3f} {text}")

    # ------------------------------------------------------------------ control
    def start(self) -> "Sim":
        self.meta.start()
        for n in self.nodes.values():
            n.start()
        return self

    def crash(self, addr) -> None:
        self.log(f"crash {addr}")
        self.nodes[addr].crash()

    def restart(self, addr) -> None:
        self.log(f"restart {addr}")
        self.nodes[addr].start()

    def gpids(self) -> List[Gpid]:
        return [Gpid(1, i) for i in range(self.config.apps[0].partition_count)]

    def meta_config(self, gpid: Gpid) -> Optional[PartitionConfig]:
        if not self.meta.alive:
            return None
        return self.meta.state.partition(gpid)

    def healthy(self, gpid: Gpid) -> bool:
        """The meta's config is complete and every member agrees and serves. A stalled
        (paused) member is not healthy: its lease runs out while it sleeps, so a primary that
        still looks serving at the moment of the check may stop serving moments later."""
        pc = self.meta_config(gpid)
        if pc is None or pc.primary.is_invalid:
            return False
        if 1 + len(pc.secondaries) < self.config.apps[0].max_replica_count:
            return False
        if any(self.now < self.nodes[a].paused_until for a in [pc.primary, *pc.secondaries]):
            return False
        p = self.nodes[pc.primary]
        core = p.cores.get(gpid) if p.alive else None
        if core is None or not core.is_serving(self.now) or core.ballot != pc.ballot:
            return False
        for s in pc.secondaries:
            n = self.nodes[s]
            c = n.cores.get(gpid) if n.alive else None
            if c is None or c.status != ev.PS_SECONDARY or c.ballot != pc.ballot:
                return False
        return True

    def all_healthy(self) -> bool:
        return all(self.healthy(g) for g in self.gpids())

    def serving_primary(self, gpid: Gpid) -> Optional["SimNode"]:
        for n in self.nodes.values():
            c = n.cores.get(gpid) if n.alive else None
            if c is not None and c.is_serving(self.now):
                return n
        return None

    def describe(self) -> str:
        lines = [f"t={self.now:.3f} events={self.events} meta alive={self.meta.alive}"]
        for g in self.gpids():
            pc = self.meta_config(g)
            if pc is not None:
                lines.append(f"  meta {g}: b={pc.ballot} p={pc.primary} s={pc.secondaries} "
                             f"drops={pc.last_drops} wait={self.meta.state.waiting.get(g)!r}")
        for n in self.nodes.values():
            lines.append(f"  node {n.addr} alive={n.alive} conn={n.conn}")
            for g, c in sorted(n.cores.items()):
                lines.append(f"    {c} learner={c.learner_status} proposing="
                             f"{c.proposing and (c.proposing.type, str(c.proposing.node))}")
        lines += ["  trace:"] + ["    " + t for t in self.trace[-30:]]
        return "\n".join(lines)

    def close(self) -> None:
        for n in self.nodes.values():
            n.close_storages()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


# ============================================================================ meta host
class MetaHost:
    def __init__(self, sim: Sim):
        self.sim = sim
        self.store = MemoryMetaStore()
        self.state: Optional[MetaState] = None
        self.alive = False
        self.incarnation = 0

    def start(self) -> None:
        sim = self.sim
        self.incarnation += 1
        inc = self.incarnation
        self.state = MetaState(sim.config, self.store, META,
                               replica_assign_delay=sim.replica_assign_delay)
        self.state.load(sim.now)
        self.alive = True
        live = lambda: self.alive and self.incarnation == inc  # noqa: E731
        sim.every(sim.config.replication.fd_check_interval_seconds,
                  lambda: self._send(self.state.check_nodes(sim.now)), live)
        sim.every(10.0, lambda: self._send(self.state.cure(sim.now)), live)

    def crash(self) -> None:
        self.sim.log("meta crash")
        self.alive = False
        self.state = None

    def restart(self) -> None:
        self.sim.log("meta restart")
        self.start()

    def _send(self, proposals) -> None:
        for p in proposals:
            self.sim.log(f"meta proposes {p.request.type} node={p.request.node} to {p.target} "
                         f"for {p.request.config.pid} b={p.request.config.ballot}")
            self.sim.bus.send(META, p.target, ("proposal", p.request))

    def receive(self, src, payload) -> None:
        if not self.alive:
            return
        kind = payload[0]
        st, now = self.state, self.sim.now
        if kind == "beacon":
            ack = st.on_beacon(payload[1], now)
            self.sim.bus.send(META, src, ("beacon_ack", ack))
        elif kind == "config_sync":
            self.sim.bus.send(META, src, ("config_sync_reply", st.on_config_sync(payload[1], now),
                                          payload[2]))
        elif kind == "update_config":
            req = payload[1]
            resp = st.on_update_partition_configuration(req, now)
            self.sim.log(f"meta update {req.config.pid} type={req.type} node={req.node} "
                         f"b={req.config.ballot} -> {resp.err} (b={resp.config.ballot})")
            self.sim.bus.send(META, src, ("meta_reply", req.config.pid, resp))
            if resp.err == E.ERR_OK:
                self._send(st.cure(now))


# ============================================================================ replica node
class SimNode:
    BEACON = 3.0
    LEASE_CHECK = 2.0
    CONFIG_SYNC = 30.0
    CONFIG_SYNC_TIMEOUT = 5.0    # > the bus's largest delay: a sync given up on is never delivered
    INACTIVE_KEEP = 600.0

    def __init__(self, sim: Sim, addr: RpcAddress):
        self.sim = sim
        self.addr = addr
        root = os.path.join(sim.tmpdir, f"{addr.host}_{addr.port}")
        self.disk = Disk(root, {}, {})
        self.alive = False
        self.incarnation = 0
        self.cores: Dict[Gpid, ReplicaCore] = {}
        self.storages: Dict[Gpid, StorageApp] = {}
        self.inactive_since: Dict[Gpid, float] = {}
        self.closed: Dict[Gpid, Tuple[int, int, int]] = {}
        self.responses: Dict[Tuple[Gpid, int], list] = {}
        self.log_done: Dict[Gpid, float] = {}
        self.pending_log: Dict[Gpid, list] = {}
        self.conn = "disconnected"
        self.last_acked = float("-inf")
        self.paused_until = float("-inf")
        self.sync_seq = 0
        # at most one config sync in flight (the meta's report fence relies on it, see
        # "replica reports" in meta/state.py): (seq, sent at) of the outstanding one, and
        # whether another was wanted meanwhile
        self.sync_outstanding: Optional[Tuple[int, float]] = None
        self.sync_wanted = False

    def lease_until(self) -> float:
        return self.last_acked + self.sim.config.replication.fd_lease_seconds

    def pause(self, seconds: float) -> None:
        """Freeze the process (a long GC / VM stall): nothing runs until it resumes; messages
        and timers wait."""
        self.sim.log(f"pause {self.addr} for {seconds:.1f}s")
        self.paused_until = max(self.paused_until, self.sim.now + seconds)

    def _deferred(self, fn, *args) -> bool:
        if self.sim.now < self.paused_until:
            self.sim.at(self.paused_until, fn, *args)
            return True
        return False

    # ------------------------------------------------------------------ lifecycle
    def _data_dir(self, gpid: Gpid) -> str:
        return os.path.join(self.disk.root, f"{gpid.app_id}.{gpid.partition_index}", "data")

    def _open_storage(self, gpid: Gpid) -> StorageApp:
        st = StorageApp.open(self._data_dir(gpid), gpid, engine="memory",
                             server=f"{self.addr.host}:{self.addr.port}",
                             clock=lambda: 1_700_000_000 + self.sim.now,
                             timer=lambda: self.sim.now)
        self.storages[gpid] = st
        return st

    def start(self) -> None:
        sim = self.sim
        self.incarnation += 1
        self.alive = True
        self.conn = "disconnected"
        self.last_acked = float("-inf")
        self.cores, self.storages, self.responses, self.log_done = {}, {}, {}, {}
        self.pending_log: Dict[Gpid, list] = {}
        self.inactive_since, self.closed = {}, {}
        self.sync_outstanding, self.sync_wanted = None, False
        for gpid in sorted(self.disk.logs):
            self._open_replica(gpid)
        inc = self.incarnation
        live = lambda: self.alive and self.incarnation == inc  # noqa: E731
        sim.every(self.BEACON, self._beacon, live, first=0.0)
        sim.every(self.LEASE_CHECK, self._lease_check, live)
        sim.every(self.CONFIG_SYNC, self._config_sync, live)
        sim.every(sim.tick_interval, self._tick, live)
        if sim.checkpoint_interval:
            sim.every(sim.checkpoint_interval, self._checkpoint, live)

    def _new_core(self, gpid: Gpid, ballot: int, lcd: int, member: int = 0) -> ReplicaCore:
        core = ReplicaCore(gpid, self.addr, self.sim.opts, ballot=ballot, member_ballot=member,
                           last_committed_decree=lcd,
                           max_replica_count=self.sim.config.apps[0].max_replica_count)
        self.cores[gpid] = core
        core.on_lease(self.sim.now, self.lease_until())   # the node's current lease
        self.inactive_since[gpid] = self.sim.now
        self.disk.logs.setdefault(gpid, SimLog())
        return core

    def _open_replica(self, gpid: Gpid) -> ReplicaCore:
        """Open a replica from its files (at start, or reopening a closed one)."""
        self.closed.pop(gpid, None)
        st = self._open_storage(gpid)
        ballot, member = self.disk.ballots.get(gpid, (0, 0))
        core = self._new_core(gpid, ballot, st.last_committed_decree, member)
        self._perform(gpid, core.replay(self.sim.now, self.disk.logs[gpid].entries.values()))
        return core

    def _replica_for(self, gpid: Gpid) -> ReplicaCore:
        """The serving replica, else the closed one reopened, else a new empty one."""
        core = self.cores.get(gpid)
        if core is None:
            if gpid in self.disk.logs:
                self.sim.log(f"{self.addr} reopens replica {gpid}")
                core = self._open_replica(gpid)
            else:
                core = self._create_replica(gpid)
        return core

    def _create_replica(self, gpid: Gpid) -> ReplicaCore:
        self.sim.log(f"{self.addr} creates replica {gpid}")
        self.disk.logs[gpid] = SimLog()
        self.disk.ballots[gpid] = (0, 0)
        shutil.rmtree(os.path.dirname(self._data_dir(gpid)), ignore_errors=True)
        st = self._open_storage(gpid)
        return self._new_core(gpid, 0, st.last_committed_decree)

    def _close_replica(self, gpid: Gpid) -> None:
        """PS_ERROR: out of the serving map; its files stay (upstream keeps the directory
        until the meta lists it in gc_replicas) and it is still reported in config sync."""
        self.sim.log(f"{self.addr} closes replica {gpid}")
        c = self.cores.pop(gpid)
        self.closed[gpid] = (c.member_ballot, c.last_committed_decree, c.last_prepared_decree)
        self.storages.pop(gpid).close()

    def crash(self) -> None:
        self.alive = False
        self.paused_until = float("-inf")
        self.close_storages()
        self.cores = {}

    def close_storages(self) -> None:
        for st in self.storages.values():
            st.close()
        self.storages = {}

    # ------------------------------------------------------------------ timers
    def _beacon(self) -> None:
        if self.sim.now < self.paused_until:     # a stalled process misses timers
            return
        msg = thrift.fd.beacon_msg(time=int(self.sim.now * 1000), from_node=self.addr,
                                   to_node=META, start_time=0)
        self.sim.bus.send(self.addr, META, ("beacon", msg))

    def _lease_check(self) -> None:
        if self.sim.now < self.paused_until:     # a stalled process misses timers
            return
        rc = self.sim.config.replication
        if self.conn != "disconnected" and \
                self.sim.now + rc.fd_check_interval_seconds - self.last_acked > rc.fd_lease_seconds:
            self.sim.log(f"{self.addr} lost its meta lease")
            self.conn = "disconnected"
            self.sync_seq += 1                   # answers to earlier syncs are stale now
            for g, c in list(self.cores.items()):
                self._perform(g, c.on_meta_disconnected(self.sim.now))

    def _config_sync(self) -> None:
        if self.sim.now < self.paused_until:     # a stalled process misses timers
            return
        if self.conn == "disconnected":
            return
        out = self.sync_outstanding
        if out is not None and self.sim.now - out[1] < self.CONFIG_SYNC_TIMEOUT:
            self.sync_wanted = True              # sent once the outstanding one is answered
            return
        self.sync_wanted = False
        infos = [thrift.metadata.replica_info(
            pid=g, ballot=c.member_ballot, status=c.status,
            last_committed_decree=c.last_committed_decree,
            last_prepared_decree=c.last_prepared_decree, last_durable_decree=0, app_type="pegasus",
            disk_tag="") for g, c in sorted(self.cores.items())]
        infos += [thrift.metadata.replica_info(
            pid=g, ballot=b, status=ev.PS_ERROR, last_committed_decree=lcd,
            last_prepared_decree=lpd, last_durable_decree=0, app_type="pegasus", disk_tag="")
            for g, (b, lcd, lpd) in sorted(self.closed.items())]
        req = MA.configuration_query_by_node_request(node=self.addr, stored_replicas=infos)
        self.sync_seq += 1                   # only the answer to the latest request counts
        self.sync_outstanding = (self.sync_seq, self.sim.now)
        self.sim.bus.send(self.addr, META, ("config_sync", req, self.sync_seq))
        self.sim.after(self.CONFIG_SYNC_TIMEOUT, self._config_sync_timeout, self.incarnation,
                       self.sync_seq)

    def _config_sync_timeout(self, inc, seq) -> None:
        if not self.alive or inc != self.incarnation or self.sync_outstanding is None \
                or self.sync_outstanding[0] != seq:
            return
        if self._deferred(self._config_sync_timeout, inc, seq):
            return
        self.sync_outstanding = None             # lost: may send again
        if self.sync_wanted:
            self._config_sync()

    def _tick(self) -> None:
        if self.sim.now < self.paused_until:     # a stalled process misses timers
            return
        for g, c in list(self.cores.items()):
            if self.cores.get(g) is c:
                self._perform(g, c.tick(self.sim.now))

    def _checkpoint(self) -> None:
        """Flush storage (durable decree) and GC the log below it, keeping a few entries."""
        if self.sim.now < self.paused_until:     # a stalled process misses timers
            return
        for g, st in list(self.storages.items()):
            if g in self.cores and self.sim.rng.random() < 0.5:
                d = st.flush()
                self.disk.logs[g].gc_upto(d - self.sim.log_gc_keep)

    # ------------------------------------------------------------------ messages
    def receive(self, src, payload) -> None:
        if self._deferred(self.receive, src, payload):
            return
        kind = payload[0]
        now = self.sim.now
        if kind == "beacon_ack":
            ack = payload[1]
            if not ack.is_master:
                return
            lapsed = now >= self.lease_until()
            self.last_acked = max(self.last_acked, ack.time / 1000.0)
            lease = self.lease_until()
            for g, c in list(self.cores.items()):
                self._perform(g, c.on_lease(now, lease))
            if lapsed and self.conn != "disconnected":   # lapsed unnoticed (stalled process)
                self.sim.log(f"{self.addr} lease had lapsed; reconnecting")
                self.conn = "disconnected"
            if self.conn == "disconnected" and now < lease:
                self.conn = "connecting"
                self._config_sync()
        elif kind == "config_sync_reply":
            if self.sync_outstanding is not None and payload[2] == self.sync_outstanding[0]:
                self.sync_outstanding = None
            if payload[2] == self.sync_seq:
                self._on_config_sync_reply(payload[1])
            if self.sync_outstanding is None and self.sync_wanted:
                self._config_sync()
        elif kind == "proposal":
            self._on_proposal(payload[1])
        elif kind == "meta_reply":
            gpid, resp = payload[1], payload[2]
            core = self.cores.get(gpid)
            if core is not None:
                cfg = to_membership(resp.config) if resp.config is not None else None
                self._perform(gpid, core.on_meta_update_reply(now, resp.err, cfg))
        elif kind == "replica":
            self._on_replica_msg(src, payload[1], payload[2])
        elif kind == "client_write":
            _, gpid, req_id, code, request = payload
            core = self.cores.get(gpid)
            if core is None:
                self.sim.bus.send(self.addr, CLIENT, ("client_reply", req_id, E.ERR_OBJECT_NOT_FOUND))
                return
            self._perform(gpid, core.client_write(now, code, request, req_id))

    def _on_config_sync_reply(self, resp) -> None:
        now = self.sim.now
        if resp.err != E.ERR_OK or self.conn == "disconnected":
            return
        listed = set()
        for upd in resp.partitions or []:
            m = to_membership(upd.config)
            listed.add(m.gpid)
            core = self.cores.get(m.gpid)
            if core is None:
                if m.primary == self.addr:   # the meta thinks we are primary but we have nothing
                    new = replace(m, ballot=m.ballot + 1, primary=None)
                    self._report(m.gpid, ev.CT_DOWNGRADE_TO_INACTIVE, self.addr, new)
                continue
            self._perform(m.gpid, core.on_config_sync(now, m))
        for g, c in list(self.cores.items()):
            if g in listed or c.status == ev.PS_POTENTIAL_SECONDARY or c.proposing is not None:
                continue
            if c.status == ev.PS_INACTIVE and now - self.inactive_since.get(g, now) < self.INACTIVE_KEEP:
                continue
            self._close_replica(g)
        self.conn = "connected"

    def _on_proposal(self, req) -> None:
        if self.conn != "connected":
            return
        m = to_membership(req.config)
        core = self.cores.get(m.gpid)
        if core is None:
            if req.type != ev.CT_ASSIGN_PRIMARY:
                return
            core = self._replica_for(m.gpid)
        self._perform(m.gpid, core.on_proposal(self.sim.now, ev.ConfigProposal(req.type, req.node, m)))

    def _on_replica_msg(self, src, gpid: Gpid, msg) -> None:
        now = self.sim.now
        core = self.cores.get(gpid)
        t = type(msg)
        if t is ev.GroupCheck and self.conn != "connected":
            return                                       # §6.7: not connected -> ignore
        if core is None:
            if t is ev.AddLearner or (t is ev.GroupCheck and
                                      msg.config.status == ev.PS_POTENTIAL_SECONDARY):
                if self.conn != "connected":
                    return
                core = self._replica_for(gpid)
            elif t is ev.Prepare:
                m = msg.mutation
                self.sim.bus.send(self.addr, src, ("replica", gpid, ev.PrepareAck(
                    gpid, E.ERR_OBJECT_NOT_FOUND, m.ballot, m.decree, 0, 0)))
                return
            elif t is ev.GroupCheck:
                self.sim.bus.send(self.addr, src, ("replica", gpid, ev.GroupCheckReply(
                    gpid, E.ERR_OBJECT_NOT_FOUND, self.addr, 0, 0)))
                return
            elif t is ev.LearnRequest:
                self.sim.bus.send(self.addr, src, ("replica", gpid, ev.LearnResponse(
                    gpid, E.ERR_OBJECT_NOT_FOUND, None, seq=msg.seq)))
                return
            else:
                return
        if t is ev.LearnRequest:
            eff = core.on_learn(now, src, msg,
                                self.disk.logs[gpid].first_contiguous(core.last_committed_decree))
        elif t is ev.RemoveReplica:
            eff = core.on_remove(now, msg)
        else:
            handler = _CORE_HANDLERS.get(t)
            if handler is None:
                raise TypeError(f"unknown replica message {msg!r}")
            eff = getattr(core, handler)(now, src, msg)
        self._perform(gpid, eff)

    # ------------------------------------------------------------------ effects
    def _report(self, gpid, type_, node, m: ev.Membership) -> None:
        req = MA.configuration_update_request(info=None, config=to_thrift_config(m), type=type_,
                                              node=node, host_node=INVALID_ADDRESS)
        self.sim.bus.send(self.addr, META, ("update_config", req))

    def _perform(self, gpid: Gpid, effects) -> None:
        sim = self.sim
        for e in effects:
            t = type(e)
            if t is ev.Send:
                sim.bus.send(self.addr, e.to, ("replica", gpid, e.msg))
            elif t is ev.AppendLog:
                # written (durable across a crash) only when the append completes, in order
                item = [e.mutation, True]
                self.pending_log.setdefault(gpid, []).append(item)
                done = max(self.log_done.get(gpid, 0.0), sim.now + sim.rng.uniform(0.0002, 0.002))
                self.log_done[gpid] = done
                sim.at(done, self._log_appended, self.incarnation, gpid, self.cores.get(gpid),
                       item)
            elif t is ev.Apply:
                self._apply(gpid, e.mutation)
            elif t is ev.ReplyClient:
                for c in e.clients:
                    sim.bus.send(self.addr, CLIENT, ("client_reply", c, e.err, gpid, e.decree))
            elif t is ev.ReportToMeta:
                sim.log(f"{self.addr} reports {e.type} node={e.node} {gpid} b={e.config.ballot} "
                        f"p={e.config.primary} s={e.config.secondaries}")
                self._report(gpid, e.type, e.node, e.config)
            elif t is ev.PersistBallot:
                self.disk.ballots[gpid] = (e.ballot, e.member_ballot)
            elif t is ev.DiscardLogAfter:
                self.disk.logs[gpid].discard_after(e.decree)
                for item in self.pending_log.get(gpid, ()):
                    if item[0].decree > e.decree:
                        item[1] = False
            elif t is ev.ResetStorage:
                sim.log(f"{self.addr} wipes storage of {gpid}")
                self.storages.pop(gpid).close()
                shutil.rmtree(self._data_dir(gpid), ignore_errors=True)
                self._open_storage(gpid)
            elif t is ev.SendLearnResponse:
                self._send_learn_response(gpid, e)
            elif t is ev.InstallCheckpoint:
                sim.after(sim.rng.uniform(0.01, 0.3), self._install, self.incarnation, gpid,
                          self.cores.get(gpid), e)
            elif t is ev.StatusChanged:
                sim.log(f"{self.addr} {gpid} {ev.STATUS_NAMES[e.old]} -> "
                        f"{ev.STATUS_NAMES[e.new]} b={e.ballot}")
                if e.new == ev.PS_INACTIVE:
                    self.inactive_since[gpid] = sim.now
            else:
                raise TypeError(f"unknown effect {e!r}")

    def _log_appended(self, inc, gpid, core, item) -> None:
        if not self.alive or inc != self.incarnation:
            return                                   # lost with the crash
        if self._deferred(self._log_appended, inc, gpid, core, item):
            return
        self.pending_log[gpid].remove(item)
        m, keep = item
        if keep:
            self.disk.logs[gpid].append(m)
        if self.cores.get(gpid) is core:
            self._perform(gpid, core.on_log_appended(self.sim.now, m.decree, m.ballot))

    def _apply(self, gpid: Gpid, m: ev.Mutation) -> None:
        st = self.storages[gpid]
        if m.decree != st.last_committed_decree + 1:
            raise InvariantViolation(f"{self.addr} {gpid}: apply decree {m.decree} over storage "
                                     f"decree {st.last_committed_decree}")
        reqs = [(u.code, u.payload) for u in m.updates if u.code != ev.RPC_WRITE_EMPTY]
        self.responses[(gpid, m.decree)] = st.write_batch(m.decree, m.timestamp_us, reqs)
        self.sim.checker.on_apply(self.addr, gpid, m)

    def _send_learn_response(self, gpid: Gpid, e: ev.SendLearnResponse) -> None:
        resp = e.response
        if e.fill == ev.LT_LOG:
            s = resp.state
            muts = self.disk.logs[gpid].range(s.from_decree_excluded, s.to_decree_included)
            resp = replace(resp, state=replace(s, mutations=muts))
        else:
            st = self.storages[gpid]
            decree, path = st.checkpoint()
            resp = replace(resp, state=ev.LearnState(0, decree, files=path))
        self.sim.log(f"{self.addr} learn response {ev.LT_LOG and e.fill} to {e.to} "
                     f"({resp.state.from_decree_excluded}, {resp.state.to_decree_included}]")
        self.sim.bus.send(self.addr, e.to, ("replica", gpid, resp))

    def _install(self, inc, gpid, core, e: ev.InstallCheckpoint) -> None:
        if not self.alive or inc != self.incarnation or self.cores.get(gpid) is not core:
            return
        if self._deferred(self._install, inc, gpid, core, e):
            return
        src = self.sim.nodes.get(e.source)
        path = e.state.files
        now = self.sim.now
        if src is None or not src.alive or not path or not os.path.isdir(path):
            self._perform(gpid, core.on_checkpoint_install_failed(now, e.seq))
            return
        if not core.checkpoint_wanted(e.seq):
            self.sim.log(f"{self.addr} drops the checkpoint of an earlier learning round of {gpid}")
            return
        self.storages.pop(gpid).close()
        StorageApp.install_checkpoint(self._data_dir(gpid), path)
        st = self._open_storage(gpid)
        self.sim.log(f"{self.addr} installed checkpoint {st.last_committed_decree} of {gpid}")
        self.sim.checker.on_install(self.addr, gpid, st)
        self._perform(gpid, core.on_checkpoint_installed(now, st.last_committed_decree, e.seq))


# ============================================================================ client
class ClientModel:
    """Issues unique PUTs, records what was acknowledged. A write is "acked" once an ERR_OK reply
    arrives; errors and silence leave it "unknown" (it may or may not have been applied)."""

    TIMEOUT = 5.0

    def __init__(self, sim: Sim):
        self.sim = sim
        self.next_id = 0
        self.pending: Dict[int, Tuple[Gpid, bytes, bytes, float]] = {}
        self.acked: Dict[Tuple[Gpid, bytes], bytes] = {}
        self.routes: Dict[Gpid, RpcAddress] = {}
        self.failed = 0
        self.issued = 0

    def write(self, gpid: Optional[Gpid] = None) -> Optional[int]:
        sim = self.sim
        gpid = gpid or sim.rng.choice(sim.gpids())
        pc = sim.meta_config(gpid)
        if pc is not None:
            self.routes[gpid] = pc.primary     # query_cfg when the meta answers, else cached
        primary = self.routes.get(gpid)
        if primary is None or primary.is_invalid:
            return None
        self.next_id += 1
        rid = self.next_id
        key = keys.encode_key(f"k{rid}".encode(), b"")
        value = f"v{rid}-{sim.seed}".encode()
        req = thrift.rrdb.update_request(key=key, value=value, expire_ts_seconds=0)
        self.pending[rid] = (gpid, key, value, sim.now + self.TIMEOUT)
        self.issued += 1
        sim.bus.send(CLIENT, primary, ("client_write", gpid, rid, RPC_PUT, req))
        return rid

    def receive(self, src, payload) -> None:
        if payload[0] != "client_reply":
            return
        rid, err = payload[1], payload[2]
        item = self.pending.pop(rid, None)
        if item is None:
            return
        gpid, key, value, _ = item
        if err == E.ERR_OK:
            self.acked[(gpid, key)] = value
            self.sim.checker.on_ack(gpid, key, value, payload[4])
        else:
            self.failed += 1

    def expire(self) -> None:
        now = self.sim.now
        for rid in [r for r, it in self.pending.items() if it[3] <= now]:
            del self.pending[rid]
            self.failed += 1


# ============================================================================ invariants
def _identity(m: ev.Mutation):
    return (m.timestamp_us, tuple((u.code, getattr(u.payload, "key", None),
                                   getattr(u.payload, "value", None)) for u in m.updates))


class Checker:
    def __init__(self, sim: Sim):
        self.sim = sim
        self.history: Dict[Gpid, Dict[int, tuple]] = {}
        self.key_decree: Dict[Tuple[Gpid, bytes], Set[int]] = {}
        self.max_serving = 0
        self.applies = 0

    def fail(self, text: str) -> None:
        raise InvariantViolation(f"{text}\n(seed {self.sim.seed}, t={self.sim.now:.3f})\n"
                                 f"{self.sim.describe()}")

    def on_apply(self, node, gpid: Gpid, m: ev.Mutation) -> None:
        self.applies += 1
        h = self.history.setdefault(gpid, {})
        ident = _identity(m)
        old = h.get(m.decree)
        if old is None:
            h[m.decree] = ident
            for code, key, _ in ident[1]:
                if key is not None:     # a duplicated request may land in several decrees
                    self.key_decree.setdefault((gpid, key), set()).add(m.decree)
        elif old != ident:
            self.fail(f"divergent commit: {node} applied decree {m.decree} of {gpid} as "
                      f"{ident}, earlier {old}")

    def on_install(self, node, gpid: Gpid, storage: StorageApp) -> None:
        if storage.last_committed_decree > max(self.history.get(gpid, {0: None}), default=0):
            self.fail(f"{node} installed a checkpoint beyond the committed history")

    def on_ack(self, gpid: Gpid, key: bytes, value: bytes, decree: int) -> None:
        if decree not in self.key_decree.get((gpid, key), ()):
            self.fail(f"acked write {key!r} of {gpid} at decree {decree} is not in the "
                      f"committed history ({self.key_decree.get((gpid, key))})")

    def check_step(self) -> None:
        now = self.sim.now
        for g in self.sim.gpids():
            serving = [n.addr for n in self.sim.nodes.values()
                       if n.alive and g in n.cores and n.cores[g].is_serving(now)]
            if len(serving) > 1:
                self.fail(f"{len(serving)} primaries serving {g}: {serving}")
            self.max_serving = max(self.max_serving, len(serving))

    def check_final(self) -> None:
        """After healing: acked writes readable from the primary; members identical."""
        sim = self.sim
        for g in sim.gpids():
            p = sim.serving_primary(g)
            if p is None:
                self.fail(f"no serving primary for {g} after heal")
            st = p.storages[g]
            for (gg, key), value in sim.client.acked.items():
                if gg != g:
                    continue
                resp = st.read(RPC_GET, key)
                if resp.error != 0 or resp.value != value:
                    self.fail(f"acknowledged write {key!r}={value!r} of {g} lost: read gives "
                              f"error {resp.error} value {resp.value!r} on {p.addr}")
            pc = sim.meta_config(g)
            hist = self.history.get(g, {})
            mine = _dump(st)
            for a in pc.secondaries:
                node = sim.nodes[a]
                s = node.storages[g]
                gap = range(s.last_committed_decree + 1, st.last_committed_decree + 1)
                if all(hist.get(d, (0, ()))[1] == ((_EMPTY, None, None),) for d in gap):
                    if _dump(s) != mine:
                        self.fail(f"secondary {a} of {g} holds different data than {p.addr}")
                    continue
                # behind by real writes: only allowed while their commit point is in flight,
                # i.e. they are logged in its prepare list, identical to the committed ones
                for d in gap:
                    slot = node.cores[g].plist.get(d)
                    if slot is None or not slot.logged or _identity(slot.mutation) != hist[d]:
                        self.fail(f"secondary {a} of {g} misses committed decree {d} "
                                  f"({s.last_committed_decree} < {st.last_committed_decree})")


_EMPTY = ev.RPC_WRITE_EMPTY


def _dump(st: StorageApp):
    with st.engine.cursor(None, None) as cur:
        out = []
        cur.seek(b"")
        while cur.valid:
            if cur.key() != b"":          # the empty-write record (writes.EMPTY_RECORD_KEY)
                out.append((cur.key(), cur.value()))
            cur.next()
    return tuple(out)


# replica message type -> the core's entry point taking (now, src, msg)
_CORE_HANDLERS = {
    ev.Prepare: "on_prepare", ev.PrepareAck: "on_prepare_ack", ev.GroupCheck: "on_group_check",
    ev.GroupCheckReply: "on_group_check_reply", ev.AddLearner: "on_add_learner",
    ev.LearnResponse: "on_learn_response", ev.LearnCompletion: "on_learn_completion",
    ev.LearnNotifyReply: "on_learn_notify_reply",
}
