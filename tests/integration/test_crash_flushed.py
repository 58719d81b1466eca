"""Crash test with storage flushed and the private log collected: replicas roll 1 MiB
private-log files, flush when asked (``replica.trigger-checkpoint``) and then collect (no
reserve) the files below the durable decree; a SIGKILL of every process follows, and every
acknowledged write must read back."""
import pytest

from conftest import running_cluster
from test_crash import write_kill_restart_read


@pytest.fixture(scope="module")
def flushing_cluster(tmp_path_factory):
    yield from running_cluster(str(tmp_path_factory.mktemp("onebox-flush")), 1,
                               "replication.log_private_file_size_mb=1",
                               "replication.log_private_reserve_max_size_mb=0")


def test_acknowledged_writes_survive_with_storage_flushed_part_of_the_way(flushing_cluster):
    write_kill_restart_read(flushing_cluster, 3000, b"v" * 3000 + b"-%d", flushed=True)
