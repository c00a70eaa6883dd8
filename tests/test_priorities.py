"""Priorities: with a backlog, a higher priority starts first and oldest first within one; a low
priority still starts (the share); a concurrency limit holds across the priority bands; bad
priorities are refused. Checked from the jobs' own timelines (the order the stream stored them)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext

from .helpers import Stack, wait_for_job_type
from .oracle import read_timeline
from .test_queues import ends

# One slot: the processor runs one job at a time, so the start order is the pick order.
STACK: dict[str, Any] = dict(with_logsink=False, processor={"concurrency": 1, "priority_share_s": 3600.0})


@pytest.fixture
async def client(stack: Stack, js: JetStreamContext) -> AsyncIterator[httpx.AsyncClient]:
    await wait_for_job_type(js, stack.names, "demo")
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
        yield http


async def started_and_created(js: JetStreamContext, stack: Stack, job_id: str) -> tuple[int, int]:
    """(stream sequence of its first start, of its creation)."""
    timeline = await read_timeline(js, stack.names, job_id)
    created = next(r.seq for r in timeline if r.kind == "created")
    return next(r.seq for r in timeline if r.kind == "started"), created


async def test_200_queued_jobs_of_mixed_priority_on_one_slot_start_in_priority_order(
        client: httpx.AsyncClient, stack: Stack, js: JetStreamContext) -> None:
    assert (await client.post("/api/queues/noop/pause")).status_code == 200
    rng = random.Random(14)
    priorities = [rng.randint(0, 9) for _ in range(200)]
    jobs: list[tuple[str, int]] = []
    for chunk in range(0, 200, 25):  # concurrent submissions, in chunks
        batch = priorities[chunk:chunk + 25]
        answers = await asyncio.gather(*(client.post("/api/jobs", json={"type": "noop", "priority": p}) for p in batch))
        assert all(a.status_code == 202 for a in answers)
        jobs += [(a.json()["id"], p) for a, p in zip(answers, batch, strict=True)]
    state = (await client.get(f"/api/jobs/{jobs[0][0]}")).json()
    assert state["priority"] == priorities[0] and state["status"] == "pending"
    assert (await client.get("/api/queues/noop")).json()["waiting"] == 200  # every band's queue counted
    assert (await client.post("/api/queues/noop/resume")).status_code == 200
    for chunk in range(0, 200, 50):  # (a client may watch 100 streams at once)
        assert set(await ends(client, [j for j, _ in jobs[chunk:chunk + 50]], timeout=120)) == {"completed"}
    order = sorted([(*await started_and_created(js, stack, job_id), p) for job_id, p in jobs])
    started_priorities = [p for _, _, p in order]
    assert started_priorities == sorted(priorities, reverse=True), started_priorities
    for p in set(priorities):  # within a priority, oldest first
        created = [c for _, c, q in order if q == p]
        assert created == sorted(created), (p, created)


async def test_jobs_without_a_priority_still_run_on_the_fast_path(client: httpx.AsyncClient) -> None:
    answers = await asyncio.gather(*(client.post("/api/jobs", json={"type": "noop"}) for _ in range(10)))
    assert set(await ends(client, [a.json()["id"] for a in answers])) == {"completed"}
    assert (await client.get(f"/api/jobs/{answers[0].json()['id']}")).json()["priority"] == 0


@pytest.mark.parametrize("priority, status", [(10, 422), (-1, 422), ("high", 400), (2.5, 400)])
async def test_a_priority_out_of_range_is_refused_and_creates_nothing(client: httpx.AsyncClient, priority: object,
                                                                       status: int) -> None:
    before = (await client.get("/api/queues/noop")).json()["waiting"]
    answer = await client.post("/api/jobs", json={"type": "noop", "priority": priority})
    assert answer.status_code == status and answer.headers["content-type"].startswith("application/problem+json")
    if status == 422:
        assert answer.json()["errors"][0]["key"] == "priority"
    batch = await client.post("/api/batches", json={"jobs": [{"type": "noop"}, {"type": "noop", "priority": priority}]})
    assert batch.status_code == status
    assert (await client.get("/api/queues/noop")).json()["waiting"] == before
