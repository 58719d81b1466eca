"""Integration fixtures: a real onebox (separate OS processes on loopback) in a temporary dir."""
import os
import subprocess
import sys
import time

import gevent

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import onebox as onebox_mod  # noqa: E402


class Cluster:
    def __init__(self, base):
        self.base = base
        self.box = onebox_mod.Onebox(base)

    def run(self, *args, check=True):
        return subprocess.run([onebox_mod.python_exe(), os.path.join(ROOT, "tools", "onebox.py"),
                               "--dir", self.base, *args], check=check, capture_output=True,
                              text=True, timeout=300)

    def pids(self):
        return {f"{r}{i}": self.box.pid_of(r, i) for r, i in self.box.instances()}

    def kill_all(self):
        """SIGKILL every server process, by PID."""
        for role, idx in self.box.instances():
            self.box.stop_instance(role, idx, kill=True)


def running_cluster(base, metas, *settings):
    """A started onebox of ``metas`` metas and three replica servers in ``base`` (config
    ``settings``: "section.key=value"), stopped when the generator closes (the body of the
    module fixtures)."""
    c = Cluster(base)
    extra = [a for s in settings for a in ("--set", s)]
    out = c.run("start", "-m", str(metas), "-r", "3", "--wait", "120", *extra, check=False)
    if out.returncode != 0:
        c.run("stop", check=False)
        pytest.fail(f"onebox did not start:\n{out.stdout}\n{out.stderr}")
    yield c
    c.run("stop", check=False)


def wait_for(fn, seconds, what, interval=0.05):
    """Poll ``fn`` until it returns something true, and return that; fail after ``seconds``.
    Sleeps with gevent, so the test's own greenlets (writers, clients) go on meanwhile."""
    deadline = time.monotonic() + seconds
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        gevent.sleep(interval)


def assert_all_readable(table_client, acked):
    """Every acknowledged write ``{hash_key: value}`` (empty sort key) reads back."""
    missing = [(k, v) for k, v in acked.items() if table_client.get(k, b"") != (0, v)]
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:3]}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from running_cluster(str(tmp_path_factory.mktemp("onebox")), 1)
