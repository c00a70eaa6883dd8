"""Batches: many jobs submitted in one request, followed as one.

A batch is a record in the `batches` KV bucket (its id, when, its job ids) and a `batch` field on
each of its jobs' created events. Creation is all or nothing: every spec is checked (type, size,
params, limits, webhook, times) before anything is stored, and a bad one is named by its index;
then the jobs are stored in one atomic write (JobWriter.store_all) and the record after them. A
job's id is `<batch id>-<index>` unless its spec has an `idempotency_key` that already names a job;
it is stored only if that job has no event yet, so a retried batch (the same `Idempotency-Key`)
never makes a job twice, whenever it is retried.
"""

from __future__ import annotations

import time
from collections import Counter
from functools import partial

from nats.js import JetStreamContext

from jobline.contract.batches import BatchFailure, BatchJobState, BatchRecord, BatchState, BatchSummary
from jobline.contract.job_state import JobState
from jobline.contract.names import Names, is_valid_job_id
from jobline.contract.submissions import BatchSubmission
from jobline.contract.vocabulary import TERMINAL_STATUSES, JobStatus
from jobline.jobs.checks import check_idempotency_key, refuse_unique
from jobline.jobs.errors import Conflict, Invalid, JobError, NotFound, Unavailable
from jobline.jobs.history_client import HistoryUnavailable
from jobline.jobs.idempotency import claim, fingerprint, release
from jobline.jobs.new_jobs import created
from jobline.jobs.writer import JobWriter, new_job_id
from jobline.runtime.buckets import bucket_keys
from jobline.runtime.concurrency import bounded
from jobline.runtime.kv_records import KvRecords

from ..http.limits import MAX_BATCH_JOBS
from ..live.read_model import ReadModel


def links(batch_id: str) -> dict[str, str]:
    base = f"/api/batches/{batch_id}"
    return {"self": base, "events": f"{base}/events", "cancel": f"{base}/cancel"}


def _check(submission: BatchSubmission) -> None:
    if not 1 <= len(submission.jobs) <= MAX_BATCH_JOBS:
        raise Invalid(f"a batch has 1 to {MAX_BATCH_JOBS} jobs, not {len(submission.jobs)}", title="Invalid batch",
                      key="jobs", message=f"1 to {MAX_BATCH_JOBS} jobs")
    # No two jobs of one batch may carry one idempotency_key: a key names one job. A conflict (409), as a
    # key reused for another request is: what the body asks cannot be stored, though each job is valid.
    first: dict[str, int] = {}
    for index, spec in enumerate(submission.jobs):
        if spec.idempotency_key is None:
            continue
        if spec.idempotency_key in first:
            raise Conflict(f"jobs[{index}]: its idempotency_key is also jobs[{first[spec.idempotency_key]}]'s (one key, "
                           "one job)", title="Idempotency key used twice", key=f"jobs[{index}].idempotency_key",
                           message="used twice in the batch", index=index)
        first[spec.idempotency_key] = index


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
        if status in TERMINAL_STATUSES:
            done += 1
            if state is not None and state.finished_at is not None:
                finished.append(state.finished_at)
        elif progress is not None:
            done += progress
        if status in (JobStatus.FAILED, JobStatus.EXPIRED) and state is not None and len(failures) < 100:
            failures.append(BatchFailure(id=job_id, status=status, error=state.error, reason=state.error_reason))
        jobs.append(BatchJobState(id=job_id, status=status, progress=progress))
    total = len(record.jobs)
    ended = sum(n for s, n in counts.items() if s in TERMINAL_STATUSES)
    fraction = done / total if total else 1.0
    complete = ended == total
    elapsed = time.time() - record.created_at
    eta = None if complete or fraction <= 0 else round(elapsed * (1 - fraction) / fraction, 1)
    return BatchState(id=record.id, status="completed" if complete else "running", created_at=record.created_at,
                      completed_at=max(finished, default=None) if complete else None, total=total,
                      counts=dict(counts), ended=ended, progress=round(fraction, 4), eta_s=eta, failures=failures,
                      jobs=jobs, links=links(record.id))


class Batches:
    def __init__(self, js: JetStreamContext, names: Names, records: KvRecords[BatchRecord], writer: JobWriter,
                 read_model: ReadModel):
        self._js = js
        self._names = names
        self._records = records
        self._writer = writer
        self._read_model = read_model

    async def create(self, submission: BatchSubmission, idempotency_key: str | None,
                     retry_of: list[str] | None = None, traceparent: str | None = None) -> tuple[BatchRecord, bool]:
        """Check every job, then store the batch's jobs — all in one atomic write, each only if it
        does not exist yet — and then its record; returns the record and whether it is new (False:
        an earlier request with the same Idempotency-Key made it).

        The record is written after the jobs: a request that fails stores neither, and a gateway
        dying between the two leaves jobs whose batch is not listed until the request is repeated
        with its Idempotency-Key (which finds the jobs and writes the record). `retry_of`: for a bulk
        retry, the ended job each one runs again. With tracing on, the batch is one trace (a `batch`
        span, continuing `traceparent`) whose jobs' processor spans join it."""
        with self._writer.span("batch", traceparent, **{"jobline.batch.size": len(submission.jobs)}) as stamped:
            return await self._create(submission, idempotency_key, retry_of, stamped)

    async def _create(self, submission: BatchSubmission, idempotency_key: str | None, retry_of: list[str] | None,
                      traceparent: str | None) -> tuple[BatchRecord, bool]:
        writer = self._writer
        _check(submission)
        check_idempotency_key(idempotency_key)
        run_times: list[float | None] = []
        for index, spec in enumerate(submission.jobs):
            try:
                refuse_unique(spec)
                run_times.append(await writer.checks.check(spec, spec.idempotency_key))
            except JobError as error:
                raise error.within(f"jobs[{index}]", index=index) from None
        batch_id, fresh = new_job_id(), True
        if idempotency_key is not None:
            claimed = await claim(writer.keys, f"batch:{idempotency_key}", batch_id, fingerprint(submission))
            if claimed != batch_id:
                existing = await self._records.value(claimed)
                if existing is not None:
                    return existing, False
                batch_id, fresh = claimed, False  # the first request has not finished (or died): finish its work
        now = time.time()
        job_ids = [f"{batch_id}-{i}" for i in range(len(submission.jobs))]
        keyed = [(i, spec.idempotency_key) for i, spec in enumerate(submission.jobs) if spec.idempotency_key]
        claims = await bounded([partial(claim, writer.keys, key, job_ids[i], fingerprint(submission.jobs[i].job()))
                                for i, key in keyed])
        ours = [(i, key) for (i, key), claimed_id in zip(keyed, claims, strict=True) if claimed_id == job_ids[i]]
        for (index, _), claimed_id in zip(keyed, claims, strict=True):
            job_ids[index] = claimed_id  # (a job an earlier request made under that key is this batch's too)
        jobs = [created(self._names, writer.created_event(spec, job_ids[i], run_at or now, batch=batch_id,
                                                          retry_of=retry_of[i] if retry_of else None,
                                                          traceparent=traceparent), run_at, now)
                for i, (spec, run_at) in enumerate(zip(submission.jobs, run_times, strict=True))]
        try:
            await writer.store_all(jobs)  # (a job another request made under its key exists: left out)
        except BaseException:
            # Nothing of this request was stored: its keys are free again.
            await bounded([partial(release, writer.keys, key, job_ids[i]) for i, key in ours])
            if fresh and idempotency_key is not None:
                await release(writer.keys, f"batch:{idempotency_key}", batch_id)
            raise
        record = BatchRecord(id=batch_id, created_at=now, jobs=job_ids)
        await self._records.create(batch_id, record)  # (False: another try of the same request wrote it)
        return record, fresh

    @property
    def seen_seq(self) -> int:
        """How far this gateway has seen the job stream (a search waits for the history to get there)."""
        return self._read_model.last_seq

    async def require(self, batch_id: str) -> BatchRecord:
        record = await self._records.value(batch_id) if is_valid_job_id(batch_id) else None
        if record is None:
            raise NotFound(f"there is no batch {batch_id!r}", title="Batch not found")
        return record

    async def job_states(self, record: BatchRecord) -> list[JobState | None]:
        """Each job's state: from memory when it is live or recent, else from the history service."""
        states: list[JobState | None] = [self._read_model.get(j) for j in record.jobs]
        missing = [i for i, s in enumerate(states) if s is None]
        if missing:
            seq, history = self._read_model.last_seq, self._writer.reader.history
            try:
                found = await bounded([partial(history.job, record.jobs[i], min_seq=seq) for i in missing], 32)
            except HistoryUnavailable as exc:
                raise Unavailable(f"some of the batch's jobs cannot be looked up now ({exc})",
                                  title="History unavailable") from exc
            for i, state in zip(missing, found, strict=True):
                states[i] = state
        return states

    async def state(self, batch_id: str) -> BatchState:
        record = await self.require(batch_id)
        return summarise(record, await self.job_states(record))

    async def recent(self, limit: int = 100) -> list[BatchSummary]:
        """The newest batches (id, when, how many jobs), newest first."""
        keys = await bucket_keys(self._js, self._names.batches_bucket)
        newest = sorted(keys, reverse=True)[:limit]  # ids are ULIDs: sorted by creation time
        records = await bounded([partial(self._records.value, k) for k in newest], 32)
        return [BatchSummary(id=r.id, created_at=r.created_at, total=len(r.jobs), links=links(r.id))
                for r in records if r is not None]

    async def cancel(self, batch_id: str) -> dict[str, int]:
        """Cancel every job of the batch not yet ended."""
        state = await self.state(batch_id)
        open_jobs = [j.id for j in state.jobs if j.status not in TERMINAL_STATUSES]

        async def one(job_id: str) -> str:
            try:
                return await self._writer.cancel(job_id, reason=f"batch {batch_id} cancelled")
            except (NotFound, Conflict):
                return "ended"  # ended (or not folded yet) meanwhile

        outcomes = await bounded([partial(one, j) for j in open_jobs], 64)
        return {status: outcomes.count(status) for status in ("cancelled", "cancelling", "ended")}
