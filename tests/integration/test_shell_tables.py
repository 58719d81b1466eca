"""pegasus_shell's table management and table env commands (shell.md §2.1), one-shot against a
live onebox (1 meta, 3 replica servers; tables ``stat`` 4 partitions and ``temp`` 8): ls, app,
create, drop, recall, rename, get/set_replica_count, get/enable/disable_atomic_idempotent,
get/set/del/clear_app_envs. Every test checks the effect through another command (the listing,
the partition configs, the data), not only the exit status.

The module's cluster is shared in file order: the first test sees only ``stat`` and ``temp``;
the last one kills a replica server (to see unhealthy tables) and so must stay last."""
import datetime
import json
import os
import pty
import signal
import socket
import subprocess
import sys

from conftest import wait_for
from onebox import META_BASE_PORT, REPLICA_BASE_PORT  # tools/, on the path via conftest

META_TEXT = f"127.0.0.1:{META_BASE_PORT + 1}"
HEALTH_KEYS = ("fully_healthy_app_count", "unhealthy_app_count", "write_unhealthy_app_count",
               "read_unhealthy_app_count")


def shell(*args, stdin=None, timeout=60, **kw):
    return subprocess.run([sys.executable, "-m", "pegasus_shell", "--meta", META_TEXT, *args],
                          capture_output=True, text=True, timeout=timeout, input=stdin, **kw)


def ok(*args, stdin=None):
    out = shell(*args, stdin=stdin)
    assert out.returncode == 0, f"{args}: {out.stdout}\n{out.stderr}"
    return out.stdout


def js(*args, stdin=None):
    return json.loads(ok(*args, "-j", stdin=stdin))


def fails(status, *args, stdin=None):
    out = shell(*args, stdin=stdin)
    assert out.returncode == status, f"{args}: {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out.stderr


def json_docs(text):
    """The JSON documents printed one after the other by a session's ``-j`` commands."""
    docs, pos, dec = [], 0, json.JSONDecoder()
    while True:
        pos = text.find("{", pos)
        if pos < 0:
            return docs
        doc, pos = dec.raw_decode(text, pos)
        docs.append(doc)


def tables(everything=False):
    """name -> its ``ls -j`` row (``-a``: dropped ones too)."""
    return {r["app_name"]: r for r in js("ls", *(["-a"] if everything else []))["general_info"]}


def replica_counts(name):
    return [r["replica_count"] for r in js("app", name, "-d")["replicas"]]


def test_ls_counts_healthy_tables_in_the_summary(cluster):
    doc = js("ls", "-d")
    assert [(r["app_id"], r["app_name"], r["partition_count"], r["fully_healthy"],
             r["unhealthy"], r["write_unhealthy"], r["read_unhealthy"])
            for r in doc["healthy_info"]] == [(1, "stat", 4, 4, 0, 0, 0),
                                              (2, "temp", 8, 8, 0, 0, 0)]
    assert doc["summary"] == {"total_app_count": 2, "fully_healthy_app_count": 2,
                              "unhealthy_app_count": 0, "write_unhealthy_app_count": 0,
                              "read_unhealthy_app_count": 0}
    text = ok("ls", "--detailed")
    assert text.index("[general_info]") < text.index("[healthy_info]") < text.index("[summary]")
    assert "fully_healthy_app_count   : 2" in text and "partition_count :" not in text
    assert js("ls")["summary"] == {"total_app_count": 2}          # no health without -d
    only = js("ls", "-p", "te", "-m", "prefix")
    assert [r["app_name"] for r in only["general_info"]] == ["temp"]
    assert [r["app_name"] for r in js("ls", "-p", "at", "-m", "anywhere")["general_info"]] == \
        ["stat"]


def test_app_shows_partitions_nodes_and_health(cluster):
    brief = ok("app", "temp")
    assert "[parameters]" in brief and "[general]" in brief and "[replicas]" not in brief
    doc = js("app", "temp", "-d")
    assert doc["parameters"] == {"app_name": "temp", "detailed": True}
    assert doc["general"] == {"app_name": "temp", "app_id": 2, "partition_count": 8,
                              "max_replica_count": 3}
    replicas = doc["replicas"]
    assert [r["pidx"] for r in replicas] == list(range(8))
    nodes = {f"127.0.0.1:{REPLICA_BASE_PORT + i}" for i in (1, 2, 3)}
    for r in replicas:
        secondaries = r["secondaries"].strip("[]").split(",")
        assert r["replica_count"] == "3/3" and r["ballot"] >= 1
        assert {r["primary"], *secondaries} == nodes            # three distinct members
    *per_node, total = doc["nodes"]
    assert {n["node"] for n in per_node} == nodes and total["node"] == ""
    assert all(n["total"] == 8 for n in per_node)               # every node has every partition
    primaries = {n: sum(r["primary"] == n for r in replicas) for n in nodes}
    assert {n["node"]: n["primary"] for n in per_node} == primaries
    assert (total["primary"], total["secondary"], total["total"]) == (8, 16, 24)
    assert doc["healthy"] == {"fully_healthy_partition_count": 8, "unhealthy_partition_count": 0,
                              "write_unhealthy_partition_count": 0,
                              "read_unhealthy_partition_count": 0}
    # -r shows host names
    try:
        host = socket.gethostbyaddr("127.0.0.1")[0]
    except OSError:
        host = "127.0.0.1"
    resolved = js("app", "temp", "-d", "-r")
    assert resolved["replicas"][0]["primary"].startswith(f"{host}:")
    err = fails(1, "app", "no_such_table")
    assert "ERR_OBJECT_NOT_FOUND" in err and "does not exist" in err


def test_app_output_file(cluster, tmp_path):
    target = tmp_path / "app.txt"
    out = ok("app", "stat", "-o", str(target))
    assert str(target) in out
    text = target.read_text()
    assert f"out_file : {target}" in text and "partition_count   : 4" in text


def test_create_waits_until_every_partition_is_served(cluster):
    out = ok("create", "tbl_a", "-p", "4", "-r", "2", "-i", "-e",
             "default_ttl=3600,business.info=team")
    lines = out.splitlines()
    assert lines[0] == "create app tbl_a succeed, waiting for app ready"
    assert "tbl_a is ready now: (4/4)" in lines
    assert lines[-2:] == ["tbl_a is ready now!", 'create app "tbl_a" succeed']
    # ready means served: every partition has a primary and its two replicas, data goes in
    assert replica_counts("tbl_a") == ["2/2"] * 4
    out = ok(stdin="use tbl_a\nget_app_envs -j\nset hk sk value1\nget hk sk\n"
                   "create tbl_default\n")
    assert '"value1"' in out and '"default_ttl": "3600"' in out
    assert out.rstrip().endswith('create app "tbl_default" succeed')
    rows = tables()
    row = rows["tbl_a"]
    assert (row["partition_count"], row["replica_count"], row["envs_count"],
            row["atomic_idempotent"], row["is_stateful"]) == (4, 2, 2, True, True)
    row = rows["tbl_default"]                                    # defaults: -p 4 -r 3
    assert (row["partition_count"], row["replica_count"], row["envs_count"],
            row["atomic_idempotent"]) == (4, 3, 0, False)
    # the same table again is fine unless -f; other parameters are refused
    out = shell(stdin="create tbl_a -p 4 -r 2 -i -e default_ttl=3600,business.info=team\n"
                      "create tbl_a -p 4 -r 2 -i --fail_if_exist\ncreate tbl_a -p 8 -r 2\n")
    assert out.returncode == 1 and 'create app "tbl_a" succeed' in out.stdout
    assert 'create app "tbl_a" failed, error = ERR_APP_EXIST' in out.stderr
    assert 'create app "tbl_a" failed, error = ERR_INVALID_PARAMETERS' in out.stderr
    # bad arguments (the worst status of the lines: 2)
    out = shell(stdin="create bad/name\ncreate tbl_x -p 0\ncreate tbl_x -r 4\n"
                      "create tbl_x -e novalue\ncreate tbl_x -p many\nls -a\n")
    err = out.stderr
    assert out.returncode == 2 and "tbl_x" not in out.stdout and "bad" not in out.stdout
    assert "invalid app_name: 'bad/name'" in err and "partition_count should >= 1" in err
    assert 'create app "tbl_x" failed, error = ERR_INVALID_PARAMETERS' in err   # 4 > alive nodes
    assert "invalid envs: novalue" in err and err.count("USAGE: create <app_name>") == 2


def test_drop_and_recall_under_a_new_name(cluster):
    ok(stdin="create tbl_d -p 4 -r 3\nuse tbl_d\nset keep me 42\n")
    app_id = tables()["tbl_d"]["app_id"]
    out = ok("drop", "tbl_d", "-r", "600")
    assert out.splitlines() == ["reserve_seconds = 600", "drop app tbl_d succeed"]
    assert "tbl_d" not in tables()                          # gone from the default listing
    row = tables(everything=True)["tbl_d"]
    assert row["status"] == "dropped" and row["app_id"] == app_id
    parse = lambda s: datetime.datetime.strptime(s, "%Y-%m-%d_%H:%M:%S")  # noqa: E731
    assert (parse(row["drop_expire"]) - parse(row["drop_time"])).total_seconds() == 600
    # dropping a table that does not exist succeeds, as upstream (success_if_not_exist)
    out = shell(stdin="app tbl_d\ndrop tbl_never\n")
    assert out.returncode == 1 and "ERR_OBJECT_NOT_FOUND" in out.stderr
    assert out.stdout.splitlines()[-1] == "drop app tbl_never succeed"

    out = ok("recall", str(app_id), "tbl_r")
    lines = out.splitlines()
    assert lines[0] == f"recall app ok, id({app_id}), name(tbl_r), partition_count(4), " \
                       f"wait it ready"
    assert lines[-2:] == ["tbl_r is ready now: (4/4)", f"recall app {app_id} succeed"]
    row = tables()["tbl_r"]
    assert row["app_id"] == app_id and row["status"] == "available"
    out = ok(stdin="use tbl_r\nget keep me\napp tbl_r -d -j\n")
    assert '"42"' in out                                      # the data came back with it
    assert [r["replica_count"] for r in json_docs(out)[0]["replicas"]] == ["3/3"] * 4
    err = fails(2, stdin=f"recall {app_id}\nrecall 999\nrecall abc\n")
    assert f"recall app {app_id} failed, error=ERR_APP_EXIST" in err
    assert "recall app 999 failed, error=ERR_APP_NOT_EXIST" in err
    assert "parse abc as id failed" in err


def test_rename(cluster):
    ok(stdin="create tbl_n -p 4 -r 3\nuse tbl_n\nset hk sk renamed\n")
    app_id = tables()["tbl_n"]["app_id"]
    out = ok("rename", "tbl_n", "tbl_m")
    assert out == "rename app ok, old_app_name(tbl_n), new_app_name(tbl_m)\n"
    rows = tables()
    assert "tbl_n" not in rows and rows["tbl_m"]["app_id"] == app_id
    err = fails(2, stdin="rename tbl_m temp\nrename tbl_n tbl_z\nrename tbl_m\n")
    assert "rename app failed, old_app_name(tbl_m), new_app_name(temp), failed: " \
           "ERR_INVALID_PARAMETERS, ERROR: app(temp) already exist!" in err
    assert "new_app_name(tbl_z), failed: ERR_APP_NOT_EXIST" in err
    assert "USAGE: rename <old_app_name> <new_app_name>" in err
    # the data is there under the new name; the table chosen with use follows a rename
    out = ok(stdin="use tbl_m\nget hk sk\nrename tbl_m tbl_o\nuse\nget hk sk\n")
    assert out.count('"renamed"') == 2 and "\ntbl_o\n" in out


def test_get_and_set_replica_count(cluster):
    ok("create", "tbl_rc", "-p", "4", "-r", "3")
    assert ok("get_replica_count", "tbl_rc") == "[max_replica_count]\nmax_replica_count : 3\n"
    # standard input is not a terminal: no question
    out = ok("set_replica_count", "tbl_rc", "2")
    assert out == "set replica count of app(tbl_rc) from 3 to 2: success\n"
    assert js("get_replica_count", "tbl_rc") == {"max_replica_count": {"max_replica_count": 2}}
    wait_for(lambda: replica_counts("tbl_rc") == ["2/2"] * 4, 40, "the extra secondaries to go")
    assert js("app", "tbl_rc")["general"]["max_replica_count"] == 2
    out = ok("set_replica_count", "tbl_rc", "2", "--yes")
    assert "from 2 to 2: no need to update" in out
    err = fails(2, stdin="set_replica_count tbl_rc 4\nset_replica_count tbl_rc 0\n"
                         "set_replica_count tbl_rc two\nset_replica_count no_such_table 2 -y\n"
                         "get_replica_count no_such_table\n")
    assert "set replica count of app(tbl_rc) failed: ERR_INVALID_PARAMETERS" in err
    assert "alive replica servers" in err and "should be >= 1" in err
    assert "parse 'two' as replica count failed" in err
    assert "set replica count of app(no_such_table) failed: ERR_APP_NOT_EXIST" in err
    assert "get replica count of app(no_such_table) failed: ERR_APP_NOT_EXIST" in err

    # on a terminal it asks: "n" (after an answer it does not take) changes nothing, "y" does
    master, slave = pty.openpty()
    try:
        def on_terminal(answer):
            p = subprocess.Popen([sys.executable, "-m", "pegasus_shell", "--meta", META_TEXT,
                                  "set_replica_count", "tbl_rc", "3"], stdin=slave,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            os.write(master, answer)
            out, _ = p.communicate(timeout=60)
            return p.returncode, out
        rc, out = on_terminal(b"maybe\nn\n")
        assert rc == 1 and out.count("Are you sure to set the replica count of app(tbl_rc) to 3 "
                                     "? [y/n]: ") == 2
        assert out.endswith("you've chosen NO, we will stop !\n")
        assert js("get_replica_count", "tbl_rc")["max_replica_count"]["max_replica_count"] == 2
        rc, out = on_terminal(b"y\n")
        assert rc == 0 and "you've chosen YES, we will continue ...\n" in out
        assert out.endswith("set replica count of app(tbl_rc) from 2 to 3: success\n")
    finally:
        os.close(master)
        os.close(slave)
    wait_for(lambda: replica_counts("tbl_rc") == ["3/3"] * 4, 40, "the new secondaries")


def test_atomic_idempotent(cluster):
    assert js("get_atomic_idempotent", "temp") == {"atomic_idempotent": {"atomic_idempotent":
                                                                         False}}
    out = ok(stdin="enable_atomic_idempotent temp\nget_atomic_idempotent temp\n"
                   "enable_atomic_idempotent temp\nls -j\n")
    assert out.startswith("set_atomic_idempotent from false to true: succeed\n"
                          "[atomic_idempotent]\natomic_idempotent : true\n"
                          "set_atomic_idempotent from true to true: no need to update")
    rows = {r["app_name"]: r for r in json_docs(out)[0]["general_info"]}
    assert rows["temp"]["atomic_idempotent"] is True and rows["stat"]["atomic_idempotent"] is False
    out = ok(stdin="disable_atomic_idempotent temp\nget_atomic_idempotent temp -j\n")
    assert out.startswith("set_atomic_idempotent from true to false: succeed\n")
    assert json_docs(out) == [{"atomic_idempotent": {"atomic_idempotent": False}}]
    err = fails(2, stdin="get_atomic_idempotent no_such_table\n"
                         "enable_atomic_idempotent no_such_table\ndisable_atomic_idempotent\n")
    assert "get_atomic_idempotent failed, error=ERR_APP_NOT_EXIST" in err
    assert "set_atomic_idempotent failed, error=ERR_APP_NOT_EXIST" in err
    assert "USAGE: disable_atomic_idempotent <app_name>" in err


def test_app_envs(cluster):
    def envs():
        return js("--table", "stat", "get_app_envs")["app_envs"]

    assert envs() == {}
    out = ok(stdin="use stat\nset_app_envs default_ttl 86400 business.info hello\nget_app_envs\n")
    assert out == "OK\nset app envs succeed\n" \
                  "[app_envs]\nbusiness.info : hello\ndefault_ttl   : 86400\n"
    assert envs() == {"default_ttl": "86400", "business.info": "hello"}

    out = ok(stdin="use stat\ndel_app_envs default_ttl not_there\n"
                   "set_app_envs manual_compact.once.target_level 2 manual_compact.disabled true\n"
                   "get_app_envs\nclear_app_envs -p manual_compact\nget_app_envs\n")
    assert "del app envs succeed\n=============================\ndeleted keys: default_ttl\n" \
           "=============================\n" in out
    assert "manual_compact.disabled          : true\n" in out      # were set ...
    assert "clear app envs succeed\n" in out
    assert out.endswith("[app_envs]\nbusiness.info : hello\n")    # ... and are cleared
    out = ok(stdin="use stat\nclear_app_envs --all\n")
    assert out == "OK\nclear app envs succeed\n"
    assert envs() == {}

    err = fails(2, stdin="use stat\nset_app_envs no_such_env 1\nset_app_envs a b c\n"
                         "set_app_envs lonely\nclear_app_envs\ndel_app_envs\n")
    assert 'set app envs failed with err = ERR_INVALID_PARAMETERS [hint:"app_env ' \
           "'no_such_env' is not supported\"]" in err
    assert "need to specify the value for key = c" in err and "--all and --prefix" in err
    assert err.count("USAGE: ") == 4
    assert "use <app_name>" in fails(1, "get_app_envs")               # no table chosen
    err = fails(1, "--table", "no_such_table", "get_app_envs")
    assert "ERR_OBJECT_NOT_FOUND" in err and "does not exist" in err
    assert envs() == {}


def _expected_health(layouts, dead):
    """Per table (fully, unhealthy, write unhealthy, read unhealthy) once ``dead`` is gone."""
    out = {}
    for name, replicas in layouts.items():
        counts = [0, 0, 0, 0]
        for r in replicas:
            members = {r["primary"], *r["secondaries"].strip("[]").split(",")} - {"", dead}
            want = int(r["replica_count"].split("/")[1])
            if not members:
                counts[1:] = [counts[1] + 1, counts[2] + 1, counts[3] + 1]
            elif len(members) >= want:
                counts[0] += 1
            else:
                counts[1] += 1
                counts[2] += len(members) < 2
        out[name] = tuple(counts)
    return out


def test_unhealthy_tables_after_a_node_dies_and_an_interrupted_wait(cluster):
    """Last: kills a replica server."""
    ok("create", "tbl_solo", "-p", "4", "-r", "1")
    names = [r["app_name"] for r in js("ls")["general_info"]]
    wait_for(lambda: js("ls", "-d")["summary"]["fully_healthy_app_count"] == len(names), 40,
             "every table fully healthy")
    docs = json_docs(ok(stdin="".join(f"app {n} -d -j\n" for n in names)))
    layouts = {d["general"]["app_name"]: d["replicas"] for d in docs}
    dead = layouts["tbl_solo"][0]["primary"]
    expected = _expected_health(layouts, dead)
    assert expected["tbl_solo"][3] >= 1 and expected["stat"] == (0, 4, 0, 0)

    cluster.run("stop_instance", "-r", str(int(dead.rsplit(":", 1)[1]) - REPLICA_BASE_PORT))

    def settled():
        doc = js("ls", "-d")
        got = {r["app_name"]: (r["fully_healthy"], r["unhealthy"], r["write_unhealthy"],
                               r["read_unhealthy"]) for r in doc["healthy_info"]}
        return doc if got == expected else None
    doc = wait_for(settled, 60, "the meta to see the node gone", interval=1.0)
    want = {"fully_healthy_app_count": sum(c[1] == 0 for c in expected.values()),
            "unhealthy_app_count": sum(c[1] > 0 for c in expected.values()),
            "write_unhealthy_app_count": sum(c[2] > 0 for c in expected.values()),
            "read_unhealthy_app_count": sum(c[3] > 0 for c in expected.values())}
    assert doc["summary"] == {"total_app_count": len(names), **want}
    assert want["read_unhealthy_app_count"] >= 1 and want["unhealthy_app_count"] >= 3
    solo = js("app", "tbl_solo", "-d")["healthy"]
    assert solo["read_unhealthy_partition_count"] == expected["tbl_solo"][3]

    # create of the same table is accepted and waits for partitions that cannot be served:
    # Ctrl-C stops the wait
    p = subprocess.Popen([sys.executable, "-m", "pegasus_shell", "--meta", META_TEXT, "create",
                          "tbl_solo", "-p", "4", "-r", "1"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert p.stdout.readline() == "create app tbl_solo succeed, waiting for app ready\n"
        line = p.stdout.readline()
        ready = 4 - expected["tbl_solo"][3]
        assert line == f"tbl_solo not ready yet, still waiting... ({ready}/4)\n"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130 and "create: interrupted" in err
    assert "is ready now" not in out
