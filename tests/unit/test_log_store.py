"""replica/log_store.py: the driver's view of a private log — index, durable discard by rewrite
(and recovery of a rewrite interrupted at each step), GC trimming the index."""
import os
import shutil

from pegasus_server.base import Gpid
from pegasus_server.replica.log_store import ReplicaLog
from pegasus_server.replica.mutation import Mutation, Update

G = Gpid(2, 3)


def mk(decree, ballot=1, tag=b""):
    return Mutation(G, ballot, decree, decree - 1, 1_000_000 + decree,
                    (Update("RPC_RRDB_RRDB_PUT", 1, b"%08d" % decree + tag),))


def decrees(log):
    return [m.decree for m in log.mutations()]


def test_append_index_and_reopen(tmp_path):
    d = str(tmp_path / "plog")
    log = ReplicaLog(d, G)
    log.append([mk(i) for i in range(1, 6)])
    log.append([mk(6)])
    assert decrees(log) == [1, 2, 3, 4, 5, 6]
    assert log.first_contiguous(6) == 1
    assert log.first_contiguous(6, limit=2) == 4
    assert log.first_contiguous(7) is None
    assert [m.decree for m in log.range(2, 4)] == [3, 4]
    log.close()
    again = ReplicaLog(d, G)
    assert decrees(again) == [1, 2, 3, 4, 5, 6]
    assert again.index[3].updates == mk(3).updates
    again.close()


def test_latest_append_per_decree_wins(tmp_path):
    d = str(tmp_path / "plog")
    log = ReplicaLog(d, G)
    log.append([mk(1), mk(2, ballot=1, tag=b"old")])
    log.append([mk(2, ballot=2, tag=b"new")])
    log.close()
    again = ReplicaLog(d, G)
    assert again.index[2].ballot == 2 and again.index[2].updates[0].data.endswith(b"new")
    again.close()


def test_discard_is_durable(tmp_path):
    d = str(tmp_path / "plog")
    log = ReplicaLog(d, G)
    log.append([mk(i) for i in range(1, 11)])
    log.discard_after(4)
    assert decrees(log) == [1, 2, 3, 4]
    log.append([mk(5, ballot=3)])            # appends continue after the rewrite
    log.close()
    again = ReplicaLog(d, G)
    assert decrees(again) == [1, 2, 3, 4, 5]
    assert again.index[5].ballot == 3
    again.discard_after(0)
    assert decrees(again) == []
    again.close()
    assert decrees(ReplicaLog(d, G)) == []


def test_discard_keeps_only_the_newest_entries(tmp_path):
    log = ReplicaLog(str(tmp_path / "plog"), G, index_keep=3)
    log.append([mk(i) for i in range(1, 11)])
    log.discard_after(8)
    assert decrees(log) == [6, 7, 8]
    log.close()


def test_interrupted_rewrite_before_swap_keeps_old_log(tmp_path):
    d = str(tmp_path / "plog")
    log = ReplicaLog(d, G)
    log.append([mk(i) for i in range(1, 6)])
    log.close()
    # a rewrite that crashed while writing: incomplete (no COMPLETE marker) -> thrown away
    ReplicaLog._write_new(d + ".rewrite", G, [mk(1)], "none", 1 << 20)
    os.unlink(os.path.join(d + ".rewrite", "COMPLETE"))
    again = ReplicaLog(d, G)
    assert decrees(again) == [1, 2, 3, 4, 5]
    assert not os.path.exists(d + ".rewrite")
    again.close()


def test_interrupted_rewrite_between_renames_finishes(tmp_path):
    d = str(tmp_path / "plog")
    log = ReplicaLog(d, G)
    log.append([mk(i) for i in range(1, 6)])
    log.close()
    ReplicaLog._write_new(d + ".rewrite", G, [mk(1), mk(2)], "none", 1 << 20)
    os.rename(d, d + ".old")                 # crashed after the first rename
    again = ReplicaLog(d, G)
    assert decrees(again) == [1, 2]
    assert not os.path.exists(d + ".old") and not os.path.exists(d + ".rewrite")
    again.close()


def test_gc_trims_index_below_durable(tmp_path):
    log = ReplicaLog(str(tmp_path / "plog"), G, index_keep=2, file_size_limit=200)
    for i in range(1, 21):
        log.append([mk(i)])                  # small files: one roll every few mutations
    files_before = len(log.log.files)
    log.gc(15)
    assert decrees(log) == [14, 15] + list(range(16, 21))
    assert len(log.log.files) < files_before
    log.close()
    # what replays after GC still starts at or below the durable decree + 1
    again = ReplicaLog(str(tmp_path / "plog"), G)
    assert min(decrees(again)) <= 16 and max(decrees(again)) == 20
    again.close()
    shutil.rmtree(str(tmp_path / "plog"))


def test_trim_keeps_the_newest_and_everything_above_durable(tmp_path):
    d = str(tmp_path / "plog")
    log = ReplicaLog(d, G, index_keep=3)
    log.append([mk(i) for i in range(1, 11)])
    log.trim(durable_decree=5)               # 1..5 durable: only the oldest go, 6..10 stay
    assert decrees(log) == [6, 7, 8, 9, 10]
    log.trim(durable_decree=10)
    assert decrees(log) == [8, 9, 10]
    log.trim(durable_decree=10)              # nothing in excess: unchanged
    assert decrees(log) == [8, 9, 10]
    log.close()
    again = ReplicaLog(d, G, index_keep=3)   # the files are untouched: a restart sees all
    assert decrees(again) == list(range(1, 11))
    again.close()
