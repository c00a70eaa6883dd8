"""Shared by the whole-system fault tests: resilient clients and the checks every run must pass."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_sse import aconnect_sse
from nats.js import JetStreamContext

from jobline.contract.events import TERMINAL_KINDS, LogLineWritten, ProgressReported
from jobline.contract.names import Names

from .oracle import Recorded, check_timeline, read_timeline


async def submit_until_accepted(client: httpx.AsyncClient, body: dict[str, Any], timeout: float = 60.0) -> str:
    """Submit like a careful client during a failover: retry 5xx and broken connections with the
    same Idempotency-Key, so a retry never makes a second job."""
    key = uuid.uuid4().hex
    delay = 0.1
    async with asyncio.timeout(timeout):
        while True:
            try:
                response = await client.post("/api/jobs", json=body, headers={"Idempotency-Key": key})
                if response.status_code in (200, 201, 202):
                    return str(response.json()["id"])
                assert response.status_code >= 500, response.text
            except httpx.TransportError:
                pass
            await asyncio.sleep(delay)  # client backoff between retries
            delay = min(delay * 2, 1.0)


@dataclass
class Watcher:
    """One SSE client following one job to its end, reconnecting with Last-Event-ID like a browser."""

    job_id: str
    events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)  # (id, event, data)
    snapshot_seq: int | None = None
    snapshot_status: str | None = None
    reconnects: int = 0
    outages: list[float] = field(default_factory=list)  # seconds from losing the stream to having it back

    async def follow(self, client: httpx.AsyncClient, timeout: float = 90.0) -> None:
        path = f"/api/jobs/{self.job_id}/events"
        loop = asyncio.get_running_loop()
        lost_at: float | None = None
        async with asyncio.timeout(timeout):
            while True:
                headers = {"Last-Event-ID": str(self.last_id)} if self.last_id else {}
                try:
                    async with aconnect_sse(client, "GET", path, headers=headers) as source:
                        if source.response.status_code == 204:
                            return  # resumed after the end: nothing more to say
                        source.response.raise_for_status()
                        if lost_at is not None:
                            self.outages.append(loop.time() - lost_at)
                            lost_at = None
                        async for sse in source.aiter_sse():
                            if not sse.data:
                                continue  # heartbeats and retry-only blocks (browsers dispatch nothing)
                            data = json.loads(sse.data)
                            if sse.event == "snapshot":
                                if self.snapshot_seq is None:
                                    self.snapshot_seq = int(sse.id)
                                    self.snapshot_status = data["job"]["status"]
                                if data["job"]["status"] in TERMINAL_KINDS and not self.events:
                                    return
                                continue
                            self.events.append((int(sse.id), sse.event, data))
                            if sse.event in TERMINAL_KINDS:
                                return
                except (httpx.TransportError, httpx.HTTPStatusError):
                    pass
                if lost_at is None:
                    lost_at = loop.time()
                self.reconnects += 1
                await asyncio.sleep(0.2)  # an EventSource's retry delay

    @property
    def running(self) -> bool:
        return self.snapshot_status == "running" or any(kind == "started" for _, kind, _ in self.events)

    @property
    def last_id(self) -> int:
        return self.events[-1][0] if self.events else (self.snapshot_seq or 0)

    def check_against(self, timeline: list[Recorded]) -> None:
        """Every event after the snapshot, in order, with no gap and no duplicate. Progress may be
        coalesced for a client that fell behind (latest wins), so it must be an ordered subset that
        keeps each run of progress's last value."""
        start = self.snapshot_seq or 0
        expected = [r for r in timeline if r.seq > start]
        got_ids = [seq for seq, _, _ in self.events]
        assert len(got_ids) == len(set(got_ids)), f"{self.job_id}: duplicate events {got_ids}"
        solid = [(r.seq, r.kind) for r in expected if not isinstance(r.event, ProgressReported)]
        got = [(seq, kind) for seq, kind, _ in self.events if kind != "progressed"]
        assert got == solid, f"{self.job_id}: gap or reorder after {start}: got {got}, stored {solid}"
        progress = {r.seq for r in expected if isinstance(r.event, ProgressReported)}
        strays = [(seq, data) for seq, kind, data in self.events if kind == "progressed" and seq not in progress]
        assert not strays, f"{self.job_id}: progress that is not in its timeline: {strays}"


async def check_job(js: JetStreamContext, names: Names, client: httpx.AsyncClient, watcher: Watcher) -> list[Recorded]:
    timeline = await read_timeline(js, names, watcher.job_id, timeout=30)
    check_timeline(timeline)
    watcher.check_against(timeline)
    return timeline


async def stored_log_lines(client: httpx.AsyncClient, job_id: str) -> list[tuple[int | None, str]] | None:
    """The logsink's rows for the job; None while the logsink is unreachable (a clear 503, e.g.
    while a restarted NATS node's routes come back): callers wait for the rows with a bound."""
    response = await client.get(f"/api/jobs/{job_id}/logs", params={"limit": 5000})
    if response.status_code == 503:
        return None
    assert response.status_code == 200, response.text
    rows = response.json()["rows"]
    return [(row.get("job_seq"), row["message"]) for row in rows]


def log_lines_of(timeline: list[Recorded]) -> list[tuple[int | None, str]]:
    return [(r.seq, r.event.message) for r in timeline if isinstance(r.event, LogLineWritten)]
