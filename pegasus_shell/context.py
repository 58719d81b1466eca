"""The shell's session: which cluster, its meta servers, the current table, display options, and
every call to a server.

The shell talks to servers only over the wire (Thrift over THFT to metas and replica servers,
HTTP GET to their ``/metrics``), so it works against any Pegasus cluster that speaks THFT.
Meta calls go to the meta that answered last; a meta that does not lead answers
``ERR_FORWARD_TO_OTHERS`` and the next one is tried (meta.md §2.2). Clusters come from
``[pegasus.clusters]`` of a config file, upstream's way (``<name> = host:port,host:port``), or
from ``--meta``.

Uses only ``pegasus_server.{base, errors, rpc}`` (and the table client built on them).
"""
from __future__ import annotations

import configparser
import json
import sys
import urllib.error
import urllib.request
from typing import Dict, List, Optional, TextIO, Tuple

from pegasus_server import errors
from pegasus_server.base import RpcAddress
from pegasus_server.errors import RpcError
from pegasus_server.rpc import thrift
from pegasus_server.rpc.client import RpcClient, parse_address
from pegasus_server.rpc.table import TableClient

AS_AVAILABLE, AS_ALL = 1, 0
NS_ALIVE, NS_UNALIVE = 1, 2
DEFAULT_TIMEOUT_MS = 5000


class ShellError(Exception):
    """A command failed: the message is printed, the one-shot exit status is 1."""


class UsageError(ShellError):
    """Bad arguments: ``USAGE: ...`` is printed, the one-shot exit status is 2."""


def load_clusters(path: str) -> Dict[str, List[str]]:
    """``[pegasus.clusters]`` of an upstream-style config file: name -> meta list."""
    cp = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
    if not cp.read(path):
        raise ShellError(f"cannot read config file {path}")
    if not cp.has_section("pegasus.clusters"):
        return {}
    return {k: [m.strip() for m in v.split(",") if m.strip()]
            for k, v in cp.items("pegasus.clusters")}


class ShellContext:
    def __init__(self, metas: List[str], cluster_name: str = "",
                 clusters: Optional[Dict[str, List[str]]] = None,
                 out: TextIO = None, err: TextIO = None):
        self.metas = list(metas)
        self.cluster_name = cluster_name
        self.clusters = dict(clusters or {})
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.client = RpcClient()
        self.current_table: Optional[str] = None
        self.timeout_ms = DEFAULT_TIMEOUT_MS
        self.escape_all = False
        self._leader = 0
        self._tables: Dict[Tuple[str, ...], TableClient] = {}
        self.table_names: List[str] = []        # for completion; refreshed by list_apps

    # ------------------------------------------------------------------ cluster switch
    def switch(self, metas: List[str], cluster_name: str) -> None:
        self.close()
        self.client = RpcClient()
        self.metas = list(metas)
        self.cluster_name = cluster_name
        self.current_table = None
        self._leader = 0
        self.table_names = []

    # ------------------------------------------------------------------ meta
    def meta_call(self, name: str, arg, timeout: Optional[float] = None):
        """Call the leader meta; a follower's ERR_FORWARD_TO_OTHERS moves on to the next."""
        if not self.metas:
            raise ShellError("no meta server configured")
        last: Optional[str] = None
        n = len(self.metas)
        for i in range(n):
            idx = (self._leader + i) % n
            addr = self.metas[idx]
            try:
                resp = self.client.call(parse_address(addr), name, arg,
                                        timeout=timeout or self.timeout_ms / 1000)
            except RpcError as e:
                last = f"{addr}: {e.err}"
                continue
            except (OSError, ValueError) as e:
                last = f"{addr}: {e}"
                continue
            if getattr(resp, "err", None) == errors.ERR_FORWARD_TO_OTHERS:
                last = f"{addr}: {errors.ERR_FORWARD_TO_OTHERS}"
                continue
            self._leader = idx
            return resp
        raise ShellError(f"{name} failed: no meta server answered ({last})")

    def list_apps(self, status: int = AS_AVAILABLE, pattern: Optional[str] = None,
                  match_type: Optional[int] = None) -> list:
        ma = thrift.meta_admin
        resp = self.meta_call("RPC_CM_LIST_APPS", ma.configuration_list_apps_request(
            status=status, app_name_pattern=pattern, match_type=match_type))
        check(resp.err, "list apps", getattr(resp, "hint_message", None))
        if status in (AS_AVAILABLE, AS_ALL) and pattern is None:
            self.table_names = sorted(a.app_name for a in resp.infos if a.status == AS_AVAILABLE)
        return list(resp.infos)

    def app_info(self, app_name: str):
        for a in self.list_apps(AS_AVAILABLE, app_name, 2):
            if a.app_name == app_name:
                return a
        raise ShellError(f"app {app_name} does not exist (ERR_APP_NOT_EXIST)")

    def query_config(self, app_name: str):
        resp = self.meta_call("RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX",
                              thrift.layer2.query_cfg_request(app_name=app_name,
                                                              partition_indices=[]))
        check(resp.err, f"query app {app_name}")
        resp.partitions = sorted(resp.partitions or [], key=lambda p: p.pid.partition_index)
        return resp

    def nodes(self, status: int = 0) -> list:
        resp = self.meta_call("RPC_CM_LIST_NODES",
                              thrift.meta_admin.configuration_list_nodes_request(status=status))
        check(resp.err, "list nodes")
        return list(resp.infos)

    def alive_nodes(self) -> List[RpcAddress]:
        return [n.node for n in self.nodes(NS_ALIVE)]

    # ------------------------------------------------------------------ nodes
    def node_call(self, addr, name: str, arg, timeout: Optional[float] = None):
        a = (addr.host, addr.port) if isinstance(addr, RpcAddress) else parse_address(addr)
        return self.client.call(a, name, arg, timeout=timeout or self.timeout_ms / 1000)

    def remote_command(self, addr, cmd: str, args: List[str], timeout: float = 5.0) -> str:
        return self.node_call(addr, "RPC_CLI_CLI_CALL",
                              thrift.command.command(cmd=cmd, arguments=list(args)),
                              timeout=timeout)

    def http_json(self, addr, path: str, timeout: float = 5.0):
        host, port = (addr.host, addr.port) if isinstance(addr, RpcAddress) else \
            parse_address(addr)
        try:
            with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=timeout) as r:
                return json.loads(r.read().decode())
        except urllib.error.HTTPError as e:
            raise ShellError(f"GET {path} from {host}:{port}: HTTP {e.code} "
                             f"{e.read().decode(errors='replace')[:200]}") from None
        except (OSError, ValueError) as e:
            raise ShellError(f"GET {path} from {host}:{port}: {e}") from None

    # ------------------------------------------------------------------ data
    def table(self, name: Optional[str] = None, metas: Optional[List[str]] = None) -> TableClient:
        """The table client of ``name`` (default: the table chosen with ``use``)."""
        name = name or self.current_table
        if not name:
            raise ShellError("no table selected: use <app_name> first")
        metas = metas or self.metas
        key = (name, *metas)
        t = self._tables.get(key)
        if t is None:
            t = self._tables[key] = TableClient(metas, name, timeout=self.timeout_ms / 1000,
                                                client=self.client)
        t.timeout = self.timeout_ms / 1000
        return t

    def close(self) -> None:
        self._tables.clear()
        self.client.close()


def check(err: str, what: str, hint: Optional[str] = None) -> None:
    if err != errors.ERR_OK:
        raise ShellError(f"{what} failed, error = {err}" + (f" ({hint})" if hint else ""))
