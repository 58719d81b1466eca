"""The official-client harness (tests/peers/run_peers.py): trial report parsing and known races."""

import importlib.util
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PEERS = os.path.join(ROOT, "tests", "peers")


@pytest.fixture(scope="module")
def rp():
    spec = importlib.util.spec_from_file_location("run_peers_under_test", os.path.join(PEERS, "run_peers.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop("run_peers_under_test", None)


ID = "tests.test_basics.TestBasics."


def trial_output(verdicts, failures):
    """bwverbose-like output: `<id> ... [OK]` lines, then one report block per failure."""
    out = ["%s%s ... [%s]\n" % (ID, n, v) for n, v in verdicts]
    for n, last in failures:
        out += ["\n", "=" * 79 + "\n", "[FAIL]\n", "Traceback (most recent call last):\n",
                '  File "tests/test_basics.py", line 110, in %s\n' % n,
                "    self.assertEqual(v, ttl)\n", "twisted.trial.unittest.FailTest: %s\n" % last,
                "\n", ID + n + "\n"]
    out += ["-" * 79 + "\n", "Ran %d tests in 1.0s\n" % len(verdicts)]
    return out


def test_parse_trial_failures_maps_each_block_to_its_test(rp):
    lines = trial_output([("test_get_ok", "OK"), ("test_ttl_N", "FAIL"), ("test_scan_all", "FAIL")],
                         [("test_ttl_N", "59 != 60"), ("test_scan_all", "3 != 4")])
    f = rp.parse_trial_failures(lines)
    assert set(f) == {"test_ttl_N", "test_scan_all"}
    assert "FailTest: 59 != 60" in f["test_ttl_N"] and "3 != 4" not in f["test_ttl_N"]
    assert "FailTest: 3 != 4" in f["test_scan_all"]


class FakeTrial:
    """Replaces run_trial: the first call returns `first`, later calls `rerun` (recorded)."""

    def __init__(self, first, rerun):
        self.first, self.rerun, self.calls = first, rerun, []

    def __call__(self, names, rundir, tag, timeout):
        self.calls.append(list(names))
        return (self.first if len(self.calls) == 1 else self.rerun), 0


def run_races(rp, monkeypatch, first_failure, rerun_verdict):
    lines = trial_output([("test_get_ok", "OK"), ("test_ttl_N", "FAIL")], [("test_ttl_N", first_failure)])
    rerun = trial_output([("test_ttl_N", rerun_verdict)],
                         [("test_ttl_N", "59 != 60")] if rerun_verdict == "FAIL" else [])
    fake = FakeTrial(lines, rerun)
    monkeypatch.setattr(rp, "run_trial", fake)
    tally = rp.Tally("python")
    selected = ["test_get_ok", "test_ttl_N"]
    got, _ = fake(selected, "/nonexistent", "trial", 60)
    res = rp.parse_trial(got)
    for n in selected:
        tally.set(n, *rp.py_verdict(res[n]))
    rp.rerun_known_races("python", selected, tally, rp.parse_trial_failures(got), "/nonexistent", 60)
    return tally, fake


def test_known_race_signature_reruns_once_and_the_rerun_decides(rp, monkeypatch):
    tally, fake = run_races(rp, monkeypatch, "59 != 60", "OK")
    assert fake.calls == [["test_get_ok", "test_ttl_N"], ["test_ttl_N"]]
    v, note = tally.results["test_ttl_N"]
    assert v == "passed" and "known race" in note and "59 != 60" in note
    assert tally.results["test_get_ok"] == ("passed", "")


def test_known_race_failing_again_fails(rp, monkeypatch):
    tally, fake = run_races(rp, monkeypatch, "59 != 60", "FAIL")
    assert len(fake.calls) == 2
    assert tally.results["test_ttl_N"][0] == "failed"
    assert tally.finish() == 1


@pytest.mark.parametrize("other", ["0 != 60", "61 != 60", "58 != 60", "-1 != 60"])
def test_any_other_failure_is_not_rerun(rp, monkeypatch, other):
    tally, fake = run_races(rp, monkeypatch, other, "OK")
    assert fake.calls == [["test_get_ok", "test_ttl_N"]]
    assert tally.results["test_ttl_N"][0] == "failed"


def test_every_race_names_a_python_test_and_compiles(rp):
    import re
    for r in rp.skiplist.RACES:
        assert r.suite in ("python", "go", "go-old") and r.test.startswith("test")
        re.compile(r.signature)
        assert r.reason
