"""Faults injected for real into separate processor processes: kill -9, SIGSTOP/SIGCONT, SIGTERM,
and a nats-server restart."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import nats
import pytest
from nats.js import JetStreamContext

from jobline.contract.events import JobStarted
from jobline.contract.names import Names
from jobline.runtime.embedded_nats import EmbeddedNats, start_nats_server

from .helpers import outcome, read_sse
from .oracle import check_timeline, read_timeline
from .processes import System, free_port, restart_nats

pytestmark = pytest.mark.slow


@pytest.fixture
async def system(nats_server: EmbeddedNats, names: Names, tmp_path: Path) -> AsyncIterator[System]:
    sys_ = System(nats_server.url, names, tmp_path, settings={"JOBLINE_ACK_WAIT_S": "2", "JOBLINE_DRAIN_GRACE_S": "1"})
    try:
        yield sys_
    finally:
        await sys_.stop()


async def started_worker_pid(client: httpx.AsyncClient, job_id: str, attempt: int = 1) -> int:
    """Follow the job's events until the given attempt has started; the pid of its worker."""
    async with asyncio.timeout(20), client.stream("GET", f"/api/jobs/{job_id}/events") as response:
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                state = data["job"] if event == "snapshot" else data
                if state.get("attempt") == attempt and state.get("worker"):
                    return int(state["worker"].rsplit(":", 1)[1])
    raise AssertionError("the job never started")


def demo(steps: int, seconds: float) -> dict[str, object]:
    return {"type": "demo", "params": {"steps": [f"S{i}" for i in range(steps)], "step_seconds": seconds,
                                        "ticks_per_step": 4}}


async def test_kill_9_mid_job_another_processor_finishes_it_as_attempt_2_exactly_once(
    system: System, js: JetStreamContext
) -> None:
    await system.start_all(processors=2, logsink=False)
    async with httpx.AsyncClient(base_url=system.url, timeout=20) as client:
        job_id = (await client.post("/api/jobs", json=demo(3, 1.0))).json()["id"]
        victim = await started_worker_pid(client, job_id)
        os.kill(victim, signal.SIGKILL)
        assert outcome(await read_sse(client, f"/api/jobs/{job_id}/events", timeout=30)) == "completed"
        timeline = await read_timeline(js, system.names, job_id)
        check_timeline(timeline)
        starts = [r.event for r in timeline if isinstance(r.event, JobStarted)]
        assert [s.attempt for s in starts] == [1, 2]
        assert starts[1].worker != starts[0].worker
        state = (await client.get(f"/api/jobs/{job_id}")).json()
        assert state["status"] == "completed" and state["attempt"] == 2
        system.forget(system.by_pid(victim))


async def test_a_frozen_worker_that_wakes_up_cannot_publish_into_the_new_attempt(
    system: System, js: JetStreamContext
) -> None:
    await system.start_all(processors=2, logsink=False)
    async with httpx.AsyncClient(base_url=system.url, timeout=20) as client:
        job_id = (await client.post("/api/jobs", json=demo(2, 1.0))).json()["id"]
        frozen = system.by_pid(await started_worker_pid(client, job_id))
        frozen.send(signal.SIGSTOP)
        frozen_at = time.time()
        assert outcome(await read_sse(client, f"/api/jobs/{job_id}/events", timeout=30)) == "completed"
        before = await read_timeline(js, system.names, job_id)
        frozen.send(signal.SIGCONT)
        await frozen.wait_for_line(rf"job {job_id}: another attempt took over", timeout=20)
        after = await read_timeline(js, system.names, job_id)
        # Nothing the worker published after waking was stored: every event of an attempt is
        # conditional on the run chain still ending with that attempt's `started`.
        assert [r.seq for r in after] == [r.seq for r in before], [r for r in after if r.seq > before[-1].seq]
        assert all(r.event.ts <= frozen_at + 0.05 for r in after if getattr(r.event, "attempt", 0) == 1
                   and r.kind != "webhook_attempted")
        check_timeline(after)
        assert [r.event.attempt for r in after if isinstance(r.event, JobStarted)] == [1, 2]
        state = (await client.get(f"/api/jobs/{job_id}")).json()
        assert state["attempt"] == 2 and state["status"] == "completed"


async def test_a_cancel_then_a_crash_ends_cancelled_without_redoing_the_work(
    system: System, js: JetStreamContext
) -> None:
    await system.start_all(processors=1, logsink=False)
    async with httpx.AsyncClient(base_url=system.url, timeout=20) as client:
        job_id = (await client.post("/api/jobs", json=demo(3, 2.0))).json()["id"]
        holder = system.by_pid(await started_worker_pid(client, job_id))
        holder.send(signal.SIGSTOP)  # it cannot act on the cancel…
        response = await client.post(f"/api/jobs/{job_id}/cancel")
        assert response.status_code == 202 and response.json()["status"] == "cancelling"
        holder.send(signal.SIGKILL)  # …and dies
        await holder.process.wait()
        system.forget(holder)
        await system.add_processor()
        assert outcome(await read_sse(client, f"/api/jobs/{job_id}/events", timeout=30)) == "cancelled"
        timeline = await read_timeline(js, system.names, job_id)
        check_timeline(timeline)
        assert [r.kind for r in timeline].count("started") == 1, "the cancelled work was started again"


async def test_sigterm_finishes_short_jobs_and_hands_long_ones_back_at_once(
    system: System, js: JetStreamContext
) -> None:
    system.settings["JOBLINE_ACK_WAIT_S"] = "30"  # a hand-back that waited for the ack wait would show
    await system.start_all(processors=1, logsink=False)
    async with httpx.AsyncClient(base_url=system.url, timeout=20) as client:
        short = (await client.post("/api/jobs", json=demo(1, 0.5))).json()["id"]
        long = (await client.post("/api/jobs", json=demo(4, 2.0))).json()["id"]
        first = system.processors[0]
        await started_worker_pid(client, long)
        await started_worker_pid(client, short)
        loop = asyncio.get_running_loop()
        code = await first.stop(signal.SIGTERM, timeout=15)
        stopped = loop.time()
        assert code == 0, first.output()
        assert any("handed 1 job(s) back" in line for line in first.lines), first.output()
        assert outcome(await read_sse(client, f"/api/jobs/{short}/events")) == "completed"
        system.forget(first)
        await system.add_processor()
        await started_worker_pid(client, long, attempt=2)
        assert loop.time() - stopped < 10, "the job waited for the ack wait instead of being handed back"
        assert outcome(await read_sse(client, f"/api/jobs/{long}/events", timeout=30)) == "completed"
        check_timeline(await read_timeline(js, system.names, long))


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
async def test_processors_keep_receiving_work_after_a_nats_server_restart(
    names: Names, tmp_path: Path, how: signal.Signals
) -> None:
    server = start_nats_server(tmp_path / "store", port=free_port())
    system = System(server.url, names, tmp_path, settings={"JOBLINE_ACK_WAIT_S": "2"})
    nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        js = nc.jetstream()
        await system.start_all(processors=1, logsink=False)
        async with httpx.AsyncClient(base_url=system.url, timeout=20) as client:
            before = (await client.post("/api/jobs", json=demo(1, 0.1))).json()["id"]
            assert outcome(await read_sse(client, f"/api/jobs/{before}/events")) == "completed"
            server = restart_nats(server, how)
            await system.processors[0].wait_for_line(r"reconnected to nats", timeout=20)
            await system.processes["gateway"].wait_for_line(r"reconnected to nats", timeout=20)

            async def submit() -> str:
                while True:  # the gateway may answer 503 while its own reconnect settles
                    response = await client.post("/api/jobs", json=demo(1, 0.1))
                    if response.status_code == 202:
                        return str(response.json()["id"])
                    await asyncio.sleep(0.2)

            after = await asyncio.wait_for(submit(), 20)
            try:
                events = await read_sse(client, f"/api/jobs/{after}/events", timeout=30)
            except httpx.HTTPStatusError as exc:
                raise AssertionError(system.processes["gateway"].output()) from exc
            assert outcome(events) == "completed"
            check_timeline(await read_timeline(js, names, after))
    finally:
        await system.stop()
        await nc.close()
        server.stop()
