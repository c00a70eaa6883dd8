"""A bulk action (jobs/bulk.py) run within the request, its progress as Server-Sent Events
(`Accept: text/event-stream`): `matched`, then `progress` as jobs are done, then `done` with the same
body as the JSON answer. The action runs apart from the stream: a client that goes away does not
stop it half-way. (A stored operation, which outlives the gateway, is operations/.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import msgspec
from litestar.response import Stream

from jobline.jobs.bulk import Progress

from ..live import sse

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 0.2  # a progress stream sends at most one `progress` this often (and one at the end)

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
