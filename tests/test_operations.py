"""Bulk actions as stored operations (`Prefer: respond-async`): the gateway stores the operation and a
conductor runs it, so it goes on when the gateway that took it stops, and a conductor that goes away
half-way is followed by one that goes on where it stopped; a repeat with the same Idempotency-Key is
the same operation; the set is closed when the operation is made and bounded (refused with the count)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
from nats.js import JetStreamContext

from jobline.client import AsyncClient
from jobline.conductor.service import run as run_conductor
from jobline.contract.events import encoder
from jobline.contract.history import JobFilter
from jobline.contract.operations import BulkOperation, operations_bucket_config
from jobline.runtime.buckets import key_value

from .helpers import Stack, another_gateway, eventually, read_sse
from .test_queues import ends

pytestmark = pytest.mark.slow
STACK: dict[str, Any] = dict(with_logsink=False, with_conductor=False)  # (each test runs its conductors)
ASYNC = {"Prefer": "respond-async"}


@contextlib.asynccontextmanager
async def conductor(stack: Stack) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_conductor(stack.conductor_settings, stop))
    try:
        yield
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await task


async def pending_jobs(client: httpx.AsyncClient, owner: str, count: int) -> list[str]:
    """`count` jobs that stay pending (their queue paused)."""
    assert (await client.post("/api/queues/demo/pause")).status_code == 200
    made = await client.post("/api/batches", json={"jobs": [{"type": "demo", "owner": owner}] * count})
    assert made.status_code == 202, made.text
    return list(made.json()["jobs"])


async def status_of(client: httpx.AsyncClient, job_id: str) -> str:
    return str((await client.get(f"/api/jobs/{job_id}")).json()["status"])


async def test_a_stored_bulk_cancel_is_run_by_a_conductor_and_outlives_the_gateway_that_took_it(
        stack: Stack, client: httpx.AsyncClient) -> None:
    jobs = await pending_jobs(client, "op-a", 40)
    other = (await client.post("/api/jobs", json={"type": "demo", "owner": "op-b"})).json()["id"]
    await eventually(lambda: _listed(client, "op-a", 40), what="the jobs in history")
    query = {"status": "pending", "owner": "op-a"}
    async with another_gateway(stack) as (url, _):
        async with httpx.AsyncClient(base_url=url, timeout=20) as doomed:
            started = await doomed.post("/api/jobs/cancel", params=query, headers={**ASYNC, "Idempotency-Key": "op-1"})
    # (that gateway has stopped; no conductor has run yet: the operation waits, stored)
    assert started.status_code == 202, started.text
    operation = started.json()
    assert started.headers["location"] == f"/api/operations/{operation['id']}"
    assert started.headers["preference-applied"] == "respond-async"
    assert operation["status"] == "queued" and operation["action"] == "cancel"
    assert operation["filter"]["owners"] == ["op-a"] and operation["filter"]["created_before"] <= time.time()
    late = (await client.post("/api/jobs", json={"type": "demo", "owner": "op-a"})).json()["id"]  # after: not in it
    async with conductor(stack):
        events = await read_sse(client, f"/api/operations/{operation['id']}/events", timeout=60)
    assert events[-1].event == "done", events
    final = msgspec.json.decode(events[-1].data)
    assert {k: final[k] for k in ("status", "matched", "done", "cancelled", "cancelling", "runs", "error")} == {
        "status": "done", "matched": 40, "done": 40, "cancelled": 40, "cancelling": 0, "runs": 1, "error": None}
    assert all(e.event == "operation" for e in events[:-1])
    assert [await status_of(client, job_id) for job_id in jobs] == ["cancelled"] * 40
    assert await status_of(client, late) == "pending" and await status_of(client, other) == "pending"
    # The same key again: the same operation, done; nothing runs twice. Another request under it: 409.
    again = await client.post("/api/jobs/cancel", params=query, headers={**ASYNC, "Idempotency-Key": "op-1"})
    assert again.status_code == 202 and again.json()["id"] == operation["id"] and again.json()["status"] == "done"
    reused = await client.post("/api/jobs/cancel", params={**query, "owner": "op-b"},
                               headers={**ASYNC, "Idempotency-Key": "op-1"})
    assert reused.status_code == 409, reused.text
    # Read back: one, the list, and the stream of a finished one (its end at once); an unknown one is 404.
    one = (await client.get(f"/api/operations/{operation['id']}")).json()
    assert one["status"] == "done" and one["links"]["events"] == f"/api/operations/{operation['id']}/events"
    assert operation["id"] in [op["id"] for op in (await client.get("/api/operations")).json()]
    assert [e.event for e in await read_sse(client, f"/api/operations/{operation['id']}/events")] == ["done"]
    assert (await client.get("/api/operations/op-nothing")).status_code == 404
    assert (await client.get("/api/operations/op-nothing/events")).status_code == 404
    await client.post("/api/queues/demo/resume")
    await ends(client, [late, other])


async def test_a_conductor_goes_on_where_the_one_that_went_away_stopped(
        stack: Stack, client: httpx.AsyncClient, js: JetStreamContext) -> None:
    jobs = await pending_jobs(client, "op-resume", 20)
    await eventually(lambda: _listed(client, "op-resume", 20), what="the jobs in history")
    for job_id in jobs[:8]:  # what the first conductor did before it died
        assert (await client.post(f"/api/jobs/{job_id}/cancel")).status_code == 202
    names = stack.names
    now = time.time()
    record = BulkOperation(id="op-resumed", action="cancel", created_at=now, updated_at=now, status="running",
                           filter=JobFilter(statuses=["pending"], owners=["op-resume"], created_before=now),
                           matched=20, done=8, cancelled=8, runs=1)
    kv = await key_value(js, operations_bucket_config(names, 1, 3600))
    await kv.put(record.id, encoder.encode(record))
    await js.publish(names.operation(record.id), encoder.encode(record), headers={"Nats-Msg-Id": record.id})
    async with conductor(stack):
        events = await read_sse(client, f"/api/operations/{record.id}/events", timeout=60)
    final = msgspec.json.decode(events[-1].data)
    assert events[-1].event == "done" and (final["matched"], final["done"], final["cancelled"], final["runs"]) == \
        (20, 20, 20, 2), final
    assert [await status_of(client, job_id) for job_id in jobs] == ["cancelled"] * 20
    await client.post("/api/queues/demo/resume")


async def test_a_stored_delete_and_the_bound_on_an_operation(stack: Stack, client: httpx.AsyncClient,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    await client.post("/api/queues/demo/resume")
    quick = {"type": "demo", "params": {"steps": ["S"], "step_seconds": 0.01, "ticks_per_step": 1}, "owner": "op-del"}
    made = (await client.post("/api/batches", json={"jobs": [quick] * 6})).json()["jobs"]
    await ends(client, made)
    await eventually(lambda: _listed(client, "op-del", 6, "completed"), what="the ended jobs in history")
    monkeypatch.setattr("jobline.jobs.bulk.MAX_BULK", 5)
    refused = await client.post("/api/jobs/delete", params={"status": "completed", "owner": "op-del"}, headers=ASYNC)
    assert refused.status_code == 422 and refused.json()["matched"] == 5, refused.text
    assert (await client.get("/api/operations")).json() == []  # nothing stored
    monkeypatch.setattr("jobline.jobs.bulk.MAX_BULK", 10_000)
    started = await client.post("/api/jobs/delete", params={"status": "completed", "owner": "op-del"}, headers=ASYNC)
    assert started.status_code == 202, started.text
    async with conductor(stack):
        events = await read_sse(client, started.headers["location"] + "/events", timeout=60)
    final = msgspec.json.decode(events[-1].data)
    assert events[-1].event == "done" and (final["matched"], final["deleted"]) == (6, 6), final
    for job_id in made:
        assert (await client.get(f"/api/jobs/{job_id}")).status_code == 404


async def _listed(client: httpx.AsyncClient, owner: str, count: int, status: str = "pending") -> bool:
    page = (await client.get("/api/jobs", params={"owner": owner, "status": status, "limit": 100})).json()
    return len(page["jobs"]) == count


async def test_the_client_and_the_cli_start_and_follow_an_operation(stack: Stack, client: httpx.AsyncClient) -> None:
    jobs = await pending_jobs(client, "op-cli", 6)
    await eventually(lambda: _listed(client, "op-cli", 6), what="the jobs in history")

    async def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "jobline.cli.main", *args, "--url",
                                                        stack.url], capture_output=True, text=True, timeout=60)

    async with conductor(stack), AsyncClient(stack.url) as api:
        detached = await cli("cancel", "--status", "pending", "--owner", "op-cli", "--detach", "--json")
        assert detached.returncode == 0, detached.stderr
        operation = json.loads(detached.stdout)
        followed = await cli("operation", operation["id"])
        assert followed.returncode == 0, followed.stderr
        said = " ".join(followed.stdout.split())  # (the console wraps long lines)
        assert f"operation {operation['id']} (cancel): done, 6 of 6 done: 6 cancelled" in said, said
        assert [await status_of(client, job_id) for job_id in jobs] == ["cancelled"] * 6
        listed = await cli("operations")
        assert operation["id"] in "".join(listed.stdout.split())
        # The client: started (its own Idempotency-Key: the same call retried is the same operation), followed.
        seen: list[tuple[int, int]] = []
        started = await api.start_cancel_matching("pending", owner="op-cli", idempotency_key="cli-again")
        assert (await api.start_cancel_matching("pending", owner="op-cli", idempotency_key="cli-again"))["id"] == \
            started["id"]
        final = await api.wait_operation(started["id"], on_progress=lambda done, matched: seen.append((done, matched)))
        assert final["status"] == "done" and final["matched"] == 0 and (await api.operation(started["id"]))["done"] == 0
        assert seen[-1] == (0, 0)  # (nothing left to cancel: the CLI's operation did it all)
        assert started["id"] in [op["id"] for op in await api.operations()]
