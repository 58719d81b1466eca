"""Semantic tests of every rrdb storage operation (data-operations.md §3-§8), run over both
engines through the ``StorageApp`` facade, with injected clocks."""
import random

import pytest

from pegasus_server.rpc import thrift
from pegasus_server.storage import keys, rules, values
from pegasus_server.storage.app import StorageApp, StorageError
from pegasus_server.storage.engine import CF_META
from pegasus_server.storage.rules import StorageOptions

rrdb = thrift.rrdb
ek = keys.encode_key

START_UNIX = values.EPOCH_BEGIN + 100_000_000  # epoch "now" = 100000000


class Clock:
    def __init__(self):
        self.unix = float(START_UNIX)
        self.mono = 1000.0
        self.mono_step = 0.0  # added to the monotonic timer on every read (time-budget tests)

    def now_epoch(self):
        return int(self.unix) - values.EPOCH_BEGIN

    def clock(self):
        return self.unix

    def timer(self):
        self.mono += self.mono_step
        return self.mono

    def advance(self, seconds):
        self.unix += seconds
        self.mono += seconds


class Harness:
    def __init__(self, app, clk):
        self.app = app
        self.clk = clk
        self.decree = app.last_committed_decree

    # writes
    def w(self, rpc, req):
        self.decree += 1
        return self.app.write(self.decree, int(self.clk.unix * 1e6), rpc, req)

    def put(self, hk, sk, v, ets=0):
        return self.w("RPC_RRDB_RRDB_PUT", rrdb.update_request(key=ek(hk, sk), value=v,
                                                               expire_ts_seconds=ets))

    def remove(self, hk, sk):
        return self.w("RPC_RRDB_RRDB_REMOVE", ek(hk, sk))

    def multi_put(self, hk, kvs, ets=0):
        return self.w("RPC_RRDB_RRDB_MULTI_PUT", rrdb.multi_put_request(
            hash_key=hk, kvs=[rrdb.key_value(key=k, value=v) for k, v in kvs],
            expire_ts_seconds=ets))

    def multi_remove(self, hk, sks):
        return self.w("RPC_RRDB_RRDB_MULTI_REMOVE",
                      rrdb.multi_remove_request(hash_key=hk, sort_keys=sks, max_count=100))

    def incr(self, hk, sk, inc, ets=0):
        return self.w("RPC_RRDB_RRDB_INCR", rrdb.incr_request(key=ek(hk, sk), increment=inc,
                                                              expire_ts_seconds=ets))

    def cas(self, hk, sk, ct, operand=b"", value=b"new", ret=False, diff_sk=None, ets=0):
        return self.w("RPC_RRDB_RRDB_CHECK_AND_SET", rrdb.check_and_set_request(
            hash_key=hk, check_sort_key=sk, check_type=ct, check_operand=operand,
            set_diff_sort_key=diff_sk is not None, set_sort_key=diff_sk, set_value=value,
            set_expire_ts_seconds=ets, return_check_value=ret))

    def cam(self, hk, sk, ct, operand, muts, ret=False):
        ml = [rrdb.mutate(operation=op, sort_key=s, value=v, set_expire_ts_seconds=e)
              for op, s, v, e in muts]
        return self.w("RPC_RRDB_RRDB_CHECK_AND_MUTATE", rrdb.check_and_mutate_request(
            hash_key=hk, check_sort_key=sk, check_type=ct, check_operand=operand,
            mutate_list=ml, return_check_value=ret))

    # reads
    def get(self, hk, sk):
        return self.app.read("RPC_RRDB_RRDB_GET", ek(hk, sk))

    def val(self, hk, sk):
        r = self.get(hk, sk)
        return r.value if r.error == 0 else None

    def ttl(self, hk, sk):
        return self.app.read("RPC_RRDB_RRDB_TTL", ek(hk, sk))

    def multi_get(self, hk, sort_keys=None, **kw):
        req = rrdb.multi_get_request(hash_key=hk, sort_keys=sort_keys, **kw)
        return self.app.read("RPC_RRDB_RRDB_MULTI_GET", req)

    def count(self, hk):
        return self.app.read("RPC_RRDB_RRDB_SORTKEY_COUNT", hk)

    def get_scanner(self, **kw):
        kw.setdefault("start_key", b"\x00\x00")
        kw.setdefault("stop_key", b"\xff\xff")
        kw.setdefault("start_inclusive", True)
        kw.setdefault("stop_inclusive", False)
        return self.app.read("RPC_RRDB_RRDB_GET_SCANNER", rrdb.get_scanner_request(**kw))

    def scan(self, cid):
        return self.app.read("RPC_RRDB_RRDB_SCAN", rrdb.scan_request(context_id=cid))

    def scan_all(self, **kw):
        """Drive a scanner to the end; returns (keys, batch count, list of context ids)."""
        r = self.get_scanner(**kw)
        out, ids, batches = [], [], 0
        while True:
            assert r.error == 0, r
            batches += 1
            out.extend(kv.key for kv in r.kvs)
            if r.context_id < 0:
                assert r.context_id == -1
                return out, batches, ids
            ids.append(r.context_id)
            r = self.scan(r.context_id)


@pytest.fixture(params=["memory", "rocksdb"])
def kind(request):
    return request.param


@pytest.fixture
def clk():
    return Clock()


def make(kind, tmp_path, clk, **kw):
    app = StorageApp.open(str(tmp_path / "replica"), (3, 1), kind, clock=clk.clock,
                          timer=clk.timer, server="127.0.0.1:34801", **kw)
    return Harness(app, clk)


@pytest.fixture
def h(kind, tmp_path, clk):
    hh = make(kind, tmp_path, clk)
    yield hh
    hh.app.close()


def sks(resp):
    return [kv.key for kv in resp.kvs]


# =============================================================== get / put / remove / ttl


def test_put_get_remove(h):
    r = h.put(b"hk", b"sk", b"v1")
    assert (r.error, r.decree, r.app_id, r.partition_index, r.server) == (
        0, 1, 3, 1, "127.0.0.1:34801")
    assert h.val(b"hk", b"sk") == b"v1"
    g = h.get(b"hk", b"nope")
    assert (g.error, g.value) == (1, b"")
    assert h.put(b"hk", b"sk", b"").error == 0
    g = h.get(b"hk", b"sk")
    assert (g.error, g.value) == (0, b"")  # an empty value exists
    r = h.remove(b"hk", b"sk")
    assert (r.error, r.decree) == (0, 3)
    assert h.get(b"hk", b"sk").error == 1
    assert h.remove(b"hk", b"sk").error == 0  # removing a missing key succeeds
    assert h.app.last_committed_decree == 4


def test_empty_hash_key_and_empty_sort_key(h):
    h.put(b"", b"sk", b"a")
    h.put(b"hk", b"", b"b")
    assert h.val(b"", b"sk") == b"a"
    assert h.val(b"hk", b"") == b"b"


@pytest.mark.parametrize("bad", [b"", b"\x00", b"\x00\x05ab", b"\xff\xffxyz"])
def test_malformed_storage_keys_give_status_4(h, bad):
    assert h.app.read("RPC_RRDB_RRDB_GET", bad).error == 4
    assert h.app.read("RPC_RRDB_RRDB_TTL", bad).error == 4
    d = h.app.last_committed_decree
    r = h.w("RPC_RRDB_RRDB_PUT", rrdb.update_request(key=bad, value=b"x", expire_ts_seconds=0))
    assert r.error == 4 and r.decree == d + 1
    assert h.w("RPC_RRDB_RRDB_REMOVE", bad).error == 4
    r = h.w("RPC_RRDB_RRDB_INCR", rrdb.incr_request(key=bad, increment=1, expire_ts_seconds=0))
    assert (r.error, r.new_value) == (4, 0)
    assert h.app.last_committed_decree == d + 3


def test_ttl_and_expiry(h, clk):
    now = clk.now_epoch()
    h.put(b"h", b"forever", b"x")
    h.put(b"h", b"short", b"y", ets=now + 100)
    t = h.ttl(b"h", b"forever")
    assert (t.error, t.ttl_seconds) == (0, -1)
    assert h.ttl(b"h", b"short").ttl_seconds == 100
    clk.advance(40)
    assert h.ttl(b"h", b"short").ttl_seconds == 60
    clk.advance(59)
    assert h.ttl(b"h", b"short").ttl_seconds == 1
    assert h.val(b"h", b"short") == b"y"
    clk.advance(1)  # expire_ts == now counts as expired
    t = h.ttl(b"h", b"short")
    assert (t.error, t.ttl_seconds) == (1, 0)
    assert h.get(b"h", b"short").error == 1
    t = h.ttl(b"h", b"missing")
    assert (t.error, t.ttl_seconds) == (1, 0)


def test_past_expiry_is_born_expired(h, clk):
    h.put(b"h", b"s", b"v", ets=clk.now_epoch() - 5)  # what the Node.js client's raw TTL does
    assert h.get(b"h", b"s").error == 1


def test_negative_expire_is_stored_unsigned(h):
    h.put(b"h", b"s", b"v", ets=-5)
    t = h.ttl(b"h", b"s")
    assert t.error == 0 and t.ttl_seconds > 10**9  # huge remaining time, never expires
    assert h.val(b"h", b"s") == b"v"


def test_default_ttl_env(h, clk):
    h.put(b"h", b"old", b"v")
    h.app.set_envs({"default_ttl": "500"})
    h.put(b"h", b"new", b"v")
    h.put(b"h", b"explicit", b"v", ets=clk.now_epoch() + 10)
    assert h.ttl(b"h", b"new").ttl_seconds == 500
    assert h.ttl(b"h", b"explicit").ttl_seconds == 10
    assert h.ttl(b"h", b"old").ttl_seconds == -1  # until the sweep (compaction) reaches it
    h.app.remove_expired()
    assert h.ttl(b"h", b"old").ttl_seconds == 500
    h.app.set_envs({})  # env removed
    h.put(b"h", b"later", b"v")
    assert h.ttl(b"h", b"later").ttl_seconds == -1


def test_invalid_env_values_are_ignored(h):
    h.app.set_envs({"default_ttl": "100"})
    h.app.set_envs({"default_ttl": "abc"})
    h.put(b"h", b"s", b"v")
    assert h.ttl(b"h", b"s").ttl_seconds == 100


# =============================================================== multi_put / multi_remove


def test_multi_put(h, clk):
    r = h.multi_put(b"hk", [(b"a", b"1"), (b"b", b"2"), (b"a", b"3")], ets=clk.now_epoch() + 50)
    assert (r.error, r.decree) == (0, 1)
    assert h.val(b"hk", b"a") == b"3"  # a repeated sort key: the later entry wins
    assert h.val(b"hk", b"b") == b"2"
    assert h.ttl(b"hk", b"b").ttl_seconds == 50


def test_multi_put_empty_is_invalid_but_consumes_decree(h):
    r = h.multi_put(b"hk", [])
    assert (r.error, r.decree) == (4, 1)
    assert h.app.last_committed_decree == 1
    assert h.count(b"hk").count == 0
    assert h.scan_all()[0] == []  # the empty record is never visible
    assert h.app.engine.get(b"") is not None  # ...but it is there (§4.3)


def test_multi_remove_quirks(h):
    h.multi_put(b"hk", [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")])
    r = h.multi_remove(b"hk", [b"a", b"zz", b"yy"])
    assert (r.error, r.count) == (0, 3)  # Q4: count = len(sort_keys)
    assert h.val(b"hk", b"a") is None and h.val(b"hk", b"b") == b"2"
    r = h.multi_remove(b"hk", [])
    assert (r.error, r.count) == (4, 0)  # Q5
    assert h.val(b"hk", b"b") == b"2"


def test_long_hash_key_is_status_4(h):
    big = b"x" * 65535
    assert h.multi_put(big, [(b"a", b"1")]).error == 4
    assert h.multi_remove(big, [b"a"]).error == 4
    assert h.multi_get(big).error == 4
    assert h.count(big).error == 4
    assert h.cas(big, b"s", 0).error == 4
    assert h.cam(big, b"s", 0, b"", [(0, b"a", b"v", 0)]).error == 4
    bg = h.app.read("RPC_RRDB_RRDB_BATCH_GET",
                    rrdb.batch_get_request(keys=[rrdb.full_key(hash_key=big, sort_key=b"")]))
    assert bg.error == 4
    ok = b"x" * 65534
    assert h.multi_put(ok, [(b"a", b"1")]).error == 0
    assert h.count(ok).count == 1


# =============================================================== multi_get


@pytest.fixture
def mg(h):
    h.multi_put(b"hk", [(b"", b"e"), (b"a", b"1"), (b"ab", b"2"), (b"abc", b"3"),
                        (b"b", b"4"), (b"ba", b"5"), (b"c", b"6")])
    h.multi_put(b"hl", [(b"a", b"other-hash-key")])
    h.multi_put(b"h", [(b"z", b"shorter-hash-key")])
    return h


ALL = [b"", b"a", b"ab", b"abc", b"b", b"ba", b"c"]


def test_multi_get_point_mode(mg, clk):
    r = mg.multi_get(b"hk", [b"c", b"missing", b"a", b"a"])
    assert r.error == 0
    assert [(kv.key, kv.value) for kv in r.kvs] == [(b"c", b"6"), (b"a", b"1"), (b"a", b"1")]
    r = mg.multi_get(b"hk", [b"a", b"b"], no_value=True)
    assert [(kv.key, kv.value) for kv in r.kvs] == [(b"a", b""), (b"b", b"")]
    # filters / bounds / reverse are ignored in point mode
    r = mg.multi_get(b"hk", [b"a", b"b"], sort_key_filter_type=2, sort_key_filter_pattern=b"z",
                     start_sortkey=b"x", reverse=True)
    assert sks(r) == [b"a", b"b"]


def test_multi_get_point_mode_limits(mg):
    r = mg.multi_get(b"hk", [b"a", b"b", b"c"], max_kv_count=2)
    assert (r.error, sks(r)) == (7, [b"a", b"b"])
    r = mg.multi_get(b"hk", [b"a", b"nope", b"b"], max_kv_count=2)
    assert (r.error, sks(r)) == (0, [b"a", b"b"])  # every found key fit
    r = mg.multi_get(b"hk", [b"ab", b"abc", b"c"], max_kv_size=4)  # "ab2"=3, then 3+4 >= 4
    assert (r.error, sks(r)) == (7, [b"ab", b"abc"])


def test_multi_get_point_mode_skips_expired(mg, clk):
    mg.put(b"hk", b"t", b"v", ets=clk.now_epoch() + 1)
    assert sks(mg.multi_get(b"hk", [b"t"])) == [b"t"]
    clk.advance(1)
    r = mg.multi_get(b"hk", [b"t", b"a"])
    assert (r.error, sks(r)) == (0, [b"a"])


def test_multi_get_range_whole_hash_key(mg):
    r = mg.multi_get(b"hk", [], start_inclusive=True)
    assert (r.error, sks(r)) == (0, ALL)
    assert [kv.value for kv in r.kvs][:2] == [b"e", b"1"]
    assert all(kv.expire_ts_seconds is None for kv in r.kvs)
    # absent start_inclusive (P/N) excludes the empty sort key
    assert sks(mg.multi_get(b"hk")) == ALL[1:]


@pytest.mark.parametrize("si,ti,expect", [
    (True, False, [b"ab", b"abc", b"b"]),
    (True, True, [b"ab", b"abc", b"b", b"ba"]),
    (False, False, [b"abc", b"b"]),
    (False, True, [b"abc", b"b", b"ba"]),
])
def test_multi_get_range_inclusivity(mg, si, ti, expect):
    r = mg.multi_get(b"hk", start_sortkey=b"ab", stop_sortkey=b"ba", start_inclusive=si,
                     stop_inclusive=ti)
    assert (r.error, sks(r)) == (0, expect)
    r = mg.multi_get(b"hk", start_sortkey=b"ab", stop_sortkey=b"ba", start_inclusive=si,
                     stop_inclusive=ti, reverse=True)
    assert (r.error, sks(r)) == (0, expect)  # ascending order also when reversed


def test_multi_get_empty_stop_means_end_regardless_of_inclusive(mg):
    r = mg.multi_get(b"hk", start_sortkey=b"b", start_inclusive=True, stop_inclusive=False)
    assert sks(r) == [b"b", b"ba", b"c"]
    r = mg.multi_get(b"hk", start_sortkey=b"b", start_inclusive=True, stop_inclusive=True)
    assert sks(r) == [b"b", b"ba", b"c"]


def test_multi_get_empty_ranges(mg):
    assert sks(mg.multi_get(b"hk", start_sortkey=b"c", stop_sortkey=b"a",
                            start_inclusive=True, stop_inclusive=True)) == []
    r = mg.multi_get(b"hk", start_sortkey=b"b", stop_sortkey=b"b", start_inclusive=True,
                     stop_inclusive=False)
    assert (r.error, sks(r)) == (0, [])
    r = mg.multi_get(b"hk", start_sortkey=b"b", stop_sortkey=b"b", start_inclusive=True,
                     stop_inclusive=True)
    assert sks(r) == [b"b"]
    assert mg.multi_get(b"nohk", start_inclusive=True).kvs == []


@pytest.mark.parametrize("ft,pattern,expect", [
    (0, b"zz", ALL),
    (1, b"b", [b"ab", b"abc", b"b", b"ba"]),
    (2, b"ab", [b"ab", b"abc"]),
    (2, b"", ALL),
    (3, b"a", [b"a", b"ba"]),
    (3, b"bc", [b"abc"]),
])
def test_multi_get_filters(mg, ft, pattern, expect):
    r = mg.multi_get(b"hk", start_inclusive=True, sort_key_filter_type=ft,
                     sort_key_filter_pattern=pattern)
    assert (r.error, sks(r)) == (0, expect)
    r = mg.multi_get(b"hk", start_inclusive=True, sort_key_filter_type=ft,
                     sort_key_filter_pattern=pattern, reverse=True)
    assert sks(r) == expect


def test_multi_get_prefix_with_bounds(mg):
    r = mg.multi_get(b"hk", start_sortkey=b"abc", stop_sortkey=b"b", start_inclusive=False,
                     stop_inclusive=True, sort_key_filter_type=2, sort_key_filter_pattern=b"a")
    assert sks(r) == []
    r = mg.multi_get(b"hk", start_sortkey=b"a", start_inclusive=False,
                     sort_key_filter_type=2, sort_key_filter_pattern=b"ab")
    assert sks(r) == [b"ab", b"abc"]  # the narrowed start is inclusive
    r = mg.multi_get(b"hk", start_sortkey=b"ab", start_inclusive=False,
                     sort_key_filter_type=2, sort_key_filter_pattern=b"ab")
    assert sks(r) == [b"abc"]  # a prefix start equal to the start keeps its exclusivity


def test_multi_get_invalid_filter_type(mg):
    r = mg.multi_get(b"hk", start_inclusive=True, sort_key_filter_type=4)
    assert (r.error, r.kvs) == (4, [])
    assert mg.multi_get(b"hk", [b"a"], sort_key_filter_type=-1).error == 4


def test_multi_get_count_limit_and_q6(mg):
    r = mg.multi_get(b"hk", start_inclusive=True, max_kv_count=3)
    assert (r.error, sks(r)) == (7, [b"", b"a", b"ab"])
    # exactly count_limit records: the next key belongs to another hash key -> 0, not 7 (Q6)
    r = mg.multi_get(b"hk", start_inclusive=True, max_kv_count=7)
    assert (r.error, sks(r)) == (0, ALL)
    r = mg.multi_get(b"hk", start_sortkey=b"a", stop_sortkey=b"abc", start_inclusive=True,
                     stop_inclusive=False, max_kv_count=2)
    assert (r.error, sks(r)) == (0, [b"a", b"ab"])  # the next key is the exclusive stop
    r = mg.multi_get(b"hk", start_sortkey=b"a", stop_sortkey=b"abc", start_inclusive=True,
                     stop_inclusive=True, max_kv_count=2)
    assert (r.error, sks(r)) == (7, [b"a", b"ab"])


def test_multi_get_reverse_limit_returns_highest(mg):
    r = mg.multi_get(b"hk", start_inclusive=True, max_kv_count=2, reverse=True)
    assert (r.error, sks(r)) == (7, [b"ba", b"c"])
    r = mg.multi_get(b"hk", start_inclusive=True, max_kv_count=7, reverse=True)
    assert (r.error, sks(r)) == (0, ALL)
    r = mg.multi_get(b"hk", start_inclusive=False, max_kv_count=6, reverse=True)
    assert (r.error, sks(r)) == (0, ALL[1:])  # only the excluded start remains


def test_multi_get_range_size_limit(mg):
    # sizes: ""+"e"=1, "a"+"1"=2, "ab"+"2"=3 -> total reaches 6 with "ab", which is included
    r = mg.multi_get(b"hk", start_inclusive=True, max_kv_size=6)
    assert (r.error, sks(r)) == (7, [b"", b"a", b"ab"])
    r = mg.multi_get(b"hk", start_inclusive=True, max_kv_size=6, no_value=True)
    # no_value: sizes are key lengths only: 0, 1, 2, 3 -> reaches 6 at "abc"
    assert (r.error, sks(r)) == (7, [b"", b"a", b"ab", b"abc"])


def test_multi_get_iteration_limit_counts_expired(kind, tmp_path, clk):
    h = make(kind, tmp_path, clk, options=StorageOptions(rocksdb_multi_get_max_iteration_count=4))
    try:
        now = clk.now_epoch()
        h.multi_put(b"hk", [(b"%02d" % i, b"v") for i in range(3)], ets=now + 1)
        h.multi_put(b"hk", [(b"%02d" % i, b"v") for i in range(3, 8)])
        clk.advance(2)  # the first three are now expired
        r = h.multi_get(b"hk", start_inclusive=True)
        assert (r.error, sks(r)) == (7, [b"03"])  # 4 iterated, 1 returned
        r = h.multi_get(b"hk", start_inclusive=True, max_kv_count=100)
        assert r.error == 7  # the server cap applies over a larger client count
    finally:
        h.app.close()


def test_multi_get_time_budget(kind, tmp_path, clk):
    # the budget is checked every max(1, 10 // 10) iterations with this cap
    h = make(kind, tmp_path, clk, options=StorageOptions(rocksdb_multi_get_max_iteration_count=10))
    try:
        h.multi_put(b"hk", [(b"%d" % i, b"v") for i in range(5)])
        h.app.set_envs({"replica.rocksdb_iteration_threshold_time_ms": "10"})
        clk.mono_step = 1.0  # every timer read advances one second
        r = h.multi_get(b"hk", start_inclusive=True)
        assert r.error == 7 and len(r.kvs) < 5
        clk.mono_step = 0.0
        r = h.multi_get(b"hk", start_inclusive=True)
        assert (r.error, len(r.kvs)) == (0, 5)
    finally:
        h.app.close()


# =============================================================== batch_get


def test_batch_get(mg, clk):
    mg.put(b"hl", b"t", b"soon", ets=clk.now_epoch() + 1)
    clk.advance(1)
    fk = rrdb.full_key
    req = rrdb.batch_get_request(keys=[fk(hash_key=b"hk", sort_key=b"c"),
                                       fk(hash_key=b"hk", sort_key=b"missing"),
                                       fk(hash_key=b"hl", sort_key=b"t"),
                                       fk(hash_key=b"hl", sort_key=b"a"),
                                       fk(hash_key=b"hk", sort_key=b"")])
    r = mg.app.read("RPC_RRDB_RRDB_BATCH_GET", req)
    assert r.error == 0
    assert [(d.hash_key, d.sort_key, d.value) for d in r.data] == [
        (b"hk", b"c", b"6"), (b"hl", b"a", b"other-hash-key"), (b"hk", b"", b"e")]
    r = mg.app.read("RPC_RRDB_RRDB_BATCH_GET", rrdb.batch_get_request(keys=[]))
    assert (r.error, r.data) == (4, [])


# =============================================================== sortkey_count


def test_sortkey_count(mg, clk):
    r = mg.count(b"hk")
    assert (r.error, r.count) == (0, 7)  # the empty sort key counts
    mg.put(b"hk", b"zz", b"v", ets=clk.now_epoch() + 5)
    assert mg.count(b"hk").count == 8
    clk.advance(5)
    assert mg.count(b"hk").count == 7
    assert mg.count(b"h").count == 1
    assert mg.count(b"none").count == 0


def test_sortkey_count_timeout_is_minus_one(kind, tmp_path, clk):
    h = make(kind, tmp_path, clk, options=StorageOptions(rocksdb_max_iteration_count=10))
    try:
        h.multi_put(b"hk", [(b"%03d" % i, b"v") for i in range(50)])
        h.app.set_envs({"replica.rocksdb_iteration_threshold_time_ms": "1"})
        clk.mono_step = 1.0
        r = h.count(b"hk")
        assert (r.error, r.count) == (0, -1)  # Q7
        clk.mono_step = 0.0
        h.app.set_envs({})
        assert h.count(b"hk").count == 50
    finally:
        h.app.close()


# =============================================================== incr


def test_incr_basics(h, clk):
    r = h.incr(b"h", b"n", 5)
    assert (r.error, r.new_value, r.decree) == (0, 5, 1)
    assert h.val(b"h", b"n") == b"5"
    r = h.incr(b"h", b"n", -12)
    assert (r.error, r.new_value) == (0, -7)
    assert h.val(b"h", b"n") == b"-7"  # decimal text
    assert h.incr(b"h", b"n", 0).new_value == -7
    h.put(b"h", b"e", b"")
    assert h.incr(b"h", b"e", 3).new_value == 3  # empty value counts as 0


@pytest.mark.parametrize("text,expect", [
    (b"12", 13), (b" -3", -2), (b"0x1F", 32), (b"0x1f", 32), (b"010", 9), (b"+4", 5),
    (b"12 ", None), (b"1.0", None), (b"abc", None), (b"08", None), (b"0x", None),
    (b"1\x002", None), (b"9223372036854775808", None),
])
def test_incr_parsing(h, text, expect):
    h.put(b"h", b"n", text)
    r = h.incr(b"h", b"n", 1)
    if expect is None:
        assert (r.error, r.new_value) == (4, 0)
        assert h.val(b"h", b"n") == text  # nothing written
    else:
        assert (r.error, r.new_value) == (0, expect)


def test_incr_overflow_returns_old_value(h):
    h.put(b"h", b"n", b"9223372036854775807")
    r = h.incr(b"h", b"n", 1)
    assert (r.error, r.new_value) == (4, 9223372036854775807)
    h.put(b"h", b"m", b"-9223372036854775808")
    r = h.incr(b"h", b"m", -1)
    assert (r.error, r.new_value) == (4, -9223372036854775808)
    assert h.val(b"h", b"m") == b"-9223372036854775808"


def test_incr_expiry_rules(h, clk):
    now = clk.now_epoch()
    h.incr(b"h", b"a", 1, ets=now + 100)  # absent: > 0 sets
    assert h.ttl(b"h", b"a").ttl_seconds == 100
    h.incr(b"h", b"a", 1)  # 0 keeps
    assert h.ttl(b"h", b"a").ttl_seconds == 100
    h.incr(b"h", b"a", 1, ets=now + 7)  # > 0 replaces
    assert h.ttl(b"h", b"a").ttl_seconds == 7
    r = h.incr(b"h", b"a", 1, ets=-1)  # < 0 removes
    assert r.new_value == 4 and h.ttl(b"h", b"a").ttl_seconds == -1
    h.incr(b"h", b"b", 1, ets=-1)  # absent, < 0: none
    assert h.ttl(b"h", b"b").ttl_seconds == -1


def test_incr_on_expired_record_starts_over(h, clk):
    h.put(b"h", b"n", b"100", ets=clk.now_epoch() + 1)
    clk.advance(1)
    r = h.incr(b"h", b"n", 2)
    assert r.new_value == 2
    assert h.ttl(b"h", b"n").ttl_seconds == -1  # the old expiry is not kept


# =============================================================== check_and_set

CAS_CASES = [
    # (check_type, stored value or None, operand, passes)
    (0, None, b"", True),
    (1, None, b"", True), (1, b"x", b"", False), (1, b"", b"", False),
    (2, None, b"", True), (2, b"", b"", True), (2, b"x", b"", False),
    (3, None, b"", False), (3, b"", b"", True), (3, b"x", b"", True),
    (4, None, b"", False), (4, b"", b"", False), (4, b"x", b"", True),
    (5, b"abcd", b"bc", True), (5, b"abcd", b"ca", False), (5, b"abcd", b"", True),
    (5, None, b"", False),
    (6, b"abcd", b"ab", True), (6, b"abcd", b"bc", False),
    (7, b"abcd", b"cd", True), (7, b"abcd", b"bc", False), (7, b"ab", b"abc", False),
    (8, b"abc", b"abd", True), (8, b"abc", b"abc", False), (8, b"ab", b"abc", True),
    (9, b"abc", b"abc", True), (9, b"abd", b"abc", False),
    (10, b"abc", b"abc", True), (10, b"abc", b"ab", False), (10, b"", b"", True),
    (10, None, b"", False),
    (11, b"abc", b"abc", True), (11, b"ab", b"abc", False),
    (12, b"\xff", b"\x7f", True), (12, b"abc", b"abc", False),
    (13, b"5", b"6", True), (13, b"6", b"6", False), (13, b"-10", b"0x2", True),
    (14, b"6", b"6", True), (14, b"7", b"6", False),
    (15, b"010", b"8", True), (15, b"9", b"8", False),
    (16, b"8", b"8", True), (16, b"7", b"8", False),
    (17, b"9", b"8", True), (17, b"8", b"8", False),
    (13, None, b"1", False),
]


@pytest.mark.parametrize("ct,stored,operand,passes", CAS_CASES)
def test_check_and_set_check_types(h, ct, stored, operand, passes):
    if stored is not None:
        h.put(b"h", b"c", stored)
    r = h.cas(b"h", b"c", ct, operand, value=b"NEW")
    assert r.error == (0 if passes else 13)
    assert h.val(b"h", b"c") == (b"NEW" if passes else stored)


@pytest.mark.parametrize("stored,operand", [(b"x1", b"1"), (b"1", b"y"), (b"", b"1")])
def test_check_and_set_int_parse_failure_is_4(h, stored, operand):
    h.put(b"h", b"c", stored)
    r = h.cas(b"h", b"c", 15, operand, value=b"NEW", ret=True)
    assert r.error == 4
    assert (r.check_value_returned, r.check_value_exist, r.check_value) == (True, True, stored)
    assert h.val(b"h", b"c") == stored


def test_check_and_set_return_value_and_diff_sort_key(h, clk):
    h.put(b"h", b"c", b"cur")
    r = h.cas(b"h", b"c", 10, b"cur", value=b"set", ret=True, diff_sk=b"other",
              ets=clk.now_epoch() + 30)
    assert (r.error, r.check_value_returned, r.check_value_exist, r.check_value) == (
        0, True, True, b"cur")
    assert r.decree == 2 and r.app_id == 3
    assert h.val(b"h", b"c") == b"cur"
    assert h.val(b"h", b"other") == b"set"
    assert h.ttl(b"h", b"other").ttl_seconds == 30
    r = h.cas(b"h", b"missing", 3, ret=True)  # fails, still returns the check value fields
    assert (r.error, r.check_value_returned, r.check_value_exist, r.check_value) == (
        13, True, False, b"")
    r = h.cas(b"h", b"c", 10, b"nope")  # not requested
    assert (r.error, r.check_value_returned, r.check_value) == (13, False, b"")


def test_check_and_set_invalid_type(h):
    h.put(b"h", b"c", b"v")
    for ct in (18, -1):
        d = h.app.last_committed_decree
        r = h.cas(b"h", b"c", ct, ret=True)
        assert (r.error, r.check_value_returned, r.check_value_exist) == (4, False, False)
        assert r.decree == d + 1
    assert h.val(b"h", b"c") == b"v"


def test_check_and_set_expired_check_record_does_not_exist(h, clk):
    h.put(b"h", b"c", b"v", ets=clk.now_epoch() + 1)
    clk.advance(1)
    r = h.cas(b"h", b"c", 1, value=b"fresh", ret=True)
    assert (r.error, r.check_value_exist) == (0, False)
    assert h.val(b"h", b"c") == b"fresh"


# =============================================================== check_and_mutate


def test_check_and_mutate(h, clk):
    h.multi_put(b"h", [(b"c", b"1"), (b"d", b"old")])
    r = h.cam(b"h", b"c", 15, b"1", [(0, b"x", b"X", 0), (1, b"d", None, 0),
                                     (0, b"y", b"Y1", clk.now_epoch() + 9),
                                     (0, b"y", b"Y2", 0), (0, b"z", b"Z", 0), (1, b"z", None, 0)],
              ret=True)
    assert (r.error, r.check_value_returned, r.check_value_exist, r.check_value) == (
        0, True, True, b"1")
    assert h.val(b"h", b"x") == b"X"
    assert h.val(b"h", b"d") is None
    assert h.val(b"h", b"y") == b"Y2"  # the last mutation of a key wins
    assert h.ttl(b"h", b"y").ttl_seconds == -1
    assert h.val(b"h", b"z") is None
    r = h.cam(b"h", b"c", 15, b"2", [(0, b"w", b"W", 0)])
    assert r.error == 13 and h.val(b"h", b"w") is None


def test_check_and_mutate_invalid(h):
    h.put(b"h", b"c", b"1")
    assert h.cam(b"h", b"c", 0, b"", []).error == 4
    assert h.cam(b"h", b"c", 0, b"", [(0, b"a", b"v", 0), (2, b"b", b"v", 0)]).error == 4
    r = h.cam(b"h", b"c", 99, b"", [(0, b"a", b"v", 0)], ret=True)
    assert (r.error, r.check_value_returned) == (4, False)
    assert h.val(b"h", b"a") is None
    r = h.cam(b"h", b"c", 13, b"abc", [(0, b"a", b"v", 0)])
    assert r.error == 4


# =============================================================== scanners


@pytest.fixture
def sc(h):
    for hk in (b"b", b"aa", b"ab"):
        h.multi_put(hk, [(b"%02d" % i, b"v%d" % i) for i in range(5)])
    return h


def all_sorted_keys():
    return sorted(ek(hk, b"%02d" % i) for hk in (b"b", b"aa", b"ab") for i in range(5))


def test_scan_whole_partition_in_batches(sc):
    got, batches, ids = sc.scan_all(batch_size=4)
    assert got == all_sorted_keys()  # full storage keys, (length, hash key, sort key) order
    assert batches == 4
    assert len(set(ids)) == len(ids) and all(0 <= i < 2**63 for i in ids)
    r = sc.get_scanner(batch_size=100)
    assert r.context_id == -1 and len(r.kvs) == 15
    assert r.kvs[0].value == b"v0" and r.kvs[0].expire_ts_seconds is None
    assert r.kv_count is None


def test_scan_exact_batch_leaves_empty_final_batch(sc):
    # hash key b"b" sorts first; the iterator then points at b"aa" (outside the range)
    r = sc.get_scanner(start_key=ek(b"b", b""), stop_key=keys.next_key(b"b"), batch_size=5)
    assert len(r.kvs) == 5 and r.context_id >= 0
    r2 = sc.scan(r.context_id)
    assert (r2.error, r2.kvs, r2.context_id) == (0, [], -1)
    r = sc.get_scanner(batch_size=15)  # partition end reached: completed at once
    assert len(r.kvs) == 15 and r.context_id == -1


def test_hash_key_scan_bounds(sc):
    start, stop = ek(b"aa", b"01"), ek(b"aa", b"03")
    got, _, _ = sc.scan_all(start_key=start, stop_key=stop, start_inclusive=False,
                            stop_inclusive=True, batch_size=1)
    assert got == [ek(b"aa", b"02"), ek(b"aa", b"03")]
    got, _, _ = sc.scan_all(start_key=ek(b"aa", b""), stop_key=keys.next_key(b"aa"))
    assert got == [ek(b"aa", b"%02d" % i) for i in range(5)]


def test_scan_empty_range_is_completed(sc):
    r = sc.get_scanner(start_key=ek(b"ab", b"03"), stop_key=ek(b"ab", b"01"))
    assert (r.error, r.kvs, r.context_id) == (0, [], -1)  # Q1
    r = sc.get_scanner(start_key=ek(b"ab", b"03"), stop_key=ek(b"ab", b"03"),
                       start_inclusive=True, stop_inclusive=False)
    assert (r.error, r.context_id) == (0, -1)


def test_scan_invalid_filter(sc):
    r = sc.get_scanner(hash_key_filter_type=7)
    assert (r.error, r.kvs, r.context_id) == (4, [], -1)
    r = sc.get_scanner(sort_key_filter_type=-3)
    assert (r.error, r.context_id) == (4, -1)


def test_scan_filters(sc):
    got, _, _ = sc.scan_all(hash_key_filter_type=2, hash_key_filter_pattern=b"a",
                            sort_key_filter_type=3, sort_key_filter_pattern=b"3", batch_size=1)
    assert got == [ek(b"aa", b"03"), ek(b"ab", b"03")]
    got, _, _ = sc.scan_all(hash_key_filter_type=1, hash_key_filter_pattern=b"b")
    assert got == sorted([ek(b"b", b"%02d" % i) for i in range(5)]
                         + [ek(b"ab", b"%02d" % i) for i in range(5)])
    got, _, _ = sc.scan_all(hash_key_filter_type=2, hash_key_filter_pattern=b"ab")
    assert got == [ek(b"ab", b"%02d" % i) for i in range(5)]


def test_scan_options(sc, clk):
    sc.put(b"c", b"t", b"ttl", ets=clk.now_epoch() + 50)
    r = sc.get_scanner(start_key=ek(b"c", b""), stop_key=keys.next_key(b"c"), no_value=True,
                       return_expire_ts=True)
    assert [(kv.key, kv.value, kv.expire_ts_seconds) for kv in r.kvs] == [
        (ek(b"c", b"t"), b"", clk.now_epoch() + 50)]
    r = sc.get_scanner(only_return_count=True, batch_size=10)
    assert (r.kvs, r.kv_count) == ([], 10) and r.context_id >= 0
    r = sc.scan(r.context_id)
    assert (r.kvs, r.kv_count, r.context_id) == ([], 6, -1)  # options survive in the context
    clk.advance(50)
    got, _, _ = sc.scan_all()
    assert ek(b"c", b"t") not in got


def test_scan_context_lifecycle(sc, clk):
    r = sc.get_scanner(batch_size=2)
    cid = r.context_id
    r2 = sc.scan(cid)
    assert r2.error == 0 and r2.context_id not in (cid, -1)
    r3 = sc.scan(cid)  # taken out by the previous scan
    assert (r3.error, r3.kvs, r3.context_id) == (1, [], -1)
    sc.app.clear_scanner(r2.context_id)
    assert sc.scan(r2.context_id).error == 1
    r = sc.get_scanner(batch_size=2)
    clk.advance(299)
    r = sc.scan(r.context_id)
    assert r.error == 0
    clk.advance(300)
    assert sc.scan(r.context_id).error == 1  # expired 5 minutes after being stored
    assert sc.scan(12345).error == 1


def test_scan_sees_no_deleted_records_after_context(sc):
    r = sc.get_scanner(batch_size=1)
    sc.multi_remove(b"b", [b"01", b"02"])
    got = [kv.key for kv in r.kvs]
    while r.context_id >= 0:
        r = sc.scan(r.context_id)
        got.extend(kv.key for kv in r.kvs)
    assert ek(b"b", b"01") not in got and len(got) == 13


def test_scan_batch_size_capped(kind, tmp_path, clk):
    h = make(kind, tmp_path, clk, options=StorageOptions(rocksdb_max_iteration_count=3))
    try:
        h.multi_put(b"h", [(b"%d" % i, b"v") for i in range(7)])
        r = h.get_scanner(batch_size=0)
        assert len(r.kvs) == 3 and r.context_id >= 0
        r = h.get_scanner(batch_size=5000)
        assert len(r.kvs) == 3
    finally:
        h.app.close()


def test_scan_time_budget_gives_7_without_context(sc, clk):
    sc.app.set_envs({"replica.rocksdb_iteration_threshold_time_ms": "5"})
    clk.mono_step = 1.0
    r = sc.get_scanner(batch_size=1000)
    assert (r.error, r.context_id) == (7, -1)


def test_scan_validate_partition_hash(kind, tmp_path, clk):
    h = make(kind, tmp_path, clk, partition_count=4)  # this replica is partition 1 of app 3
    try:
        hks = [b"k%d" % i for i in range(40)]
        for hk in hks:
            h.put(hk, b"s", b"v")
        mine = sorted(ek(hk, b"s") for hk in hks if keys.crc64(hk) & 3 == 1)
        assert 0 < len(mine) < 40
        assert len(h.scan_all()[0]) == 40  # env off: no validation
        h.app.set_envs({"replica.split.validate_partition_hash": "true"})
        assert h.scan_all()[0] == mine
        assert len(h.scan_all(validate_partition_hash=False)[0]) == 40
    finally:
        h.app.close()


def test_context_ids_are_non_negative_for_any_rng():
    from pegasus_server.storage.scanner import ScanContext, ScanContextStore

    class HighRng(random.Random):
        def randrange(self, *a):
            return 2**62 - 1

    store = ScanContextStore(300, lambda: 0.0, HighRng())
    ctx = ScanContext(b"", b"", False, 0, b"", 0, b"", 1, False, True, False, False)
    ids = [store.put(ctx) for _ in range(5)]
    assert all(0 <= i < 2**63 for i in ids) and len(set(ids)) == 5
    store._next_id = 2**63 - 1
    assert store.put(ctx) == 2**63 - 1
    assert store.put(ctx) == 0  # wraps inside the non-negative range


# =============================================================== decrees, durability


def test_decree_recorded_atomically_in_meta(h):
    h.put(b"h", b"s", b"v")
    h.multi_put(b"h", [])
    assert h.app.engine.get(b"pegasus_last_flushed_decree", CF_META) == b"2"
    assert h.app.engine.get(b"pegasus_data_version", CF_META) == b"1"


def test_decree_must_increase(h):
    h.put(b"h", b"s", b"v")
    with pytest.raises(StorageError):
        h.app.write(1, 0, "RPC_RRDB_RRDB_PUT", rrdb.update_request(key=ek(b"h", b"s"), value=b"x"))
    with pytest.raises(StorageError):
        h.app.write(5, 0, "RPC_RRDB_RRDB_GET", ek(b"h", b"s"))
    assert h.val(b"h", b"s") == b"v" and h.app.last_committed_decree == 1


def test_write_batch_shares_decree_and_rejects_rmw(h):
    p = rrdb.update_request(key=ek(b"h", b"a"), value=b"1", expire_ts_seconds=0)
    rs = h.app.write_batch(7, 0, [("RPC_RRDB_RRDB_PUT", p), ("RPC_RRDB_RRDB_REMOVE", ek(b"h", b"x"))])
    assert [r.decree for r in rs] == [7, 7]
    incr = rrdb.incr_request(key=ek(b"h", b"n"), increment=1, expire_ts_seconds=0)
    with pytest.raises(ValueError):
        h.app.write_batch(8, 0, [("RPC_RRDB_RRDB_PUT", p), ("RPC_RRDB_RRDB_INCR", incr)])
    h.app.write_empty(8, 0)
    assert h.app.last_committed_decree == 8


def test_reopen_keeps_data_and_decree(kind, tmp_path, clk):
    h = make(kind, tmp_path, clk)
    h.put(b"h", b"s", b"v")
    h.incr(b"h", b"n", 3)
    h.app.flush()
    h.app.close()
    h = make(kind, tmp_path, clk)
    try:
        assert h.app.last_committed_decree == 2
        assert h.val(b"h", b"n") == b"3"
        assert h.app.data_version == 1
    finally:
        h.app.close()


def test_rocksdb_survives_close_without_flush(tmp_path, clk):
    h = make("rocksdb", tmp_path, clk)
    h.put(b"h", b"s", b"v")
    assert h.app.last_durable_decree == 1  # WAL on
    h.app.close()
    h = make("rocksdb", tmp_path, clk)
    try:
        assert (h.app.last_committed_decree, h.val(b"h", b"s")) == (1, b"v")
    finally:
        h.app.close()


def test_memory_durable_decree_follows_flush(tmp_path, clk):
    h = make("memory", tmp_path, clk)
    try:
        h.put(b"h", b"s", b"v")
        assert h.app.last_durable_decree == 0
        assert h.app.flush() == 1
        assert h.app.last_durable_decree == 1
    finally:
        h.app.close()


def test_checkpoint_install_and_open(kind, tmp_path, clk):
    h = make(kind, tmp_path, clk)
    try:
        h.multi_put(b"h", [(b"a", b"1"), (b"b", b"2")])
        decree, path = h.app.checkpoint()
        assert decree == 1 and path.endswith("checkpoint.1")
        assert h.app.list_checkpoints() == [1]
        h.put(b"h", b"c", b"after")
        other_dir = str(tmp_path / "learner")
        StorageApp.install_checkpoint(other_dir, path)
        other = StorageApp.open(other_dir, (3, 1), kind, clock=clk.clock, timer=clk.timer)
        try:
            assert other.last_committed_decree == 1
            r = other.read("RPC_RRDB_RRDB_MULTI_GET",
                           rrdb.multi_get_request(hash_key=b"h", start_inclusive=True))
            assert sks(r) == [b"a", b"b"]
        finally:
            other.close()
    finally:
        h.app.close()


def test_remove_expired_sweeps_physically(h, clk):
    now = clk.now_epoch()
    h.multi_put(b"h", [(b"%02d" % i, b"v") for i in range(10)], ets=now + 1)
    h.multi_put(b"h", [(b"x", b"keep")])
    clk.advance(1)
    assert h.app.remove_expired(budget=4) == 4
    assert h.app.remove_expired(budget=4) == 4
    assert h.app.remove_expired(budget=4) == 2
    assert h.app.engine.get(ek(b"h", b"00")) is None
    assert h.app.engine.get(ek(b"h", b"09")) is None
    assert h.val(b"h", b"x") == b"keep"
    assert h.app.last_committed_decree == 2  # the sweep is not a mutation


def test_unknown_read_rpc(h):
    with pytest.raises(StorageError):
        h.app.read("RPC_RRDB_RRDB_PUT", b"")


def test_data_version_newer_than_supported_refuses_to_open(kind, tmp_path, clk):
    h = make(kind, tmp_path, clk)
    h.app.engine.put(b"pegasus_data_version", b"2", CF_META)
    h.app.flush()
    h.app.close()
    with pytest.raises(StorageError):
        make(kind, tmp_path, clk)


# =============================================================== wire safety


def test_every_response_encodes_with_all_fields(h):
    """Every non-optional field is set (clients dereference them)."""
    h.put(b"h", b"s", b"v")
    resps = [
        h.put(b"h", b"s", b"v"), h.remove(b"h", b"x"), h.multi_put(b"h", []),
        h.multi_remove(b"h", [b"a"]), h.incr(b"h", b"n", 1), h.cas(b"h", b"s", 3),
        h.cam(b"h", b"s", 1, b"", [(0, b"a", b"v", 0)]),
        h.get(b"h", b"missing"), h.ttl(b"h", b"missing"), h.count(b"h"),
        h.multi_get(b"h"), h.get_scanner(), h.scan(42),
        h.app.read("RPC_RRDB_RRDB_BATCH_GET", rrdb.batch_get_request(keys=[])),
    ]
    for r in resps:
        for fid, spec in type(r).thrift_spec.items():
            name = spec[1]
            if not thrift.is_optional(type(r), fid):
                assert getattr(r, name) is not None, (type(r).__name__, name)
        data = thrift.encode(r)
        assert thrift.decode_all(type(r), data) == r


def test_rules_buf2int64_edges():
    b = rules.buf2int64
    assert b(b"-9223372036854775808") == -(2**63)
    assert b(b"\t\n 7") == 7
    assert b(b"- 7") is None
    assert b(b"") is None and b(b" ") is None and b(b"-") is None
    assert b(b"-0x10") == -16
    assert b(b"0") == 0 and b(b"00") == 0
