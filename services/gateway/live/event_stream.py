"""The Server-Sent Events response: one writer per client connection.

A stream source is an async generator of frames (a snapshot, a replay, history) that may end by
yielding the hub `Listener` it subscribed; from there the writer takes that listener's frames
straight from its queue — every frame waiting in one write — until END. So a live event costs a
client one wake-up and one write, not a trip through generators and a timer per frame.

Two things cut a stream short: the client going away (one task per connection waits for
`http.disconnect`), and a client that takes nothing (its sends block on full socket buffers) for
`send_timeout_s`, found by one sweep over the writers in flight rather than a timer per send.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Iterable
from typing import Any, cast

from litestar import Request
from litestar.response import Stream
from litestar.response.base import ASGIResponse
from litestar.response.streaming import ASGIStreamingResponse
from litestar.types import HTTPResponseBodyEvent, Receive, Send

from . import sse
from .hub import END, Listener

log = logging.getLogger(__name__)

Source = AsyncGenerator["bytes | Listener", None]


class StreamWatchdog:
    """Cancels the writers whose current send has been blocked for `timeout_s`."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.sending: dict[asyncio.Task[Any], float] = {}  # writer → when its current send began
        self.cut: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self.timeout_s / 2, self._sweep)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _sweep(self) -> None:
        now = asyncio.get_running_loop().time()
        for writer, since in list(self.sending.items()):
            if now - since >= self.timeout_s and writer not in self.cut:
                self.cut.add(writer)
                writer.cancel()
        self.start()


class EventStream(Stream):
    """`text/event-stream` from a stream source (see the module's docstring)."""

    def __init__(self, source: Source, watchdog: StreamWatchdog):
        # (Litestar's Stream wants frames only; ours ends with a Listener, which to_asgi_response below
        # hands to its own writer instead: Litestar never iterates it.)
        super().__init__(cast(Any, source), media_type=sse.MEDIA_TYPE, headers=sse.HEADERS)
        self._watchdog = watchdog

    def to_asgi_response(self, app: Any, request: Request[Any, Any, Any], **kwargs: Any) -> ASGIResponse:
        response = super().to_asgi_response(app, request, **kwargs)
        assert isinstance(response, ASGIStreamingResponse)
        # Litestar's own response worked out the headers (CORS, cookies, content type): keep them.
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.encode_headers()]
        return _ASGIEventStream(self.iterator, self._watchdog, status_code=response.status_code,  # type: ignore[arg-type]
                                headers=headers, is_head_response=response.is_head_response)


class _ASGIEventStream(ASGIResponse):
    __slots__ = ("source", "watchdog")
    _should_set_content_length = False

    def __init__(self, source: Source, watchdog: StreamWatchdog, *, status_code: int,
                 headers: Iterable[tuple[str, str]], is_head_response: bool):
        super().__init__(status_code=status_code, headers=headers, media_type=sse.MEDIA_TYPE,
                         is_head_response=is_head_response)
        self.source = source
        self.watchdog = watchdog

    async def send_body(self, send: Send, receive: Receive) -> None:
        writer = asyncio.current_task()
        assert writer is not None
        gone = asyncio.get_running_loop().create_task(_until_disconnected(receive, writer))
        try:
            await self._write(send, writer)
        except asyncio.CancelledError:
            if writer.uncancel() > 0 or not (gone.done() or writer in self.watchdog.cut):
                raise  # cancelled by someone else (the server shutting down)
            if writer in self.watchdog.cut:
                log.info("closed a stream whose client took nothing for %.0fs", self.watchdog.timeout_s)
        finally:
            gone.cancel()
            self.watchdog.sending.pop(writer, None)
            self.watchdog.cut.discard(writer)
            await self.source.aclose()

    async def _write(self, send: Send, writer: asyncio.Task[Any]) -> None:
        sending, clock = self.watchdog.sending, asyncio.get_running_loop().time
        async for item in self.source:
            if isinstance(item, Listener):
                await _pump(item, send, writer, sending, clock)
                break
            sending[writer] = clock()
            await send({"type": "http.response.body", "body": item, "more_body": True})
            del sending[writer]
        end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": b"", "more_body": False}
        await send(end)


async def _pump(listener: Listener, send: Send, writer: asyncio.Task[Any], sending: dict[asyncio.Task[Any], float],
                clock: Any) -> None:
    """The listener's frames as they come, all waiting frames in one write, until END."""
    queue = listener.queue
    while True:
        frames = await queue.take()
        last = END in frames  # not always the last one taken: e.g. a webhook_attempted after the end
        if last:
            del frames[frames.index(END):]  # no frame but END is empty
        if frames:
            sending[writer] = clock()
            await send({"type": "http.response.body", "body": frames[0] if len(frames) == 1 else b"".join(frames),
                        "more_body": True})
            del sending[writer]
        if last:
            return


async def _until_disconnected(receive: Receive, writer: asyncio.Task[Any]) -> None:
    try:
        while (await receive())["type"] != "http.disconnect":
            pass
    except Exception:  # the connection is gone in a way the server reports as an error
        log.debug("receive failed on a stream", exc_info=True)
    writer.cancel()
