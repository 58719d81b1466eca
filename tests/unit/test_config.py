"""config.py: the meta-state and leader-lock service keys (upstream's names) and [zookeeper]."""
import pytest

from pegasus_server import config
from pegasus_server.errors import ConfigError


def write(tmp_path, text):
    p = tmp_path / "config.ini"
    p.write_text(text)
    return str(p)


def test_defaults_are_one_meta_over_a_local_directory(tmp_path):
    c = config.load(write(tmp_path, "[meta_server]\nserver_list = 127.0.0.1:34601\n"))
    assert c.meta_server.meta_state_service_type == config.STATE_SIMPLE
    assert c.meta_server.distributed_lock_service_type == config.LOCK_SIMPLE
    assert (c.zookeeper.hosts_list, c.zookeeper.timeout_ms) == ("127.0.0.1:22181", 30000)


def test_zookeeper_keys_are_read(tmp_path):
    c = config.load(write(tmp_path, """
[meta_server]
server_list = 127.0.0.1:34601,127.0.0.1:34602
meta_state_service_type = meta_state_service_zookeeper
distributed_lock_service_type = distributed_lock_service_zookeeper
cluster_root = /pegasus/x
[zookeeper]
hosts_list = 127.0.0.1:2181
timeout_ms = 3000
"""))
    assert c.meta_server.cluster_root == "/pegasus/x"
    assert (c.zookeeper.hosts_list, c.zookeeper.timeout_ms) == ("127.0.0.1:2181", 3000)
    assert len(c.meta_server.servers) == 2


@pytest.mark.parametrize("body, message", [
    ("meta_state_service_type = etcd", "meta_state_service_type"),
    ("distributed_lock_service_type = chubby", "distributed_lock_service_type"),
    ("distributed_lock_service_type = distributed_lock_service_zookeeper",
     "needs meta_state_service_type"),
])
def test_bad_service_types_are_refused(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message):
        config.load(write(tmp_path, f"[meta_server]\n{body}\n"))
