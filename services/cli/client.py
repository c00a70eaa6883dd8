"""The gateway's HTTP/SSE API as the CLI uses it (works against any deployment: --url, --token)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse


class ApiError(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Event:
    kind: str
    data: dict[str, Any]
    id: str | None


class Gateway:
    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _check(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ApiError(response.status_code, str(detail))
        return response.json() if response.content else None

    def submit(self, job_type: str, params: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._check(self._http.post("/api/jobs", json={"type": job_type, "params": params}, headers=headers))  # type: ignore[no-any-return]

    def upload(self, path: Path, content_type: str = "application/octet-stream") -> dict[str, Any]:
        with path.open("rb") as body:
            response = self._http.post("/api/uploads", params={"filename": path.name}, content=body,
                                       headers={"content-type": content_type}, timeout=None)
        return self._check(response)  # type: ignore[no-any-return]

    def job(self, job_id: str) -> dict[str, Any]:
        return self._check(self._http.get(f"/api/jobs/{job_id}"))  # type: ignore[no-any-return]

    def jobs(self, filters: dict[str, Any] | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The newest jobs matching `filters` (`GET /api/jobs` query parameters)."""
        return next(self.job_pages(filters, limit), [])

    def job_pages(self, filters: dict[str, Any] | None = None, limit: int = 500) -> Iterator[list[dict[str, Any]]]:
        """Every job matching `filters`, newest first, a page at a time (a stable cursor)."""
        params = {k: v for k, v in (filters or {}).items() if v is not None}
        while True:
            page = self._check(self._http.get("/api/jobs", params={**params, "limit": limit}))
            yield page["jobs"]
            if page["next_before"] is None:
                return
            params["before"] = page["next_before"]

    def timeline(self, job_id: str) -> list[dict[str, Any]]:
        return self._check(self._http.get(f"/api/jobs/{job_id}/timeline"))["events"]  # type: ignore[no-any-return]

    def get(self, path: str, **params: Any) -> Any:
        return self._check(self._http.get(path, params=params))

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._check(self._http.post(f"/api/jobs/{job_id}/cancel"))  # type: ignore[no-any-return]

    def logs(self, job_id: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        after = 0
        while True:
            page = self._check(self._http.get(f"/api/jobs/{job_id}/logs", params={"after": after, "limit": 5000}))
            rows += page["rows"]
            if len(page["rows"]) < 5000:
                return rows
            after = page["last_seq"]

    def stream(self, path: str, last_event_id: str | None = None) -> Iterator[Event]:
        """Server-Sent Events from `path`, reconnecting with Last-Event-ID when the connection drops."""
        cursor = last_event_id
        failures = 0
        while True:
            headers = {"Last-Event-ID": cursor} if cursor else {}
            try:
                with connect_sse(self._http, "GET", path, headers=headers, timeout=httpx.Timeout(30, read=None)) as source:
                    if source.response.status_code == 204:
                        return
                    if source.response.status_code >= 400:
                        source.response.read()
                        self._check(source.response)
                    for sse in source.iter_sse():
                        if not sse.data:
                            continue
                        if sse.id:
                            cursor = sse.id
                        yield Event(sse.event, json.loads(sse.data), sse.id or None)
                return  # the server ended the stream
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError):
                failures += 1
                if cursor is None or failures > 30:
                    raise
                time.sleep(min(0.2 * failures, 2.0))  # the gateway is restarting: try again shortly
                continue  # dropped: resume after the last event seen
