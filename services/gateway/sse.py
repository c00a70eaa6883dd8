"""Server-Sent Events framing. Frames are bytes built once and shared by every client."""

from __future__ import annotations

import asyncio
import logging

from litestar.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

HEARTBEAT = b": keepalive\n\n"  # a comment: no id (it would move Last-Event-ID), no data
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # proxies must not buffer a live stream
}
MEDIA_TYPE = "text/event-stream"


def frame(event: str, data: bytes, event_id: int | None = None, retry_ms: int | None = None) -> bytes:
    """One SSE message; `data` is single-line JSON (msgspec never emits newlines).

    `retry:` rides on a real message: a message with no data is dispatched by some clients as an
    empty `message` event."""
    head = f"retry: {retry_ms}\n" if retry_ms is not None else ""
    head += f"id: {event_id}\nevent: {event}\n" if event_id is not None else f"event: {event}\n"
    return head.encode() + b"data: " + data + b"\n\n"


def send_timeout(seconds: float) -> object:
    """Middleware: an event-stream client that has not taken a frame for `seconds` (its socket
    buffers full) is cut off, so a frozen client holds nothing for long. Its queue in the hub is
    bounded anyway; this frees the connection and the task."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            streaming = False

            async def timed(message: Message) -> None:
                nonlocal streaming
                if message["type"] == "http.response.start":
                    streaming = any(k == b"content-type" and v.startswith(MEDIA_TYPE.encode())
                                    for k, v in message.get("headers", []))
                if streaming and message["type"] == "http.response.body":
                    async with asyncio.timeout(seconds):
                        await send(message)
                else:
                    await send(message)

            try:
                await app(scope, receive, timed)
            except* TimeoutError:
                log.info("closed a stream whose client took nothing for %.0fs", seconds)

        return guarded

    return middleware
