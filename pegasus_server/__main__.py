"""Process entry point: ``python -m pegasus_server meta|replica -c config.ini [--port N]``.

Starts one meta server or one replica server in this process (gevent), logs with loguru to
stderr and, with ``--log-file``, to a file, and stops cleanly on SIGTERM/SIGINT.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import gc  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
from loguru import logger  # noqa: E402

from pegasus_server import config as config_mod  # noqa: E402
from pegasus_server import logs  # noqa: E402
from pegasus_server.errors import ConfigError  # noqa: E402


def settle_gc() -> None:
    """Keep Python's cyclic garbage collector from stalling the server: everything alive once
    the server has started (modules, thrift specs, opened replicas) is moved out of the
    collector's view (``gc.freeze``), and young collections run less often. A full collection
    walks every tracked object, so on a busy replica server it paused the executor for 100 ms
    and more (the p99 of writes)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD0, 20, 20)


GC_THRESHOLD0 = 5000


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="pegasus_server",
                                description="pegasus-py meta or replica server")
    p.add_argument("role", choices=["meta", "replica"], help="which server to run")
    p.add_argument("-c", "--config", required=True, help="config.ini path")
    p.add_argument("--host", help="address to bind and advertise (overrides [pegasus.server] host)")
    p.add_argument("--port", type=int, help="RPC port (overrides [pegasus.server] port)")
    p.add_argument("--log-file", help="also log to this file")
    args = p.parse_args(argv)
    overrides = {}
    if args.host:
        overrides.setdefault("pegasus.server", {})["host"] = args.host
    if args.port:
        overrides.setdefault("pegasus.server", {})["port"] = str(args.port)
    try:
        cfg = config_mod.load(args.config, overrides)
    except ConfigError as e:
        print(f"pegasus_server: {e}", file=sys.stderr)
        return 2
    if not cfg.server.port:
        print("pegasus_server: no port: set [pegasus.server] port or --port", file=sys.stderr)
        return 2
    logs.setup(cfg.server.log_level, args.log_file)
    workdir = os.path.dirname(os.path.abspath(args.config))
    if args.role == "meta":
        from pegasus_server.meta.service import MetaService
        service = MetaService(cfg, workdir)
    else:
        from pegasus_server.replica.node import ReplicaNode
        service = ReplicaNode(cfg, workdir)
    stop = gevent.event.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(sig, stop.set)
    try:
        service.start()
    except OSError as e:
        logger.error("cannot start {} server: {}", args.role, e)
        return 1
    settle_gc()
    stop.wait()
    logger.info("stopping {} server", args.role)
    service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
