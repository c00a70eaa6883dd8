"""5,000 idle SSE connections on one gateway process: every one keeps getting heartbeats, and a
client watching an active job still gets all its events promptly. (Latency percentiles and memory
per connection are measured by `bench/streams.py`, docs/benchmarks.md.)"""

from __future__ import annotations

import asyncio
import json
import resource
import time
from pathlib import Path

import httpx
import pytest
from nats.js import JetStreamContext

from jobline.contract.events import JobCreated, JobStarted, encoder
from jobline.contract.names import Names
from jobline.contract.publishing import subject_of
from jobline.runtime.embedded_nats import EmbeddedNats

from .helpers import read_sse, wait_for_job_type
from .oracle import check_timeline, read_timeline
from .processes import ServiceProcess, gateway_url, service_env, stop_all

pytestmark = pytest.mark.slow

CONNECTIONS = 5000


class IdleClient:
    """One raw socket holding an SSE stream open and counting its heartbeats (no HTTP library, so
    thousands fit in the test process)."""

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.heartbeats = 0
        self.beating = asyncio.Event()
        self.other_lines: list[bytes] = []

    async def run(self, host: str, port: int, path: str, heartbeats_wanted: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())
            await writer.drain()
            async for line in reader:
                if line.startswith(b"event: snapshot"):
                    self.connected.set()
                elif line.startswith(b":"):
                    self.heartbeats += 1
                    if self.heartbeats >= heartbeats_wanted:
                        self.beating.set()
                elif line.startswith(b"event: ") and self.connected.is_set():
                    self.other_lines.append(line)
        finally:
            writer.close()


async def test_5000_idle_streams_keep_their_heartbeats_and_an_active_client_keeps_its_pace(
    nats_server: EmbeddedNats, names: Names, tmp_path: Path, js: JetStreamContext
) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))  # inherited by the gateway
    assert min(hard, 65536) > 2 * CONNECTIONS + 1000, "not enough file descriptors for this test"
    env = service_env(nats_server.url, names, tmp_path, JOBLINE_PORT="0", JOBLINE_SSE_HEARTBEAT_S="2",
                      JOBLINE_MAX_STREAMS_PER_CLIENT=str(CONNECTIONS * 2), JOBLINE_LOG_LEVEL="WARNING")
    processes = [await ServiceProcess.service("processor", env)]
    clients: list[IdleClient] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        await wait_for_job_type(js, names, "demo")
        processes.append(await ServiceProcess.service("gateway", dict(env, JOBLINE_LOG_LEVEL="INFO")))
        url = await gateway_url(processes[1])
        host, port = url.removeprefix("http://").split(":")
        # An idle job: started, and nothing more happens to it.
        for event in (JobCreated(ts=time.time(), job_id="idle", type="sleepy"),
                      JobStarted(ts=time.time(), job_id="idle", attempt=1, worker="elsewhere")):
            await js.publish(subject_of(names, event), encoder.encode(event))
        for _ in range(0, CONNECTIONS, 250):  # in waves: the listen backlog is finite
            batch = [IdleClient() for _ in range(250)]
            clients += batch
            tasks += [asyncio.create_task(c.run(host, int(port), "/api/jobs/idle/events", 3)) for c in batch]
            async with asyncio.timeout(60):
                await asyncio.gather(*(c.connected.wait() for c in batch))
        assert len(clients) == CONNECTIONS

        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            response = await client.post("/api/jobs", json={"type": "demo", "params": {
                "steps": ["A", "B"], "step_seconds": 1.0, "ticks_per_step": 5}})
            job_id = response.json()["id"]
            events = await read_sse(client, f"/api/jobs/{job_id}/events", timeout=60)
            received = time.time()
        assert events[-1].event == "completed"
        timeline = await read_timeline(js, names, job_id)
        check_timeline(timeline)
        assert [int(e.id or 0) for e in events[1:]] == [r.seq for r in timeline if r.seq > int(events[0].id or 0)]
        lags = sorted(received - json.loads(e.data)["ts"] for e in events[-1:])
        assert lags[-1] < 2.0, f"the active client got its last event {lags[-1]:.2f}s late"

        async with asyncio.timeout(60):  # heartbeats every 2 s: three each, on every connection
            await asyncio.gather(*(c.beating.wait() for c in clients))
        assert all(not c.other_lines for c in clients), "an idle stream got events it should not"
        assert all(not t.done() for t in tasks), "a stream was closed"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await stop_all(processes)
