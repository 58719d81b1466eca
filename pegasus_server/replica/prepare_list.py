"""The prepare list: the window of prepared mutations of one partition replica, by decree.

Owns (replication.md §3.3-§3.6): which mutation sits at which decree above the commit point, the
commit point itself (``last_committed_decree``), the ordered commit rules, and the eviction of
committed mutations from the front when the window is full (committed ones are kept while room
remains, so a primary can serve learners from it: LT_CACHE, §7.3).

A ``Slot`` holds one mutation plus the bookkeeping the 2PC needs: ``logged`` (the local log
append completed) and ``waiting`` (peers whose prepare ack is still missing; primary only).
A slot is *ready for commit* when it is logged and waits for nobody.

Commit modes (the three of upstream's prepare list):

* ``commit_hard(d)`` — secondaries/learners: everything up to ``d`` must be present and logged
  (the primary only announces a commit point every member has logged); a gap is a bug and raises
  ``PrepareListError``.
* ``commit_soft(d)`` — commit consecutive ready slots up to ``d``, stop at the first that is not.
* ``commit_ready()`` — primary: commit consecutive ready slots from the commit point on.

Commits are returned as lists of mutations in decree order (the caller turns them into ``Apply``
effects); nothing here calls back. The mutation type is opaque except for ``decree``, ``ballot``
and ``last_committed_decree`` attributes. Pure data structure: imports nothing beyond the
standard library.
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Set

DEFAULT_CAPACITY = 110   # max_mutation_count_in_prepare_list (replication.md §12)


class PrepareListError(Exception):
    """A violation of the prepare list's rules (a bug in the caller, never an expected outcome)."""


class Slot:
    __slots__ = ("mutation", "logged", "waiting", "clients")

    def __init__(self, mutation: Any, logged: bool = False, waiting=(), clients=()):
        self.mutation = mutation
        self.logged = logged
        self.waiting: Set[Any] = set(waiting)
        self.clients = tuple(clients)

    @property
    def ready(self) -> bool:
        return self.logged and not self.waiting

    def __repr__(self) -> str:
        m = self.mutation
        return (f"Slot(d={m.decree}, b={m.ballot}, logged={self.logged}, "
                f"waiting={sorted(map(str, self.waiting))})")


class PrepareList:
    def __init__(self, init_decree: int = 0, capacity: int = DEFAULT_CAPACITY):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._slots: Dict[int, Slot] = {}
        self._lcd = init_decree
        self._min = init_decree + 1     # lowest decree held (== lcd + 1 when empty)
        self._max = init_decree         # highest decree held (== lcd when empty)
        self._last_ballot = 0           # ballot of the last committed mutation

    # ---------------------------------------------------------------- queries
    @property
    def last_committed_decree(self) -> int:
        return self._lcd

    @property
    def min_decree(self) -> int:
        return self._min

    @property
    def max_decree(self) -> int:
        return self._max

    @property
    def count(self) -> int:
        return len(self._slots)

    def get(self, decree: int) -> Optional[Slot]:
        return self._slots.get(decree)

    def mutation(self, decree: int):
        s = self._slots.get(decree)
        return s.mutation if s is not None else None

    def covers(self, lo: int, hi: int) -> bool:
        """Every decree in [lo, hi] is held."""
        return all(d in self._slots for d in range(lo, hi + 1))

    def uncommitted(self) -> Iterator[int]:
        """Decrees in (last_committed_decree, max_decree], holes included."""
        return iter(range(self._lcd + 1, self._max + 1))

    def __len__(self) -> int:
        return len(self._slots)

    # ---------------------------------------------------------------- changes
    def reset(self, decree: int) -> None:
        """Forget everything; the commit point becomes ``decree``."""
        self._slots.clear()
        self._lcd = decree
        self._min = decree + 1
        self._max = decree
        self._last_ballot = 0

    def truncate(self, decree: int) -> None:
        """Drop every slot at or below ``decree`` and set the commit point to ``decree``
        (after a learned checkpoint covered them). Slots above stay."""
        for d in [d for d in self._slots if d <= decree]:
            del self._slots[d]
        self._lcd = decree
        if self._slots:
            self._min = min(self._slots)
            self._max = max(self._slots)
        else:
            self._min, self._max = decree + 1, decree

    def put(self, mutation, *, logged: bool = False, waiting=(), clients=()) -> Slot:
        """Insert (or replace) the slot at ``mutation.decree``. The decree must be above the
        commit point; committed slots are evicted from the front to make room. Holes are
        allowed (a secondary may miss a prepare; it is then removed by the primary)."""
        d = mutation.decree
        if d <= self._lcd:
            raise PrepareListError(f"put decree {d} <= last committed {self._lcd}")
        old = self._slots.get(d)
        if old is not None and old.mutation.ballot > mutation.ballot:
            raise PrepareListError(f"put decree {d} ballot {mutation.ballot} over ballot "
                                   f"{old.mutation.ballot}")
        while d - self._min >= self.capacity and self._lcd >= self._min:
            self._pop_min()
        if d - self._min >= self.capacity:
            raise PrepareListError(f"decree {d} does not fit: min {self._min}, capacity "
                                   f"{self.capacity}, last committed {self._lcd}")
        slot = Slot(mutation, logged, waiting, clients)
        was_empty = not self._slots
        self._slots[d] = slot
        self._min = d if was_empty else min(self._min, d)
        self._max = max(self._max, d)
        return slot

    def _pop_min(self) -> None:
        self._slots.pop(self._min, None)
        self._min += 1
        while self._min <= self._max and self._min not in self._slots:
            self._min += 1
        if not self._slots:
            self._min = self._lcd + 1
            self._max = max(self._max, self._lcd)

    def pop_committed(self) -> None:
        """Evict every committed slot (upstream's ``pop_all``)."""
        while self._slots and self._min <= self._lcd:
            self._pop_min()

    def prepare(self, mutation, *, logged: bool = False) -> tuple:
        """Secondary/learner insertion: first hard-commit up to the mutation's
        ``last_committed_decree``, then put it. Returns ``(slot, committed mutations)``."""
        committed = self.commit_hard(min(mutation.last_committed_decree, mutation.decree - 1))
        return self.put(mutation, logged=logged), committed

    # ---------------------------------------------------------------- commit
    def _commit_one(self, slot: Slot) -> Any:
        m = slot.mutation
        if m.ballot < self._last_ballot:
            raise PrepareListError(f"commit decree {m.decree} ballot {m.ballot} after ballot "
                                   f"{self._last_ballot}")
        self._lcd = m.decree
        self._last_ballot = m.ballot
        return m

    def commit_hard(self, decree: int) -> List[Any]:
        out = []
        while self._lcd < decree:
            slot = self._slots.get(self._lcd + 1)
            if slot is None or not slot.logged:
                raise PrepareListError(
                    f"hard commit to {decree}: decree {self._lcd + 1} is "
                    f"{'missing' if slot is None else 'not logged'}")
            out.append(self._commit_one(slot))
        return out

    def commit_soft(self, decree: int) -> List[Any]:
        out = []
        while self._lcd < decree:
            slot = self._slots.get(self._lcd + 1)
            if slot is None or not slot.ready or slot.mutation.ballot < self._last_ballot:
                break
            out.append(self._commit_one(slot))
        return out

    def commit_ready(self) -> List[Any]:
        return self.commit_soft(self._max)

    def __repr__(self) -> str:
        return (f"PrepareList(lcd={self._lcd}, min={self._min}, max={self._max}, "
                f"count={len(self._slots)})")
