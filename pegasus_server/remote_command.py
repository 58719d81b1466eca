"""Remote commands (``RPC_CLI_CLI_CALL``, meta.md §7): one table per process.

Every process serves ``help``, ``server-info``, ``flush-log`` and ``repeat``; a role adds its own
commands with ``register``. Unknown commands answer ``unknown command '<cmd>'`` (header ERR_OK).
Boolean setters follow upstream's convention: no argument reports, one argument sets, the reply is
pretty JSON with ``"error": "ok"``. ``register_server_commands`` adds what every server process
answers beyond those: ``config-dump``, ``reset-log-start-level``, ``server-stat`` and the legacy
``perf-counters`` family (upstream's JSON, filled from the process's metrics). Must not import
gevent or storage code.
"""
from __future__ import annotations

import json
import re
import time
from typing import Callable, Dict, List, Tuple

from pegasus_server import __version__, logs
from pegasus_server.config import Config, config_entries
from pegasus_server.metrics import MetricsRegistry

Handler = Callable[[List[str]], str]


class CommandTable:
    def __init__(self, start_time: float):
        self.start_time = start_time
        self._cmds: Dict[str, Tuple[Tuple[str, ...], str, str, Handler]] = {}
        self._alias: Dict[str, str] = {}
        self.register(("help", "h", "H", "Help"), "help [command]", "Display help information",
                      self._help)
        self.register(("server-info",), "server-info", "Query server information",
                      self._server_info)
        self.register(("flush-log",), "flush-log", "Flush the log to disk",
                      lambda args: "Flush done.")
        self.register(("repeat", "r", "R", "Repeat"), "repeat interval_seconds max_count command",
                      "Execute a command periodically", self._repeat)

    def register(self, names, usage: str, description: str, fn: Handler) -> None:
        names = tuple(names)
        self._cmds[names[0]] = (names, usage, description, fn)
        for n in names:
            self._alias[n] = names[0]

    def call(self, cmd: str, args: List[str]) -> str:
        key = self._alias.get(cmd or "")
        if key is None:
            return f"unknown command '{cmd}'"
        try:
            return self._cmds[key][3](list(args or []))
        except Exception as e:  # a bad argument must not fail the RPC
            return f"ERR: {e}"

    def _help(self, args: List[str]) -> str:
        if args:
            key = self._alias.get(args[0])
            if key is None:
                return f"unknown command '{args[0]}'"
            names, usage, desc, _ = self._cmds[key]
            return f"{'|'.join(names)}: {desc}\n  usage: {usage}\n"
        return "".join(f"{'|'.join(n)} - {d}\n" for n, _, d, _ in
                       sorted(self._cmds.values(), key=lambda e: e[0][0]))

    def _server_info(self, args: List[str]) -> str:
        return json.dumps({
            "version": f"pegasus-py {__version__}", "build_type": "Release", "git_SHA": "",
            "start_time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.start_time)),
        })

    def _repeat(self, args: List[str]) -> str:
        if len(args) < 3:
            return "invalid arguments: repeat interval_seconds max_count command [args]"
        count = max(1, min(int(args[1]), 100))
        return "\n".join(self.call(args[2], args[3:]) for _ in range(count))


def bool_setter(name: str, getter: Callable[[], bool], setter: Callable[[bool], None]) -> Handler:
    def fn(args: List[str]) -> str:
        if args:
            v = args[0].lower()
            if v not in ("true", "false"):
                return json.dumps({"error": "ERR: invalid arguments, expected true or false"},
                                  indent=4)
            setter(v == "true")
        return json.dumps({"error": "ok", name: "true" if getter() else "false"}, indent=4)
    return fn


def register_server_commands(table: CommandTable, config: Config,
                             registry: MetricsRegistry) -> None:
    def config_dump(args: List[str]) -> str:
        text = json.dumps(config_entries(config), indent=4)
        if args:
            with open(args[0], "w") as f:
                f.write(text)
            return f"config dumped to {args[0]}"
        return text

    def reset_log_level(args: List[str]) -> str:
        if len(args) != 1:
            return "invalid arguments: reset-log-start-level <level>"
        return f"OK: log level is {logs.set_level(args[0])}"

    def counters(match: Callable[[str, List[str]], bool]) -> Handler:
        def fn(args: List[str]) -> str:
            out = []
            for e in registry.entities():
                for m in e.metrics.values():
                    name = f"{e.type}*{m.name}@{e.id}"
                    if match(name, args):
                        out.append({"name": name, "type": "NUMBER", "value": m.read()})
            now = time.time()
            return json.dumps({"result": "ok", "timestamp": int(now),
                               "timestamp_str": time.strftime("%Y-%m-%d %H:%M:%S",
                                                              time.localtime(now)),
                               "counters": out})
        return fn

    def server_stat(args: List[str]) -> str:
        server = [e for e in registry.entities() if e.type == "server"]
        return ", ".join(f"{m.name}={m.read()}" for e in server for m in e.metrics.values())

    table.register(("config-dump",), "config-dump [file]", "Dump the configuration in use",
                   config_dump)
    table.register(("reset-log-start-level",), "reset-log-start-level <level>",
                   "Change the log level (DEBUG, INFO, WARNING, ERROR or LOG_LEVEL_*)",
                   reset_log_level)
    table.register(("server-stat",), "server-stat", "Brief statistics of this server",
                   server_stat)
    table.register(("perf-counters",), "perf-counters [regex...]",
                   "Metrics as legacy perf counters (names matching any regex; all without)",
                   counters(lambda n, a: not a or any(re.search(p, n) for p in a)))
    table.register(("perf-counters-by-substr",), "perf-counters-by-substr [substr...]",
                   "Metrics as legacy perf counters, names containing a substring",
                   counters(lambda n, a: not a or any(p in n for p in a)))
    table.register(("perf-counters-by-prefix",), "perf-counters-by-prefix [prefix...]",
                   "Metrics as legacy perf counters, names with a prefix",
                   counters(lambda n, a: not a or any(n.startswith(p) for p in a)))
    table.register(("perf-counters-by-postfix",), "perf-counters-by-postfix [postfix...]",
                   "Metrics as legacy perf counters, names with a postfix",
                   counters(lambda n, a: not a or any(n.endswith(p) for p in a)))
