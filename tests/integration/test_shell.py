"""The first-cut pegasus_shell, used one-shot as a script would against a live onebox."""
import subprocess
import sys

from onebox import META_BASE_PORT  # tools/, on the path via conftest

META_TEXT = f"127.0.0.1:{META_BASE_PORT + 1}"


def shell(*args):
    return subprocess.run([sys.executable, "-m", "pegasus_shell", "--meta", META_TEXT,
                           *args], capture_output=True, text=True, timeout=60)


def test_ls_nodes_cluster_info(cluster):
    out = shell("ls")
    assert out.returncode == 0
    rows = [ln.split() for ln in out.stdout.splitlines()[1:]]
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("1", "AS_AVAILABLE", "stat", "4"), ("2", "AS_AVAILABLE", "temp", "8")]
    out = shell("nodes")
    assert out.returncode == 0 and out.stdout.count("ALIVE") == 3
    out = shell("cluster_info")
    assert out.returncode == 0 and "cluster_name" in out.stdout and "onebox" in out.stdout


def test_set_get_del(cluster):
    assert shell("set", "temp", "shell_hk", "sk", "v1").stdout.strip() == "OK"
    out = shell("get", "temp", "shell_hk", "sk")
    assert out.returncode == 0 and out.stdout.strip() == '"v1"'
    assert shell("del", "temp", "shell_hk", "sk").returncode == 0
    out = shell("get", "temp", "shell_hk", "sk")
    assert out.returncode == 1 and out.stdout.strip() == "Not found"


def test_errors_exit_non_zero(cluster):
    out = shell("get", "no_such_table", "a", "b")
    assert out.returncode == 1 and "ERR_OBJECT_NOT_FOUND" in out.stderr
    out = shell("set", "temp", "only_two_args")
    assert out.returncode == 2 and "usage" in out.stderr
