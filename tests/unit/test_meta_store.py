"""The one MetaStore suite (design rule 5), run over MemoryMetaStore, LocalMetaStore and ZkMetaStore.

The ZooKeeper backend talks to a real standalone ZooKeeper (tools/zookeeper.py, 127.0.0.1:22181 or a free port if that is taken)
started once for this module; each test uses its own root znode. ZooKeeper-only tests at the end:
the leader lock (meta.md §2.1) and a ZooKeeper restart. Waits poll a condition with a deadline.
"""
import os
import random
import sys
import time
import uuid

import gevent
import pytest

from pegasus_server.errors import PegasusError
from pegasus_server.meta.store import LocalMetaStore, MemoryMetaStore
from pegasus_server.meta.zk_store import (LEADER_LOCK_NODE, MetaStoreError, ZkLeaderLock,
                                          ZkMetaStore)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "tools"))
from zookeeper import ZooKeeperServer, pick_port  # noqa: E402  (tools/zookeeper.py)

ZK_TIMEOUT = 10.0


def wait_until(cond, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        gevent.sleep(0.02)


@pytest.fixture(scope="module")
def zk_server(tmp_path_factory):
    # 22181 unless another run already uses it (engineers run suites concurrently)
    srv = ZooKeeperServer(str(tmp_path_factory.mktemp("zookeeper")), pick_port())
    srv.start()
    yield srv
    srv.stop()


class Backend:
    """Opens stores over one backing (a dict, a directory, a root znode); ``open`` again = reopen."""

    def __init__(self, kind, request, tmp_path):
        self.kind = kind
        self.opened = []
        self._memory = None
        if kind == "zk":
            self.server = request.getfixturevalue("zk_server")
            self.root = f"/pegasus/t{uuid.uuid4().hex[:12]}"
        self.dir = str(tmp_path / "meta")

    @property
    def persistent(self):
        return self.kind != "memory"

    def open(self, timeout=None):
        if self.kind == "memory":
            if self._memory is None:
                self._memory = MemoryMetaStore()
            s = self._memory
        elif self.kind == "local":
            s = LocalMetaStore(self.dir)
        else:
            s = ZkMetaStore(self.server.hosts, self.root, timeout=timeout or ZK_TIMEOUT)
        self.opened.append(s)
        return s

    def close_all(self):
        for s in self.opened:
            s.close()


@pytest.fixture(params=["memory", "local", "zk"])
def backend(request, tmp_path):
    b = Backend(request.param, request, tmp_path)
    yield b
    b.close_all()


@pytest.fixture
def store(backend):
    return backend.open()


# -- the contract, every backend ---------------------------------------------------------------

def test_get_missing(store):
    assert store.get("/apps/1") is None
    assert store.get("/") is None
    assert store.children("/") == []
    assert store.children("/apps") == []


def test_set_get_overwrite(store):
    store.set("/meta/function_level", b"fl_lively")
    assert store.get("/meta/function_level") == b"fl_lively"
    store.set("/meta/function_level", b"fl_steady")
    assert store.get("/meta/function_level") == b"fl_steady"
    store.set("/meta/function_level", b"x")  # shorter than before: no trailing bytes left over
    assert store.get("/meta/function_level") == b"x"


def test_nested_paths_and_ancestors(store):
    store.set("/apps/1/0", b"partition 0")
    assert store.get("/apps/1/0") == b"partition 0"
    # ancestors exist as nodes but hold no data until written
    assert store.get("/apps/1") is None
    assert store.get("/apps") is None
    assert store.children("/") == ["apps"]
    assert store.children("/apps") == ["1"]
    assert store.children("/apps/1") == ["0"]
    assert store.children("/apps/1/0") == []
    store.set("/apps/1", b"app info")
    assert store.get("/apps/1") == b"app info"
    assert store.children("/apps/1") == ["0"]
    assert store.get("/apps/1/0") == b"partition 0"
    # leading/trailing/double slashes name the same node
    assert store.get("apps/1/") == b"app info"
    assert store.get("//apps//1") == b"app info"


def test_children_sorted(store):
    names = ["10", "9", "2", "b", "a", "dsn.meta.server.leader", "0"]
    for n in random.Random(7).sample(names, len(names)):
        store.set(f"/apps/{n}", n.encode())
    assert store.children("/apps") == sorted(names)
    assert store.children("apps/") == sorted(names)


def test_delete_recursive(store):
    for p in ("/apps/1", "/apps/1/0", "/apps/1/1", "/apps/1/duplication/7/0", "/apps/2"):
        store.set(p, p.encode())
    store.delete("/apps/1")
    for p in ("/apps/1", "/apps/1/0", "/apps/1/1", "/apps/1/duplication/7/0"):
        assert store.get(p) is None
    assert store.children("/apps/1") == []
    assert store.children("/apps") == ["2"]
    assert store.get("/apps/2") == b"/apps/2"


def test_delete_missing(store):
    store.delete("/nope")
    store.delete("/nope/deeper/still")
    store.set("/apps/1", b"a")
    store.delete("/apps/2")
    store.delete("/apps/1/0")
    assert store.get("/apps/1") == b"a"
    assert store.children("/apps") == ["1"]


def test_ancestor_survives_child_delete(backend, store):
    store.set("/apps/1/0", b"p")
    store.delete("/apps/1/0")
    assert store.children("/apps") == ["1"]
    assert store.children("/apps/1") == []
    assert store.get("/apps/1") is None


@pytest.mark.parametrize("bad", ["/a/../b", "/./x", "..", "/_data", "/apps/_x", "/apps/1/_data.tmp"])
def test_bad_paths_rejected(store, bad):
    with pytest.raises(ValueError):
        store.get(bad)
    with pytest.raises(ValueError):
        store.set(bad, b"x")
    with pytest.raises(ValueError):
        store.delete(bad)
    with pytest.raises(ValueError):
        store.children(bad)


def test_delete_root_refused(backend, store):
    store.set("/apps/1", b"a")
    with pytest.raises(ValueError):
        store.delete("/")
    assert store.get("/apps/1") == b"a"


def test_binary_data_round_trips(store):
    values = {
        "/bin/all_bytes": bytes(range(256)) * 4,
        "/bin/empty": b"",
        "/bin/nul": b"\x00" * 17,
        "/bin/not_utf8": b"\xff\xfe\x80abc\xc3",
        "/bin/big": random.Random(1).randbytes(200_000),
    }
    for p, v in values.items():
        store.set(p, v)
    for p, v in values.items():
        got = store.get(p)
        assert type(got) is bytes and got == v, p
    # an explicitly written empty value is b"", unlike a data-less ancestor (None)
    assert store.get("/bin") is None
    store.set("/bin/ba", bytearray(b"from a bytearray"))
    assert store.get("/bin/ba") == b"from a bytearray"


def test_persistence_across_reopen(backend, store):
    if not backend.persistent:
        pytest.skip("MemoryMetaStore is not persistent")
    store.set("/apps/1", b'{"app_id":1}')
    store.set("/apps/1/0", b'{"pid":"1.0"}')
    store.set("/meta/function_level", b"fl_steady")
    store.set("/bin/empty", b"")
    store.delete("/meta")
    store.close()
    again = backend.open()
    assert again.get("/apps/1") == b'{"app_id":1}'
    assert again.get("/apps/1/0") == b'{"pid":"1.0"}'
    assert again.get("/apps") is None
    assert again.get("/bin/empty") == b""
    assert again.get("/meta/function_level") is None
    assert again.children("/") == ["apps", "bin"]


# -- ZooKeeper only ------------------------------------------------------------------------------

@pytest.fixture
def zk(request, tmp_path):
    b = Backend("zk", request, tmp_path)
    yield b
    b.close_all()


LOCK = "/" + LEADER_LOCK_NODE


def test_zk_layout_under_root(zk, zk_server):
    s = zk.open()
    s.set("/apps/1/0", b"p")
    raw = zk.open()  # a store rooted at '/' sees the whole ZooKeeper tree
    raw_root = ZkMetaStore(zk_server.hosts, "/", timeout=ZK_TIMEOUT)
    zk.opened.append(raw_root)
    assert raw_root.get(zk.root + "/apps/1/0") == b"p"
    assert zk.root.rsplit("/", 1)[1] in raw_root.children("/pegasus")
    assert raw.get("/apps/1/0") == b"p"


def test_zk_unreachable_raises_meta_store_error():
    with pytest.raises(MetaStoreError) as e:
        ZkMetaStore("127.0.0.1:1", "/pegasus/x", timeout=1.0)
    assert isinstance(e.value, PegasusError)


def test_zk_leader_lock(zk):
    s1, s2, s3 = zk.open(), zk.open(), zk.open()
    lost = []
    l1 = ZkLeaderLock(s1, "127.0.0.1:34601", on_lost=lost.append)
    l2 = ZkLeaderLock(s2, "127.0.0.1:34602")
    observer = ZkLeaderLock(s3, "127.0.0.1:34603")
    assert observer.leader() is None
    assert l1.acquire(timeout=10)
    assert l1.is_held and not l2.is_held
    assert l1.path == zk.root + "/dsn.meta.server.leader"

    waiter = gevent.spawn(l2.acquire)
    wait_until(lambda: len(s3.children(LOCK)) == 2, what="second contender's node")
    gevent.sleep(0)
    assert not waiter.ready() and not l2.is_held
    # followers read the leader's identity (the lowest node's data is the holder's host:port)
    assert l2.leader() == observer.leader() == "127.0.0.1:34601"
    owner = s3.children(LOCK)
    datas = sorted(s3.get(f"{LOCK}/{c}") for c in owner)
    assert datas == [b"127.0.0.1:34601", b"127.0.0.1:34602"]
    # a third contender cannot get it within a bounded wait
    assert ZkLeaderLock(s3, "127.0.0.1:34603").acquire(timeout=0.5) is False

    s1.close()  # the holder's session ends: its ephemeral node goes, it must step down
    assert lost == ["lost"]
    assert not l1.is_held
    assert waiter.get(timeout=10) is True
    assert l2.is_held
    wait_until(lambda: observer.leader() == "127.0.0.1:34602", what="new leader visible")

    l2.release()
    assert not l2.is_held
    wait_until(lambda: observer.leader() is None, what="lock released")


def test_zk_restart(zk, zk_server):
    # the call after the restart spans the JVM's start, kazoo's backoff and a new session when
    # the old one expired: on a loaded 2-core machine that took more than ZK_TIMEOUT (CI)
    s = zk.open(timeout=60.0)
    s.set("/apps/1", b"before restart")
    lost = []
    lock = ZkLeaderLock(s, "127.0.0.1:34601", on_lost=lost.append)
    assert lock.acquire(timeout=10)
    old_pid = zk_server.pid

    zk_server.stop()
    wait_until(lambda: lost == ["suspended"], what="leader told to step down")
    assert not lock.is_held
    assert not s.connected
    zk_server.start()  # same data dir
    assert zk_server.pid != old_pid

    assert s.get("/apps/1") == b"before restart"  # retried until kazoo reconnected
    s.set("/apps/2", b"after restart")
    wait_until(lambda: s.connected, what="reconnected")
    fresh = zk.open()
    assert fresh.get("/apps/2") == b"after restart"
    assert fresh.children("/apps") == ["1", "2"]
    # the lost lock is dead; a new one can lead again once the old node is gone
    with pytest.raises(MetaStoreError):
        lock.acquire(timeout=1)
    lock.release()
    again = ZkLeaderLock(s, "127.0.0.1:34601")
    assert again.acquire(timeout=ZK_TIMEOUT + 5)
    assert ZkLeaderLock(fresh, "x").leader() == "127.0.0.1:34601"


def test_zk_calls_fail_with_meta_store_error_while_down(zk, zk_server):
    s = ZkMetaStore(zk_server.hosts, zk.root, timeout=2.0)
    zk.opened.append(s)
    s.set("/a", b"1")
    zk_server.stop()
    try:
        t0 = time.monotonic()
        with pytest.raises(MetaStoreError):
            s.get("/a")
        assert time.monotonic() - t0 < 10
    finally:
        zk_server.start()
    wait_until(lambda: s.connected, what="reconnected")
    assert s.get("/a") == b"1"
