"""Meta state storage: the ``MetaStore`` interface and ``LocalMetaStore`` (a local directory).

The meta keeps its persistent state as a tree of small nodes, like upstream's ZooKeeper layout
(meta.md §9): ``/apps/<app_id>`` holds an app_info JSON, ``/apps/<app_id>/<pidx>`` a partition
configuration JSON, ``/meta/...`` the function level and other settings. Paths are absolute,
'/'-separated. ``LocalMetaStore`` is the embedded default for a single meta: each node is a
directory with its data in a file ``_data``, written atomically (temp file, fsync, rename, fsync
of the directory), so a crash at any moment leaves either the old or the new value.
``MemoryMetaStore`` serves the simulation and unit tests; ``zk_store.ZkMetaStore`` keeps the
tree in ZooKeeper for several metas. Must not import gevent or kazoo.
"""
from __future__ import annotations

import os
import shutil
from typing import Dict, List, Optional


class MetaStore:
    """A tree of nodes holding bytes. Writing a node creates its missing ancestors."""

    def get(self, path: str) -> Optional[bytes]:
        raise NotImplementedError

    def set(self, path: str, data: bytes) -> None:
        raise NotImplementedError

    def delete(self, path: str) -> None:
        """Delete a node and everything below it; deleting a missing node is not an error."""
        raise NotImplementedError

    def children(self, path: str) -> List[str]:
        """Names of the direct children of ``path`` (sorted); [] for a missing node."""
        raise NotImplementedError

    def close(self) -> None:
        pass


def _parts(path: str) -> List[str]:
    parts = [p for p in path.split("/") if p]
    for p in parts:
        if p in (".", "..") or p.startswith("_"):
            raise ValueError(f"bad meta store path {path!r}")
    return parts


class LocalMetaStore(MetaStore):
    DATA = "_data"

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        os.makedirs(self.root, exist_ok=True)

    def _dir(self, path: str) -> str:
        return os.path.join(self.root, *_parts(path))

    def get(self, path: str) -> Optional[bytes]:
        try:
            with open(os.path.join(self._dir(path), self.DATA), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def set(self, path: str, data: bytes) -> None:
        d = self._dir(path)
        os.makedirs(d, exist_ok=True)
        tmp = os.path.join(d, self.DATA + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(d, self.DATA))
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def delete(self, path: str) -> None:
        d = self._dir(path)
        if d == self.root:
            raise ValueError("refusing to delete the meta store root")
        shutil.rmtree(d, ignore_errors=True)

    def children(self, path: str) -> List[str]:
        d = self._dir(path)
        try:
            return sorted(n for n in os.listdir(d)
                          if not n.startswith("_") and os.path.isdir(os.path.join(d, n)))
        except FileNotFoundError:
            return []


class MemoryMetaStore(MetaStore):
    """In-memory tree with the same contract as LocalMetaStore: writing a node creates its
    ancestors (they read as None until written), deleting a node keeps its ancestors."""

    def __init__(self):
        self.nodes: Dict[str, Optional[bytes]] = {}

    @staticmethod
    def _key(path: str) -> str:
        return "/" + "/".join(_parts(path))

    def get(self, path):
        return self.nodes.get(self._key(path))

    def set(self, path, data):
        parts = _parts(path)
        for i in range(1, len(parts)):
            self.nodes.setdefault("/" + "/".join(parts[:i]), None)
        self.nodes["/" + "/".join(parts)] = bytes(data)

    def delete(self, path):
        k = self._key(path)
        if k == "/":
            raise ValueError("refusing to delete the meta store root")
        for n in [n for n in self.nodes if n == k or n.startswith(k + "/")]:
            del self.nodes[n]

    def children(self, path):
        k = self._key(path).rstrip("/") + "/"
        return sorted({n[len(k):].split("/", 1)[0] for n in self.nodes if n.startswith(k)})
