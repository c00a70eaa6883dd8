"""Requests a browser should never get through, checked before anything else.

- The path holds no control character (`%00` would reach the file system as a NUL).
- `Host` must name this gateway (JOBLINE_ALLOWED_HOSTS; loopback names and the bind address by
  default): a page on another site that resolves its own name to 127.0.0.1 (DNS rebinding) would
  otherwise be talking to a loopback-bound gateway as if it were its own.
- A state-changing request (POST, PUT, PATCH, DELETE) from a browser must come from this
  gateway's own origin (same scheme, host and port) or one of JOBLINE_CORS_ORIGINS; a WebSocket
  handshake too. Requests without an `Origin` header are not from a page's script (curl, the CLI,
  a backend) and pass.
- Such a request with a body must say it is JSON (`415` otherwise): a cross-site form or a
  `text/plain` "simple request" needs no preflight, so content types are the browser's own guard.
  `/api/uploads` takes any type but `multipart/form-data` (a form's envelope is not the file);
  `POST /api/jobs` also takes `multipart/form-data` (a job form with its files, forms.py) — from
  this origin or an allowed one only, like any write.

Answers are RFC 9457 problems (a refused WebSocket handshake is closed before it is accepted).
"""

from __future__ import annotations

from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send, WebSocketCloseEvent

from .limits import CONTROL_CHARACTER
from .problems import send_problem

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
RAW_BODY_PATHS = ("/api/uploads",)  # the body is the file, whatever its type
FORM_PATH = "/api/jobs/form"  # a multipart POST /api/jobs is routed here (forms.py)


def allowed_hosts(bind_host: str, configured: tuple[str, ...]) -> frozenset[str] | None:
    """The names `Host` may carry (without port), or None for any (`*`)."""
    if "*" in configured:
        return None
    names = set(LOOPBACK_HOSTS) | {h.lower().strip("[]") for h in configured}
    if bind_host not in ("0.0.0.0", "::", ""):
        names.add(bind_host.lower().strip("[]"))
    return frozenset(names)


def host_name(host: str) -> str:
    """`Host` without its port: `example.com:8000` → `example.com`, `[::1]:8000` → `::1`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def same_origin(origin: str, scheme: str, host: str) -> bool:
    """`Origin` names this very gateway: its scheme (http for http and ws, https for https and
    wss) and its host and port as the request's `Host` gives them."""
    expected = "https" if scheme in ("https", "wss") else "http"
    return origin.lower() == f"{expected}://{host.lower()}"


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


Refusal = tuple[int, str, str]  # status, title, detail


def _body_refusal(path: str, headers: dict[bytes, bytes]) -> Refusal | None:
    """What a write's body must say it is (the browser's own guard: see the module's docstring)."""
    has_body = headers.get(b"content-length", b"0") not in (b"0", b"") or b"transfer-encoding" in headers
    content_type = headers.get(b"content-type", b"").decode("latin-1")
    media = content_type.split(";", 1)[0].strip().lower()
    if path.startswith(RAW_BODY_PATHS):
        if media == "multipart/form-data":
            return 415, "Unsupported Media Type", "send the file itself as the body (its own type), not a multipart form"
    elif path == FORM_PATH:
        if media != "multipart/form-data":
            return 415, "Unsupported Media Type", "a job form is multipart/form-data"
    elif has_body and not _is_json(content_type):
        return 415, "Unsupported Media Type", "the body must be JSON (Content-Type: application/json)"
    return None


def refusal(scope: Scope, hosts: frozenset[str] | None, origins: frozenset[str]) -> Refusal | None:
    """Why the request must not get through, if it must not."""
    headers: dict[bytes, bytes] = {}
    for key, value in scope.get("headers", []):
        if key in (b"host", b"origin", b"content-type", b"content-length", b"transfer-encoding"):
            headers[key] = value
    host = headers.get(b"host", b"").decode("latin-1")
    if CONTROL_CHARACTER.search(scope["path"]):
        return 400, "Bad path", "the path holds a control character (such as %00)"
    if hosts is not None and host_name(host) not in hosts:
        return 400, "Host not allowed", f"this gateway does not answer for host {host!r} (JOBLINE_ALLOWED_HOSTS)"
    websocket, method = scope["type"] == ScopeType.WEBSOCKET, scope.get("method", "GET")
    origin = headers.get(b"origin", b"").decode("latin-1")
    if origin and (websocket or method in STATE_CHANGING) and origin.lower() not in origins \
            and not same_origin(origin, scope.get("scheme", "http"), host):
        return 403, "Cross-origin request refused", f"requests from {origin!r} may not change anything here " \
                                                    "(JOBLINE_CORS_ORIGINS)"
    if not websocket and method in STATE_CHANGING:
        return _body_refusal(scope["path"], headers)
    return None


def request_guard(hosts: frozenset[str] | None, cors_origins: tuple[str, ...]) -> Any:
    origins = frozenset(o.lower() for o in cors_origins)

    def middleware(app: ASGIApp) -> ASGIApp:
        async def guard(scope: Scope, receive: Receive, send: Send) -> None:
            kind = scope["type"]
            refused = refusal(scope, hosts, origins) if kind in (ScopeType.HTTP, ScopeType.WEBSOCKET) else None
            if refused is None:
                await app(scope, receive, send)
            elif kind == ScopeType.WEBSOCKET:
                close: WebSocketCloseEvent = {"type": "websocket.close", "code": 1008, "reason": refused[1]}
                await send(close)
            else:
                await send_problem(send, *refused)

        return guard

    return middleware
