"""Deleting ended jobs from history, one or every one a filter matches, on SQLite and PostgreSQL: a dry
run counts; the jobs are then 404 everywhere (state, timeline, search) and no longer counted; a
repeated request deletes nothing twice; a live job is never deleted (409, and a filter of live
statuses matches nothing); the CLI and the client do the same."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext

from jobline.client import AsyncClient
from jobline.contract.names import Names
from jobline.runtime.embedded_nats import EmbeddedNats

from .helpers import Stack, eventually, read_sse, running_stack
from .test_queues import ends

pytestmark = pytest.mark.slow
FAILING = {"type": "demo", "params": {"steps": ["S"], "step_seconds": 0.01, "ticks_per_step": 1, "fail_at_step": "S"},
           "max_attempts": 1, "owner": "del-a"}
QUICK = {"type": "demo", "params": {"steps": ["S"], "step_seconds": 0.01, "ticks_per_step": 1}, "owner": "del-a"}


@pytest.fixture
async def stack(nats_server: EmbeddedNats, names: Names, data_dir: Path, js: JetStreamContext,
                database_url: str) -> AsyncIterator[Stack]:
    # (a gateway that keeps two jobs in memory: the others are looked up in the history service)
    async with running_stack(nats_server.url, names, data_dir, js, history={"database_url": database_url},
                             gateway={"recent_jobs": 2}, with_logsink=False) as running:
        yield running


async def submit(client: httpx.AsyncClient, spec: dict[str, Any]) -> str:
    answer = await client.post("/api/jobs", json=spec)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


async def gone(client: httpx.AsyncClient, job_id: str) -> bool:
    return (await client.get(f"/api/jobs/{job_id}")).status_code == 404


async def test_delete_every_failed_job_of_a_filter_from_history(stack: Stack, client: httpx.AsyncClient) -> None:
    failed = [await submit(client, FAILING) for _ in range(3)]
    other_owner = await submit(client, {**FAILING, "owner": "del-b"})
    completed = [await submit(client, QUICK) for _ in range(2)]
    running = await submit(client, {"type": "demo", "params": {"steps": ["S"], "step_seconds": 30}, "owner": "del-a"})
    await ends(client, [*failed, other_owner, *completed])

    async def counted() -> bool:
        return bool((await client.get("/api/stats/counts")).json()["by_status"].get("failed") == 4)

    await eventually(counted, what="the failures counted in history")
    dry = await client.post("/api/jobs/delete", params={"status": "failed", "owner": "del-a", "dry_run": "true"})
    assert dry.status_code == 200, dry.text
    assert dry.json() == {"matched": 3, "deleted": 0, "more": False, "dry_run": True}
    done = await client.post("/api/jobs/delete", params={"status": "failed", "owner": "del-a"})
    assert done.json() == {"matched": 3, "deleted": 3, "more": False, "dry_run": False}, done.text
    for job_id in failed:
        await eventually(partial(gone, client, job_id), what=f"{job_id} deleted")
        assert (await client.get(f"/api/jobs/{job_id}/timeline")).status_code == 404

    async def uncounted() -> bool:
        counts = (await client.get("/api/stats/counts")).json()
        return bool(counts["by_status"].get("failed") == 1)

    await eventually(uncounted, what="the deleted jobs no longer counted")
    by_owner = (await client.get("/api/stats/counts", params={"owner": "del-b"})).json()  # (counted from its jobs)
    assert by_owner["total"] == 1 and by_owner["by_status"]["failed"] == 1, by_owner
    listed = (await client.get("/api/jobs", params={"status": "failed"})).json()["jobs"]
    assert [job["id"] for job in listed] == [other_owner]
    again = await client.post("/api/jobs/delete", params={"status": "failed", "owner": "del-a"})
    assert again.json()["matched"] == 0  # nothing twice
    # A live job is never deleted: a filter of live statuses matches nothing, one by id is refused.
    live = await client.post("/api/jobs/delete", params={"status": "running,pending"})
    assert live.json()["matched"] == 0
    refused = await client.delete(f"/api/jobs/{running}")
    assert refused.status_code == 409 and refused.json()["title"] == "Job not ended", refused.text
    assert (await client.post(f"/api/jobs/{running}/cancel")).status_code == 202
    assert (await client.delete("/api/jobs/no-such-job")).status_code == 404
    # One by id, through the client library.
    async with AsyncClient(stack.url) as jobs:
        await jobs.delete(completed[0])
        await eventually(lambda: gone(client, completed[0]), what="the completed job deleted")
        counted_now = await jobs.delete_matching("completed", owner="del-a", dry_run=True)
        assert counted_now["matched"] == 1


async def test_the_cli_deletes_by_filter_and_by_id(stack: Stack, client: httpx.AsyncClient) -> None:
    jobs = [await submit(client, QUICK) for _ in range(2)]
    await ends(client, jobs)

    async def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "jobline.cli.main", *args],
                                       capture_output=True, text=True, timeout=60, env={**os.environ})

    async def in_history() -> bool:
        listed = (await client.get("/api/jobs", params={"status": "completed", "owner": "del-a"})).json()["jobs"]
        return len(listed) == 2

    await eventually(in_history, what="both jobs in history")
    counted = await cli("delete", "--url", stack.url, "--status", "completed", "--owner", "del-a", "--dry-run")
    assert counted.returncode == 0 and "2 would be deleted" in counted.stdout, (counted.stdout, counted.stderr)
    one = await cli("delete", "--url", stack.url, jobs[0])
    assert one.returncode == 0 and f"{jobs[0]}: deleted" in one.stdout, one.stderr
    await eventually(lambda: gone(client, jobs[0]), what="the first job deleted")
    rest = await cli("delete", "--url", stack.url, "--status", "completed", "--owner", "del-a")
    assert rest.returncode == 0 and "1 matched: 1 deleted" in rest.stdout, (rest.stdout, rest.stderr)
    assert "1 of 1 deleted" in rest.stderr, rest.stderr  # (its progress, as the gateway streamed it)
    await eventually(lambda: gone(client, jobs[1]), what="the second job deleted")


async def test_a_bulk_delete_or_cancel_asked_for_its_progress_streams_it(stack: Stack, client: httpx.AsyncClient) -> None:
    failed = [await submit(client, {**FAILING, "owner": "del-stream"}) for _ in range(4)]
    waiting = [await submit(client, {"type": "noop", "delay_s": 600, "owner": "del-stream"}) for _ in range(3)]
    await ends(client, failed)

    async def in_history() -> bool:
        listed = (await client.get("/api/jobs", params={"status": "failed", "owner": "del-stream"})).json()["jobs"]
        return len(listed) == 4

    await eventually(in_history, what="the failures in history")
    progress = {"Accept": "text/event-stream"}
    events = await read_sse(client, "/api/jobs/delete?status=failed&owner=del-stream", headers=progress, method="POST")
    kinds = [e.event for e in events]
    assert kinds[0] == "matched" and json.loads(events[0].data) == {"matched": 4, "more": False}, events
    assert kinds[-1] == "done" and json.loads(events[-1].data) == {"matched": 4, "deleted": 4, "more": False,
                                                                   "dry_run": False}
    counts = [json.loads(e.data)["done"] for e in events if e.event == "progress"]
    assert counts == sorted(counts) and counts[-1] == 4, counts  # (coalesced: how many frames is the pace's)
    for job_id in failed:
        await eventually(partial(gone, client, job_id), what=f"{job_id} deleted")
    # Cancel, the same way; asked again, it matches nothing (a repeated request does nothing twice).
    events = await read_sse(client, "/api/jobs/cancel?status=scheduled&owner=del-stream", headers=progress,
                            method="POST")
    assert json.loads(events[-1].data) == {"matched": 3, "cancelled": 3, "cancelling": 0, "more": False,
                                           "dry_run": False}, events
    for job_id in waiting:
        assert (await client.get(f"/api/jobs/{job_id}")).json()["status"] == "cancelled"
    # The client library, told to report progress: the same stream, as (done, matched) calls.
    more = [await submit(client, {"type": "noop", "delay_s": 600, "owner": "del-stream"}) for _ in range(2)]
    seen: list[tuple[int, int]] = []
    async with AsyncClient(stack.url) as jobs:
        done = await jobs.cancel_matching("scheduled", owner="del-stream", on_progress=lambda *p: seen.append(p))
    assert done["cancelled"] == 2 and seen[0] == (0, 2) and seen[-1] == (2, 2), (done, seen)
    assert [(await client.get(f"/api/jobs/{job_id}")).json()["status"] for job_id in more] == ["cancelled"] * 2
    again = await read_sse(client, "/api/jobs/cancel?status=scheduled&owner=del-stream", headers=progress,
                           method="POST")
    assert [e.event for e in again] == ["matched", "progress", "done"] and json.loads(again[-1].data)["matched"] == 0
    # A bad filter is refused before any stream starts, as without the header.
    bad = await client.post("/api/jobs/delete?status=failed&owner=not an owner", headers=progress)
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/problem+json")
