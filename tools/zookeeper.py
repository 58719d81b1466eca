"""A throw-away standalone ZooKeeper for tests and ``run.sh``.

Uses Debian's ``zookeeper`` package (installed on demand with apt-get, quietly, only when the jar is
missing) and runs ``org.apache.zookeeper.server.ZooKeeperServerMain`` directly with ``java`` on
127.0.0.1:22181 (upstream onebox's port), with config, data and log under one directory of ours.
The server is a subprocess with a known PID (also written to ``<dir>/zookeeper.pid``); it is stopped
by that PID only, never by name. Readiness = the four-letter word ``ruok`` answers ``imok``.

As a library (pytest)::

    srv = ZooKeeperServer(tmp_dir)
    srv.start()            # installs the package if needed, waits for imok
                           # (tests use ZooKeeperServer(tmp_dir, pick_port()) to survive a busy 22181)
    srv.hosts              # '127.0.0.1:22181'
    srv.stop(); srv.start()   # restart on the same data dir
    srv.stop()

or ``with running(tmp_dir) as srv: ...``. From a shell::

    python tools/zookeeper.py start --dir D [--port 22181]   # returns once it answers; prints hosts
    python tools/zookeeper.py stop --dir D

Imports only the standard library (gevent's sleep is used for polling when gevent is already loaded,
so a kazoo client in the same process keeps running while we wait).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

PORT = 22181
HOST = "127.0.0.1"
ZK_JAR = "/usr/share/java/zookeeper.jar"
SLF4J_SIMPLE = "/usr/share/java/slf4j-simple.jar"  # server log to zookeeper.log, warnings only
MAIN_CLASS = "org.apache.zookeeper.server.ZooKeeperServerMain"
PID_FILE = "zookeeper.pid"


class ZooKeeperError(RuntimeError):
    pass


def _sleep(seconds: float) -> None:
    g = sys.modules.get("gevent")
    (g.sleep if g is not None else time.sleep)(seconds)


def ensure_installed(timeout: float = 600.0) -> None:
    """Install Debian's zookeeper package unless its jar is already there (idempotent, quiet)."""
    if os.path.exists(ZK_JAR):
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends",
           "-o", "DPkg::Lock::Timeout=300", "zookeeper"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:  # perhaps the package lists were never fetched: update once, retry
        subprocess.run(["apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=300"], env=env,
                       capture_output=True, text=True, timeout=timeout)
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0 or not os.path.exists(ZK_JAR):
        raise ZooKeeperError("apt-get install zookeeper failed:\n" + (r.stdout + r.stderr)[-2000:])


def ruok(host: str = HOST, port: int = PORT, timeout: float = 1.0) -> bool:
    """True if a ZooKeeper answers the four-letter word ``ruok`` with ``imok``."""
    try:
        with socket.create_connection((host, port), timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"ruok")
            return s.recv(4) == b"imok"
    except OSError:
        return False


def pick_port(preferred: int = PORT, host: str = HOST) -> int:
    """``preferred`` if nothing listens there, else a free ephemeral port (so two test runs on one
    machine do not collide; onebox/run.sh keeps the fixed port)."""
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise ZooKeeperError("no free port")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return False


def _is_our_zookeeper(pid: int, base_dir: str) -> bool:
    """Guard against PID reuse: the process must be ZooKeeperServerMain with our config."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except FileNotFoundError:
        return False
    cfg = os.path.join(base_dir, "zoo.cfg").encode()
    return MAIN_CLASS.encode() in argv and cfg in argv


class ZooKeeperServer:
    """One standalone ZooKeeper whose config, data and log live under ``base_dir``."""

    def __init__(self, base_dir: str, port: int = PORT, host: str = HOST):
        self.base_dir = os.path.abspath(base_dir)
        self.port = port
        self.host = host
        self.proc: subprocess.Popen | None = None

    @property
    def hosts(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid_file(self) -> str:
        return os.path.join(self.base_dir, PID_FILE)

    @property
    def pid(self) -> int | None:
        if self.proc is not None:
            return self.proc.pid
        try:
            with open(self.pid_file) as f:
                return int(f.read().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _write_config(self) -> str:
        data = os.path.join(self.base_dir, "data")
        os.makedirs(data, exist_ok=True)
        cfg = os.path.join(self.base_dir, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write("\n".join([
                "tickTime=500",          # session expiry is checked every tick
                f"dataDir={data}",
                f"clientPort={self.port}",
                f"clientPortAddress={self.host}",
                "admin.enableServer=false",
                "4lw.commands.whitelist=ruok,srvr,stat",
                "maxClientCnxns=0",
                "minSessionTimeout=2000",
                "maxSessionTimeout=60000",
                "",
            ]))
        return cfg

    def start(self, timeout: float = 60.0) -> "ZooKeeperServer":
        """Start (on the existing data dir if any) and wait until it answers ``imok``."""
        ensure_installed()
        if ruok(self.host, self.port):
            raise ZooKeeperError(f"something already answers on {self.hosts}; "
                                 "stop it first (python tools/zookeeper.py stop --dir D)")
        cfg = self._write_config()
        log = open(os.path.join(self.base_dir, "zookeeper.log"), "ab")
        try:
            self.proc = subprocess.Popen(
                ["java", "-Xmx256m", "-Dzookeeper.admin.enableServer=false",
                 "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                 "-cp", ":".join(j for j in (ZK_JAR, SLF4J_SIMPLE) if os.path.exists(j)),
                 MAIN_CLASS, cfg],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.base_dir, start_new_session=True)
        finally:
            log.close()
        with open(self.pid_file, "w") as f:
            f.write(str(self.proc.pid))
        deadline = time.monotonic() + timeout
        while not ruok(self.host, self.port, timeout=0.5):
            if self.proc.poll() is not None:
                raise ZooKeeperError(f"zookeeper exited with {self.proc.returncode}; "
                                     f"see {self.base_dir}/zookeeper.log")
            if time.monotonic() > deadline:
                self.stop()
                raise ZooKeeperError(f"zookeeper did not answer ruok within {timeout}s")
            _sleep(0.05)
        return self

    def stop(self, timeout: float = 20.0) -> None:
        """Stop by PID (SIGTERM, then SIGKILL after ``timeout``); a no-op if not running."""
        pid = self.pid
        if pid is None:
            return
        if self.proc is None and not _is_our_zookeeper(pid, self.base_dir):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.pid_file)
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                gone = (self.proc.poll() is not None) if self.proc is not None else not _alive(pid)
                if gone:
                    break
                _sleep(0.05)
            else:
                continue
            break
        else:
            raise ZooKeeperError(f"zookeeper pid {pid} survived SIGKILL")
        self.proc = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.pid_file)
        # the port is free once nothing answers any more
        deadline = time.monotonic() + 10.0
        while ruok(self.host, self.port, timeout=0.2) and time.monotonic() < deadline:
            _sleep(0.05)


@contextlib.contextmanager
def running(base_dir: str, port: int = PORT):
    srv = ZooKeeperServer(base_dir, port).start()
    try:
        yield srv
    finally:
        srv.stop()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("action", choices=["start", "stop", "install"])
    p.add_argument("--dir", default=None, help="config/data/log directory (required for start/stop)")
    p.add_argument("--port", type=int, default=PORT)
    a = p.parse_args(argv)
    if a.action == "install":
        ensure_installed()
        return 0
    if not a.dir:
        p.error("--dir is required")
    srv = ZooKeeperServer(a.dir, a.port)
    if a.action == "start":
        srv.start()
        print(srv.hosts)
    else:
        srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
