"""Crash test: acknowledged writes survive SIGKILL of every server process."""

from gevent.pool import Pool

from pegasus_server.rpc.table import TableClient

from onebox import META_BASE_PORT  # tools/, on the path via conftest

META_TEXT = f"127.0.0.1:{META_BASE_PORT + 1}"


def test_acknowledged_writes_survive_sigkill_of_every_process(cluster):
    t = TableClient([META_TEXT], "temp", timeout=30)
    acked = {}

    def write(i):
        hk, sk, v = b"crash%05d" % i, b"s%d" % (i % 7), b"value-%d" % i
        resp = t.set(hk, sk, v)
        assert resp.error == 0
        acked[(hk, sk)] = v

    pool = Pool(32)
    for i in range(3000):
        pool.spawn(write, i)
    pool.join(raise_error=True)
    assert len(acked) == 3000
    before = cluster.pids()
    cluster.kill_all()
    assert all(cluster.box.pid_of(*_split(n)) is None for n in before)
    out = cluster.run("start", "-m", "1", "-r", "3", "--wait", "120", check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    after = cluster.pids()
    assert all(after[n] and after[n] != before[n] for n in before)
    t.close()
    t = TableClient([META_TEXT], "temp", timeout=30)
    missing = []
    for (hk, sk), v in acked.items():
        got = t.get(hk, sk)
        if got != (0, v):
            missing.append((hk, sk, got))
    t.close()
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:3]}"


def _split(name):
    role = "meta" if name.startswith("meta") else "replica"
    return role, int(name[len(role):])

