"""The meta's model of the cluster: apps (tables), partition configurations, replica nodes.

Plain Python objects with JSON forms for the meta store (meta.md §9: app_info with field names as
keys, partition configurations with ``pid`` as "app.pidx" and addresses as "ip:port" or "invalid
address") and conversions to and from the IDL structs. Must not import gevent, sockets or kazoo.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Dict, List

from pegasus_server.base import INVALID_ADDRESS, Gpid, HostPort, RpcAddress
from pegasus_server.rpc import thrift

AS_INVALID, AS_AVAILABLE, AS_CREATING, AS_CREATE_FAILED, AS_DROPPING, AS_DROP_FAILED, \
    AS_DROPPED, AS_RECALLING = range(8)
STATUS_NAMES = ["AS_INVALID", "AS_AVAILABLE", "AS_CREATING", "AS_CREATE_FAILED", "AS_DROPPING",
                "AS_DROP_FAILED", "AS_DROPPED", "AS_RECALLING"]

PARTITION_FLAG_DROPPED = 1

# meta function levels (meta.md §2.4)
LEVELS = {"stopped": 100, "blind": 200, "freezed": 300, "steady": 400, "lively": 500}
LEVEL_NAMES = {v: k for k, v in LEVELS.items()}
FL_FREEZED, FL_STEADY, FL_LIVELY, FL_INVALID = 300, 400, 500, 10000


def _addr_text(a: RpcAddress) -> str:
    return "invalid address" if a.is_invalid else f"{a.host}:{a.port}"


def _addr_parse(t: str) -> RpcAddress:
    if not t or t == "invalid address":
        return INVALID_ADDRESS
    h, p = t.rsplit(":", 1)
    return RpcAddress(h, int(p))


@dataclass
class PartitionConfig:
    pid: Gpid
    ballot: int = 0
    max_replica_count: int = 3
    primary: RpcAddress = INVALID_ADDRESS
    secondaries: List[RpcAddress] = field(default_factory=list)
    last_drops: List[RpcAddress] = field(default_factory=list)
    last_committed_decree: int = 0
    partition_flags: int = 0

    def members(self) -> List[RpcAddress]:
        out = [] if self.primary.is_invalid else [self.primary]
        return out + list(self.secondaries)

    def to_json(self) -> dict:
        return {
            "pid": str(self.pid), "ballot": self.ballot,
            "max_replica_count": self.max_replica_count,
            "primary": _addr_text(self.primary),
            "secondaries": [_addr_text(a) for a in self.secondaries],
            "last_drops": [_addr_text(a) for a in self.last_drops],
            "last_committed_decree": self.last_committed_decree,
            "partition_flags": self.partition_flags,
        }

    @classmethod
    def from_json(cls, d: dict) -> "PartitionConfig":
        return cls(Gpid.parse(d["pid"]), int(d["ballot"]), int(d["max_replica_count"]),
                   _addr_parse(d["primary"]), [_addr_parse(a) for a in d["secondaries"]],
                   [_addr_parse(a) for a in d["last_drops"]], int(d["last_committed_decree"]),
                   int(d["partition_flags"]))

    def to_thrift(self, with_host_port: bool = False):
        pc = thrift.layer2.partition_configuration(
            pid=self.pid, ballot=self.ballot, max_replica_count=self.max_replica_count,
            primary=self.primary, secondaries=list(self.secondaries),
            last_drops=list(self.last_drops), last_committed_decree=self.last_committed_decree,
            partition_flags=self.partition_flags)
        if with_host_port:
            pc.hp_primary = HostPort.from_address(self.primary)
            pc.hp_secondaries = [HostPort.from_address(a) for a in self.secondaries]
            pc.hp_last_drops = [HostPort.from_address(a) for a in self.last_drops]
        return pc

    @classmethod
    def from_thrift(cls, pc) -> "PartitionConfig":
        return cls(pc.pid, pc.ballot or 0, pc.max_replica_count or 0,
                   pc.primary or INVALID_ADDRESS, list(pc.secondaries or []),
                   list(pc.last_drops or []), pc.last_committed_decree or 0,
                   pc.partition_flags or 0)


@dataclass
class App:
    app_id: int
    app_name: str
    app_type: str = "pegasus"
    status: int = AS_AVAILABLE
    partition_count: int = 8
    max_replica_count: int = 3
    is_stateful: bool = True
    envs: Dict[str, str] = field(default_factory=dict)
    expire_second: int = 0
    create_second: int = 0
    drop_second: int = 0
    init_partition_count: int = -1
    atomic_idempotent: bool = False
    partitions: List[PartitionConfig] = field(default_factory=list)

    def info_json(self) -> dict:
        return {
            "status": "app_status::" + STATUS_NAMES[self.status], "app_type": self.app_type,
            "app_name": self.app_name, "app_id": self.app_id,
            "partition_count": self.partition_count, "envs": dict(self.envs),
            "is_stateful": self.is_stateful, "max_replica_count": self.max_replica_count,
            "expire_second": self.expire_second, "create_second": self.create_second,
            "drop_second": self.drop_second, "duplicating": False,
            "init_partition_count": self.init_partition_count, "is_bulk_loading": False,
            "atomic_idempotent": self.atomic_idempotent,
        }

    @classmethod
    def from_info_json(cls, d: dict) -> "App":
        status = d.get("status", "app_status::AS_AVAILABLE").split("::")[-1]
        return cls(app_id=int(d["app_id"]), app_name=d["app_name"],
                   app_type=d.get("app_type", "pegasus"), status=STATUS_NAMES.index(status),
                   partition_count=int(d["partition_count"]),
                   max_replica_count=int(d.get("max_replica_count", 3)),
                   is_stateful=bool(d.get("is_stateful", True)), envs=dict(d.get("envs", {})),
                   expire_second=int(d.get("expire_second", 0)),
                   create_second=int(d.get("create_second", 0)),
                   drop_second=int(d.get("drop_second", 0)),
                   init_partition_count=int(d.get("init_partition_count", -1)),
                   atomic_idempotent=bool(d.get("atomic_idempotent", False)))

    def to_thrift(self):
        return thrift.layer2.app_info(
            status=self.status, app_type=self.app_type, app_name=self.app_name,
            app_id=self.app_id, partition_count=self.partition_count, envs=dict(self.envs),
            is_stateful=self.is_stateful, max_replica_count=self.max_replica_count,
            expire_second=self.expire_second, create_second=self.create_second,
            drop_second=self.drop_second, init_partition_count=self.init_partition_count,
            atomic_idempotent=self.atomic_idempotent)

    @classmethod
    def from_thrift(cls, info) -> "App":
        return cls(app_id=info.app_id, app_name=info.app_name or "",
                   app_type=info.app_type or "pegasus", status=info.status or 0,
                   partition_count=info.partition_count or 0,
                   max_replica_count=info.max_replica_count or 0,
                   is_stateful=bool(info.is_stateful), envs=dict(info.envs or {}),
                   expire_second=info.expire_second or 0, create_second=info.create_second or 0,
                   drop_second=info.drop_second or 0,
                   init_partition_count=info.init_partition_count
                   if info.init_partition_count is not None else -1,
                   atomic_idempotent=bool(info.atomic_idempotent))


@dataclass
class Node:
    address: RpcAddress
    alive: bool = False
    last_beacon: float = 0.0
    start_time_ms: int = 0

    def __hash__(self):
        return hash(self.address)


def dumps(d: dict) -> bytes:
    return json.dumps(d, sort_keys=True).encode()


def loads(b: bytes) -> dict:
    return json.loads(b.decode())

