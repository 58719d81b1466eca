"""replica/wire.py: every core message round-trips through its upstream struct and its bytes."""
import struct

import pytest

from pegasus_server import errors as E
from pegasus_server.base import INVALID_ADDRESS, Gpid, RpcAddress
from pegasus_server.replica import events as ev
from pegasus_server.replica import mutation as mu
from pegasus_server.replica import wire
from pegasus_server.rpc import catalogue, thrift

GPID = Gpid(7, 3)
A = RpcAddress("10.1.2.3", 34801)
B = RpcAddress("10.1.2.4", 34802)
C = RpcAddress("10.1.2.5", 34803)
D = RpcAddress("10.1.2.6", 34804)


def cfg(status=ev.PS_SECONDARY, sig=(5 << 32) + 9):
    return ev.ReplicaConfig(GPID, 5, A, status, sig)


def real_mutation(decree=42):
    return mu.Mutation(GPID, 5, decree, decree - 2, 1_700_000_000_123_456, (
        mu.Update("RPC_RRDB_RRDB_PUT", mu.DSF_THRIFT_BINARY, b"\x0c\x00\x01payload\x00"),
        mu.Update("RPC_RRDB_RRDB_REMOVE", mu.DSF_THRIFT_BINARY, b"\x0c\x00\x01k\x00",
                  start_time_ns=123456789),
    ), log_offset=4096)


def membership():
    return ev.Membership(GPID, 11, A, (B, C), 5, 1234, (D,))


def app_info():
    return thrift.layer2.app_info(status=1, app_type="pegasus", app_name="temp", app_id=7,
                                  partition_count=8, envs={"k": "v"}, is_stateful=True,
                                  max_replica_count=3)


def via_bytes(s):
    data = thrift.encode(s)
    back, pos = thrift.decode(type(s), data)
    assert pos == len(data)
    return back


def both(s):
    """The struct itself and its byte round trip."""
    return [s, via_bytes(s)]


# ------------------------------------------------------------------------------------ prepare
def test_prepare_round_trip():
    msg = ev.Prepare(cfg(), real_mutation())
    s = wire.to_prepare_msg(msg)
    for x in both(s):
        back = wire.from_prepare_msg(x)
        assert back == msg
        assert back.mutation.log_offset == 4096
        assert [u.start_time_ns for u in back.mutation.updates] == [None, 123456789]


def test_prepare_msg_bytes_match_mutation_module():
    m = real_mutation()
    c = cfg(ev.PS_POTENTIAL_SECONDARY)
    data = thrift.encode(wire.to_prepare_msg(ev.Prepare(c, m), pop_all=True))
    rc = thrift.metadata.replica_configuration(
        pid=GPID, ballot=5, primary=A, status=ev.PS_POTENTIAL_SECONDARY,
        learner_signature=c.learner_signature, pop_all=True, split_sync_to_child=None)
    expected = (b"\x0c\x00\x01" + thrift.encode(rc)
                + b"\x0c\x00\x02" + thrift.encode(mu.to_mutation_data(m)) + b"\x00")
    assert data == expected
    # hand-check the start of the embedded mutation_data: header struct, field 1 = gpid i64
    md = data[3 + len(thrift.encode(rc)) + 3:]
    assert md[:3] == b"\x0c\x00\x01"                     # mutation_data.header
    assert md[3:6] == b"\x0c\x00\x01"                    # mutation_header.pid (placeholder)
    assert struct.unpack(">q", md[6:14])[0] == GPID.to_i64()
    assert md[14:17] == b"\x0a\x00\x02" and struct.unpack(">q", md[17:25])[0] == 5
    # the §4.2 binary form survives the trip unchanged
    back = wire.from_prepare_msg(thrift.decode(thrift.consensus.prepare_msg, data)[0])
    assert mu.encode(back.mutation) == mu.encode(m)
    # pop_all omitted unless asked for (optional field)
    plain = thrift.encode(wire.to_prepare_msg(ev.Prepare(c, m)))
    assert len(plain) == len(data) - 4


def test_prepare_from_stand_in_mutation():
    RAW = mu.encode_request("RPC_RRDB_RRDB_REMOVE", b"raw-key")
    gpid_tuple = (7, 3)
    req = thrift.rrdb.update_request(key=b"hk", value=b"v", expire_ts_seconds=9)
    sm = ev.Mutation(gpid_tuple, 5, 43, 41, 99, (
        ev.Update("RPC_RRDB_RRDB_PUT", req),
        ev.Update("RPC_RRDB_RRDB_REMOVE", RAW),
        ev.Update(ev.RPC_WRITE_EMPTY),
    ))
    s = wire.to_prepare_msg(ev.Prepare(cfg(), sm))
    for x in both(s):
        back = wire.from_prepare_msg(x).mutation
        assert isinstance(back, mu.Mutation)
        assert back.log_offset == -1                     # the stand-in has no log offset
        assert (back.gpid, back.ballot, back.decree, back.last_committed_decree,
                back.timestamp_us) == (GPID, 5, 43, 41, 99)
        assert back.updates[0] == mu.update_from_request("RPC_RRDB_RRDB_PUT", req)
        assert mu.decode_requests(back) == [("RPC_RRDB_RRDB_PUT", req),
                                            ("RPC_RRDB_RRDB_REMOVE", b"raw-key")]
        assert back.updates[1] == mu.Update("RPC_RRDB_RRDB_REMOVE", mu.DSF_THRIFT_BINARY,
                                            RAW)
        assert back.updates[2] == mu.EMPTY_UPDATE
    stand = wire.to_stand_in(wire.to_real_mutation(sm))
    assert stand.updates[1:] == sm.updates[1:]
    assert stand.updates[0].payload == mu.encode_request("RPC_RRDB_RRDB_PUT", req)
    assert wire.to_real_mutation(wire.to_stand_in(real_mutation())).updates == \
        real_mutation().updates


def test_prepare_without_mutation_rejected():
    with pytest.raises(wire.WireError):
        wire.from_prepare_msg(thrift.consensus.prepare_msg(config=None, mu=None))


def test_prepare_ack_round_trip():
    a = ev.PrepareAck(GPID, E.ERR_INACTIVE_STATE, 6, 42, 40, 41)
    for x in both(wire.to_prepare_ack(a)):
        assert wire.from_prepare_ack(x) == a


# ------------------------------------------------------------------------------------ group check
def test_group_check_round_trip():
    g = ev.GroupCheck(cfg(ev.PS_POTENTIAL_SECONDARY), 77)
    s = wire.to_group_check_request(g, B, app_info(), confirmed_decree=70)
    for x in both(s):
        assert wire.from_group_check_request(x) == g
        assert x.node == B and x.app.app_name == "temp" and x.app.envs == {"k": "v"}
        assert x.confirmed_decree == 70
    assert via_bytes(wire.to_group_check_request(g, B)).confirmed_decree is None


def test_group_check_reply_round_trip():
    r = ev.GroupCheckReply(GPID, E.ERR_VERSION_OUTDATED, B, 60, 63,
                           ev.LEARNING_WITH_PREPARE, (5 << 32) + 2)
    for x in both(wire.to_group_check_reply(r, disk_status=1)):
        assert wire.from_group_check_reply(x) == r
        assert x.disk_status == 1


def test_add_learner_round_trip():
    m = ev.AddLearner(cfg(ev.PS_POTENTIAL_SECONDARY), 88)
    for x in both(wire.to_add_learner(m, C, app_info())):
        assert wire.from_add_learner(x) == m
        assert x.node == C and x.config.status == ev.PS_POTENTIAL_SECONDARY
        assert x.app.app_id == 7


# ------------------------------------------------------------------------------------ learning
def test_learn_request_round_trip():
    r = ev.LearnRequest(GPID, C, (5 << 32) + 3, 30, 31, seq=17)
    s = wire.to_learn_request(r, max_gced_decree=12)
    for x in both(s):
        assert wire.from_learn_request(x, seq=17) == r
        assert x.max_gced_decree == 12
        assert wire.from_learn_request(x).seq == 0         # seq is not on the wire


def test_learn_response_cache_round_trip():
    muts = (real_mutation(31), real_mutation(32))
    r = ev.LearnResponse(GPID, E.ERR_OK, cfg(ev.PS_POTENTIAL_SECONDARY), 32, 33, ev.LT_CACHE,
                         ev.LearnState(30, 32, muts, None), A, seq=4)
    for x in both(wire.to_learn_response(r)):
        assert x.state.meta == mu.encode(muts[0]) + mu.encode(muts[1])
        assert wire.from_learn_response(x, GPID, seq=4) == r


def test_learn_response_files_round_trip():
    files = wire.LearnFiles("/data/replica/reps/7.3.pegasus/data/checkpoint.120",
                            ("CURRENT", "MANIFEST-000005", "000009.sst"))
    r = ev.LearnResponse(GPID, E.ERR_OK, cfg(ev.PS_POTENTIAL_SECONDARY), 130, 131, ev.LT_APP,
                         ev.LearnState(3, 120, (real_mutation(5),), files), B, seq=9)
    for x in both(wire.to_learn_response(r)):
        assert x.base_local_dir == files.base_dir and list(x.state.files) == list(files.names)
        assert wire.from_learn_response(x, (7, 3), seq=9) == r
    plain = ev.LearnResponse(GPID, E.ERR_OK, cfg(), 5, 6, ev.LT_LOG,
                             ev.LearnState(1, 5, (), ("log.1.0", "log.2.900")), B)
    back = wire.from_learn_response(via_bytes(wire.to_learn_response(plain)), GPID)
    assert back.state.files == wire.LearnFiles("", ("log.1.0", "log.2.900"))


def test_learn_response_error_without_config():
    r = ev.LearnResponse(GPID, E.ERR_INACTIVE_STATE, None, learnee=A, seq=2)
    for x in both(wire.to_learn_response(r)):
        assert x.config is not None                         # not optional on the wire
        assert wire.from_learn_response(x, GPID, seq=2) == r


def test_learn_completion_round_trip():
    c = ev.LearnCompletion(GPID, C, (5 << 32) + 3, 50, 52)
    for x in both(wire.to_learn_completion(c)):
        assert x.learner_status_ == ev.LEARNING_SUCCEEDED and x.err == E.ERR_OK
        assert wire.from_learn_completion(x) == c
    bad = wire.to_learn_completion(c)
    bad.learner_status_ = ev.LEARNING_WITH_PREPARE
    with pytest.raises(wire.WireError):
        wire.from_learn_completion(via_bytes(bad))


def test_learn_notify_reply_round_trip():
    r = ev.LearnNotifyReply(GPID, E.ERR_INVALID_STATE, (5 << 32) + 3)
    for x in both(wire.to_learn_notify_reply(r)):
        assert wire.from_learn_notify_reply(x) == r


def test_remove_replica_round_trip():
    m = ev.RemoveReplica(ev.ReplicaConfig(GPID, 12, B, ev.PS_INACTIVE, 4))
    for x in both(wire.to_remove_replica(m)):
        assert wire.from_remove_replica(x) == m
    no_primary = ev.RemoveReplica(ev.ReplicaConfig(GPID, 12, None, ev.PS_INACTIVE, 0))
    x = via_bytes(wire.to_remove_replica(no_primary))
    assert x.primary == INVALID_ADDRESS and wire.from_remove_replica(x) == no_primary


# ------------------------------------------------------------------------------------ meta
def test_config_proposal_round_trip():
    p = ev.ConfigProposal(ev.CT_ADD_SECONDARY_FOR_LB, D, membership())
    for x in both(wire.to_config_proposal(p, app_info())):
        assert wire.from_config_proposal(x) == p
        assert x.type == ev.CT_ADD_SECONDARY_FOR_LB and x.info.app_name == "temp"
        assert x.hp_node is None and x.config.hp_secondaries is None


def test_report_and_update_response_round_trip():
    r = ev.ReportToMeta(GPID, ev.CT_UPGRADE_TO_SECONDARY, D, membership())
    for x in both(wire.to_update_request(r, app_info())):
        assert wire.from_update_request(x) == r
    for x in both(wire.to_update_response(E.ERR_INVALID_VERSION, membership())):
        assert wire.from_update_response(x) == (E.ERR_INVALID_VERSION, membership())
    for x in both(wire.to_update_response(E.ERR_BUSY, None)):
        assert wire.from_update_response(x) == (E.ERR_BUSY, None)


def test_membership_without_primary():
    m = ev.Membership(GPID, 3, None, (B,), 3, 10, ())
    assert wire.from_partition_configuration(
        via_bytes(wire.to_partition_configuration(m))) == m


# ------------------------------------------------------------------------------------ catalogue
def test_catalogue_has_the_internal_replication_rpcs():
    T = thrift.type_spec
    C = thrift.consensus
    expect = {
        "RPC_PREPARE": (C.prepare_msg, C.prepare_ack),
        "RPC_GROUP_CHECK": (C.group_check_request, C.group_check_response),
        "RPC_LEARN": (C.learn_request, C.learn_response),
        "RPC_LEARN_COMPLETION_NOTIFY": (C.group_check_response, C.learn_notify_response),
        "RPC_LEARN_ADD_LEARNER": (C.group_check_request, None),
        "RPC_REMOVE_REPLICA": (thrift.metadata.replica_configuration, None),
        "RPC_QUERY_LAST_CHECKPOINT_INFO": (C.learn_request, C.learn_response),
        "RPC_NFS_COPY": (thrift.nfs.copy_request, thrift.nfs.copy_response),
        "RPC_NFS_GET_FILE_SIZE": (thrift.nfs.get_file_size_request,
                                  thrift.nfs.get_file_size_response),
    }
    for name, (arg, res) in expect.items():
        e = catalogue.get(name)
        assert e.arg_spec == T(arg) and not e.is_write
        assert e.result_spec == (None if res is None else T(res))
