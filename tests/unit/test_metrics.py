"""metrics.py (the registry, upstream's JSON snapshot with its filters, Prometheus text) and
the replica env replica.deny_client_request (replica/admin.py)."""
import json

import pytest

from pegasus_server import errors
from pegasus_server.metrics import MetricsRegistry, http_handler, wants_prometheus
from pegasus_server.replica.admin import denied, deny_policy


class _Req:
    def __init__(self, query="", headers=None):
        self.query = query
        self.headers = headers or {}


@pytest.fixture
def reg():
    r = MetricsRegistry("onebox", "replica", "127.0.0.1", 34801)
    for pidx in range(2):
        e = r.entity("replica", f"2.{pidx}", table_id=2, partition_id=pidx)
        e.counter("put_requests").incr(10 + pidx)
        e.counter("get_requests").incr(5)
    s = r.entity("server", "server")
    s.gauge("replicas_count", "replicas", "replicas here", lambda: 7)
    s.gauge("broken", fn=lambda: 1 / 0)
    return r


def test_snapshot_document_and_fields(reg):
    doc = reg.snapshot({})
    assert (doc["cluster"], doc["role"], doc["host"], doc["port"]) == \
        ("onebox", "replica", "127.0.0.1", 34801)
    assert [e["id"] for e in doc["entities"]] == ["2.0", "2.1", "server"]
    server = doc["entities"][2]
    assert {m["name"]: m["value"] for m in server["metrics"]} == {"replicas_count": 7,
                                                                  "broken": 0}
    m = doc["entities"][0]["metrics"][0]
    assert set(m) == {"type", "name", "unit", "desc", "value"} and m["type"] == "counter"


def test_filters(reg):
    doc = reg.snapshot({"with_metric_fields": "name,value", "types": "replica",
                        "attributes": "partition_id,1,table_id,9", "metrics": "put_requests"})
    assert [(e["id"], e["metrics"]) for e in doc["entities"]] == \
        [("2.1", [{"name": "put_requests", "value": 11}])]
    assert reg.snapshot({"ids": "2.0", "metrics": "nothing"})["entities"] == []
    assert [e["id"] for e in reg.snapshot({"ids": "server,2.0"})["entities"]] == ["2.0", "server"]
    for bad in ({"bogus": "1"}, {"with_metric_fields": "name,p99"},
                {"attributes": "table_id"}):
        with pytest.raises(ValueError):
            reg.snapshot(bad)


def test_prometheus_text(reg):
    reg.entity("replica", "2.0").attributes["note"] = 'a "quoted"\nvalue'
    text = reg.prometheus({"metrics": "put_requests"})
    lines = text.splitlines()
    assert lines[0] == "# HELP put_requests put_requests"
    assert lines[1] == "# TYPE put_requests counter"
    assert lines[2] == ('put_requests{cluster="onebox",role="replica",host="127.0.0.1",'
                        'port="34801",entity="replica",id="2.0",table_id="2",partition_id="0",'
                        'note="a \\"quoted\\"\\nvalue"} 10')
    assert lines[3].endswith(' 11') and len(lines) == 4


def test_content_negotiation_and_http_handler(reg):
    assert wants_prometheus({}, {"accept": "text/plain;version=0.0.4"})
    assert wants_prometheus({}, {"accept": "application/openmetrics-text; version=1.0.0"})
    assert not wants_prometheus({}, {"accept": "application/json, text/plain"})
    assert not wants_prometheus({}, {})
    assert wants_prometheus({"format": "prometheus"}, {})
    handle = http_handler(reg)
    status, ctype, body = handle(_Req("types=server"))
    assert status == 200 and ctype == "application/json"
    assert json.loads(body)["entities"][0]["id"] == "server"
    status, ctype, body = handle(_Req("format=prometheus&types=server"))
    assert status == 200 and ctype.startswith("text/plain") and "replicas_count{" in body
    status, _, body = handle(_Req("types=server&oops=1"))
    assert status == 400 and "oops" in json.loads(body)["error_message"]


@pytest.mark.parametrize("value,policy", [
    ("timeout*all", ("timeout", "all")), ("reconfig*write", ("reconfig", "write")),
    ("reconfig*read", ("reconfig", "read")), ("timeout", None), ("later*all", None),
    ("timeout*some", None), ("", None), (None, None)])
def test_deny_policy(value, policy):
    envs = {} if value is None else {"replica.deny_client_request": value}
    assert deny_policy(envs) == policy


def test_denied():
    put, get, scan = "RPC_RRDB_RRDB_PUT", "RPC_RRDB_RRDB_GET", "RPC_RRDB_RRDB_SCAN"
    assert denied(None, put) is None
    assert denied(("timeout", "all"), get) == "timeout"
    assert denied(("reconfig", "all"), put) == errors.ERR_INVALID_STATE
    assert denied(("reconfig", "write"), put) == errors.ERR_INVALID_STATE
    assert denied(("reconfig", "write"), get) is None
    assert denied(("reconfig", "read"), scan) == errors.ERR_INVALID_STATE
    assert denied(("reconfig", "read"), put) is None
