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
from nats.js.errors import APIError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from jobline.contract.events import JobBlocked, JobFailed, encoder, job_event_decoder
from jobline.contract.flows import FAIL, FlowRecord, FlowSignal, record_decoder, signal_decoder
from jobline.contract.names import BLOCKED
from jobline.contract.publishing import WRONG_LAST_SEQUENCE_ERR, fenced, subject_of
from jobline.contract.vocabulary import FailureReason, JobStatus
from jobline.runtime.consume import DurableTasks
from jobline.runtime.flow_signals import signal_flow
from jobline.runtime.publishing import publish_reliably

from .core import Core

log = logging.getLogger(__name__)
ACK_WAIT_S = 10.0


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
            filter_subject=names.all_flows_ended)
        self._tasks = DurableTasks(self._core.nc, self._core.js, names.flows_stream, config, self._handle,
                                   limit=64, name="flow runner")
        await self._tasks.start()

    async def stop(self) -> None:
        if self._tasks is not None:
            await self._tasks.stop()

    async def _handle(self, msg: Msg) -> None:
        try:
            signal = signal_decoder.decode(msg.data)
        except msgspec.DecodeError:
            log.warning("dropping an undecodable flow signal on %s", msg.subject)
            await msg.term()
            return
        async with self._locks.setdefault(signal.flow, asyncio.Lock()):
            await self._apply(signal)
        if signal.job_id == signal.flow:
            self._locks.pop(signal.flow, None)  # the root ended: nothing more of this flow comes
        await msg.ack()

    async def _apply(self, signal: FlowSignal) -> None:
        for _ in range(50):
            try:
                entry = await self._kv.get(signal.flow)
            except Exception:  # (KeyNotFoundError: a flow whose record is gone — expired with its jobs)
                log.warning("flow %s has no record; ignoring the end of %s", signal.flow, signal.job_id)
                return
            record = record_decoder.decode(entry.value or b"")
            node = record.nodes.get(signal.job_id)
            if node is None:
                return
            node.ended = node.ended or signal.status
            for job_id in self._ready(record):
                await self._release_or_fail(record, job_id)
                record.nodes[job_id].released = True
            try:
                await self._kv.update(signal.flow, encoder.encode(record), last=entry.revision)
                return
            except KeyWrongLastSequenceError:
                continue  # another gateway changed it: read again (what was done is refused when redone)
        raise RuntimeError(f"flow {signal.flow}: its record kept changing")

    @staticmethod
    def _ready(record: FlowRecord) -> list[str]:
        """Jobs still blocked whose every awaited job has ended."""
        return [job_id for job_id, node in record.nodes.items()
                if not node.released and node.ended is None
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
            await self._fail_unrun(record.root, job_id, unfinished)
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
        subject = subject_of(names, created)
        headers = {"Nats-Expected-Last-Subject-Sequence": "0", "Nats-Expected-Last-Subject-Sequence-Subject": subject}
        try:
            await publish_reliably(js, subject, encoder.encode(created), msg_id=f"{job_id}:created", headers=headers,
                                   give_up_after=30.0)
        except APIError as exc:
            if exc.err_code != WRONG_LAST_SEQUENCE_ERR:
                raise  # (refused: released before, by this gateway or another)
        log.info("flow job %s released", job_id)

    async def _fail_unrun(self, flow: str, job_id: str, unfinished: list[str]) -> None:
        js, names = self._core.js, self._names
        failed = JobFailed(ts=time.time(), job_id=job_id, attempt=0, reason=FailureReason.CHILD_FAILED,
                           error=f"did not run: {', '.join(unfinished)} did not complete")
        try:
            await publish_reliably(js, subject_of(names, failed), encoder.encode(failed), msg_id=f"{job_id}:end",
                                   headers=fenced(names, job_id, 0), give_up_after=30.0)
        except APIError as exc:
            if exc.err_code != WRONG_LAST_SEQUENCE_ERR:
                raise  # (its chain is not empty: it ended already — cancelled, or failed by us before)
        await signal_flow(js, names, flow, job_id, JobStatus.FAILED)
