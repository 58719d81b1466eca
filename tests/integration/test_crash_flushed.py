"""Crash test with storage flushed part of the way: replicas flush every 50 mutations and roll
1 MiB private-log files, collected (no reserve) below the flushed decree, so a SIGKILL of every
process finds each replica's data partly in RocksDB and partly only in its private log."""
import pytest

from conftest import running_cluster
from test_crash import write_kill_restart_read


@pytest.fixture(scope="module")
def flushing_cluster(tmp_path_factory):
    yield from running_cluster(str(tmp_path_factory.mktemp("onebox-flush")), 1,
                               "replication.max_unflushed_mutations=50",
                               "replication.log_private_file_size_mb=1",
                               "replication.log_private_reserve_max_size_mb=0")


def test_acknowledged_writes_survive_with_storage_flushed_part_of_the_way(flushing_cluster):
    write_kill_restart_read(flushing_cluster, 3000, b"v" * 3000 + b"-%d", flushed=True)
