"""Crash test: acknowledged writes survive SIGKILL of every server process (here with storage
never flushed by request; test_crash_flushed.py: flushed and the private log collected)."""
import os

from gevent.pool import Pool

from pegasus_server.rpc import thrift
from pegasus_server.rpc.client import RpcClient
from pegasus_server.rpc.table import TableClient

from conftest import wait_for
from onebox import META_BASE_PORT, REPLICA_BASE_PORT  # tools/, on the path via conftest

META_TEXT = f"127.0.0.1:{META_BASE_PORT + 1}"


def test_acknowledged_writes_survive_sigkill_of_every_process(cluster):
    write_kill_restart_read(cluster, 3000, b"value-%d")


def _trigger_checkpoints():
    """``replica.trigger-checkpoint 2`` on every replica server: flush temp's replicas."""
    c = RpcClient()
    try:
        for i in range(1, 4):
            out = c.call(("127.0.0.1", REPLICA_BASE_PORT + i), "RPC_CLI_CLI_CALL",
                         thrift.command.command(cmd="replica.trigger-checkpoint",
                                                arguments=["2"]))
            assert out.startswith("triggered checkpoint of 8 replica(s)"), out
    finally:
        c.close()


def _collected_logs(cluster):
    """Replicas of temp whose first private-log file is gone."""
    out = []
    for root, _, files in os.walk(cluster.base):
        if os.path.basename(root) == "plog" and "/2." in root:
            idx = [int(f.split(".")[1]) for f in files if f.startswith("log.")]
            if idx and min(idx) > 1:
                out.append(root)
    return out


def write_kill_restart_read(cluster, count, value, flushed=False):
    t = TableClient([META_TEXT], "temp", timeout=30)
    acked = {}

    def write(i):
        hk, sk, v = b"crash%05d" % i, b"s%d" % (i % 7), value % i
        resp = t.set(hk, sk, v)
        assert resp.error == 0
        acked[(hk, sk)] = v

    pool = Pool(32)
    for i in range(count):
        pool.spawn(write, i)
    pool.join(raise_error=True)
    assert len(acked) == count
    if flushed:
        # every replica of temp flushes its storage (one flush at a time per node, a round
        # a second), then collects its log files below the durable decree
        _trigger_checkpoints()
        wait_for(lambda: _collected_logs(cluster), 60, "private-log files collected")
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

