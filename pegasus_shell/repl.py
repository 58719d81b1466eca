"""The interactive shell: a ``>>> `` prompt with GNU readline — history kept across sessions in
``~/.pegasus_shell_history`` (``PEGASUS_SHELL_HISTORY`` overrides, empty disables), Tab
completion of command names, table names, cluster names, option names and option values, all
derived from the command table.

Ctrl-C at the prompt clears the line; during a command it stops that command (a scan, a count, a
wait for a table) and the shell goes on; Ctrl-D or ``exit`` leaves.
"""
from __future__ import annotations

import os
import shlex
from typing import List, Optional

from pegasus_shell import commands
from pegasus_shell.context import ShellError

PROMPT = ">>> "
HISTORY_LENGTH = 1000


def history_path() -> Optional[str]:
    p = os.environ.get("PEGASUS_SHELL_HISTORY")
    if p is None:
        p = os.path.join(os.path.expanduser("~"), ".pegasus_shell_history")
    return p or None


def split_line(line: str) -> List[str]:
    """Shell-style words; quotes keep spaces (``set hk sk "a b"``)."""
    try:
        return shlex.split(line, posix=True)
    except ValueError as e:
        raise ShellError(f"cannot parse the line: {e}") from None


class Completer:
    def __init__(self, ctx):
        self.ctx = ctx
        self._matches: List[str] = []

    def candidates(self, line: str, text: str) -> List[str]:
        """What may complete ``text``, the word being typed at the end of ``line``."""
        head = line[:len(line) - len(text)]
        try:
            words = shlex.split(head)
        except ValueError:
            return []
        if not words:
            return [n for n in commands.names() if n.startswith(text)]
        cmd = commands.find(words[0])
        if cmd is None:
            return []
        prev = words[-1] if len(words) > 1 else None
        opt = next((o for o in cmd.opts if prev in (o.short, o.long) and not o.flag), None)
        if opt is not None:
            return self._values(opt.choices or opt.completes, text)
        if text.startswith("-"):
            return [o for o in cmd.option_strings() if o.startswith(text)]
        positional = self._positional_index(cmd, words[1:])
        if positional is not None and positional < len(cmd.args):
            return self._values(cmd.args[positional].completes, text)
        if cmd.args and cmd.args[-1].many:
            return self._values(cmd.args[-1].completes, text)
        return []

    @staticmethod
    def _positional_index(cmd, words: List[str]) -> Optional[int]:
        n, skip = 0, False
        for w in words:
            if skip:
                skip = False
                continue
            o = next((o for o in cmd.opts if w in (o.short, o.long)), None)
            if o is not None:
                skip = not o.flag
                continue
            n += 1
        return n

    def _values(self, kind, text: str) -> List[str]:
        if kind is None:
            return []
        if isinstance(kind, tuple):
            pool = list(kind)
        elif kind == "table":
            if not self.ctx.table_names:
                try:
                    self.ctx.list_apps()
                except ShellError:
                    pass
            pool = self.ctx.table_names
        elif kind == "cluster":
            pool = sorted(self.ctx.clusters)
        elif kind == "command":
            pool = commands.names()
        elif kind == "bool":
            pool = ["true", "false"]
        else:
            pool = []
        return [p for p in pool if p.startswith(text)]

    def complete(self, text: str, state: int) -> Optional[str]:
        import readline
        if state == 0:
            line = readline.get_line_buffer()[:readline.get_endidx()]
            self._matches = [m + " " for m in self.candidates(line, text)]
        return self._matches[state] if state < len(self._matches) else None


def run(ctx, banner: bool = True) -> int:
    import readline
    hist = history_path()
    if hist:
        try:
            readline.read_history_file(hist)
        except OSError:
            pass
        readline.set_history_length(HISTORY_LENGTH)
    readline.set_completer_delims(" \t\n")
    readline.set_completer(Completer(ctx).complete)
    readline.parse_and_bind("tab: complete")
    if banner:
        ctx.out.write(f"The cluster name is: {ctx.cluster_name}\n"
                      f"The cluster meta list is: {','.join(ctx.metas)}\n")
        ctx.out.write("Type 'help' for the commands, Tab to complete, Ctrl-D to leave.\n")
    try:
        while True:
            try:
                line = input(PROMPT)
            except KeyboardInterrupt:              # at the prompt: a fresh line
                ctx.out.write("\n")
                continue
            except EOFError:
                ctx.out.write("\n")
                return 0
            try:
                if hist:
                    _append_history(hist)
                commands.run(ctx, split_line(line))
            except ShellError as e:
                ctx.err.write(f"ERROR: {e}\n")
            except KeyboardInterrupt:              # outside a command's own handling
                ctx.err.write("\ninterrupted\n")
            except SystemExit:
                return 0
    finally:
        ctx.close()


def _append_history(path: str) -> None:
    import readline
    try:
        readline.append_history_file(1, path)
        readline.set_history_length(HISTORY_LENGTH)
    except FileNotFoundError:
        try:
            readline.write_history_file(path)
        except OSError:
            pass
    except OSError:
        pass
