"""A JSON response handed to ASGI as it is, for the hot route (`POST /api/jobs`).

Litestar's `Response` merges and encodes its headers generically on every request: ~30 µs here,
about 7 % of the gateway's CPU per submitted job. This sends the two ASGI messages itself; the
middleware (CORS, security headers, metrics) still sees both, since it wraps `send`.
"""

from __future__ import annotations

from litestar.types import Receive, Scope, Send

_JSON = (b"content-type", b"application/json")


class SentJSON:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]]):
        self.status = status
        self.body = body
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [*self.headers, _JSON, (b"content-length", b"%d" % len(self.body))]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})
