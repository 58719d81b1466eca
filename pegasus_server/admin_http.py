"""The HTTP endpoints every server process answers on its RPC port (meta.md §8), registered on
an ``rpc.dispatch.Dispatcher`` by ``register(...)``:

* ``/`` — the list of paths; ``/version``; ``/recentStartTime``;
* ``/metrics`` — the process's ``metrics.MetricsRegistry`` (upstream's JSON, or Prometheus text);
* ``/configs`` — every configuration key we read with its value:
  ``{"<key>": {"name", "section", "type", "value"}}``; ``/config?name=<key>`` — one of them
  (400 when unknown; a key that exists in several sections is ``section.key``);
* ``/updateConfig?<key>=<value>`` — our configuration is read at start only: every key answers
  ``{"update_status": "ERR_NO_PERMISSION: ... is not mutable"}`` (an unknown one
  ``ERR_OBJECT_NOT_FOUND``), as upstream answers for its immutable flags.

Must not import gevent or storage code.
"""
from __future__ import annotations

import json
import time
from typing import Dict, Tuple
from urllib.parse import parse_qsl

from pegasus_server import __version__, metrics
from pegasus_server.config import Config, config_entries

JSON = "application/json"
def register(dispatcher, config: Config, start_time: float,
             registry: metrics.MetricsRegistry) -> None:
    d = dispatcher
    entries = config_entries(config)

    def query(h) -> Dict[str, str]:
        return dict(parse_qsl(h.query or "", keep_blank_values=True))

    def one_config(h) -> Tuple[int, str, str]:
        name = query(h).get("name", "")
        if name not in entries:
            return 400, JSON, json.dumps({"error_message": f"config {name!r} not found"})
        return 200, JSON, json.dumps(entries[name], indent=4)

    def update_config(h) -> Tuple[int, str, str]:
        q = query(h)
        if len(q) != 1:
            return 400, JSON, json.dumps({"update_status": "ERR_INVALID_PARAMETERS: "
                                          "one key=value per request"})
        name = next(iter(q))
        status = (f"ERR_NO_PERMISSION: {name} is not mutable" if name in entries
                  else f"ERR_OBJECT_NOT_FOUND: {name} is not a config key")
        return 200, JSON, json.dumps({"update_status": status})

    d.route("/version", lambda h: (200, JSON, json.dumps(
        {"Version": f"pegasus-py {__version__}", "GitCommit": ""})))
    d.route("/recentStartTime", lambda h: (200, JSON, json.dumps(
        {"RecentStartTime": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start_time))})))
    d.route("/metrics", metrics.http_handler(registry))
    d.route("/configs", lambda h: (200, JSON, json.dumps(entries, indent=4)))
    d.route("/config", one_config)
    d.route("/updateConfig", update_config)
    d.route("/", lambda h: (200, JSON, json.dumps(sorted(d.routes))))
