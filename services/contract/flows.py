"""Flows: a tree of jobs submitted at once (`POST /api/flows`), where a parent runs only once its
children have ended, and a child may wait for siblings it depends on (`depends_on`).

Each job of a flow is an ordinary job: its created event carries `flow`, `parent`, `name` and
`children`. One that must wait is stored `blocked` first (a `JobBlocked` event holding its created
event). Whenever a job of a flow ends, a `FlowSignal` is published on `flows.<flow>.ended` (by the
processor that ended it, or whoever cancelled it); the conductor's flow runner keeps the flow's
record in the `flows` KV bucket and releases each blocked job whose jobs have all ended — or,
under the `fail` policy, ends it failed without running.

The record's rules are here, as one pure function (`transition`), tested without NATS
(tests/test_flow_state.py) like the job fold beside it; the runner only reads, acts and writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

import msgspec
from nats.js.api import KeyValueConfig, StorageType

from .events import ChildRef
from .names import Names
from .vocabulary import ChildFailurePolicy, JobStatus

MAX_FLOW_JOBS: Final = 500
SUSPENDED: Final = "suspended"  # a FlowSignal's status for an attempt that ended waiting for children


class FlowSignal(msgspec.Struct, frozen=True, kw_only=True):
    """`flows.<flow>.ended`: a job of the flow ended with this status (or `suspended`)."""

    flow: str
    job_id: str
    status: str


class SpawnedChild(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    weight: float = 1.0
    job: dict[str, Any]  # what POST /api/jobs takes


class SpawnRequest(msgspec.Struct, frozen=True, kw_only=True):
    """`flows.<flow>.spawn`: a running job added children (`ctx.spawn`) and waits for them; the flow
    runner creates them (the processor may not create jobs). Published before the job's `suspended`
    event; ids are made by the processor from the job's id and its count of children, so a repeat
    (a redelivered attempt spawning again) names the same jobs and creates none twice."""

    flow: str
    parent: str
    on_child_failure: ChildFailurePolicy = ChildFailurePolicy.FAIL
    created_subject: str  # the parent's created event (the runner publishes it again to resume it)
    children: list[SpawnedChild]
    traceparent: str | None = None  # the spawning attempt's span: the children's traces continue it


class NodeStatus(StrEnum):
    """Where one job of a flow stands, as its flow's record knows it."""

    WAITING = "waiting"  # stored blocked: waits for every job in its blocked_on to end
    RELEASED = "released"  # its created event is out (or it never waited): it runs, or will
    SPAWNING = "spawning"  # it added children while running; its attempt has not ended yet …
    SUSPENDED = "suspended"  # … now it has (`suspended`): it runs again once those children ended
    ENDED = "ended"  # it ended (`ended` says how)


class FlowNode(msgspec.Struct, kw_only=True):
    """One job of a flow in its record."""

    parent: str | None = None
    name: str | None = None  # among its siblings …
    weight: float = 1.0  # … and its share in its parent's progress
    blocked_on: list[str] = []  # ids it waits for (its children, the siblings it depends on)
    on_child_failure: ChildFailurePolicy = ChildFailurePolicy.FAIL  # what it does when a child fails
    status: NodeStatus = NodeStatus.WAITING
    ended: str | None = None  # its end status, once ENDED
    resumes: int = 0  # how often it was released again after children it spawned
    created_subject: str | None = None  # (of a job that spawned: where its created event is published again)


class FlowRecord(msgspec.Struct, kw_only=True):
    root: str
    created_at: float
    nodes: dict[str, FlowNode] = {}


class ChildOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What a parent's handler sees of one child (`ctx.children[name]`)."""

    id: str
    name: str
    status: str
    result: object = None
    error: str | None = None


# --- the API's answers ---------------------------------------------------------------------------
class FlowJob(msgspec.Struct):
    id: str
    name: str | None
    parent: str | None


class FlowAccepted(msgspec.Struct):
    """`POST /api/flows` → 202: every job of the flow, in depth-first order."""

    id: str
    jobs: list[FlowJob]
    links: dict[str, str]


class FlowTreeNode(msgspec.Struct, kw_only=True):
    """`GET /api/flows/{id}`: a job of the flow with its state, and its children's."""

    id: str
    name: str | None
    type: str
    status: str
    progress: float  # its own (1 once ended)
    rollup: float  # weighted with its children's: what a bar over the whole shows
    weight: float
    blocked_on: list[str]
    error: str | None
    children: list[FlowTreeNode]


# --- the rules: what a signal or a spawn request does to a record --------------------------------
@dataclass(frozen=True)
class Release:
    """Publish the created event kept in the job's `blocked` event (stored only if it has none)."""

    job_id: str


@dataclass(frozen=True)
class Resume:
    """Publish the job's created event again, naming its flow and every child (once per resume)."""

    flow: str
    job_id: str
    created_subject: str
    children: list[ChildRef]
    resumed: int


@dataclass(frozen=True)
class FailUnrun:
    """End the job `failed` without running it (written only if its run chain is as read)."""

    job_id: str
    detail: str


@dataclass(frozen=True)
class CreateChild:
    """Create a child a running job spawned (stored only if new; one that cannot be is stored failed)."""

    flow: str
    parent: str
    child: SpawnedChild
    traceparent: str | None = None  # the spawning attempt's: the child's trace continues it


Action = Release | Resume | FailUnrun | CreateChild


@dataclass
class Step:
    """What to do for one message: `before` the record is written (each action is refused when
    repeated, so a runner dying before the write leaves a redelivery that finishes the work once),
    then the record (None: nothing to write), then `after` it (what must find the record written)."""

    record: FlowRecord | None
    before: list[Action] = field(default_factory=list)
    after: list[Action] = field(default_factory=list)


def transition(record: FlowRecord | None, message: FlowSignal | SpawnRequest, now: float) -> Step:
    """The flow's next record and the actions it takes. Pure: `record` is not changed (a copy is)."""
    if isinstance(message, SpawnRequest):
        return _spawned(record, message, now)
    if record is None or message.job_id not in record.nodes:
        return Step(None)  # (a flow whose record is gone — expired with its jobs — or a stranger)
    record = _copied(record)
    node = record.nodes[message.job_id]
    if message.status == SUSPENDED:
        if node.status is NodeStatus.SPAWNING:
            node.status = NodeStatus.SUSPENDED
    elif node.status is not NodeStatus.ENDED:
        node.status, node.ended = NodeStatus.ENDED, message.status
    actions: list[Action] = []
    for job_id in ready(record):
        ready_node = record.nodes[job_id]
        actions.append(_release_or_fail(record, job_id))
        if ready_node.status is NodeStatus.SUSPENDED:
            ready_node.resumes += 1
        ready_node.status = NodeStatus.RELEASED
    return Step(record, before=actions)


def ready(record: FlowRecord) -> list[str]:
    """Jobs waiting (blocked, or suspended after spawning) whose every awaited job has ended."""
    return [job_id for job_id, node in record.nodes.items()
            if node.status in (NodeStatus.WAITING, NodeStatus.SUSPENDED)
            and all(record.nodes[b].status is NodeStatus.ENDED for b in node.blocked_on if b in record.nodes)]


def _release_or_fail(record: FlowRecord, job_id: str) -> Action:
    node = record.nodes[job_id]
    unfinished = [b for b in node.blocked_on if record.nodes[b].ended != JobStatus.COMPLETED]
    # A parent's own policy covers its children; a child's dependencies are its parent's to judge.
    parent = record.nodes.get(node.parent) if node.parent else None
    children = [b for b in unfinished if record.nodes[b].parent == job_id]
    siblings = [b for b in unfinished if b not in children]
    fails = (children and node.on_child_failure is ChildFailurePolicy.FAIL) or \
        (siblings and (parent is None or parent.on_child_failure is ChildFailurePolicy.FAIL))
    if fails:
        return FailUnrun(job_id, f"did not run: {', '.join(unfinished)} did not complete")
    if node.status is NodeStatus.SUSPENDED:
        assert node.created_subject is not None
        # Every child, in the order they were added (the record's: its nodes keep their order).
        children_now = [ChildRef(id=child_id, name=child.name or "", weight=child.weight)
                        for child_id, child in record.nodes.items() if child.parent == job_id]
        return Resume(record.root, job_id, node.created_subject, children_now, node.resumes + 1)
    return Release(job_id)


def _spawned(record: FlowRecord | None, request: SpawnRequest, now: float) -> Step:
    """Children a running job added: into the record first (their ends must find it), then into
    the stream, each only if new (a repeated request makes none twice)."""
    record = _copied(record) if record is not None else FlowRecord(root=request.flow, created_at=now)
    parent = record.nodes.get(request.parent)
    if parent is None:  # (a job outside any flow spawned: it becomes the root of one)
        parent = record.nodes[request.parent] = FlowNode(status=NodeStatus.RELEASED,
                                                         on_child_failure=request.on_child_failure)
    for child in request.children:
        if child.id not in record.nodes:
            record.nodes[child.id] = FlowNode(parent=request.parent, name=child.name, weight=child.weight,
                                              status=NodeStatus.RELEASED)
            parent.blocked_on = [*parent.blocked_on, child.id]
            parent.status = NodeStatus.SPAWNING
    parent.created_subject = request.created_subject
    return Step(record, after=[CreateChild(request.flow, request.parent, child, request.traceparent)
                               for child in request.children])


def _copied(record: FlowRecord) -> FlowRecord:
    return FlowRecord(root=record.root, created_at=record.created_at,
                      nodes={job_id: msgspec.structs.replace(node) for job_id, node in record.nodes.items()})


signal_decoder: Final = msgspec.json.Decoder(FlowSignal)
spawn_decoder: Final = msgspec.json.Decoder(SpawnRequest)
record_decoder: Final = msgspec.json.Decoder(FlowRecord)


def flows_bucket_config(names: Names, replicas: int) -> KeyValueConfig:
    return KeyValueConfig(bucket=names.flows_bucket, history=1, storage=StorageType.FILE, replicas=replicas)
