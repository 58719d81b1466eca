"""Data of the PacificA replica core (``replica/pacifica.py``): the messages it exchanges and the
effects it returns. Frozen dataclasses only; no behaviour (design rule 2).

Three groups:

* **Values**: ``Update`` / ``Mutation`` — a local stand-in for ``replica/mutation.py`` (being
  written separately; swap ``Mutation`` for that type once it lands: the core only uses
  ``gpid, ballot, decree, last_committed_decree, timestamp_us, updates`` and
  ``dataclasses.replace``), ``ReplicaConfig`` (upstream ``replica_configuration``: what a peer is
  told its role is) and ``Membership`` (upstream ``partition_configuration``, as the meta stores
  it).
* **Messages** between replica cores (the driver maps each to its upstream struct and RPC, D2):
  ``Prepare`` = RPC_PREPARE ``prepare_msg``, ``PrepareAck`` = ``prepare_ack``, ``GroupCheck`` =
  RPC_GROUP_CHECK ``group_check_request``, ``GroupCheckReply`` = ``group_check_response``,
  ``AddLearner`` = RPC_LEARN_ADD_LEARNER (a ``group_check_request``), ``LearnRequest`` /
  ``LearnResponse`` = RPC_LEARN, ``LearnCompletion`` = RPC_LEARN_COMPLETION_NOTIFY (a
  ``group_check_response``), ``LearnNotifyReply`` = ``learn_notify_response``,
  ``RemoveReplica`` = RPC_REMOVE_REPLICA. Reply messages (acks, replies, responses) are the
  answers of the RPC that carried the request; the driver correlates them (``LearnRequest.seq``
  is that correlation made explicit, it is not a wire field). Meta-facing: ``ConfigProposal`` =
  RPC_CONFIG_PROPOSAL (meta -> replica), ``ReportToMeta`` = RPC_CM_UPDATE_PARTITION_CONFIGURATION
  (the reply comes back through ``ReplicaCore.on_meta_update_reply``).
* **Effects** the driver performs: ``Send``, ``AppendLog``, ``Apply``, ``ReplyClient``,
  ``ReportToMeta``, ``PersistBallot``, ``DiscardLogAfter``, ``ResetStorage``,
  ``SendLearnResponse``, ``InstallCheckpoint``, ``StatusChanged``.

Must not import gevent, socket, time, rocksdict or thrift: addresses are opaque hashable values
(``base.RpcAddress`` in the servers, plain strings in the simulation).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Tuple

# partition_status (idl metadata.thrift)
PS_INVALID, PS_INACTIVE, PS_ERROR, PS_PRIMARY, PS_SECONDARY, PS_POTENTIAL_SECONDARY = range(6)
STATUS_NAMES = {PS_INVALID: "PS_INVALID", PS_INACTIVE: "PS_INACTIVE", PS_ERROR: "PS_ERROR",
                PS_PRIMARY: "PS_PRIMARY", PS_SECONDARY: "PS_SECONDARY",
                PS_POTENTIAL_SECONDARY: "PS_POTENTIAL_SECONDARY"}

# learner_status (consensus.thrift)
LEARNING_INVALID, LEARNING_WITHOUT_PREPARE, LEARNING_WITH_PREPARE_TRANSIENT, \
    LEARNING_WITH_PREPARE, LEARNING_SUCCEEDED, LEARNING_FAILED = range(6)

# learn_type
LT_INVALID, LT_CACHE, LT_APP, LT_LOG = range(4)

# config_type (meta_admin.thrift)
CT_INVALID, CT_ASSIGN_PRIMARY, CT_UPGRADE_TO_PRIMARY, CT_ADD_SECONDARY, CT_UPGRADE_TO_SECONDARY, \
    CT_DOWNGRADE_TO_SECONDARY, CT_DOWNGRADE_TO_INACTIVE, CT_REMOVE, CT_ADD_SECONDARY_FOR_LB, \
    CT_PRIMARY_FORCE_UPDATE_BALLOT = range(10)

RPC_WRITE_EMPTY = "RPC_REPLICATION_WRITE_EMPTY"


# ------------------------------------------------------------------------------------ values
@dataclass(frozen=True)
class Update:
    """One client request inside a mutation: the RPC name, its argument (opaque to the core)
    and its size in bytes (bounds batching only)."""
    code: str
    payload: Any = None
    size: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Mutation:
    """Stand-in for ``replica/mutation.Mutation`` (see the module docstring)."""
    gpid: Any
    ballot: int
    decree: int
    last_committed_decree: int
    timestamp_us: int
    updates: Tuple[Update, ...] = ()

    @property
    def is_empty_write(self) -> bool:
        return all(u.code == RPC_WRITE_EMPTY for u in self.updates)


@dataclass(frozen=True)
class ReplicaConfig:
    """upstream ``replica_configuration``: the receiver's expected role."""
    gpid: Any
    ballot: int
    primary: Any
    status: int
    learner_signature: int = 0


@dataclass(frozen=True)
class Membership:
    """upstream ``partition_configuration`` as the meta stores it."""
    gpid: Any
    ballot: int
    primary: Any = None
    secondaries: Tuple[Any, ...] = ()
    max_replica_count: int = 3
    last_committed_decree: int = 0
    last_drops: Tuple[Any, ...] = ()

    def members(self) -> Tuple[Any, ...]:
        return ((self.primary,) if self.primary is not None else ()) + tuple(self.secondaries)


# ------------------------------------------------------------------------------------ messages
@dataclass(frozen=True)
class Prepare:
    config: ReplicaConfig
    mutation: Mutation


@dataclass(frozen=True)
class PrepareAck:
    gpid: Any
    err: str
    ballot: int
    decree: int
    last_committed_decree_in_app: int
    last_committed_decree_in_prepare_list: int


@dataclass(frozen=True)
class GroupCheck:
    config: ReplicaConfig
    last_committed_decree: int


@dataclass(frozen=True)
class GroupCheckReply:
    gpid: Any
    err: str
    node: Any
    last_committed_decree_in_app: int
    last_committed_decree_in_prepare_list: int
    learner_status: int = LEARNING_INVALID
    learner_signature: int = 0


@dataclass(frozen=True)
class AddLearner:
    config: ReplicaConfig
    last_committed_decree: int


@dataclass(frozen=True)
class LearnRequest:
    gpid: Any
    learner: Any
    signature: int
    last_committed_decree_in_app: int
    last_committed_decree_in_prepare_list: int
    seq: int = 0


@dataclass(frozen=True)
class LearnState:
    from_decree_excluded: int = 0
    to_decree_included: int = 0
    mutations: Tuple[Mutation, ...] = ()   # LT_CACHE (state.meta) and, in the simulation, LT_LOG
    files: Any = None                      # LT_APP / LT_LOG: what the driver copies


@dataclass(frozen=True)
class LearnResponse:
    gpid: Any
    err: str
    config: Optional[ReplicaConfig]
    last_committed_decree: int = 0
    prepare_start_decree: int = -1
    type: int = LT_INVALID
    state: LearnState = field(default_factory=LearnState)
    learnee: Any = None
    seq: int = 0


@dataclass(frozen=True)
class LearnCompletion:
    gpid: Any
    node: Any
    signature: int
    last_committed_decree_in_app: int
    last_committed_decree_in_prepare_list: int


@dataclass(frozen=True)
class LearnNotifyReply:
    gpid: Any
    err: str
    signature: int


@dataclass(frozen=True)
class RemoveReplica:
    config: ReplicaConfig


@dataclass(frozen=True)
class ConfigProposal:
    """RPC_CONFIG_PROPOSAL from the meta (``configuration_update_request``)."""
    type: int
    node: Any
    config: Membership


# ------------------------------------------------------------------------------------ effects
@dataclass(frozen=True)
class Send:
    """Deliver ``msg`` to the replica core of the same partition on node ``to``."""
    to: Any
    msg: Any


@dataclass(frozen=True)
class AppendLog:
    """Append to the private log; when written, call ``on_log_appended(decree, ballot)``."""
    gpid: Any
    mutation: Mutation


@dataclass(frozen=True)
class Apply:
    """Apply a committed mutation to storage (decree = storage LCD + 1, always in order)."""
    gpid: Any
    mutation: Mutation


@dataclass(frozen=True)
class ReplyClient:
    """Answer client write requests: ``err`` ERR_OK means "reply to ``clients[i]`` with the
    response of update ``i`` of the ``Apply`` of ``decree``" (returned just before; a batched
    mutation carries one update per client); any other ``err`` is the error reply."""
    gpid: Any
    clients: Tuple[Any, ...]
    err: str
    decree: int = 0


@dataclass(frozen=True)
class ReportToMeta:
    """RPC_CM_UPDATE_PARTITION_CONFIGURATION; answer through ``on_meta_update_reply``."""
    gpid: Any
    type: int
    node: Any
    config: Membership


@dataclass(frozen=True)
class PersistBallot:
    """Persist the ballot (``.init-info``) before anything else is sent at it.
    ``member_ballot`` is the ballot of the last configuration this replica was a member of
    (PRIMARY or SECONDARY); it is what config sync reports for the DDD decision (§6.4), while
    ``ballot`` also counts configurations merely seen (fencing)."""
    gpid: Any
    ballot: int
    member_ballot: int = 0


@dataclass(frozen=True)
class DiscardLogAfter:
    """Drop private-log mutations above ``decree`` (uncommitted leftovers of an older
    membership; the learner starts over from its committed state)."""
    gpid: Any
    decree: int


@dataclass(frozen=True)
class ResetStorage:
    """Wipe the storage (upstream renames the data dir to ``.discarded``) and reopen empty."""
    gpid: Any


@dataclass(frozen=True)
class SendLearnResponse:
    """Learnee: send ``response`` to ``to`` after filling its state: ``fill`` = LT_LOG -> the
    committed mutations in (from_decree_excluded, to_decree_included] from the private log;
    LT_APP -> a fresh storage checkpoint (files, to_decree_included = its decree)."""
    to: Any
    response: LearnResponse
    fill: int


@dataclass(frozen=True)
class InstallCheckpoint:
    """Learner: copy the checkpoint described by ``state`` from ``source``; if
    ``checkpoint_wanted(seq)`` still holds when the copy is done, make it the live store and call
    ``on_checkpoint_installed(decree, seq)`` (or ``on_checkpoint_install_failed(seq)``); a copy
    for an earlier round must not replace the store (a newer round may have applied more)."""
    gpid: Any
    source: Any
    state: LearnState
    seq: int = 0            # the learning round; ask ``checkpoint_wanted(seq)`` before swapping


@dataclass(frozen=True)
class StatusChanged:
    gpid: Any
    old: int
    new: int
    ballot: int
