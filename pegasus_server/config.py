"""Configuration: one frozen dataclass per ini section, upstream's key names and defaults.

``load(path)`` reads an ini file (upstream's ``config.ini`` layout), ``validate()`` checks it.
Unknown keys are ignored (an upstream config carries many we do not use); unknown sections too,
except ``[meta_server.apps.<name>]`` which declares the tables a fresh cluster creates.
Imports only the standard library and ``errors``.
"""
from __future__ import annotations

import configparser
import dataclasses
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

from pegasus_server.errors import ConfigError


STATE_SIMPLE, STATE_ZOOKEEPER = "meta_state_service_simple", "meta_state_service_zookeeper"
LOCK_SIMPLE, LOCK_ZOOKEEPER = "distributed_lock_service_simple", "distributed_lock_service_zookeeper"


@dataclass(frozen=True)
class NetworkConfig:
    """[network]"""
    # D1: send the optional hp_* host_port twins on THFT connections (old clients cannot parse them)
    thft_send_host_port: bool = False
    # frames larger than this close the connection (protocol.md §1.1)
    max_frame_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class MetaServerConfig:
    """[meta_server]"""
    server_list: str = "127.0.0.1:34601"
    # where the meta state lives: meta_state_service_simple = the local directory meta_state_dir
    # (our embedded default, one meta), meta_state_service_zookeeper = ZooKeeper ([zookeeper]
    # hosts_list) under cluster_root, shared by several metas
    meta_state_service_type: str = "meta_state_service_simple"
    meta_state_dir: str = "meta_state"
    cluster_root: str = "/pegasus/onebox"
    # who leads: distributed_lock_service_simple = this meta, always (one meta);
    # distributed_lock_service_zookeeper = the holder of the ZooKeeper lock
    # <distributed_lock_service_parameters or cluster_root>/dsn.meta.server.leader
    distributed_lock_service_type: str = "distributed_lock_service_simple"
    distributed_lock_service_parameters: str = ""
    min_live_node_count_for_unfreeze: int = 3
    node_live_percentage_threshold_for_update: int = 65
    meta_function_level_on_start: str = "steady"
    hold_seconds_for_dropped_app: int = 604800
    min_allowed_replica_count: int = 1
    max_allowed_replica_count: int = 5
    stable_rs_min_running_seconds: int = 600
    max_succssive_unstable_restart: int = 5

    @property
    def servers(self) -> List[Tuple[str, int]]:
        out = []
        for item in self.server_list.split(","):
            item = item.strip()
            if item:
                h, p = item.rsplit(":", 1)
                out.append((h, int(p)))
        return out


@dataclass(frozen=True)
class ReplicationConfig:
    """[replication]"""
    cluster_name: str = "onebox"
    data_dirs: str = "data"
    fd_check_interval_seconds: float = 2
    fd_beacon_interval_seconds: float = 3
    fd_lease_seconds: float = 20
    fd_grace_seconds: float = 22
    config_sync_interval_ms: int = 30000
    mutation_2pc_min_replica_count: int = 2
    # PacificA (replica/pacifica.py): mutations in two-phase commit at once, prepare-list
    # capacity, prepare timeouts, and the group-check period (also the idle time after which a
    # primary writes an empty mutation to move the commit point)
    staleness_for_commit: int = 20
    max_mutation_count_in_prepare_list: int = 110
    prepare_timeout_ms_for_secondaries: int = 3000
    prepare_timeout_ms_for_potential_secondaries: int = 5000
    group_check_interval_ms: int = 100000
    max_allowed_write_size: int = 1048576
    # private mutation log (replica/plog.py): fdatasync after every group-committed batch when
    # true; upstream's default false relies on the three copies (survives a process crash, a
    # machine crash only while another replica has the write)
    plog_force_flush: bool = False
    log_private_file_size_mb: int = 32
    log_private_reserve_max_size_mb: int = 1000
    log_private_reserve_max_time_seconds: int = 36000
    # RocksDB: "memory" engine is for tests only
    storage_engine: str = "rocksdb"
    # fsync policy of the storage write-ahead log: false = rely on the OS page cache
    # (survives a process crash, not a power loss; upstream's default relies on three copies).
    # Storage keeps RocksDB's WAL on (upstream runs without it; see replica/storage_jobs.py)
    rocksdb_wal_sync: bool = False
    # how often private-log files below the durable (applied) decree are removed
    checkpoint_interval_seconds: int = 100
    # how often expired records are swept from storage (0 disables the sweep)
    expired_record_sweep_interval_seconds: int = 60


@dataclass(frozen=True)
class AppSpec:
    """[meta_server.apps.<name>]: a table created when the cluster starts empty."""
    app_name: str
    app_type: str = "pegasus"
    partition_count: int = 8
    max_replica_count: int = 3
    stateful: bool = True


@dataclass(frozen=True)
class ZookeeperConfig:
    """[zookeeper]"""
    hosts_list: str = "127.0.0.1:22181"
    timeout_ms: int = 30000      # session timeout (upstream's default)


@dataclass(frozen=True)
class ServerConfig:
    """[pegasus.server] and process-level settings."""
    host: str = "127.0.0.1"
    port: int = 0
    log_level: str = "INFO"


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    meta_server: MetaServerConfig = field(default_factory=MetaServerConfig)
    replication: ReplicationConfig = field(default_factory=ReplicationConfig)
    zookeeper: ZookeeperConfig = field(default_factory=ZookeeperConfig)
    apps: Tuple[AppSpec, ...] = ()

    def validate(self) -> "Config":
        r, m = self.replication, self.meta_server
        if r.fd_grace_seconds <= r.fd_lease_seconds:
            raise ConfigError("[replication] fd_grace_seconds must be greater than fd_lease_seconds")
        if r.checkpoint_interval_seconds < 1:
            raise ConfigError("[replication] checkpoint_interval_seconds must be at least 1")
        if r.storage_engine not in ("rocksdb", "memory"):
            raise ConfigError(f"[replication] storage_engine: unknown engine {r.storage_engine!r}")
        if m.meta_function_level_on_start not in ("stopped", "blind", "freezed", "steady", "lively"):
            raise ConfigError("[meta_server] meta_function_level_on_start: unknown level "
                              f"{m.meta_function_level_on_start!r}")
        if not m.servers:
            raise ConfigError("[meta_server] server_list is empty")
        if m.meta_state_service_type not in (STATE_SIMPLE, STATE_ZOOKEEPER):
            raise ConfigError("[meta_server] meta_state_service_type: unknown service "
                              f"{m.meta_state_service_type!r}")
        if m.distributed_lock_service_type not in (LOCK_SIMPLE, LOCK_ZOOKEEPER):
            raise ConfigError("[meta_server] distributed_lock_service_type: unknown service "
                              f"{m.distributed_lock_service_type!r}")
        if m.distributed_lock_service_type == LOCK_ZOOKEEPER and \
                m.meta_state_service_type != STATE_ZOOKEEPER:
            raise ConfigError("[meta_server] distributed_lock_service_zookeeper needs "
                              "meta_state_service_type = meta_state_service_zookeeper (the metas "
                              "must share their state)")
        for a in self.apps:
            if a.partition_count <= 0:
                raise ConfigError(f"[meta_server.apps.{a.app_name}] partition_count must be > 0")
        return self


def _coerce(cls, raw: Dict[str, str], section: str):
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            continue
        text = raw[f.name].strip()
        try:
            if f.type in ("bool", bool):
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                kwargs[f.name] = text.lower() in ("true", "1", "yes")
            elif f.type in ("int", int):
                kwargs[f.name] = int(text)
            elif f.type in ("float", float):
                kwargs[f.name] = float(text)
            else:
                kwargs[f.name] = text
        except ValueError:
            raise ConfigError(f"[{section}] {f.name}: bad value {text!r}")
    return cls(**kwargs)


def load(path: str, overrides: Dict[str, Dict[str, str]] = None) -> Config:
    cp = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
    if not cp.read(path):
        raise ConfigError(f"cannot read config file {path}")
    sections = {s: dict(cp.items(s)) for s in cp.sections()}
    for s, kv in (overrides or {}).items():
        sections.setdefault(s, {}).update(kv)
    apps = []
    for s, kv in sorted(sections.items()):   # sorted, as upstream's std::map: stat=1, temp=2
        if s.startswith("meta_server.apps."):
            kv = dict(kv)
            kv.setdefault("app_name", s[len("meta_server.apps."):])
            apps.append(_coerce(AppSpec, kv, s))
    return Config(
        server=_coerce(ServerConfig, sections.get("pegasus.server", {}), "pegasus.server"),
        network=_coerce(NetworkConfig, sections.get("network", {}), "network"),
        meta_server=_coerce(MetaServerConfig, sections.get("meta_server", {}), "meta_server"),
        replication=_coerce(ReplicationConfig, sections.get("replication", {}), "replication"),
        zookeeper=_coerce(ZookeeperConfig, sections.get("zookeeper", {}), "zookeeper"),
        apps=tuple(apps),
    ).validate()


# ini section -> Config attribute, for listing every key we read (HTTP /configs, config-dump)
ENTRY_SECTIONS = (("pegasus.server", "server"), ("network", "network"),
                  ("meta_server", "meta_server"), ("replication", "replication"),
                  ("zookeeper", "zookeeper"))


def config_entries(config: Config) -> Dict[str, dict]:
    """``{key: {"name", "section", "type", "value"}}``; a name in several sections is given as
    ``section.name``."""
    rows = []
    for section, attr in ENTRY_SECTIONS:
        for f in dataclasses.fields(getattr(config, attr)):
            v = getattr(getattr(config, attr), f.name)
            rows.append((f.name, section, type(v).__name__, v))
    counts: Dict[str, int] = {}
    for name, *_ in rows:
        counts[name] = counts.get(name, 0) + 1
    out = {}
    for name, section, typ, v in rows:
        key = name if counts[name] == 1 else f"{section}.{name}"
        out[key] = {"name": name, "section": section, "type": typ,
                    "value": v if isinstance(v, (bool, int, float)) else str(v)}
    return out
