"""Fairness between owners: with one owner's flood of 1,000 queued, another owner's job (and a job
without an owner) starts within a turn or two of the free slots, on two processors; within one owner the
order stays oldest first; the queue card counts every lane; queue controls reach every lane.
Checked from the order in which the stream stored the jobs' `started` events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from jobline.contract.names import OWNER_LANES, Names, owner_lane
from jobline.processor import JobContext
from jobline.processor import service as processor_service
from jobline.processor.registry import Registry

from .helpers import Stack, eventually
from .test_queues import ends

pytestmark = pytest.mark.slow
registry = Registry()


@registry.task("work")
async def work(ctx: JobContext) -> None:
    await asyncio.sleep(0.005)


STACK: dict[str, Any] = dict(with_logsink=False, registry=registry, processor={"concurrency": 2})
FLOOD = 1000


@contextlib.asynccontextmanager
async def another_processor(stack: Stack) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(processor_service.run(replace(stack.processor_settings, ops_port=0), stop, registry))
    try:
        yield
    finally:
        stop.set()
        await task


@contextlib.asynccontextmanager
async def start_order(nc: Client, names: Names) -> AsyncIterator[list[str]]:
    """The job ids in the order their (first) `started` events were stored."""
    order: list[str] = []
    prefix = names.job_timeline("x")[: -len("x.>")]  # `<namespace.>jobs.`

    async def on_start(msg: Msg) -> None:
        job_id = msg.subject[len(prefix):].split(".", 1)[0]
        if job_id not in order:
            order.append(job_id)

    sub = await nc.jetstream().subscribe(f"{prefix}*.run.started", cb=on_start, ordered_consumer=True,
                                         stream=names.jobs_stream, headers_only=True)
    try:
        yield order
    finally:
        await sub.unsubscribe()


async def flood(client: httpx.AsyncClient, owner: str, count: int) -> list[str]:
    answer = await client.post("/api/batches", json={"jobs": [{"type": "work", "owner": owner}] * count})
    assert answer.status_code == 202, answer.text
    return [str(job_id) for job_id in answer.json()["jobs"]]


async def submit(client: httpx.AsyncClient, **spec: Any) -> str:
    answer = await client.post("/api/jobs", json={"type": "work", **spec})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


async def test_another_owners_job_starts_within_a_turn_of_a_flood(stack: Stack, client: httpx.AsyncClient,
                                                                 nc: Client, names: Names) -> None:
    assert owner_lane("tenant-a") != owner_lane("tenant-b")
    async with another_processor(stack), start_order(nc, names) as order:
        assert (await client.post("/api/queues/work/pause")).status_code == 200
        flooded = await flood(client, "tenant-a", FLOOD)
        late_a = await submit(client, owner="tenant-a")
        b = await submit(client, owner="tenant-b")
        nobody = await submit(client)  # (no owner: the band's own queue, one more turn)
        queue = (await client.get("/api/queues/work")).json()
        assert queue["waiting"] == FLOOD + 3, queue  # every lane counted
        assert (await client.post("/api/queues/work/resume")).status_code == 200  # (reaches every lane)
        assert set(await ends(client, [b, nobody, late_a], timeout=120)) == {"completed"}
        await eventually(lambda: _all_started(order, [*flooded, late_a]), timeout=60, what="the flood started")
    # Four slots on two processors: the others' jobs start within the first turns, not after the flood.
    assert order.index(b) < 8, order.index(b)
    assert order.index(nobody) < 8, order.index(nobody)
    # One owner's own jobs keep their order: its late job starts after its whole flood.
    flood_positions = [order.index(job_id) for job_id in flooded]
    assert order.index(late_a) > max(flood_positions)


async def _all_started(order: list[str], jobs: list[str]) -> bool:
    return set(jobs) <= set(order)


async def test_lanes_are_named_in_the_subject_and_bounded(stack: Stack, client: httpx.AsyncClient,
                                                        js: JetStreamContext, names: Names) -> None:
    job_id = await submit(client, owner="tenant:acme", priority=3)
    assert set(await ends(client, [job_id])) == {"completed"}
    lane = owner_lane("tenant:acme")
    assert lane is not None and 0 <= lane < OWNER_LANES
    raw = await js.get_last_msg(names.jobs_stream, names.job_created(job_id, "work", 3, lane), direct=True)
    assert raw.data and b"tenant:acme" in raw.data
    info = await js.consumer_info(names.jobs_stream, names.band_durable("work", 3, lane))
    assert info.config.filter_subject == names.created_filter("work", 3, lane)


async def test_under_a_type_limit_and_a_per_owner_limit_another_owner_is_not_held(
        stack: Stack, client: httpx.AsyncClient, nc: Client, names: Names) -> None:
    """An owner's jobs handed back to wait for their owner's slot hold only their own lane's queue."""
    limits = await client.put("/api/queues/work", json={"concurrency": 2, "key_concurrency": 1})
    assert limits.status_code == 200, limits.text
    async with start_order(nc, names) as order:
        flooded = await flood(client, "tenant-a", 30)
        b = await submit(client, owner="tenant-b")
        assert set(await ends(client, [b], timeout=60)) == {"completed"}
        a_before_b = [job_id for job_id in order[:order.index(b)] if job_id in flooded]
        assert len(a_before_b) <= 3, a_before_b  # (one at a time for tenant-a: B's turn comes at once)
        assert set(await ends(client, flooded, timeout=120)) == {"completed"}
