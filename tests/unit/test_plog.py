"""Private mutation log (replication.md §4.3, §4.4; replica/plog.py): block and file-header
bytes, group-commit appends, replay, torn/corrupt tails (every cut offset, every bit flip),
rolling, GC, reopen-append, write failures, a SIGKILL crash loop, and tools/plog_dump.py."""
import errno
import os
import random
import select
import shutil
import signal
import struct
import subprocess
import sys
import time

import pytest
from loguru import logger

from pegasus_server.base import Gpid
from pegasus_server.replica import mutation as M
from pegasus_server.replica import plog
from pegasus_server.replica.mutation import Mutation, Update
from pegasus_server.rpc import thrift
from pegasus_server.storage import keys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
G = Gpid(1, 4)
PUT = "RPC_RRDB_RRDB_PUT"
TORN = {"torn-header", "torn-body"}
rrdb = thrift.rrdb


def mk(decree, size=40, ballot=1):
    data = ((b"%08d" % decree) * (size // 8 + 1))[:size]
    return Mutation(G, ballot, decree, decree - 1, 1_000_000 + decree, (Update(PUT, 1, data),))


def open_log(d, **kw):
    return plog.PrivateLog.open(str(d), G, **kw)


def append(log, batch):
    r = log.append(batch)
    return [m.with_log_offset(o) for m, o in zip(batch, r.offsets)]


def blocks(data):
    """Independent block walk: [(position, body length)]."""
    out, pos = [], 0
    while pos + 16 <= len(data):
        magic, length, _crc, local = struct.unpack_from("<IiII", data, pos)
        assert magic == 0xDEADBEEF and local == pos
        out.append((pos, length))
        pos += 16 + length
    assert pos == len(data)
    return out


@pytest.fixture
def warnings():
    msgs = []
    hid = logger.add(lambda m: msgs.append(str(m)), level="WARNING", format="{message}")
    yield msgs
    logger.remove(hid)


def write_three_batches(d):
    """Three batches (2, 1 and 3 mutations) in log.1.0; returns per-batch expected lists."""
    log = open_log(d)
    exp = [append(log, [mk(1), mk(2)]), append(log, [mk(3, 100)]),
           append(log, [mk(4, 10), mk(5, 20), mk(6, 5)])]
    log.close()
    return exp


# -------------------------------------------------------------------------------------------
# pure layer: checksums, names, bytes

def test_crc32c_vectors():
    assert plog.crc32c(b"") == 0
    assert plog.crc32c(b"123456789") == 0xE3069283          # the CRC-32C check value
    assert plog.crc32c(b"6789", plog.crc32c(b"12345")) == 0xE3069283


def test_file_names():
    assert plog.file_name(3, 4096) == "log.3.4096"
    assert plog.parse_file_name("log.3.4096") == (3, 4096)
    for bad in ("log.3.4096.removed", "log.3", "log..5", "xlog.1.0", "log.1.0x"):
        assert plog.parse_file_name(bad) is None


def test_upstream_header_block_bytes():
    # §4.3 block header {magic, length, body crc, local offset} + the file header body
    # {magic, version 1, start offset 0, count 1, gpid 1.4, max decree 0, valid start 0};
    # CRC-32C of that body is 0x548f2abc (the value upstream wrote in a real log.1.0 for 1.4)
    expect = bytes.fromhex(
        "efbeadde" "2c000000" "bc2a8f54" "00000000"
        "efbeadde" "01000000" "0000000000000000" "01000000"
        "0100000004000000" "0000000000000000" "0000000000000000")
    data, crc = plog.build_header_block(0, G, 0, 0, checksum="crc32c")
    assert data == expect and crc == 0x548F2ABC


def test_our_header_block_bytes():
    data, crc = plog.build_header_block(4096, Gpid(2, 1), 77, 5)
    body = struct.pack("<IiqiQqq", 0xDEADBEEF, 0x50590001, 4096, 1, (1 << 32) | 2, 77, 5)
    import zlib
    assert crc == zlib.crc32(body)
    assert data == struct.pack("<IiII", 0xDEADBEEF, len(body), crc, 0) + body


def test_mutation_block_bytes_chain_the_checksum():
    hdr, crc0 = plog.build_header_block(0, G, 0, checksum="crc32c")
    ms = [mk(1), mk(2, 7)]
    built = plog.build_blocks(ms, global_offset=60, file_start_offset=0, crc=crc0,
                              checksum="crc32c")
    body = ms[0].encode(76) + ms[1].encode(76 + len(ms[0].encode()))
    crc = plog.crc32c(body, crc0)                # chained from the header block's value
    assert built.data == struct.pack("<IiII", 0xDEADBEEF, len(body), crc, 60) + body
    assert built.offsets == [76, 76 + len(ms[0].encode())]
    assert built.crc == crc


def test_large_batch_splits_into_1mib_blocks():
    ms = [mk(i, 600_000) for i in (1, 2, 3)]
    built = plog.build_blocks(ms, global_offset=60, file_start_offset=0, crc=0)
    pos, lens = 0, []
    while pos < len(built.data):
        magic, length, _c, local = struct.unpack_from("<IiII", built.data, pos)
        assert magic == 0xDEADBEEF and local == 60 + pos
        lens.append(length)
        pos += 16 + length
    m1 = len(ms[0].encode())
    assert lens == [2 * m1, m1]   # a block takes mutations while it is <= 1 MiB, then splits


# -------------------------------------------------------------------------------------------
# append and replay

def test_empty_directory_and_lazy_file_creation(tmp_path):
    ms, res = plog.read_all(str(tmp_path / "none"))
    assert ms == [] and res.problem is None and res.end_offset == 0 and res.next_index == 1
    log = open_log(tmp_path / "p")
    assert os.listdir(tmp_path / "p") == []
    assert log.append([]).offsets == []
    r = log.append([mk(1)])
    assert os.listdir(tmp_path / "p") == ["log.1.0"]
    assert r.offsets == [76] and r.start_offset == 0 and r.end_offset == os.path.getsize(r.path)


def test_many_mutations_per_block_one_write(tmp_path, monkeypatch):
    calls = []
    real = os.pwrite

    def counting(fd, data, off):
        calls.append(len(data))
        return real(fd, data, off)

    monkeypatch.setattr(os, "pwrite", counting)
    log = open_log(tmp_path)
    batch = [mk(i, size=i % 97) for i in range(1, 201)]
    exp = append(log, batch)
    log.close()
    assert len(calls) == 1                        # header block + batch in one write
    data = (tmp_path / "log.1.0").read_bytes()
    assert len(blocks(data)) == 2                 # file header block + one block of 200
    ms, res = plog.read_all(str(tmp_path))
    assert ms == exp and res.problem is None and res.count == 200


def test_round_trip_many_batches(tmp_path):
    log = open_log(tmp_path)
    rng = random.Random(1)
    exp, d = [], 0
    for _ in range(50):
        batch = []
        for _ in range(rng.randint(1, 20)):
            d += 1
            batch.append(mk(d, rng.randint(0, 3000)))
        exp += append(log, batch)
    log.close()
    ms, res = plog.read_all(str(tmp_path))
    assert ms == exp and res.problem is None
    assert res.max_decree == d and res.max_committed_decree == d - 1


def test_gpid_and_option_checks(tmp_path):
    log = open_log(tmp_path)
    with pytest.raises(ValueError):
        log.append([Mutation(Gpid(9, 9), 1, 1, 0, 0, (Update(PUT, 1, b""),))])
    with pytest.raises(ValueError):
        open_log(tmp_path / "x", sync="always")
    with pytest.raises(ValueError):
        open_log(tmp_path / "y", checksum="md5")
    assert plog.sync_policy(True) == "batch" and plog.sync_policy(False) == "none"


@pytest.mark.parametrize("policy,expect_syncs", [("none", 0), ("batch", 5)])
def test_sync_policy(tmp_path, monkeypatch, policy, expect_syncs):
    n = []
    monkeypatch.setattr(plog, "_fdatasync", lambda fd: n.append(fd))
    log = open_log(tmp_path, sync=policy)
    for i in range(5):
        assert log.append([mk(i + 1)]).synced == (policy == "batch")
    assert len(n) == expect_syncs


# -------------------------------------------------------------------------------------------
# torn and corrupt tails

def test_torn_tail_at_every_offset_of_last_block(tmp_path, warnings):
    exp = write_three_batches(tmp_path / "src")
    full = (tmp_path / "src" / "log.1.0").read_bytes()
    last_start = blocks(full)[-1][0]
    good = exp[0] + exp[1]
    for cut in range(last_start, len(full)):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / "log.1.0").write_bytes(full[:cut])
        warnings.clear()
        ms, res = plog.read_all(str(d))
        assert ms == good
        assert os.path.getsize(d / "log.1.0") == last_start
        if cut == last_start:
            assert res.problem is None and not warnings
        else:
            p = res.problem
            assert p.kind in TORN and p.local_offset == last_start and p.repaired
            assert p.dropped_bytes == cut - last_start and p.removed_files == ()
            assert len(warnings) == 1 and p.kind in warnings[0]
        # a reopened log appends right after the cut, and everything replays
        log = plog.PrivateLog.open(str(d), G, res)
        again = append(log, [mk(4, 33)])
        log.close()
        assert again[0].log_offset == last_start + 16
        ms2, res2 = plog.read_all(str(d))
        assert ms2 == good + again and res2.problem is None
        shutil.rmtree(d)


def test_cut_anywhere_replays_exactly_the_complete_blocks(tmp_path):
    exp = write_three_batches(tmp_path / "src")
    full = (tmp_path / "src" / "log.1.0").read_bytes()
    bl = blocks(full)
    per_block = [[]] + exp                        # the header block holds no mutation
    for cut in range(len(full) + 1):
        d = tmp_path / "c"
        d.mkdir()
        (d / "log.1.0").write_bytes(full[:cut])
        ms, res = plog.read_all(str(d))
        complete = [i for i, (pos, ln) in enumerate(bl) if pos + 16 + ln <= cut]
        assert ms == [m for i in complete for m in per_block[i]]
        if cut < bl[0][1] + 16:                   # no valid file header: file set aside
            assert res.problem is not None and res.files == []
            assert os.listdir(d) == (["log.1.0.removed"] if cut else [])   # empty: deleted
            assert res.end_offset == 0 and res.next_index == 2
        shutil.rmtree(d)


def test_every_bit_flip_in_last_block_is_detected(tmp_path):
    exp = write_three_batches(tmp_path / "src")
    full = (tmp_path / "src" / "log.1.0").read_bytes()
    last_start = blocks(full)[-1][0]
    d = tmp_path / "f"
    kinds = set()
    for i in range(last_start, len(full)):
        for bit in range(8):
            data = bytearray(full)
            data[i] ^= 1 << bit
            d.mkdir()
            (d / "log.1.0").write_bytes(data)
            ms, res = plog.read_all(str(d))
            assert ms == exp[0] + exp[1], (i, bit)
            assert res.problem is not None and res.problem.local_offset == last_start
            assert os.path.getsize(d / "log.1.0") == last_start
            kinds.add(res.problem.kind)
            shutil.rmtree(d)
    assert kinds <= set(plog.PROBLEM_KINDS)
    assert {"bad-magic", "checksum-mismatch", "bad-local-offset"} <= kinds


def test_corrupt_middle_block_stops_replay_there(tmp_path, warnings):
    exp = write_three_batches(tmp_path)
    path = tmp_path / "log.1.0"
    full = path.read_bytes()
    b2 = blocks(full)[2][0]                       # block of batch 2
    data = bytearray(full)
    data[b2 + 16 + 70] ^= 0x10                    # inside its body
    path.write_bytes(data)
    ms, res = plog.read_all(str(tmp_path))
    assert ms == exp[0]                           # batch 3 is intact but never replayed
    assert res.problem.kind == "checksum-mismatch" and res.problem.local_offset == b2
    assert res.problem.dropped_bytes == len(full) - b2
    assert os.path.getsize(path) == b2
    assert "checksum-mismatch" in warnings[0]


@pytest.mark.parametrize("tail,kind", [(b"\x00" * 4096, "bad-magic"), (b"\x00" * 5, "torn-header"),
                                       (os.urandom(3000), None)])
def test_garbage_tails(tmp_path, tail, kind):
    exp = write_three_batches(tmp_path)
    path = tmp_path / "log.1.0"
    size = os.path.getsize(path)
    with open(path, "ab") as f:
        f.write(tail)
    ms, res = plog.read_all(str(tmp_path))
    assert ms == exp[0] + exp[1] + exp[2]
    assert res.problem is not None and res.problem.local_offset == size
    if kind:
        assert res.problem.kind == kind
    assert os.path.getsize(path) == size


def test_read_only_replay_changes_nothing(tmp_path):
    write_three_batches(tmp_path)
    path = tmp_path / "log.1.0"
    full = path.read_bytes()
    path.write_bytes(full[:-3])
    ms, res = plog.read_all(str(tmp_path), truncate=False)
    assert not res.problem.repaired and path.read_bytes() == full[:-3]
    with pytest.raises(plog.PlogError):
        plog.PrivateLog(str(tmp_path), G, res)


def test_bad_mutation_inside_valid_checksum(tmp_path):
    # a block whose checksum is right but whose mutation lies about its log offset
    hdr, crc = plog.build_header_block(0, G, 0)
    m = mk(1)
    body = m.encode(999)
    import zlib
    crc2 = zlib.crc32(body, crc)
    (tmp_path / "log.1.0").write_bytes(hdr + struct.pack("<IiII", 0xDEADBEEF, len(body), crc2,
                                                         len(hdr)) + body)
    ms, res = plog.read_all(str(tmp_path))
    assert ms == [] and res.problem.kind == "bad-mutation"
    assert os.path.getsize(tmp_path / "log.1.0") == len(hdr)


# -------------------------------------------------------------------------------------------
# rolling, multiple files, GC

def fill(d, nbatches=30, per=3, size=100, limit=1000, **kw):
    log = open_log(d, file_size_limit=limit, **kw)
    exp, dec = [], 0
    for _ in range(nbatches):
        batch = []
        for _ in range(per):
            dec += 1
            batch.append(mk(dec, size))
        exp += append(log, batch)
    return log, exp


def test_rolling(tmp_path):
    log, exp = fill(tmp_path)
    files = log.files
    log.close()
    assert len(files) > 5
    names = sorted(os.listdir(tmp_path), key=lambda n: int(n.split(".")[1]))
    assert names == [plog.file_name(f.index, f.start_offset) for f in files]
    assert [f.index for f in files] == list(range(1, len(files) + 1))
    assert files[0].start_offset == 0
    seen_max = 0
    for a, b in zip(files, files[1:]):
        assert b.start_offset == a.end_offset == a.start_offset + os.path.getsize(a.path)
        last_block = blocks(open(a.path, "rb").read())[-1]
        assert a.size >= 1000 and last_block[0] < 1000     # rolled at the first batch past it
        seen_max = max(seen_max, a.max_decree)
        hdr = plog.read_file_header(b.path)
        assert hdr.prev_max_decree(G) == seen_max == b.prev_max_decree
    ms, res = plog.read_all(str(tmp_path))
    assert ms == exp and res.problem is None and len(res.files) == len(files)


def test_corruption_in_an_earlier_file_sets_later_files_aside(tmp_path, warnings):
    log, exp = fill(tmp_path)
    files = log.files
    log.close()
    victim = files[2]
    data = bytearray(open(victim.path, "rb").read())
    second = blocks(bytes(data))[2][0]
    data[second + 20] ^= 0xFF
    open(victim.path, "wb").write(bytes(data))
    ms, res = plog.read_all(str(tmp_path))
    in_before = sum(1 for m in exp if m.log_offset < victim.start_offset + second)
    assert ms == exp[:in_before]
    p = res.problem
    assert p.kind == "checksum-mismatch" and p.path == victim.path
    assert [os.path.basename(x) for x in p.removed_files] == \
        [os.path.basename(f.path) + ".removed" for f in files[3:]]
    assert sorted(os.listdir(tmp_path)) == sorted(
        [os.path.basename(f.path) for f in files[:3]] +
        [os.path.basename(f.path) + ".removed" for f in files[3:]])
    # continue: append after the cut, roll into a fresh index, replay all
    log = plog.PrivateLog.open(str(tmp_path), G, res, file_size_limit=1000)
    more = []
    for d in range(500, 520):
        more += append(log, [mk(d, 100)])
    assert log.files[-1].index > files[-1].index     # no clash with the set-aside names
    log.close()
    ms2, res2 = plog.read_all(str(tmp_path))
    assert ms2 == exp[:in_before] + more and res2.problem is None


def test_torn_header_of_new_last_file(tmp_path):
    log, exp = fill(tmp_path)
    last = log.files[-1]
    log.close()
    with open(last.path, "r+b") as f:            # crash right after creating the file
        f.truncate(10)
    ms, res = plog.read_all(str(tmp_path))
    assert ms == [m for m in exp if m.log_offset < last.start_offset]
    assert res.problem.kind == "torn-header" and res.problem.dropped_bytes == 10
    assert os.path.exists(last.path + ".removed")
    assert res.end_offset == last.start_offset
    log = plog.PrivateLog.open(str(tmp_path), G, res, file_size_limit=1000)
    more = append(log, [mk(900)])
    log.close()
    assert more[0].log_offset > last.start_offset
    assert plog.read_all(str(tmp_path))[0] == ms + more


def test_discontinuous_files(tmp_path):
    log, exp = fill(tmp_path, nbatches=12)
    files = log.files
    log.close()
    f3 = files[2]
    bad = os.path.join(tmp_path, plog.file_name(f3.index, f3.start_offset + 1))
    os.rename(f3.path, bad)
    ms, res = plog.read_all(str(tmp_path))
    assert ms == [m for m in exp if m.log_offset < f3.start_offset]
    assert res.problem.kind == "discontinuity" and res.problem.path == bad


def test_gc(tmp_path):
    log, exp = fill(tmp_path)
    files = log.files
    last_decree = {f.index: f.max_decree for f in files}
    removed_total = []
    for durable in range(0, exp[-1].decree + 2, 7):
        removed_total += log.gc(durable)
        # exactly the files (never the last) whose decrees are all <= durable
        expect = [f.path for f in files[:-1] if last_decree[f.index] <= durable]
        assert removed_total == expect
        assert sorted(os.listdir(tmp_path)) == sorted(
            os.path.basename(f.path) for f in files if f.path not in expect)
    assert [f.path for f in log.files] == [files[-1].path]
    log.append([mk(10_000)])
    log.close()
    ms, res = plog.read_all(str(tmp_path))
    assert ms[0].log_offset > 0 and ms[-1].decree == 10_000 and res.problem is None
    assert ms[:-1] == [m for m in exp if m.log_offset >= files[-1].start_offset]


def test_gc_on_reopened_log_uses_file_headers(tmp_path):
    log, exp = fill(tmp_path)
    files = log.files
    log.close()
    log = open_log(tmp_path)
    removed = log.gc(files[2].max_decree)
    assert removed == [f.path for f in files[:3]]


def test_gc_reserve(tmp_path):
    log, exp = fill(tmp_path)
    files = log.files
    now = time.time()
    budget = files[-1].size + files[-2].size + files[-3].size
    removed = log.gc(10 ** 9, reserve_max_bytes=budget, reserve_max_seconds=3600, now=now)
    assert removed == [f.path for f in files[:-3]]          # two newest deletable ones kept
    removed = log.gc(10 ** 9, reserve_max_bytes=budget, reserve_max_seconds=10, now=now + 100)
    assert removed == [f.path for f in files[-3:-1]]        # too old now


def test_replay_skips_files_below_durable_decree(tmp_path):
    log, exp = fill(tmp_path)
    files = log.files
    log.close()
    durable = files[3].max_decree
    r = plog.Replay(str(tmp_path), durable_decree=durable)
    ms = list(r)
    assert r.result.skipped_files == 4
    assert ms == [m for m in exp if m.log_offset >= files[4].start_offset]
    assert len(r.result.files) == len(files) and r.result.max_decree == exp[-1].decree
    log = plog.PrivateLog.open(str(tmp_path), G, r.result, file_size_limit=1000)
    assert log.gc(durable) == [f.path for f in files[:4]]


def test_reopen_append_replay_cycles(tmp_path):
    exp, dec = [], 0
    for rnd in range(6):
        r = plog.Replay(str(tmp_path))
        assert list(r) == exp
        log = plog.PrivateLog.open(str(tmp_path), G, r.result, file_size_limit=2000,
                                   checksum="crc32c" if rnd >= 3 else "crc32",
                                   sync="batch" if rnd % 2 else "none")
        for _ in range(5):
            batch = [mk(dec + i + 1, 150) for i in range(3)]
            dec += 3
            exp += append(log, batch)
        log.close()
    ms, res = plog.read_all(str(tmp_path))
    assert ms == exp and res.problem is None
    kinds = [f.checksum for f in res.files]
    assert kinds[0] == "crc32" and kinds[-1] == "crc32c"   # a file keeps its checksum


# -------------------------------------------------------------------------------------------
# I/O failures

def test_failed_write_rolls_back_and_breaks_the_log(tmp_path, monkeypatch):
    log = open_log(tmp_path)
    exp = append(log, [mk(1), mk(2)])
    size = os.path.getsize(tmp_path / "log.1.0")
    real = os.pwrite
    calls = []

    def failing(fd, data, off):
        calls.append(len(data))
        if len(calls) == 1:
            return real(fd, bytes(data)[:len(data) // 2], off)    # a short write...
        raise OSError(errno.ENOSPC, "No space left on device")   # ...then the disk is full

    monkeypatch.setattr(os, "pwrite", failing)
    with pytest.raises(plog.PlogError):
        log.append([mk(3, 5000)])
    assert len(calls) == 2
    assert os.path.getsize(tmp_path / "log.1.0") == size        # cut back to the last batch
    assert isinstance(log.broken, OSError)
    with pytest.raises(plog.PlogError):
        log.append([mk(3)])
    assert len(calls) == 2
    monkeypatch.undo()
    log.close()
    ms, res = plog.read_all(str(tmp_path))
    assert ms == exp and res.problem is None


def test_failed_write_of_a_new_file_removes_it(tmp_path, monkeypatch):
    log = open_log(tmp_path, file_size_limit=100)
    exp = append(log, [mk(1, 200)])
    monkeypatch.setattr(os, "pwrite", lambda fd, data, off: (_ for _ in ()).throw(
        OSError(errno.EIO, "I/O error")))
    with pytest.raises(plog.PlogError):
        log.append([mk(2)])
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["log.1.0"]
    log.close()
    assert plog.read_all(str(tmp_path))[0] == exp


# -------------------------------------------------------------------------------------------
# crash simulation: a child appends forever and is SIGKILLed at a random moment

MK_SRC = r'''
from pegasus_server.base import Gpid
from pegasus_server.replica.mutation import Mutation, Update

def mk(i):
    data = (b"%08d" % i) * (1 + (i * 7919) % 300)
    return Mutation(Gpid(1, 4), 1 + i // 1000, i + 1, i, 5_000_000 + i,
                    (Update("RPC_RRDB_RRDB_PUT", 1, data),))
'''

CHILD = MK_SRC + r'''
import os, random, sys
from pegasus_server.replica import plog
d, policy, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
r = plog.Replay(d)
n = sum(1 for _ in r)
log = plog.PrivateLog.open(d, Gpid(1, 4), r.result, sync=policy, file_size_limit=256 * 1024)
rng = random.Random(seed)
os.write(1, b"start %d\n" % n)
i = n
while True:
    k = rng.randint(1, 64)
    log.append([mk(j) for j in range(i, i + k)])
    i += k
    os.write(1, b"ack %d\n" % i)       # only after append returned: acknowledged
'''


def _read_lines(fd, buf, timeout):
    r, _, _ = select.select([fd], [], [], timeout)
    if not r:
        return buf, []
    chunk = os.read(fd, 65536)
    if not chunk:
        return buf, None
    buf += chunk
    *lines, rest = buf.split(b"\n")
    return rest, lines


@pytest.mark.parametrize("policy", ["none", "batch"])
def test_sigkill_while_appending_replays_a_prefix_of_acknowledged(tmp_path, policy):
    ns = {}
    exec(MK_SRC, ns)
    mk_i = ns["mk"]
    d = str(tmp_path / "plog")
    env = dict(os.environ, PYTHONPATH=ROOT)
    rng = random.Random(42)
    last_total = 0
    for rnd in range(5):
        with open(tmp_path / f"child{rnd}.err", "wb") as err:
            p = subprocess.Popen([sys.executable, "-c", CHILD, d, policy, str(rnd)],
                                 stdout=subprocess.PIPE, stderr=err)
        fd = p.stdout.fileno()
        acked, started, buf = 0, None, b""
        want = rng.randint(3, 40)
        deadline = time.monotonic() + 20
        try:
            while acked < want and time.monotonic() < deadline:
                buf, lines = _read_lines(fd, buf, 0.5)
                assert lines is not None, "child exited early"
                for ln in lines:
                    kind, num = ln.split()
                    if kind == b"start":
                        started = int(num)
                    else:
                        acked = max(acked, int(num))
            assert started is not None and acked >= want, "child too slow"
            time.sleep(rng.uniform(0, 0.01))
        finally:
            os.kill(p.pid, signal.SIGKILL)               # known PID, never by name
            p.wait(timeout=10)
        rest = buf + p.stdout.read()
        p.stdout.close()
        for ln in rest.split(b"\n"):
            if ln.startswith(b"ack "):
                acked = max(acked, int(ln.split()[1]))
        assert started == last_total          # the child replayed everything earlier
        ms, res = plog.read_all(d)
        assert len(ms) >= acked               # every acknowledged mutation is there...
        assert len(ms) <= acked + 64          # ...plus at most the one batch in flight
        for i, m in enumerate(ms):            # ...as an exact prefix of what was sent
            assert m.with_log_offset(-1) == mk_i(i), i
        if res.problem is not None:
            assert res.problem.repaired
        last_total = len(ms)
    assert len(plog.list_files(d)) >= 1


# -------------------------------------------------------------------------------------------
# tools/plog_dump.py

TOOL = os.path.join(ROOT, "tools", "plog_dump.py")


def test_plog_dump(tmp_path):
    write_three_batches(tmp_path)
    path = tmp_path / "log.1.0"
    full = path.read_bytes()
    path.write_bytes(full[:-4])
    run = lambda *a: subprocess.run([sys.executable, TOOL, *a], capture_output=True, text=True,
                                    timeout=60)
    out = run(str(tmp_path))
    assert out.returncode == 1
    assert "gpid=1.4 ballot=1 decree=3" in out.stdout and "RPC_RRDB_RRDB_PUT(100 B)" in out.stdout
    assert "decree=4" not in out.stdout
    assert "TAIL PROBLEM: torn-body" in out.stdout and "read-only" in out.stdout
    assert path.read_bytes() == full[:-4]
    out = run("--decode", "--truncate", str(tmp_path))
    assert out.returncode == 1 and "<undecodable" in out.stdout    # test payloads are fake
    out = run(str(tmp_path))
    assert out.returncode == 0 and "tail: clean" in out.stdout
    real = tmp_path / "real"
    log = open_log(real)
    log.append([M.make_mutation(G, 1, 1, 0, 5, [(PUT, rrdb.update_request(
        key=keys.encode_key(b"hk", b"sk"), value=b"val", expire_ts_seconds=0))])])
    log.close()
    out = run("--decode", str(real))
    assert out.returncode == 0 and "value=b'val'" in out.stdout
    help_ = run("--help")
    assert help_.returncode == 0 and "usage: plog_dump.py" in help_.stdout
    assert run(str(tmp_path / "missing")).returncode == 2
