#!/usr/bin/env python3
"""Cluster-side helpers of tools/bench/run_bench.sh (uses the repo's own RPC client).

  ours_table.py --meta M ensure TABLE [--like temp | --partitions N] [--replicas R] [--timeout S]
      Creates TABLE (app type pegasus, ``success_if_exist``) with R replicas per partition and
      the partition count of table ``--like`` (or N), then waits until every partition has a
      primary, its full replica count and answers a get. Prints "TABLE partitions=N replicas=R".
      Exit 1 (reason on stderr) when it cannot; an existing TABLE with other settings is an error.
      Prints "TABLE partitions=N replicas=R created=1" when it created the table (else created=0).
  ours_table.py --meta M drop TABLE
      Drops TABLE (the meta keeps a dropped table for its hold time; the name is free at once).
  ours_table.py --meta M info TABLE
      Prints "partitions=N replicas=R" of an existing table.
  ours_table.py --meta M pids
      Prints the PIDs (comma separated) of the processes listening on the meta address(es) and on
      every replica server the meta lists, i.e. the servers of THIS cluster only (a `pgrep` would
      also count other clusters on a shared machine). Empty when they cannot be found.

M is a comma-separated meta list (host:port); the first that answers is used.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from pegasus_server import errors  # noqa: E402
from pegasus_server.errors import RpcError  # noqa: E402
from pegasus_server.rpc import thrift  # noqa: E402
from pegasus_server.rpc.client import RpcClient, parse_address  # noqa: E402


class Fail(Exception):
    pass


def _metas(text):
    return [parse_address(a) for a in text.split(",") if a.strip()]


def _call_meta(client, metas, name, arg, timeout=5.0):
    last = None
    for m in metas:
        try:
            return client.call(m, name, arg, timeout=timeout)
        except RpcError as e:
            last = e
    raise Fail(f"no meta answered {name}: {last}")


def _query(client, metas, table):
    q = _call_meta(client, metas, "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX",
                   thrift.layer2.query_cfg_request(app_name=table, partition_indices=[]), timeout=3)
    return q


def info(client, metas, table):
    q = _query(client, metas, table)
    if q.err != errors.ERR_OK:
        raise Fail(f"table {table}: {q.err}")
    parts = q.partitions or []
    rc = max((pc.max_replica_count for pc in parts), default=0)
    return q.partition_count or len(parts), rc


def _pending(client, q):
    """Partitions of a query answer that do not serve yet with all their replicas."""
    pending = []
    for pc in q.partitions or []:
        if pc.primary.is_invalid:
            pending.append(f"{pc.pid}(no primary)")
            continue
        n = 1 + len(pc.secondaries or ())
        if n < pc.max_replica_count:
            pending.append(f"{pc.pid}(replicas {n}/{pc.max_replica_count})")
            continue
        try:   # a get proves the primary serves the partition
            client.call((pc.primary.host, pc.primary.port), "RPC_RRDB_RRDB_GET", b"\x00\x00",
                        timeout=3, app_id=pc.pid.app_id, partition_index=pc.pid.partition_index)
        except RpcError as e:
            pending.append(f"{pc.pid}({e.err})")
    return pending


def ensure(client, metas, table, partitions, replicas, timeout):
    """Returns True when it created the table."""
    ma = thrift.meta_admin
    try:
        existed = _query(client, metas, table).err == errors.ERR_OK
    except RpcError:
        existed = False
    req = ma.configuration_create_app_request(
        app_name=table,
        options=ma.create_app_options(partition_count=partitions, replica_count=replicas,
                                      success_if_exist=True, app_type="pegasus",
                                      is_stateful=True, envs={}))
    deadline = time.time() + timeout
    while True:
        r = _call_meta(client, metas, "RPC_CM_CREATE_APP", req, timeout=10)
        if r.err == errors.ERR_OK:
            break
        if r.err == errors.ERR_INVALID_PARAMETERS:
            try:
                have = info(client, metas, table)
            except Fail:
                have = None
            if have and have != (partitions, replicas):
                raise Fail(f"table {table} exists with partitions={have[0]} replicas={have[1]}, "
                           f"not partitions={partitions} replicas={replicas}: drop it or choose "
                           "another BENCH_TABLE1")
            raise Fail(f"create {table} (partitions={partitions}, replicas={replicas}): {r.err} "
                       "(fewer alive replica servers than replicas?)")
        if r.err not in (errors.ERR_BUSY_CREATING, errors.ERR_STATE_FREEZED) \
                or time.time() > deadline:
            raise Fail(f"create {table}: {r.err}")
        time.sleep(0.5)
    last = "no answer"
    while time.time() < deadline:
        try:
            q = _query(client, metas, table)
            if q.err == errors.ERR_OK and q.partitions:
                pending = _pending(client, q)
                if not pending:
                    return not existed
                last = f"{len(pending)} partitions not serving: {' '.join(pending[:8])}"
            else:
                last = f"query: {q.err}"
        except (Fail, RpcError) as e:
            last = str(e)
        time.sleep(0.5)
    raise Fail(f"table {table} not serving after {timeout:.0f} s: {last}")


def _listen_inodes(ports):
    """socket inode -> port for the TCP sockets listening on one of ``ports``."""
    out = {}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    port = int(parts[1].rsplit(":", 1)[1], 16)
                    if parts[3] == "0A" and port in ports:   # 0A = LISTEN
                        out[parts[9]] = port
        except OSError:
            pass
    return out


def pids(client, metas):
    ports = {p for _, p in metas}
    try:
        r = _call_meta(client, metas, "RPC_CM_LIST_NODES",
                       thrift.meta_admin.configuration_list_nodes_request(), timeout=3)
        for n in r.infos or []:
            if n.node is not None and not n.node.is_invalid:
                ports.add(n.node.port)
    except (Fail, RpcError):
        pass
    inodes = _listen_inodes(ports)
    found = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                found.add(int(pid))
                break
    return sorted(found)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--meta", required=True)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("ensure")
    e.add_argument("table")
    e.add_argument("--like", default="temp")
    e.add_argument("--partitions", type=int, default=0)
    e.add_argument("--replicas", type=int, default=1)
    e.add_argument("--timeout", type=float, default=120)
    i = sub.add_parser("info")
    i.add_argument("table")
    sub.add_parser("drop").add_argument("table")
    sub.add_parser("pids")
    args = ap.parse_args(argv)
    metas = _metas(args.meta)
    client = RpcClient()
    try:
        if args.cmd == "ensure":
            parts = args.partitions or info(client, metas, args.like)[0]
            created = ensure(client, metas, args.table, parts, args.replicas, args.timeout)
            print(f"{args.table} partitions={parts} replicas={args.replicas} created={int(created)}")
        elif args.cmd == "info":
            p, r = info(client, metas, args.table)
            print(f"partitions={p} replicas={r}")
        elif args.cmd == "drop":
            ma = thrift.meta_admin
            r = _call_meta(client, metas, "RPC_CM_DROP_APP", ma.configuration_drop_app_request(
                app_name=args.table, options=ma.drop_app_options(success_if_not_exist=True)))
            if r.err != errors.ERR_OK:
                raise Fail(f"drop {args.table}: {r.err}")
        else:
            print(",".join(str(p) for p in pids(client, metas)))
    except Fail as e:
        print(f"ours_table: {e}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
