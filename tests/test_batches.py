"""Batches: many jobs in one request, created once, followed as one live, resumable stream."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext

from jobline.contract.events import JobCreated, job_event_decoder

from .helpers import Stack, outcome, read_sse, wait_for_job_type

STACK: dict[str, Any] = dict(with_logsink=False)
FAST = {"type": "demo", "params": {"steps": ["A"], "step_seconds": 0.01, "ticks_per_step": 1}}


@pytest.fixture
async def client(stack: Stack, js: JetStreamContext) -> AsyncIterator[httpx.AsyncClient]:
    await wait_for_job_type(js, stack.names, "demo")
    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as http:
        yield http


async def stored_created(js: JetStreamContext, stack: Stack) -> list[JobCreated]:
    """Every created event the job stream holds."""
    found: list[JobCreated] = []
    sub = await js.subscribe(stack.names.created_filter(), ordered_consumer=True)
    try:
        while True:
            pending = (await sub.consumer_info()).num_pending
            if pending == 0 and sub.pending_msgs == 0:
                break
            msg = await sub.next_msg(timeout=5)
            event = job_event_decoder.decode(msg.data)
            if isinstance(event, JobCreated):
                found.append(event)
    finally:
        await sub.unsubscribe()
    return found


async def events_until_cut(client: httpx.AsyncClient, batch_id: str, last_id: str | None,
                           cut_after: int) -> tuple[list[tuple[str, dict[str, Any], str | None]], bool]:
    """Read the batch's stream (resuming after `last_id`) until `cut_after` events or its end."""
    headers = {"Last-Event-ID": last_id} if last_id else {}
    got: list[tuple[str, dict[str, Any], str | None]] = []
    async with client.stream("GET", f"/api/batches/{batch_id}/events", headers=headers) as response:
        assert response.status_code == 200
        kind, event_id = "", None
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                got.append((kind, json.loads(line[6:]), event_id))
                if kind == "batch_completed":
                    return got, True
                if len(got) >= cut_after:
                    return got, False
    return got, False


async def test_a_thousand_job_batch_is_created_once_and_its_resumed_stream_adds_up(client: httpx.AsyncClient,
                                                                                  stack: Stack,
                                                                                  js: JetStreamContext) -> None:
    body = {"jobs": [FAST] * 1000}
    answers = await asyncio.gather(*(client.post("/api/batches", json=body, headers={"Idempotency-Key": "batch-1"})
                                     for _ in range(3)))  # a client retrying while the first is still running
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["id"] for a in answers}) == 1
    batch_id, job_ids = answers[0].json()["id"], answers[0].json()["jobs"]
    assert len(job_ids) == len(set(job_ids)) == 1000 and all(a.json()["jobs"] == job_ids for a in answers)
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 2
    last_id: str | None = None
    ended_jobs: set[str] = set()
    done = False
    rng = random.Random(7)
    async with asyncio.timeout(120):
        while not done:
            events, done = await events_until_cut(client, batch_id, last_id, cut_after=rng.randint(3, 60))
            kind, snapshot, _ = events[0]
            assert kind == "snapshot"
            ended_jobs = {j["id"] for j in snapshot["jobs"] if j["status"] in ("completed", "failed", "cancelled", "expired")}
            assert snapshot["ended"] == len(ended_jobs)
            for kind, data, event_id in events[1:]:
                if kind == "job_ended":
                    assert data["job_id"] not in ended_jobs, "a job counted twice"
                    ended_jobs.add(data["job_id"])
                    assert data["ended"] == len(ended_jobs)
                last_id = event_id or last_id
    final = events[-1][1]
    assert final["status"] == "completed" and final["counts"] == {"completed": 1000} and final["progress"] == 1.0
    assert ended_jobs == set(job_ids)
    state = (await client.get(f"/api/batches/{batch_id}")).json()
    assert state["counts"] == {"completed": 1000} and state["eta_s"] is None and state["failures"] == []
    for job_id in random.Random(3).sample(job_ids, 20):  # the batch's view agrees with the jobs' own states
        job = (await client.get(f"/api/jobs/{job_id}")).json()
        assert job["status"] == "completed" and job["batch"] == batch_id
    created = [e for e in await stored_created(js, stack) if e.batch == batch_id]
    assert len(created) == 1000 and {e.job_id for e in created} == set(job_ids)  # each stored once


@pytest.mark.parametrize("jobs, status, key", [
    ([FAST, FAST, {"type": "no-such-type"}], 422, "jobs[2].type"),
    ([FAST, {**FAST, "max_attempts": 0}], 422, "jobs[1].max_attempts"),
    ([FAST, {"type": 5}], 400, "jobs[1].type"),
    ([FAST, {**FAST, "surprise": True}], 400, None),
    ([FAST] * 10_001, 422, "jobs"),
    ([], 422, "jobs"),
])
async def test_a_bad_batch_creates_nothing_and_says_why(client: httpx.AsyncClient, stack: Stack, js: JetStreamContext,
                                                        jobs: list[dict[str, Any]], status: int, key: str | None) -> None:
    answer = await client.post("/api/batches", json={"jobs": jobs})
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    if key is not None:
        assert answer.json()["errors"][0]["key"] == key
    assert await stored_created(js, stack) == []
    assert (await client.get("/api/batches")).json() == []


async def test_cancel_a_batch_and_keys_that_name_existing_jobs(client: httpx.AsyncClient) -> None:
    earlier = (await client.post("/api/jobs", json=FAST, headers={"Idempotency-Key": "k-earlier"})).json()["id"]
    assert outcome(await read_sse(client, f"/api/jobs/{earlier}/events")) == "completed"  # ended: not cancelled below
    slow = {"type": "demo", "params": {"steps": ["A", "B"], "step_seconds": 5}}
    answer = await client.post("/api/batches", json={"jobs": [slow] * 5 + [{**FAST, "idempotency_key": "k-earlier"}]})
    batch_id, job_ids = answer.json()["id"], answer.json()["jobs"]
    assert job_ids[5] == earlier  # its key already named a job: that job, not a new one
    cancelled = await client.post(f"/api/batches/{batch_id}/cancel")
    assert cancelled.status_code == 202 and sum(cancelled.json().values()) >= 5
    events, done = await events_until_cut(client, batch_id, None, cut_after=100)
    assert done, events
    final = events[-1][1]
    assert final["counts"].get("cancelled", 0) == 5 and final["ended"] == 6
    listed = (await client.get("/api/batches")).json()
    assert [b["id"] for b in listed] == [batch_id] and listed[0]["total"] == 6
    assert (await client.get("/api/batches/01nosuchbatch")).status_code == 404
