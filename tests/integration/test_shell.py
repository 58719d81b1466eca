"""pegasus_shell as a script uses it, against a live onebox: one-shot commands (output on
stdout, status 0 / 1 failed / 2 bad arguments), lines on standard input, the cluster chosen
from a config file's [pegasus.clusters] or by --meta, help generated from the command table.
The command groups have their own modules (test_shell_tables/_cluster/_data.py); the
interactive shell is driven through a pseudo-terminal in test_shell_interactive.py."""
import json
import subprocess
import sys

from onebox import META_BASE_PORT  # tools/, on the path via conftest

META_TEXT = f"127.0.0.1:{META_BASE_PORT + 1}"


def shell(*args, stdin=None, meta=True, cwd=None):
    argv = [sys.executable, "-m", "pegasus_shell"] + (["--meta", META_TEXT] if meta else [])
    return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=60,
                          input=stdin, cwd=cwd)


def test_one_shot_commands_and_status(cluster):
    out = shell("ls")
    assert out.returncode == 0, out.stderr
    rows = [ln.split() for ln in out.stdout.split("[summary]")[0].splitlines()[2:] if ln]
    assert [(r[0], r[1], r[2], r[4]) for r in rows] == [("1", "available", "stat", "4"),
                                                        ("2", "available", "temp", "8")]
    doc = json.loads(shell("cluster_info", "-j").stdout)
    assert doc["cluster_info"]["cluster_name"] == "onebox"
    assert doc["cluster_info"]["primary_meta_server"] == META_TEXT


def test_table_option_and_data_round_trip(cluster):
    out = shell("--table", "temp", "set", "shell_hk", "sk", "v\\x001")
    assert out.returncode == 0 and out.stdout.startswith("OK"), out.stderr
    out = shell("--table", "temp", "get", "shell_hk", "sk")
    assert out.returncode == 0 and out.stdout.splitlines()[0] == '"v\\x001"'
    assert "partition_index" in out.stdout
    out = shell("--table", "temp", "get", "shell_hk", "missing")
    assert out.returncode == 1 and out.stdout.startswith("Not found")
    out = shell("get", "shell_hk", "sk")            # no table chosen
    assert out.returncode == 1 and "use <app_name>" in out.stderr


def test_lines_on_stdin_keep_the_session_and_report_the_worst_status(cluster):
    out = shell(stdin="use temp\n# a comment\nset stdin_hk sk 42\nget stdin_hk sk\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "OK" and '"42"' in out.stdout
    out = shell(stdin="use temp\nget stdin_hk nope\nget stdin_hk sk\n")
    assert out.returncode == 1 and '"42"' in out.stdout       # went on after the failure
    out = shell(stdin="use no_such_table\n")
    assert out.returncode == 1 and "ERR_APP_NOT_EXIST" in out.stderr


def test_bad_input_is_refused_clearly(cluster):
    out = shell("no_such_command")
    assert out.returncode == 2 and "ERROR: invalid subcommand 'no_such_command'" in out.stderr
    assert "[Table management]" in out.stderr                  # the help list follows
    out = shell("--table", "temp", "set", "only_two")
    assert out.returncode == 2 and out.stderr.startswith("USAGE: set <hash_key> <sort_key>")
    out = shell("ls", "--status", "sleeping")
    assert out.returncode == 2 and "invalid choice" in out.stderr
    out = shell("--table", "temp", "get", "bad\\q", "sk")
    assert out.returncode == 2 and "unknown escape" in out.stderr
    out = shell("timeout", "-5")
    assert out.returncode == 2


def test_help_is_generated_from_the_command_table(cluster):
    out = shell("help")
    assert out.returncode == 0
    for section in ("[Table management]", "[Cluster, nodes and servers]", "[Data operations]",
                    "[Shell]"):
        assert section in out.stdout
    assert "ls" in out.stdout and "--detailed" in out.stdout
    one = shell("help", "ls")
    assert one.stdout.startswith("ls [-a|--all]") and "List tables" in one.stdout
    assert shell("help", "nope").returncode == 1
    assert shell("version").stdout.startswith("Pegasus Shell pegasus-py")


def test_cluster_from_config_file_and_cc(cluster, tmp_path):
    cfg = tmp_path / "config.ini"
    cfg.write_text(f"[pegasus.clusters]\nonebox = {META_TEXT}\nelsewhere = 127.0.0.1:1\n")
    out = shell(str(cfg), "onebox", "ls", meta=False)          # upstream's positional form
    assert out.returncode == 0 and "temp" in out.stdout, out.stderr
    out = shell("ls", meta=False, cwd=str(tmp_path))           # config.ini here, mycluster
    assert out.returncode == 2 and "mycluster" in out.stderr
    out = shell("--cluster", "onebox", "ls", meta=False, cwd=str(tmp_path))
    assert out.returncode == 0 and "temp" in out.stdout
    out = shell("--cluster", "onebox", meta=False, cwd=str(tmp_path),
                stdin="cc\ncc elsewhere\nls\ncc nowhere\ncc onebox\nls\n")
    assert "The cluster meta list is: 127.0.0.1:1" in out.stdout
    assert "no meta server answered" in out.stderr and "nowhere is not in" in out.stderr
    assert out.stdout.rstrip().endswith("total_app_count : 2")   # back on onebox
    assert out.returncode == 1


def test_output_file(cluster, tmp_path):
    target = tmp_path / "ls.json"
    out = shell("ls", "-j", "-o", str(target))
    assert out.returncode == 0 and str(target) in out.stdout
    doc = json.loads(target.read_text())
    assert {r["app_name"] for r in doc["general_info"]} == {"stat", "temp"}


def test_local_tools(cluster):
    from pegasus_server.storage import values
    out = shell("rdb_key_str2hex", "hk", "sk\\x00")
    assert out.returncode == 0 and out.stdout.strip() == "0002686b736b00"
    out = shell("rdb_key_hex2str", out.stdout.strip())
    assert out.stdout == 'hash_key: "hk"\nsort_key: "sk\\x00"\n'
    stored = values.encode_value(b"v\n", expire_ts=1234, timetag=values.make_timetag(99, 3))
    out = shell("rdb_value_hex2str", stored.hex())
    assert out.returncode == 0, out.stderr
    assert "expire_ts: 1234" in out.stdout and "cluster_id 3" in out.stdout
    assert 'user_data: "v\\n"' in out.stdout
    assert shell("rdb_key_hex2str", "0009ab").returncode == 1         # a length past the end
    assert shell("rdb_value_hex2str", "xyz").returncode == 2


def test_mlog_dump_of_a_replica_log(cluster):
    import glob
    import os
    assert shell("--table", "temp", "set", "mlog_hk", "mlog_sk", "mlog_value").returncode == 0
    dirs = glob.glob(os.path.join(cluster.base, "replica*", "**", "2.*.pegasus", "plog"),
                     recursive=True)
    assert dirs
    outs = [shell("mlog_dump", "-i", d, "-d") for d in dirs]
    assert all(o.returncode == 0 for o in outs), [o.stderr for o in outs]
    hits = [o.stdout for o in outs if "mlog_value" in o.stdout]
    assert len(hits) == 3                                   # the three replicas of its partition
    assert all("RPC_RRDB_RRDB_PUT" in h and "# tail: clean" in h for h in hits)
    assert shell("mlog_dump", "-i", "/nonexistent").returncode == 1
    assert shell("mlog_dump").returncode == 2                 # -i is required


def test_upstream_commands_not_supported_yet_say_so(cluster):
    out = shell("add_dup", "temp", "othercluster")
    assert out.returncode == 2 and "not supported yet (duplication" in out.stderr
    assert "(cold backup and restore" in shell("help", "restore_app").stdout
    assert "[Not supported yet]" in shell("help").stdout


def test_escape_all_and_timeout_settings(cluster):
    out = shell(stdin="use temp\nset esc_hk sk \"caf\u00e9\\x01\"\nget esc_hk sk\nescape_all\n"
                      "escape_all true\nget esc_hk sk\nescape_all maybe\ntimeout\ntimeout 1500\n"
                      "timeout\n")
    lines = out.stdout.splitlines()
    assert '"caf\u00e9\\x01"' in lines                  # UTF-8 shown as text by default
    assert "escape_all is false" in lines and "set escape_all to true" in lines
    assert '"caf\\xc3\\xa9\\x01"' in lines              # every byte >= 0x80 escaped
    assert "current timeout is 5000 ms" in lines and "current timeout is 1500 ms" in lines
    assert out.returncode == 2 and "expected true or false" in out.stderr
