"""Jobs that wait for a signal: the wait frees the worker's slot and the job is `waiting`; the signal
resumes it once (a second is 409) and the handler gets its payload; a signal sent before the wait is
kept; a wait's timeout resumes it with SignalTimeout; cancelling a waiting job ends it at once; the
built-in `review` type through the client and the CLI. Checked from the jobs' own timelines."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import httpx
from nats.js import JetStreamContext

from jobline.client import AsyncClient
from jobline.contract.names import Names
from jobline.processor import JobContext, SignalTimeout
from jobline.processor.builtin_tasks import ReviewParams, review
from jobline.processor.registry import Registry

from .helpers import Stack, eventually, read_sse
from .oracle import check_timeline, read_timeline

registry = Registry()
registry.task("review", params=ReviewParams, steps=["Prepare", "Review", "Publish"])(review)


@registry.task("gate")
async def gate(ctx: JobContext) -> dict[str, Any]:
    """Waits for `go` (and, when asked, for `later` too); a timeout is an answer, not a failure."""
    ctx.log(f"attempt {ctx.attempt} reached the wait")
    try:
        go = await ctx.wait_for_signal("go", timeout_s=ctx.params.get("timeout_s"))
    except SignalTimeout as timeout:
        return {"timed_out": timeout.name}
    later = await ctx.wait_for_signal("later") if ctx.params.get("twice") else None
    return {"go": go, "later": later, "attempt": ctx.attempt}


@registry.task("gate-sync")
def gate_sync(ctx: JobContext) -> dict[str, Any]:
    """The same in a plain function (it runs in a thread): no `await`."""
    return {"go": ctx.wait_for_signal("go"), "attempt": ctx.attempt}


@registry.task("hold")
async def hold(ctx: JobContext) -> str:
    return "held"


STACK: dict[str, Any] = dict(with_logsink=False, registry=registry, processor={"concurrency": 1})


async def jobline_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "jobline.cli.main", *args],
                                   capture_output=True, text=True, timeout=60, env={**os.environ})


async def submit(client: httpx.AsyncClient, spec: dict[str, Any]) -> str:
    answer = await client.post("/api/jobs", json=spec)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


async def state_of(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    answer = await client.get(f"/api/jobs/{job_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def until_status(client: httpx.AsyncClient, job_id: str, status: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def reached() -> bool:
        found.update(await state_of(client, job_id))
        return found["status"] == status

    await eventually(reached, timeout=20, what=f"job {job_id} {status}")
    return found


async def ended(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    await read_sse(client, f"/api/jobs/{job_id}/events", timeout=30)
    return await state_of(client, job_id)


async def test_a_wait_frees_its_slot_and_one_signal_resumes_it(stack: Stack, client: httpx.AsyncClient,
                                                                js: JetStreamContext, names: Names) -> None:
    job_id = await submit(client, {"type": "gate"})
    waiting = await until_status(client, job_id, "waiting")
    assert waiting["awaiting_signal"] == "go" and waiting["signal_timeout_at"] is None
    # The processor runs one job at a time: another job runs while this one waits.
    other = await submit(client, {"type": "hold"})
    assert (await ended(client, other))["result"] == "held"
    sent = await client.post(f"/api/jobs/{job_id}/signals/go", json={"approved": True, "by": "ana"})
    assert sent.status_code == 202, sent.text
    assert sent.json()["resumes"] is True and sent.json()["name"] == "go"
    again = await client.post(f"/api/jobs/{job_id}/signals/go", json={"approved": False})
    assert again.status_code == 409 and again.json()["title"] == "Signal already sent", again.text
    done = await ended(client, job_id)
    assert done["status"] == "completed", done
    assert done["result"] == {"go": {"approved": True, "by": "ana"}, "later": None, "attempt": 2}
    assert [s["name"] for s in done["signals"]] == ["go"] and done["awaiting_signal"] is None
    assert done["resumes"] == 1
    timeline = await read_timeline(js, names, job_id)
    check_timeline(timeline)
    kinds = [r.kind for r in timeline if r.kind not in ("logged", "step_started", "step_finished", "progressed")]
    assert kinds == ["created", "started", "awaiting_signal", "signalled", "created", "started", "completed"], kinds
    late = await client.post(f"/api/jobs/{job_id}/signals/later", content=b"")
    assert late.status_code == 409 and late.json()["title"] == "Job already ended", late.text


async def test_a_plain_function_waits_for_a_signal_too(stack: Stack, client: httpx.AsyncClient) -> None:
    job_id = await submit(client, {"type": "gate-sync"})
    await until_status(client, job_id, "waiting")
    assert (await client.post(f"/api/jobs/{job_id}/signals/go", json={"n": 1})).status_code == 202
    assert (await ended(client, job_id))["result"] == {"go": {"n": 1}, "attempt": 2}


async def test_a_signal_sent_before_the_wait_is_kept(stack: Stack, client: httpx.AsyncClient,
                                                     js: JetStreamContext, names: Names) -> None:
    job_id = await submit(client, {"type": "gate", "params": {"twice": True}})
    await until_status(client, job_id, "waiting")
    # `later` is sent while the job waits for `go`: it resumes nothing, and the second wait finds it.
    kept = await client.post(f"/api/jobs/{job_id}/signals/later", json=[1, 2, 3])
    assert kept.status_code == 202 and kept.json()["resumes"] is False, kept.text
    assert (await state_of(client, job_id))["status"] == "waiting"
    go = await client.post(f"/api/jobs/{job_id}/signals/go")  # no body: the payload is null
    assert go.status_code == 202, go.text
    done = await ended(client, job_id)
    assert done["result"] == {"go": None, "later": [1, 2, 3], "attempt": 2}, done
    check_timeline(await read_timeline(js, names, job_id))


async def test_a_wait_times_out_and_the_handler_sees_it(stack: Stack, client: httpx.AsyncClient,
                                                         js: JetStreamContext, names: Names) -> None:
    job_id = await submit(client, {"type": "gate", "params": {"timeout_s": 1}})
    waiting = await until_status(client, job_id, "waiting")
    assert waiting["signal_timeout_at"] is not None
    done = await ended(client, job_id)  # the broker fires the timeout (whole seconds)
    assert done["result"] == {"timed_out": "go"}, done
    assert done["signals"][0]["timed_out"] is True
    assert done["signals"][0]["at"] >= waiting["signal_timeout_at"]
    refused = await client.post(f"/api/jobs/{job_id}/signals/go", json=True)
    assert refused.status_code == 409
    check_timeline(await read_timeline(js, names, job_id))


async def test_cancelling_a_waiting_job_ends_it_at_once(stack: Stack, client: httpx.AsyncClient) -> None:
    job_id = await submit(client, {"type": "gate", "params": {"timeout_s": 3600}})
    await until_status(client, job_id, "waiting")
    answer = await client.post(f"/api/jobs/{job_id}/cancel")
    assert answer.status_code == 202 and answer.json()["status"] == "cancelled", answer.text
    assert (await state_of(client, job_id))["status"] == "cancelled"


async def test_bad_signals_are_refused(stack: Stack, client: httpx.AsyncClient) -> None:
    missing = await client.post("/api/jobs/no-such-job/signals/go", json=1)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
    job_id = await submit(client, {"type": "gate"})
    bad_name = await client.post(f"/api/jobs/{job_id}/signals/a.b", json=1)
    assert bad_name.status_code == 400, bad_name.text
    not_json = await client.post(f"/api/jobs/{job_id}/signals/go", content=b"{nope",
                                 headers={"content-type": "application/json"})
    assert not_json.status_code == 400 and "JSON" in not_json.json()["detail"]
    too_big = await client.post(f"/api/jobs/{job_id}/signals/go", json={"x": "y" * 70_000})
    assert too_big.status_code == 413
    # Nothing of these was stored: the job still waits for `go`, which still works.
    await until_status(client, job_id, "waiting")
    assert (await client.post(f"/api/jobs/{job_id}/signals/go", json="ok")).status_code == 202
    assert (await ended(client, job_id))["result"]["go"] == "ok"


async def test_review_through_the_client_and_the_cli(stack: Stack, client: httpx.AsyncClient) -> None:
    async with AsyncClient(stack.url) as jobs:
        job = await jobs.submit("review", {"title": "clip", "prepare_seconds": 0.05})
        approved = job.id
        await until_status(client, approved, "waiting")
        assert (await job.signal("approval", {"approved": True, "note": "fine"}))["resumes"] is True
        rejected = (await jobs.submit("review", {"prepare_seconds": 0.05})).id
        await until_status(client, rejected, "waiting")
    cli = await jobline_cli("signal", "--url", stack.url, rejected, "approval",
                            "--data", json.dumps({"approved": False, "note": "too dark"}))
    assert cli.returncode == 0, cli.stderr
    assert "resumes now" in cli.stdout, cli.stdout
    done = await ended(client, approved)
    assert done["result"] == {"published": True, "title": "clip", "note": "fine"}, done
    failed = await ended(client, rejected)
    assert failed["status"] == "failed" and failed["error"] == "rejected by the reviewer: too dark", failed
    again = await jobline_cli("signal", "--url", stack.url, rejected, "approval")
    assert again.returncode != 0 and "ended" in again.stderr, (again.stdout, again.stderr)
