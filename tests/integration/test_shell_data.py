"""pegasus_shell's data commands (shell.md §2.3: ops/data.py and ops/scan.py), one-shot against a
live onebox as a script would run them; effects are checked with our own table client.

Tables of the onebox: ``stat`` (4 partitions) and ``temp`` (8 partitions); every test uses its
own hash-key prefix so the tests do not see each other's records.
"""
import os
import re
import subprocess
import sys
import time

import pytest

from onebox import META_BASE_PORT  # tools/, on the path via conftest
from pegasus_server.rpc import thrift
from pegasus_server.rpc.client import RpcClient
from pegasus_server.rpc.table import TableClient
from pegasus_server.storage import keys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
META = f"127.0.0.1:{META_BASE_PORT + 1}"


def shell(*args, table="temp", input=None, config=None):
    cmd = [sys.executable, "-m", "pegasus_shell"]
    cmd += ["--table", table] if table else []
    cmd += [config, "src"] if config else ["--meta", META]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60,
                          input=input if input is not None else "", cwd=ROOT)


def ok(*args, **kw):
    out = shell(*args, **kw)
    assert out.returncode == 0, f"{args}: rc={out.returncode}\n{out.stdout}\n{out.stderr}"
    return out


def lines(text):
    return [ln for ln in text.splitlines() if ln]


def footer(text):
    return dict(re.findall(r"^(app_id|partition_index|decree|server)\s+: (\S+)$", text, re.M))


@pytest.fixture(scope="module")
def temp(cluster):
    t = TableClient(META, "temp", timeout=10)
    yield t
    t.close()


# --------------------------------------------------------------------------- single records


def test_set_get_del_exist_ttl(temp):
    out = ok("set", "sd_hk", "sk", "a\\x00b\\n", "1000")
    f = footer(out.stdout)
    assert lines(out.stdout)[0] == "OK"
    assert f["app_id"] == "2" and int(f["decree"]) > 0
    assert f["partition_index"] == str(keys.crc64(b"sd_hk") % 8)
    assert temp.get(b"sd_hk", b"sk") == (0, b"a\x00b\n")

    out = ok("get", "sd_hk", "sk")
    assert lines(out.stdout)[0] == '"a\\x00b\\n"'
    ttl = int(lines(ok("ttl", "sd_hk", "sk").stdout)[0])
    assert 990 <= ttl <= 1000
    out = ok("exist", "sd_hk", "sk")
    assert lines(out.stdout)[0] == "True"

    ok("set", "sd_hk", "forever", "v")
    assert lines(ok("ttl", "sd_hk", "forever").stdout)[0] == "Infinite"

    out = ok("del", "sd_hk", "sk")
    assert lines(out.stdout)[0] == "OK" and "decree" in footer(out.stdout)
    assert temp.get(b"sd_hk", b"sk")[0] == 1
    for cmd in ("get", "ttl"):
        out = shell(cmd, "sd_hk", "sk")
        assert out.returncode == 1 and lines(out.stdout)[0] == "Not found"
    out = shell("exist", "sd_hk", "sk")
    assert out.returncode == 1 and lines(out.stdout)[0] == "False"

    out = shell("set", "sd_hk", "sk", "v", "0")
    assert out.returncode == 2 and "invalid ttl" in out.stderr


def test_incr(temp):
    assert lines(ok("incr", "in_hk", "n").stdout)[0] == "1"
    assert lines(ok("incr", "in_hk", "n", "5").stdout)[0] == "6"
    assert lines(ok("incr", "in_hk", "n", "-10").stdout)[0] == "-4"
    assert temp.get(b"in_hk", b"n") == (0, b"-4")
    temp.set(b"in_hk", b"text", b"abc")
    out = shell("incr", "in_hk", "text")
    assert out.returncode == 1 and "kInvalidArgument" in out.stderr
    assert temp.get(b"in_hk", b"text") == (0, b"abc")
    assert shell("incr", "in_hk", "n", "x").returncode == 2


def test_hash(temp):
    expected = keys.crc64(b"hh")
    out = ok("hash", "hh", "sk", table=None)
    assert lines(out.stdout) == [f"key_hash : {expected}"]
    out = ok("hash", "hh", "sk")
    rows = dict(re.findall(r"^(\w+)\s+: (.*)$", out.stdout, re.M))
    pidx = expected % 8
    temp.refresh()
    pc = temp.partitions[pidx]
    assert rows["key_hash"] == str(expected) and rows["app_name"] == "temp"
    assert rows["app_id"] == "2" and rows["partition_count"] == "8"
    assert rows["partition_index"] == str(pidx)
    assert rows["primary"] == f"{pc.primary.host}:{pc.primary.port}"
    assert sorted(rows["secondaries"].split(",")) == \
        sorted(f"{s.host}:{s.port}" for s in pc.secondaries)
    # an empty hash key hashes its sort key
    out = ok("hash", "", "sk", table=None)
    assert lines(out.stdout) == [f"key_hash : {keys.crc64(b'sk')}"]


# --------------------------------------------------------------------------- one hash key


def test_multi_set_get_sortkeys_del_count(temp):
    out = ok("multi_set", "mh", "a", "1", "b", "2", "c", "3", "d", "4", "e\\xff", "5")
    assert lines(out.stdout)[0] == "OK"
    assert temp.get(b"mh", b"e\xff") == (0, b"5")
    assert shell("multi_set", "mh", "a", "1", "b").returncode == 2
    assert shell("multi_set", "mh", "a", "1", "a", "2").returncode == 2

    out = ok("multi_get", "mh")
    assert lines(out.stdout)[:6] == ['"mh" : "a" => "1"', '"mh" : "b" => "2"', '"mh" : "c" => "3"',
                                     '"mh" : "d" => "4"', '"mh" : "e\\xff" => "5"',
                                     "5 key-value pairs got, fetch completed."]
    out = ok("multi_get", "mh", "c", "a", "zz")
    assert lines(out.stdout)[:3] == ['"mh" : "a" => "1"', '"mh" : "c" => "3"',
                                     "2 key-value pairs got, fetch completed."]

    out = ok("multi_get_sortkeys", "mh")
    assert lines(out.stdout)[:6] == ['"a"', '"b"', '"c"', '"d"', '"e\\xff"',
                                     "5 sort keys got, fetch completed."]
    assert lines(ok("count", "mh").stdout)[0] == "5"

    out = ok("multi_del", "mh", "a", "b", "nothing")
    assert lines(out.stdout)[0] == "3 key-value pairs deleted." and "decree" in out.stdout
    assert temp.get(b"mh", b"a")[0] == 1 and temp.get(b"mh", b"c") == (0, b"3")
    assert lines(ok("count", "mh").stdout)[0] == "3"
    assert shell("count", "").returncode == 2


def test_multi_get_range(temp):
    ok("multi_set", "mr", "a1", "x", "a2", "y", "b1", "z", "b2", "w", "c1", "v")

    def got(*args):
        out = ok("multi_get_range", "mr", *args)
        return [ln for ln in lines(out.stdout) if ln.startswith('"')], \
            next(ln for ln in lines(out.stdout) if "pairs got" in ln), out

    recs, summary, out = got("a2", "b2")
    assert recs == ['"mr" : "a2" => "y"', '"mr" : "b1" => "z"']
    assert summary == "2 key-value pairs got, fetch completed."
    assert 'start_sort_key: "a2"' in out.stderr and "stop_inclusive: false" in out.stderr
    recs, _, _ = got("a2", "b2", "-a", "false", "-b", "true")
    assert recs == ['"mr" : "b1" => "z"', '"mr" : "b2" => "w"']
    recs, _, _ = got("", "", "-s", "prefix", "-y", "b")
    assert recs == ['"mr" : "b1" => "z"', '"mr" : "b2" => "w"']
    recs, _, _ = got("", "", "--sort_key_filter_type", "postfix", "-y", "1", "-i")
    assert recs == ['"mr" : "a1"', '"mr" : "b1"', '"mr" : "c1"']
    recs, summary, _ = got("", "", "-n", "2", "-r")
    assert recs == ['"mr" : "b2" => "w"', '"mr" : "c1" => "v"']
    assert summary == "2 key-value pairs got, fetch not completed."
    assert shell("multi_get_range", "mr", "a", "b", "-a", "maybe").returncode == 2
    assert shell("multi_get_range", "mr", "a", "b", "-s", "exact").returncode == 2


# --------------------------------------------------------------------------- check and write


def test_check_and_set(temp):
    out = ok("check_and_set", "cs", "-c", "k", "-t", "not_exist", "-s", "k", "-v", "v1", "-r")
    assert lines(out.stdout)[:2] == ["Set succeed.", "Check value not exist."]
    assert temp.get(b"cs", b"k") == (0, b"v1")
    out = shell("check_and_set", "cs", "-c", "k", "-t", "not_exist", "-s", "k", "-v", "v2", "-r")
    assert out.returncode == 1
    assert lines(out.stdout)[:2] == ["Set failed, because check not passed.", 'Check value: "v1"']
    assert temp.get(b"cs", b"k") == (0, b"v1")

    # another sort key, a TTL, a byte comparison
    ok("check_and_set", "cs", "-c", "k", "-t", "bytes_equal", "-o", "v1", "-s", "other",
       "-v", "new", "-l", "500")
    assert temp.get(b"cs", b"other") == (0, b"new")
    assert 490 <= int(lines(ok("ttl", "cs", "other").stdout)[0]) <= 500

    temp.set(b"cs", b"num", b"10")
    out = ok("check_and_set", "cs", "-c", "num", "-t", "int_greater", "-o", "5", "-s", "num",
             "-v", "20")
    assert lines(out.stdout)[0] == "Set succeed." and temp.get(b"cs", b"num") == (0, b"20")
    out = shell("check_and_set", "cs", "-c", "k", "-t", "int_less", "-o", "5", "-s", "k",
                "-v", "x")
    assert out.returncode == 1 and "kInvalidArgument" in out.stderr

    for missing, why in ((("-c", "k"), "check_type"),
                         (("-c", "k", "-t", "match_prefix"), "check_operand"),
                         (("-c", "k", "-t", "exist", "-s", "k"), "set_value")):
        out = shell("check_and_set", "cs", *missing)
        assert out.returncode == 2 and f"{why} not provided" in out.stderr
    assert shell("check_and_set", "cs", "-c", "k", "-t", "bogus").returncode == 2


def test_check_and_mutate(temp):
    temp.set(b"cm", b"guard", b"on")
    out = ok("check_and_mutate", "cm", "-c", "guard", "-t", "match_anywhere", "-o", "n",
             "-m", "put a 'one two'", "-m", "set b 2 300", "--mutation", "del guard", "-r")
    assert lines(out.stdout)[:2] == ["Mutate succeed.", 'Check value: "on"']
    assert "mutation[2].type: DEL" in out.stderr
    assert temp.get(b"cm", b"a") == (0, b"one two") and temp.get(b"cm", b"b") == (0, b"2")
    assert temp.get(b"cm", b"guard")[0] == 1
    assert 290 <= int(lines(ok("ttl", "cm", "b").stdout)[0]) <= 300

    # the check fails: nothing is written
    out = shell("check_and_mutate", "cm", "-c", "a", "-t", "not_exist", "-m", "del a")
    assert out.returncode == 1
    assert lines(out.stdout)[0] == "Mutate failed, because check not passed."
    assert temp.get(b"cm", b"a") == (0, b"one two")

    # upstream's interactive loading, from standard input (one-shot and inside a session)
    out = ok("check_and_mutate", "cm", "-c", "x", "-t", "not_exist",
             input="set c 3\nnonsense\ndel a\nok\n")
    assert "LOAD: set sortkey \"c\"" in out.stderr and "invalid mutation" in out.stderr
    assert temp.get(b"cm", b"c") == (0, b"3") and temp.get(b"cm", b"a")[0] == 1
    out = ok(input="use temp\ncheck_and_mutate cm -c x -t not_exist\nput d 4\nok\nget cm d\n")
    assert '"4"' in lines(out.stdout)
    out = shell("check_and_mutate", "cm", "-c", "x", "-t", "not_exist", input="put e 5\nabort\n")
    assert out.returncode == 1 and "abort" in out.stderr and temp.get(b"cm", b"e")[0] == 1
    out = shell("check_and_mutate", "cm", "-c", "x", "-t", "not_exist", input="put e 5\n")
    assert out.returncode == 1 and "ended" in out.stderr and temp.get(b"cm", b"e")[0] == 1

    assert shell("check_and_mutate", "cm", "-c", "x", "-t", "exist", "-m", "put a").returncode == 2
    assert shell("check_and_mutate", "cm", "-c", "x", "-t", "exist", "-m", "drop a").returncode == 2


# --------------------------------------------------------------------------- scans


def test_hash_scan(temp, tmp_path):
    ok("multi_set", "hs", "k1", "apple", "k2", "banana", "k3", "cherry", "x1", "date", "k4", "")

    def recs(out):
        return [ln for ln in lines(out.stdout) if ln.startswith('"')]

    out = ok("hash_scan", "hs", "", "")
    assert recs(out) == ['"hs" : "k1" => "apple"', '"hs" : "k2" => "banana"',
                         '"hs" : "k3" => "cherry"', '"hs" : "k4" => ""', '"hs" : "x1" => "date"']
    assert lines(out.stdout)[-1] == "5 key-value pairs got."
    out = ok("hash_scan", "hs", "k2", "k4", "-b", "true", "-i")
    assert recs(out) == ['"hs" : "k2"', '"hs" : "k3"', '"hs" : "k4"']
    out = ok("hash_scan", "hs", "", "", "-s", "prefix", "-y", "k", "-v", "anywhere", "-z", "an",
             "-d")
    assert len(recs(out)) == 1 and recs(out)[0].startswith('"hs" : "k2" => "banana" {app_id=2,')
    out = ok("hash_scan", "hs", "", "", "-v", "exact", "-z", "date")
    assert recs(out) == ['"hs" : "x1" => "date"']
    out = ok("hash_scan", "hs", "k1", "", "-a", "false", "-n", "2", "-t", "3000")
    assert recs(out) == ['"hs" : "k2" => "banana"', '"hs" : "k3" => "cherry"']
    assert "timeout_ms: 3000" in out.stderr
    path = tmp_path / "hs.txt"
    out = ok("hash_scan", "hs", "", "", "-o", str(path))
    assert recs(out) == [] and lines(out.stdout) == ["5 key-value pairs got."]
    assert path.read_text().splitlines()[0] == '"hs" : "k1" => "apple"'
    assert shell("hash_scan", "hs", "", "", "-i", "-v", "prefix").returncode == 2


def test_full_scan(temp, tmp_path):
    for i in range(20):
        temp.set(b"fs%02d" % i, b"s", b"v%d" % i)
    temp.set(b"fs00", b"sk_long", b"long")

    def recs(*args):
        out = ok("full_scan", "-h", "prefix", "-x", "fs", *args)
        return [ln for ln in lines(out.stdout) if ln.startswith('"')], out

    got, out = recs()
    assert len(got) == 21 and '"fs07" : "s" => "v7"' in got
    assert lines(out.stdout)[-1] == "21 key-value pairs got."
    # one partition: exactly the keys that hash there
    got, _ = recs("-p", "3")
    expected = {b"fs%02d" % i for i in range(20) if keys.crc64(b"fs%02d" % i) % 8 == 3}
    assert {ln.split('"')[1].encode() for ln in got} == expected
    got, _ = recs("-s", "exact", "-y", "s")
    assert len(got) == 20 and not any("sk_long" in g for g in got)
    got, _ = recs("-v", "postfix", "-z", "7")
    assert sorted(got) == ['"fs07" : "s" => "v7"', '"fs17" : "s" => "v17"']
    got, _ = recs("-n", "4", "-i", "-d")
    assert len(got) == 4 and all("=>" not in g and "{app_id=2" in g for g in got)
    path = tmp_path / "fs.txt"
    got, out = recs("-o", str(path))
    assert got == [] and len(path.read_text().splitlines()) == 21
    out = shell("full_scan", "-p", "8")
    assert out.returncode == 1 and "out of range" in out.stderr


def test_multi_del_range(temp, tmp_path):
    ok("multi_set", "dr", *[w for i in range(10) for w in (f"s{i}", f"v{i}")])
    out = ok("multi_del_range", "dr", "s2", "s5")
    assert [ln for ln in lines(out.stdout) if ln.startswith("Deleted")] == \
        ['Deleted: "s2"', 'Deleted: "s3"', 'Deleted: "s4"']
    assert lines(out.stdout)[-1] == "OK, 3 sort keys deleted."
    left = [kv.key for kv in
            temp._single("RPC_RRDB_RRDB_MULTI_GET", b"dr", b"", thrift.rrdb.multi_get_request(
                hash_key=b"dr", sort_keys=[], max_kv_count=-1, max_kv_size=-1, no_value=True,
                start_sortkey=b"", stop_sortkey=b"", start_inclusive=True,
                stop_inclusive=False, sort_key_filter_type=0, sort_key_filter_pattern=b"",
                reverse=False)).kvs]
    assert left == [b"s0", b"s1", b"s5", b"s6", b"s7", b"s8", b"s9"]
    out = ok("multi_del_range", "dr", "", "", "-s", "postfix", "-y", "9", "-i")
    assert lines(out.stdout) == ["OK, 1 sort keys deleted."]
    path = tmp_path / "del.txt"
    out = ok("multi_del_range", "dr", "s5", "s8", "-b", "true", "-o", str(path))
    assert path.read_text().splitlines() == ['Deleted: "s5"', 'Deleted: "s6"', 'Deleted: "s7"',
                                             'Deleted: "s8"']
    assert temp.get(b"dr", b"s1")[0] == 0 and temp.get(b"dr", b"s6")[0] == 1


def test_count_data(cluster):
    stat = TableClient(META, "stat", timeout=10)
    for i in range(30):
        stat.set(b"cd%02d" % (i % 10), b"s%d" % i, b"x" * i)
    stat.set(b"other", b"s", b"v")
    out = ok("count_data", table="stat")
    rows = [ln.split() for ln in lines(out.stdout)[2:]]
    assert [r[0] for r in rows] == ["0", "1", "2", "3", "(total:4)"]
    assert int(rows[-1][1]) == sum(int(r[1]) for r in rows[:-1]) >= 31

    out = ok("count_data", "-c", table="stat")
    assert lines(out.stdout)[-1] == "Count done, total 31 rows."
    assert len([ln for ln in lines(out.stdout) if ln.startswith("INFO: split[")]) == 4
    out = ok("count_data", "-c", "-h", "prefix", "-x", "cd", "-d", table="stat")
    assert lines(out.stdout)[-1] == "Count done, total 30 rows. (10 hash keys)"
    out = ok("count_data", "-c", "-p", "0", "-v", "prefix", "-z", "xxxxxxxxxxxxxxxxxxxxxxxxxxx",
             table="stat")
    p0 = [i for i in range(30) if keys.crc64(b"cd%02d" % (i % 10)) % 4 == 0 and i >= 27]
    assert lines(out.stdout)[-1] == f"Count done, total {len(p0)} rows."
    out = ok("count_data", "-c", "-a", "-n", "2", "-s", "exact", "-y", "s29", table="stat")
    assert "Count done, total 1 rows." in out.stdout
    stat_rows = {ln.split()[0]: ln.split() for ln in lines(out.stdout)
                 if ln.split()[0].endswith("_size")}
    assert stat_rows["value_size"][1:4] == ["1", "29", "29"]
    assert '[top][1].sort_key = "s29"' in out.stdout and "[top][1].row_size = 36" in out.stdout
    out = shell("count_data", "-d", table="stat")
    assert out.returncode == 2 and "-c|--precise" in out.stderr
    assert shell("count_data", "-c", "-b", "1", table="stat").returncode == 2
    stat.close()


def create_table(name, partitions=4):
    client = RpcClient()
    ma = thrift.meta_admin
    addr = ("127.0.0.1", META_BASE_PORT + 1)
    resp = client.call(addr, "RPC_CM_CREATE_APP", ma.configuration_create_app_request(
        app_name=name, options=ma.create_app_options(
            partition_count=partitions, replica_count=3, success_if_exist=True,
            app_type="pegasus", is_stateful=True, envs={})), timeout=10)
    assert resp.err == "ERR_OK", resp
    deadline = time.time() + 60
    while time.time() < deadline:
        q = client.call(addr, "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX",
                        thrift.layer2.query_cfg_request(app_name=name, partition_indices=[]))
        if q.err == "ERR_OK" and len(q.partitions) == partitions and \
                all(not p.primary.is_invalid for p in q.partitions):
            client.close()
            return
        time.sleep(0.2)
    pytest.fail(f"table {name} has no primary for every partition")


def test_copy_data(temp, tmp_path):
    create_table("copy_target")
    config = tmp_path / "config.ini"
    config.write_text(f"[pegasus.clusters]\nsrc = {META}\ndst = {META}\n")
    target = TableClient(META, "copy_target", timeout=10)
    for i in range(40):
        temp.set(b"cp%02d" % (i % 8), b"s%02d" % i, b"val%d" % i)
    temp.set(b"cp_ttl", b"s", b"short", 600)
    target.set(b"cp00", b"s00", b"keep-me")

    out = ok("copy_data", "-c", "dst", "-a", "copy_target", "-h", "prefix", "-x", "cp",
             "-n", config=str(config))
    assert lines(out.stdout)[-1] == "Copy done, total 40 rows."        # 41 minus the kept one
    assert target.get(b"cp00", b"s00") == (0, b"keep-me")
    assert target.get(b"cp03", b"s11") == (0, b"val11")
    ttl = target._single("RPC_RRDB_RRDB_TTL", b"cp_ttl", b"s", keys.encode_key(b"cp_ttl", b"s"))
    assert 0 < ttl.ttl_seconds <= 600

    out = ok("copy_data", "-c", "dst", "-a", "copy_target", "-h", "prefix", "-x", "cp",
             "-s", "exact", "-y", "s00", "-e", config=str(config))
    assert lines(out.stdout)[-1] == "Copy done, total 1 rows."
    assert target.get(b"cp00", b"s00") == (0, b"val0")

    out = ok("copy_data", "-c", "dst", "-a", "copy_target", "-h", "prefix", "-x", "cp_ttl",
             "-u", "-e", "-i", "-b", "10", "-m", "2", "-o", "5", config=str(config))
    assert lines(out.stdout)[-1] == "Copy done, total 1 rows."
    assert target.get(b"cp_ttl", b"s") == (0, b"")
    ttl = target._single("RPC_RRDB_RRDB_TTL", b"cp_ttl", b"s", keys.encode_key(b"cp_ttl", b"s"))
    assert ttl.ttl_seconds == -1

    for args, rc, why in ((("-a", "copy_target"), 2, "target_cluster_name"),
                          (("-c", "dst"), 2, "target_app_name"),
                          (("-c", "nowhere", "-a", "copy_target"), 1, "not in [pegasus.clusters]"),
                          (("-c", "dst", "-a", "temp"), 1, "is the same"),
                          (("-c", "dst", "-a", "copy_target", "-g"), 1, "not supported"),
                          (("-c", "dst", "-a", "copy_target", "-u", "-n"), 2, "no_overwrite"),
                          (("-c", "dst", "-a", "no_such_table"), 1, "ERR_OBJECT_NOT_FOUND")):
        out = shell("copy_data", *args, config=str(config))
        assert out.returncode == rc and why in out.stderr, (args, out.stderr)
    target.close()


def test_clear_data(temp):
    for i in range(12):
        temp.set(b"cl%02d" % i, b"a" if i % 2 else b"b", b"v%d" % i)
    out = shell("clear_data", "-h", "prefix", "-x", "cl")
    assert out.returncode == 2 and "--force" in out.stderr
    assert temp.get(b"cl01", b"a") == (0, b"v1")
    out = ok("clear_data", "-f", "-h", "prefix", "-x", "cl", "-s", "exact", "-y", "a",
             "-b", "4")
    assert lines(out.stdout)[-1] == "Clear done, total 6 rows."
    assert temp.get(b"cl01", b"a")[0] == 1 and temp.get(b"cl02", b"b") == (0, b"v2")
    out = ok("clear_data", "-f", "-h", "prefix", "-x", "cl", "-v", "exact", "-z", "v4")
    assert lines(out.stdout)[-1] == "Clear done, total 1 rows."
    assert temp.get(b"cl04", b"b")[0] == 1 and temp.get(b"cl06", b"b") == (0, b"v6")


def test_errors(cluster):
    out = shell("get", "a", "b", table=None)
    assert out.returncode == 1 and "no table selected" in out.stderr
    out = shell("get", "a", "b", table="no_such_table")
    assert out.returncode == 1 and "ERR_OBJECT_NOT_FOUND" in out.stderr
    out = shell("full_scan", table="no_such_table")
    assert out.returncode == 1 and "ERR_OBJECT_NOT_FOUND" in out.stderr
    assert shell("get", "a").returncode == 2
    assert shell("get", "a", "b\\q").returncode == 2


# --------------------------------------------------------------------------- scanner protocol


class _Addr:
    host, port, is_invalid = "fake", 1, False


class _FakeTable:
    """Plays a replica's scanner: two records per batch; ``expire`` makes the first SCAN
    answer status 1 (context expired)."""

    def __init__(self, n, expire=False):
        self.data = [keys.encode_key(b"h", b"s%02d" % i) for i in range(n)]
        self.expire, self.calls, self.cleared = expire, [], []
        self.partitions, self.app_id = [type("P", (), {"primary": _Addr()})()], 1
        self.client = self
        self.pos = {}

    def batch(self, start, inclusive):
        rest = [k for k in self.data if k > start or (inclusive and k == start)]
        ctx = len(self.pos) + 7 if len(rest) > 2 else -1
        if ctx >= 0:
            self.pos[ctx] = rest[1]
        return thrift.rrdb.scan_response(error=0, context_id=ctx, app_id=1, partition_index=0,
                                         server="fake", kvs=[thrift.rrdb.key_value(key=k, value=b"")
                                                             for k in rest[:2]])

    def call_partition(self, pidx, name, arg, phash):
        self.calls.append(name)
        if name.endswith("GET_SCANNER"):
            return self.batch(arg.start_key, arg.start_inclusive)
        if self.expire:
            self.expire = False
            return thrift.rrdb.scan_response(error=1, context_id=-1, kvs=[])
        return self.batch(self.pos.pop(arg.context_id), False)

    def call(self, addr, name, arg, **kw):
        self.cleared.append(arg)


def test_scanner_closes_and_reopens():
    from pegasus_shell.ops import scan
    req = lambda: thrift.rrdb.get_scanner_request(start_key=b"", start_inclusive=True,  # noqa
                                                  only_return_count=False)
    t = _FakeTable(7)
    got = [kv.key for r in scan.scan_partition(t, 0, 0, req()) for kv in r.kvs]
    assert got == t.data and t.cleared == []
    # stopping early drops the live context
    t = _FakeTable(7)
    gen = scan.scan_partition(t, 0, 0, req())
    next(gen)
    gen.close()
    assert t.cleared == [7]
    # an expired context is reopened after the last key received, nothing lost or repeated
    t = _FakeTable(7, expire=True)
    got = [kv.key for r in scan.scan_partition(t, 0, 0, req()) for kv in r.kvs]
    assert got == t.data
    assert t.calls[:3] == ["RPC_RRDB_RRDB_GET_SCANNER", "RPC_RRDB_RRDB_SCAN",
                           "RPC_RRDB_RRDB_GET_SCANNER"]
