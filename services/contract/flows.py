"""Flows: a tree of jobs submitted at once (`POST /api/flows`), where a parent runs only once its
children have ended, and a child may wait for siblings it depends on (`depends_on`).

Each job of a flow is an ordinary job: its created event carries `flow`, `parent`, `name` and
`children`. One that must wait is stored `blocked` first (a `JobBlocked` event holding its created
event). Whenever a job of a flow ends, a `FlowSignal` is published on `flows.<flow>.ended` (by the
processor that ended it, or the gateway that cancelled it); the gateways' flow runner (one durable
shared by them) keeps the flow's record in the `flows` KV bucket and releases each blocked job whose
jobs have all ended — or, under the `fail` policy, ends it failed without running.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec
from nats.js.api import KeyValueConfig, StorageType

from .names import Names

# What a parent does when one of its children (or a sibling a child depends on) did not complete:
FAIL: Final = "fail"  # it fails without running (and so on up the tree); dependants of the child too
IGNORE: Final = "ignore"  # it runs; `ctx.children` leaves the unfinished children out
CONTINUE: Final = "continue"  # it runs and sees every child's outcome in `ctx.children`
ChildFailurePolicy = Literal["fail", "ignore", "continue"]
MAX_FLOW_JOBS: Final = 500


class FlowSignal(msgspec.Struct, frozen=True, kw_only=True):
    """`flows.<flow>.ended`: a job of the flow ended with this status."""

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
    on_child_failure: str = FAIL
    created_subject: str  # the parent's created event (the runner publishes it again to resume it)
    children: list[SpawnedChild]


class FlowNode(msgspec.Struct, kw_only=True):
    """One job of a flow in its record."""

    parent: str | None = None
    name: str | None = None  # among its siblings …
    weight: float = 1.0  # … and its share in its parent's progress
    blocked_on: list[str] = []  # ids it waits for (its children, the siblings it depends on)
    on_child_failure: str = FAIL  # its own policy (what it does when a child fails)
    ended: str | None = None  # its end status, once it ended
    released: bool = False  # its created event was published (or it never was blocked)
    spawned: bool = False  # it spawned children: runs again once they ended and it is suspended …
    suspended: bool = False  # … (its `suspended` event is stored)
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


signal_decoder: Final = msgspec.json.Decoder(FlowSignal)
spawn_decoder: Final = msgspec.json.Decoder(SpawnRequest)
record_decoder: Final = msgspec.json.Decoder(FlowRecord)


def flows_bucket_config(names: Names, replicas: int) -> KeyValueConfig:
    return KeyValueConfig(bucket=names.flows_bucket, history=1, storage=StorageType.FILE, replicas=replicas)
