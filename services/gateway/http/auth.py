"""Optional API tokens, short-lived stream tokens, and per-client caps.

With JOBLINE_API_TOKENS unset there is no authentication, and the gateway binds to loopback by
default (it says so at start). With tokens set, every `/api/*` route needs one of:
- `Authorization: Bearer <token>` (API clients, the CLI);
- the `jobline_session` cookie set by `POST /api/session` (the web UI: EventSource sends cookies,
  it cannot send headers);
- `?access_token=<stream token>` from `POST /api/stream-tokens`: signed, expiring in minutes, good
  for GET only (for clients that can neither set headers nor keep cookies); one made for some jobs
  reads only those, and may submit, cancel or signal them if made with those rights (job_scope.py);
- `?access_token=<form token>` from `POST /api/form-tokens`: signed, expiring in an hour, good only
  for submitting a job form (a plain HTML form on another app's page cannot send a header). Access logging is off,
  so it is not written anywhere.
Answers are `401` (no or bad credentials) and `403` (a stream token on a write) as problem details.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from litestar import Request
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send, WebSocketCloseEvent

from . import job_scope
from .job_scope import FALSE_WORDS, TokenScope
from .owner_rates import OwnerRates
from .problems import Problem, send_problem
from .roles import Role, allows, audit, is_operation, parse_token

SESSION_COOKIE = "jobline_session"
FORM_PATH = "/api/jobs/form"  # where a multipart POST /api/jobs is routed (forms.py)
PUBLIC_PREFIXES = ("/healthz", "/readyz", "/metrics", "/schema")
OWNER_CLIENT = "owner:"  # what an owner's token is counted as (client_of)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass
class Auth:
    tokens: tuple[str, ...]
    stream_token_ttl_s: float = 300.0
    form_token_ttl_s: float = 3600.0
    session_ttl_s: float = 7 * 24 * 3600.0
    max_streams: int = 100  # concurrent streams per client (429 beyond)
    submit_rate: float = 0.0  # jobs per second per client (0: unlimited); bursts up to 10x the rate
    _open: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _secrets: dict[str, tuple[str, Role]] = field(default_factory=dict)  # token -> (its id, its role)
    _roles: dict[str, Role] = field(default_factory=dict)  # token id -> role
    owner_rates: OwnerRates | None = None  # an owner's submit rate across gateways (set once connected)

    def __post_init__(self) -> None:
        for entry in self.tokens:
            secret, role = parse_token(entry)
            token_id = hashlib.sha256(secret.encode()).hexdigest()[:12]
            self._secrets[secret] = (token_id, role)
            self._roles[token_id] = role

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)

    @property
    def _key(self) -> bytes:
        # Signed tokens stay valid exactly as long as the API tokens they derive from.
        return hashlib.sha256(("jobline-signing:" + ",".join(sorted(self.tokens))).encode()).digest()

    def _sign(self, kind: str, subject: str, ttl: float, jobs: Sequence[str] | None = None,
              owner: str | None = None, tags: Sequence[str] = (), rights: Sequence[str] = (),
              types: Sequence[str] | None = None) -> str:
        claims: dict[str, Any] = {"k": kind, "s": subject, "e": int(time.time() + ttl)}
        if jobs is not None:
            claims["j"] = list(jobs)
        if owner is not None:
            claims["o"] = owner
        if tags:
            claims["t"] = list(tags)
        if rights:
            claims["r"] = list(rights)  # (beyond reading)
        if types is not None:
            claims["y"] = list(types)
        payload = _b64(json.dumps(claims).encode())
        signature = _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())
        return f"{payload}.{signature}"

    def _claims(self, token: str, kind: str) -> dict[str, Any] | None:
        """The signed claims of a valid, unexpired token of that kind (None otherwise)."""
        payload, _, signature = token.partition(".")
        expected = _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())
        if not signature or not hmac.compare_digest(signature.encode(), expected.encode()):  # (bytes: any text)
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("k") != kind or data.get("e", 0) < time.time():
            return None
        return data

    def _verify(self, token: str, kind: str) -> str | None:
        claims = self._claims(token, kind)
        return None if claims is None else str(claims.get("s"))

    def token_id(self, token: str) -> str | None:
        """A short id for a valid API token (for limits and logs; never the token itself)."""
        for known, (token_id, _role) in self._secrets.items():
            if hmac.compare_digest(token.encode(), known.encode()):
                return token_id
        return None

    def role_of(self, token_id: str) -> Role:
        """The role of an API token by its id (roles.py); a session's follows its token's now."""
        return self._roles.get(token_id, Role.VIEWER)

    def session_cookie(self, token_id: str) -> str:
        return self._sign("session", token_id, self.session_ttl_s)

    def stream_token(self, token_id: str, jobs: Sequence[str] | None = None, owner: str | None = None,
                     tags: Sequence[str] = (), rights: Sequence[str] = (), types: Sequence[str] | None = None,
                     ttl_s: float | None = None) -> str:
        """A token that reads; with `jobs`, those jobs only, with `owner` and/or `tags` that owner's
        jobs and/or those carrying the tags; `rights` beyond reading (submit, cancel, signal) and the
        `types` it may submit (job_scope.py)."""
        return self._sign("stream", token_id, self.stream_token_ttl_s if ttl_s is None else ttl_s, jobs, owner, tags,
                          rights, types)

    def form_token(self, token_id: str, owner: str | None = None) -> str:
        """A token for a page's plain form; with `owner`, every job it submits is that owner's."""
        return self._sign("form", token_id, self.form_token_ttl_s, owner=owner)

    def identify(self, scope: Scope) -> tuple[str | None, str, TokenScope | None]:
        """(identity, how, scope): how is bearer, cookie, stream, form or none; scope what a stream
        token was made for (None: not limited)."""
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        bearer = headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            return self.token_id(bearer[7:].strip()), "bearer", None
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == SESSION_COOKIE:
                return self._verify(value, "session"), "cookie", None
        query = parse_qs(scope.get("query_string", b"").decode())
        if "access_token" in query:
            token = query["access_token"][0]
            form = self._claims(token, "form")
            if form is not None:
                owner = form.get("o")
                return str(form.get("s")), "form", TokenScope(owner=str(owner)) if owner is not None else None
            claims = self._claims(token, "stream")
            if claims is None:
                return None, "stream", None
            jobs, owner, tags = claims.get("j"), claims.get("o"), claims.get("t")
            rights, types = claims.get("r"), claims.get("y")
            limited = TokenScope(jobs=frozenset(map(str, jobs)) if isinstance(jobs, list) else None,
                                 owner=str(owner) if owner is not None else None,
                                 tags=frozenset(map(str, tags)) if isinstance(tags, list) else frozenset(),
                                 rights=frozenset({job_scope.READ, *map(str, rights if isinstance(rights, list) else [])}),
                                 types=frozenset(map(str, types)) if isinstance(types, list) else None)
            scoped = limited.jobs is not None or limited.owner is not None or limited.tags
            return str(claims.get("s")), "stream", limited if scoped else None
        return None, "none", None

    # --- caps -----------------------------------------------------------------------------
    def stream_opened(self, client: str) -> bool:
        if self._open[client] >= self.max_streams:
            return False
        self._open[client] += 1
        return True

    def stream_closed(self, client: str) -> None:
        self._open[client] = max(self._open[client] - 1, 0)
        if not self._open[client]:
            del self._open[client]

    @property
    def submit_burst(self) -> int:
        """The most jobs one client may create at once (a request of more is never allowed)."""
        return int(max(self.submit_rate * 10, 1.0))

    async def allow_submit_across(self, client: str) -> float:
        """`allow_submit` for an owner's token: counted by the broker, so across every gateway
        (owner_rates.py; an owner's token submits one job a request)."""
        if self.submit_rate <= 0 or self.owner_rates is None:
            return self.allow_submit(client)
        return await self.owner_rates.take(client.removeprefix(OWNER_CLIENT))

    def allow_submit(self, client: str, jobs: int = 1) -> float:
        """0 when the client may create `jobs` jobs now, else the seconds to wait (a token bucket
        counting jobs, not requests: a batch of 2,000 takes 2,000 tokens)."""
        if self.submit_rate <= 0:
            return 0.0
        capacity = float(self.submit_burst)
        now = time.monotonic()
        tokens, last = self._buckets.get(client, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * self.submit_rate)
        if tokens < jobs:
            self._buckets[client] = (tokens, now)
            return (jobs - tokens) / self.submit_rate
        self._buckets[client] = (tokens - jobs, now)
        return 0.0


def client_of(scope: Scope) -> str:
    """Whom the caps count against: an API token, an owner (a token made for one: each of an app's
    users has their own submit rate and streams), else the address."""
    state = scope.get("state", {})
    limited: TokenScope | None = state.get("token_scope")
    if limited is not None and limited.owner is not None:
        return f"{OWNER_CLIENT}{limited.owner}"
    identity = state.get("identity")
    if identity:
        return f"token:{identity}"
    client = scope.get("client")
    return f"ip:{client[0]}" if client else "ip:unknown"


def _is_stream(scope: Scope, path: str) -> bool:
    if path == "/api/events" or path.endswith("/events") or path == "/api/logs/stream":
        return True
    # `follow` as the route reads it (`follow=true`, `%66ollow=1`): anything but a false word may
    # open a stream, so it is counted (a value the route refuses costs a count for a moment only).
    follow = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True).get("follow")
    if follow and any(value.strip().lower() not in FALSE_WORDS for value in follow):
        return True
    return any(k.lower() == b"accept" and b"text/event-stream" in v for k, v in scope.get("headers", []))


def take_submit_tokens(request: Request[Any, Any, Any], jobs: int) -> None:
    """Count the jobs a request creates against its client's submit rate (a batch or flow: the
    middleware counts one job per request to /api/jobs before any body is read)."""
    auth: Auth = request.app.state.auth
    wait = auth.allow_submit(client_of(request.scope), jobs)
    if not wait:
        return
    burst = auth.submit_burst
    if jobs > burst:
        raise Problem(429, "Too Many Requests", f"job creation is limited to {auth.submit_rate:g}/s in bursts of at "
                      f"most {burst} jobs (JOBLINE_SUBMIT_RATE); this request creates {jobs}: split it",
                      errors=[{"key": "jobs", "source": "body", "message": f"at most {burst} jobs at once"}])
    raise Problem(429, "Too Many Requests", f"job creation is limited to {auth.submit_rate:g}/s; this request creates "
                  f"{jobs} jobs", headers={"Retry-After": str(max(1, math.ceil(wait)))})


Refusal = tuple[int, str, str, list[tuple[bytes, bytes]] | None]


def _refusal(auth: Auth, scope: Scope, identity: str | None, how: str, limited: TokenScope | None) -> Refusal | None:
    """Why these credentials may not make this request (None: they may): none, a read-only or
    form token used for something else, a scoped token outside its jobs, a role that may not."""
    path: str = scope["path"]
    method = str(scope.get("method", "GET"))
    if identity is None:
        return 401, "Unauthorized", "a valid API token is needed: Authorization: Bearer <token>", \
            [(b"www-authenticate", b'Bearer realm="jobline"')]
    if how == "stream" and method not in ("GET", "HEAD"):
        why = job_scope.write_refusal(method, path, limited) if limited is not None else \
            (403, "Forbidden", "a stream token only reads; use the API token to write")
        return None if why is None else (*why, None)
    outside = None if limited is None or how != "stream" or path == "/ws" else \
        job_scope.refusal(path, scope.get("query_string", b""), limited)
    if outside is not None:
        return (*outside, None)
    if how == "form" and not (method == "POST" and path == FORM_PATH):
        return 403, "Forbidden", "a form token only submits a job form (POST /api/jobs)", None
    role = auth.role_of(identity) if how in ("bearer", "cookie") else None
    if role is not None and not allows(role, method, path):
        return 403, "Forbidden", f"a token of role {role} may not do this (roles: docs/api.md)", None
    return None


def _audited(send: Send, token_id: str, role: Role, method: str, path: str) -> Send:
    """`send`, recording the request with its answer's status once it starts (roles.audit)."""

    async def recording(message: Any) -> None:
        if message["type"] == "http.response.start":
            audit(token_id, role, method, path, int(message["status"]))
        await send(message)

    return recording


def auth_middleware(auth: Auth) -> Any:
    def middleware(app: ASGIApp) -> ASGIApp:
        async def guard(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] not in (ScopeType.HTTP, ScopeType.WEBSOCKET):
                await app(scope, receive, send)
                return
            path: str = scope["path"]
            method = str(scope.get("method", "GET"))
            state = scope.setdefault("state", {})
            protected = (path.startswith("/api/") and path != "/api/session") or path == "/ws"
            if auth.enabled and protected and method != "OPTIONS":
                identity, how, limited = auth.identify(scope)
                if scope["type"] == ScopeType.WEBSOCKET and (identity is None or how == "form"):
                    code, reason = (4401, "unauthorized") if identity is None else (4403, "a form token only submits a form")
                    refused: WebSocketCloseEvent = {"type": "websocket.close", "code": code, "reason": reason}
                    await send(refused)  # before accept: refused
                    return
                refused_as = _refusal(auth, scope, identity, how, limited)
                if refused_as is not None or identity is None:
                    await send_problem(send, *(refused_as or (401, "Unauthorized", "no credentials", None)))
                    return
                role = auth.role_of(identity) if how in ("bearer", "cookie") else None
                if role is not None and is_operation(method, path):
                    send = _audited(send, identity, role, method, path)
                state.update(token_scope=limited, role=role, identity=identity)
            client = client_of(scope)
            state["client"] = client  # (what the WebSocket's subscriptions are counted against)
            if scope["type"] == ScopeType.WEBSOCKET:
                await app(scope, receive, send)
                return
            if method == "POST" and path in ("/api/jobs", FORM_PATH):
                wait = await auth.allow_submit_across(client) if client.startswith(OWNER_CLIENT) else \
                    auth.allow_submit(client)
                if wait:
                    await send_problem(send, 429, "Too Many Requests", f"job creation is limited to {auth.submit_rate:g}/s",
                                   [(b"retry-after", str(max(1, round(wait))).encode())])
                    return
            if method != "GET" or not _is_stream(scope, path):
                await app(scope, receive, send)
                return
            if not auth.stream_opened(client):
                await send_problem(send, 429, "Too Many Requests", f"at most {auth.max_streams} open streams per client",
                               [(b"retry-after", b"5")])
                return
            try:
                await app(scope, receive, send)
            finally:
                auth.stream_closed(client)

        return guard

    return middleware
