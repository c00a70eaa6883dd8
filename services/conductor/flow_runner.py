"""The flow runner: the conductors' shared durable on `flows.>` (each signal to one conductor).

For each message it reads the flow's record (KV `flows`), asks the rules what follows
(contract/flows.py: `transition`), does it, and writes the record by compare-and-set (conductors
race): a job released — its created event (kept in its `blocked` event) published, stored only if
it has none yet —, resumed, failed unrun (a terminal event written only if its run chain is as
read, which signals in turn), or a spawned child created. Every action is refused by the stream
when repeated, so a conductor dying anywhere in between leaves a message that is redelivered and
finishes the work once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import msgspec
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from jobline.contract.events import JobBlocked, JobCreated, JobFailed, encoder, job_event_decoder, kind_of
from jobline.contract.flows import (
    SUSPENDED,
    Action,
    CreateChild,
    FailUnrun,
    FlowRecord,
    FlowSignal,
    Release,
    Resume,
    SpawnRequest,
    signal_decoder,
    spawn_decoder,
    transition,
)
from jobline.contract.names import BLOCKED
from jobline.contract.publishing import expect_last, fenced, subject_of
from jobline.contract.submissions import as_submission
from jobline.contract.vocabulary import TERMINAL_KINDS, FailureReason, JobStatus
from jobline.jobs.errors import JobError
from jobline.jobs.writer import JobWriter
from jobline.runtime.consume import DurableTasks, shared_durable
from jobline.runtime.end_signals import signal_end
from jobline.runtime.kv_records import KvRecords
from jobline.runtime.publishing import publish_if_last

log = logging.getLogger(__name__)
ACK_WAIT_S = 10.0


class FlowRunner:
    def __init__(self, writer: JobWriter, records: KvRecords[FlowRecord],
                 on_message: Callable[[], None] = lambda: None):
        self._writer = writer
        self._on_message = on_message
        self._records = records
        self._js = writer.js
        self._names = writer.names
        self._tasks: DurableTasks | None = None
        self._locks: dict[str, asyncio.Lock] = {}  # one message of a flow at a time here (fewer CAS retries)

    async def start(self) -> None:
        names = self._names
        config = shared_durable(names.flow_runner_durable, "the conductors' flow runner: one signal to one conductor",
                                ACK_WAIT_S, filter_subject=names.all_flow_signals)
        self._tasks = DurableTasks(self._writer.nc, self._js, names.flows_stream, config, self._handle, limit=64,
                                   name="flow runner")
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
            await self._run(message)
        if isinstance(message, FlowSignal) and message.job_id == message.flow and message.status != SUSPENDED:
            self._locks.pop(message.flow, None)  # the root ended: nothing more of this flow comes
        await msg.ack()
        self._on_message()

    async def _run(self, message: FlowSignal | SpawnRequest) -> None:
        """One message: the actions that must precede the record's write are done on each read
        (a conflict reads again and decides again: what was done is refused when redone)."""
        after: list[Action] = []

        async def step(record: FlowRecord | None) -> FlowRecord | None:
            decided = transition(record, message, time.time())
            if decided.record is None and isinstance(message, FlowSignal):
                log.warning("flow %s has no record (or no job %s); ignoring its signal", message.flow, message.job_id)
            for action in decided.before:
                await self._do(decided.record or record, action)
            after[:] = decided.after
            return decided.record

        await self._records.update(message.flow, step)  # (RecordKeptChanging: redelivered, tried again)
        for action in after:
            await self._do(None, action)

    async def _do(self, record: FlowRecord | None, action: Action) -> None:
        match action:
            case Release(job_id=job_id):
                await self._release(job_id)
            case Resume():
                await self._resume(action)
            case FailUnrun(job_id=job_id, detail=detail):
                assert record is not None
                await self._fail_unrun(record.root, job_id, detail)
            case CreateChild():
                await self._create_child(action)

    async def _release(self, job_id: str) -> None:
        js, names = self._js, self._names
        try:
            raw = await js.get_last_msg(names.jobs_stream, names.job_event(job_id, BLOCKED), direct=True)
        except NotFoundError:
            log.error("job %s of a flow has no blocked event: it cannot be released", job_id)
            return
        blocked = job_event_decoder.decode(raw.data or b"")
        assert isinstance(blocked, JobBlocked)
        created = msgspec.structs.replace(blocked.job, ts=time.time())
        await self._writer.bands.ensure_for([created])
        subject = subject_of(names, created)
        if await publish_if_last(js, subject, encoder.encode(created), msg_id=f"{job_id}:created",
                                 headers=expect_last(subject, 0), give_up_after=30.0):
            log.info("flow job %s released", job_id)  # (refused: released before, by this conductor or another)

    async def _resume(self, resume: Resume) -> None:
        """Run a job again whose spawned children have all ended: its created event published once
        more (stored only if it is still the last one on its subject: once per resume), now naming
        every child, so the handler sees them all."""
        js, names = self._js, self._names
        raw = await js.get_last_msg(names.jobs_stream, resume.created_subject, direct=True)
        created = job_event_decoder.decode(raw.data or b"")
        assert isinstance(created, JobCreated)
        # (a job that also waited for a signal was resumed more often than its flow record counts)
        again = msgspec.structs.replace(created, ts=time.time(), flow=resume.flow, children=resume.children,
                                        resumed=max(resume.resumed, created.resumed + 1))
        if await publish_if_last(js, resume.created_subject, encoder.encode(again),
                                 msg_id=f"{resume.job_id}:created:{resume.resumed}",
                                 headers=expect_last(resume.created_subject, int(raw.seq or 0)), give_up_after=30.0):
            log.info("flow job %s resumed (%d)", resume.job_id, resume.resumed)  # (refused: resumed before)

    async def _create_child(self, create: CreateChild) -> None:
        """A child a running job spawned: stored only if new; one that cannot be is stored failed,
        so the parent still resumes (and sees why)."""
        child, flow = create.child, create.flow
        now = time.time()
        try:
            submission = as_submission(child.job)
            await self._writer.checks.check_now(submission)
        except (msgspec.ValidationError, JobError) as exc:
            detail = exc.detail if isinstance(exc, JobError) else str(exc)
            job = JobCreated(ts=now, job_id=child.id, type=str(child.job.get("type", "?")), flow=flow,
                             parent=create.parent, name=child.name)
            blocked = JobBlocked(ts=now, job_id=child.id, blocked_on=[], job=job)
            # (refused when the job has events already: this request was handled before)
            await publish_if_last(self._js, subject_of(self._names, blocked), encoder.encode(blocked),
                                  msg_id=f"{child.id}:blocked",
                                  headers=expect_last(self._names.job_timeline(child.id), 0), give_up_after=10.0)
            await self._fail_unrun(flow, child.id, detail=f"not created: {detail}",
                                   reason=FailureReason.INVALID_PARAMS)
            return
        with self._writer.span("spawn", create.traceparent, **{"jobline.job.id": child.id}) as traceparent:
            event = msgspec.structs.replace(self._writer.created_event(submission, child.id, now), flow=flow,
                                            parent=create.parent, name=child.name, traceparent=traceparent)
        await self._writer.store(event, None, now, only_if_new=True)

    async def _fail_unrun(self, flow: str, job_id: str, detail: str, reason: str = FailureReason.CHILD_FAILED) -> None:
        js, names = self._js, self._names
        last_seq, attempt = 0, 0
        try:  # (a job that ran before, and then spawned children: its run chain goes on)
            last = await js.get_last_msg(names.jobs_stream, names.run_chain(job_id), direct=True)
            event = job_event_decoder.decode(last.data or b"")
            if kind_of(event) in TERMINAL_KINDS:  # ended already (cancelled; failed by us before a retry)
                await signal_end(js, names, job_id, kind_of(event), flow=flow, webhook=await self._wants_webhook(job_id))
                return
            last_seq, attempt = int(last.seq or 0), int(getattr(event, "attempt", 0))
        except NotFoundError:
            pass
        failed = JobFailed(ts=time.time(), job_id=job_id, attempt=attempt, reason=reason, error=detail)
        # (refused when its chain moved meanwhile: it ended already — cancelled, or failed by us before)
        await publish_if_last(js, subject_of(names, failed), encoder.encode(failed), msg_id=f"{job_id}:end",
                              headers=fenced(names, job_id, last_seq), give_up_after=30.0)
        await signal_end(js, names, job_id, JobStatus.FAILED, flow=flow, webhook=await self._wants_webhook(job_id))

    async def _wants_webhook(self, job_id: str) -> bool:
        """Whether the job asked for a webhook (its created event, kept in its `blocked` event)."""
        try:
            raw = await self._js.get_last_msg(self._names.jobs_stream, self._names.job_event(job_id, BLOCKED),
                                              direct=True)
        except NotFoundError:
            return False
        blocked = job_event_decoder.decode(raw.data or b"")
        return isinstance(blocked, JobBlocked) and blocked.job.webhook_url is not None
