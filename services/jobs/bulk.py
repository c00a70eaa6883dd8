"""Bulk actions: every job a filter matches (the same filter as `GET /api/jobs`), acted on at once.

Cancel: the live jobs the filter matches (over all history, from the history service) are each
cancelled as `POST /api/jobs/{id}/cancel` would (a pending one ends at once, a running one when its
processor stops). Delete: the ended jobs it matches are each deleted from history as `DELETE
/api/jobs/{id}` would. At most `MAX_BULK` a request — `more` says when others remain, so a client
repeats until it is false (a repeated request does nothing twice: what was cancelled or deleted no
longer matches). The statuses are always named (`status=pending,retrying`): "every job" is a choice
to spell out. (Retry, which makes new jobs, is a batch: batches/retry.py.)

The gateway runs one within a request (its answer, or its progress as a stream: gateway/jobs/bulk.py);
a stored operation (contract/operations.py) is run by a conductor (conductor/operation_runner.py), which
follows it with `Progress`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

import msgspec

from jobline.contract.history import JobFilter
from jobline.contract.vocabulary import LIVE_STATUSES, TERMINAL_STATUSES
from jobline.runtime.concurrency import bounded

from .errors import Conflict, NotFound
from .history_client import HistoryClient, state_decoder
from .writer import JobWriter

log = logging.getLogger(__name__)
MAX_BULK = 10_000
T = TypeVar("T")


class Progress:
    """How far a bulk action has got, for its progress stream."""

    def __init__(self) -> None:
        self.matched: int | None = None
        self.more = False
        self.done = 0
        self.outcomes: Counter[str] = Counter()  # what was done to each job (cancelled, cancelling, ended, deleted…)
        self.changed = asyncio.Event()

    def found(self, matched: int, more: bool) -> None:
        self.matched, self.more = matched, more
        self.changed.set()

    def step(self, outcome: str) -> None:
        self.done += 1
        self.outcomes[outcome] += 1
        self.changed.set()


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


def _seen(writer: JobWriter, seen_seq: int | None) -> int:
    # (by default as far as this process has seen: a job submitted a moment ago is matched too)
    return writer.reader.live.last_seq if seen_seq is None else seen_seq


async def matching(history: HistoryClient, job_filter: JobFilter, seen_seq: int) -> tuple[list[str], bool]:
    """The ids of at most MAX_BULK jobs the filter matches, newest first, and whether more match
    (the history service first catches up with the job stream up to `seen_seq`)."""
    ids: list[str] = []
    before = None
    if not job_filter.statuses:
        return ids, False  # (the statuses asked for are none the action applies to)
    while len(ids) < MAX_BULK:
        page = await history.search(job_filter, before=before, limit=500, min_seq=seen_seq)
        ids += [state_decoder.decode(raw).id for raw in page.jobs]
        before = page.next_before
        if before is None:
            break
    return ids[:MAX_BULK], len(ids) > MAX_BULK or before is not None


async def _each(ids: list[str], act: Callable[[str], Awaitable[T]], progress: Progress | None) -> list[T]:
    async def one(job_id: str) -> T:
        result = await act(job_id)
        if progress is not None:
            progress.step(str(result))
        return result

    return await bounded([partial(one, job_id) for job_id in ids], 16)


async def delete_matching(writer: JobWriter, history: HistoryClient, job_filter: JobFilter,
                          dry_run: bool = False, progress: Progress | None = None, seen_seq: int | None = None) -> BulkDeleted:
    ids, more = await matching(history, _only(job_filter, TERMINAL_STATUSES), _seen(writer, seen_seq))
    if progress is not None:
        progress.found(len(ids), more)
    if dry_run:
        return BulkDeleted(matched=len(ids), deleted=0, more=more, dry_run=True)

    async def delete(job_id: str) -> str:
        try:
            await writer.delete(job_id, "deleted in bulk")
        except (NotFound, Conflict):  # gone meanwhile (the event store away is raised: nothing is skipped)
            return "gone"
        return "deleted"

    outcomes = await _each(ids, delete, progress)
    return BulkDeleted(matched=len(ids), deleted=outcomes.count("deleted"), more=more)


async def cancel_matching(writer: JobWriter, history: HistoryClient, job_filter: JobFilter,
                          dry_run: bool = False, progress: Progress | None = None, seen_seq: int | None = None) -> BulkCancelled:
    ids, more = await matching(history, _only(job_filter, LIVE_STATUSES), _seen(writer, seen_seq))
    if progress is not None:
        progress.found(len(ids), more)

    if dry_run:  # (only how many: nothing is cancelled)
        return BulkCancelled(matched=len(ids), cancelled=0, cancelling=0, more=more, dry_run=True)

    async def cancel(job_id: str) -> str:
        try:
            return await writer.cancel(job_id, "cancelled in bulk")
        except (NotFound, Conflict):  # ended meanwhile, or gone: nothing to do (the event store away is raised)
            return "ended"

    outcomes = await _each(ids, cancel, progress)
    return BulkCancelled(matched=len(ids), cancelled=outcomes.count("cancelled"),
                         cancelling=outcomes.count("cancelling"), more=more)


def applicable(action: str, job_filter: JobFilter) -> JobFilter:
    """The filter narrowed to the statuses the action applies to (cancel: live, delete: ended)."""
    return _only(job_filter, LIVE_STATUSES if action == "cancel" else TERMINAL_STATUSES)
