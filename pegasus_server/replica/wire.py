"""Wire form of the PacificA core's messages: pure conversions between the dataclasses of
``replica/events.py`` and upstream's server-internal Thrift structs (spec D2; replication.md
§3.4, §5, §6.7, §7.2, §7.5; idl-structs.md for consensus / metadata / layer2 / meta_admin / nfs).

Nothing here does I/O: every function takes a value and returns a value. The driver picks the RPC
(the internal entries of ``rpc/catalogue.py``), sends the struct over THFT, and hands the decoded struct back to the
matching ``from_*`` function before calling the core.

Mapping (``to_*`` builds the struct, ``from_*`` rebuilds the message)::

    events.Prepare          <-> consensus.prepare_msg            RPC_PREPARE
    events.PrepareAck       <-> consensus.prepare_ack            (its reply)
    events.GroupCheck       <-> consensus.group_check_request    RPC_GROUP_CHECK
    events.GroupCheckReply  <-> consensus.group_check_response   (its reply)
    events.AddLearner       <-> consensus.group_check_request    RPC_LEARN_ADD_LEARNER (one-way)
    events.LearnRequest     <-> consensus.learn_request          RPC_LEARN
    events.LearnResponse    <-> consensus.learn_response         (its reply; learn_state inside)
    events.LearnCompletion  <-> consensus.group_check_response   RPC_LEARN_COMPLETION_NOTIFY
    events.LearnNotifyReply <-> consensus.learn_notify_response  (its reply)
    events.RemoveReplica    <-> metadata.replica_configuration   RPC_REMOVE_REPLICA (one-way)
    events.ConfigProposal   <-> meta_admin.configuration_update_request  RPC_CONFIG_PROPOSAL
    events.ReportToMeta      -> meta_admin.configuration_update_request
                               RPC_CM_UPDATE_PARTITION_CONFIGURATION, whose
    configuration_update_response -> (err, Membership) for ReplicaCore.on_meta_update_reply
    events.Membership       <-> layer2.partition_configuration
    events.ReplicaConfig    <-> metadata.replica_configuration

Values: gpids are ``base.Gpid`` (any 2-tuple is accepted going out), addresses are
``base.RpcAddress``; a ``None`` address (no primary) goes out as the invalid address (0) and an
invalid address comes back as ``None``. Error codes are their names (``errors.ERR_OK``).

What the core's dataclasses carry that upstream has no field for, and how it travels:

* ``LearnRequest.seq`` / ``LearnResponse.seq`` (the learning round number): no wire field. It is
  the RPC's own request/response pairing: the driver remembers the ``seq`` of the RPC_LEARN it
  sent and passes it to ``from_learn_response(..., seq=)`` for that call's reply (the receiver
  of a request gets ``seq`` 0, or whatever the driver passes, and the core only echoes it).
* ``LearnResponse.gpid``: ``learn_response`` has no pid; the driver passes the gpid of the
  request (``from_learn_response(..., gpid=)``).
* ``PrepareAck`` / ``GroupCheckReply`` / ``LearnNotifyReply`` are RPC replies: which prepare /
  group check / notify they answer is again the RPC pairing (the sender is the node the request
  went to).
* ``GroupCheck`` / ``AddLearner``: the target ``node`` is the ``Send.to`` of the effect and the
  ``app`` (``layer2.app_info``) is the driver's; both are arguments of the ``to_*`` function.
  ``from_*`` drops them: the driver reads ``struct.app`` itself (a learner creating a replica on
  RPC_LEARN_ADD_LEARNER needs it).
* ``ConfigProposal`` / ``ReportToMeta``: ``info`` (app_info) is likewise an argument and is
  not in the dataclass; ``host_node`` (deprecated) and ``partition_flags`` are written as zero.
* ``LearnResponse.config`` may be ``None`` (error replies); ``learn_response.config`` is not
  optional, so ``None`` goes out as the default ``replica_configuration`` (status PS_INVALID)
  and a config with status PS_INVALID comes back as ``None``.
* ``LearnState.mutations`` travel in ``learn_state.meta`` as back-to-back §4.2 mutations
  (``mutation.encode``), whatever the learn type (upstream uses ``meta`` for LT_CACHE; the core's
  simulation also fills it for LT_LOG, which is harmless on the wire). ``LearnState.files`` is a
  ``LearnFiles`` (below) — the file names relative to ``base_local_dir`` — or ``None``; a plain
  sequence of names is accepted going out (base dir "").
* ``LearnCompletion`` has no err / learner status: it goes out with ERR_OK and
  LearningSucceeded; ``from_learn_completion`` raises ``WireError`` for a report that is not
  (upstream then answers ERR_INVALID_STATE; the driver should do the same).

Upstream fields the core does not model are written as defaults / omitted (optionals ``None``):
``replica_configuration.pop_all`` / ``split_sync_to_child`` (``to_prepare_msg(pop_all=)`` sets
the first), ``prepare_ack`` receive/response timestamps (tracing only), ``group_check_request``
``confirmed_decree`` / ``child_gpid`` / ``meta_split_status`` (``to_group_check_request(
confirmed_decree=)``), ``group_check_response`` ``is_split_stopped`` / ``disk_status``
(``to_group_check_reply(disk_status=)``), ``learn_request`` ``app_specific_learn_request``
(empty) / ``max_gced_decree`` / ``checksum_type``, ``learn_state`` ``learn_start_decree`` /
``file_sizes`` / ``file_checksums`` (duplication follower only), ``learn_response``
``replica_disk_tag``, and every ``hp_*`` host_port twin (D1: omitted on THFT between our
servers).

Mutations: ``Prepare.mutation`` (and ``LearnState.mutations``) may be the real
``replica/mutation.Mutation`` or the ``events.Mutation`` stand-in; ``to_real_mutation``
converts the stand-in. The stand-in lacks ``log_offset`` (-1 = not logged), each update's
``serialization_type`` and ``start_time_ns``; its ``Update.payload`` becomes the update's
``data``: bytes are taken verbatim (DSF_THRIFT_BINARY), ``None`` on ``RPC_REPLICATION_WRITE_EMPTY``
is upstream's empty update (DSF_INVALID, no data), a ``mutation.Update`` is used as is, and any
other object is a client request encoded with ``mutation.update_from_request`` (the code must be
a storage write RPC). Decoding always yields ``mutation.Mutation`` (the core accepts it: same
attribute names, ``is_empty_write``). ``to_stand_in`` goes back (payload = data bytes, or None
for empty writes) for tests and the simulation.

The internal replication RPCs and their structs are entries of ``rpc/catalogue.py``.

Must not import gevent, socket or storage code (imports only base, errors, rpc.thrift and
replica.events / replica.mutation).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from pegasus_server import errors as E
from pegasus_server.base import INVALID_ADDRESS, Gpid, RpcAddress
from pegasus_server.errors import ProtocolError
from pegasus_server.replica import events as ev
from pegasus_server.replica import mutation as mu
from pegasus_server.rpc import thrift

# Proposed additions to rpc/catalogue.py's _TABLE (replication.md §5, §7.5; upstream task code
# names). name -> (argument type, result type or None for one-way). None of them is a storage
# write (the third _TABLE column is False for all).
class WireError(ProtocolError):
    """A well-formed struct that does not map to a core message (missing mutation, a learn
    completion report that is not LearningSucceeded...)."""


@dataclass(frozen=True)
class LearnFiles:
    """``LearnState.files`` on a server: ``names`` relative to ``base_dir``
    (``learn_response.base_local_dir`` on the learnee) to copy with RPC_NFS_* (§7.3, §7.5)."""
    base_dir: str = ""
    names: Tuple[str, ...] = ()


# ------------------------------------------------------------------------------------ helpers
def _gpid(g) -> Gpid:
    return g if isinstance(g, Gpid) else Gpid(*g)


def _gpid_in(g) -> Gpid:
    return Gpid(0, 0) if g is None else Gpid(*g)


def _addr_out(a) -> RpcAddress:
    return INVALID_ADDRESS if a is None else a


def _addr_in(a) -> Optional[RpcAddress]:
    return None if a is None or a.is_invalid else a


def _int(v, default: int = 0) -> int:
    return default if v is None else v


# ------------------------------------------------------------------------------------ mutations
def to_real_mutation(m) -> mu.Mutation:
    """The ``replica/mutation.Mutation`` for ``m`` (returned unchanged if it already is one)."""
    if isinstance(m, mu.Mutation):
        return m
    return mu.Mutation(_gpid(m.gpid), m.ballot, m.decree, m.last_committed_decree,
                       m.timestamp_us, tuple(_real_update(u) for u in m.updates))


def _real_update(u) -> mu.Update:
    if isinstance(u, mu.Update):
        return u
    p = u.payload
    if isinstance(p, mu.Update):
        return p
    if p is None:
        if u.code == ev.RPC_WRITE_EMPTY:
            return mu.EMPTY_UPDATE
        return mu.Update(u.code, mu.DSF_THRIFT_BINARY, b"")
    if isinstance(p, (bytes, bytearray, memoryview)):
        return mu.Update(u.code, mu.DSF_THRIFT_BINARY, bytes(p))
    return mu.update_from_request(u.code, p)


def to_stand_in(m) -> ev.Mutation:
    """``events.Mutation`` from a real mutation (payload = data; None for empty writes).
    Loses ``log_offset``, ``serialization_type`` and ``start_time_ns``."""
    if isinstance(m, ev.Mutation):
        return m
    return ev.Mutation(m.gpid, m.ballot, m.decree, m.last_committed_decree, m.timestamp_us,
                       tuple(ev.Update(u.code, None if u.is_empty_write else u.data)
                             for u in m.updates))


def encode_mutations(mutations: Sequence) -> bytes:
    """Back-to-back §4.2 mutations (``learn_state.meta`` for LT_CACHE)."""
    return b"".join(mu.encode(to_real_mutation(m)) for m in mutations)


def decode_mutations(blob: Optional[bytes]) -> Tuple[mu.Mutation, ...]:
    return tuple(mu.decode_all(blob)) if blob else ()


# ------------------------------------------------------------------------------------ configs
def to_replica_configuration(cfg: ev.ReplicaConfig, pop_all: Optional[bool] = None):
    return thrift.metadata.replica_configuration(
        pid=_gpid(cfg.gpid), ballot=cfg.ballot, primary=_addr_out(cfg.primary),
        status=cfg.status, learner_signature=cfg.learner_signature, pop_all=pop_all,
        split_sync_to_child=None, hp_primary=None)


def from_replica_configuration(s) -> ev.ReplicaConfig:
    return ev.ReplicaConfig(_gpid_in(s.pid), _int(s.ballot), _addr_in(s.primary),
                            _int(s.status, ev.PS_INVALID), _int(s.learner_signature))


def to_partition_configuration(m: ev.Membership):
    return thrift.layer2.partition_configuration(
        pid=_gpid(m.gpid), ballot=m.ballot, max_replica_count=m.max_replica_count,
        primary=_addr_out(m.primary), secondaries=list(m.secondaries),
        last_drops=list(m.last_drops), last_committed_decree=m.last_committed_decree,
        partition_flags=0, hp_primary=None, hp_secondaries=None, hp_last_drops=None)


def from_partition_configuration(s) -> ev.Membership:
    return ev.Membership(_gpid_in(s.pid), _int(s.ballot), _addr_in(s.primary),
                         tuple(s.secondaries or ()), _int(s.max_replica_count),
                         _int(s.last_committed_decree), tuple(s.last_drops or ()))


# ------------------------------------------------------------------------------------ prepare
def to_prepare_msg(msg: ev.Prepare, pop_all: Optional[bool] = None):
    """RPC_PREPARE body; the gpid also travels in the THFT header (§3.4)."""
    return thrift.consensus.prepare_msg(
        config=to_replica_configuration(msg.config, pop_all),
        mu=mu.to_mutation_data(to_real_mutation(msg.mutation)))


def from_prepare_msg(s) -> ev.Prepare:
    if s.config is None or s.mu is None:
        raise WireError("prepare_msg without config or mutation")
    return ev.Prepare(from_replica_configuration(s.config), mu.from_mutation_data(s.mu))


def to_prepare_ack(a: ev.PrepareAck):
    return thrift.consensus.prepare_ack(
        pid=_gpid(a.gpid), err=a.err, ballot=a.ballot, decree=a.decree,
        last_committed_decree_in_app=a.last_committed_decree_in_app,
        last_committed_decree_in_prepare_list=a.last_committed_decree_in_prepare_list,
        receive_timestamp=None, response_timestamp=None)


def from_prepare_ack(s) -> ev.PrepareAck:
    return ev.PrepareAck(_gpid_in(s.pid), s.err or E.ERR_OK, _int(s.ballot), _int(s.decree),
                         _int(s.last_committed_decree_in_app),
                         _int(s.last_committed_decree_in_prepare_list))


# ------------------------------------------------------------------------------------ group check
def _group_check_request(config, lcd, node, app, confirmed_decree):
    return thrift.consensus.group_check_request(
        app=app if app is not None else thrift.layer2.app_info(),
        node=_addr_out(node), config=to_replica_configuration(config),
        last_committed_decree=lcd, confirmed_decree=confirmed_decree, child_gpid=None,
        meta_split_status=None, hp_node=None)


def to_group_check_request(msg: ev.GroupCheck, node, app=None,
                           confirmed_decree: Optional[int] = None):
    """RPC_GROUP_CHECK to ``node`` (the ``Send.to``); ``app`` is the table's ``app_info``."""
    return _group_check_request(msg.config, msg.last_committed_decree, node, app,
                                confirmed_decree)


def from_group_check_request(s) -> ev.GroupCheck:
    if s.config is None:
        raise WireError("group_check_request without config")
    return ev.GroupCheck(from_replica_configuration(s.config), _int(s.last_committed_decree))


def to_add_learner(msg: ev.AddLearner, node, app=None):
    """RPC_LEARN_ADD_LEARNER (one-way) to learner ``node``: a ``group_check_request``."""
    return _group_check_request(msg.config, msg.last_committed_decree, node, app, None)


def from_add_learner(s) -> ev.AddLearner:
    if s.config is None:
        raise WireError("add learner request without config")
    return ev.AddLearner(from_replica_configuration(s.config), _int(s.last_committed_decree))


def to_group_check_reply(r: ev.GroupCheckReply, disk_status: Optional[int] = None):
    return thrift.consensus.group_check_response(
        pid=_gpid(r.gpid), err=r.err,
        last_committed_decree_in_app=r.last_committed_decree_in_app,
        last_committed_decree_in_prepare_list=r.last_committed_decree_in_prepare_list,
        learner_status_=r.learner_status, learner_signature=r.learner_signature,
        node=_addr_out(r.node), is_split_stopped=None, disk_status=disk_status, hp_node=None)


def from_group_check_reply(s) -> ev.GroupCheckReply:
    return ev.GroupCheckReply(_gpid_in(s.pid), s.err or E.ERR_OK, _addr_in(s.node),
                              _int(s.last_committed_decree_in_app),
                              _int(s.last_committed_decree_in_prepare_list),
                              _int(s.learner_status_, ev.LEARNING_INVALID),
                              _int(s.learner_signature))


# ------------------------------------------------------------------------------------ learning
def to_learn_request(r: ev.LearnRequest, max_gced_decree: Optional[int] = None):
    """RPC_LEARN. ``r.seq`` is not sent: the driver keeps it with the pending call."""
    return thrift.consensus.learn_request(
        pid=_gpid(r.gpid), learner=_addr_out(r.learner), signature=r.signature,
        last_committed_decree_in_app=r.last_committed_decree_in_app,
        last_committed_decree_in_prepare_list=r.last_committed_decree_in_prepare_list,
        app_specific_learn_request=b"", max_gced_decree=max_gced_decree, hp_learner=None,
        checksum_type=None)


def from_learn_request(s, seq: int = 0) -> ev.LearnRequest:
    return ev.LearnRequest(_gpid_in(s.pid), _addr_in(s.learner), _int(s.signature),
                           _int(s.last_committed_decree_in_app),
                           _int(s.last_committed_decree_in_prepare_list), seq)


def _files_out(files) -> Tuple[str, list]:
    if files is None:
        return "", []
    if isinstance(files, LearnFiles):
        return files.base_dir, list(files.names)
    if isinstance(files, (str, bytes)):
        raise TypeError("LearnState.files must be a LearnFiles or a sequence of names")
    return "", list(files)


def to_learn_state(st: ev.LearnState):
    """``learn_state`` (without ``base_local_dir``, which is a ``learn_response`` field)."""
    _, names = _files_out(st.files)
    return thrift.consensus.learn_state(
        from_decree_excluded=st.from_decree_excluded, to_decree_included=st.to_decree_included,
        meta=encode_mutations(st.mutations), files=names, learn_start_decree=None,
        file_sizes=None, file_checksums=None)


def from_learn_state(s, base_local_dir: Optional[str] = "") -> ev.LearnState:
    names = tuple(s.files or ())
    base = base_local_dir or ""
    files = LearnFiles(base, names) if (names or base) else None
    return ev.LearnState(_int(s.from_decree_excluded), _int(s.to_decree_included),
                         decode_mutations(s.meta), files)


def to_learn_response(r: ev.LearnResponse):
    """The reply of RPC_LEARN. ``r.gpid`` and ``r.seq`` are not sent (RPC pairing)."""
    base, _ = _files_out(r.state.files)
    cfg = (to_replica_configuration(r.config) if r.config is not None else
           thrift.metadata.replica_configuration(pop_all=None, split_sync_to_child=None))
    return thrift.consensus.learn_response(
        err=r.err, config=cfg, last_committed_decree=r.last_committed_decree,
        prepare_start_decree=r.prepare_start_decree, type=r.type,
        state=to_learn_state(r.state), learnee=_addr_out(r.learnee), base_local_dir=base,
        replica_disk_tag=None, hp_learnee=None)


def from_learn_response(s, gpid, seq: int = 0) -> ev.LearnResponse:
    """``gpid`` and ``seq`` are those of the RPC_LEARN this answers (kept by the driver)."""
    cfg = None
    if s.config is not None and _int(s.config.status, ev.PS_INVALID) != ev.PS_INVALID:
        cfg = from_replica_configuration(s.config)
    state = (from_learn_state(s.state, s.base_local_dir) if s.state is not None
             else ev.LearnState())
    return ev.LearnResponse(_gpid(gpid), s.err or E.ERR_OK, cfg,
                            _int(s.last_committed_decree), _int(s.prepare_start_decree, -1),
                            _int(s.type, ev.LT_INVALID), state, _addr_in(s.learnee), seq)


def to_learn_completion(c: ev.LearnCompletion):
    """RPC_LEARN_COMPLETION_NOTIFY: a ``group_check_response`` with ERR_OK and
    LearningSucceeded (§7.1 step 4)."""
    return thrift.consensus.group_check_response(
        pid=_gpid(c.gpid), err=E.ERR_OK,
        last_committed_decree_in_app=c.last_committed_decree_in_app,
        last_committed_decree_in_prepare_list=c.last_committed_decree_in_prepare_list,
        learner_status_=ev.LEARNING_SUCCEEDED, learner_signature=c.signature,
        node=_addr_out(c.node), is_split_stopped=None, disk_status=None, hp_node=None)


def from_learn_completion(s) -> ev.LearnCompletion:
    """Raises ``WireError`` unless the report says LearningSucceeded (upstream answers
    ERR_INVALID_STATE then; so should the driver)."""
    if _int(s.learner_status_, ev.LEARNING_INVALID) != ev.LEARNING_SUCCEEDED:
        raise WireError(f"learn completion report with learner status {s.learner_status_}")
    return ev.LearnCompletion(_gpid_in(s.pid), _addr_in(s.node), _int(s.learner_signature),
                              _int(s.last_committed_decree_in_app),
                              _int(s.last_committed_decree_in_prepare_list))


def to_learn_notify_reply(r: ev.LearnNotifyReply):
    return thrift.consensus.learn_notify_response(pid=_gpid(r.gpid), err=r.err,
                                                  signature=r.signature)


def from_learn_notify_reply(s) -> ev.LearnNotifyReply:
    return ev.LearnNotifyReply(_gpid_in(s.pid), s.err or E.ERR_OK, _int(s.signature))


# ------------------------------------------------------------------------------------ removal
def to_remove_replica(msg: ev.RemoveReplica):
    """RPC_REMOVE_REPLICA (one-way): the bare ``replica_configuration``."""
    return to_replica_configuration(msg.config)


def from_remove_replica(s) -> ev.RemoveReplica:
    return ev.RemoveReplica(from_replica_configuration(s))


# ------------------------------------------------------------------------------------ meta
def _update_request(type_: int, node, config: ev.Membership, app):
    return thrift.meta_admin.configuration_update_request(
        info=app if app is not None else thrift.layer2.app_info(),
        config=to_partition_configuration(config), type=type_, node=_addr_out(node),
        host_node=INVALID_ADDRESS, meta_split_status=None, hp_node=None)


def to_config_proposal(p: ev.ConfigProposal, app=None):
    """RPC_CONFIG_PROPOSAL (meta -> replica, one-way); ``app`` is the table's ``app_info``."""
    return _update_request(p.type, p.node, p.config, app)


def from_config_proposal(s) -> ev.ConfigProposal:
    """The driver reads ``s.info`` itself (a CT_ASSIGN_PRIMARY target may have to create the
    replica)."""
    if s.config is None:
        raise WireError("configuration_update_request without config")
    return ev.ConfigProposal(_int(s.type, ev.CT_INVALID), _addr_in(s.node),
                             from_partition_configuration(s.config))


def to_update_request(r: ev.ReportToMeta, app=None):
    """RPC_CM_UPDATE_PARTITION_CONFIGURATION (replica -> meta) for a ``ReportToMeta`` effect."""
    return _update_request(r.type, r.node, r.config, app)


def from_update_request(s) -> ev.ReportToMeta:
    if s.config is None:
        raise WireError("configuration_update_request without config")
    m = from_partition_configuration(s.config)
    return ev.ReportToMeta(m.gpid, _int(s.type, ev.CT_INVALID), _addr_in(s.node), m)


def to_update_response(err: str, config: Optional[ev.Membership]):
    return thrift.meta_admin.configuration_update_response(
        err=err, config=(to_partition_configuration(config) if config is not None
                         else thrift.layer2.partition_configuration()))


def from_update_response(s) -> Tuple[str, Optional[ev.Membership]]:
    """``(err, config)`` for ``ReplicaCore.on_meta_update_reply``; config None when absent
    (an all-default partition_configuration, i.e. pid 0.0)."""
    cfg = None
    if s.config is not None and s.config.pid is not None and tuple(s.config.pid) != (0, 0):
        cfg = from_partition_configuration(s.config)
    return s.err or E.ERR_OK, cfg
