"""Bulk retry (`POST /api/jobs/retry`): after a fix, every failed job a filter matches runs again as a
new job linked to the old, in one batch; a dry run only counts; the same request twice makes nothing
twice, and a job retried once is not retried again by another request."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest

from jobline.processor import JobContext
from jobline.processor.registry import Registry

from .helpers import Stack, read_sse

registry = Registry()
FIXED = {"codec": False}  # the "deploy" that fixes the codec (the processor runs in this process)


@registry.task("transcode", max_attempts=1)
async def transcode(ctx: JobContext) -> dict[str, Any]:
    if not FIXED["codec"]:
        raise RuntimeError("codec h265 not supported")
    return {"height": ctx.params.get("height")}


@registry.task("thumbnail", max_attempts=1)
async def thumbnail(ctx: JobContext) -> None:
    raise RuntimeError("no frames")


STACK: dict[str, Any] = dict(registry=registry, with_logsink=False, with_conductor=False)


async def ended(client: httpx.AsyncClient, job_id: str) -> str:
    events = await read_sse(client, f"/api/jobs/{job_id}/events")
    last = events[-1]
    return str(msgspec.json.decode(last.data)["job"]["status"]) if last.event == "snapshot" else last.event


async def submitted(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    answer = await client.post("/api/jobs", json=body)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


@pytest.mark.slow
async def test_failed_jobs_run_again_once_as_new_jobs_linked_to_the_old(stack: Stack, client: httpx.AsyncClient) -> None:
    FIXED["codec"] = False
    failed = [await submitted(client, {"type": "transcode", "params": {"height": h}, "owner": "acme", "tags": ["web"],
                                       "priority": 3}) for h in (240, 360, 480)]
    other = await submitted(client, {"type": "thumbnail"})
    for job_id in (*failed, other):
        assert await ended(client, job_id) == "failed"

    dry = await client.post("/api/jobs/retry?status=failed&type=transcode&dry_run=true")
    assert dry.status_code == 200, dry.text
    assert dry.json()["matched"] == 3 and dry.json()["batch"] is None and set(dry.json()["retried"]) == set(failed)
    assert (await client.get(f"/api/jobs/{failed[0]}")).json()["status"] == "failed"  # (nothing changed)

    FIXED["codec"] = True
    answer = await client.post("/api/jobs/retry?status=failed&type=transcode")
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["matched"] == 3 and body["created"] == 3 and body["retried"] == failed  # oldest first
    assert answer.headers["Location"] == f"/api/batches/{body['batch']}"
    for old, new in zip(body["retried"], body["jobs"], strict=True):
        assert await ended(client, new) == "completed"
        state = (await client.get(f"/api/jobs/{new}")).json()
        old_state = (await client.get(f"/api/jobs/{old}")).json()
        assert state["retry_of"] == old and state["batch"] == body["batch"]
        assert (state["params"], state["owner"], state["tags"], state["priority"]) == \
            (old_state["params"], "acme", ["web"], 3)
        assert old_state["status"] == "failed"  # its timeline is final: a new job ran it again
    batch = (await client.get(f"/api/batches/{body['batch']}")).json()
    assert batch["counts"].get("completed") == 3

    # The same request again: the same batch, nothing new.
    again = await client.post("/api/jobs/retry?status=failed&type=transcode")
    assert again.status_code == 202 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["batch"] == body["batch"] and again.json()["jobs"] == body["jobs"]
    # Another request that matches them too retries only what was never retried.
    wider = await client.post("/api/jobs/retry?status=failed")
    assert wider.status_code == 202, wider.text
    made = dict(zip(wider.json()["retried"], wider.json()["jobs"], strict=True))
    assert [made[old] for old in failed] == body["jobs"]  # (the earlier retries, not new jobs)
    assert wider.json()["created"] == 1 and made[other] not in body["jobs"]
    assert await ended(client, made[other]) == "failed"

    # Refused: live statuses, no status, a bad filter.
    for query, code in (("status=pending", 422), ("status=failed,running", 422), ("", 400), ("status=failed&tag=a+b", 400)):
        refused = await client.post(f"/api/jobs/retry?{query}")
        assert refused.status_code == code, (query, refused.text)
    nothing = await client.post("/api/jobs/retry?status=expired")
    assert nothing.status_code == 200 and nothing.json()["matched"] == 0 and nothing.json()["batch"] is None


@pytest.mark.slow
async def test_the_cli_and_the_client_retry_by_filter(stack: Stack, client: httpx.AsyncClient) -> None:
    import asyncio
    import subprocess
    import sys

    from jobline.client import AsyncClient

    FIXED["codec"] = False
    failed = [await submitted(client, {"type": "transcode", "params": {"height": h}, "tags": ["cli"]}) for h in (1, 2)]
    for job_id in failed:
        assert await ended(client, job_id) == "failed"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "jobline.cli.main", *args, "--url", stack.url],
                              capture_output=True, text=True, timeout=60)

    dry = await asyncio.to_thread(cli, "retry", "--status", "failed", "--tag", "cli", "--dry-run")
    assert dry.returncode == 0 and "2 job(s) would run again" in dry.stdout, dry.stdout + dry.stderr
    missing = await asyncio.to_thread(cli, "retry", "--tag", "cli")
    assert missing.returncode == 2 and "--status" in missing.stderr
    FIXED["codec"] = True
    async with AsyncClient(stack.url) as jobline:
        done = await jobline.retry_matching("failed", tag="cli")
        assert done["created"] == 2 and [(await jobline.get(j)).retry_of for j in done["jobs"]] == failed
        for job_id in done["jobs"]:
            assert (await jobline.wait(job_id, timeout=20)).status == "completed"
    again = await asyncio.to_thread(cli, "retry", "--status", "failed", "--tag", "cli", "--json")
    assert again.returncode == 0, again.stderr
    assert msgspec.json.decode(again.stdout)["created"] == 0 and msgspec.json.decode(again.stdout)["jobs"] == done["jobs"]
