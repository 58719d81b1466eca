"""The greedy load balancer's planner (replication.md §8) as a pure function: convergence over many
cluster shapes, the options, tie-breaking and the shapes of the action lists."""
import copy
import random
from collections import Counter

import pytest

from pegasus_server.meta import balancer as lb
from pegasus_server.meta.balancer import Move, Options, Partition

NODES = [f"n{i}" for i in range(1, 7)]
SHAPES = {  # the three kinds of action lists, by config types
    (lb.CT_DOWNGRADE_TO_SECONDARY, lb.CT_UPGRADE_TO_PRIMARY): "move_primary",
    (lb.CT_ADD_SECONDARY_FOR_LB, lb.CT_DOWNGRADE_TO_SECONDARY, lb.CT_UPGRADE_TO_PRIMARY,
     lb.CT_REMOVE): "copy_primary",
    (lb.CT_ADD_SECONDARY_FOR_LB, lb.CT_REMOVE): "copy_secondary",
}


# ---------------------------------------------------------------------------------------------
# cluster shapes

def place(app_id, count, replicas, mode, nodes, rng):
    """Partitions of one table. Modes: random; skew:k (every replica on the first k nodes);
    one_primary (all primaries on nodes[0]); balanced."""
    parts = []
    for i in range(count):
        if mode == "random":
            members = rng.sample(nodes, replicas)
        elif mode.startswith("skew:"):
            members = rng.sample(nodes[:int(mode[5:])], replicas)
        elif mode == "one_primary":
            members = [nodes[0]] + rng.sample(nodes[1:], replicas - 1)
        elif mode == "balanced":    # replicas dealt out cyclically, primary: fewest so far
            members = [nodes[(i * replicas + j) % len(nodes)] for j in range(replicas)]
            done = Counter(p.primary for p in parts)
            first = min(members, key=lambda x: (done[x], nodes.index(x)))
            members.remove(first)
            members.insert(0, first)
        else:
            raise AssertionError(mode)
        parts.append(Partition((app_id, i), members[0], tuple(members[1:])))
    return parts


def cluster(n_nodes, specs, seed=0):
    """``specs``: [(partition_count, replica_count, mode), ...] -> (tables, alive)."""
    rng = random.Random(seed)
    nodes = NODES[:n_nodes]
    tables = {app_id: place(app_id, pc, rc, mode, nodes, rng)
              for app_id, (pc, rc, mode) in enumerate(specs, start=1)}
    return tables, list(nodes)


def _cases():
    cases = [
        # "everything on 3 nodes, a 4th empty node added"
        ("three_nodes_plus_empty", 4, [(8, 3, "skew:3"), (16, 3, "skew:3")], 1),
        ("three_nodes_plus_empty_r2", 4, [(32, 2, "skew:3")], 2),
        ("two_nodes_plus_two_empty", 4, [(16, 2, "skew:2"), (4, 1, "skew:2")], 3),
        ("one_node_holds_all_single_replica", 5, [(32, 1, "skew:1"), (1, 1, "skew:1")], 4),
        ("all_primaries_on_one_node", 5, [(32, 3, "one_primary"), (8, 2, "one_primary")], 5),
        ("all_primaries_on_one_node_6", 6, [(16, 3, "one_primary"), (32, 3, "one_primary")], 6),
        ("two_node_cluster", 2, [(1, 1, "random"), (4, 2, "random"),
                                 (32, 2, "random"), (16, 1, "skew:1")], 7),
        ("single_partition_tables", 3, [(1, 1, "random"), (1, 2, "random"), (1, 3, "random")], 8),
        ("many_tables", 6, [(4, 3, "skew:3"), (8, 1, "skew:2"), (16, 2, "one_primary"),
                            (32, 3, "random"), (1, 3, "skew:4")], 9),
    ]
    rng = random.Random(2024)
    for i in range(40):
        n = rng.randint(2, 6)
        specs = []
        for _ in range(rng.randint(1, 3)):
            rc = rng.randint(1, min(3, n))
            mode = rng.choice(["random", "random", "one_primary" if rc > 1 else "random",
                               f"skew:{rng.randint(rc, n)}"])
            specs.append((rng.choice([1, 4, 8, 16, 32]), rc, mode))
        cases.append((f"random_{i}", n, specs, 100 + i))
    return cases


CASES = _cases()


# ---------------------------------------------------------------------------------------------
# driver and checks

def snapshot(state):
    return {app: list(parts.values()) for app, parts in state.items()}


def check_plan(moves, state):
    pids = {pid for parts in state.values() for pid in parts}
    assert isinstance(moves, dict)
    for pid, actions in moves.items():   # a dict: at most one list per partition by construction
        assert pid in pids
        assert isinstance(actions, tuple) and actions
        assert all(isinstance(m, Move) and m.type in lb.MOVE_TYPES for m in actions)
        assert tuple(m.type for m in actions) in SHAPES


def run(tables, alive, options=Options(), disk_load=None, bound=50):
    """Plans and applies rounds until the planner has nothing to do; returns (state, history)."""
    state = {app: {p.pid: p for p in parts} for app, parts in tables.items()}
    history = []
    for _ in range(bound):
        moves = lb.plan(snapshot(state), alive, options, disk_load)
        if not moves:
            return state, history
        check_plan(moves, state)
        history.append(moves)
        for pid, actions in moves.items():
            state[pid[0]][pid] = lb.apply(state[pid[0]][pid], actions)
    raise AssertionError(f"no convergence within {bound} rounds")


def primary_counts(parts, alive):
    c = Counter({n: 0 for n in alive})
    c.update(p.primary for p in parts)
    return c


def replica_counts(parts, alive):
    c = Counter({n: 0 for n in alive})
    c.update(m for p in parts for m in (p.primary, *p.secondaries))
    return c


def spread(counter):
    return max(counter.values()) - min(counter.values())


def check_final(tables, state, alive, primaries=True, replicas=True):
    for app, parts in tables.items():
        final = state[app]
        assert set(final) == {p.pid for p in parts}
        for p in parts:
            q = final[p.pid]
            members = (q.primary, *q.secondaries)
            assert q.primary is not None
            assert len(members) == 1 + len(p.secondaries)        # replica count kept
            assert len(set(members)) == len(members)             # no node twice
            assert set(members) <= set(alive)                    # only alive nodes
        if primaries:
            pc = primary_counts(final.values(), alive)
            low = len(parts) // len(alive)
            assert spread(pc) <= 1 and min(pc.values()) >= low, (app, pc)
        if replicas:
            assert spread(replica_counts(final.values(), alive)) <= 1, app


def shapes(history):
    return [SHAPES[tuple(m.type for m in actions)]
            for moves in history for actions in moves.values()]


# ---------------------------------------------------------------------------------------------
# convergence

@pytest.mark.parametrize("name,n,specs,seed", CASES, ids=[c[0] for c in CASES])
def test_converges_to_a_balanced_cluster(name, n, specs, seed):
    tables, alive = cluster(n, specs, seed)
    before = copy.deepcopy(tables)
    state, history = run(tables, alive)
    assert tables == before
    check_final(tables, state, alive)
    # the settled cluster stays settled
    assert lb.plan(snapshot(state), alive) == {}
    # something was unbalanced at the start -> something was planned
    unbalanced = any(spread(primary_counts(ps, alive)) > 1 or spread(replica_counts(ps, alive)) > 1
                     for ps in tables.values())
    assert bool(history) == unbalanced


@pytest.mark.parametrize("name,n,specs,seed", CASES, ids=[c[0] for c in CASES])
def test_options_converge_and_respect_their_limits(name, n, specs, seed):
    tables, alive = cluster(n, specs, seed)
    # only_primary_balancer: primaries balanced, never a copy_secondary
    state, history = run(tables, alive, Options(only_primary_balancer=True))
    check_final(tables, state, alive, replicas=False)
    assert "copy_secondary" not in shapes(history)
    # only_move_primary: never a copy_primary (copy_secondary is still allowed, as upstream)
    state, history = run(tables, alive, Options(only_move_primary=True))
    check_final(tables, state, alive, primaries=False, replicas=False)
    assert "copy_primary" not in shapes(history)
    # both: never any data copy
    state, history = run(tables, alive, Options(only_move_primary=True, only_primary_balancer=True))
    assert all(m.type != lb.CT_ADD_SECONDARY_FOR_LB
               for moves in history for actions in moves.values() for m in actions)
    # balancer_in_turn: one table per round, same end result
    state, history = run(tables, alive, Options(balancer_in_turn=True), bound=100)
    check_final(tables, state, alive)
    assert all(len({pid[0] for pid in moves}) == 1 for moves in history)


# ---------------------------------------------------------------------------------------------
# specific behaviour

def test_balanced_clusters_plan_nothing():
    for n in range(2, 7):
        for pc in (1, 4, 8, 16, 32):
            for rc in range(1, min(3, n) + 1):
                tables, alive = cluster(n, [(pc, rc, "balanced")] * 2)
                assert spread(primary_counts(tables[1], alive)) <= 1
                assert spread(replica_counts(tables[1], alive)) <= 1
                assert lb.plan(tables, alive) == {}, (n, pc, rc)
    # an empty node makes the same table unbalanced
    tables, alive = cluster(3, [(6, 2, "balanced")])
    assert lb.plan(tables, alive + ["n9"]) != {}
    assert lb.plan({}, alive) == {} and lb.plan(tables, []) == {}


def P(idx, primary, *secondaries, app=1):
    return Partition((app, idx), primary, tuple(secondaries))


def test_move_primary_is_preferred_when_the_underloaded_node_has_a_secondary():
    alive = ["a", "b", "c"]
    tables = {1: [P(0, "a", "b"), P(1, "a", "b"), P(2, "a", "c")]}
    # one augmenting path per round (as upstream): a -> b first, then a -> c
    moves = lb.plan(tables, alive)
    assert moves == {(1, 0): lb.move_primary_actions("a", "b")}
    tables = {1: [lb.apply(p, moves.get(p.pid, ())) for p in tables[1]]}
    assert lb.plan(tables, alive) == {(1, 2): lb.move_primary_actions("a", "c")}
    # the same skew without secondaries can only be fixed by copying
    single = {1: [P(0, "a"), P(1, "a"), P(2, "a")]}
    moves = lb.plan(single, alive)
    assert moves == {(1, 0): lb.copy_primary_actions("a", "b"),
                     (1, 1): lb.copy_primary_actions("a", "c")}
    assert lb.plan(single, alive, Options(only_move_primary=True)) == {}
    # copy_primary targets the least loaded node that is NOT a member
    tables = {1: [P(0, "a", "c"), P(1, "a", "c"), P(2, "a", "c"), P(3, "c", "a")]}
    # a=3, b=0, c=1: b is below low, no secondary of a's partitions on b -> copy to b
    moves = lb.plan(tables, alive)
    assert list(moves.values()) == [lb.copy_primary_actions("a", "b")]


def test_move_primary_moves_the_whole_bottleneck_of_the_path():
    # a: 4 primaries, all with a secondary on b; b: none (low 2): the path carries 2 at once
    alive = ["a", "b"]
    tables = {1: [P(i, "a", "b") for i in range(4)]}
    assert lb.plan(tables, alive) == {(1, 0): lb.move_primary_actions("a", "b"),
                                      (1, 1): lb.move_primary_actions("a", "b")}


def test_move_primary_follows_a_multi_hop_path():
    # a: two primaries with secondaries on b only; b: one primary with its secondary on c; c: none
    alive = ["a", "b", "c"]
    tables = {1: [P(0, "a", "b"), P(1, "a", "b"), P(2, "b", "c")]}
    moves = lb.plan(tables, alive)
    assert moves == {(1, 0): lb.move_primary_actions("a", "b"),
                     (1, 2): lb.move_primary_actions("b", "c")}


def test_upstream_corner_case_nobody_below_low():
    # 8 partitions, 3 nodes: primaries 4/2/2 (low 2, high 3): nobody below low, a above high
    alive = ["a", "b", "c"]
    parts = [P(i, "a", "b", "c") for i in range(4)] + [P(4 + i, "b", "a", "c") for i in range(2)] \
        + [P(6 + i, "c", "a", "b") for i in range(2)]
    moves = lb.plan({1: parts}, alive)
    assert list(moves.values()) == [lb.move_primary_actions("a", "b")]
    assert sorted(primary_counts([lb.apply(p, moves.get(p.pid, ())) for p in parts],
                                 alive).values()) == [2, 3, 3]


def test_copy_secondary_moves_only_secondaries_after_primaries_are_balanced():
    alive = ["a", "b", "c", "d"]
    # primaries balanced (one each), but d holds no replica
    tables = {1: [P(0, "a", "b", "c"), P(1, "b", "c", "a"), P(2, "c", "a", "b"),
                  P(3, "d", "a", "b")]}
    moves = lb.plan(tables, alive)
    assert moves and all(SHAPES[tuple(m.type for m in a)] == "copy_secondary"
                         for a in moves.values())
    for pid, actions in moves.items():
        p = next(p for p in tables[1] if p.pid == pid)
        add, remove = actions
        assert add.target == remove.target == p.primary          # sent to the primary
        assert remove.node in p.secondaries and add.node not in (p.primary, *p.secondaries)
    assert lb.plan(tables, alive, Options(only_primary_balancer=True)) == {}


def test_copy_secondary_chains_when_no_direct_move_exists():
    # n1 holds 5 replicas, n3 only 3, but n3 is a member of every partition n1 is a secondary of
    # (n1 may not give away its primaries): upstream would stay unbalanced; here n1 -> n2 -> n3
    alive = [f"n{i}" for i in range(1, 7)]
    parts = [P(0, "n4", "n2", "n5"), P(1, "n1", "n2", "n4"), P(2, "n2", "n1", "n3"),
             P(3, "n1", "n6", "n5"), P(4, "n6", "n5", "n2"), P(5, "n5", "n6", "n4"),
             P(6, "n6", "n3", "n1"), P(7, "n3", "n1", "n4")]
    assert all("n3" in (p.primary, *p.secondaries) for p in parts if "n1" in p.secondaries)
    assert replica_counts(parts, alive) == Counter(n1=5, n2=4, n3=3, n4=4, n5=4, n6=4)
    moves = lb.plan({1: parts}, alive)
    assert moves == {(1, 6): lb.copy_secondary_actions("n6", "n1", "n2"),
                     (1, 0): lb.copy_secondary_actions("n4", "n2", "n3")}
    after = [lb.apply(p, moves.get(p.pid, ())) for p in parts]
    assert spread(replica_counts(after, alive)) == 0
    assert primary_counts(after, alive) == primary_counts(parts, alive)
    assert lb.plan({1: after}, alive) == {}


def test_secondary_phase_waits_for_every_table_primary_phase():
    alive = ["a", "b", "c"]
    unbalanced_replicas = [P(0, "a", "b"), P(1, "b", "a"), P(2, "c", "a")]
    unbalanced_primaries = [P(0, "a", "b", app=2), P(1, "a", "b", app=2), P(2, "a", "c", app=2)]
    assert lb.plan({1: unbalanced_replicas}, alive)                     # alone: copy_secondary
    moves = lb.plan({1: unbalanced_replicas, 2: unbalanced_primaries}, alive)
    assert moves and {pid[0] for pid in moves} == {2}


def test_balancer_in_turn_plans_one_table_per_round():
    alive = ["a", "b", "c"]
    t1 = [P(0, "a"), P(1, "a"), P(2, "a")]
    t2 = [P(0, "b", app=2), P(1, "b", app=2), P(2, "b", app=2)]
    assert {pid[0] for pid in lb.plan({2: t2, 1: t1}, alive)} == {1, 2}
    assert {pid[0] for pid in lb.plan({2: t2, 1: t1}, alive, Options(balancer_in_turn=True))} \
        == {1}
    # a balanced first table does not stop the second one
    t1_ok = [P(0, "a"), P(1, "b"), P(2, "c")]
    assert {pid[0] for pid in lb.plan({1: t1_ok, 2: t2}, alive,
                                      Options(balancer_in_turn=True))} == {2}


def test_disk_load_breaks_ties_between_targets():
    alive = ["a", "b", "c", "d"]
    tables = {1: [P(0, "a"), P(1, "a"), P(2, "b")]}      # a above high; c and d both empty
    assert list(lb.plan(tables, alive).values()) == [lb.copy_primary_actions("a", "c")]
    disk = {"c": 500, "d": 100}
    assert list(lb.plan(tables, alive, disk_load=disk).values()) == \
        [lb.copy_primary_actions("a", "d")]
    # copy_secondary too: a and b hold 3 replicas, c and d one; b (the larger address) gives
    # first and sends its replica of partition 0 to the smaller target
    tables = {1: [P(0, "a", "b"), P(1, "b", "a"), P(2, "c", "a"), P(3, "d", "b")]}
    targets = lambda moves: {pid: a[0].node for pid, a in moves.items()}  # noqa: E731
    assert targets(lb.plan(tables, alive)) == {(1, 0): "c", (1, 1): "d"}
    assert targets(lb.plan(tables, alive, disk_load={"c": 9})) == {(1, 0): "d", (1, 1): "c"}
    # move_primary: equally wide paths prefer the node with less disk usage
    tables = {1: [P(0, "a", "c", "d"), P(1, "a", "c", "d"), P(2, "b", "a", "c")]}
    moves = lb.plan(tables, alive)
    assert list(moves.values()) == [lb.move_primary_actions("a", "c")]
    moves = lb.plan(tables, alive, disk_load={"c": 7, "d": 3})
    assert list(moves.values()) == [lb.move_primary_actions("a", "d")]


def test_inputs_are_not_mutated():
    tables, alive = cluster(4, [(16, 3, "skew:3"), (8, 1, "skew:1")], 5)
    tables = {app: list(parts) for app, parts in tables.items()}
    disk = {"n1": 3, "n4": 1}
    before = (copy.deepcopy(tables), list(alive), dict(disk))
    moves = lb.plan(tables, alive, Options(), disk)
    assert moves
    assert (tables, alive, disk) == before


def test_unhealthy_tables_are_skipped():
    alive = ["a", "b", "c"]
    good = [P(0, "a"), P(1, "a"), P(2, "a")]
    dead_member = [P(0, "a", "x", app=2), P(1, "a", "b", app=2), P(2, "a", "b", app=2)]
    no_primary = [Partition((3, 0), None, ("a",)), P(1, "a", app=3), P(2, "a", app=3)]
    moves = lb.plan({1: good, 2: dead_member, 3: no_primary}, alive)
    assert {pid[0] for pid in moves} == {1}


def test_apply_executes_lists_and_rejects_invalid_moves():
    p = P(0, "a", "b")
    assert lb.apply(p, lb.move_primary_actions("a", "b")) == P(0, "b", "a")
    assert lb.apply(p, lb.copy_primary_actions("a", "c")) == P(0, "c", "b")
    assert lb.apply(p, lb.copy_secondary_actions("a", "b", "c")) == P(0, "a", "c")
    assert lb.apply(p, ()) == p
    for bad in ([Move(lb.CT_UPGRADE_TO_PRIMARY, "b", "b")],              # primary still there
                [Move(lb.CT_DOWNGRADE_TO_SECONDARY, "b", "b")],          # b is not the primary
                [Move(lb.CT_ADD_SECONDARY_FOR_LB, "a", "b")],            # already a member
                [Move(lb.CT_REMOVE, "a", "a")],                          # cannot remove itself
                [Move(lb.CT_REMOVE, "b", "a")],                          # not sent to the primary
                [Move(3, "a", "c")]):                                    # not a balancer type
        with pytest.raises(ValueError):
            lb.apply(p, bad)
