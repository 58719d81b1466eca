"""The prepare list: window, ordered commit modes, eviction, truncation (replication.md §3)."""
from dataclasses import dataclass

import pytest

from pegasus_server.replica.prepare_list import PrepareList, PrepareListError


@dataclass(frozen=True)
class M:
    decree: int
    ballot: int = 1
    last_committed_decree: int = 0


def test_empty_list_bounds():
    pl = PrepareList(5)
    assert (pl.last_committed_decree, pl.min_decree, pl.max_decree, len(pl)) == (5, 6, 5, 0)
    assert list(pl.uncommitted()) == []
    assert pl.covers(6, 5)            # empty range
    assert not pl.covers(5, 5)


def test_put_below_commit_point_raises():
    pl = PrepareList(5)
    with pytest.raises(PrepareListError):
        pl.put(M(5))


def test_commit_ready_stops_at_first_unready_slot():
    pl = PrepareList(0)
    s1 = pl.put(M(1), waiting={"a"})
    s2 = pl.put(M(2))
    pl.put(M(3), logged=True)
    assert pl.commit_ready() == []            # 1 not logged
    s1.logged = True
    assert pl.commit_ready() == []            # 1 still waits for "a"
    s1.waiting.discard("a")
    assert [m.decree for m in pl.commit_ready()] == [1]   # 2 not logged
    s2.logged = True
    assert [m.decree for m in pl.commit_ready()] == [2, 3]
    assert pl.last_committed_decree == 3


def test_commit_soft_bounded_by_decree():
    pl = PrepareList(0)
    for d in (1, 2, 3):
        pl.put(M(d), logged=True)
    assert [m.decree for m in pl.commit_soft(2)] == [1, 2]
    assert pl.last_committed_decree == 2
    assert pl.commit_soft(1) == []


def test_commit_hard_requires_every_decree_logged():
    pl = PrepareList(0)
    pl.put(M(1), logged=True)
    pl.put(M(3), logged=True)
    with pytest.raises(PrepareListError, match="decree 2 is missing"):
        pl.commit_hard(3)
    assert pl.last_committed_decree == 1      # committed what it could before the hole
    pl.put(M(2))
    with pytest.raises(PrepareListError, match="not logged"):
        pl.commit_hard(2)
    pl.get(2).logged = True
    assert [m.decree for m in pl.commit_hard(3)] == [2, 3]


def test_secondary_prepare_hard_commits_first():
    pl = PrepareList(0)
    pl.put(M(1), logged=True)
    pl.put(M(2), logged=True)
    slot, committed = pl.prepare(M(3, last_committed_decree=2))
    assert [m.decree for m in committed] == [1, 2]
    assert slot.mutation.decree == 3 and not slot.logged
    assert pl.last_committed_decree == 2


def test_ballot_must_not_decrease_in_commit_order():
    pl = PrepareList(0)
    pl.put(M(1, ballot=3), logged=True)
    pl.put(M(2, ballot=2), logged=True)
    assert [m.decree for m in pl.commit_ready()] == [1]    # soft: stops
    with pytest.raises(PrepareListError):
        pl.commit_hard(2)


def test_replace_with_higher_ballot_but_not_lower():
    pl = PrepareList(0)
    pl.put(M(1, ballot=1), logged=True)
    s = pl.put(M(1, ballot=2))
    assert s.mutation.ballot == 2 and not s.logged
    with pytest.raises(PrepareListError):
        pl.put(M(1, ballot=1))


def test_capacity_evicts_committed_only():
    pl = PrepareList(0, capacity=4)
    for d in range(1, 5):
        pl.put(M(d), logged=True)
    with pytest.raises(PrepareListError, match="does not fit"):
        pl.put(M(5))                           # nothing committed to evict
    pl.commit_ready()
    pl.put(M(5))
    assert pl.min_decree == 2 and pl.max_decree == 5 and len(pl) == 4
    assert pl.get(1) is None and pl.get(2) is not None   # committed ones kept while room remains


def test_pop_committed_and_truncate():
    pl = PrepareList(0)
    for d in range(1, 6):
        pl.put(M(d), logged=True)
    pl.commit_soft(3)
    pl.pop_committed()
    assert (pl.min_decree, pl.max_decree, len(pl)) == (4, 5, 2)
    pl.truncate(4)
    assert (pl.last_committed_decree, pl.min_decree, pl.max_decree) == (4, 5, 5)
    pl.truncate(9)
    assert (pl.last_committed_decree, pl.min_decree, pl.max_decree, len(pl)) == (9, 10, 9, 0)


def test_reset_forgets_everything():
    pl = PrepareList(0)
    pl.put(M(1), logged=True)
    pl.put(M(2), logged=True)
    pl.reset(7)
    assert (pl.last_committed_decree, pl.min_decree, pl.max_decree, len(pl)) == (7, 8, 7, 0)
    pl.put(M(9))                               # holes allowed
    assert (pl.min_decree, pl.max_decree) == (9, 9)
    assert list(pl.uncommitted()) == [8, 9]
    assert not pl.covers(8, 9) and pl.covers(9, 9)
