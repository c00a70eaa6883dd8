"""Recurring schedules: one job per tick across conductors, overlap, pause, catch-up, bad input."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from jobline.contract.events import JobCreated, job_event_decoder
from jobline.contract.names import Names
from jobline.runtime.embedded_nats import EmbeddedNats, start_nats_server

from .helpers import Stack, another_conductor, eventually, read_sse, wait_for_job_type
from .oracle import read_timeline
from .processes import System, free_port

STACK: dict[str, Any] = dict(with_logsink=False)
EVERY_SECOND = "* * * * * *"


@dataclass
class Created:
    """Every job created, as the job stream stored them, in order."""

    jobs: list[JobCreated] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def of(self, schedule: str) -> list[JobCreated]:
        return [j for j in self.jobs if j.schedule == schedule]

    async def wait(self, schedule: str, count: int, timeout: float = 30.0) -> list[JobCreated]:
        async with asyncio.timeout(timeout):
            while len(self.of(schedule)) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.of(schedule)


@contextlib.asynccontextmanager
async def watching_created(nc: Client, names: Names) -> AsyncIterator[Created]:
    created = Created()

    async def on_message(msg: Any) -> None:
        event = job_event_decoder.decode(msg.data)
        if isinstance(event, JobCreated):
            created.jobs.append(event)
            created.arrived.set()

    # From the stream, not a core subscription: a publish the stream refused (a tick's job that
    # already exists) still reaches core subscribers.
    sub = await nc.jetstream().subscribe(names.created_filter(), cb=on_message, ordered_consumer=True)
    try:
        yield created
    finally:
        await sub.unsubscribe()


async def until_clock(moment: float) -> None:
    """Wait for the wall clock itself (what a schedule is about): there is no event to wait on."""
    await asyncio.sleep(max(0.0, moment - time.time()))


@pytest.fixture
async def client(stack: Stack, js: JetStreamContext) -> AsyncIterator[httpx.AsyncClient]:
    await wait_for_job_type(js, stack.names, "demo")
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
        yield http


async def create(client: httpx.AsyncClient, **spec: Any) -> dict[str, Any]:
    answer = await client.post("/api/schedules", json={"job": {"type": "noop"}, "cron": EVERY_SECOND, **spec})
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_one_job_per_tick_with_two_conductors_for_ten_seconds(client: httpx.AsyncClient, stack: Stack,
                                                                    nc: Client) -> None:
    async with another_conductor(stack), watching_created(nc, stack.names) as created:
        made = await create(client, name="every-second")
        start = float(int(time.time()) + 1)
        assert made["next_runs"] and made["timezone"] == "UTC" and made["paused"] is False
        # Ten seconds of ticks, counted by the tick each job records (not by when it arrived).
        async with asyncio.timeout(30):
            while not any(j.tick is not None and j.tick >= start + 10 for j in created.of("every-second")):
                created.arrived.clear()
                await created.arrived.wait()
        assert (await client.delete("/api/schedules/every-second")).status_code == 204
    jobs = created.of("every-second")
    ticks = [j.tick for j in jobs if j.tick is not None and start <= j.tick < start + 10]
    assert 9 <= len(ticks) <= 11, ticks
    assert len({j.job_id for j in jobs}) == len(jobs) and len({j.tick for j in jobs}) == len(jobs)  # no tick twice
    assert all(j.job_id == f"every-second-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(j.tick or 0))}" for j in jobs)
    assert all(0 <= j.ts - (j.tick or 0) < 1.0 for j in jobs if j.tick and j.tick >= start), "each job on its tick"
    state = (await client.get(f"/api/jobs/{jobs[0].job_id}")).json()
    assert state["schedule"] == "every-second" and state["tick"] == jobs[0].tick


async def test_overlap_skip_starts_no_run_while_the_previous_one_goes(client: httpx.AsyncClient, stack: Stack,
                                                                      nc: Client, js: JetStreamContext) -> None:
    slow = {"type": "demo", "params": {"step_seconds": 0.6, "ticks_per_step": 1}}  # ~2.4 s: spans ticks
    async with watching_created(nc, stack.names) as created:
        await create(client, name="no-overlap", job=slow, overlap="skip")
        jobs = await created.wait("no-overlap", 3, timeout=40)
        view = (await client.get("/api/schedules/no-overlap")).json()
        await client.delete("/api/schedules/no-overlap")
    assert view["missed_total"] >= 2 and all("still going" in m["reason"] for m in view["missed"])
    runs = []
    for job in jobs[:2]:
        await read_sse(client, f"/api/jobs/{job.job_id}/events", timeout=20)
        timeline = await read_timeline(js, stack.names, job.job_id)
        runs.append((timeline[0].stored_at, next(r.stored_at for r in timeline if r.kind in ("completed", "failed"))))
    assert runs[1][0] >= runs[0][1], "the second run was created before the first ended"


async def test_a_paused_schedule_makes_no_job_until_resumed(client: httpx.AsyncClient, stack: Stack,
                                                            nc: Client) -> None:
    async with watching_created(nc, stack.names) as created:
        paused = await create(client, name="held", paused=True)
        assert paused["paused"] is True and paused["next_runs"] == []
        await create(client, name="sentinel")
        await created.wait("sentinel", 3)  # three ticks passed: the paused one had its chances
        assert created.of("held") == []
        resumed = await client.post("/api/schedules/held/resume")
        assert resumed.status_code == 200 and resumed.json()["paused"] is False
        [first, *_] = await created.wait("held", 1)
        assert first.tick is not None and first.tick >= paused["created_at"]
        assert (await client.post("/api/schedules/held/pause")).json()["paused"] is True
        count = len(created.of("held"))
        seen = len(created.of("sentinel"))
        await created.wait("sentinel", seen + 3)
        assert len(created.of("held")) <= count + 1  # (a tick being handled as it was paused may still land)
        listed = (await client.get("/api/schedules")).json()
        assert {s["name"]: s["paused"] for s in listed} == {"held": True, "sentinel": False}
        for name in ("held", "sentinel"):
            assert (await client.delete(f"/api/schedules/{name}")).status_code == 204
    assert (await client.get("/api/schedules/held")).status_code == 404


@pytest.mark.parametrize("spec, key", [
    ({"cron": "* * *"}, "cron"),
    ({"cron": "61 * * * * *"}, "cron"),
    ({"cron": "0 0 30 2 *"}, "cron"),  # never fires
    ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ({"name": "Not A Name"}, "name"),
    ({"catchup_window_s": 0}, "catchup_window_s"),
    ({"job": {"type": "noop", "delay_s": 5}}, "job.delay_s"),
    ({"job": {"type": "no-such-type"}}, "job.type"),
    ({"job": {"type": "noop", "surprise": 1}}, "job"),
])
async def test_bad_schedules_are_refused_and_create_nothing(client: httpx.AsyncClient, spec: dict[str, Any],
                                                            key: str) -> None:
    answer = await client.post("/api/schedules", json={"name": "bad", "cron": EVERY_SECOND,
                                                       "job": {"type": "noop"}, **spec})
    assert answer.status_code == 422 and answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["errors"][0]["key"] == key, answer.text
    assert (await client.get("/api/schedules")).json() == []


async def test_a_taken_name_is_a_conflict(client: httpx.AsyncClient) -> None:
    await create(client, name="twice", cron="0 0 * * *")
    again = await client.post("/api/schedules", json={"name": "twice", "cron": "0 1 * * *", "job": {"type": "noop"}})
    assert again.status_code == 409
    assert (await client.get("/api/schedules/twice")).json()["cron"] == "0 0 * * *"
    assert (await client.post("/api/schedules/missing/pause")).status_code == 404


@pytest.mark.slow
async def test_ticks_missed_while_no_conductor_ran_are_caught_up_within_the_window(nats_server: EmbeddedNats,
                                                                                   names: Names, tmp_path: Path) -> None:
    system = System(nats_server.url, names, tmp_path)
    nc = await nats.connect(nats_server.url)
    try:
        await system.start_all(processors=1, logsink=False, history=False)
        async with httpx.AsyncClient(base_url=system.url, timeout=20) as client, \
                watching_created(nc, names) as created:
            await create(client, name="caught-up", catchup_window_s=60)
            await create(client, name="too-late", catchup_window_s=1)
            await created.wait("caught-up", 1)
            await created.wait("too-late", 1)
            conductor = system.processes["conductor-0"]
            await conductor.stop(signal.SIGKILL)
            system.forget(conductor)
            down_at = time.time()
            await until_clock(down_at + 4)  # four ticks pass with no conductor at all
            await system.start("conductor-again")
            back_at = time.time()
            await eventually(lambda: _has_tick_after(created.of("caught-up"), back_at), timeout=20,
                             what="a tick after the conductor came back")
            ticks = sorted(j.tick or 0 for j in created.of("caught-up"))
            gaps = [b - a for a, b in itertools.pairwise(ticks)]
            assert gaps and all(g == 1.0 for g in gaps), f"a tick was lost or made twice: {ticks}"

            async def too_late_recorded() -> bool:  # (its wake-up is handled apart from the other's)
                return bool((await client.get("/api/schedules/too-late")).json()["missed_total"] >= 2)

            await eventually(too_late_recorded, timeout=20, what="the other schedule's late ticks recorded missed")
            view = (await client.get("/api/schedules/too-late")).json()
            assert "catch-up window" in view["missed"][-1]["reason"]
    finally:
        await system.stop()
        await nc.close()


@pytest.mark.slow
async def test_ticks_missed_while_nats_server_was_down_are_made_once_when_it_is_back(names: Names,
                                                                                  tmp_path: Path) -> None:
    server = start_nats_server(tmp_path / "store", port=free_port())
    system = System(server.url, names, tmp_path)
    try:
        await system.start_all(processors=1, logsink=False, history=False)
        async with httpx.AsyncClient(base_url=system.url, timeout=20) as client:
            await create(client, name="through-restart", catchup_window_s=60)

            async def made(count: int) -> bool:
                return bool((await client.get("/api/schedules/through-restart")).json()["jobs_created"] >= count)

            await eventually(lambda: made(2), timeout=15, what="two ticks before the restart")
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(10)
            down_at = time.time()
            await until_clock(down_at + 4)  # four ticks pass with no broker at all
            server = start_nats_server(server.store_dir, port=int(server.url.rsplit(":", 1)[1]))
            await system.processes["gateway"].wait_for_line(r"reconnected to nats", timeout=30)

            async def ticked_after_restart() -> bool:
                view = (await client.get("/api/schedules/through-restart")).json()
                return bool((view["last_tick"] or 0) > down_at + 5)

            await eventually(ticked_after_restart, timeout=30, what="a tick after the restart")
            await client.post("/api/schedules/through-restart/pause")
        nc = await nats.connect(server.url)
        try:
            async with watching_created(nc, names) as created:
                await eventually(lambda: _has_tick_after(created.of("through-restart"), down_at + 5), timeout=10,
                                 what="the stored jobs")
                ticks = sorted(j.tick or 0 for j in created.of("through-restart"))
        finally:
            await nc.close()
        gaps = [b - a for a, b in itertools.pairwise(ticks)]
        assert all(g == 1.0 for g in gaps), f"a tick was lost or made twice: {ticks}"
        assert ticks[0] < down_at < down_at + 4 < ticks[-1]
    finally:
        await system.stop()
        server.stop()


async def _has_tick_after(jobs: list[JobCreated], moment: float) -> bool:
    return any((j.tick or 0) > moment for j in jobs)
