"""Bulk actions: every job a filter matches (the same filter as `GET /api/jobs`), acted on at once.

Cancel: the live jobs the filter matches (over all history, from the history service) are each
cancelled as `POST /api/jobs/{id}/cancel` would (a pending one ends at once, a running one when its
processor stops). Delete: the ended jobs it matches are each deleted from history as `DELETE
/api/jobs/{id}` would. At most `MAX_BULK` a request — `more` says when others remain, so a client
repeats until it is false (a repeated request does nothing twice: what was cancelled or deleted no
longer matches). The statuses are always named (`status=pending,retrying`): "every job" is a choice
to spell out. (Retry, which makes new jobs, is a batch: batches/retry.py.)
"""

from __future__ import annotations

from functools import partial

import msgspec

from jobline.contract.history import JobFilter
from jobline.contract.vocabulary import LIVE_STATUSES, TERMINAL_STATUSES
from jobline.jobs.errors import JobError
from jobline.jobs.history_client import HistoryClient, state_decoder
from jobline.jobs.writer import JobWriter
from jobline.runtime.concurrency import bounded

MAX_BULK = 10_000


class BulkCancelled(msgspec.Struct, kw_only=True):
    """What `POST /api/jobs/cancel` answers."""

    matched: int  # live jobs the filter matched (at most MAX_BULK)
    cancelled: int  # ended `cancelled` at once
    cancelling: int  # running: they end when their processor has stopped the work
    more: bool  # more jobs match than were acted on: ask again
    dry_run: bool = False  # only counted: nothing was cancelled


class BulkDeleted(msgspec.Struct, kw_only=True):
    """What `POST /api/jobs/delete` answers."""

    matched: int  # ended jobs the filter matched (at most MAX_BULK)
    deleted: int  # deleted from history now
    more: bool  # more jobs match than were acted on: ask again
    dry_run: bool = False  # only counted: nothing was deleted


def _only(job_filter: JobFilter, allowed: tuple[str, ...] | frozenset[str]) -> JobFilter:
    statuses = [s for s in job_filter.statuses if s in allowed] if job_filter.statuses else sorted(allowed)
    return msgspec.structs.replace(job_filter, statuses=statuses)


async def _matching(writer: JobWriter, history: HistoryClient, job_filter: JobFilter) -> tuple[list[str], bool]:
    """The ids of at most MAX_BULK jobs the filter matches, newest first, and whether more match."""
    ids: list[str] = []
    before = None
    if not job_filter.statuses:
        return ids, False  # (the statuses asked for are none the action applies to)
    while len(ids) < MAX_BULK:
        # (as far as this gateway has seen: a job submitted a moment ago is matched too)
        page = await history.search(job_filter, before=before, limit=500, min_seq=writer.reader.live.last_seq)
        ids += [state_decoder.decode(raw).id for raw in page.jobs]
        before = page.next_before
        if before is None:
            break
    return ids[:MAX_BULK], len(ids) > MAX_BULK or before is not None


async def delete_matching(writer: JobWriter, history: HistoryClient, job_filter: JobFilter,
                          dry_run: bool = False) -> BulkDeleted:
    ids, more = await _matching(writer, history, _only(job_filter, TERMINAL_STATUSES))
    if dry_run:
        return BulkDeleted(matched=len(ids), deleted=0, more=more, dry_run=True)

    async def delete(job_id: str) -> bool:
        try:
            await writer.delete(job_id, "deleted in bulk")
        except JobError:  # gone meanwhile
            return False
        return True

    outcomes = await bounded([partial(delete, job_id) for job_id in ids], 16)
    return BulkDeleted(matched=len(ids), deleted=outcomes.count(True), more=more)


async def cancel_matching(writer: JobWriter, history: HistoryClient, job_filter: JobFilter,
                          dry_run: bool = False) -> BulkCancelled:
    ids, more = await _matching(writer, history, _only(job_filter, LIVE_STATUSES))

    if dry_run:  # (only how many: nothing is cancelled)
        return BulkCancelled(matched=len(ids), cancelled=0, cancelling=0, more=more, dry_run=True)

    async def cancel(job_id: str) -> str:
        try:
            return await writer.cancel(job_id, "cancelled in bulk")
        except JobError:  # ended meanwhile, or gone: nothing to do
            return "ended"

    outcomes = await bounded([partial(cancel, job_id) for job_id in ids], 16)
    return BulkCancelled(matched=len(ids), cancelled=outcomes.count("cancelled"),
                         cancelling=outcomes.count("cancelling"), more=more)
