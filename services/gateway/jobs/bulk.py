"""Bulk actions: every job a filter matches (the same filter as `GET /api/jobs`), acted on at once.

Cancel is the first: the live jobs the filter matches (over all history, from the history service)
are each cancelled as `POST /api/jobs/{id}/cancel` would (a pending one ends at once, a running one
when its processor stops), at most `MAX_BULK` a request — `more` says when others remain, so a
client repeats until it is false. The statuses are always named (`status=pending,retrying`): "every
job" is a choice to spell out.
"""

from __future__ import annotations

from functools import partial

import msgspec

from jobline.contract.history import JobFilter
from jobline.contract.vocabulary import LIVE_STATUSES
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


def _live_only(job_filter: JobFilter) -> JobFilter:
    statuses = [s for s in job_filter.statuses if s in LIVE_STATUSES] if job_filter.statuses else list(LIVE_STATUSES)
    return msgspec.structs.replace(job_filter, statuses=statuses)


async def cancel_matching(writer: JobWriter, history: HistoryClient, job_filter: JobFilter,
                          dry_run: bool = False) -> BulkCancelled:
    live = _live_only(job_filter)
    ids: list[str] = []
    before = None
    more = False
    if live.statuses:  # (statuses that are all ended: nothing to cancel)
        while len(ids) < MAX_BULK:
            # (as far as this gateway has seen: a job submitted a moment ago is matched too)
            page = await history.search(live, before=before, limit=500, min_seq=writer.reader.live.last_seq)
            ids += [state_decoder.decode(raw).id for raw in page.jobs]
            before = page.next_before
            if before is None:
                break
        more = len(ids) > MAX_BULK or before is not None
        ids = ids[:MAX_BULK]

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
