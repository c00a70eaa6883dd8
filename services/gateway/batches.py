"""Batches: many jobs submitted in one request, followed as one.

A batch is a record in the `batches` KV bucket (its id, when, its job ids) and a `batch` field on
each of its jobs' created events. Creation is all or nothing: every spec is checked (type, size,
params, limits, webhook, times) before anything is stored, and a bad one is named by its index;
then the jobs are stored in one atomic write (new_jobs.py) and the record after them. A job's id
is `<batch id>-<index>` unless its spec has an `idempotency_key` that already names a job; it is
stored only if that job has no event yet, so a retried batch (the same `Idempotency-Key`) never
makes a job twice, whenever it is retried.
"""

from __future__ import annotations

import time
from collections import Counter
from functools import partial
from typing import Any

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
from jobline.runtime.concurrency import bounded

from . import new_jobs
from .core import Core, JobSubmission, check_idempotency_key, created_event, new_job_id, validate
from .history import HistoryUnavailable
from .idempotency import claim, fingerprint, release
from .limits import MAX_BATCH_JOBS
from .problems import Problem


class BatchJob(JobSubmission, forbid_unknown_fields=True):
    """A job of a batch: what `POST /api/jobs` takes, and its own optional Idempotency-Key."""

    idempotency_key: str | None = None

    def job(self) -> JobSubmission:
        """The job alone, as POST /api/jobs would take it (what its idempotency_key stands for)."""
        return JobSubmission(**{name: getattr(self, name) for name in JobSubmission.__struct_fields__})


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


def check_size(submission: BatchSubmission) -> None:
    if not 1 <= len(submission.jobs) <= MAX_BATCH_JOBS:
        raise Problem(422, "Invalid batch", f"a batch has 1 to {MAX_BATCH_JOBS} jobs, not {len(submission.jobs)}",
                      errors=[{"key": "jobs", "source": "body", "message": f"1 to {MAX_BATCH_JOBS} jobs"}])


async def _validated(core: Core, submission: BatchSubmission) -> list[float | None]:
    """Every spec's run time (None: now); the first bad spec raises a problem naming its index."""
    run_times: list[float | None] = []
    for index, spec in enumerate(submission.jobs):
        try:
            run_times.append(await validate(core, spec, spec.idempotency_key))
        except Problem as problem:
            raise problem.within(f"jobs[{index}]", index=index) from None
    return run_times


def _check_keys(submission: BatchSubmission) -> None:
    """No two jobs of one batch may carry the same idempotency_key (they would be one job)."""
    first: dict[str, int] = {}
    for index, spec in enumerate(submission.jobs):
        if spec.idempotency_key is None:
            continue
        if spec.idempotency_key in first:
            detail = f"job {index}: its idempotency_key is also job {first[spec.idempotency_key]}'s (one key, one job)"
            raise Problem(422, "Invalid batch", detail, index=index, errors=[
                {"key": f"jobs[{index}].idempotency_key", "source": "body", "message": "used twice in the batch"}])
        first[spec.idempotency_key] = index


async def create(core: Core, kv: KeyValue, submission: BatchSubmission,
                 idempotency_key: str | None) -> tuple[BatchRecord, bool]:
    """Validate every job, then store the batch's jobs — all in one atomic write, each only if it
    does not exist yet — and then its record; returns the record and whether it is new (False: an
    earlier request with the same Idempotency-Key made it).

    The record is written after the jobs: a request that fails stores neither, and a gateway dying
    between the two leaves jobs whose batch is not listed until the request is repeated with its
    Idempotency-Key (which finds the jobs and writes the record)."""
    check_size(submission)
    check_idempotency_key(idempotency_key)
    _check_keys(submission)
    run_times = await _validated(core, submission)
    batch_id = new_job_id()
    fresh = True
    if idempotency_key is not None:
        claimed = await claim(core.idempotency, f"batch:{idempotency_key}", batch_id, fingerprint(submission))
        if claimed != batch_id:
            existing = await get_record(kv, claimed)
            if existing is not None:
                return existing, False
            batch_id, fresh = claimed, False  # the first request has not finished (or died): finish its work
    now = time.time()
    job_ids = [f"{batch_id}-{i}" for i in range(len(submission.jobs))]
    keyed = [(i, spec.idempotency_key) for i, spec in enumerate(submission.jobs) if spec.idempotency_key]
    claims = await bounded([partial(claim, core.idempotency, key, job_ids[i], fingerprint(submission.jobs[i].job()))
                            for i, key in keyed])
    ours = [(i, key) for (i, key), claimed_id in zip(keyed, claims, strict=True) if claimed_id == job_ids[i]]
    for (index, _), claimed_id in zip(keyed, claims, strict=True):
        job_ids[index] = claimed_id  # (a job an earlier request made under that key is this batch's too)
    jobs = []
    for index, (spec, run_at) in enumerate(zip(submission.jobs, run_times, strict=True)):
        info = core.catalogue.types[spec.type]
        event = created_event(spec, job_ids[index], run_at or now, list(info.steps), batch=batch_id)
        jobs.append(new_jobs.created(core, event, run_at, now))
    try:
        await new_jobs.store_all(core, jobs)  # (a job another request made under its key exists: left out)
    except BaseException:
        # Nothing of this request was stored: its keys are free again.
        await bounded([partial(release, core.idempotency, key, job_ids[i]) for i, key in ours])
        if fresh and idempotency_key is not None:
            await release(core.idempotency, f"batch:{idempotency_key}", batch_id)
        raise
    record = BatchRecord(id=batch_id, created_at=now, jobs=job_ids)
    try:
        await kv.create(batch_id, encoder.encode(record))
    except KeyWrongLastSequenceError:
        pass  # (another try of the same request wrote it)
    return record, fresh


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
