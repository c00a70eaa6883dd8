"""The processor's supervisor: its capacity (slots), the intake of every served type, the cancels
that reach running jobs, and draining on stop. Each delivery is admitted (admission.py: a pure
decision) and, when it is to run, run as an attempt (attempt.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from jobline.contract.events import JobCreated, job_event_decoder
from jobline.contract.names import CANCEL
from jobline.runtime.consuming import delivery_of

from .admission import AlreadyEnded, Defaults, End, admit, needs_history
from .attempt import Attempts
from .fence import Fenced, RunChain
from .gates import Gates
from .intake import Intake
from .key_slots import KeySlots
from .metrics import ProcessorMetrics
from .objects import Objects
from .queues import Queues
from .registry import Registry
from .running import RunningJobs
from .settings import ProcessorSettings

log = logging.getLogger(__name__)
OVERFLOW_NAK_S = 0.2  # a job that arrived with every slot taken goes back this long (to anyone)
HAND_BACK_S = 10.0  # how long a stop waits for cancelled jobs to hand themselves back


def _hand_back(msg: Msg, delay: float | None = None) -> None:
    """Nak a delivery without waiting for it; a nak that cannot be sent (the connection is going)
    changes nothing: the ack wait hands the job back all the same."""
    task = asyncio.create_task(msg.nak(delay=delay))
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


class Worker:
    def __init__(self, nc: Client, js: JetStreamContext, settings: ProcessorSettings, registry: Registry,
                 instance: str, objects: Objects | None = None, metrics: ProcessorMetrics | None = None):
        self._nc = nc
        self._js = js
        self._settings = settings
        self._names = settings.names
        self._registry = registry
        self._defaults = Defaults(max_attempts=settings.max_attempts, queue_timeout_s=settings.queue_timeout_s)
        self._tasks: dict[int, asyncio.Task[None]] = {}  # by stream sequence of the created event
        self._intakes: dict[str, Intake] = {}  # by job type
        self._running = RunningJobs()
        self.controls = Queues(js, settings)
        self.key_slots = KeySlots(js, settings)
        self._attempts = Attempts(js, settings, instance, objects, metrics or ProcessorMetrics(),
                                  Gates(js, self._names, self.controls, self.key_slots, settings.ack_wait_s),
                                  self._running, finish=self._finish)
        self._instance = instance
        self._draining = False  # stopping: what comes is handed back, running jobs get the grace period
        self.quiet = False  # drained by an operator: takes no new job, runs what it has to the end
        self._cancels: Subscription | None = None
        self.jobs_done = 0
        self.on_change: Callable[[], None] = lambda: None  # a job started or ended (presence.py)

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
        await self.controls.start()
        await self.key_slots.start()
        self._cancels = await self._nc.subscribe(self._names.all_cancel_requests, cb=self._running.on_cancel_request)
        # One queue per type (and band), shared with every processor serving it: its pause and
        # concurrency are the broker's. A break (a restarted server, silence) asks again.
        for job_type in self.served_types():
            self._intakes[job_type] = Intake(self._nc, self._js, self._settings, self.controls, job_type,
                                             start=self._start, free=self._free,
                                             draining=lambda: self._draining or self.quiet)
        for intake in self._intakes.values():
            await intake.start()

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: `start()` first (done here when it was not)."""
        if self._cancels is None:
            await self.start()
        try:
            log.info("processing %s as %s", ", ".join(self._intakes), self._instance)
            await asyncio.gather(*(intake.run(stop) for intake in self._intakes.values()))
        finally:
            self._draining = True  # anything already on its way is handed straight back
            for intake in self._intakes.values():
                await intake.withdraw()
            await self._drain()
            with contextlib.suppress(Exception):
                if self._cancels is not None:
                    await self._cancels.unsubscribe()
            await self.controls.stop()

    def _free(self) -> int:
        return 0 if self.quiet else max(self._settings.concurrency - len(self._tasks), 0)

    @property
    def running(self) -> int:
        return len(self._tasks)

    def running_ids(self, most: int) -> list[str]:
        return self._running.ids(most)

    def set_quiet(self, quiet: bool) -> None:
        """Drain (take no new job; those running go on to their end) or take work again."""
        if quiet != self.quiet:
            log.info("%s: %s", self._instance, "drained by an operator: taking no new job" if quiet else "taking jobs again")
        self.quiet = quiet
        if not quiet:
            for intake in self._intakes.values():
                intake.wake()

    def _start(self, msg: Msg) -> None:
        if self._draining:
            _hand_back(msg)
            return
        if self.quiet:  # (a pull answered after the drain: someone else takes it)
            _hand_back(msg, OVERFLOW_NAK_S)
            return
        if not self._free():  # more queues delivered than there were slots: hand it to someone else
            _hand_back(msg, OVERFLOW_NAK_S)
            return
        key, delivered = delivery_of(msg)
        task = asyncio.create_task(self._process(msg, key, delivered), name=f"job-{key}")
        self._tasks[key] = task
        self.on_change()

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.pop(key, None)
            self.on_change()
            for intake in self._intakes.values():
                intake.wake()  # a slot is free
            if not t.cancelled() and t.exception() is not None:
                log.error("job task failed", exc_info=t.exception())

        task.add_done_callback(done)

    async def _finish(self, msg: Msg) -> None:
        job_type, priority, lane = self._names.created_queue(msg.subject)
        intake = self._intakes.get(job_type)
        await (intake.finish(msg, priority, lane) if intake is not None else msg.ack())
        self.jobs_done += 1

    async def _drain(self) -> None:
        """Let running jobs finish within the grace period; hand the rest back at once (nak)."""
        if not self._tasks:
            return
        log.info("draining %d running job(s) for up to %.1fs", len(self._tasks), self._settings.drain_grace_s)
        _, pending = await asyncio.wait(list(self._tasks.values()), timeout=self._settings.drain_grace_s)
        for task in pending:
            task.cancel()
        if pending:
            # Bounded too: a stop must end even if a handler's clean-up hangs (its lease then lapses).
            _, stuck = await asyncio.wait(pending, timeout=HAND_BACK_S)
            log.info("handed %d job(s) back", len(pending) - len(stuck))
            if stuck:
                log.warning("%d job task(s) still ending after %.0fs: left to their lease", len(stuck), HAND_BACK_S)

    # --- one delivery -----------------------------------------------------------------------
    async def _process(self, msg: Msg, seq: int, delivered: int) -> None:
        try:
            created = job_event_decoder.decode(msg.data)
            if not isinstance(created, JobCreated):
                raise msgspec.ValidationError(f"expected a created event, got {type(created).__name__}")
        except msgspec.DecodeError as exc:
            log.error("dropping undecodable message %s on %s: %s", seq, msg.subject, exc)
            await msg.term()
            return
        chain = RunChain(self._js, self._names, created.job_id, flow=created.flow,
                         webhook=created.webhook_url is not None)
        spec = self._registry.get(created.type)
        try:
            if needs_history(created, delivered):  # a redelivery: it may have ended or been cancelled meanwhile
                decision = admit(created, spec, self._defaults, time.time(), last=await chain.read_last(),
                                 cancel_requested=await self._cancel_was_requested(created.job_id))
            else:
                decision = admit(created, spec, self._defaults, time.time())
            match decision:
                case AlreadyEnded(event=event):
                    await self._attempts.signal_end(chain, event)  # (again: its ender may have died before it could)
                    await msg.ack()
                case End(event=event, attempt=attempt):
                    await self._attempts.end(msg, chain, event, attempt)
                case _:
                    assert spec is not None
                    await self._attempts.run(msg, chain, spec, created, decision)
        except Fenced as exc:
            # Superseded: a newer attempt, a cancel or an end came first. Touch nothing: the
            # delivery now belongs to whoever holds the job.
            log.warning("job %s fenced out: %s", created.job_id, exc)

    async def _cancel_was_requested(self, job_id: str) -> bool:
        try:
            await self._js.get_last_msg(self._names.jobs_stream, self._names.job_event(job_id, CANCEL), direct=True)
        except NotFoundError:
            return False
        return True
