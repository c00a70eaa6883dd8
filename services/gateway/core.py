"""The gateway's logic as plain functions over a `Core`, testable without HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.errors import APIError
from nats.js.kv import KeyValue

from jobline.contract.events import (
    TERMINAL_KINDS,
    CancelRequested,
    JobCancelled,
    JobCreated,
    JobScheduled,
    LogPage,
    LogQuery,
    encoder,
)
from jobline.contract.job_state import JobState
from jobline.contract.names import PRIORITY_MAX, PRIORITY_MIN, is_valid_job_id, is_valid_job_type
from jobline.contract.publishing import WRONG_LAST_SEQUENCE_ERR, created_msg_id, expect_last, fenced, subject_of
from jobline.runtime.flow_signals import signal_flow
from jobline.runtime.publishing import publish_if_last, publish_reliably

from . import sse
from .catalogue import Catalogue
from .delays import run_time, schedule_headers, scheduled_event, unschedule
from .event_stream import StreamWatchdog
from .history import HistoryClient, HistoryRefused, HistoryUnavailable
from .hub import Hub, Listener
from .idempotency import claim, fingerprint
from .limits import MAX_CONCURRENCY_KEY, MAX_IDEMPOTENCY_KEY, MAX_JOB_BYTES, MAX_WEBHOOK_URL
from .metrics import GatewayMetrics
from .objects import ObjectStores
from .problems import Problem
from .queues import QueueStore
from .read_model import ReadModel
from .schedules import ScheduleStore
from .settings import GatewaySettings
from .timeline import StoredEvent, last_event_seq, read_events
from .webhook_targets import WebhookTargetRefused, check_target

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_CROCKFORD_PAIRS = [high + low for high in _CROCKFORD for low in _CROCKFORD]  # 10 bits → 2 characters
_log_page_decoder = msgspec.json.Decoder(LogPage)


@dataclass
class Core:
    settings: GatewaySettings
    nc: Client
    js: JetStreamContext
    read_model: ReadModel
    hub: Hub
    catalogue: Catalogue
    idempotency: KeyValue
    objects: ObjectStores
    metrics: GatewayMetrics
    watchdog: StreamWatchdog
    history: HistoryClient
    schedules: ScheduleStore | None = None  # recurring schedules (opened at start)
    queues: QueueStore | None = None  # queue controls of the job types (opened at start)
    batches: KeyValue | None = None  # batch records (opened at start)
    flows: KeyValue | None = None  # flow records (opened at start)
    ready: bool = False


class JobSubmission(msgspec.Struct, forbid_unknown_fields=True):
    type: str
    params: dict[str, Any] = {}
    timeout_s: float | None = None  # run time limit (default: the type's, else the processor's)
    max_attempts: int | None = None
    queue_timeout_s: float | None = None  # pending longer than this: ends `expired` without running
    webhook_url: str | None = None  # POSTed to when the job ends (Standard Webhooks, signed)
    run_at: str | None = None  # RFC 3339: stays `scheduled` until then (delays.py)
    delay_s: float | None = None  # or: this many seconds from now
    concurrency_key: str | None = None  # with the type's per-key limit: e.g. the user id (queue controls)
    priority: int = PRIORITY_MIN  # PRIORITY_MIN..PRIORITY_MAX: with a backlog, higher starts first


def _check_limits(core: Core, submission: JobSubmission) -> None:
    limit = core.settings.max_timeout_s
    for name in ("timeout_s", "queue_timeout_s"):
        value = getattr(submission, name)
        if value is not None and not 0 < value <= limit:
            raise Problem(422, "Invalid limit", f"{name} must be above 0 and at most {limit:g} seconds",
                          errors=[{"key": name, "source": "body", "message": f"must be in (0, {limit:g}]"}])
    attempts = submission.max_attempts
    if attempts is not None and not 1 <= attempts <= core.settings.max_attempts:
        raise Problem(422, "Invalid limit", f"max_attempts must be from 1 to {core.settings.max_attempts}",
                      errors=[{"key": "max_attempts", "source": "body", "message": "out of range"}])


def new_job_id() -> str:
    """A ULID in lowercase Crockford base32: 26 characters, sortable by creation time."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    pairs = _CROCKFORD_PAIRS  # two characters per lookup: this runs on every submission
    return "".join([pairs[(value >> shift) & 1023] for shift in range(120, -10, -10)])


def check_idempotency_key(key: str | None) -> None:
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise Problem(400, "Invalid Idempotency-Key", f"the key must have 1 to {MAX_IDEMPOTENCY_KEY} characters",
                      errors=[{"key": "Idempotency-Key", "source": "header", "message": "bad length"}])


def check_job_id(job_id: str) -> None:
    if not is_valid_job_id(job_id):
        raise Problem(400, "Invalid job id", f"{job_id!r} is not a job id (letters, digits, '-' and '_', at most 64)",
                      errors=[{"key": "id", "source": "path", "message": "invalid job id"}])


async def validate(core: Core, submission: JobSubmission, idempotency_key: str | None = None) -> float | None:
    """Every check a submission must pass before anything is stored (a Problem when one fails);
    returns when it is to run (None: now)."""
    if not is_valid_job_type(submission.type) or submission.type not in core.catalogue.types:
        known = ", ".join(sorted(core.catalogue.types)) or "none yet: is a processor running?"
        raise Problem(422, "Unknown job type", f"job type {submission.type!r} is not served by any processor (known: {known})",
                      errors=[{"key": "type", "source": "body", "message": "unknown job type"}])
    _check_limits(core, submission)
    size = len(encoder.encode(submission))
    if size > MAX_JOB_BYTES:
        raise Problem(413, "Job too large", f"the job is {size} bytes as JSON; a job is at most {MAX_JOB_BYTES} "
                      "(big inputs are uploads: POST /api/uploads)",
                      errors=[{"key": "params", "source": "body", "message": f"at most {MAX_JOB_BYTES} bytes"}])
    mismatches = core.catalogue.params_errors(submission.type, submission.params)
    if mismatches:
        raise Problem(422, "Invalid params", f"the params do not fit the type's schema: {mismatches[0][1]}"
                      + (f" (at params.{mismatches[0][0]})" if mismatches[0][0] else ""),
                      errors=[{"key": f"params.{where}" if where else "params", "source": "body", "message": what}
                              for where, what in mismatches])
    key = submission.concurrency_key
    if key is not None and not 0 < len(key) <= MAX_CONCURRENCY_KEY:
        raise Problem(422, "Invalid concurrency key", f"concurrency_key must have 1 to {MAX_CONCURRENCY_KEY} characters",
                      errors=[{"key": "concurrency_key", "source": "body", "message": "bad length"}])
    if not PRIORITY_MIN <= submission.priority <= PRIORITY_MAX:
        raise Problem(422, "Invalid priority", f"priority must be from {PRIORITY_MIN} to {PRIORITY_MAX} (higher starts first)",
                      errors=[{"key": "priority", "source": "body", "message": "out of range"}])
    if submission.webhook_url is not None:
        await _check_webhook(core, submission.webhook_url)
    check_idempotency_key(idempotency_key)
    return run_time(submission.run_at, submission.delay_s, core.settings.effective_max_delay_s)


def created_event(submission: JobSubmission, job_id: str, ts: float, steps: list[str], *,
                  schedule: str | None = None, tick: float | None = None, batch: str | None = None) -> JobCreated:
    return JobCreated(ts=ts, job_id=job_id, type=submission.type, params=submission.params, steps=steps,
                      timeout_s=submission.timeout_s, max_attempts=submission.max_attempts,
                      queue_timeout_s=submission.queue_timeout_s, webhook_url=submission.webhook_url,
                      schedule=schedule, tick=tick, batch=batch, concurrency_key=submission.concurrency_key,
                      priority=submission.priority)


async def submit(core: Core, submission: JobSubmission, idempotency_key: str | None = None,
                 request_fingerprint: str | None = None) -> tuple[JobCreated | JobScheduled, bool]:
    """Publish the job's created event (or, for a delayed job, its schedule and its scheduled
    event); returns it and whether it is new (False: an earlier request with the same
    Idempotency-Key created it; a key an earlier request used for something else is KeyReused).
    `request_fingerprint`: what the request asked for, when that is not the submission itself."""
    run_at = await validate(core, submission, idempotency_key)
    submitted_at = time.time()
    info = core.catalogue.types[submission.type]
    job_id = new_job_id()
    fresh = True
    if idempotency_key is not None:
        claimed = await claim(core.idempotency, idempotency_key, job_id, request_fingerprint or fingerprint(submission))
        fresh = claimed == job_id
        job_id = claimed
    event = created_event(submission, job_id, run_at or submitted_at, list(info.steps))
    if not fresh:
        existing = core.read_model.get(job_id)
        if existing is None:
            try:  # created long ago, it may have left this gateway's memory: the history has it
                existing = await core.history.job(job_id, min_seq=core.read_model.last_seq)
            except HistoryUnavailable as exc:
                raise Problem(503, "History unavailable", "this Idempotency-Key belongs to an earlier job that "
                              f"cannot be looked up now ({exc}); nothing was created") from exc
        if existing is not None:
            return JobCreated(ts=existing.created_at, job_id=job_id, type=existing.type, params=existing.params), False
        # The first request claimed the key but may have died before publishing: publish (the
        # created event's Nats-Msg-Id makes a race between the two a single message).
    return await publish_job(core, event, run_at, submitted_at), fresh


async def publish_job(core: Core, event: JobCreated, run_at: float | None, submitted_at: float, *,
                      only_if_new: bool = False) -> JobCreated | JobScheduled:
    """Store a new job: its created event, or for a delayed job its schedule and its scheduled
    event. `only_if_new`: stored only if the job has no event yet (a job id made deterministically,
    whose creation may be retried after the duplicate window)."""
    names = core.settings.names
    job_id = event.job_id
    if event.priority and core.queues is not None:
        await core.queues.ensure_band(event.type, event.priority)
    headers = expect_last(names.job_timeline(job_id), 0) if only_if_new else None
    try:
        if run_at is None:
            await publish_reliably(core.js, names.job_created(job_id, event.type, event.priority), encoder.encode(event),
                                   msg_id=created_msg_id(job_id), headers=headers, give_up_after=10.0)
        else:
            # The schedule first: if this gateway dies between the two, the job still runs (it shows
            # up when it fires) instead of showing `scheduled` for ever.
            await publish_reliably(core.js, names.schedule(job_id), encoder.encode(event), msg_id=f"{job_id}:schedule",
                                   headers=schedule_headers(names, event), give_up_after=10.0)
            scheduled = scheduled_event(event, submitted_at)
            await publish_reliably(core.js, subject_of(names, scheduled), encoder.encode(scheduled),
                                   msg_id=f"{job_id}:scheduled", headers=headers, give_up_after=10.0)
            core.metrics.count_submitted(event.type)
            return scheduled
    except APIError as exc:
        if not (only_if_new and exc.err_code == WRONG_LAST_SEQUENCE_ERR):
            raise
        return event  # stored by an earlier try
    except (NatsTimeout, NoRespondersError) as exc:
        raise Problem(503, "Event store unavailable",
                      f"the job could not be stored ({type(exc).__name__}); nothing was created") from exc
    core.metrics.count_submitted(event.type)
    return event


async def cancel(core: Core, job_id: str, reason: str = "") -> str:
    """Record the request; a job not running anywhere (blocked, pending, or waiting to retry) ends
    `cancelled` at once, a running one when its processor has stopped the work. A job of a flow
    takes its unfinished children with it. Returns `cancelled` or `cancelling`."""
    state = await find_job(core, job_id)
    if state.is_terminal:
        raise Problem(409, "Job already ended", f"job {job_id} ended {state.status}; there is nothing to cancel",
                      status_now=state.status)
    for child in state.children:  # (each child's own children first, and so on down)
        with contextlib.suppress(Problem):  # (ended already, or gone from history)
            await cancel(core, child.id, reason or f"its parent {job_id} was cancelled")
    names = core.settings.names
    if state.status == "scheduled":
        await unschedule(core.js, names, job_id)  # it will not fire (if it has not yet)
    request = CancelRequested(ts=time.time(), job_id=job_id, reason=reason)
    await publish_reliably(core.js, subject_of(names, request), encoder.encode(request), msg_id=f"{job_id}:cancel")
    if state.status not in ("scheduled", "blocked", "pending", "retrying"):
        return "cancelling"
    cancelled = JobCancelled(ts=time.time(), job_id=job_id, attempt=state.attempt, reason=reason or "cancelled before it ran")
    if not await publish_if_last(core.js, subject_of(names, cancelled), encoder.encode(cancelled),
                                 msg_id=f"{job_id}:cancelled", headers=fenced(names, job_id, state.run_seq)):
        return "cancelling"  # a processor took it meanwhile: it sees the request and stops the work
    if state.flow is not None:
        await signal_flow(core.js, names, state.flow, job_id, "cancelled")
    return "cancelled"


async def _check_webhook(core: Core, url: str) -> None:
    if not core.settings.webhook_secrets:
        raise Problem(422, "Webhooks are off", "this gateway has no JOBLINE_WEBHOOK_SECRETS to sign webhooks with",
                      errors=[{"key": "webhook_url", "source": "body", "message": "webhooks are not configured"}])
    if len(url) > MAX_WEBHOOK_URL:
        raise Problem(422, "Webhook refused", "the URL is too long", errors=[{"key": "webhook_url", "source": "body"}])
    try:
        await check_target(url, core.settings.webhook_allow)
    except WebhookTargetRefused as exc:
        raise Problem(422, "Webhook refused", str(exc),
                      errors=[{"key": "webhook_url", "source": "body", "message": str(exc)}]) from exc


async def find_job(core: Core, job_id: str) -> JobState:
    """The job's state: from memory when it is live or recent, else from the history service.
    An id not in memory first waits (bounded) for the job feed to reach the stream's end, so a job
    created a moment ago (through this gateway or another) is found live — before a slower history
    lookup, during which a short job could end and leave memory."""
    check_job_id(job_id)
    state = core.read_model.get(job_id)
    if state is not None:
        return state
    last = await last_event_seq(core.js, core.settings.names)
    await core.read_model.wait_for(last, core.settings.catch_up_timeout_s)
    state = core.read_model.get(job_id)  # (also when the feed got there during the stream_info call)
    if state is not None:
        return state
    state = await core.history.job(job_id, min_seq=core.read_model.last_seq)  # away: 503 (problems.py)
    if state is None:
        raise Problem(404, "Job not found", f"there is no job {job_id!r}")
    return state


async def lookup_job(core: Core, job_id: str) -> JobState | None:
    """`find_job` for callers that are not requests: None when there is no such job; raises
    HistoryUnavailable when only the history service could tell."""
    try:
        return await find_job(core, job_id)
    except Problem as problem:
        if problem.status_code == 404:
            return None
        raise


async def stored_events(core: Core, state: JobState, *, after_seq: int = 0, upto_seq: int | None = None,
                        only_logs: bool = False, last: int | None = None) -> list[StoredEvent]:
    """The job's stored events with after_seq < seq <= upto_seq, in order (`last`: only the last
    ones): from the job stream while it still holds them, else from the history service, which
    outlives the stream's retention (and what it has not applied yet is recent, so still in the
    stream)."""
    names = core.settings.names
    first = (await core.js.stream_info(names.jobs_stream)).state.first_seq
    if state.created_seq >= first or after_seq + 1 >= first:
        return await read_events(core.js, names, state.id, after_seq=after_seq, upto_seq=upto_seq, only_logs=only_logs,
                                 limit=last, timeout=30)
    wanted = state.seq if upto_seq is None else min(upto_seq, state.seq)
    records, applied = await core.history.events(state.id, after_seq=after_seq, upto_seq=upto_seq,
                                                 only_logs=only_logs, last=last, min_seq=wanted)
    events = [StoredEvent(r.seq, r.subject, bytes(r.data), r.stored_at) for r in records]
    if applied < wanted:
        events += await read_events(core.js, names, state.id, after_seq=max(applied, after_seq), upto_seq=upto_seq,
                                    only_logs=only_logs, limit=last, timeout=30)
        if last is not None:
            events = events[-last:]
    return events


async def recent_log_lines(core: Core, state: JobState, *, upto_seq: int) -> list[bytes]:
    """The last log lines of the job at or before `upto_seq` (for a snapshot), as stored JSON."""
    keep = core.settings.snapshot_log_lines
    if state.log_lines <= 0 or keep <= 0:
        return []
    try:
        events = await stored_events(core, state, upto_seq=upto_seq, only_logs=True, last=keep)
    except (TimeoutError, HistoryUnavailable, HistoryRefused):
        return []  # a snapshot without its log lines beats none; /logs has them
    return [e.data for e in events]


def etag(state: JobState) -> str:
    """The job's version: the sequence of the last event folded into it."""
    return f'"{state.seq}"'


async def wait_for_change(core: Core, state: JobState, timeout: float) -> None:
    """Hold until an event changes the job (or the timeout passes): a long-poll for pollers."""
    listener = core.hub.subscribe(state.id)
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while await listener.queue.get() is sse.HEARTBEAT:
                    pass
    finally:
        core.hub.unsubscribe(listener)


def links(job_id: str) -> dict[str, str]:
    base = f"/api/jobs/{job_id}"
    return {"self": base, "events": f"{base}/events", "logs": f"{base}/logs"}


def parse_cursor(raw: str | None) -> int | None:
    """A Last-Event-ID (or ?after=) value as a stream sequence; None when it is not one."""
    if raw is None:
        return None
    raw = raw.strip()
    if not raw.isdigit() or len(raw) > 19:
        return None
    return int(raw)


def finished_before(state: JobState, cursor: str | None, last_seq: int) -> bool:
    """A client reconnecting after it saw the job's end (its terminal event, the run chain's last:
    a webhook record may follow it): answer 204 so EventSource stops. (A cursor beyond the end of
    the stream is not one we gave out: that gets a reset instead.)"""
    seen = parse_cursor(cursor)
    return state.is_terminal and seen is not None and state.run_seq <= seen <= max(last_seq, state.seq)


def snapshot_data(state_json: bytes, log_lines: list[bytes]) -> bytes:
    """`{"job": <state>, "logs": [<logged events>]}` built from already-encoded parts."""
    return b'{"job":' + state_json + b',"logs":[' + b",".join(log_lines) + b"]}"


class _Kind(msgspec.Struct):
    kind: str


_kind_decoder = msgspec.json.Decoder(_Kind)


async def job_events(core: Core, state: JobState, cursor: str | None = None) -> AsyncGenerator[bytes | Listener, None]:
    """The job's live event stream.

    Without a cursor: a `snapshot` (the state and its recent log lines), then every later event.
    With a cursor (Last-Event-ID or ?after=): exactly the events after it (from the stream, or from
    the history service once the stream has dropped them), then live — no gap, no duplicate. With a
    cursor that is garbage, beyond the end, or that neither can serve now: a `reset` event carrying
    a fresh snapshot (still HTTP 200: a 4xx would make EventSource give up for good). The stream
    ends after the terminal event.

    Subscribing to the live feed and fixing the position `seq` happen with no await between them,
    so nothing can fall between what is read back and what arrives live.
    """
    settings = core.settings
    listener = None if state.is_terminal else core.hub.subscribe(state.id)
    seq, state_json = core.read_model.last_seq, encoder.encode(state)
    try:
        after = parse_cursor(cursor)
        replay: list[StoredEvent] | None = None
        upto = max(seq, state.seq)  # (a state from the history service may be a moment ahead of the feed)
        if after is not None and after <= upto:
            try:
                replay = await stored_events(core, state, after_seq=after, upto_seq=upto)
            except (HistoryUnavailable, HistoryRefused):
                replay = None  # neither the stream nor the history service can serve it now: reset
        if replay is None:
            lines = await recent_log_lines(core, state, upto_seq=upto)
            kind = "snapshot" if cursor is None else "reset"
            yield sse.frame(kind, snapshot_data(state_json, lines), upto, settings.sse_retry_ms)
        else:
            yield f": resumed after {after}\nretry: {settings.sse_retry_ms}\n\n".encode()
            for stored in replay:
                kind = _kind_decoder.decode(stored.data).kind
                yield sse.frame(kind, stored.data, stored.seq)
                if kind in TERMINAL_KINDS:
                    return
        if listener is None:
            return
        yield listener  # then live
    finally:
        if listener is not None:
            core.hub.unsubscribe(listener)


async def log_history(core: Core, query: LogQuery, wait_for_logsink_s: float = 3.0) -> LogPage:
    """A page from the logsink. "No responders" is retried for a moment: a logsink that is
    reconnecting (e.g. its NATS node failed over) is back within a second or two."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + wait_for_logsink_s
    delay = 0.05
    while True:
        try:
            reply = await core.nc.request(core.settings.names.log_history_rpc, encoder.encode(query), timeout=5.0)
            break
        except NoRespondersError as exc:
            if loop.time() + delay > give_up:
                raise Problem(503, "Log store unavailable", "the logsink did not answer (NoRespondersError)") from exc
            await asyncio.sleep(delay)  # backoff between attempts
            delay = min(delay * 2, 0.5)
        except NatsTimeout as exc:
            raise Problem(503, "Log store unavailable", "the logsink did not answer (TimeoutError)") from exc
    page = _log_page_decoder.decode(reply.data)
    if page.error:
        raise Problem(400, "Bad log query", page.error)
    return page
