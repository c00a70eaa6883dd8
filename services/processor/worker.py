"""The consume loop: fetch created events from the shared durable, run each job, end it once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError, NotFoundError

from jobline.contract.events import (
    JobCompleted,
    JobCreated,
    JobFailed,
    JobStarted,
    TerminalEvent,
    encoder,
    job_event_decoder,
)
from jobline.contract.names import ENDED, Names
from jobline.contract.publishing import ONLY_IF_FIRST, WRONG_LAST_SEQUENCE_ERR, subject_of
from jobline.runtime.consuming import fetch_or_stop
from jobline.runtime.publishing import publish_reliably

from .context import JobContext, Outbox
from .registry import PermanentError, Registry, TaskSpec
from .settings import ProcessorSettings

log = logging.getLogger(__name__)


def consumer_config(settings: ProcessorSettings, names: Names, job_types: list[str]) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=names.processor_durable(settings.pool),
        description=f"processor pool {settings.pool!r}: {', '.join(job_types)}",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.ack_wait_s,
        max_deliver=settings.max_deliver,
        max_ack_pending=max(1000, settings.concurrency * 64),
        filter_subjects=[names.created_filter(t) for t in job_types],
    )


async def ensure_consumer(js: JetStreamContext, stream: str, wanted: ConsumerConfig) -> datetime | None:
    """Create the pool's durable, or update it when the settings changed; returns its creation time."""
    durable = wanted.durable_name
    assert durable
    try:
        info = await js.consumer_info(stream, durable)
    except NotFoundError:
        info = await js.add_consumer(stream, wanted)
        log.info("created consumer %s on %s", durable, stream)
        return _created_at(info)
    have = info.config
    have_filters = sorted(have.filter_subjects or ([have.filter_subject] if have.filter_subject else []))
    drift = {
        key: (old, new)
        for key, old, new in (
            ("filter_subjects", have_filters, sorted(wanted.filter_subjects or [])),
            ("ack_wait", round(have.ack_wait or 0, 3), round(wanted.ack_wait or 0, 3)),
            ("max_deliver", have.max_deliver, wanted.max_deliver),
            ("max_ack_pending", have.max_ack_pending, wanted.max_ack_pending),
        )
        if old != new
    }
    if drift:
        log.warning("consumer %s differs from the settings (%s); updating it", durable,
                    ", ".join(f"{k}: {o!r} -> {n!r}" for k, (o, n) in drift.items()))
        info = await js.add_consumer(stream, wanted)
    return _created_at(info)


def _created_at(info: object) -> datetime | None:
    created = getattr(info, "created", None)
    if isinstance(created, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(created.replace("Z", "+00:00")[:26] + "+00:00")
    return created if isinstance(created, datetime) else None


class Worker:
    def __init__(self, js: JetStreamContext, settings: ProcessorSettings, registry: Registry, instance: str):
        self._js = js
        self._settings = settings
        self._names = settings.names
        self._registry = registry
        self._instance = instance
        self._running: dict[str, asyncio.Task[None]] = {}
        self._slot_free = asyncio.Event()
        self._consumer_created_ts = 0.0
        self.jobs_done = 0

    def served_types(self) -> list[str]:
        wanted = list(self._settings.job_types) or self._registry.names()
        unknown = [t for t in wanted if self._registry.get(t) is None]
        if unknown:
            raise ValueError(f"JOBLINE_PROCESSOR_TYPES names unregistered job types: {', '.join(unknown)}")
        return wanted

    async def run(self, stop: asyncio.Event) -> None:
        stream = self._names.jobs_stream
        config = consumer_config(self._settings, self._names, self.served_types())
        created = await ensure_consumer(self._js, stream, config)
        self._consumer_created_ts = created.timestamp() if created else 0.0
        psub = await self._js.pull_subscribe_bind(durable=config.durable_name, stream=stream)
        log.info("processing %s from %s as %s", ", ".join(self.served_types()), config.durable_name, self._instance)
        stop_wait = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                free = self._settings.concurrency - len(self._running)
                if free <= 0:
                    self._slot_free.clear()
                    slot_wait = asyncio.create_task(self._slot_free.wait())
                    await asyncio.wait({slot_wait, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                    slot_wait.cancel()
                    continue
                try:
                    # A long poll held by the server: returns as soon as work arrives.
                    msgs = await fetch_or_stop(psub, free, stop_wait)
                except (nats.errors.TimeoutError, asyncio.TimeoutError):
                    continue
                except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError) as exc:
                    log.warning("fetch failed (%s); retrying", type(exc).__name__)
                    await asyncio.wait({stop_wait}, timeout=0.5)
                    continue
                for msg in msgs:
                    self._start(msg)
        finally:
            stop_wait.cancel()
            # Unsubscribe first: a pull subscription left open makes nc.drain() hang.
            with contextlib.suppress(Exception):
                await psub.unsubscribe()
            await self._drain()

    def _start(self, msg: Msg) -> None:
        key = f"{msg.metadata.sequence.stream}"
        task = asyncio.create_task(self._process(msg), name=f"job-{key}")
        self._running[key] = task

        def done(_: asyncio.Task[None]) -> None:
            self._running.pop(key, None)
            self._slot_free.set()

        task.add_done_callback(done)

    async def _drain(self) -> None:
        """Let running jobs finish within the grace period; hand the rest back at once."""
        if not self._running:
            return
        log.info("draining %d running job(s) for up to %.1fs", len(self._running), self._settings.drain_grace_s)
        _, pending = await asyncio.wait(list(self._running.values()), timeout=self._settings.drain_grace_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def _already_ended(self, job_id: str) -> bool:
        try:
            await self._js.get_last_msg(self._names.jobs_stream, self._names.job_event(job_id, ENDED), direct=True)
        except NotFoundError:
            return False
        return True

    async def _process(self, msg: Msg) -> None:
        meta = msg.metadata
        attempt = meta.num_delivered or 1
        try:
            created = job_event_decoder.decode(msg.data)
            if not isinstance(created, JobCreated):
                raise msgspec.ValidationError(f"expected a created event, got {type(created).__name__}")
        except msgspec.DecodeError as exc:
            log.error("dropping undecodable message %s on %s: %s", meta.sequence.stream, msg.subject, exc)
            await msg.term()
            return
        # A redelivery, or a message older than this consumer, may belong to a job that already
        # ended (its worker died between storing the end and acking): never run it again.
        is_old = meta.timestamp is not None and meta.timestamp.timestamp() < self._consumer_created_ts
        if (attempt > 1 or is_old) and await self._already_ended(created.job_id):
            await msg.ack()
            return
        spec = self._registry.get(created.type)
        if spec is None:  # the consumer's filter makes this a configuration error, not user input
            await self._end(JobFailed(ts=time.time(), job_id=created.job_id, attempt=attempt,
                                      error=f"no handler for job type {created.type!r}", reason="unknown_type"))
            await msg.ack()
            return
        outbox = Outbox(self._js, self._names, created.job_id, attempt)
        heartbeat = asyncio.create_task(self._keep_alive(msg))
        try:
            terminal = await self._run_attempt(spec, created, attempt, outbox)
            await outbox.close()
            await self._end(terminal)
        except asyncio.CancelledError:
            # Drain ran out of time: hand the job back now rather than after the ack wait.
            outbox.abort()
            with contextlib.suppress(Exception):
                await msg.nak()
            raise
        finally:
            heartbeat.cancel()
        await msg.ack()
        self.jobs_done += 1

    async def _run_attempt(self, spec: TaskSpec, created: JobCreated, attempt: int, outbox: Outbox) -> TerminalEvent:
        job_id = created.job_id
        try:
            params = spec.parse_params(created.params)
        except msgspec.ValidationError as exc:
            return JobFailed(ts=time.time(), job_id=job_id, attempt=attempt, error=f"invalid params: {exc}", reason="invalid_params")
        outbox.put(JobStarted(ts=time.time(), job_id=job_id, attempt=attempt, worker=self._instance, steps=spec.plan(params)))
        ctx = JobContext(
            job_id=job_id, job_type=created.type, attempt=attempt, params=params, outbox=outbox,
            progress_rate=self._settings.progress_rate, loop=asyncio.get_running_loop(),
        )
        try:
            if spec.is_async:
                result = await spec.handler(ctx)
            else:
                result = await asyncio.to_thread(spec.handler, ctx)
            encoder.encode(result)  # a result that cannot be stored is the handler's failure
        except asyncio.CancelledError:
            ctx.finish("failed")
            raise
        except PermanentError as exc:
            ctx.finish("failed")
            return JobFailed(ts=time.time(), job_id=job_id, attempt=attempt, error=str(exc))
        except Exception as exc:
            log.warning("job %s (%s) failed: %s: %s", job_id, created.type, type(exc).__name__, exc)
            ctx.finish("failed")
            return JobFailed(ts=time.time(), job_id=job_id, attempt=attempt, error=f"{type(exc).__name__}: {exc}")
        ctx.finish("done")
        return JobCompleted(ts=time.time(), job_id=job_id, attempt=attempt, result=result)

    async def _end(self, terminal: TerminalEvent) -> None:
        try:
            await publish_reliably(
                self._js, subject_of(self._names, terminal), encoder.encode(terminal),
                msg_id=f"{terminal.job_id}:{terminal.attempt}:end", headers=ONLY_IF_FIRST,
            )
        except APIError as exc:
            if exc.err_code != WRONG_LAST_SEQUENCE_ERR:
                raise
            log.warning("job %s already has its terminal event; %s not stored", terminal.job_id, type(terminal).__name__)

    async def _keep_alive(self, msg: Msg) -> None:
        """In-progress acks: a job longer than the ack wait is not redelivered while we live."""
        interval = max(self._settings.ack_wait_s / 3, 0.1)
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await msg.in_progress()
