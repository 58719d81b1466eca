"""pegasus_shell: the operator's shell, with upstream's command names, arguments and habits.

    python -m pegasus_shell [--meta HOST:PORT,...] [--table NAME] [config.ini [cluster_name]]
                            [COMMAND [ARGS...]]

The cluster is chosen upstream's way — a config file with ``[pegasus.clusters]`` (``config.ini``
in the current directory by default) and a cluster name in it (default ``mycluster``) — or by
``--meta``. With a COMMAND the shell runs it once and exits with its status (0 ok, 1 failed,
2 bad arguments): output on stdout, errors on stderr. Without one it is interactive on a
terminal; with standard input not a terminal it runs the lines it reads (``#`` starts a
comment) and exits with the worst status. ``./run.sh shell`` opens it on the onebox.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional, Tuple

from pegasus_shell import commands, ops  # noqa: F401  (ops registers the commands)
from pegasus_shell.context import ShellContext, ShellError, load_clusters
from pegasus_shell.repl import run as run_repl
from pegasus_shell.repl import split_line

DEFAULT_CONFIG = "config.ini"
DEFAULT_CLUSTER = "mycluster"


def _parse(argv: List[str]) -> Tuple[argparse.Namespace, List[str]]:
    p = argparse.ArgumentParser(prog="pegasus_shell", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--meta", help="meta servers, comma separated (instead of a config file)")
    p.add_argument("--config", help=f"config file with [pegasus.clusters] "
                                     f"(default {DEFAULT_CONFIG} when it exists)")
    p.add_argument("--cluster", help=f"cluster name in the config (default {DEFAULT_CLUSTER})")
    p.add_argument("--table", help="the table data and env commands use (as 'use TABLE')")
    p.add_argument("words", nargs=argparse.REMAINDER,
                   help="[config.ini [cluster_name]] [COMMAND [ARGS...]]")
    a = p.parse_args(argv)
    words = list(a.words)
    if words and words[0].endswith(".ini") and a.config is None:
        a.config = words.pop(0)
        if words and commands.find(words[0]) is None and a.cluster is None:
            a.cluster = words.pop(0)
    return a, words


def _context(a) -> ShellContext:
    clusters = {}
    config = a.config or (DEFAULT_CONFIG if os.path.exists(DEFAULT_CONFIG) else None)
    if config:
        clusters = load_clusters(config)
    if a.meta:
        metas = [m.strip() for m in a.meta.split(",") if m.strip()]
        return ShellContext(metas, a.cluster or "", clusters)
    name = a.cluster or DEFAULT_CLUSTER
    if name not in clusters:
        where = f"[pegasus.clusters] of {config}" if config else \
            f"a config file (none given and no {DEFAULT_CONFIG} here)"
        raise ShellError(f"cluster {name} is not in {where}; give --meta host:port,... or "
                         f"a config file and cluster name")
    return ShellContext(clusters[name], name, clusters)


def _cluster_name(ctx: ShellContext) -> None:
    """Learn the cluster's name from the meta (1 s), as upstream's shell does at start."""
    from pegasus_server.rpc import thrift
    try:
        r = ctx.meta_call("RPC_CM_CLUSTER_INFO",
                          thrift.meta_admin.configuration_cluster_info_request(), timeout=1.0)
        if r.err == "ERR_OK":
            ctx.cluster_name = dict(zip(r.keys, r.values)).get("cluster_name") or ctx.cluster_name
    except ShellError:
        pass


def _run_lines(ctx: ShellContext, stream) -> int:
    worst = 0
    for line in stream:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            rc = commands.run(ctx, split_line(line))
        except ShellError as e:
            ctx.err.write(f"ERROR: {e}\n")
            rc = 1
        except SystemExit:
            break
        worst = max(worst, rc)
    return worst


def main(argv: Optional[List[str]] = None) -> int:
    a, words = _parse(sys.argv[1:] if argv is None else argv)
    try:
        ctx = _context(a)
    except ShellError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 2
    try:
        if a.table:
            ctx.current_table = a.table
        if words:
            try:
                return commands.run(ctx, words)
            except SystemExit:
                return 0
        if not sys.stdin.isatty():
            return _run_lines(ctx, sys.stdin)
        if not ctx.cluster_name:
            _cluster_name(ctx)
        return run_repl(ctx)
    finally:
        ctx.close()


if __name__ == "__main__":
    sys.exit(main())
