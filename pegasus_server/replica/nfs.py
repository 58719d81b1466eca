"""Chunked file copy between replica servers: upstream's "nfs" service, both ends.

Owns ``RPC_NFS_GET_FILE_SIZE`` and ``RPC_NFS_COPY`` (replication.md §7.5): ``NfsService`` serves
files out of the directories its ``roots`` callable names (the replica driver passes the
replicas' checkpoint directories), and ``copy_files`` pulls a set of files from a peer's
``NfsService`` into a local directory. Replica learning (LT_APP) uses it to bring a RocksDB
checkpoint from the learnee to the learner. This is a driver-level module: it may use gevent and
blocking file I/O, but must not import rocksdict or storage code, nor anything that imports them.

Upstream facts we follow (apache/incubator-pegasus ``src/nfs/nfs.thrift``,
``src/nfs/nfs_server_impl.cpp``, ``src/nfs/nfs_client_impl.cpp``):

* ``get_file_size``: an empty ``file_list`` means every regular file under ``source_dir``,
  recursively, named relative to it; otherwise each listed file is ``stat``-ed. A missing
  directory or file answers ``ERR_OBJECT_NOT_FOUND``, a failed listing or size query
  ``ERR_FILE_OPERATION_FAILED``.
* ``get_file_size_response.error`` is an **i32**: upstream assigns an ``error_code`` to it, which
  converts to its integer value, and the client turns it back with ``error_code(resp.error)``.
  We therefore send ``errors.ERROR_CODES[name]`` (0 = ERR_OK, 10 = ERR_OBJECT_NOT_FOUND, ...) and
  map it back by index; our codec packs that field as a plain int, a name there would not encode.
* ``copy``: read ``size`` bytes at ``offset`` of ``source_dir/file_name``; the response carries
  ``error`` (an ``error_code``, i.e. a name), ``file_content`` and ``offset``/``size`` echoed. A
  file that cannot be opened answers ``ERR_OBJECT_NOT_FOUND``.
* The client asks for the sizes first, then copies every file in chunks of at most
  ``nfs_copy_block_bytes`` (4 MiB); an empty file still gets one 0-byte request upstream.

Departures, and why:

* Confinement (upstream serves any path the process can read): the real path of ``source_dir``
  must lie inside the real path of one of ``roots()``, and every file name must be relative,
  free of ``..`` components, and resolve (after symlinks) inside ``source_dir``; files are
  opened ``O_NOFOLLOW`` on their resolved path. Refusals answer ``ERR_INVALID_PARAMETERS``, as do
  negative offsets/sizes and chunks over ``MAX_CHUNK`` (4 MiB, upstream's block size; upstream
  would allocate whatever was asked). Nothing a peer sends raises out of a handler.
  Consequence for the learner: the ``source_dir`` it sends must be a served root or below one
  (upstream sends the learnee's data dir with ``checkpoint.<d>/<file>`` names; our driver either
  serves the data dir as a root or sends the checkpoint dir itself as ``source_dir``).
* Reads past the end: the server answers the bytes it has, with ``size`` = what it read (upstream
  echoes the requested size); a non-empty request at or past the end answers ``ERR_HANDLE_EOF``.
  The client checks every chunk's offset and length, so a source that shrank or vanished mid-copy
  fails the copy instead of leaving a short file.
* No file-handle cache (upstream keeps open handles for a minute): we open, ``pread`` one chunk
  and close per request. One chunk is at most 4 MiB from a local disk, so the blocking read is
  short enough to do on the gevent hub.
* Client writes ``<name>.tmp``, fsyncs it (in gevent's thread pool), checks its size, renames it
  into place as soon as its last chunk is written, and fsyncs the directories at the end
  (upstream writes the final name directly). On any failure the copy
  raises ``NfsError`` and removes every ``.tmp`` and final file it created, so the destination
  never holds a partial file. No per-chunk retries (upstream retries twice): learning restarts
  the round on failure anyway. Empty files are created locally without a request.
* Concurrency: ``window`` chunk requests in flight for the whole copy (upstream: at most 2 per
  file, 50 per server) — one greenlet per slot pulling the next chunk from a shared queue.
"""
from __future__ import annotations

import errno
import os
import posixpath
import stat
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

import gevent
from gevent.event import Event
from loguru import logger

from pegasus_server import errors
from pegasus_server.base import RpcAddress
from pegasus_server.errors import PegasusError, RpcError
from pegasus_server.replica.plog import fsync_path
from pegasus_server.rpc import thrift

RPC_NFS_GET_FILE_SIZE = "RPC_NFS_GET_FILE_SIZE"
RPC_NFS_COPY = "RPC_NFS_COPY"

MAX_CHUNK = 4 * 1024 * 1024
"""Largest chunk the server reads for one request (upstream ``nfs_copy_block_bytes``)."""

TMP_SUFFIX = ".tmp"

Address = Tuple[str, int]


class NfsError(PegasusError):
    """A file copy failed; ``err`` is the upstream error name that says why."""

    def __init__(self, err: str, message: str = ""):
        super().__init__(f"{err}{': ' + message if message else ''}")
        self.err = err


def error_code_value(name: str) -> int:
    """The i32 upstream puts in ``get_file_size_response.error`` for an error name."""
    return errors.ERROR_CODES[name]


def error_code_name(value: int) -> str:
    """The error name for the i32 of ``get_file_size_response.error``."""
    if isinstance(value, int) and 0 <= value < len(errors.ERROR_NAMES):
        return errors.ERROR_NAMES[value]
    return errors.ERR_UNKNOWN


def is_safe_name(name) -> bool:
    """A relative file name that cannot leave the directory it is joined to: not empty, not
    absolute, no ``.``/``..``/empty components, no NUL."""
    if not isinstance(name, str) or not name or "\0" in name or name.startswith("/"):
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class _Refused(Exception):
    def __init__(self, err: str, why: str):
        super().__init__(why)
        self.err = err


# ============================================================================ serving side


class NfsService:
    """Serves chunks of files under ``roots()``. Register on a ``Dispatcher`` with ``register``."""

    def __init__(self, roots: Callable[[], Iterable[str]], max_chunk: int = MAX_CHUNK):
        self.roots = roots
        self.max_chunk = max_chunk

    def register(self, dispatcher) -> None:
        dispatcher.register(RPC_NFS_GET_FILE_SIZE, self.on_get_file_size)
        dispatcher.register(RPC_NFS_COPY, self.on_copy)

    # ------------------------------------------------------------------ path checks

    def _source_dir(self, source_dir) -> str:
        """The real path of ``source_dir`` if it lies inside a served root."""
        if not isinstance(source_dir, str) or not source_dir or "\0" in source_dir:
            raise _Refused(errors.ERR_INVALID_PARAMETERS, f"bad source_dir {source_dir!r}")
        real = os.path.realpath(source_dir)
        for root in self.roots() or ():
            if root and _inside(real, os.path.realpath(root)):
                return real
        raise _Refused(errors.ERR_INVALID_PARAMETERS, f"{source_dir} is not served")

    @staticmethod
    def _file_path(real_dir: str, name) -> str:
        """The resolved path of ``name`` under ``real_dir``, refusing escapes."""
        if not is_safe_name(name):
            raise _Refused(errors.ERR_INVALID_PARAMETERS, f"bad file name {name!r}")
        real = os.path.realpath(os.path.join(real_dir, name))
        if not _inside(real, real_dir) or real == real_dir:
            raise _Refused(errors.ERR_INVALID_PARAMETERS, f"{name!r} leaves {real_dir}")
        return real

    # ------------------------------------------------------------------ get_file_size

    def on_get_file_size(self, conn, req, arg):
        nfs = thrift.nfs
        try:
            if arg is None:
                raise _Refused(errors.ERR_INVALID_PARAMETERS, "no argument")
            names, sizes = self.file_sizes(arg.source_dir, arg.file_list or [])
        except _Refused as e:
            logger.warning("nfs get_file_size from {}: {} ({})", _peer(conn), e.err, e)
            return nfs.get_file_size_response(error=error_code_value(e.err), file_list=[],
                                              size_list=[])
        return nfs.get_file_size_response(error=error_code_value(errors.ERR_OK),
                                          file_list=names, size_list=sizes)

    def file_sizes(self, source_dir: str, file_list: Sequence[str]) -> Tuple[List[str], List[int]]:
        """(names, sizes) as ``get_file_size`` answers them; raises ``_Refused``."""
        real_dir = self._source_dir(source_dir)
        if not os.path.isdir(real_dir):
            raise _Refused(errors.ERR_OBJECT_NOT_FOUND, f"directory {source_dir} not found")
        names: List[str] = []
        sizes: List[int] = []
        if not file_list:
            try:
                for name in _walk_files(real_dir):
                    path = self._file_path(real_dir, name)
                    st = os.stat(path)
                    if stat.S_ISREG(st.st_mode):
                        names.append(name)
                        sizes.append(st.st_size)
            except _Refused:
                raise
            except OSError as e:
                raise _Refused(errors.ERR_FILE_OPERATION_FAILED, f"listing {source_dir}: {e}")
            return names, sizes
        for name in file_list:
            path = self._file_path(real_dir, name)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                raise _Refused(errors.ERR_OBJECT_NOT_FOUND, f"{name} not found in {source_dir}")
            except OSError as e:
                raise _Refused(errors.ERR_FILE_OPERATION_FAILED, f"stat {name}: {e}")
            if not stat.S_ISREG(st.st_mode):
                raise _Refused(errors.ERR_OBJECT_NOT_FOUND, f"{name} is not a regular file")
            names.append(name)
            sizes.append(st.st_size)
        return names, sizes

    # ------------------------------------------------------------------ copy

    def on_copy(self, conn, req, arg):
        nfs = thrift.nfs
        try:
            if arg is None:
                raise _Refused(errors.ERR_INVALID_PARAMETERS, "no argument")
            data = self.read_chunk(arg.source_dir, arg.file_name, arg.offset, arg.size)
        except _Refused as e:
            logger.warning("nfs copy from {}: {} ({})", _peer(conn), e.err, e)
            return nfs.copy_response(error=e.err, file_content=b"",
                                     offset=getattr(arg, "offset", 0) or 0, size=0)
        return nfs.copy_response(error=errors.ERR_OK, file_content=data, offset=arg.offset,
                                 size=len(data))

    def read_chunk(self, source_dir: str, file_name: str, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` of ``source_dir/file_name``; raises ``_Refused``."""
        if not isinstance(offset, int) or not isinstance(size, int) or offset < 0 or size < 0:
            raise _Refused(errors.ERR_INVALID_PARAMETERS, f"bad range {offset}+{size}")
        if size > self.max_chunk:
            raise _Refused(errors.ERR_INVALID_PARAMETERS,
                           f"chunk of {size} bytes exceeds {self.max_chunk}")
        real_dir = self._source_dir(source_dir)
        path = self._file_path(real_dir, file_name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise _Refused(errors.ERR_OBJECT_NOT_FOUND, f"{file_name} not found in {source_dir}")
        except OSError as e:
            if e.errno == errno.ELOOP:   # swapped for a symlink since we resolved it
                raise _Refused(errors.ERR_INVALID_PARAMETERS, f"{file_name} is a symlink")
            raise _Refused(errors.ERR_FILE_OPERATION_FAILED, f"open {file_name}: {e}")
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise _Refused(errors.ERR_OBJECT_NOT_FOUND, f"{file_name} is not a regular file")
            try:
                data = os.pread(fd, size, offset)
            except OSError as e:
                raise _Refused(errors.ERR_FILE_OPERATION_FAILED, f"read {file_name}: {e}")
        finally:
            os.close(fd)
        if size and not data:
            raise _Refused(errors.ERR_HANDLE_EOF, f"{file_name}: offset {offset} is past the end")
        return data


def _walk_files(top: str) -> List[str]:
    """Every non-directory entry under ``top`` (symlinks not followed into), relative, sorted."""
    out: List[str] = []

    def onerror(e):
        raise e
    for dirpath, dirnames, filenames in os.walk(top, onerror=onerror, followlinks=False):
        rel = os.path.relpath(dirpath, top)
        for f in filenames:
            out.append(f if rel == "." else posixpath.join(rel, f))
        # a symlink to a directory is listed in dirnames; it is not served
    out.sort()
    return out


def _peer(conn) -> str:
    peer = getattr(conn, "peer", None)
    return f"{peer[0]}:{peer[1]}" if peer else "?"


# ============================================================================ client side


class _File:
    __slots__ = ("name", "size", "final", "tmp", "fd", "remaining", "opened")

    def __init__(self, name: str, size: int, dest_dir: str):
        self.name = name
        self.size = size
        self.final = os.path.join(dest_dir, name)
        self.tmp = self.final + TMP_SUFFIX
        self.fd: Optional[int] = None
        self.remaining = 0
        self.opened = False

    def open(self, created: List[str]) -> None:
        """Create ``<name>.tmp`` (on its first chunk, so at most about ``window`` files are
        open at a time however many the copy holds)."""
        self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                          | getattr(os, "O_CLOEXEC", 0), 0o644)
        self.opened = True
        created.append(self.tmp)


def copy_files(client, source: Address, source_dir: str, dest_dir: str,
               files: Optional[Sequence[str]] = None, *, chunk_size: int = 1 << 20,
               window: int = 4, timeout: float = 10.0,
               progress: Optional[Callable[[int, int], None]] = None) -> Tuple[int, int]:
    """Copy ``files`` (relative names; None or empty = everything under ``source_dir``) from the
    ``NfsService`` at ``source`` into ``dest_dir``; returns ``(file_count, total_bytes)``.

    ``client`` is an ``RpcClient``; every RPC uses ``timeout`` seconds. Up to ``window`` chunk
    requests of ``chunk_size`` bytes (capped at ``MAX_CHUNK``) are in flight. ``progress(done,
    total)`` is called after each chunk is written. Raises ``NfsError`` on any failure, after
    removing every file (temporary or final) this call created.
    """
    if chunk_size <= 0 or window <= 0:
        raise ValueError("chunk_size and window must be positive")
    chunk_size = min(chunk_size, MAX_CHUNK)
    where = f"{source[0]}:{source[1]}:{source_dir}"
    nfs = thrift.nfs

    try:
        src_addr = RpcAddress.parse(f"{source[0]}:{source[1]}")
    except ValueError:
        src_addr = None
    try:
        resp = client.call(source, RPC_NFS_GET_FILE_SIZE, nfs.get_file_size_request(
            source=src_addr, dst_dir=dest_dir, file_list=list(files or []),
            source_dir=source_dir, overwrite=True), timeout=timeout)
    except RpcError as e:
        raise NfsError(e.err, f"get_file_size {where}: {e}") from e
    if resp.error != 0:
        raise NfsError(error_code_name(resp.error), f"get_file_size {where}")
    names = list(resp.file_list or [])
    sizes = list(resp.size_list or [])
    _check_listing(names, sizes, files, where)

    entries = [_File(n, s, dest_dir) for n, s in zip(names, sizes)]
    total = sum(sizes)
    done = 0
    created: List[str] = []          # paths this call created, removed again on failure
    dirs = {os.path.abspath(dest_dir)}
    ok = False
    workers: List[gevent.Greenlet] = []
    try:
        os.makedirs(dest_dir, exist_ok=True)
        chunks: List[Tuple[_File, int, int]] = []
        for f in entries:
            parent = os.path.dirname(f.final)
            os.makedirs(parent, exist_ok=True)
            dirs.add(os.path.abspath(parent))
            offset = 0
            while offset < f.size:
                n = min(chunk_size, f.size - offset)
                chunks.append((f, offset, n))
                f.remaining += 1
                offset += n
            if f.remaining == 0:         # an empty file: nothing to fetch
                f.open(created)
                _finish(f, created)

        state = {"next": 0, "error": None, "running": 0}
        finished = Event()

        def fail(exc: BaseException) -> None:
            if state["error"] is None:
                state["error"] = exc
            finished.set()

        def worker() -> None:
            nonlocal done
            try:
                while state["error"] is None and state["next"] < len(chunks):
                    f, offset, n = chunks[state["next"]]
                    state["next"] += 1
                    data = _fetch(client, source, nfs, src_addr, source_dir, dest_dir, f,
                                  offset, n, timeout, where)
                    if not f.opened:
                        f.open(created)
                    os.pwrite(f.fd, data, offset)
                    f.remaining -= 1
                    if f.remaining == 0:
                        _finish(f, created)
                    done += n
                    if progress is not None:
                        progress(done, total)
            except gevent.GreenletExit:
                raise
            except BaseException as e:   # noqa: BLE001 — handed to the caller below
                fail(e)
            finally:
                state["running"] -= 1
                if state["running"] == 0:
                    finished.set()

        if chunks:
            n_workers = min(window, len(chunks))
            state["running"] = n_workers
            workers = [gevent.spawn(worker) for _ in range(n_workers)]
            finished.wait()
            err = state["error"]
            if err is not None:
                if isinstance(err, NfsError):
                    raise err
                if isinstance(err, OSError):
                    raise NfsError(errors.ERR_FILE_OPERATION_FAILED,
                                   f"writing into {dest_dir}: {err}") from err
                raise err
        for f in entries:                # every chunk arrived; paranoia before success
            if f.remaining or not f.opened or f.fd is not None or os.path.getsize(f.final) != f.size:
                raise NfsError(errors.ERR_FILE_OPERATION_FAILED, f"{f.final} is incomplete")
        for d in sorted(dirs, key=len, reverse=True):
            fsync_path(d, directory=True)
        ok = True
        return len(entries), total
    except OSError as e:
        raise NfsError(errors.ERR_FILE_OPERATION_FAILED, f"writing into {dest_dir}: {e}") from e
    finally:
        if workers:
            gevent.killall(workers, block=True)
        for f in entries:
            if f.fd is not None:
                try:
                    os.close(f.fd)
                except OSError:
                    pass
                f.fd = None
        if not ok:
            for path in created:
                try:
                    os.unlink(path)
                except OSError:
                    pass


def _check_listing(names: List, sizes: List, asked: Optional[Sequence[str]], where: str) -> None:
    """Do not trust the peer's listing: names must stay inside dest_dir and be unique."""
    if len(names) != len(sizes):
        raise NfsError(errors.ERR_INVALID_DATA,
                       f"get_file_size {where}: {len(names)} names, {len(sizes)} sizes")
    if asked and len(names) != len(asked):
        raise NfsError(errors.ERR_INVALID_DATA,
                       f"get_file_size {where}: asked for {len(asked)} files, got {len(names)}")
    seen = set()
    for name, size in zip(names, sizes):
        if not is_safe_name(name) or name in seen:
            raise NfsError(errors.ERR_INVALID_DATA, f"get_file_size {where}: bad name {name!r}")
        if not isinstance(size, int) or size < 0:
            raise NfsError(errors.ERR_INVALID_DATA, f"get_file_size {where}: bad size of {name}")
        seen.add(name)
    for name in names:
        if name + TMP_SUFFIX in seen:
            raise NfsError(errors.ERR_INVALID_PARAMETERS,
                           f"{name} and {name}{TMP_SUFFIX} both copied: temporary name clash")


def _fetch(client, source, nfs, src_addr, source_dir, dest_dir, f: _File, offset: int, n: int,
           timeout: float, where: str) -> bytes:
    req = nfs.copy_request(source=src_addr, source_dir=source_dir, dst_dir=dest_dir,
                           file_name=f.name, offset=offset, size=n,
                           is_last=offset + n >= f.size, overwrite=True)
    try:
        resp = client.call(source, RPC_NFS_COPY, req, timeout=timeout)
    except RpcError as e:
        raise NfsError(e.err, f"copy {where}/{f.name}@{offset}: {e}") from e
    if resp.error != errors.ERR_OK:
        raise NfsError(resp.error or errors.ERR_UNKNOWN, f"copy {where}/{f.name}@{offset}")
    data = resp.file_content or b""
    if resp.offset != offset or len(data) != n:
        raise NfsError(errors.ERR_INCOMPLETE_DATA,
                       f"copy {where}/{f.name}: asked {n} bytes at {offset}, got {len(data)} at "
                       f"{resp.offset} (source changed?)")
    return data


def _finish(f: _File, created: List[str]) -> None:
    """All of ``f`` is written: fsync, check the size, rename into place."""
    fd, f.fd = f.fd, None
    try:
        _fsync_off_hub(fd)
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    if size != f.size:
        raise NfsError(errors.ERR_FILE_OPERATION_FAILED,
                       f"{f.tmp} holds {size} bytes, expected {f.size}")
    os.replace(f.tmp, f.final)
    created.remove(f.tmp)
    created.append(f.final)


def _fsync_off_hub(fd: int) -> None:
    """fsync in gevent's thread pool: syncing a checkpoint-sized file can take long enough to
    starve the hub (beacons, other replicas' traffic). The fd stays open until the thread is
    done, even if this greenlet is killed meanwhile."""
    res = gevent.get_hub().threadpool.spawn(os.fsync, fd)
    try:
        res.get()
    finally:
        if not res.ready():
            res.wait()

