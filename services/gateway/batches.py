"""Batches: many jobs submitted in one request, followed as one.

A batch is a record in the `batches` KV bucket (its id, when, its job ids) and a `batch` field on
each of its jobs' created events. Creation is all or nothing at validation: every spec is checked
(type, limits, webhook, times) before anything is stored, and a bad one is named by its index.
Then the record is written and the jobs are published together (acked publishes in flight at
once, not one round trip after another). A job's id is `<batch id>-<index>` unless its spec has an
`idempotency_key` that already names a job; it is stored only if that job has no event yet, so a
retried batch (the same `Idempotency-Key`) never makes a job twice, whenever it is retried.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Any, TypeVar

import msgspec
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import InvalidKeyError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from jobline.contract.events import encoder
from jobline.contract.job_state import JobState
from jobline.contract.names import Names, is_valid_job_id
from jobline.contract.vocabulary import JobStatus
from jobline.runtime.buckets import bucket_keys, key_value

from .core import Core, JobSubmission, created_event, new_job_id, publish_job, validate
from .history import HistoryUnavailable
from .idempotency import MAX_KEY_LENGTH, claim
from .problems import Problem

MAX_JOBS = 10_000
IN_FLIGHT = 256  # acked publishes (and lookups) at once
T = TypeVar("T")


class BatchJob(JobSubmission, forbid_unknown_fields=True):
    """A job of a batch: what `POST /api/jobs` takes, and its own optional Idempotency-Key."""

    idempotency_key: str | None = None


class BatchSubmission(msgspec.Struct, forbid_unknown_fields=True):
    jobs: list[BatchJob]


class BatchRecord(msgspec.Struct, kw_only=True):
    id: str
    created_at: float
    jobs: list[str]


class BatchAccepted(msgspec.Struct):
    id: str
    jobs: list[str]
    links: dict[str, str]


class BatchFailure(msgspec.Struct):
    id: str
    status: str
    error: str | None
    reason: str | None


class BatchJobState(msgspec.Struct):
    id: str
    status: str
    progress: float | None


class BatchState(msgspec.Struct, kw_only=True):
    id: str
    status: str  # running | completed (every job ended, whatever its outcome)
    created_at: float
    completed_at: float | None
    total: int
    counts: dict[str, int]  # jobs per status
    ended: int
    progress: float  # 0..1: ended jobs plus the running jobs' own fractions
    eta_s: float | None
    failures: list[BatchFailure]  # failed and expired jobs with their errors (the first 100)
    jobs: list[BatchJobState]
    links: dict[str, str]


_record_decoder = msgspec.json.Decoder(BatchRecord)
TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED})


def links(batch_id: str) -> dict[str, str]:
    base = f"/api/batches/{batch_id}"
    return {"self": base, "events": f"{base}/events", "cancel": f"{base}/cancel"}


def batches_bucket_config(names: Names, replicas: int) -> KeyValueConfig:
    return KeyValueConfig(bucket=names.batches_bucket, history=1, storage=StorageType.FILE, replicas=replicas)


async def open_bucket(js: JetStreamContext, names: Names, replicas: int) -> KeyValue:
    return await key_value(js, batches_bucket_config(names, replicas))


async def bounded(calls: Iterable[Callable[[], Awaitable[T]]], limit: int = IN_FLIGHT) -> list[T]:
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(one(c) for c in calls)))


def check_size(submission: BatchSubmission) -> None:
    if not 1 <= len(submission.jobs) <= MAX_JOBS:
        raise Problem(422, "Invalid batch", f"a batch has 1 to {MAX_JOBS} jobs, not {len(submission.jobs)}",
                      errors=[{"key": "jobs", "source": "body", "message": f"1 to {MAX_JOBS} jobs"}])


async def _validated(core: Core, submission: BatchSubmission) -> list[float | None]:
    """Every spec's run time (None: now); the first bad spec raises a problem naming its index."""
    run_times: list[float | None] = []
    for index, spec in enumerate(submission.jobs):
        try:
            run_times.append(await validate(core, spec, spec.idempotency_key))
        except Problem as problem:
            errors = [{**e, "key": f"jobs[{index}].{e.get('key', '')}"} for e in problem.extensions.get("errors", [])]
            raise Problem(problem.status_code, problem.title, f"job {index}: {problem.detail}",
                          **{**problem.extensions, "errors": errors or [{"key": f"jobs[{index}]", "source": "body"}],
                             "index": index}) from None
    return run_times


async def create(core: Core, kv: KeyValue, submission: BatchSubmission,
                 idempotency_key: str | None) -> tuple[BatchRecord, bool]:
    """Validate every job, then store the batch and its jobs; returns the record and whether it is
    new (False: an earlier request with the same Idempotency-Key made it)."""
    check_size(submission)
    if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_KEY_LENGTH:
        raise Problem(400, "Invalid Idempotency-Key", f"the key must have 1 to {MAX_KEY_LENGTH} characters",
                      errors=[{"key": "Idempotency-Key", "source": "header", "message": "bad length"}])
    run_times = await _validated(core, submission)
    batch_id = new_job_id()
    if idempotency_key is not None:
        claimed = await claim(core.idempotency, f"batch:{idempotency_key}", batch_id)
        if claimed != batch_id:
            existing = await _wait_for_record(kv, claimed)
            if existing is not None:
                return existing, False
            batch_id = claimed  # the first request died before storing its record: finish its work
    now = time.time()
    keyed = [(i, spec.idempotency_key) for i, spec in enumerate(submission.jobs) if spec.idempotency_key]
    job_ids = [f"{batch_id}-{i}" for i in range(len(submission.jobs))]
    owned = set(range(len(job_ids)))  # jobs this batch creates (not ones an idempotency key already names)
    claims = await bounded([partial(claim, core.idempotency, key, job_ids[i]) for i, key in keyed])
    for (index, _), claimed_id in zip(keyed, claims, strict=True):
        if claimed_id != job_ids[index]:
            job_ids[index] = claimed_id
            owned.discard(index)
    record = BatchRecord(id=batch_id, created_at=now, jobs=job_ids)
    try:
        await kv.create(batch_id, encoder.encode(record))
    except KeyWrongLastSequenceError:
        pass  # (a retry of a batch whose first request stored its record and then died)

    def publisher(index: int) -> Callable[[], Awaitable[object]]:
        spec, run_at = submission.jobs[index], run_times[index]
        info = core.catalogue.types[spec.type]
        event = created_event(spec, job_ids[index], run_at or now, list(info.steps), batch=batch_id)
        return lambda: publish_job(core, event, run_at, now, only_if_new=True)

    await bounded([publisher(i) for i in sorted(owned)])
    return record, True


async def _wait_for_record(kv: KeyValue, batch_id: str, timeout: float = 10.0) -> BatchRecord | None:
    """The record of a batch another request is creating right now (bounded)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    delay = 0.02
    while True:
        record = await get_record(kv, batch_id)
        if record is not None or loop.time() >= give_up:
            return record
        await asyncio.sleep(delay)  # backoff: the other request stores it within milliseconds
        delay = min(delay * 2, 0.5)


async def get_record(kv: KeyValue, batch_id: str) -> BatchRecord | None:
    try:
        entry = await kv.get(batch_id)
    except (KeyNotFoundError, InvalidKeyError):
        return None
    return _record_decoder.decode(entry.value) if entry.value else None


async def require(kv: KeyValue, batch_id: str) -> BatchRecord:
    record = await get_record(kv, batch_id) if is_valid_job_id(batch_id) else None
    if record is None:
        raise Problem(404, "Batch not found", f"there is no batch {batch_id!r}")
    return record


async def job_states(core: Core, record: BatchRecord) -> list[JobState | None]:
    """Each job's state: from memory when it is live or recent, else from the history service."""
    states: list[JobState | None] = [core.read_model.get(j) for j in record.jobs]
    missing = [i for i, s in enumerate(states) if s is None]
    if missing:
        seq = core.read_model.last_seq
        try:
            found = await bounded([partial(core.history.job, record.jobs[i], min_seq=seq) for i in missing], 32)
        except HistoryUnavailable as exc:
            raise Problem(503, "History unavailable", f"some of the batch's jobs cannot be looked up now ({exc})") from exc
        for i, state in zip(missing, found, strict=True):
            states[i] = state
    return states


def summarise(record: BatchRecord, states: list[JobState | None]) -> BatchState:
    counts: Counter[str] = Counter()
    done = 0.0
    failures: list[BatchFailure] = []
    jobs: list[BatchJobState] = []
    finished: list[float] = []
    for job_id, state in zip(record.jobs, states, strict=True):
        status = state.status if state is not None else JobStatus.PENDING  # (not folded anywhere yet)
        counts[status] += 1
        progress = state.progress if state is not None else None
        if status in TERMINAL:
            done += 1
            if state is not None and state.finished_at is not None:
                finished.append(state.finished_at)
        elif progress is not None:
            done += progress
        if status in (JobStatus.FAILED, JobStatus.EXPIRED) and state is not None and len(failures) < 100:
            failures.append(BatchFailure(id=job_id, status=status, error=state.error, reason=state.error_reason))
        jobs.append(BatchJobState(id=job_id, status=status, progress=progress))
    total = len(record.jobs)
    ended = sum(n for s, n in counts.items() if s in TERMINAL)
    fraction = done / total if total else 1.0
    complete = ended == total
    elapsed = time.time() - record.created_at
    eta = None if complete or fraction <= 0 else round(elapsed * (1 - fraction) / fraction, 1)
    return BatchState(id=record.id, status="completed" if complete else "running", created_at=record.created_at,
                      completed_at=max(finished, default=None) if complete else None, total=total,
                      counts=dict(counts), ended=ended, progress=round(fraction, 4), eta_s=eta, failures=failures,
                      jobs=jobs, links=links(record.id))


async def state_of(core: Core, kv: KeyValue, batch_id: str) -> BatchState:
    record = await require(kv, batch_id)
    return summarise(record, await job_states(core, record))


async def recent(js: JetStreamContext, names: Names, kv: KeyValue, limit: int = 100) -> list[dict[str, Any]]:
    """The newest batches (id, when, how many jobs), newest first."""
    keys = await bucket_keys(js, names.batches_bucket)
    newest = sorted(keys, reverse=True)[:limit]  # ids are ULIDs: sorted by creation time
    records = await bounded([partial(get_record, kv, k) for k in newest], 32)
    return [{"id": r.id, "created_at": r.created_at, "total": len(r.jobs), "links": links(r.id)}
            for r in records if r is not None]
