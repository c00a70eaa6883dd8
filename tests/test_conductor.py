"""The conductor runs the background roles on its own: with every gateway stopped, schedules tick on
time, flows release their jobs and webhooks are sent; a `kill -9` of one of two conductors under
load (flows, ticks, webhooks, signals resuming waiting jobs) loses nothing and does nothing twice."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import time
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import httpx
import nats
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from jobline.contract.events import JobCreated, job_event_decoder
from jobline.contract.names import Names
from jobline.runtime.embedded_nats import EmbeddedNats

from .helpers import eventually, outcome, read_sse
from .oracle import check_timeline, read_timeline
from .processes import System
from .test_webhooks import SECRETS, Receiver

pytestmark = pytest.mark.slow
FAST = {"type": "demo", "params": {"steps": ["A"], "step_seconds": 0.05, "ticks_per_step": 1}}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver(statuses=[])
    server = await asyncio.start_server(hook.handle, "127.0.0.1", 0)
    hook.port = server.sockets[0].getsockname()[1]
    try:
        yield hook
    finally:
        server.close()


class Created:
    """Every created event as it is stored (a plain subscription: the broker's own view)."""

    def __init__(self) -> None:
        self.events: list[JobCreated] = []

    async def keep(self, msg: Msg) -> None:
        event = job_event_decoder.decode(msg.data)
        if isinstance(event, JobCreated):
            self.events.append(event)

    def of_schedule(self, name: str) -> list[JobCreated]:
        return [e for e in self.events if e.schedule == name]


def system_with_webhooks(nats_server: EmbeddedNats, names: Names, tmp_path: Path) -> System:
    return System(nats_server.url, names, tmp_path, settings={
        "JOBLINE_WEBHOOK_SECRETS": SECRETS[0], "JOBLINE_WEBHOOK_ALLOW": "127.0.0.1", "JOBLINE_WEBHOOK_BACKOFF_S": "0.2",
        "JOBLINE_ACK_WAIT_S": "2"})


async def test_with_every_gateway_stopped_schedules_tick_flows_go_on_and_webhooks_are_sent(
        nats_server: EmbeddedNats, names: Names, tmp_path: Path, js: JetStreamContext, receiver: Receiver) -> None:
    system = system_with_webhooks(nats_server, names, tmp_path)
    nc = await nats.connect(nats_server.url)
    created = Created()
    await nc.subscribe(names.all_created, cb=created.keep)
    try:
        await system.start_all(processors=1, logsink=False, history=True)
        async with httpx.AsyncClient(base_url=system.url, timeout=20) as client:
            schedule = await client.post("/api/schedules", json={"name": "ticker", "cron": "* * * * * *", "job": FAST})
            assert schedule.status_code == 201, schedule.text
            slow = {"type": "demo", "params": {"steps": ["A"], "step_seconds": 2, "ticks_per_step": 2}}
            flow = (await client.post("/api/flows", json={"job": {"type": "gather"}, "children": [
                {"name": "a", "job": slow}, {"name": "b", "job": FAST, "depends_on": ["a"]}]})).json()
            hooked = (await client.post("/api/jobs", json={**slow, "webhook_url": f"http://127.0.0.1:{receiver.port}/hook"}
                                        )).json()["id"]
        gateway = system.processes["gateway"]
        await gateway.stop(signal.SIGKILL)  # no gateway at all from here
        system.forget(gateway)
        down_at = time.time()
        flow_id = flow["id"]

        async def root_ended() -> bool:
            timeline = await read_timeline(js, names, flow_id)
            return any(r.kind == "completed" for r in timeline)

        await eventually(root_ended, timeout=30, what="the flow's root to run and end with no gateway")
        await eventually(lambda: _true(len(receiver.requests) >= 1), timeout=30, what="the webhook with no gateway")

        def ticks_since_down() -> list[float]:
            return [e.tick or 0 for e in created.of_schedule("ticker") if (e.tick or 0) > down_at + 1]

        await eventually(lambda: _true(len(ticks_since_down()) >= 3), timeout=15, what="ticks with no gateway")
        ticks = ticks_since_down()
        assert len(ticks) >= 3, f"ticks while no gateway ran: {ticks}"
        assert all(0 <= e.ts - (e.tick or 0) < 1.5 for e in created.of_schedule("ticker") if (e.tick or 0) > down_at), \
            "each tick's job on time"
        assert receiver.requests[0][0]["webhook-id"] == f"job_{hooked}_completed"
        # The parent started only after both children ended, b only after a.
        starts = {job["name"] or "root": _seq(await read_timeline(js, names, job["id"]), "started") for job in flow["jobs"]}
        ends = {job["name"] or "root": _seq(await read_timeline(js, names, job["id"]), "completed") for job in flow["jobs"]}
        assert starts["root"] > max(ends["a"], ends["b"]) and starts["b"] > ends["a"]

        await system.start("gateway-again")  # the gateway comes back and shows all of it
        async with httpx.AsyncClient(base_url=system.url, timeout=20) as client:
            tree = (await client.get(f"/api/flows/{flow_id}")).json()
            assert tree["status"] == "completed" and all(c["status"] == "completed" for c in tree["children"])
            state = (await client.get(f"/api/jobs/{hooked}")).json()
            assert state["webhook"]["delivered"] is True
            view = (await client.get("/api/schedules/ticker")).json()
            assert view["jobs_created"] >= len(ticks) and view["last_tick"] >= max(ticks)
            await client.post("/api/schedules/ticker/pause")
    finally:
        await system.stop()
        await nc.close()


async def waiting(client: httpx.AsyncClient, job_id: str) -> bool:
    return bool((await client.get(f"/api/jobs/{job_id}")).json()["status"] == "waiting")


async def test_kill_9_of_one_of_two_conductors_under_load_loses_nothing_and_does_nothing_twice(
        nats_server: EmbeddedNats, names: Names, tmp_path: Path, js: JetStreamContext, receiver: Receiver) -> None:
    system = system_with_webhooks(nats_server, names, tmp_path)
    nc = await nats.connect(nats_server.url)
    created = Created()
    await nc.subscribe(names.all_created, cb=created.keep)
    try:
        await system.start_all(processors=2, logsink=False, conductors=2)
        hook = f"http://127.0.0.1:{receiver.port}/hook"
        async with httpx.AsyncClient(base_url=system.url, timeout=30) as client:
            await client.post("/api/schedules", json={"name": "load", "cron": "* * * * * *", "job": FAST})
            flows, hooked = [], []
            review = {"type": "review", "params": {"prepare_seconds": 0.05}}
            reviews = [(await client.post("/api/jobs", json=review)).json()["id"] for _ in range(3)]
            for round_ in range(3):
                for _ in range(5):
                    children = [{"name": f"c{i}", "job": FAST} for i in range(3)]
                    flows.append((await client.post("/api/flows", json={
                        "job": {"type": "gather", "webhook_url": hook}, "children": children})).json())
                    hooked.append((await client.post("/api/jobs", json={**FAST, "webhook_url": hook})).json()["id"])
                if round_ == 1:  # mid-load: one conductor dies holding whatever it was doing
                    for job_id in reviews:  # (the signals just sent: the victim may hold some of them)
                        await eventually(partial(waiting, client, job_id), what=f"review {job_id} waits")
                        await client.post(f"/api/jobs/{job_id}/signals/approval", json={"approved": True})
                    victim = system.processes["conductor-0"]
                    await victim.stop(signal.SIGKILL)
                    system.forget(victim)
                    killed_at = time.time()
                await asyncio.sleep(0.3)  # (load spread over time, so the kill lands mid-work)
            expected_hooks = {*hooked, *(f["id"] for f in flows)}

            async def all_done() -> bool:
                ids = {json.loads(body)["data"]["id"] for _, body in receiver.requests}
                return expected_hooks <= ids

            await eventually(all_done, timeout=60, what="every webhook after the kill")
            for job_id in reviews:  # each resumed by its signal once, whichever conductor had it
                assert outcome(await read_sse(client, f"/api/jobs/{job_id}/events")) == "completed"
                timeline = await read_timeline(js, names, job_id)
                check_timeline(timeline)
                assert [r.event.resumed for r in timeline if r.kind == "created"] == [0, 1], job_id
            for flow in flows:
                for job in flow["jobs"]:
                    timeline = await read_timeline(js, names, job["id"])
                    check_timeline(timeline)  # one end each
                    assert [r.kind for r in timeline if r.kind in ("completed", "failed")] == ["completed"], job

            async def ticked_after_the_kill() -> bool:  # the survivor goes on ticking, whatever the load's pace
                return any((e.tick or 0) > killed_at + 2 for e in created.of_schedule("load"))

            await eventually(ticked_after_the_kill, timeout=30, what="a tick well after the kill")
            await client.post("/api/schedules/load/pause")
        ticks = sorted(e.tick or 0 for e in created.of_schedule("load"))
        assert len(ticks) == len(set(ticks)), "a tick made twice"
        assert all(b - a == 1.0 for a, b in itertools.pairwise(ticks)), f"a tick lost across the kill: {ticks}"
        assert ticks[-1] > killed_at + 2
        by_job: dict[str, set[str]] = {}
        for headers, body in receiver.requests:
            by_job.setdefault(json.loads(body)["data"]["id"], set()).add(headers["webhook-id"])
        # Each job's webhook went out with one id (a delivery cut by the kill is sent again with the
        # same id, which receivers dedupe on: Standard Webhooks' at-least-once).
        assert all(len(ids) == 1 for ids in by_job.values()), by_job
        sent = [json.loads(body)["data"]["id"] for _, body in receiver.requests]
        assert len(sent) - len(set(sent)) <= 2, "more repeats than the one conductor killed can explain"
    finally:
        await system.stop()
        await nc.close()


async def _true(value: bool) -> bool:
    return value


def _seq(timeline: list, kind: str) -> int:  # type: ignore[type-arg]
    return next(r.seq for r in timeline if r.kind == kind)
