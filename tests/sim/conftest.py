"""Fixtures of the simulation tier: a fresh cluster per test, closed afterwards."""
import pytest

from tests.sim.cluster import Sim


@pytest.fixture
def make_sim(tmp_path):
    sims = []

    def make(seed=1, **kw):
        sim = Sim(seed, str(tmp_path / f"sim{len(sims)}"), **kw)
        sims.append(sim)
        return sim.start()

    yield make
    for s in sims:
        s.close()
