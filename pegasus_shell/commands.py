"""The shell's one command table: every command, its arguments and options, its help, its
handler. ``help``, argument parsing, usage errors and completion are all derived from it.

A command module declares its commands with ``@command(name, group, help, args=..., opts=...)``
over ``handler(ctx, a) -> Optional[int]`` (``a``: the parsed arguments, attribute names from
the long option / argument names). Errors: raise ``context.ShellError`` (printed, status 1) or
``context.UsageError`` (``USAGE: ...``, status 2). Options use upstream's spellings
(``-d|--detailed`` ...). ``Arg(..., completes="table")`` / ``Opt(..., completes=...)`` tell the
REPL what to offer on Tab: ``table`` (table names), ``cluster`` (configured clusters),
``command`` (command names), ``bool`` (true/false), or a tuple of literal choices.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from pegasus_server.errors import RpcError
from pegasus_shell.context import ShellError, UsageError

Completes = Union[None, str, Tuple[str, ...]]


@dataclass(frozen=True)
class Arg:
    name: str
    optional: bool = False
    many: bool = False              # takes the rest of the line (zero or more)
    type: Callable = str
    completes: Completes = None
    help: str = ""
    metavar: Optional[str] = None   # the name shown in usage (default: ``name``)

    @property
    def shown(self) -> str:
        return self.metavar or self.name


@dataclass(frozen=True)
class Opt:
    short: Optional[str]
    long: str
    flag: bool = False
    type: Callable = str
    default: object = None
    choices: Optional[Tuple[str, ...]] = None
    metavar: str = "str"
    completes: Completes = None
    help: str = ""
    required: bool = False
    repeat: bool = False            # may be given several times: a list of the values

    @property
    def dest(self) -> str:
        return self.long.lstrip("-").replace("-", "_")

    def usage(self) -> str:
        names = "|".join(n for n in (self.short, self.long) if n)
        if self.flag:
            return f"[{names}]"
        meta = "|".join(self.choices) if self.choices else self.metavar
        return f"<{names} {meta}>" if self.required else f"[{names} {meta}]"


JSON = Opt("-j", "--json", flag=True, help="print JSON")
OUTPUT = Opt("-o", "--output", metavar="file", help="write the output to this file")
RESOLVE = Opt("-r", "--resolve_ip", flag=True, help="show host names (addresses are shown as they are)")


@dataclass
class Command:
    name: str
    group: str
    help: str
    handler: Callable
    args: Tuple[Arg, ...] = ()
    opts: Tuple[Opt, ...] = ()
    aliases: Tuple[str, ...] = ()
    _parser: Optional[argparse.ArgumentParser] = field(default=None, repr=False)

    def usage(self) -> str:
        parts = []
        for a in self.args:
            p = f"<{a.shown}>"
            if a.many:
                p = f"[{a.shown}...]"
            elif a.optional:
                p = f"[{a.shown}]"
            parts.append(p)
        parts += [o.usage() for o in self.opts]
        return " ".join(parts)

    def parser(self) -> argparse.ArgumentParser:
        if self._parser is None:
            p = _Parser(prog=self.name, add_help=False, exit_on_error=False,
                        allow_abbrev=False)
            for a in self.args:
                if a.many:
                    p.add_argument(a.name, nargs="*", type=a.type, default=[],
                                   metavar=a.shown)
                else:
                    p.add_argument(a.name, nargs="?" if a.optional else None, type=a.type,
                                   metavar=a.shown)
            for o in self.opts:
                names = [n for n in (o.short, o.long) if n]
                if o.flag:
                    p.add_argument(*names, dest=o.dest, action="store_true")
                elif o.repeat:
                    p.add_argument(*names, dest=o.dest, type=o.type, action="append",
                                   default=None, choices=o.choices, required=o.required)
                else:
                    p.add_argument(*names, dest=o.dest, type=o.type, default=o.default,
                                   choices=o.choices, required=o.required)
            self._parser = p
        return self._parser

    def parse(self, argv: Sequence[str]) -> argparse.Namespace:
        try:
            return self.parser().parse_args(list(argv))
        except (argparse.ArgumentError, ValueError, _ParseError) as e:
            raise UsageError(f"{e}") from None

    def option_strings(self) -> List[str]:
        return [n for o in self.opts for n in (o.short, o.long) if n]


class _ParseError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):            # never exit the shell on a bad argument
        raise _ParseError(message)


# upstream pegasus_shell commands this shell does not have yet, and why (README lists them too)
_BACKUP = "cold backup and restore: the servers have no backup yet"
_DUP = "duplication: the servers have no duplication yet"
_BULK = "bulk load: the servers have no bulk load yet"
_LOCAL = "reading RocksDB files directly: this shell works over the wire only"
NOT_SUPPORTED: Dict[str, str] = {
    **{n: _BACKUP for n in ("add_backup_policy", "ls_backup_policy", "query_backup_policy",
                            "modify_backup_policy", "disable_backup_policy",
                            "enable_backup_policy", "restore_app", "query_restore_status")},
    **{n: _DUP for n in ("add_dup", "query_dup", "dups", "start_dup", "pause_dup", "remove_dup",
                         "set_dup_fail_mode")},
    **{n: _BULK for n in ("start_bulk_load", "query_bulk_load_status", "pause_bulk_load",
                          "restart_bulk_load", "cancel_bulk_load", "clear_bulk_load")},
    **{n: _LOCAL for n in ("local_get", "sst_dump", "local_partition_split")},
    "recover": "meta recovery from replica servers (RPC_CM_START_RECOVERY) is not in the "
               "servers yet",
    "detect_hotkey": "hotkey detection (RPC_DETECT_HOTKEY) is not in the servers yet",
}

REGISTRY: Dict[str, Command] = {}
ALIASES: Dict[str, str] = {}
GROUP_ORDER = ("table", "envs", "cluster", "data", "scan", "misc")
GROUP_TITLES = {"table": "Table management", "envs": "Table envs",
                "cluster": "Cluster, nodes and servers", "data": "Data operations",
                "scan": "Scans, counts and bulk data", "misc": "Shell"}


def command(name: str, group: str, help: str, args: Sequence[Arg] = (),
            opts: Sequence[Opt] = (), aliases: Sequence[str] = ()):
    def register(fn):
        if name in REGISTRY or name in ALIASES:
            raise ValueError(f"command {name} registered twice")
        REGISTRY[name] = Command(name, group, help, fn, tuple(args), tuple(opts), tuple(aliases))
        for al in aliases:
            ALIASES[al] = name
        return fn
    return register


def find(name: str) -> Optional[Command]:
    return REGISTRY.get(ALIASES.get(name, name))


def names() -> List[str]:
    return sorted(list(REGISTRY) + list(ALIASES))


def help_text(name: Optional[str] = None) -> str:
    if name:
        c = find(name)
        if c is None and name in NOT_SUPPORTED:
            return f"{name}: not supported yet ({NOT_SUPPORTED[name]})\n"
        if c is None:
            raise ShellError(f"invalid subcommand '{name}'")
        lines = [f"{c.name} {c.usage()}".rstrip(), f"    {c.help}"]
        for a in c.args:
            if a.help:
                lines.append(f"    {a.shown}: {a.help}")
        for o in c.opts:
            if o.help:
                lines.append(f"    {'|'.join(n for n in (o.short, o.long) if n)}: {o.help}")
        if c.aliases:
            lines.append(f"    aliases: {', '.join(c.aliases)}")
        return "\n".join(lines) + "\n"
    out = ["Usage:"]
    for g in GROUP_ORDER:
        cmds = sorted((c for c in REGISTRY.values() if c.group == g), key=lambda c: c.name)
        if not cmds:
            continue
        out.append(f"  [{GROUP_TITLES[g]}]")
        for c in cmds:
            out.append(f"    {c.name:<26}{c.usage()}".rstrip())
    out.append("  [Not supported yet]")
    for reason in sorted(set(NOT_SUPPORTED.values())):
        cmds = sorted(n for n, r in NOT_SUPPORTED.items() if r == reason)
        out.append(f"    {', '.join(cmds)}")
        out.append(f"        ({reason})")
    out.append("Type 'help <command>' for what a command does.")
    return "\n".join(out) + "\n"


def run(ctx, argv: Sequence[str]) -> int:
    """Run one command line (already split); returns its exit status."""
    if not argv:
        return 0
    c = find(argv[0])
    if c is None and argv[0] in NOT_SUPPORTED:
        ctx.err.write(f"ERROR: {argv[0]} is not supported yet ({NOT_SUPPORTED[argv[0]]})\n")
        return 2
    if c is None:
        ctx.err.write(f"ERROR: invalid subcommand '{argv[0]}'\n")
        ctx.err.write(help_text())
        return 2
    try:
        a = c.parse(argv[1:])
        rc = c.handler(ctx, a)
        return int(rc or 0)
    except UsageError as e:
        ctx.err.write(f"USAGE: {c.name} {c.usage()}\n       ({e})\n")
        return 2
    except ShellError as e:
        ctx.err.write(f"ERROR: {e}\n")
        return 1
    except RpcError as e:
        ctx.err.write(f"ERROR: {c.name} failed, error = {e.err}\n")
        return 1
    except KeyboardInterrupt:
        ctx.err.write(f"\n{c.name}: interrupted\n")
        return 130
    finally:
        ctx.out.flush()
