"""One test suite for every ``Engine`` implementation (MemoryEngine, RocksEngine)."""
import os

import pytest

from pegasus_server.storage.engine import CF_DATA, CF_META, MemoryEngine, WriteBatch
from pegasus_server.storage.keys import encode_key
from pegasus_server.storage.rocks import RocksEngine


def _open(kind, path, **kw):
    if kind == "memory":
        return MemoryEngine(path)
    if kind == "rocksdb":
        return RocksEngine(path, **kw)
    if kind == "rocksdb-nowal":
        return RocksEngine(path, disable_wal=True)
    raise AssertionError(kind)


@pytest.fixture(params=["memory", "rocksdb", "rocksdb-nowal"])
def kind(request):
    return request.param


@pytest.fixture
def eng(kind, tmp_path):
    e = _open(kind, str(tmp_path / "db"))
    yield e
    e.close()


def test_get_put_delete(eng):
    assert eng.get(b"k") is None
    eng.put(b"k", b"v")
    assert eng.get(b"k") == b"v"
    eng.put(b"k", b"")
    assert eng.get(b"k") == b""  # empty values are values, not absence
    eng.delete(b"k")
    assert eng.get(b"k") is None
    eng.delete(b"never-there")  # deleting a missing key is fine


def test_empty_key_is_a_key(eng):
    eng.put(b"", b"empty-record")
    eng.put(b"\x00\x00", b"x")
    assert eng.get(b"") == b"empty-record"
    assert [k for k, _ in eng.scan()] == [b"", b"\x00\x00"]
    assert [k for k, _ in eng.scan(b"\x00\x00", b"\xff\xff")] == [b"\x00\x00"]


def test_column_families_are_separate(eng):
    eng.write(WriteBatch().put(b"k", b"data").put(b"k", b"meta", CF_META))
    assert eng.get(b"k") == b"data"
    assert eng.get(b"k", CF_META) == b"meta"
    eng.delete(b"k")
    assert eng.get(b"k") is None
    assert eng.get(b"k", CF_META) == b"meta"
    assert [k for k, _ in eng.scan(cf=CF_META)] == [b"k"]
    assert list(eng.scan(cf=CF_DATA)) == []


def test_bytewise_order_with_length_prefix(eng):
    # hash keys order by length first (b < aa < ab), then bytes; sort keys bytewise, prefix first
    keys = [
        encode_key(b"aa", b""),
        encode_key(b"b", b"\xff"),
        encode_key(b"ab", b"x"),
        encode_key(b"b", b""),
        encode_key(b"b", b"a"),
        encode_key(b"b", b"a\x00"),
        encode_key(b"", b"z"),
        encode_key(b"b", b"\x80"),
    ]
    for k in keys:
        eng.put(k, b"v")
    got = [k for k, _ in eng.scan()]
    assert got == sorted(keys)
    assert got == [
        b"\x00\x00z",
        b"\x00\x01b",
        b"\x00\x01ba",
        b"\x00\x01ba\x00",
        b"\x00\x01b\x80",
        b"\x00\x01b\xff",
        b"\x00\x02aa",
        b"\x00\x02abx",
    ]
    assert [k for k, _ in eng.scan(reverse=True)] == list(reversed(got))


def test_batch_last_op_wins_and_mixed(eng):
    eng.put(b"a", b"old")
    b = WriteBatch().put(b"a", b"1").delete(b"a").put(b"b", b"2").put(b"b", b"3")
    b.put(b"decree", b"7", CF_META)
    eng.write(b)
    assert eng.get(b"a") is None
    assert eng.get(b"b") == b"3"
    assert eng.get(b"decree", CF_META) == b"7"


def test_batch_atomicity_invalid_cf(eng):
    eng.put(b"a", b"old")
    b = WriteBatch().put(b"a", b"new")
    b.ops.append(("no-such-cf", b"x", b"y"))  # smuggle an invalid op past the builder
    with pytest.raises(Exception):
        eng.write(b)
    assert eng.get(b"a") == b"old"  # nothing of the failed batch was applied


def test_write_batch_rejects_unknown_cf():
    with pytest.raises(ValueError):
        WriteBatch().put(b"k", b"v", "nope")


def _fill(eng, n=10):
    for i in range(n):
        eng.put(bytes([i]), bytes([i]) * 2)


def test_bounded_forward_and_reverse(eng):
    _fill(eng)
    assert [k[0] for k, _ in eng.scan(b"\x03", b"\x07")] == [3, 4, 5, 6]
    assert [k[0] for k, _ in eng.scan(b"\x03", b"\x07", reverse=True)] == [6, 5, 4, 3]
    # bounds between keys
    assert [k[0] for k, _ in eng.scan(b"\x03\x00", b"\x06\x00", reverse=True)] == [6, 5, 4]
    assert [k[0] for k, _ in eng.scan(None, b"\x02")] == [0, 1]
    assert [k[0] for k, _ in eng.scan(b"\x08", None, reverse=True)] == [9, 8]
    assert list(eng.scan(b"\x05", b"\x05")) == []
    assert list(eng.scan(b"\x20", b"\x30", reverse=True)) == []
    assert [v for _, v in eng.scan(b"\x01", b"\x02")] == [b"\x01\x01"]


def test_cursor_seek_and_bounds(eng):
    _fill(eng)
    cur = eng.cursor(b"\x02", b"\x08")
    cur.seek(b"\x00")  # before lower: clamps to lower
    assert cur.valid and cur.key() == b"\x02"
    cur.seek(b"\x04\x00")
    assert cur.key() == b"\x05"
    cur.prev()
    assert cur.key() == b"\x04"
    cur.seek_for_prev(b"\x06\x00")
    assert cur.key() == b"\x06"
    cur.seek_for_prev(b"\xff")  # at/after upper: last key below upper
    assert cur.key() == b"\x07"
    cur.next()
    assert not cur.valid  # \x08 is outside [lower, upper)
    cur.seek_for_prev(b"\x01")
    assert not cur.valid
    cur.seek(b"\x08")
    assert not cur.valid
    cur.seek_to_last()
    assert cur.key() == b"\x07"
    cur.seek_to_first()
    assert cur.key() == b"\x02"
    cur.prev()
    assert not cur.valid
    cur.close()


def test_cursor_unbounded_ends(eng):
    _fill(eng, 3)
    cur = eng.cursor()
    cur.seek_to_last()
    assert cur.key() == b"\x02"
    cur.next()
    assert not cur.valid
    cur.seek(b"\x05")
    assert not cur.valid
    cur.close()


def test_approximate_size_grows(eng):
    before = eng.approximate_size()
    for i in range(200):
        eng.put(b"key%05d" % i, os.urandom(100))  # incompressible
    eng.flush()
    assert eng.approximate_size() > before
    assert eng.approximate_size() >= 200 * 100 // 2


def test_checkpoint_has_same_data(kind, eng, tmp_path):
    eng.put(b"a", b"1")
    eng.put(b"b", b"2")
    eng.put(b"decree", b"5", CF_META)
    eng.delete(b"b")
    ck = str(tmp_path / "checkpoint.5")
    eng.checkpoint(ck)
    eng.put(b"c", b"after-checkpoint")
    with pytest.raises(Exception):
        eng.checkpoint(ck)  # target must not exist
    other = _open(kind, ck)
    try:
        assert list(other.scan()) == [(b"a", b"1")]
        assert other.get(b"decree", CF_META) == b"5"
    finally:
        other.close()


def test_closed_engine_raises(eng):
    eng.close()
    eng.close()  # idempotent
    with pytest.raises(Exception):
        eng.get(b"a")


@pytest.mark.parametrize("kind2", ["rocksdb", "rocksdb-nowal", "memory"])
def test_reopen_after_flush(kind2, tmp_path):
    path = str(tmp_path / "db")
    e = _open(kind2, path)
    e.put(b"k", b"v")
    e.put(b"m", b"1", CF_META)
    e.flush()
    e.close()
    e = _open(kind2, path)
    try:
        assert e.get(b"k") == b"v"
        assert e.get(b"m", CF_META) == b"1"
    finally:
        e.close()


def test_rocks_reopen_without_flush_keeps_wal_writes(tmp_path):
    path = str(tmp_path / "db")
    e = RocksEngine(path)
    e.write(WriteBatch().put(b"k", b"v").put(b"d", b"3", CF_META))
    e.close()
    e = RocksEngine(path)
    try:
        assert e.get(b"k") == b"v"
        assert e.get(b"d", CF_META) == b"3"
        assert os.path.isdir(path)
    finally:
        e.close()


def test_rocks_sync_requires_wal(tmp_path):
    with pytest.raises(ValueError):
        RocksEngine(str(tmp_path / "x"), disable_wal=True, sync=True)


_FLUSH_CHILD = r'''
import os, signal, sys, threading
sys.path.insert(0, sys.argv[2])
from pegasus_server.storage.engine import CF_META, WriteBatch
from pegasus_server.storage.rocks import RocksEngine
e = RocksEngine(sys.argv[1], disable_wal=True)
value = os.urandom(512)
state = {}

def flush():
    state["from"] = state["written"]      # everything up to here must survive
    e.flush()
    state["done"] = True

i = 0
while True:
    i += 1
    e.write(WriteBatch().put(b"k%07d" % i, value).put(b"decree", b"%d" % i, CF_META))
    state["written"] = i
    if i == 3000:
        threading.Thread(target=flush).start()
    if state.get("done"):
        print(state["from"], flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
'''


@pytest.mark.parametrize("trial", range(3))
def test_rocks_flush_without_wal_persists_both_families_at_one_point(tmp_path, trial):
    """Without a WAL, what survives a SIGKILL is the last flush: the meta family's decree must
    describe exactly the data family (an incr replayed twice, or a write skipped, would follow
    otherwise), and everything written before ``flush`` was called is there, although writes
    went on in another thread while it ran."""
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = str(tmp_path / "db")
    out = subprocess.run([sys.executable, "-c", _FLUSH_CHILD, path, root], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == -9, out.stderr
    flushed_from = int(out.stdout)
    e = RocksEngine(path, disable_wal=True)
    try:
        decree = int(e.get(b"decree", CF_META))
        keys = sum(1 for _ in e.scan())
        assert decree == keys
        assert decree >= flushed_from >= 3000
        assert not os.path.exists(path + ".flush.tmp")
    finally:
        e.close()
