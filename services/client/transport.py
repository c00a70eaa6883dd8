"""The client's HTTP plumbing: one connection pool, requests retried when that is safe, problem
details turned into ApiError, and resumable Server-Sent Events streams (stream.py types them)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Literal, Self

import httpx
from httpx_sse import aconnect_sse

from .errors import ApiError, Unreachable
from .settings import ClientSettings
from .stream import RawEvent

# Never reached the gateway: safe to send again whatever the request was.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# May have reached it: only a request that cannot do anything twice is sent again.
CUT = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadTimeout, httpx.WriteTimeout)
RETRY_STATUSES = frozenset({429, 502, 503, 504})
Retry = Literal["always", "not_sent"]


def problem_of(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return ApiError(response.status_code, str(body.get("title") or response.reason_phrase),
                        str(body.get("detail") or ""), body)
    return ApiError(response.status_code, response.reason_phrase, response.text[:500])


def _retry_after(response: httpx.Response | None) -> float | None:
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return min(float(value), 60.0) if value is not None else None
    except ValueError:
        return None


def submission_body(job_type: str, params: Mapping[str, Any] | None, **options: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": job_type, "params": dict(params or {})}
    body.update({k: v for k, v in options.items() if v is not None})
    return body


class Transport:
    def __init__(self, url: str | None = None, *, token: str | None = None, timeout_s: float | None = None,
                 retries: int | None = None, transport: httpx.AsyncBaseTransport | None = None):
        self.settings = ClientSettings.resolve(url, token, timeout_s, retries)
        headers = {"User-Agent": "jobline-client"}
        if self.settings.token:
            headers["Authorization"] = f"Bearer {self.settings.token}"
        self._http = httpx.AsyncClient(base_url=self.settings.url, headers=headers, transport=transport,
                                       timeout=httpx.Timeout(self.settings.timeout_s))

    @property
    def url(self) -> str:
        return self.settings.url

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- plumbing -------------------------------------------------------------------------
    def _delay(self, failures: int, hint: float | None = None) -> float:
        if hint is not None:
            return hint
        base: float = min(self.settings.backoff_s * 2.0 ** (failures - 1), self.settings.max_backoff_s)
        return base * random.uniform(0.5, 1.0)

    async def request(self, method: str, path: str, *, retry: Retry = "always", params: Any = None,
                      json: Any = None, content: Any = None, headers: Mapping[str, str] | None = None,
                      timeout: float | None = None) -> httpx.Response:
        """One API request with the retry policy above; a 4xx (or a lasting 5xx) raises ApiError."""
        failures = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = await self._http.request(
                    method, path, params=params, json=json, content=content, headers=headers,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
            except NOT_SENT as exc:
                if failures >= self.settings.retries:
                    raise Unreachable(f"{method} {self.url}{path}: {type(exc).__name__}: {exc}") from exc
            except CUT as exc:
                if retry != "always" or failures >= self.settings.retries:
                    raise Unreachable(f"{method} {self.url}{path}: {type(exc).__name__}: {exc}") from exc
            else:
                if response.status_code < 400:
                    return response
                if response.status_code not in RETRY_STATUSES or retry != "always" \
                        or failures >= self.settings.retries:
                    raise problem_of(response)
            failures += 1
            await asyncio.sleep(self._delay(failures, _retry_after(response)))

    async def get_json(self, path: str, **params: Any) -> Any:
        """GET an API path's JSON (query parameters that are None are left out)."""
        response = await self.request("GET", path, params={k: v for k, v in params.items() if v is not None})
        return response.json()

    async def post_with_progress(self, path: str, params: Mapping[str, str],
                                 on_progress: Callable[[int, int], None]) -> dict[str, Any]:
        """POST a bulk action asking for its progress (Server-Sent Events): `on_progress(done, matched)`
        as it goes; the `done` event's body. Not retried: a repeat is safe, but it is the caller's call."""
        async with aconnect_sse(self._http, "POST", path, params=params, headers={"Accept": "text/event-stream"},
                                timeout=httpx.Timeout(self.settings.timeout_s, read=None)) as source:
            if source.response.status_code >= 400:
                await source.response.aread()
                raise problem_of(source.response)
            async for sse in source.aiter_sse():
                if sse.event in ("matched", "progress"):
                    data = sse.json()
                    on_progress(int(data.get("done", 0)), int(data["matched"]))
                elif sse.event == "done":
                    done: dict[str, Any] = sse.json()
                    return done
                elif sse.event == "error":
                    data = sse.json()
                    raise ApiError(500, data.get("title", "Bulk action stopped"), f"{data.get('detail')} "
                                   f"({data.get('done')} of {data.get('matched')} done: ask again for the rest)")
        raise Unreachable(f"POST {path}: the progress stream ended before the action did (ask again: what was done "
                          "no longer matches)")

    async def events(self, path: str, *, last_event_id: int | None = None,
                     until: frozenset[str] | None = None) -> AsyncIterator[RawEvent]:
        """The Server-Sent Events of `path`. A dropped connection is resumed with `Last-Event-ID`
        and nothing is yielded twice. With `until`, a stream that ends before an event of one of
        those kinds is reopened (a gateway restarting closes it cleanly); 204 ends it for good."""
        cursor = last_event_id
        failures = 0
        while True:
            headers = {"Last-Event-ID": str(cursor)} if cursor is not None else {}
            hint: float | None = None
            try:
                async with aconnect_sse(self._http, "GET", path, headers=headers,
                                        timeout=httpx.Timeout(self.settings.timeout_s, read=None)) as source:
                    response = source.response
                    if response.status_code == 204:
                        return
                    if response.status_code >= 400:
                        await response.aread()
                        if response.status_code not in RETRY_STATUSES or failures >= self.settings.retries:
                            raise problem_of(response)
                        hint = _retry_after(response)
                        raise httpx.RemoteProtocolError("retry", request=response.request)
                    previous_id = ""
                    async for sse in source.aiter_sse():
                        if not sse.event and not sse.data:
                            continue  # a comment or heartbeat
                        # A frame without `id:` keeps the last one (the SSE rules): only a new id is its own.
                        own_id, previous_id = (sse.id if sse.id != previous_id else ""), sse.id
                        seq = int(own_id) if own_id.isdigit() else None
                        if seq is not None and cursor is not None and seq <= cursor \
                                and sse.event not in ("snapshot", "reset"):
                            continue  # already yielded before the connection dropped
                        if seq is not None:
                            cursor = seq
                        failures = 0
                        yield RawEvent(sse.event, sse.data.encode(), seq)
                        if until is not None and sse.event in until:
                            return
                    if until is None:
                        return
            except (*NOT_SENT, *CUT) as exc:
                if failures >= self.settings.retries:
                    raise Unreachable(f"GET {self.url}{path}: {type(exc).__name__}: {exc}") from exc
            failures += 1
            await asyncio.sleep(self._delay(failures, hint))

