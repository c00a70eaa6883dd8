"""Writing jobs: a new job (checked first), many new jobs as one write, a job made by the system
(a schedule's tick, a spawned child, a released one), a cancel.

Every new job's first message is stored only if the job has no event yet (`Nats-Expected-Last-
Subject-Sequence: 0` on `jobs.<id>.>`), so a job made under an id known in advance (a batch's, a
flow's, a tick's, a child's) is never stored twice, however late a retry comes — which the stream's
duplicate window alone (two minutes) would not ensure.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.errors import APIError
from nats.js.kv import KeyValue

from jobline.contract.events import CancelRequested, JobCancelled, JobCreated, JobDeleted, JobScheduled, encoder
from jobline.contract.job_state import JobState
from jobline.contract.names import Names
from jobline.contract.publishing import WRONG_LAST_SEQUENCE_ERR, created_msg_id, expect_last, fenced, subject_of
from jobline.contract.submissions import JobSubmission
from jobline.runtime.atomic_publish import BATCH_TOO_LARGE_ERR, publish_batch_reliably
from jobline.runtime.end_signals import signal_end
from jobline.runtime.publishing import publish_if_last, publish_reliably
from jobline.runtime.signal_waits import unschedule_timeout
from jobline.runtime.tracing import annotate, context_of, traceparent_of, valid_traceparent

from .bands import Bands
from .checks import JobChecks
from .delays import schedule_headers, scheduled_event, unschedule
from .errors import Conflict, Invalid, JobError, TooLarge, Unavailable
from .history_client import HistoryUnavailable
from .idempotency import claim, fingerprint, release
from .new_jobs import NewJob, existing
from .reader import JobReader
from .unique import Taken, UniqueKeys

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

log = logging.getLogger(__name__)
ATTEMPTS = 4  # atomic writes of what is still missing, each after finding what exists
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_CROCKFORD_PAIRS = [high + low for high in _CROCKFORD for low in _CROCKFORD]  # 10 bits → 2 characters


def new_job_id() -> str:
    """A ULID in lowercase Crockford base32: 26 characters, sortable by creation time."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    pairs = _CROCKFORD_PAIRS  # two characters per lookup: this runs on every submission
    return "".join([pairs[(value >> shift) & 1023] for shift in range(120, -10, -10)])


class Held(Exception):
    """The submission's unique_key is held by `job_id` (`state`: as this gateway last saw it, if it
    did): it answers the submission, and nothing is made."""

    def __init__(self, job_id: str, state: JobState | None):
        super().__init__(job_id)
        self.job_id, self.state = job_id, state


class JobWriter:
    def __init__(self, nc: Client, js: JetStreamContext, names: Names, checks: JobChecks, keys: KeyValue,
                 bands: Bands, reader: JobReader, on_stored: Callable[[str], None] = lambda job_type: None,
                 unique: KeyValue | None = None, tracer: Tracer | None = None):
        self.nc = nc
        self.js = js
        self.names = names
        self.checks = checks
        self.keys = keys  # KV idempotency: Idempotency-Key → the job (or batch, flow) it made
        self.bands = bands
        self.reader = reader
        self._on_stored = on_stored  # (the gateway counts submissions per type)
        self.unique = UniqueKeys(unique, reader) if unique is not None else None  # unique_key: one job per key
        self.tracer = tracer  # None: tracing is off (runtime/tracing.py)

    # --- new jobs ---------------------------------------------------------------------------
    def created_event(self, submission: JobSubmission, job_id: str, ts: float, **origin: str | float | None
                      ) -> JobCreated:
        """The job's created event (`origin`: schedule and tick, batch)."""
        info = self.checks.catalogue.types.get(submission.type)
        return JobCreated(ts=ts, job_id=job_id, type=submission.type, params=submission.params,
                          steps=list(info.steps) if info else [], timeout_s=submission.timeout_s,
                          max_attempts=submission.max_attempts, queue_timeout_s=submission.queue_timeout_s,
                          webhook_url=submission.webhook_url, concurrency_key=submission.concurrency_key,
                          priority=submission.priority, owner=submission.owner, tags=list(submission.tags),
                          **origin)  # type: ignore[arg-type]

    @contextlib.contextmanager
    def span(self, name: str, traceparent: str | None = None, **attributes: str | int) -> Iterator[str | None]:
        """A span of the trace the jobs made in it belong to (continuing `traceparent`, the
        submitting request's): the traceparent to stamp on their created events. With tracing off,
        a valid `traceparent` is carried on as it is (and no span made)."""
        parent = valid_traceparent(traceparent)
        if self.tracer is None:
            yield parent
            return
        with self.tracer.start_as_current_span(name, context=context_of(parent), attributes=attributes) as span:
            yield traceparent_of(span)

    async def submit(self, submission: JobSubmission, idempotency_key: str | None = None,
                     request_fingerprint: str | None = None, traceparent: str | None = None,
                     ) -> tuple[JobCreated | JobScheduled, bool]:
        """`_submit` in a `submit` span of the job's trace."""
        with self.span("submit", traceparent, **{"jobline.job.type": submission.type}) as stamped:
            return await self._submit(submission, idempotency_key, request_fingerprint, stamped)

    async def _submit(self, submission: JobSubmission, idempotency_key: str | None, request_fingerprint: str | None,
                      traceparent: str | None) -> tuple[JobCreated | JobScheduled, bool]:
        """Check the job, then store its created event (or, for a delayed job, its schedule and its
        scheduled event); returns it and whether it is new (False: an earlier request with the same
        Idempotency-Key created it; a key used before for something else raises KeyReused).
        `request_fingerprint`: what the request asked for, when that is not the submission itself."""
        run_at = await self.checks.check(submission, idempotency_key)
        submitted_at = time.time()
        job_id = new_job_id()
        fresh = True
        if idempotency_key is not None:
            claimed = await claim(self.keys, idempotency_key, job_id, request_fingerprint or fingerprint(submission))
            if claimed != job_id:
                earlier = await self._made_before(claimed)
                if earlier is not None:
                    return earlier, False
                # The first request claimed the key but may have died before storing the job: store
                # it (the created event's Nats-Msg-Id makes a race between the two a single message).
                job_id, fresh = claimed, False
        if self.tracer is not None:
            annotate("jobline.job.id", job_id)
        replaced = None
        if submission.unique_key is not None and fresh:
            if self.unique is None:
                raise Invalid("unique_key is taken by POST /api/jobs only", title="Invalid job", key="unique_key")
            try:
                replaced = await self.unique.take(submission, job_id, submitted_at)
            except Taken as taken:
                if idempotency_key is not None:  # (a retry of this request must find the key held again, not
                    await release(self.keys, idempotency_key, job_id)  # store the job it claimed)
                raise Held(taken.job_id, self.reader.live.get(taken.job_id)) from None
            if submission.unique_mode == "debounce":
                # (checked: no run_at of its own; whole seconds, the broker's, never before the window ends)
                run_at = float(math.ceil(submitted_at + (submission.unique_window_s or 0.0)))
        event = self.created_event(submission, job_id, run_at or submitted_at, traceparent=traceparent)
        try:
            stored = await self.store(event, run_at, submitted_at)
        except BaseException:
            if submission.unique_key is not None and self.unique is not None and fresh:
                await self.unique.release(submission, job_id)
            raise
        if replaced is not None:  # (debounce: the job this one replaces has not started; it will not)
            with contextlib.suppress(JobError):
                await self.cancel(replaced, f"debounced: replaced by {job_id}")
        return stored, fresh

    async def _made_before(self, job_id: str) -> JobCreated | None:
        """The job an Idempotency-Key names, if it was made (it may have left memory: the history
        has it); None when the request that claimed the key died before storing it."""
        try:
            state = await self.reader.lookup(job_id)
        except HistoryUnavailable as exc:
            raise Unavailable(f"this Idempotency-Key belongs to an earlier job that cannot be looked up now ({exc}); "
                              "nothing was created", title="History unavailable") from exc
        if state is None:
            return None
        return JobCreated(ts=state.created_at, job_id=job_id, type=state.type, params=state.params)

    async def store(self, event: JobCreated, run_at: float | None, submitted_at: float, *,
                    only_if_new: bool = False) -> JobCreated | JobScheduled:
        """Store a new job: its created event, or for a delayed job its schedule and its scheduled
        event. `only_if_new`: stored only if the job has no event yet (an id made in advance: a
        schedule's tick, a spawned child)."""
        names, job_id = self.names, event.job_id
        await self.bands.ensure_for([event])
        headers = expect_last(names.job_timeline(job_id), 0) if only_if_new else None
        stored: JobCreated | JobScheduled = event
        try:
            if run_at is None:
                await publish_reliably(self.js, subject_of(names, event), encoder.encode(event),
                                       msg_id=created_msg_id(job_id), headers=headers, give_up_after=10.0)
            else:
                # The schedule first: if this process dies between the two, the job still runs (it
                # shows up when it fires) instead of showing `scheduled` for ever.
                await publish_reliably(self.js, names.schedule(job_id), encoder.encode(event),
                                       msg_id=f"{job_id}:schedule", headers=schedule_headers(names, event),
                                       give_up_after=10.0)
                stored = scheduled_event(event, submitted_at)
                await publish_reliably(self.js, subject_of(names, stored), encoder.encode(stored),
                                       msg_id=f"{job_id}:scheduled", headers=headers, give_up_after=10.0)
        except APIError as exc:
            if not (only_if_new and exc.err_code == WRONG_LAST_SEQUENCE_ERR):
                raise
            return stored  # stored by an earlier try
        except (NatsTimeout, NoRespondersError) as exc:
            raise Unavailable(f"the job could not be stored ({type(exc).__name__}); nothing was created",
                              title="Event store unavailable") from exc
        self._on_stored(event.type)
        return stored

    async def store_all(self, jobs: list[NewJob]) -> None:
        """Store every job not stored yet, all in one atomic write (a JetStream atomic batch): a
        JobError when the write could not be made, and then none of them was stored by this call.
        A write refused because some jobs exist (an earlier try of the same request, another request
        that claimed the same keys) is made again without them."""
        pending = jobs
        # (a band's or lane's queue exists before its first job)
        await self.bands.ensure_for([j.event for j in jobs])
        for _ in range(ATTEMPTS):
            if not pending:
                return
            messages = [m for job in pending for m in job.messages]
            log.info("storing %d jobs in one atomic write (%d messages)", len(pending), len(messages))
            try:
                await publish_batch_reliably(self.nc, messages, give_up_after=10.0)
            except APIError as exc:
                if exc.err_code == BATCH_TOO_LARGE_ERR:
                    raise TooLarge(f"the event store takes at most so many messages in one atomic write "
                                   f"({exc.description}); {len(messages)} were needed; nothing was created. Its "
                                   "nats-server needs jetstream.limits.batch.max_msgs (docs/deployment.md).",
                                   title="Too many jobs at once") from exc
                if exc.err_code != WRONG_LAST_SEQUENCE_ERR:
                    raise Unavailable(f"{exc.description}; nothing was created",
                                      title="Event store refused the jobs") from exc
                found = await existing(self.js, self.names, [j.id for j in pending])
                log.info("%d of %d jobs exist already; storing the other %d", len(found), len(pending),
                         len(pending) - len(found))
                pending = [j for j in pending if j.id not in found]
                continue
            except (NatsTimeout, NoRespondersError) as exc:
                raise Unavailable(f"the jobs could not be stored ({type(exc).__name__}); repeat the request with the "
                                  "same Idempotency-Key to be sure of the outcome",
                                  title="Event store unavailable") from exc
            for job in pending:
                self._on_stored(job.event.type)
            return
        raise Unavailable("the jobs kept being created by other requests meanwhile; try again", title="Event store busy")

    # --- cancel -------------------------------------------------------------------------------
    async def cancel(self, job_id: str, reason: str = "") -> str:
        """Record the request; a job not running anywhere (blocked, pending, waiting for a signal or to retry)
        ends `cancelled` at once, a running one when its processor has stopped the work. A job of a
        flow takes its unfinished children with it. Returns `cancelled` or `cancelling`; Conflict
        for a job that ended already."""
        state = await self.reader.find(job_id)
        if state.is_terminal:
            raise Conflict(f"job {job_id} ended {state.status}; there is nothing to cancel", title="Job already ended",
                           status_now=state.status)
        for child in state.children:  # (each child's own children first, and so on down)
            with contextlib.suppress(JobError):  # (ended already, or gone from history)
                await self.cancel(child.id, reason or f"its parent {job_id} was cancelled")
        names = self.names
        if state.status == "scheduled":
            await unschedule(self.js, names, job_id)  # it will not fire (if it has not yet)
        if state.awaiting_signal is not None and state.signal_timeout_at is not None:
            await unschedule_timeout(self.js, names, job_id, state.awaiting_signal)  # (nor its wait's timeout)
        request = CancelRequested(ts=time.time(), job_id=job_id, reason=reason)
        await publish_reliably(self.js, subject_of(names, request), encoder.encode(request), msg_id=f"{job_id}:cancel")
        if state.status not in ("scheduled", "blocked", "pending", "waiting", "retrying"):
            return "cancelling"
        cancelled = JobCancelled(ts=time.time(), job_id=job_id, attempt=state.attempt,
                                 reason=reason or "cancelled before it ran")
        if not await publish_if_last(self.js, subject_of(names, cancelled), encoder.encode(cancelled),
                                     msg_id=f"{job_id}:cancelled", headers=fenced(names, job_id, state.run_seq)):
            return "cancelling"  # a processor took it meanwhile: it sees the request and stops the work
        await signal_end(self.js, names, job_id, "cancelled", flow=state.flow, webhook=state.webhook_url is not None)
        return "cancelled"

    # --- delete -------------------------------------------------------------------------------
    async def delete(self, job_id: str, reason: str = "") -> None:
        """Delete an ended job from history (a `deleted` event: the history service drops its rows,
        every gateway forgets it). Conflict for a job that has not ended (cancel it first)."""
        state = await self.reader.find(job_id)
        if not state.is_terminal:
            raise Conflict(f"job {job_id} is {state.status}: only an ended job is deleted (cancel it first)",
                           title="Job not ended", status_now=state.status)
        deleted = JobDeleted(ts=time.time(), job_id=job_id, reason=reason)
        await publish_reliably(self.js, subject_of(self.names, deleted), encoder.encode(deleted),
                               msg_id=f"{job_id}:deleted", give_up_after=10.0)
