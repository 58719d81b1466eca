"""replica/nfs.py: the file-copy service and client against a real RpcServer on loopback."""
import os
import socket

import pytest

from pegasus_server import errors
from pegasus_server.replica import nfs
from pegasus_server.replica.nfs import NfsError, NfsService, copy_files
from pegasus_server.rpc import thrift
from pegasus_server.rpc.client import RpcClient
from pegasus_server.rpc.dispatch import Dispatcher
from pegasus_server.rpc.server import RpcServer
from pegasus_server.storage import keys
from pegasus_server.storage.app import StorageApp

RESERVED = set(range(34601, 34604)) | set(range(34801, 34804))
CHUNK = 64 * 1024


def free_port():
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in RESERVED:
            return port


class Served:
    """An RpcServer with an NfsService whose roots are ``self.roots`` (mutable)."""

    def __init__(self, roots, dispatcher=None):
        self.roots = list(roots)
        self.dispatcher = dispatcher or Dispatcher()
        if dispatcher is None:
            NfsService(lambda: self.roots).register(self.dispatcher)
        self.server = RpcServer("127.0.0.1", free_port(), self.dispatcher)
        self.server.start()
        self.addr = ("127.0.0.1", self.server.port)

    def stop(self):
        self.server.stop()


@pytest.fixture
def root(tmp_path):
    d = tmp_path / "served"
    d.mkdir()
    return d


@pytest.fixture
def served(root):
    s = Served([str(root)])
    yield s
    s.stop()


@pytest.fixture
def client():
    c = RpcClient()
    yield c
    c.close()


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def tree(top):
    """{relative name: bytes} of every file under ``top``."""
    out = {}
    for dirpath, _, files in os.walk(top):
        for f in files:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, top)] = fh.read()
    return out


def get_sizes(client, addr, source_dir, file_list=()):
    return client.call(addr, "RPC_NFS_GET_FILE_SIZE", thrift.nfs.get_file_size_request(
        source_dir=source_dir, file_list=list(file_list), dst_dir="x"))


def copy_chunk(client, addr, source_dir, name, offset=0, size=16):
    return client.call(addr, "RPC_NFS_COPY", thrift.nfs.copy_request(
        source_dir=source_dir, file_name=name, offset=offset, size=size, dst_dir="x"))


def code(name):
    return errors.ERROR_CODES[name]


# ==================================================================== successful copies


def test_copy_tree_byte_identical(served, client, root, tmp_path):
    src = root / "ckpt"
    big = os.urandom(5 * CHUNK + 123)
    write(str(src / "a.txt"), b"hello")
    write(str(src / "empty"), b"")
    write(str(src / "sub" / "deeper" / "big.bin"), big)
    write(str(src / "sub" / "exact"), os.urandom(2 * CHUNK))
    want = tree(str(src))
    total = sum(len(v) for v in want.values())
    seen = []
    dest = tmp_path / "dest"
    n, size = copy_files(client, served.addr, str(src), str(dest), chunk_size=CHUNK, window=3,
                         progress=lambda done, tot: seen.append((done, tot)))
    assert (n, size) == (4, total)
    assert tree(str(dest)) == want
    assert seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert len(seen) == 1 + 6 + 2       # a.txt, big.bin in 6 chunks, exact in 2; empty: none


def test_get_file_size_lists_recursively_with_relative_names(served, client, root):
    write(str(root / "d" / "x"), b"12345")
    write(str(root / "d" / "s" / "y"), b"")
    r = get_sizes(client, served.addr, str(root / "d"))
    assert r.error == 0
    assert sorted(zip(r.file_list, r.size_list)) == [("s/y", 0), ("x", 5)]
    r = get_sizes(client, served.addr, str(root / "d"), ["s/y"])
    assert (r.error, r.file_list, r.size_list) == (0, ["s/y"], [0])


def test_copy_named_subset(served, client, root, tmp_path):
    src = root / "c"
    write(str(src / "keep"), b"k" * 10)
    write(str(src / "skip"), b"s" * 10)
    dest = tmp_path / "dest"
    assert copy_files(client, served.addr, str(src), str(dest), ["keep"]) == (1, 10)
    assert tree(str(dest)) == {"keep": b"k" * 10}


def test_window_bounds_requests_in_flight(served, client, root, tmp_path):
    src = root / "w"
    data = os.urandom(20 * 4096)
    write(str(src / "f"), data)

    class Counting:
        def __init__(self):
            self.now = self.max = 0

        def call(self, *a, **kw):
            self.now += 1
            self.max = max(self.max, self.now)
            try:
                return client.call(*a, **kw)
            finally:
                self.now -= 1

    c = Counting()
    copy_files(c, served.addr, str(src), str(tmp_path / "dest"), chunk_size=4096, window=4)
    assert c.max == 4
    assert tree(str(tmp_path / "dest")) == {"f": data}


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_temporary_files_are_opened_lazily(served, client, root, tmp_path):
    src = root / "many"
    want = {}
    for i in range(30):
        want["f%02d" % i] = os.urandom(2 * 4096)
        write(str(src / ("f%02d" % i)), want["f%02d" % i])
    dest = tmp_path / "dest"
    open_tmp = []

    def progress(done, total):
        n = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink("/proc/self/fd/" + fd)
            except OSError:
                continue
            n += target.startswith(str(dest)) and target.endswith(nfs.TMP_SUFFIX)
        open_tmp.append(n)

    copy_files(client, served.addr, str(src), str(dest), chunk_size=4096, window=2,
               progress=progress)
    assert tree(str(dest)) == want
    assert 1 <= max(open_tmp) <= 2


def test_rocksdb_checkpoint_copies_and_opens(served, client, root, tmp_path):
    rrdb = thrift.rrdb
    app = StorageApp.open(str(root / "replica"), (1, 0), engine="rocksdb")
    try:
        records = {(b"h%d" % i, b"s%d" % i): os.urandom(3000) for i in range(200)}
        for decree, ((hk, sk), v) in enumerate(records.items(), 1):
            app.write(decree, 1, "RPC_RRDB_RRDB_PUT",
                      rrdb.update_request(key=keys.encode_key(hk, sk), value=v))
        decree, ckpt = app.checkpoint()
    finally:
        app.close()
    assert decree == len(records)
    learned = tmp_path / "learn"
    n, total = copy_files(client, served.addr, ckpt, str(learned), chunk_size=CHUNK, window=4)
    assert n == len(tree(ckpt)) and total > 0
    assert tree(str(learned)) == tree(ckpt)
    learner_dir = str(tmp_path / "learner")
    StorageApp.install_checkpoint(learner_dir, str(learned))
    other = StorageApp.open(learner_dir, (1, 0), engine="rocksdb")
    try:
        assert other.last_committed_decree == decree
        for (hk, sk), v in records.items():
            r = other.read("RPC_RRDB_RRDB_GET", keys.encode_key(hk, sk))
            assert (r.error, r.value) == (0, v)
    finally:
        other.close()


# ==================================================================== refusals


def test_refused_requests_answer_error_codes_and_server_keeps_serving(served, client, root,
                                                                      tmp_path):
    outside = tmp_path / "outside"
    write(str(outside / "secret"), b"top secret")
    write(str(root / "ok" / "f"), b"0123456789")
    os.symlink(str(outside / "secret"), str(root / "ok" / "link"))
    ok = str(root / "ok")
    bad = code(errors.ERR_INVALID_PARAMETERS)

    # source_dir outside the roots, also through a '..' or a symlinked directory
    assert get_sizes(client, served.addr, str(outside)).error == bad
    assert get_sizes(client, served.addr, str(root / ".." / "outside")).error == bad
    os.symlink(str(outside), str(root / "dirlink"))
    assert get_sizes(client, served.addr, str(root / "dirlink")).error == bad
    r = copy_chunk(client, served.addr, str(outside), "secret")
    assert (r.error, r.file_content) == (errors.ERR_INVALID_PARAMETERS, b"")
    assert get_sizes(client, served.addr, "").error == bad

    # names leaving source_dir
    for name in ("../../outside/secret", "a/../f", "/etc/passwd", str(outside / "secret"),
                 "link", "", "."):
        r = copy_chunk(client, served.addr, ok, name)
        assert (r.error, r.file_content) == (errors.ERR_INVALID_PARAMETERS, b""), name
    assert get_sizes(client, served.addr, ok, ["../outside/secret"]).error == bad
    assert get_sizes(client, served.addr, ok, ["link"]).error == bad
    assert get_sizes(client, served.addr, ok).error == bad     # listing meets the symlink

    # missing file / directory
    r = copy_chunk(client, served.addr, ok, "nope")
    assert r.error == errors.ERR_OBJECT_NOT_FOUND
    assert get_sizes(client, served.addr, ok, ["f", "nope"]).error == code(
        errors.ERR_OBJECT_NOT_FOUND)
    assert get_sizes(client, served.addr, str(root / "gone")).error == code(
        errors.ERR_OBJECT_NOT_FOUND)

    # bad ranges
    assert copy_chunk(client, served.addr, ok, "f", offset=-1).error == (
        errors.ERR_INVALID_PARAMETERS)
    assert copy_chunk(client, served.addr, ok, "f", size=-5).error == errors.ERR_INVALID_PARAMETERS
    assert copy_chunk(client, served.addr, ok, "f", size=nfs.MAX_CHUNK + 1).error == (
        errors.ERR_INVALID_PARAMETERS)
    assert copy_chunk(client, served.addr, ok, "f", offset=10).error == errors.ERR_HANDLE_EOF

    # still serving, on the same connection: a short read answers what exists
    r = copy_chunk(client, served.addr, ok, "f", offset=4, size=100)
    assert (r.error, r.file_content, r.offset, r.size) == (errors.ERR_OK, b"456789", 4, 6)
    os.unlink(str(root / "ok" / "link"))
    dest = tmp_path / "dest"
    assert copy_files(client, served.addr, ok, str(dest)) == (1, 10)
    assert tree(str(dest)) == {"f": b"0123456789"}


def test_copy_files_raises_on_refusal_and_writes_nothing(served, client, root, tmp_path):
    outside = tmp_path / "outside"
    write(str(outside / "secret"), b"top secret")
    dest = tmp_path / "dest"
    with pytest.raises(NfsError) as ei:
        copy_files(client, served.addr, str(outside), str(dest))
    assert ei.value.err == errors.ERR_INVALID_PARAMETERS
    with pytest.raises(NfsError) as ei:
        copy_files(client, served.addr, str(root), str(dest), ["missing"])
    assert ei.value.err == errors.ERR_OBJECT_NOT_FOUND
    assert not dest.exists() or tree(str(dest)) == {}


def test_source_file_disappearing_mid_copy_leaves_nothing(served, client, root, tmp_path):
    src = root / "c"
    write(str(src / "a_small"), b"first")
    write(str(src / "b_big"), os.urandom(4 * CHUNK))
    dest = tmp_path / "dest"
    deleted = []

    def progress(done, total):
        if done > len(b"first") and not deleted:     # first chunk of b_big is written
            os.unlink(str(src / "b_big"))
            deleted.append(done)

    with pytest.raises(NfsError) as ei:
        copy_files(client, served.addr, str(src), str(dest), chunk_size=CHUNK, window=1,
                   progress=progress)
    assert deleted == [len(b"first") + CHUNK]
    assert ei.value.err == errors.ERR_OBJECT_NOT_FOUND
    assert tree(str(dest)) == {}           # neither b_big, nor its .tmp, nor a_small


def test_source_file_shrinking_mid_copy_is_detected(served, client, root, tmp_path):
    src = root / "c"
    write(str(src / "f"), os.urandom(3 * CHUNK))
    dest = tmp_path / "dest"

    def progress(done, total):
        if done == CHUNK:
            os.truncate(str(src / "f"), CHUNK + 10)

    with pytest.raises(NfsError) as ei:
        copy_files(client, served.addr, str(src), str(dest), chunk_size=CHUNK, window=1,
                   progress=progress)
    assert ei.value.err == errors.ERR_INCOMPLETE_DATA
    assert tree(str(dest)) == {}


def test_client_rejects_names_that_leave_dest_dir(client, tmp_path):
    d = Dispatcher()
    d.register("RPC_NFS_GET_FILE_SIZE", lambda c, r, a: thrift.nfs.get_file_size_response(
        error=0, file_list=["../evil"], size_list=[3]))
    d.register("RPC_NFS_COPY", lambda c, r, a: thrift.nfs.copy_response(
        error=errors.ERR_OK, file_content=b"bad", offset=0, size=3))
    s = Served([], dispatcher=d)
    try:
        dest = tmp_path / "dest"
        with pytest.raises(NfsError) as ei:
            copy_files(client, s.addr, "/whatever", str(dest))
        assert ei.value.err == errors.ERR_INVALID_DATA
        assert not (tmp_path / "evil").exists()
    finally:
        s.stop()


def test_unreachable_source_raises_nfs_error(client, tmp_path):
    with pytest.raises(NfsError) as ei:
        copy_files(client, ("127.0.0.1", free_port()), "/x", str(tmp_path / "dest"))
    assert ei.value.err == errors.ERR_NETWORK_FAILURE


def test_error_code_mapping_of_the_i32_field():
    assert nfs.error_code_value(errors.ERR_OK) == 0
    assert nfs.error_code_value(errors.ERR_OBJECT_NOT_FOUND) == 10
    assert nfs.error_code_value(errors.ERR_FILE_OPERATION_FAILED) == 20
    for name in (errors.ERR_OK, errors.ERR_INVALID_PARAMETERS, errors.ERR_HANDLE_EOF):
        assert nfs.error_code_name(nfs.error_code_value(name)) == name
    assert nfs.error_code_name(-1) == errors.ERR_UNKNOWN
    assert nfs.error_code_name(10_000) == errors.ERR_UNKNOWN
