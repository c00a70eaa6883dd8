"""What every HTTP response carries: security headers (and `Vary: Origin` with CORS origins), a
complete `Allow` on OPTIONS, and a count by route and status."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from ..metrics import GatewayMetrics

# The web UI loads only its own files: no inline script or style, no third-party origin.
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                                 b"media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                                 b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


_TYPED_PARAMETER = re.compile(r"\{(\w+):[^}]+\}")


def allow_every_method(scope: Scope, headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The `Allow` of an OPTIONS answer, listing every method of the path. (Litestar's automatic
    OPTIONS handler lists only the methods of the handlers registered before it was made — a
    path registered one handler at a time, like /api/jobs with POST and then GET, got `OPTIONS,
    POST`.)"""
    headers = list(headers)
    app, template = scope.get("litestar_app"), scope.get("path_template")
    if app is None or template is None or not any(k.lower() == b"allow" for k, _ in headers):
        return headers
    methods = next((sorted(route.methods) for route in app.routes
                    if _TYPED_PARAMETER.sub(r"{\1}", route.path) == template and hasattr(route, "methods")), None)
    if methods is None:
        return headers
    return [(k, v) for k, v in headers if k.lower() != b"allow"] + [(b"allow", ", ".join(methods).encode())]


def with_vary_origin(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`Vary: Origin` added (or merged into the Vary there is): with CORS origins, what a response
    carries depends on the request's Origin, so no cache may hand one origin's answer to another."""
    headers = list(headers)
    for index, (key, value) in enumerate(headers):
        if key.lower() == b"vary":
            if b"origin" not in value.lower():
                headers[index] = (key, value + b", Origin")
            return headers
    return [*headers, (b"vary", b"Origin")]


def response_middleware(metrics: GatewayMetrics, cors: bool = False) -> Any:
    """Security headers on every response (and `Vary: Origin` with CORS origins), and a count of
    responses by route and status: one wrapper around `send`, since every frame of a live stream
    passes through it."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            status = 500

            async def send_with_headers(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
                    if cors:
                        message["headers"] = with_vary_origin(message["headers"])
                    if scope["method"] == "OPTIONS":
                        message["headers"] = allow_every_method(scope, message["headers"])
                await send(message)

            try:
                await app(scope, receive, send_with_headers)
            finally:
                metrics.count_request(scope, status)

        return wrapped

    return middleware
