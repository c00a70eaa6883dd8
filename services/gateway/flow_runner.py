"""The flow runner: the gateways' shared durable on `flows.*.ended` (each signal to one gateway).

For each signal it records the job's end in the flow's record (KV `flows`, compare-and-set: the
gateways race) and looks at every job of the flow still blocked on it: once all a job waits for have
ended, it is released — its created event (kept in its `blocked` event) published, stored only if
it has none yet — or, when one of them did not complete and the policy is `fail`, ended `failed`
unrun (a terminal event written only if its run chain is empty), which signals in turn. Both
actions are done before the record says so, and both are refused by the stream when repeated, so a
gateway dying anywhere in between leaves a signal that is redelivered and finishes the work once.
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from jobline.contract.events import (
    ChildRef,
    JobBlocked,
    JobCreated,
    JobFailed,
    encoder,
    job_event_decoder,
    kind_of,
)
from jobline.contract.flows import (
    FAIL,
    FlowNode,
    FlowRecord,
    FlowSignal,
    SpawnedChild,
    SpawnRequest,
    record_decoder,
    signal_decoder,
    spawn_decoder,
)
from jobline.contract.names import BLOCKED
from jobline.contract.publishing import expect_last, fenced, subject_of
from jobline.contract.vocabulary import TERMINAL_KINDS, FailureReason, JobStatus
from jobline.runtime.consume import DurableTasks
from jobline.runtime.flow_signals import signal_flow
from jobline.runtime.publishing import publish_if_last

from .core import Core, JobSubmission, created_event, publish_job, validate
from .problems import Problem

log = logging.getLogger(__name__)
ACK_WAIT_S = 10.0
# Not strict, as Litestar reads POST /api/jobs: `"priority": 4.0` is taken alike wherever a job is given.
_submission_decoder = msgspec.json.Decoder(JobSubmission, strict=False)


class FlowRunner:
    def __init__(self, core: Core, kv: KeyValue):
        self._core = core
        self._kv = kv
        self._names = core.settings.names
        self._tasks: DurableTasks | None = None
        self._locks: dict[str, asyncio.Lock] = {}  # one signal of a flow at a time here (fewer CAS retries)

    async def start(self) -> None:
        names = self._names
        config = ConsumerConfig(
            durable_name=names.flow_runner_durable, description="the gateways' flow runner: one signal to one gateway",
            deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.EXPLICIT, ack_wait=ACK_WAIT_S, max_deliver=-1,
            filter_subject=names.all_flow_signals)
        self._tasks = DurableTasks(self._core.nc, self._core.js, names.flows_stream, config, self._handle,
                                   limit=64, name="flow runner")
        await self._tasks.start()

    async def stop(self) -> None:
        if self._tasks is not None:
            await self._tasks.stop()

    async def _handle(self, msg: Msg) -> None:
        try:
            message = (spawn_decoder if msg.subject.endswith(".spawn") else signal_decoder).decode(msg.data)
        except msgspec.DecodeError:
            log.warning("dropping an undecodable flow message on %s", msg.subject)
            await msg.term()
            return
        async with self._locks.setdefault(message.flow, asyncio.Lock()):
            if isinstance(message, SpawnRequest):
                await self._spawn(message)
            else:
                await self._apply(message)
        if isinstance(message, FlowSignal) and message.job_id == message.flow and message.status != "suspended":
            self._locks.pop(message.flow, None)  # the root ended: nothing more of this flow comes
        await msg.ack()

    async def _spawn(self, request: SpawnRequest) -> None:
        """Children a running job added: into the record first (their ends must find it), then
        into the stream, each only if new (a repeated request makes none twice)."""
        now = time.time()
        for _ in range(50):
            record, revision = await self._read(request.flow)
            if record is None:  # a job outside any flow spawned: it becomes the root of one
                record = FlowRecord(root=request.flow, created_at=now)
            parent = record.nodes.setdefault(request.parent, FlowNode())
            known = set(record.nodes)
            for child in request.children:
                if child.id not in known:
                    record.nodes[child.id] = FlowNode(parent=request.parent, name=child.name, weight=child.weight,
                                                      released=True)
                    parent.blocked_on = [*parent.blocked_on, child.id]
                    parent.released, parent.suspended, parent.spawned = False, False, True
            parent.created_subject = request.created_subject
            try:
                if revision:
                    await self._kv.update(request.flow, encoder.encode(record), last=revision)
                else:
                    await self._kv.create(request.flow, encoder.encode(record))
                break
            except KeyWrongLastSequenceError:
                continue
        else:
            raise RuntimeError(f"flow {request.flow}: its record kept changing")  # (redelivered: tried again)
        for child in request.children:
            await self._create_child(request, child, now)

    async def _create_child(self, request: SpawnRequest, child: SpawnedChild, now: float) -> None:
        core = self._core
        try:
            submission = _submission_decoder.decode(encoder.encode(child.job))
            if submission.run_at is not None or submission.delay_s is not None:
                raise Problem(422, "Invalid child", "a spawned child runs now: no run_at or delay_s")
            await validate(core, submission)
        except (msgspec.ValidationError, Problem) as exc:
            # The parent's handler asked for a job that cannot be: it is stored ended, so the parent
            # still resumes (and sees why).
            detail = exc.detail if isinstance(exc, Problem) else str(exc)
            await self._refuse_child(request, child, detail, now)
            return
        info = core.catalogue.types[submission.type]
        event = msgspec.structs.replace(created_event(submission, child.id, now, list(info.steps)),
                                        flow=request.flow, parent=request.parent, name=child.name)
        await publish_job(core, event, None, now, only_if_new=True)

    async def _refuse_child(self, request: SpawnRequest, child: SpawnedChild, detail: str, now: float) -> None:
        job = JobCreated(ts=now, job_id=child.id, type=str(child.job.get("type", "?")), flow=request.flow,
                         parent=request.parent, name=child.name)
        blocked = JobBlocked(ts=now, job_id=child.id, blocked_on=[], job=job)
        # (refused when the job has events already: this request was handled before)
        await publish_if_last(self._core.js, subject_of(self._names, blocked), encoder.encode(blocked),
                              msg_id=f"{child.id}:blocked", headers=expect_last(self._names.job_timeline(child.id), 0),
                              give_up_after=10.0)
        await self._fail_unrun(request.flow, child.id, detail=f"not created: {detail}",
                               reason=FailureReason.INVALID_PARAMS)

    async def _read(self, flow: str) -> tuple[FlowRecord | None, int]:
        try:
            entry = await self._kv.get(flow)
        except KeyNotFoundError:
            return None, 0
        return record_decoder.decode(entry.value or b""), int(entry.revision or 0)

    async def _apply(self, signal: FlowSignal) -> None:
        for _ in range(50):
            record, revision = await self._read(signal.flow)
            if record is None:  # (a flow whose record is gone — expired with its jobs)
                log.warning("flow %s has no record; ignoring the end of %s", signal.flow, signal.job_id)
                return
            node = record.nodes.get(signal.job_id)
            if node is None:
                return
            if signal.status == "suspended":
                node.suspended = True
            else:
                node.ended = node.ended or signal.status
            for job_id in self._ready(record):
                await self._release_or_fail(record, job_id)
                ready = record.nodes[job_id]
                ready.released = True
                if ready.spawned:
                    ready.spawned, ready.suspended, ready.resumes = False, False, ready.resumes + 1
            try:
                await self._kv.update(signal.flow, encoder.encode(record), last=revision)
                return
            except KeyWrongLastSequenceError:
                continue  # another gateway changed it: read again (what was done is refused when redone)
        raise RuntimeError(f"flow {signal.flow}: its record kept changing")

    @staticmethod
    def _ready(record: FlowRecord) -> list[str]:
        """Jobs still blocked whose every awaited job has ended."""
        return [job_id for job_id, node in record.nodes.items()
                if not node.released and node.ended is None and (node.suspended or not node.spawned)
                and all(record.nodes[b].ended is not None for b in node.blocked_on if b in record.nodes)]

    async def _release_or_fail(self, record: FlowRecord, job_id: str) -> None:
        node = record.nodes[job_id]
        unfinished = [b for b in node.blocked_on if record.nodes[b].ended != JobStatus.COMPLETED]
        # A parent's own policy covers its children; a child's dependencies are its parent's to judge.
        parent = record.nodes.get(node.parent) if node.parent else None
        children = [b for b in unfinished if record.nodes[b].parent == job_id]
        siblings = [b for b in unfinished if b not in children]
        fails = (children and node.on_child_failure == FAIL) or (siblings and (parent is None or parent.on_child_failure == FAIL))
        if fails:
            await self._fail_unrun(record.root, job_id, f"did not run: {', '.join(unfinished)} did not complete")
        elif node.spawned:
            await self._resume(record, job_id)
        else:
            await self._release(job_id)

    async def _release(self, job_id: str) -> None:
        js, names = self._core.js, self._names
        try:
            raw = await js.get_last_msg(names.jobs_stream, names.job_event(job_id, BLOCKED), direct=True)
        except NotFoundError:
            log.error("job %s of a flow has no blocked event: it cannot be released", job_id)
            return
        blocked = job_event_decoder.decode(raw.data or b"")
        assert isinstance(blocked, JobBlocked)
        created = msgspec.structs.replace(blocked.job, ts=time.time())
        if created.priority and self._core.queues is not None:
            await self._core.queues.ensure_band(created.type, created.priority)
        subject = subject_of(names, created)
        if await publish_if_last(js, subject, encoder.encode(created), msg_id=f"{job_id}:created",
                                 headers=expect_last(subject, 0), give_up_after=30.0):
            log.info("flow job %s released", job_id)  # (refused: released before, by this gateway or another)

    async def _resume(self, record: FlowRecord, job_id: str) -> None:
        """Run a job again whose spawned children have all ended: its created event published once
        more (stored only if it is still the last one on its subject: once per resume), now naming
        every child, so the handler sees them all."""
        js, names = self._core.js, self._names
        node = record.nodes[job_id]
        assert node.created_subject is not None
        raw = await js.get_last_msg(names.jobs_stream, node.created_subject, direct=True)
        created = job_event_decoder.decode(raw.data or b"")
        assert isinstance(created, JobCreated)
        # Every child, in the order they were added (the record's: its nodes keep their order).
        children = [ChildRef(id=child_id, name=child.name or "", weight=child.weight)
                    for child_id, child in record.nodes.items() if child.parent == job_id]
        again = msgspec.structs.replace(created, ts=time.time(), flow=record.root, children=children,
                                        resumed=node.resumes + 1)
        if await publish_if_last(js, node.created_subject, encoder.encode(again), msg_id=f"{job_id}:created:{again.resumed}",
                                 headers=expect_last(node.created_subject, int(raw.seq or 0)), give_up_after=30.0):
            log.info("flow job %s resumed (%d)", job_id, again.resumed)  # (refused: resumed before)

    async def _fail_unrun(self, flow: str, job_id: str, detail: str, reason: str = FailureReason.CHILD_FAILED) -> None:
        js, names = self._core.js, self._names
        last_seq, attempt = 0, 0
        try:  # (a job that ran before, and then spawned children: its run chain goes on)
            last = await js.get_last_msg(names.jobs_stream, names.run_chain(job_id), direct=True)
            event = job_event_decoder.decode(last.data or b"")
            if kind_of(event) in TERMINAL_KINDS:  # ended already (cancelled; failed by us before a retry)
                await signal_flow(js, names, flow, job_id, kind_of(event))
                return
            last_seq, attempt = int(last.seq or 0), int(getattr(event, "attempt", 0))
        except NotFoundError:
            pass
        failed = JobFailed(ts=time.time(), job_id=job_id, attempt=attempt, reason=reason, error=detail)
        # (refused when its chain moved meanwhile: it ended already — cancelled, or failed by us before)
        await publish_if_last(js, subject_of(names, failed), encoder.encode(failed), msg_id=f"{job_id}:end",
                              headers=fenced(names, job_id, last_seq), give_up_after=30.0)
        await signal_flow(js, names, flow, job_id, JobStatus.FAILED)
