"""pegasus_shell, first cut: one-shot commands with upstream's names.

    python -m pegasus_shell [--meta host:port,...] COMMAND [ARGS]

Commands: cluster_info, nodes, ls, get <table> <hash_key> <sort_key>,
set <table> <hash_key> <sort_key> <value> [ttl_seconds], del <table> <hash_key> <sort_key>.
The interactive shell with upstream's full command table is a later milestone (issue 6).
Exit status: 0 on success, 1 on a failed operation, 2 on bad arguments.
"""
from __future__ import annotations

import argparse
import sys

from pegasus_server.errors import RpcError
from pegasus_server.rpc import thrift
from pegasus_server.rpc.client import RpcClient, parse_address
from pegasus_server.rpc.table import TableClient



def _meta_call(metas, name, arg):
    client = RpcClient()
    try:
        last = None
        for m in metas:
            try:
                return client.call(parse_address(m), name, arg, timeout=5)
            except RpcError as e:
                last = e
        raise last
    finally:
        client.close()


def cmd_cluster_info(a):
    r = _meta_call(a.metas, "RPC_CM_CLUSTER_INFO",
                   thrift.meta_admin.configuration_cluster_info_request())
    width = max(len(k) for k in r.keys)
    for k, v in zip(r.keys, r.values):
        print(f"{k:<{width}} : {v}")
    return 0


def cmd_nodes(a):
    r = _meta_call(a.metas, "RPC_CM_LIST_NODES",
                   thrift.meta_admin.configuration_list_nodes_request(status=0))
    print(f"{'address':<24}{'status'}")
    for n in r.infos:
        print(f"{str(n.node):<24}{'ALIVE' if n.status == 1 else 'UNALIVE'}")
    return 0


def cmd_ls(a):
    r = _meta_call(a.metas, "RPC_CM_LIST_APPS",
                   thrift.meta_admin.configuration_list_apps_request(status=0 if a.all else 1))
    names = thrift.layer2.app_status._VALUES_TO_NAMES
    print(f"{'app_id':<8}{'status':<14}{'app_name':<20}{'partition_count':<17}{'replica_count'}")
    for i in r.infos:
        print(f"{i.app_id:<8}{names.get(i.status, i.status):<14}{i.app_name:<20}{i.partition_count:<17}"
              f"{i.max_replica_count}")
    return 0


def _table(a):
    return TableClient(a.metas, a.table)


def cmd_get(a):
    t = _table(a)
    status, value = t.get(a.hash_key.encode(), a.sort_key.encode())
    t.close()
    if status == 1:
        print("Not found")
        return 1
    print(f'"{value.decode("utf-8", "backslashreplace")}"')
    return 0


def cmd_set(a):
    t = _table(a)
    resp = t.set(a.hash_key.encode(), a.sort_key.encode(), a.value.encode(), a.ttl)
    t.close()
    print("OK" if resp.error == 0 else f"ERROR: status {resp.error}")
    return 0 if resp.error == 0 else 1


def cmd_del(a):
    t = _table(a)
    resp = t.remove(a.hash_key.encode(), a.sort_key.encode())
    t.close()
    print("OK" if resp.error == 0 else f"ERROR: status {resp.error}")
    return 0 if resp.error == 0 else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="pegasus_shell", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--meta", default="127.0.0.1:34601",
                   help="meta servers, comma-separated (default 127.0.0.1:34601)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("cluster_info", help="cluster information").set_defaults(fn=cmd_cluster_info)
    sub.add_parser("nodes", help="replica servers and their status").set_defaults(fn=cmd_nodes)
    ls = sub.add_parser("ls", help="list tables")
    ls.add_argument("-a", "--all", action="store_true", help="include dropped tables")
    ls.set_defaults(fn=cmd_ls)
    for name, fn, extra in (("get", cmd_get, ()), ("set", cmd_set, ("value",)),
                            ("del", cmd_del, ())):
        sp = sub.add_parser(name, help=f"{name} one record")
        sp.add_argument("table")
        sp.add_argument("hash_key")
        sp.add_argument("sort_key")
        for e in extra:
            sp.add_argument(e)
        if name == "set":
            sp.add_argument("ttl", nargs="?", type=int, default=0, help="TTL in seconds")
        sp.set_defaults(fn=fn)
    a = p.parse_args(argv)
    a.metas = [m for m in a.meta.split(",") if m]
    try:
        return a.fn(a)
    except RpcError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
