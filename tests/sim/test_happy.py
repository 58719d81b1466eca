"""Three replicas, no faults: partitions get a full membership, writes commit everywhere."""
from tests.sim.cluster import Sim


def test_cluster_forms_and_writes_commit(make_sim):
    sim = make_sim(seed=7)
    sim.run_until(sim.all_healthy, 120, "every partition healthy")
    for _ in range(40):
        sim.client.write()
        sim.run_for(0.05)
    sim.run_for(2)
    assert len(sim.client.acked) == 40 and sim.client.failed == 0
    sim.run_for(25)       # a group check round brings secondaries' commit point up
    sim.checker.check_final()
    for g in sim.gpids():
        pc = sim.meta_config(g)
        lcds = {sim.nodes[a].storages[g].last_committed_decree for a in pc.members()}
        assert max(lcds) - min(lcds) <= 1, lcds     # at most the idle empty write (§3.6)
        writes = sum(1 for gg, _ in sim.client.acked if gg == g)
        assert writes > 0 and min(lcds) >= writes     # one mutation per (unbatched) write
