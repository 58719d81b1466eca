"""Shell commands that act on the session itself: help, version, exit, use, cc, timeout,
escape_all."""
from __future__ import annotations

from pegasus_server import __version__
from pegasus_shell.commands import Arg, command, help_text
from pegasus_shell.context import ShellError, UsageError
from pegasus_shell.output import emit

_BOOL = {"true": True, "false": False}


@command("help", "misc", "Show the commands, or what one command does",
         args=[Arg("command", optional=True, completes="command")])
def cmd_help(ctx, a):
    emit(ctx, help_text(a.command))


@command("version", "misc", "Show the shell's version")
def cmd_version(ctx, a):
    emit(ctx, f"Pegasus Shell pegasus-py {__version__} () Release\n")


@command("exit", "misc", "Leave the shell", aliases=("quit",))
def cmd_exit(ctx, a):
    raise SystemExit(0)


@command("use", "table", "Choose the table for data and env commands (no argument: show it)",
         args=[Arg("app_name", optional=True, completes="table")])
def cmd_use(ctx, a):
    if a.app_name is None:
        if not ctx.current_table:
            raise ShellError("no table selected: use <app_name>")
        emit(ctx, f"{ctx.current_table}\n")
        return
    ctx.app_info(a.app_name)            # fails for a table that does not exist
    ctx.current_table = a.app_name
    emit(ctx, "OK\n")


@command("cc", "misc", "Switch to another cluster of [pegasus.clusters] (no argument: show it)",
         args=[Arg("cluster_name", optional=True, completes="cluster")])
def cmd_cc(ctx, a):
    if a.cluster_name is None:
        emit(ctx, f"The cluster name is: {ctx.cluster_name}\n"
                  f"The cluster meta list is: {','.join(ctx.metas)}\n")
        return
    metas = ctx.clusters.get(a.cluster_name)
    if not metas:
        raise ShellError(f"cluster {a.cluster_name} is not in [pegasus.clusters]"
                         + (f" (known: {', '.join(sorted(ctx.clusters))})" if ctx.clusters
                            else ""))
    ctx.switch(metas, a.cluster_name)
    emit(ctx, f"The cluster name is: {a.cluster_name}\n"
              f"The cluster meta list is: {','.join(metas)}\n")


@command("timeout", "misc", "Show or set the RPC timeout of commands, in milliseconds",
         args=[Arg("time_in_ms", optional=True, type=int)])
def cmd_timeout(ctx, a):
    if a.time_in_ms is not None:
        if a.time_in_ms <= 0:
            raise UsageError("time_in_ms must be positive")
        ctx.timeout_ms = a.time_in_ms
        emit(ctx, f"set timeout to {ctx.timeout_ms} ms\n")
    else:
        emit(ctx, f"current timeout is {ctx.timeout_ms} ms\n")


@command("escape_all", "misc", "Show or set whether every non-ASCII byte is shown escaped",
         args=[Arg("enable", optional=True, completes="bool")])
def cmd_escape_all(ctx, a):
    if a.enable is not None:
        if a.enable.lower() not in _BOOL:
            raise UsageError("expected true or false")
        ctx.escape_all = _BOOL[a.enable.lower()]
        emit(ctx, f"set escape_all to {str(ctx.escape_all).lower()}\n")
    else:
        emit(ctx, f"escape_all is {str(ctx.escape_all).lower()}\n")
