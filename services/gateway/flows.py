"""Flows from the gateway: submit a tree of jobs at once, read it back with its progress rolled up,
cancel it as a whole (contract/flows.py says how a flow runs).

Creation is all or nothing at validation (every job spec, every name and dependency, no cycle),
then the flow's record is stored and its jobs published: those that wait (a parent; a child with
`depends_on`) as `blocked`, the others as pending jobs. Ids: the root is a new job id, its
descendants `<root>-<n>` in depth-first order, each stored only if new, so a retried flow (the same
`Idempotency-Key`) never makes a job twice.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from functools import partial

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from jobline.contract.events import ChildRef, JobBlocked, JobCreated, encoder
from jobline.contract.flows import MAX_FLOW_JOBS, ChildFailurePolicy, FlowNode, FlowRecord, flows_bucket_config, record_decoder
from jobline.contract.job_state import JobState
from jobline.contract.names import Names, is_valid_job_id
from jobline.contract.vocabulary import TERMINAL_STATUSES
from jobline.runtime.buckets import key_value
from jobline.runtime.concurrency import bounded

from . import new_jobs
from .core import (
    Core,
    JobSubmission,
    cancel,
    check_idempotency_key,
    check_job_id,
    created_event,
    lookup_job,
    new_job_id,
    validate,
)
from .idempotency import claim, fingerprint, release
from .limits import MAX_FLOW_DEPTH
from .problems import Problem


class FlowChild(msgspec.Struct, forbid_unknown_fields=True):
    """A job of a flow below its root: what `POST /api/jobs` takes (`job`), its name among its
    siblings, the siblings it waits for, its weight in its parent's progress, its own children."""

    job: JobSubmission
    name: str | None = None
    depends_on: list[str] = []
    weight: float = 1.0
    children: list[FlowChild] = []
    on_child_failure: ChildFailurePolicy = "fail"


class FlowSubmission(msgspec.Struct, forbid_unknown_fields=True):
    job: JobSubmission  # the root: runs once every child has ended
    children: list[FlowChild]
    on_child_failure: ChildFailurePolicy = "fail"


class FlowJob(msgspec.Struct):
    id: str
    name: str | None
    parent: str | None


class FlowAccepted(msgspec.Struct):
    id: str
    jobs: list[FlowJob]
    links: dict[str, str]


class FlowTreeNode(msgspec.Struct, kw_only=True):
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


# Not strict, as Litestar converts the body of POST /api/jobs and /api/batches: `max_attempts: 23.0`
# (an integer in JSON Schema's sense) is taken alike on every route.
_submission_decoder = msgspec.json.Decoder(FlowSubmission, strict=False)


def links(flow_id: str) -> dict[str, str]:
    return {"self": f"/api/flows/{flow_id}", "root": f"/api/jobs/{flow_id}", "cancel": f"/api/flows/{flow_id}/cancel"}


async def open_bucket(js: JetStreamContext, names: Names, replicas: int) -> KeyValue:
    return await key_value(js, flows_bucket_config(names, replicas))


def decode(body: bytes) -> FlowSubmission:
    try:
        return _submission_decoder.decode(body)
    except msgspec.DecodeError as exc:  # (ValidationError too: a mistyped or unknown field)
        raise Problem(400, "Invalid flow", str(exc), errors=[{"source": "body", "message": str(exc)}]) from None


@dataclass
class _Planned:
    """One job of the flow as it will be stored."""

    id: str
    path: str  # where its spec is in the request (`children[1].children[0]`): for problems
    submission: JobSubmission
    name: str | None
    parent: str | None
    weight: float
    on_child_failure: str
    depends_on: list[str] = field(default_factory=list)  # ids
    children: list[ChildRef] = field(default_factory=list)

    @property
    def blocked_on(self) -> list[str]:
        return [c.id for c in self.children] + self.depends_on


def _refused(path: str, detail: str) -> Problem:
    return Problem(422, "Invalid flow", detail, errors=[{"key": path, "source": "body", "message": detail}])


def plan(root_id: str, submission: FlowSubmission) -> list[_Planned]:
    """Every job of the flow in depth-first order, with ids, names and what each waits for; a
    problem naming the place of the first bad name, dependency or cycle."""
    planned: list[_Planned] = []
    root = _Planned(id=root_id, path="job", submission=submission.job, name=None, parent=None, weight=1.0,
                    on_child_failure=submission.on_child_failure)
    planned.append(root)

    def expand(parent: _Planned, children: list[FlowChild], path: str, depth: int) -> None:
        if not children and parent.parent is None:
            raise _refused("children", "a flow has at least one child")
        if children and depth > MAX_FLOW_DEPTH:
            raise _refused(path, f"{path}: a flow is at most {MAX_FLOW_DEPTH} levels deep below its root")
        mine: list[_Planned] = []
        for index, child in enumerate(children):
            where = f"{path}[{index}]"
            name = child.name if child.name is not None else str(index)
            if not is_valid_job_id(name):
                raise _refused(f"{where}.name", f"{where}: a name has 1 to 64 letters, digits, '-' or '_'")
            if any(m.name == name for m in mine):
                raise _refused(f"{where}.name", f"{where}: two children named {name!r}")
            if not 0 < child.weight <= 1e6:
                raise _refused(f"{where}.weight", f"{where}: weight must be above 0")
            if len(planned) >= MAX_FLOW_JOBS:
                raise _refused("children", f"a flow has at most {MAX_FLOW_JOBS} jobs")
            node = _Planned(id=f"{root_id}-{len(planned)}", path=f"{where}.job", submission=child.job, name=name,
                            parent=parent.id, weight=child.weight, on_child_failure=child.on_child_failure)
            planned.append(node)
            mine.append(node)
            expand(node, child.children, f"{where}.children", depth + 1)
        by_name = {m.name: m for m in mine}
        for index, child in enumerate(children):
            where = f"{path}[{index}].depends_on"
            for wanted in child.depends_on:
                if wanted not in by_name:
                    raise _refused(where, f"{path}[{index}] depends on {wanted!r}: no sibling has that name")
                if wanted == mine[index].name:
                    raise _refused(where, f"{path}[{index}] depends on itself")
                mine[index].depends_on.append(by_name[wanted].id)
        _check_no_cycle(mine, path)
        parent.children = [ChildRef(id=m.id, name=m.name or "", weight=m.weight) for m in mine]

    expand(root, submission.children, "children", 1)
    return planned


def _check_no_cycle(siblings: list[_Planned], path: str) -> None:
    after = {s.id: set(s.depends_on) for s in siblings}
    done: set[str] = set()
    while len(done) < len(after):
        ready = [i for i, deps in after.items() if i not in done and deps <= done]
        if not ready:
            stuck = sorted(s.name or "" for s in siblings if s.id not in done)
            raise _refused(f"{path}", f"{path}: depends_on makes a cycle among {', '.join(stuck)}")
        done.update(ready)


def job_count(submission: FlowSubmission) -> int:
    """How many jobs the flow makes (for the submit rate, before anything is checked)."""
    count, waiting = 1, list(submission.children)
    while waiting:
        count += 1
        waiting.extend(waiting.pop().children)
    return count


async def create(core: Core, kv: KeyValue, submission: FlowSubmission,
                 idempotency_key: str | None) -> tuple[FlowRecord, list[_Planned], bool]:
    """Validate the whole flow, then store its record and its jobs — the jobs in one atomic write,
    each only if it does not exist yet; returns the record, its jobs and whether it is new (False:
    an earlier request with the same Idempotency-Key made it).

    The record goes first (a child that ends at once must find it); if the jobs cannot be stored it
    is deleted again, and a record whose jobs never came (its gateway died in between) is no flow:
    its root does not exist, so `GET /api/flows/{id}` answers 404 (tree())."""
    check_idempotency_key(idempotency_key)
    root_id = new_job_id()
    planned = plan(root_id, submission)
    for job in planned:
        if job.submission.run_at is not None or job.submission.delay_s is not None:
            raise _refused(job.path, f"{job.path}: a job of a flow runs when what it waits for has ended (no run_at or delay_s)")
        try:
            await validate(core, job.submission)
        except Problem as problem:
            raise problem.within(job.path) from None
    fresh = True
    if idempotency_key is not None:
        claimed = await claim(core.idempotency, f"flow:{idempotency_key}", root_id, fingerprint(submission))
        if claimed != root_id:
            root_id, fresh = claimed, False  # the same flow: its jobs exist, or are made here if its first try died
            planned = plan(root_id, submission)
    now = time.time()
    record = FlowRecord(root=root_id, created_at=now, nodes={
        job.id: FlowNode(parent=job.parent, name=job.name, weight=job.weight, blocked_on=job.blocked_on,
                         on_child_failure=job.on_child_failure, released=not job.blocked_on) for job in planned})
    try:
        await kv.create(root_id, encoder.encode(record))
    except KeyWrongLastSequenceError:
        stored = await get_record(kv, root_id)  # (a retry: the record of the first try holds what happened since)
        record = stored if stored is not None else record

    def created(job: _Planned) -> JobCreated:
        info = core.catalogue.types[job.submission.type]
        event = created_event(job.submission, job.id, now, list(info.steps))
        return msgspec.structs.replace(event, flow=root_id, parent=job.parent, name=job.name, children=job.children,
                                       on_child_failure=job.on_child_failure)

    jobs = [new_jobs.blocked(core, JobBlocked(ts=now, job_id=job.id, blocked_on=job.blocked_on, job=created(job)))
            if job.blocked_on else new_jobs.created(core, created(job), None, now) for job in planned]
    try:
        await new_jobs.store_all(core, jobs)
    except BaseException:
        if fresh:  # nothing of this flow was stored: neither its record nor its key remain
            with contextlib.suppress(Exception):
                await kv.delete(root_id)
            if idempotency_key is not None:
                await release(core.idempotency, f"flow:{idempotency_key}", root_id)
        raise
    return record, planned, fresh


async def get_record(kv: KeyValue, flow_id: str) -> FlowRecord | None:
    check_job_id(flow_id)  # (a flow's id is its root job's)
    try:
        entry = await kv.get(flow_id)
    except KeyNotFoundError:
        return None
    return record_decoder.decode(entry.value) if entry.value else None


async def tree(core: Core, kv: KeyValue, flow_id: str) -> FlowTreeNode:
    """The flow as a tree, each job with its state and its progress rolled up from its children's."""
    record = await get_record(kv, flow_id)
    if record is None:
        raise Problem(404, "Flow not found", f"there is no flow {flow_id!r}")
    ids = list(record.nodes)
    states = dict(zip(ids, await bounded([partial(lookup_job, core, j) for j in ids], 32), strict=True))
    if states.get(flow_id) is None:  # a record whose jobs were never stored (create()): no flow
        raise Problem(404, "Flow not found", f"there is no flow {flow_id!r}")

    def node(job_id: str, weight: float) -> FlowTreeNode:
        state: JobState | None = states.get(job_id)
        refs = state.children if state is not None else []
        children = [node(ref.id, ref.weight) for ref in refs]
        status = state.status if state is not None else "unknown"
        own = 1.0 if status in TERMINAL_STATUSES else (state.progress or 0.0) if state is not None else 0.0
        total = 1.0 + sum(c.weight for c in children)
        rollup = (own + sum(c.weight * c.rollup for c in children)) / total
        return FlowTreeNode(id=job_id, name=state.name if state else None, type=state.type if state else "",
                            status=status, progress=own, rollup=round(rollup, 4), weight=weight,
                            blocked_on=state.blocked_on if state else [], error=state.error if state else None,
                            children=children)

    return node(flow_id, 1.0)


async def cancel_flow(core: Core, kv: KeyValue, flow_id: str) -> str:
    """Cancel the flow: its root, which takes every unfinished job below it along."""
    if await get_record(kv, flow_id) is None or await lookup_job(core, flow_id) is None:
        raise Problem(404, "Flow not found", f"there is no flow {flow_id!r}")
    return await cancel(core, flow_id, reason=f"flow {flow_id} cancelled")
