"""Three metas over a real ZooKeeper (the default onebox): leader election, followers'
redirections (meta.md §2.2), the leader SIGKILLed under writes, every meta SIGKILLed and
restarted with the state kept in ZooKeeper."""
import os
import signal
import time

import gevent
import pytest
from gevent.pool import Pool

from pegasus_server import errors
from pegasus_server.base import RpcAddress
from pegasus_server.errors import RpcError
from pegasus_server.rpc import thrift
from pegasus_server.rpc.client import RpcClient
from pegasus_server.rpc.table import TableClient

from conftest import assert_all_readable, running_cluster, wait_for
from onebox import META_BASE_PORT  # tools/, on the path via conftest

METAS = [("127.0.0.1", META_BASE_PORT + i) for i in (1, 2, 3)]
META_TEXT = [f"{h}:{p}" for h, p in METAS]


@pytest.fixture(scope="module")
def ha(tmp_path_factory):
    yield from running_cluster(str(tmp_path_factory.mktemp("onebox-ha")), 3)


def _list_apps(client, meta):
    return client.call(meta, "RPC_CM_LIST_APPS",
                       thrift.meta_admin.configuration_list_apps_request(status=1), timeout=2)


def leader_of(client, exclude=()):
    """The meta that answers a list_apps itself (the others forward), or None."""
    for m in METAS:
        if m in exclude:
            continue
        try:
            if _list_apps(client, m).err == errors.ERR_OK:
                return m
        except RpcError:
            pass
    return None


def test_one_leader_and_followers_redirect(ha):
    c = RpcClient()
    try:
        leader = wait_for(lambda: leader_of(c), 30, "a leader")
        lead_addr = RpcAddress(*leader)
        followers = [m for m in METAS if m != leader]
        for f in followers:
            # the follower learns the leader from ZooKeeper within a poll interval
            wait_for(lambda: c.call(f, "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX",
                                    thrift.layer2.query_cfg_request(app_name="temp"),
                                    timeout=2).partitions, 10, "the follower's leader hint")
            q = c.call(f, "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX",
                       thrift.layer2.query_cfg_request(app_name="temp"), timeout=2)
            assert q.err == errors.ERR_FORWARD_TO_OTHERS
            assert [p.primary for p in q.partitions] == [lead_addr]
            assert _list_apps(c, f).err == errors.ERR_FORWARD_TO_OTHERS
            ack = c.call(f, "RPC_FD_FAILURE_DETECTOR_PING", thrift.fd.beacon_msg(
                time=1, from_node=RpcAddress("127.0.0.1", 1), to_node=RpcAddress(*f)),
                timeout=2)
            assert (ack.is_master, ack.primary_node) == (False, lead_addr)
        info = c.call(leader, "RPC_CM_CLUSTER_INFO",
                      thrift.meta_admin.configuration_cluster_info_request(), timeout=2)
        assert info.err == errors.ERR_OK
        kv = dict(zip(info.keys, info.values))
        assert kv["primary_meta_server"] == f"{leader[0]}:{leader[1]}"
    finally:
        c.close()


def test_leader_sigkill_under_writes_loses_nothing(ha):
    c = RpcClient()
    t = TableClient(META_TEXT, "temp", timeout=30)
    acked = {}
    stop = []

    def writer(w):
        i = 0
        while not stop:
            hk, v = b"ha%d-%d" % (w, i), b"v%d-%d" % (w, i)
            if t.set(hk, b"", v).error == 0:
                acked[hk] = v
            i += 1

    try:
        leader = wait_for(lambda: leader_of(c), 30, "a leader")
        role_idx = leader[1] - META_BASE_PORT
        pool = Pool(8)
        gs = [pool.spawn(writer, w) for w in range(8)]
        wait_for(lambda: len(acked) > 300, 30, "writes before the kill")
        before = len(acked)
        pid = ha.box.pid_of("meta", role_idx)
        t0 = time.time()
        os.kill(pid, signal.SIGKILL)
        new = wait_for(lambda: leader_of(c, exclude=(leader,)), 30, "a new leader")
        failover = time.time() - t0
        wait_for(lambda: len(acked) > before + 300, 30, "writes after the failover")
        assert not any(g.dead for g in gs), [g.exception for g in gs if g.dead]
        stop.append(1)
        pool.join(raise_error=True)
        print(f"leader {leader} SIGKILLed; {new} leads after {failover:.2f} s; "
              f"{len(acked)} writes acknowledged")
        assert new != leader and failover < 20
        # the killed meta comes back as a follower
        out = ha.run("start_instance", "-m", str(role_idx), check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        wait_for(lambda: _list_apps(c, leader).err == errors.ERR_FORWARD_TO_OTHERS, 15,
                 "the restarted meta to forward")
        assert leader_of(c) == new
        assert_all_readable(t, acked)
    finally:
        stop.append(1)
        t.close()
        c.close()


def test_every_meta_killed_state_kept_in_zookeeper(ha):
    c = RpcClient()
    try:
        leader = wait_for(lambda: leader_of(c), 30, "a leader")
        ma = thrift.meta_admin
        r = c.call(leader, "RPC_CM_CREATE_APP", ma.configuration_create_app_request(
            app_name="ha_keep", options=ma.create_app_options(
                partition_count=4, replica_count=3, success_if_exist=True, app_type="pegasus",
                is_stateful=True, envs={})), timeout=10)
        assert r.err == errors.ERR_OK
        app_id = r.appid
        for i in (1, 2, 3):
            ha.box.stop_instance("meta", i, kill=True)
        out = ha.run("start", "-m", "3", "-r", "3", "--wait", "120", check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        leader = wait_for(lambda: leader_of(c), 30, "a leader after the restart")
        apps = {a.app_name: a.app_id for a in _list_apps(c, leader).infos}
        assert apps.get("ha_keep") == app_id and {"temp", "stat"} <= set(apps)
        t = TableClient(META_TEXT, "ha_keep", timeout=30)
        try:
            assert t.set(b"k", b"", b"v").error == 0
            assert t.get(b"k", b"") == (0, b"v")
        finally:
            t.close()
    finally:
        c.close()


def test_zookeeper_restart(ha):
    """ZooKeeper goes away: the leader stops leading (nobody acts on a state it cannot write);
    once ZooKeeper is back a leader is elected again and the cluster serves its data."""
    c = RpcClient()
    t = TableClient(META_TEXT, "temp", timeout=60)
    try:
        leader = wait_for(lambda: leader_of(c), 30, "a leader")
        assert t.set(b"zk-before", b"", b"1").error == 0
        ha.box.stop_zookeeper()
        wait_for(lambda: leader_of(c) is None, 15, "the leader to step down")
        ha.box.start_zookeeper()
        t0 = time.time()
        new = wait_for(lambda: leader_of(c), 60, "a leader once ZooKeeper is back")
        print(f"leader {leader} stepped down without ZooKeeper; {new} leads "
              f"{time.time() - t0:.2f} s after ZooKeeper answered again")
        assert t.get(b"zk-before", b"") == (0, b"1")
        assert t.set(b"zk-after", b"", b"2").error == 0
        assert t.get(b"zk-after", b"") == (0, b"2")
    finally:
        t.close()
        c.close()


def _placement(client, meta, table):
    q = client.call(meta, "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX",
                    thrift.layer2.query_cfg_request(app_name=table), timeout=3)
    prim, total = {}, {}
    for pc in q.partitions:
        prim[pc.primary] = prim.get(pc.primary, 0) + 1
        for a in [pc.primary] + list(pc.secondaries or []):
            total[a] = total.get(a, 0) + 1
    return q, prim, total


def test_fourth_replica_server_and_lively_spread_replicas(ha):
    """A fourth replica server joins; at fl_lively the balancer spreads the primaries and the
    replicas of every table evenly, with writes going on and nothing lost."""
    c = RpcClient()
    t = TableClient(META_TEXT, "temp", timeout=30)
    acked, stop = {}, []

    def writer(w):
        i = 0
        while not stop:
            hk, v = b"lb%d-%d" % (w, i), b"v%d" % i
            if t.set(hk, b"", v).error == 0:
                acked[hk] = v
            i += 1
            gevent.sleep(0.01)

    try:
        out = ha.run("start", "-m", "3", "-r", "4", "--wait", "120", check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        leader = wait_for(lambda: leader_of(c), 30, "a leader")
        wait_for(lambda: len(c.call(leader, "RPC_CM_LIST_NODES",
                                    thrift.meta_admin.configuration_list_nodes_request(status=1),
                                    timeout=3).infos) == 4, 30, "four alive nodes")
        _, prim, total = _placement(c, leader, "temp")
        before = {str(a): n for a, n in total.items()}
        pool = Pool(4)
        gs = [pool.spawn(writer, w) for w in range(4)]
        ma = thrift.meta_admin
        r = c.call(leader, "RPC_CM_CONTROL_META",
                   ma.configuration_meta_control_request(level=500), timeout=3)
        assert r.err == errors.ERR_OK
        t0 = time.time()

        def balanced():
            for table, parts in (("temp", 8), ("stat", 4)):
                q, p, tot = _placement(c, leader, table)
                if len(p) != 4 or max(p.values()) - min(p.values()) > 1:
                    return False
                if len(tot) != 4 or max(tot.values()) - min(tot.values()) > 1:
                    return False
                if any(pc.primary.is_invalid or len(pc.secondaries or []) != 2
                       for pc in q.partitions):
                    return False
            return True
        wait_for(balanced, 240, "the balancer to spread every table")
        took = time.time() - t0
        _, prim, total = _placement(c, leader, "temp")
        print(f"temp replicas per node before {before}, after "
              f"{ {str(a): n for a, n in total.items()} } (primaries "
              f"{ {str(a): n for a, n in prim.items()} }), balanced in {took:.1f} s")
        assert sorted(total.values()) == [6, 6, 6, 6] and sorted(prim.values()) == [2, 2, 2, 2]
        c.call(leader, "RPC_CM_CONTROL_META", ma.configuration_meta_control_request(level=400),
               timeout=3)
        n = len(acked)
        wait_for(lambda: len(acked) > n + 20, 30, "writes after balancing")
        assert not any(g.dead for g in gs), [g.exception for g in gs if g.dead]
        stop.append(1)
        pool.join(raise_error=True)
        assert_all_readable(t, acked)
    finally:
        stop.append(1)
        t.close()
        c.close()
