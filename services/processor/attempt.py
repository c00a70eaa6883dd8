"""One admitted job's attempt, from its slots to its end: `started` on the run chain, the handler
under its lease and its timeout, then the end it came to — completed, failed (retried while
attempts last), cancelled, timed out, or suspended waiting for the children it spawned or for a signal.

Every write to the run chain is fenced (fence.py): an attempt superseded while it ran (its worker
was presumed dead) publishes nothing more and touches its delivery no more.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from jobline.contract.events import (
    JobAwaitingSignal,
    JobCompleted,
    JobCreated,
    JobEvent,
    JobFailed,
    JobRetrying,
    JobStarted,
    JobSuspended,
    TerminalEvent,
    encoder,
    job_event_decoder,
    kind_of,
)
from jobline.contract.flows import SUSPENDED, ChildOutcome, SpawnedChild, SpawnRequest
from jobline.contract.names import ENDED
from jobline.contract.vocabulary import ChildFailurePolicy, FailureReason
from jobline.runtime import tracing
from jobline.runtime.end_signals import signal_end, signal_flow
from jobline.runtime.publishing import publish_reliably
from jobline.runtime.signal_waits import schedule_timeout

from .admission import Run
from .context import JobContext, Outbox
from .fence import Fenced, RunChain
from .gates import Gates, NoFreeSlot
from .lease import Lease
from .metrics import ProcessorMetrics
from .objects import Objects
from .outcome import Suspension, outcome_of
from .registry import TaskSpec
from .running import RunningJob, RunningJobs
from .settings import ProcessorSettings
from .spans import AttemptSpans


class Attempts:
    def __init__(self, js: JetStreamContext, settings: ProcessorSettings, instance: str, objects: Objects | None,
                 metrics: ProcessorMetrics, gates: Gates, running: RunningJobs,
                 finish: Callable[[Msg], Awaitable[None]]):
        self._js = js
        self._settings = settings
        self._names = settings.names
        self._instance = instance
        self._objects = objects
        self._metrics = metrics
        self._gates = gates
        self._running = running
        self._finish = finish  # done with a delivery: its ack (which may ask for the next job)
        self._tracer = tracing.tracer("processor")  # None: tracing is off (and costs one test per attempt)
        self._work_root = Path(settings.data_dir) / "work"

    async def run(self, msg: Msg, chain: RunChain, spec: TaskSpec, created: JobCreated, run: Run) -> None:
        job_id, attempt = created.job_id, run.attempt
        try:
            slots = await self._gates.take_slots(created)
        except NoFreeSlot as waiting_for:
            await self._gates.wait_for_slot(msg, created, attempt, str(waiting_for))
            return
        try:
            await self._gates.take_token(msg, created.type)
            started = JobStarted(ts=time.time(), job_id=job_id, attempt=attempt, worker=self._instance,
                                 steps=spec.plan(run.params))
            started_seq = await self._start(msg, chain, started)
        except BaseException:
            await slots.release()
            raise
        if started_seq is None:
            await slots.release()
            return
        handler: asyncio.Task[object] | None = None

        def lost() -> None:
            ctx.stop()
            if handler is not None:
                handler.cancel()

        lease = Lease(msg, chain, started_seq, self._settings.ack_wait_s, lost,
                      also_renew=slots.renew if slots.slots else None)
        outbox = Outbox(self._js, self._names, job_id, attempt, started_seq, guard=lease.guard, on_fenced=lost)
        ctx = JobContext(job_id=job_id, job_type=created.type, attempt=attempt, params=run.params, outbox=outbox,
                         progress_rate=self._settings.progress_rate, loop=asyncio.get_running_loop(),
                         objects=self._objects, work_root=self._work_root,
                         children=await self._children_of(created), js=self._js, names=self._names)
        timeout = min(created.timeout_s or spec.timeout_s or self._settings.default_timeout_s, self._settings.max_timeout_s)
        spans = AttemptSpans(self._tracer, created, attempt, self._instance) if self._tracer is not None else None
        if spans is not None:
            ctx.on_step = spans.step
        handler = asyncio.create_task(self._call(spec, ctx))
        running = RunningJob(ctx=ctx, handler=handler)
        self._running.add(job_id, running)
        self._metrics.running.inc()
        began, outcome_name = time.monotonic(), "handed_back"
        try:
            done, _ = await asyncio.wait({handler}, timeout=timeout)
            if not done:
                running.stop("timeout")
                await asyncio.wait({handler})
            if lease.lost:
                outbox.abort()
                raise Fenced(f"job {job_id}: attempt {attempt} superseded while it ran")
            outcome = outcome_of(running, created, attempt, timeout)
            outcome_name = kind_of(outcome) if not isinstance(outcome, JobFailed) else f"failed_{outcome.reason}"
            ctx.finish("done" if isinstance(outcome, JobCompleted | JobSuspended | JobAwaitingSignal) else "failed")
            await outbox.close()
        except asyncio.CancelledError:
            # Drain ran out of time: stop the work and hand the job back now, not after the ack wait.
            ctx.stop()
            handler.cancel()
            outbox.abort()
            with contextlib.suppress(Exception):
                await msg.nak()
            raise
        finally:
            self._running.remove(job_id)
            lease.close()
            await slots.release()
            ctx.cleanup()
            self._metrics.running.dec()
            self._metrics.attempt_ended(created.type, outcome_name, time.monotonic() - began)
            if spans is not None:
                spans.end(outcome_name)
        with spans.publishing(outcome_name) if spans is not None else contextlib.nullcontext():
            await self._after(msg, chain, spec, created, ctx, outcome, run, attempt)

    async def _after(self, msg: Msg, chain: RunChain, spec: TaskSpec, created: JobCreated, ctx: JobContext,
                     outcome: TerminalEvent | Suspension, run: Run, attempt: int) -> None:
        """What the attempt's outcome calls for: its children, its signal, a retry, or its end."""
        if isinstance(outcome, JobSuspended):
            await self._suspend(msg, chain, outcome, created, ctx.spawned)
        elif isinstance(outcome, JobAwaitingSignal):
            await self._await_signal(msg, chain, outcome)
        elif isinstance(outcome, JobFailed) and outcome.reason == FailureReason.ERROR and attempt < run.max_attempts:
            await self._retry(msg, chain, spec, outcome, attempt)
        else:
            await self.end(msg, chain, outcome, attempt)

    async def end(self, msg: Msg, chain: RunChain, terminal: TerminalEvent, attempt: int) -> None:
        await chain.append(terminal, f"{terminal.job_id}:{attempt}:end")
        await self.signal_end(chain, terminal)  # (before the ack: a crash between the two signals on redelivery)
        await self._finish(msg)

    async def signal_end(self, chain: RunChain, terminal: JobEvent) -> None:
        await signal_end(self._js, self._names, chain.job_id, kind_of(terminal), flow=chain.flow, webhook=chain.webhook)

    async def _start(self, msg: Msg, chain: RunChain, started: JobStarted) -> int | None:
        """Append `started` and return its sequence; None when the job turned out to have ended
        (e.g. cancelled while pending)."""
        try:
            return await chain.append(started, f"{started.job_id}:{started.attempt}:started")
        except Fenced:
            last = await chain.read_last()
            if last is None or isinstance(last, TerminalEvent):
                if last is not None:
                    await self.signal_end(chain, last)
                await msg.ack()
                return None
            # The chain holds an unfinished attempt we did not know of: continue after it.
            return await chain.append(started, f"{started.job_id}:{started.attempt}:started:{chain.last_seq}")

    async def _call(self, spec: TaskSpec, ctx: JobContext) -> object:
        if spec.is_async:
            return await spec.handler(ctx)
        # Plain functions run in a thread; on cancel or timeout they are told through
        # ctx.cancelled (a thread cannot be killed: external tools belong in ctx.run_process).
        return await asyncio.to_thread(spec.handler, ctx)

    async def _retry(self, msg: Msg, chain: RunChain, spec: TaskSpec, failure: JobFailed, attempt: int) -> None:
        base = spec.retry_backoff_s or self._settings.retry_backoff_s
        delay = min(base * 2 ** (attempt - 1), self._settings.max_backoff_s) * random.uniform(0.5, 1.5)
        retrying = JobRetrying(ts=time.time(), job_id=failure.job_id, attempt=attempt, next_attempt=attempt + 1,
                               delay_s=round(delay, 3), error=failure.error)
        await chain.append(retrying, f"{failure.job_id}:{attempt}:retrying")
        await msg.nak(delay=delay)

    async def _suspend(self, msg: Msg, chain: RunChain, suspended: JobSuspended, created: JobCreated,
                       spawned: list[SpawnedChild]) -> None:
        """Have the flow runner create the children (a processor may not create jobs), record that
        the job waits for them, tell the runner, and free the slot. Each step is repeated harmlessly
        if this processor dies in between (the children's ids are the same each time)."""
        flow = created.flow or created.job_id  # a job outside any flow becomes the root of one
        # A child is its parent's owner's, with its tags, unless the handler said otherwise.
        inherited = {"owner": created.owner, "tags": created.tags}
        children = [msgspec.structs.replace(child, job={**inherited, **child.job}) for child in spawned]
        # (tracing on: the span publishing this outcome, inside the attempt's; off: the parent's own)
        traceparent = tracing.current_traceparent() if self._tracer is not None else created.traceparent
        request = SpawnRequest(flow=flow, parent=created.job_id, on_child_failure=created.on_child_failure,
                               created_subject=msg.subject, children=children, traceparent=traceparent)
        await publish_reliably(self._js, self._names.flow_spawn(flow), encoder.encode(request),
                               msg_id=f"{created.job_id}:{suspended.attempt}:spawn", give_up_after=30.0)
        await chain.append(suspended, f"{created.job_id}:{suspended.attempt}:suspended")
        await signal_flow(self._js, self._names, flow, created.job_id, SUSPENDED,
                          msg_id=f"{created.job_id}:{suspended.attempt}:suspended")
        await msg.ack()

    async def _await_signal(self, msg: Msg, chain: RunChain, awaiting: JobAwaitingSignal) -> None:
        """Record that the job waits (with the created event that resumes it), have the broker hold
        its timeout, and free the slot. The conductors resume it (conductor/signal_runner.py)."""
        awaiting = msgspec.structs.replace(awaiting, created_subject=msg.subject,
                                           created_seq=msg.metadata.sequence.stream)
        if awaiting.timeout_at is not None:  # (first: a wait on record always has its timeout)
            await schedule_timeout(self._js, self._names, awaiting)
        await chain.append(awaiting, f"{awaiting.job_id}:{awaiting.attempt}:awaiting")
        await msg.ack()

    async def _children_of(self, created: JobCreated) -> dict[str, ChildOutcome]:
        """A flow parent's children as they ended (each one's terminal event), by name."""
        if not created.children:
            return {}  # (most jobs: an empty gather costs a future and a loop turn)

        async def end_of(child_id: str) -> JobEvent | None:
            try:
                raw = await self._js.get_last_msg(self._names.jobs_stream, self._names.run_event(child_id, ENDED),
                                                  direct=True)
                return job_event_decoder.decode(raw.data or b"")
            except (NotFoundError, msgspec.DecodeError):
                return None

        ends = await asyncio.gather(*(end_of(ref.id) for ref in created.children))  # (read together)
        outcomes: dict[str, ChildOutcome] = {}
        for ref, end in zip(created.children, ends, strict=True):
            if end is None:
                outcomes[ref.name] = ChildOutcome(id=ref.id, name=ref.name, status="unknown")
                continue
            status = kind_of(end)
            if status != "completed" and created.on_child_failure == ChildFailurePolicy.IGNORE:
                continue
            outcomes[ref.name] = ChildOutcome(id=ref.id, name=ref.name, status=status,
                                              result=getattr(end, "result", None), error=getattr(end, "error", None))
        return outcomes
