"""The consume loop: fetch created events from the shared durable, run each job's attempt."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections import OrderedDict
from dataclasses import dataclass

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from jobline.contract.events import (
    CancelRequested,
    ChildRef,
    JobCancelled,
    JobCompleted,
    JobCreated,
    JobEvent,
    JobExpired,
    JobFailed,
    JobRetrying,
    JobStarted,
    JobSuspended,
    JobWaiting,
    TerminalEvent,
    encoder,
    job_event_decoder,
    kind_of,
)
from jobline.contract.flows import IGNORE, ChildOutcome, SpawnedChild, SpawnRequest
from jobline.contract.names import CANCEL, ENDED, PRIORITY_MIN
from jobline.contract.publishing import subject_of
from jobline.contract.vocabulary import FailureReason
from jobline.runtime.consume import ConsumeLoop
from jobline.runtime.consuming import delivery_of
from jobline.runtime.flow_signals import signal_flow
from jobline.runtime.publishing import publish_reliably

from .bands import Bands
from .context import JobContext, Outbox, WaitForChildren
from .fence import Fenced, RunChain
from .key_slots import HeldSlots, KeySlots
from .lease import Lease
from .metrics import ProcessorMetrics
from .objects import Objects
from .queues import Queues
from .registry import PermanentError, Registry, TaskSpec
from .settings import ProcessorSettings

log = logging.getLogger(__name__)
UNCLAIMED_CANCELS_KEPT = 10_000
OVERFLOW_NAK_S = 0.2  # a job that arrived with every slot taken goes back this long (to anyone)
SLOT_RETRY_S = 1.0  # a job whose type or key has no free slot is tried again after about this long
_cancel_decoder = msgspec.json.Decoder(CancelRequested)


def _hand_back(msg: Msg, delay: float | None = None) -> None:
    """Nak a delivery without waiting for it; a nak that cannot be sent (the connection is going)
    changes nothing: the ack wait hands the job back all the same."""
    task = asyncio.create_task(msg.nak(delay=delay))
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


class NoFreeSlot(Exception):
    """Every slot of the job's type, or of its concurrency key, is taken (the message says which)."""


@dataclass
class RunningJob:
    ctx: JobContext
    handler: asyncio.Task[object]
    stop_reason: str | None = None  # "cancelled" once a cancel request reached it


class Worker:
    def __init__(self, nc: Client, js: JetStreamContext, settings: ProcessorSettings, registry: Registry,
                 instance: str, objects: Objects | None = None, metrics: ProcessorMetrics | None = None):
        self._nc = nc
        self._js = js
        self._settings = settings
        self._names = settings.names
        self._registry = registry
        self._instance = instance
        self._objects = objects
        self._metrics = metrics or ProcessorMetrics()
        self._tasks: dict[int, asyncio.Task[None]] = {}  # by stream sequence of the created event
        self._jobs: dict[str, RunningJob] = {}  # by job id, while its handler runs
        # Cancel requests for jobs not running here (yet): a request that arrives while this
        # worker is between appending `started` and registering the job must not be lost.
        self._unclaimed_cancels: OrderedDict[str, None] = OrderedDict()
        self._waits_said: OrderedDict[str, None] = OrderedDict()  # "<job>:<attempt>" that said why it waits
        self._queues: dict[str, ConsumeLoop] = {}  # by job type: its default queue (shared)
        self._bands: dict[str, Bands] = {}  # by job type: its queues above the default priority
        self.controls = Queues(js, settings)
        self.key_slots = KeySlots(js, settings)
        self._draining = False
        self._cancels: Subscription | None = None
        self.jobs_done = 0

    def served_types(self) -> list[str]:
        wanted = list(self._settings.job_types) or self._registry.names()
        unknown = [t for t in wanted if self._registry.get(t) is None]
        if unknown:
            raise ValueError(f"JOBLINE_PROCESSOR_TYPES names unregistered job types: {', '.join(unknown)}")
        return wanted

    # --- the loop ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Open every served type's queues (before the types are advertised: a type shown as served
        has its queues), the controls and the cancel subscription."""
        stream = self._names.jobs_stream
        served = self.served_types()
        await self.controls.start()
        await self.key_slots.start()
        self._cancels = await self._nc.subscribe(self._names.all_cancel_requests, cb=self._on_cancel_request)
        # One queue per type, shared with every processor serving it (its pause and concurrency are
        # the broker's). Each asks for as many jobs as there are free slots here: several queues may
        # together deliver more than that, and a job beyond them goes straight back (`_start`). A
        # break (a restarted server, silence) forgets the requests and asks again.
        # A resumed queue hands its waiting pull requests jobs only at their next idle heartbeat
        # (nats-server 2.15): a one-second heartbeat is what makes resume take effect within a second.
        heartbeat_s = min(1.0, max(self._settings.ack_wait_s / 2, 0.5))
        for job_type in served:
            queue = self._queues[job_type] = ConsumeLoop(
                self._nc, stream, functools.partial(self._from_default_queue, job_type),
                open=functools.partial(self.controls.open, job_type),
                wanted=functools.partial(self._wanted, job_type),
                heartbeat_s=heartbeat_s, name=f"queue {job_type}")
            self._bands[job_type] = Bands(self._nc, self._js, self._settings, self.controls, job_type,
                                          start=self._start, free=self._free, default_wake=queue.wake)
        for job_type, queue in self._queues.items():
            await queue.start()
            await self._bands[job_type].open()

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: `start()` first (done here when it was not)."""
        if self._cancels is None:
            await self.start()
        try:
            log.info("processing %s as %s", ", ".join(self._queues), self._instance)
            await asyncio.gather(*(queue.run(stop) for queue in self._queues.values()),
                                 *(bands.run(stop) for bands in self._bands.values()))
        finally:
            # Withdraw first: the server drops pull requests nobody listens to, so the jobs
            # handed back below go to other processors instead of back to us.
            self._draining = True  # anything already on its way is handed straight back
            for queue in self._queues.values():
                await queue.stop()
            for bands in self._bands.values():
                await bands.close()
            await self._drain()
            with contextlib.suppress(Exception):
                if self._cancels is not None:
                    await self._cancels.unsubscribe()
            await self.controls.stop()

    def _wanted(self, job_type: str) -> tuple[int, int | None]:
        if self._bands[job_type].busy:
            return 0, None  # higher priorities may wait: the bands' pick asks the default queue too
        return self.controls.credit(job_type, self._free()), None

    def _free(self) -> int:
        return max(self._settings.concurrency - len(self._tasks), 0)

    def _wake_all(self) -> None:
        for queue in self._queues.values():
            queue.wake()  # a slot is free
        for bands in self._bands.values():
            if bands.busy:
                bands.wake()

    def _from_default_queue(self, job_type: str, msg: Msg) -> None:
        bands = self._bands[job_type]
        if bands.busy and not self._draining:
            bands.park(msg)  # a job of a higher priority may be waiting: it starts in its band's turn
            return
        self._start(msg)

    def _start(self, msg: Msg) -> None:
        if self._draining:
            _hand_back(msg)
            return
        if not self._free():  # more queues delivered than there were slots: hand it to someone else
            _hand_back(msg, OVERFLOW_NAK_S)
            return
        key, delivered = delivery_of(msg)
        task = asyncio.create_task(self._process(msg, key, delivered), name=f"job-{key}")
        self._tasks[key] = task

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.pop(key, None)
            self._wake_all()
            if not t.cancelled() and t.exception() is not None:
                log.error("job task failed", exc_info=t.exception())

        task.add_done_callback(done)

    async def _drain(self) -> None:
        """Let running jobs finish within the grace period; hand the rest back at once (nak)."""
        if not self._tasks:
            return
        log.info("draining %d running job(s) for up to %.1fs", len(self._tasks), self._settings.drain_grace_s)
        _, pending = await asyncio.wait(list(self._tasks.values()), timeout=self._settings.drain_grace_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
            log.info("handed %d job(s) back", len(pending))

    async def _on_cancel_request(self, msg: Msg) -> None:
        try:
            request = _cancel_decoder.decode(msg.data)
        except msgspec.DecodeError:
            return
        running = self._jobs.get(request.job_id)
        if running is None:
            self._unclaimed_cancels[request.job_id] = None
            while len(self._unclaimed_cancels) > UNCLAIMED_CANCELS_KEPT:
                self._unclaimed_cancels.popitem(last=False)
            return
        self._stop_for_cancel(running, request.job_id)

    @staticmethod
    def _stop_for_cancel(running: RunningJob, job_id: str) -> None:
        if running.stop_reason is None:
            log.info("cancelling job %s", job_id)
            running.stop_reason = "cancelled"
            running.ctx.stop()
            running.handler.cancel()

    # --- one delivery -----------------------------------------------------------------------
    async def _process(self, msg: Msg, seq: int, delivered: int) -> None:
        attempt = 1
        try:
            created = job_event_decoder.decode(msg.data)
            if not isinstance(created, JobCreated):
                raise msgspec.ValidationError(f"expected a created event, got {type(created).__name__}")
        except msgspec.DecodeError as exc:
            log.error("dropping undecodable message %s on %s: %s", seq, msg.subject, exc)
            await msg.term()
            return
        job_id = created.job_id
        chain = RunChain(self._js, self._names, job_id, flow=created.flow)
        spec = self._registry.get(created.type)
        max_attempts = created.max_attempts or (spec.max_attempts if spec else None) or self._settings.max_attempts
        max_attempts += created.resumed  # (each run after children it spawned is an attempt of its own)
        try:
            if delivered > 1 or created.resumed:
                # A redelivery: the job may have ended, or been cancelled, while it was away. Its
                # attempt number comes from the run chain, not the delivery count: a delivery
                # handed back before it started is not an attempt.
                last = await chain.read_last()
                if last is not None and isinstance(last, TerminalEvent):
                    await self._signal_end(chain, last)  # (again: it may have died before it could)
                    await msg.ack()
                    return
                if isinstance(last, (JobStarted, JobRetrying, JobSuspended)):
                    attempt = last.attempt + 1
                if await self._cancel_was_requested(job_id):
                    await self._end(msg, chain, JobCancelled(ts=time.time(), job_id=job_id, attempt=attempt,
                                                             reason="cancel requested"), attempt)
                    return
                if attempt > max_attempts and isinstance(last, JobStarted):
                    # The worker died each time (a job that crashes its process): stop trying.
                    await self._end(msg, chain, JobFailed(
                        ts=time.time(), job_id=job_id, attempt=attempt - 1, reason=FailureReason.ATTEMPTS_EXHAUSTED,
                        error=f"gave up after {max_attempts} attempt(s): the worker stopped responding each time"), attempt)
                    return
            waited = time.time() - created.ts
            queue_timeout = created.queue_timeout_s or self._settings.queue_timeout_s
            if attempt == 1 and waited > queue_timeout:
                await self._end(msg, chain, JobExpired(ts=time.time(), job_id=job_id, waited_s=round(waited, 3),
                                                       queue_timeout_s=queue_timeout), attempt)
                return
            if spec is None:  # the consumer's filter makes this a configuration error, not user input
                await self._end(msg, chain, JobFailed(ts=time.time(), job_id=job_id, attempt=attempt,
                                                      error=f"no handler for job type {created.type!r}",
                                                      reason=FailureReason.UNKNOWN_TYPE), attempt)
                return
            await self._attempt(msg, chain, spec, created, attempt, max_attempts)
        except Fenced as exc:
            # Superseded: a newer attempt, a cancel or an end came first. Touch nothing: the
            # delivery now belongs to whoever holds the job.
            log.warning("job %s attempt %d fenced out: %s", job_id, attempt, exc)

    async def _cancel_was_requested(self, job_id: str) -> bool:
        try:
            await self._js.get_last_msg(self._names.jobs_stream, self._names.job_event(job_id, CANCEL), direct=True)
        except NotFoundError:
            return False
        return True

    async def _start_attempt(self, msg: Msg, chain: RunChain, started: JobStarted) -> int | None:
        """Append `started` and return its sequence; None when the job turned out to have ended
        (e.g. cancelled while pending)."""
        try:
            return await chain.append(started, f"{started.job_id}:{started.attempt}:started")
        except Fenced:
            last = await chain.read_last()
            if last is None or isinstance(last, TerminalEvent):
                if last is not None:
                    await self._signal_end(chain, last)
                await msg.ack()
                return None
            # The chain holds an unfinished attempt we did not know of: continue after it.
            return await chain.append(started, f"{started.job_id}:{started.attempt}:started:{chain.last_seq}")

    async def _attempt(self, msg: Msg, chain: RunChain, spec: TaskSpec, created: JobCreated, attempt: int,
                       max_attempts: int) -> None:
        job_id = created.job_id
        try:
            params = spec.parse_params(created.params)
        except msgspec.ValidationError as exc:
            await self._end(msg, chain, JobFailed(ts=time.time(), job_id=job_id, attempt=attempt,
                                                  error=f"invalid params: {exc}", reason=FailureReason.INVALID_PARAMS), attempt)
            return
        try:
            slots = await self._take_slots(created)
        except NoFreeSlot as waiting_for:
            await self._wait_for_slot(msg, created, attempt, str(waiting_for))
            return
        try:
            await self._take_token(msg, created.type)
        except BaseException:
            await slots.release()
            raise
        started = JobStarted(ts=time.time(), job_id=job_id, attempt=attempt, worker=self._instance, steps=spec.plan(params))
        started_seq = await self._start_attempt(msg, chain, started)
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
        ctx = JobContext(
            job_id=job_id, job_type=created.type, attempt=attempt, params=params, outbox=outbox,
            progress_rate=self._settings.progress_rate, loop=asyncio.get_running_loop(), objects=self._objects,
            work_root=self._settings.data_dir / "work", children=await self._children_of(created),
        )
        timeout = min(created.timeout_s or spec.timeout_s or self._settings.default_timeout_s, self._settings.max_timeout_s)
        handler = asyncio.create_task(self._call(spec, ctx))
        running = self._jobs[job_id] = RunningJob(ctx=ctx, handler=handler)
        if job_id in self._unclaimed_cancels:  # requested while we were starting it
            del self._unclaimed_cancels[job_id]
            self._stop_for_cancel(running, job_id)
        self._metrics.running.inc()
        began = time.monotonic()
        outcome_name = "handed_back"
        try:
            done, _ = await asyncio.wait({handler}, timeout=timeout)
            if not done:
                running.stop_reason = "timeout"
                ctx.stop()
                handler.cancel()
                await asyncio.wait({handler})
            if lease.lost:
                outbox.abort()
                raise Fenced(f"job {job_id}: attempt {attempt} superseded while it ran")
            outcome = self._outcome(running, created, attempt, timeout)
            outcome_name = kind_of(outcome) if not isinstance(outcome, JobFailed) else f"failed_{outcome.reason}"
            ctx.finish("done" if isinstance(outcome, JobCompleted | JobSuspended) else "failed")
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
            self._jobs.pop(job_id, None)
            lease.close()
            await slots.release()
            ctx.cleanup()
            self._metrics.running.dec()
            self._metrics.attempt_ended(created.type, outcome_name, time.monotonic() - began)
        if isinstance(outcome, JobSuspended):
            await self._suspend(msg, chain, outcome, created, ctx.spawned)
            return
        if isinstance(outcome, JobFailed) and outcome.reason == "error" and attempt < max_attempts:
            await self._retry(msg, chain, spec, outcome, attempt)
            return
        await self._end(msg, chain, outcome, attempt)

    async def _suspend(self, msg: Msg, chain: RunChain, suspended: JobSuspended, created: JobCreated,
                       spawned: list[SpawnedChild]) -> None:
        """Have the flow runner create the children (a processor may not create jobs), record that
        the job waits for them, tell the runner, and free the slot. Each step is repeated harmlessly
        if this processor dies in between (the children's ids are the same each time)."""
        flow = created.flow or created.job_id  # a job outside any flow becomes the root of one
        request = SpawnRequest(flow=flow, parent=created.job_id, on_child_failure=created.on_child_failure,
                               created_subject=msg.subject, children=spawned)
        await publish_reliably(self._js, self._names.flow_spawn(flow), encoder.encode(request),
                               msg_id=f"{created.job_id}:{suspended.attempt}:spawn", give_up_after=30.0)
        await chain.append(suspended, f"{created.job_id}:{suspended.attempt}:suspended")
        await signal_flow(self._js, self._names, flow, created.job_id, "suspended",
                          msg_id=f"{created.job_id}:{suspended.attempt}:suspended")
        await msg.ack()

    async def _children_of(self, created: JobCreated) -> dict[str, ChildOutcome]:
        """A flow parent's children as they ended (each one's terminal event), by name."""
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
            if status != "completed" and created.on_child_failure == IGNORE:
                continue
            outcomes[ref.name] = ChildOutcome(id=ref.id, name=ref.name, status=status,
                                              result=getattr(end, "result", None), error=getattr(end, "error", None))
        return outcomes

    async def _take_slots(self, created: JobCreated) -> HeldSlots:
        """The slots the job needs to start: its type's when the type has a concurrency limit, its
        key's when it has a concurrency key and the type a per-key limit. NoFreeSlot (holding
        none) when one is taken."""
        controls = self.controls.controls(created.type)
        held = HeldSlots()
        if controls.concurrency is not None:
            slot = await self.key_slots.take_type(created.type, controls.concurrency, created.job_id)
            if slot is None:
                raise NoFreeSlot(f"waiting for one of the {controls.concurrency} slot(s) of {created.type}")
            held.slots.append(slot)
        if controls.key_concurrency is not None and created.concurrency_key is not None:
            slot = await self.key_slots.take(created.type, created.concurrency_key, controls.key_concurrency,
                                             created.job_id)
            if slot is None:
                await held.release()
                raise NoFreeSlot(f"waiting for a concurrency slot: {created.concurrency_key}")
            held.slots.append(slot)
        return held

    async def _wait_for_slot(self, msg: Msg, created: JobCreated, attempt: int, reason: str) -> None:
        """Hand the job back for a moment (other keys' jobs go on meanwhile) and say why, once per attempt."""
        said = f"{created.job_id}:{attempt}"
        if said not in self._waits_said:  # (it comes back every second or so: say it once)
            self._waits_said[said] = None
            while len(self._waits_said) > UNCLAIMED_CANCELS_KEPT:
                self._waits_said.popitem(last=False)
            waiting = JobWaiting(ts=time.time(), job_id=created.job_id,
                                 reason=reason)
            with contextlib.suppress(Exception):  # (what it says is worth less than handing the job back)
                await publish_reliably(self._js, subject_of(self._names, waiting), encoder.encode(waiting),
                                       msg_id=f"{said}:waiting", give_up_after=5.0)
        await msg.nak(delay=SLOT_RETRY_S * random.uniform(0.5, 1.5))

    async def _take_token(self, msg: Msg, job_type: str) -> None:
        """A rate-limited type's start token; the delivery is kept ours while it waits."""
        if self.controls.controls(job_type).rate_max is None:
            return
        waiting = asyncio.create_task(self.controls.take_token(job_type))
        try:
            while not waiting.done():
                await asyncio.wait({waiting}, timeout=self._settings.ack_wait_s / 3)
                if not waiting.done():
                    await msg.in_progress()
            waiting.result()
        finally:
            waiting.cancel()
            if waiting.done() and not waiting.cancelled():
                waiting.exception()  # (retrieved: raised above, or moot when this attempt was cancelled)

    async def _call(self, spec: TaskSpec, ctx: JobContext) -> object:
        if spec.is_async:
            return await spec.handler(ctx)
        # Plain functions run in a thread; on cancel or timeout they are told through
        # ctx.cancelled (a thread cannot be killed: external tools belong in ctx.run_process).
        return await asyncio.to_thread(spec.handler, ctx)

    def _outcome(self, running: RunningJob, created: JobCreated, attempt: int, timeout: float
                 ) -> TerminalEvent | JobSuspended:
        job_id, now = created.job_id, time.time()
        handler = running.handler
        if running.stop_reason == "timeout":
            return JobFailed(ts=now, job_id=job_id, attempt=attempt, reason=FailureReason.TIMEOUT,
                             error=f"timed out after {timeout:g}s; the work was stopped")
        if running.stop_reason == "cancelled":
            return JobCancelled(ts=now, job_id=job_id, attempt=attempt, reason="cancel requested")
        if handler.cancelled():
            return JobFailed(ts=now, job_id=job_id, attempt=attempt, error="the handler was cancelled")
        exc = handler.exception()
        if exc is None:
            result = handler.result()
            if isinstance(result, WaitForChildren):  # continue once the children it spawned have ended
                children = [ChildRef(id=c.id, name=c.name, weight=c.weight) for c in running.ctx.spawned]
                return JobSuspended(ts=now, job_id=job_id, attempt=attempt, children=children)
            try:
                encoder.encode(result)
            except TypeError as bad:  # a result that cannot be stored is the handler's failure
                return JobFailed(ts=now, job_id=job_id, attempt=attempt, reason=FailureReason.ERROR, error=f"TypeError: {bad}")
            return JobCompleted(ts=now, job_id=job_id, attempt=attempt, result=result)
        if isinstance(exc, PermanentError):
            return JobFailed(ts=now, job_id=job_id, attempt=attempt, error=str(exc), reason=FailureReason.PERMANENT)
        log.warning("job %s (%s) attempt %d failed: %s: %s", job_id, created.type, attempt, type(exc).__name__, exc)
        return JobFailed(ts=now, job_id=job_id, attempt=attempt, error=f"{type(exc).__name__}: {exc}")

    async def _retry(self, msg: Msg, chain: RunChain, spec: TaskSpec, failure: JobFailed, attempt: int) -> None:
        base = spec.retry_backoff_s or self._settings.retry_backoff_s
        delay = min(base * 2 ** (attempt - 1), self._settings.max_backoff_s) * random.uniform(0.5, 1.5)
        retrying = JobRetrying(ts=time.time(), job_id=failure.job_id, attempt=attempt, next_attempt=attempt + 1,
                               delay_s=round(delay, 3), error=failure.error)
        await chain.append(retrying, f"{failure.job_id}:{attempt}:retrying")
        await msg.nak(delay=delay)

    async def _signal_end(self, chain: RunChain, terminal: JobEvent) -> None:
        if chain.flow is not None:
            await signal_flow(self._js, self._names, chain.flow, chain.job_id, kind_of(terminal))

    async def _end(self, msg: Msg, chain: RunChain, terminal: TerminalEvent, attempt: int) -> None:
        await chain.append(terminal, f"{terminal.job_id}:{attempt}:end")
        await self._signal_end(chain, terminal)  # (before the ack: a crash between the two signals on redelivery)
        job_type, priority = self._names.created_type_and_priority(msg.subject)
        queue = self._queues.get(job_type) if priority == PRIORITY_MIN else None
        pull = queue.pull if queue is not None else None
        if pull is not None and not self._bands[job_type].busy and not self._draining and self._nc.is_connected:
            # This job's slot is free once it returns: the ack asks for the next job itself (one
            # message instead of an ack and a pull request per job).
            await pull.ack_and_ask(msg, 1)
        else:
            await msg.ack()
        self.jobs_done += 1
