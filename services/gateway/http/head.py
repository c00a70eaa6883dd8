"""HEAD on every GET route (RFC 9110, 9.3.2): answered as the GET would be — status and headers,
Content-Length included — without its body. Before routing, since Litestar routes a HEAD only to
handlers that declare it."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPDisconnectEvent, Message, Receive, ReceiveMessage, Scope, Send

_DISCONNECT: HTTPDisconnectEvent = {"type": "http.disconnect"}


def serve_head(app: ASGIApp) -> ASGIApp:
    async def router(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope.get("method") != "HEAD":
            await app(scope, receive, send)
            return
        answered = asyncio.Event()

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.start":
                await send(message)
            elif message["type"] == "http.response.body" and not answered.is_set():
                answered.set()
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def until_answered() -> ReceiveMessage:
            # Once the head is out, a stream (SSE) that would go on sending is told the client left.
            if answered.is_set():
                return _DISCONNECT
            incoming = asyncio.ensure_future(receive())
            ended = asyncio.ensure_future(answered.wait())
            await asyncio.wait({incoming, ended}, return_when=asyncio.FIRST_COMPLETED)
            if incoming.done():
                ended.cancel()
                return incoming.result()
            incoming.cancel()
            return _DISCONNECT

        as_get = cast(Scope, {**cast(dict[str, Any], scope), "method": "GET"})
        await app(as_get, until_answered, headers_only)

    return router
