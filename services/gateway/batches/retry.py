"""Bulk retry: every ended job a filter matches (the filter of `GET /api/jobs`), run again — the
fix-and-replay loop after a bad deploy.

Each is retried as a **new job linked to the old** (`retry_of`), not as another attempt of the old
one: an ended job's timeline is final (its end was recorded once, webhooks and flows acted on it),
and the new job gets a fresh attempt budget and timeout. The new jobs are one batch (all stored or
none, its page and `/api/batches/{id}/events` follow them live), so the operation is tracked and
survives a gateway dying mid-way: repeat the request. It is idempotent twice over: the batch's
Idempotency-Key is made from the matched jobs (the same request, the same batch), and each new job's
from its old job (`retry-of:<id>`: a job is retried at most once while the key lives —
`JOBLINE_IDEMPOTENCY_TTL_S`; its retry, if it fails too, can be retried in turn). At most
`MAX_BATCH_JOBS` a request; more is refused with the count, to narrow the filter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import msgspec

from jobline.contract.history import JobFilter
from jobline.contract.job_state import JobState
from jobline.contract.submissions import BatchJob, BatchSubmission
from jobline.contract.vocabulary import TERMINAL_STATUSES
from jobline.jobs.errors import Invalid
from jobline.jobs.history_client import HistoryClient, state_decoder

from ..http.limits import MAX_BATCH_JOBS
from .service import Batches

SHOWN = 20  # ids a dry run lists


class BulkRetried(msgspec.Struct, kw_only=True):
    """What `POST /api/jobs/retry` answers."""

    matched: int  # ended jobs the filter matched
    dry_run: bool
    batch: str | None = None  # the batch of the new jobs (none for a dry run)
    jobs: list[str] = []  # the new jobs, in the order of `retried` (a dry run: none)
    retried: list[str] = []  # the matched jobs (a dry run: the first 20)
    created: int = 0  # new jobs made by this request (0 when an earlier one made them all)


def _ended_only(job_filter: JobFilter) -> JobFilter:
    if not job_filter.statuses or any(s not in TERMINAL_STATUSES for s in job_filter.statuses):
        raise Invalid("status must name ended statuses only (failed, expired, cancelled, completed): a retry runs "
                      "an ended job again", title="Not retryable", key="status", source="query")
    return job_filter


def again(state: JobState) -> BatchJob:
    """The job as it was submitted, to run once more (a job is retried once per Idempotency-Key TTL)."""
    return BatchJob(type=state.type, params=state.params, timeout_s=state.timeout_s, max_attempts=state.max_attempts,
                    webhook_url=state.webhook_url, concurrency_key=state.concurrency_key, priority=state.priority,
                    owner=state.owner, tags=list(state.tags), idempotency_key=f"retry-of:{state.id}")


async def matching(history: HistoryClient, job_filter: JobFilter, seen_seq: int) -> list[JobState]:
    """The ended jobs the filter matches, oldest first; Invalid when they are more than MAX_BATCH_JOBS."""
    states: list[JobState] = []
    before = None
    while len(states) <= MAX_BATCH_JOBS:
        page = await history.search(job_filter, before=before, limit=500, min_seq=seen_seq)
        states += [state_decoder.decode(raw) for raw in page.jobs]
        before = page.next_before
        if before is None:
            break
    if len(states) > MAX_BATCH_JOBS:
        raise Invalid(f"more than {MAX_BATCH_JOBS:,} jobs match (at least {len(states):,}); narrow the filter "
                      "(type, finished_after, error) and retry in parts", title="Too many jobs to retry",
                      key="status", source="query", matched=len(states))
    states.reverse()  # (search answers newest first: the oldest failure is retried first)
    return states


async def retry_matching(batches: Batches, history: HistoryClient, job_filter: JobFilter, seen_seq: int,
                         dry_run: bool, before_create: Callable[[int], None] = lambda n: None
                         ) -> tuple[BulkRetried, bool]:
    """The retry (or what it would retry), and whether this request made its batch. `before_create`
    is told how many jobs are about to be made (the submit rate: it may refuse)."""
    states = await matching(history, _ended_only(job_filter), seen_seq)
    ids = [s.id for s in states]
    if dry_run or not states:
        return BulkRetried(matched=len(ids), dry_run=dry_run, retried=ids[:SHOWN] if dry_run else ids), True
    before_create(len(states))
    key = "retry:" + hashlib.sha256(",".join(ids).encode()).hexdigest()
    record, fresh = await batches.create(BatchSubmission(jobs=[again(s) for s in states]), key, retry_of=ids)
    created = sum(1 for job_id in record.jobs if job_id.startswith(f"{record.id}-")) if fresh else 0
    return BulkRetried(matched=len(ids), dry_run=False, batch=record.id, jobs=record.jobs, retried=ids,
                       created=created), fresh
