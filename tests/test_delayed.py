"""Delayed jobs: `run_at` / `delay_s`, held by the broker (JetStream message schedules) until then."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.js import JetStreamContext

from jobline.contract.names import Names
from jobline.runtime.embedded_nats import start_nats_server

from .helpers import Stack, outcome, read_sse, wait_for_job_type
from .oracle import check_timeline, read_timeline
from .processes import System, free_port, restart_nats

STACK: dict[str, Any] = dict(with_logsink=False)
FAST = {"step_seconds": 0.02, "ticks_per_step": 1}


@pytest.fixture
async def client(stack: Stack, js: JetStreamContext) -> Any:
    await wait_for_job_type(js, stack.names, "demo")
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
        yield http


def fired_at(timeline: list[Any]) -> float:
    [created] = [r for r in timeline if r.kind == "created"]
    return float(created.stored_at)


async def test_a_delayed_job_is_scheduled_then_runs_once_on_time(client: httpx.AsyncClient, stack: Stack,
                                                                 js: JetStreamContext) -> None:
    answer = await client.post("/api/jobs", json={"type": "demo", "params": FAST, "delay_s": 2})
    assert answer.status_code == 202 and answer.json()["status"] == "scheduled"
    job_id = answer.json()["id"]
    state = (await client.get(f"/api/jobs/{job_id}")).json()
    assert state["status"] == "scheduled" and state["run_at"] == int(state["run_at"])
    assert outcome(await read_sse(client, f"/api/jobs/{job_id}/events", timeout=20)) == "completed"
    timeline = await read_timeline(js, stack.names, job_id)
    check_timeline(timeline)
    assert [r.kind for r in timeline][:2] == ["scheduled", "created"]
    assert 0 <= fired_at(timeline) - state["run_at"] < 1.0  # within a second of its time
    listed = (await client.get("/api/jobs", params={"status": "completed", "type": "demo"})).json()
    assert job_id in [j["id"] for j in listed["jobs"]]  # the history service read past the schedule


async def test_a_cancelled_scheduled_job_never_runs(client: httpx.AsyncClient, stack: Stack,
                                                    js: JetStreamContext) -> None:
    run_at = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    doomed = (await client.post("/api/jobs", json={"type": "demo", "params": FAST, "run_at": run_at})).json()["id"]
    sentinel = (await client.post("/api/jobs", json={"type": "demo", "params": FAST, "run_at": run_at})).json()["id"]
    cancelled = await client.post(f"/api/jobs/{doomed}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    # The sentinel, scheduled for the same second, fires and completes: the cancelled one's time has passed.
    assert outcome(await read_sse(client, f"/api/jobs/{sentinel}/events", timeout=20)) == "completed"
    kinds = [r.kind for r in await read_timeline(js, stack.names, doomed)]
    assert "created" not in kinds and "started" not in kinds and kinds[-1] == "cancelled"
    assert (await client.get(f"/api/jobs/{doomed}")).json()["status"] == "cancelled"


@pytest.mark.parametrize("body, key", [
    ({"run_at": "tomorrow"}, "run_at"),
    ({"run_at": "2030-01-01T00:00:00"}, "run_at"),  # no time zone
    ({"run_at": "2020-01-01T00:00:00Z"}, "run_at"),  # in the past
    ({"run_at": "2036-01-01T00:00:00Z"}, "run_at"),  # years ahead
    ({"delay_s": -5}, "delay_s"),
    ({"delay_s": 10, "run_at": "2030-01-01T00:00:00Z"}, "run_at"),
])
async def test_impossible_times_are_refused_and_create_nothing(client: httpx.AsyncClient, body: dict[str, Any],
                                                               key: str) -> None:
    before = (await client.get("/api/jobs", params={"limit": 500})).json()["jobs"]
    answer = await client.post("/api/jobs", json={"type": "demo", **body})
    assert answer.status_code == 422 and answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["errors"][0]["key"] == key, answer.text
    assert (await client.get("/api/jobs", params={"limit": 500})).json()["jobs"] == before


@pytest.mark.slow
async def test_it_fires_once_on_time_across_restarts_of_the_server_and_the_processor(names: Names,
                                                                                     tmp_path: Path) -> None:
    server = start_nats_server(tmp_path / "store", port=free_port())
    system = System(server.url, names, tmp_path, settings={"JOBLINE_ACK_WAIT_S": "2"})
    nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        js = nc.jetstream()
        await system.start_all(processors=1, logsink=False, history=True)
        async with httpx.AsyncClient(base_url=system.url, timeout=20) as client:
            answer = await client.post("/api/jobs", json={"type": "demo", "params": FAST, "delay_s": 10})
            job_id = answer.json()["id"]
            run_at = (await client.get(f"/api/jobs/{job_id}")).json()["run_at"]
            await system.processors[0].stop(signal.SIGTERM)
            server = restart_nats(server, signal.SIGKILL)
            await system.processes["gateway"].wait_for_line(r"reconnected to nats", timeout=20)
            await system.start("processor-again")
            assert time.time() < run_at, "the restarts took longer than the delay: this test proves nothing"
            events = await read_sse(client, f"/api/jobs/{job_id}/events", timeout=30)
            assert outcome(events) == "completed"
            timeline = await read_timeline(js, names, job_id)
            check_timeline(timeline)
            assert 0 <= fired_at(timeline) - run_at < 1.0
    finally:
        await system.stop()
        await nc.close()
        server.stop()
