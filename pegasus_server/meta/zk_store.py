"""``ZkMetaStore``: the ``MetaStore`` tree kept in ZooKeeper, and ``ZkLeaderLock`` for the HA meta.

Owns everything that talks to ZooKeeper; the only module allowed to import kazoo (design rule 4).
Uses kazoo's gevent handler, so every call blocks only the calling greenlet.

Layout (meta.md §9): store path ``/apps/1`` is the znode ``<root>/apps/1``, ``root`` typically
``/pegasus/<cluster>``. ``set`` creates missing ancestors with *null* data, so a node that exists
only as an ancestor reads back as ``None`` — the same as ``LocalMetaStore``/``MemoryMetaStore`` —
while an explicit ``set(p, b"")`` reads back as ``b""``. ``delete`` is recursive and deleting a
missing node is not an error; ``children`` is sorted. Paths are validated by the same rule as the
other stores (``store._parts``: no '.', '..' or names starting with '_').

Errors: every kazoo failure (connection loss, session expiry, timeouts, unexpected ZooKeeper
errors) is translated here, once, into ``MetaStoreError`` (a ``PegasusError``); ``ValueError`` for a
bad path as in the other stores. A call retries through connection loss for up to ``timeout``
seconds (kazoo reconnects in the background, e.g. across a ZooKeeper restart) before raising.
As with ZooKeeper's own ConnectionLoss, a write that raised ``MetaStoreError`` has an unknown
outcome: kazoo may still send it after reconnecting. Callers treat it as fatal for the operation
(the meta steps down or re-reads the state) and never assume it was not applied.

Leader lock (meta.md §2.1): ``ZkLeaderLock`` is kazoo's Lock recipe on the znode
``<root>/dsn.meta.server.leader``; each contender creates an ephemeral sequential child whose data
is its identity (the meta's ``host:port``) and the lowest sequence number holds the lock, which is
upstream's layout in spirit (child names differ: kazoo's ``<uuid>__lock__<seq>``). The holder must
stop acting as leader as soon as ``on_lost`` fires: it fires when the connection is SUSPENDED (we
can no longer be sure our ephemeral node outlives the session timeout, after which a new leader
may act) and when the session is LOST/closed. After that the lock object is dead (``is_held`` is
False, ``acquire`` raises); a meta that wants to lead again calls ``release()`` (removes our node if
the session survived a mere disconnection) and contends with a new ``ZkLeaderLock`` (upstream
simply exits). ``leader()`` — the identity in the lowest contender node — is what followers use
to redirect clients (meta.md §2.2).

Must not import the meta cores; may import gevent and kazoo.
"""
from __future__ import annotations

from typing import Callable, List, Optional

import gevent
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (KazooException, LockTimeout, NodeExistsError, NoNodeError,
                              NotEmptyError)
from kazoo.handlers.gevent import SequentialGeventHandler
from kazoo.retry import KazooRetry, RetryFailedError

from pegasus_server.errors import PegasusError
from pegasus_server.meta.store import MetaStore, _parts

LEADER_LOCK_NODE = "dsn.meta.server.leader"


class MetaStoreError(PegasusError):
    """The meta store could not complete an operation (ZooKeeper unreachable, session lost, ...).

    Defined here rather than in ``errors.py`` because only the ZooKeeper store raises it; the local
    stores fail only with ``OSError`` (disk) or ``ValueError`` (bad path).
    """


def _join(root: str, parts: List[str]) -> str:
    """ZooKeeper path of store path ``parts`` under ``root`` ('' = the ZooKeeper root)."""
    return (root + "/" + "/".join(parts)) if parts else (root or "/")


class ZkMetaStore(MetaStore):
    """``MetaStore`` over ZooKeeper. ``hosts``: "h1:p1,h2:p2"; ``root``: the cluster's znode;
    ``timeout``: seconds, used as the session timeout, the connect timeout and the per-call retry
    deadline."""

    def __init__(self, hosts: str, root: str = "/pegasus/onebox", timeout: float = 10.0):
        self.hosts = hosts
        self.root = _join("", _parts(root)).rstrip("/")  # '' when rooted at ZooKeeper's '/'
        self.timeout = float(timeout)
        self._handler = SequentialGeventHandler()
        self.client = KazooClient(
            hosts=hosts, timeout=self.timeout, handler=self._handler,
            connection_retry=dict(max_tries=-1, delay=0.1, backoff=2, max_delay=1.0,
                                  sleep_func=self._handler.sleep_func))
        try:
            self.client.start(timeout=self.timeout)
        except (KazooException, self._handler.timeout_exception) as e:  # gevent.Timeout: BaseException
            self._shutdown()
            raise MetaStoreError(f"cannot connect to zookeeper {hosts}: {e!r}") from e
        if self.root:
            self._call(self._ensure, self.root)

    # -- plumbing --------------------------------------------------------------------------------
    def _path(self, path: str) -> str:
        return _join(self.root, _parts(path))

    def _call(self, fn, *args):
        """Run ``fn`` (which makes kazoo calls) retrying through connection loss, bounded by
        ``timeout`` overall: a request queued while kazoo reconnects waits with no limit of its
        own, so the whole call runs under one gevent timer."""
        retry = KazooRetry(max_tries=-1, delay=0.05, backoff=2, max_delay=0.5, ignore_expire=True,
                           deadline=self.timeout, sleep_func=self._handler.sleep_func)
        timer = gevent.Timeout(self.timeout)
        timer.start()
        try:
            return retry(fn, *args)
        except (NoNodeError, NodeExistsError, NotEmptyError):
            raise  # handled by the callers; anything else left is a failure of the store
        except RetryFailedError as e:
            raise MetaStoreError(f"zookeeper {self.hosts}: gave up after {self.timeout}s: {e}") from e
        except KazooException as e:
            raise MetaStoreError(f"zookeeper {self.hosts}: {type(e).__name__}: {e}") from e
        except gevent.Timeout as e:
            if e is not timer:
                raise
            raise MetaStoreError(f"zookeeper {self.hosts}: no answer within {self.timeout}s "
                                 "(a write may still be applied later)") from None
        finally:
            timer.close()

    def _ensure(self, zpath: str) -> None:
        """Create ``zpath`` and its missing ancestors, each with null data."""
        if self.client.exists(zpath) is not None:
            return
        parts = [p for p in zpath.split("/") if p]
        cur = ""
        for p in parts:
            cur += "/" + p
            try:
                self.client.create(cur, None)
            except NodeExistsError:
                pass

    def _set(self, zpath: str, data: bytes) -> None:
        try:
            self.client.set(zpath, data)
            return
        except NoNodeError:
            pass
        self._ensure(zpath.rsplit("/", 1)[0] or "/")
        try:
            self.client.create(zpath, data)
        except NodeExistsError:  # created concurrently (or by an earlier attempt of this retry)
            self.client.set(zpath, data)

    def _delete(self, zpath: str) -> None:
        try:
            self.client.delete(zpath, recursive=True)
        except NoNodeError:
            pass

    def _children(self, zpath: str) -> List[str]:
        try:
            return sorted(self.client.get_children(zpath))
        except NoNodeError:
            return []

    def _get(self, zpath: str) -> Optional[bytes]:
        try:
            return self.client.get(zpath)[0]
        except NoNodeError:
            return None

    # -- MetaStore -------------------------------------------------------------------------------
    def get(self, path: str) -> Optional[bytes]:
        return self._call(self._get, self._path(path))

    def set(self, path: str, data: bytes) -> None:
        if not _parts(path):
            raise ValueError("cannot set the meta store root")
        self._call(self._set, self._path(path), bytes(data))

    def delete(self, path: str) -> None:
        if not _parts(path):
            raise ValueError("refusing to delete the meta store root")
        self._call(self._delete, self._path(path))

    def children(self, path: str) -> List[str]:
        return self._call(self._children, self._path(path))

    @property
    def connected(self) -> bool:
        return self.client.state == KazooState.CONNECTED

    def close(self) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        try:
            self.client.stop()
            self.client.close()
        except Exception:  # closing must not fail; the session is gone either way
            pass


class ZkLeaderLock:
    """The meta leader lock ``<lock_root>/dsn.meta.server.leader`` (lock_root defaults to the store
    root). ``identity`` is this meta's ``host:port``; ``on_lost(reason)`` is called once, with
    "suspended" or "lost", from kazoo's event greenlet — it must not block or call ZooKeeper
    (spawn a greenlet for real work)."""

    def __init__(self, store: ZkMetaStore, identity: str,
                 on_lost: Optional[Callable[[str], None]] = None, lock_root: Optional[str] = None):
        self.store = store
        self.identity = identity
        self.on_lost = on_lost
        root = store.root if lock_root is None else ("/" + "/".join(_parts(lock_root)))
        self.path = (root.rstrip("/") or "") + "/" + LEADER_LOCK_NODE
        self._lock = store.client.Lock(self.path, identity)
        self._held = False
        self._lost = False
        store.client.add_listener(self._on_state)

    def _on_state(self, state) -> None:
        # Only a holder reacts: a contender still waiting is looked after by kazoo's Lock recipe,
        # which re-creates its node if the session is lost.
        if not self._held or state == KazooState.CONNECTED:
            return
        self._held = False
        self._lost = True
        if self.on_lost is not None:
            self.on_lost("suspended" if state == KazooState.SUSPENDED else "lost")

    def acquire(self, timeout: Optional[float] = None) -> bool:
        """Block (this greenlet only) until we hold the lock; False if ``timeout`` passed first."""
        if self._lost:
            raise MetaStoreError("this leader lock was lost; create a new ZkLeaderLock")
        try:
            got = self._lock.acquire(blocking=True, timeout=timeout)
        except LockTimeout:
            return False
        except KazooException as e:
            raise MetaStoreError(f"leader lock {self.path}: {type(e).__name__}: {e}") from e
        except self.store._handler.timeout_exception:
            return False
        self._held = bool(got)
        state = self.store.client.state
        if self._held and state != KazooState.CONNECTED:  # dropped while being granted the lock
            self._on_state(state)
        return self._held

    @property
    def is_held(self) -> bool:
        return self._held and not self._lost

    def leader(self) -> Optional[str]:
        """Identity of the current holder (any meta may ask), None if nobody holds the lock."""
        try:
            names = self.store._call(self._lock.contenders)
        except NoNodeError:
            return None
        return names[0] if names else None

    def release(self) -> bool:
        """Give the lock up (step down). Safe to call when not held. True once our contender
        node is gone (deleted now, or never there); False when ZooKeeper could not be reached:
        if our session outlives the outage the node is still there and would block every
        contender, so call again."""
        self._held = False
        self._release_quietly()
        return not self._lock.is_acquired

    def _release_quietly(self) -> None:
        timer = gevent.Timeout(self.store.timeout)
        timer.start()
        try:
            self._lock.release()
        except (KazooException, self.store._handler.timeout_exception):
            pass  # the ephemeral node goes away with the session anyway
        except gevent.Timeout as e:
            if e is not timer:
                raise
        finally:
            timer.close()

    def cancel(self) -> None:
        """Abort an ``acquire`` blocked in another greenlet."""
        self._lock.cancel()
