"""Bulk actions: every job a filter matches (the same filter as `GET /api/jobs`), acted on at once.

Cancel: the live jobs the filter matches (over all history, from the history service) are each
cancelled as `POST /api/jobs/{id}/cancel` would (a pending one ends at once, a running one when its
processor stops). Delete: the ended jobs it matches are each deleted from history as `DELETE
/api/jobs/{id}` would. At most `MAX_BULK` a request — `more` says when others remain, so a client
repeats until it is false (a repeated request does nothing twice: what was cancelled or deleted no
longer matches). The statuses are always named (`status=pending,retrying`): "every job" is a choice
to spell out. (Retry, which makes new jobs, is a batch: batches/retry.py.)

Asked with `Accept: text/event-stream`, the answer is the action's progress instead (`progress_stream`):
`matched`, then `progress` as jobs are done, then `done` with the same body as the JSON answer. The
action runs apart from the stream: a client that goes away does not stop it half-way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from functools import partial
from typing import Any, TypeVar

import msgspec
from litestar.response import Stream

from jobline.contract.history import JobFilter
from jobline.contract.vocabulary import LIVE_STATUSES, TERMINAL_STATUSES
from jobline.jobs.errors import JobError
from jobline.jobs.history_client import HistoryClient, state_decoder
from jobline.jobs.writer import JobWriter
from jobline.runtime.concurrency import bounded

from ..live import sse

log = logging.getLogger(__name__)
MAX_BULK = 10_000
PROGRESS_EVERY_S = 0.2  # a progress stream sends at most one `progress` this often (and one at the end)
T = TypeVar("T")


class Progress:
    """How far a bulk action has got, for its progress stream."""

    def __init__(self) -> None:
        self.matched: int | None = None
        self.more = False
        self.done = 0
        self.changed = asyncio.Event()

    def found(self, matched: int, more: bool) -> None:
        self.matched, self.more = matched, more
        self.changed.set()

    def step(self) -> None:
        self.done += 1
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


async def _each(ids: list[str], act: Callable[[str], Awaitable[T]], progress: Progress | None) -> list[T]:
    async def one(job_id: str) -> T:
        result = await act(job_id)
        if progress is not None:
            progress.step()
        return result

    return await bounded([partial(one, job_id) for job_id in ids], 16)


async def delete_matching(writer: JobWriter, history: HistoryClient, job_filter: JobFilter,
                          dry_run: bool = False, progress: Progress | None = None) -> BulkDeleted:
    ids, more = await _matching(writer, history, _only(job_filter, TERMINAL_STATUSES))
    if progress is not None:
        progress.found(len(ids), more)
    if dry_run:
        return BulkDeleted(matched=len(ids), deleted=0, more=more, dry_run=True)

    async def delete(job_id: str) -> bool:
        try:
            await writer.delete(job_id, "deleted in bulk")
        except JobError:  # gone meanwhile
            return False
        return True

    outcomes = await _each(ids, delete, progress)
    return BulkDeleted(matched=len(ids), deleted=outcomes.count(True), more=more)


async def cancel_matching(writer: JobWriter, history: HistoryClient, job_filter: JobFilter,
                          dry_run: bool = False, progress: Progress | None = None) -> BulkCancelled:
    ids, more = await _matching(writer, history, _only(job_filter, LIVE_STATUSES))
    if progress is not None:
        progress.found(len(ids), more)

    if dry_run:  # (only how many: nothing is cancelled)
        return BulkCancelled(matched=len(ids), cancelled=0, cancelling=0, more=more, dry_run=True)

    async def cancel(job_id: str) -> str:
        try:
            return await writer.cancel(job_id, "cancelled in bulk")
        except JobError:  # ended meanwhile, or gone: nothing to do
            return "ended"

    outcomes = await _each(ids, cancel, progress)
    return BulkCancelled(matched=len(ids), cancelled=outcomes.count("cancelled"),
                         cancelling=outcomes.count("cancelling"), more=more)


_running: set[asyncio.Task[Any]] = set()  # bulk actions whose stream's client may have gone (kept till done)


async def progress_stream(action: Callable[[Progress], Coroutine[Any, Any, msgspec.Struct]]) -> Stream:
    """The action started now, its progress as Server-Sent Events. A failure before anything was
    matched (a bad filter, the history service away) is raised here, as the JSON answer's would be."""
    progress = Progress()
    task: asyncio.Task[msgspec.Struct] = asyncio.create_task(action(progress))
    _running.add(task)
    task.add_done_callback(_running.discard)
    matched = asyncio.create_task(progress.changed.wait())
    await asyncio.wait({task, matched}, return_when=asyncio.FIRST_COMPLETED)
    matched.cancel()
    if task.done() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
    return _EventStream(_frames(task, progress), media_type=sse.MEDIA_TYPE, headers=sse.HEADERS)


class _EventStream(Stream):
    def to_asgi_response(self, app: Any, request: Any, **kwargs: Any) -> Any:
        # (the handler's JSON media type would otherwise be passed down and win over the stream's)
        return super().to_asgi_response(app, request, **{**kwargs, "media_type": sse.MEDIA_TYPE})


async def _frames(task: asyncio.Task[msgspec.Struct], progress: Progress) -> AsyncIterator[bytes]:
    yield sse.frame("matched", msgspec.json.encode({"matched": progress.matched, "more": progress.more}))
    sent = -1
    while True:
        progress.changed.clear()
        if progress.done != sent:
            sent = progress.done
            yield sse.frame("progress", msgspec.json.encode({"done": sent, "matched": progress.matched}))
        if task.done():
            break
        # (coalesced: at most one frame per PROGRESS_EVERY_S, whatever the jobs' pace)
        await asyncio.wait({task}, timeout=PROGRESS_EVERY_S)
    failure = task.exception()
    if failure is not None:  # (the jobs not reached still match: asking again goes on from there)
        log.warning("a bulk action failed half-way: %s", failure)
        yield sse.frame("error", msgspec.json.encode({"title": "Bulk action stopped half-way", "detail": str(failure),
                                                      "done": progress.done, "matched": progress.matched}))
        return
    yield sse.frame("done", msgspec.json.encode(task.result()))
