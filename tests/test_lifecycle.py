"""Timeouts, cancellation, retries, expiry and idempotency, each with the fault made real."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext

from jobline.contract.events import JobRetrying, JobStarted, LogLineWritten
from jobline.contract.names import Names
from jobline.processor import JobContext, PermanentError
from jobline.processor.registry import Registry
from jobline.runtime.embedded_nats import EmbeddedNats
from jobline.runtime.tasks import cancel_and_wait

from .helpers import TEST_RETENTION, Stack, outcome, read_sse, running_stack
from .oracle import check_timeline, read_timeline

registry = Registry()
CALLS: dict[str, int] = {}


@registry.task("sleeper", steps=["Sleep"])
async def sleeper(ctx: JobContext) -> None:
    """Starts a real child process and waits for it; cancel and timeout must kill it."""
    ctx.step("Sleep")
    (ctx.workdir / "partial.out").write_text("half-written")
    ctx.log(f"workdir {ctx.workdir}")
    await ctx.run_process([sys.executable, "-c", "import os, time; print(os.getpid(), flush=True); time.sleep(60)"],
                          on_line=lambda line: ctx.log(f"child pid {line}"))


@registry.task("flaky", retry_backoff_s=0.1, max_attempts=3)
async def flaky(ctx: JobContext) -> dict[str, int]:
    if ctx.attempt < 3:
        raise ConnectionError(f"transient failure on attempt {ctx.attempt}")
    return {"attempt": ctx.attempt}


@registry.task("poison", retry_backoff_s=0.05)
async def poison(ctx: JobContext) -> None:
    raise RuntimeError("this input always crashes the handler")


@registry.task("unfixable", retry_backoff_s=0.05)
async def unfixable(ctx: JobContext) -> None:
    raise PermanentError("the input is corrupt")


@registry.task("long", steps=["Work"])
async def long(ctx: JobContext) -> str:
    ctx.step("Work")
    for i in range(30):
        await asyncio.sleep(0.1)
        ctx.progress(i + 1, 30)
    return "done"


# The services this module's tests run against (conftest.py's `stack`).
STACK: dict[str, Any] = dict(registry=registry, with_logsink=False,
                             processor={"concurrency": 2, "ack_wait_s": 1.0})



async def post(client: httpx.AsyncClient, body: dict[str, object], key: str | None = None) -> httpx.Response:
    return await client.post("/api/jobs", json=body, headers={"Idempotency-Key": key} if key else {})


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def child_pid_and_workdir(js: JetStreamContext, names: Names, client: httpx.AsyncClient, job_id: str) -> tuple[int, Path]:
    """Follow the job's live events until it has logged its child's pid."""
    async with asyncio.timeout(10), client.stream("GET", f"/api/jobs/{job_id}/events") as response:
        async for line in response.aiter_lines():
            if "child pid" in line:
                break
    lines = [r.event.message for r in await read_timeline(js, names, job_id) if isinstance(r.event, LogLineWritten)]
    workdir = Path(next(m for m in lines if m.startswith("workdir ")).split(" ", 1)[1])
    pid = int(next(m for m in lines if m.startswith("child pid ")).rsplit(" ", 1)[1])
    return pid, workdir


async def test_a_timeout_kills_the_work_removes_partial_files_and_fails_the_job(
    client: httpx.AsyncClient, js: JetStreamContext, stack: Stack
) -> None:
    response = await post(client, {"type": "sleeper", "timeout_s": 1.5})
    job_id = response.json()["id"]
    pid, workdir = await child_pid_and_workdir(js, stack.names, client, job_id)
    assert pid_alive(pid) and workdir.is_dir()
    events = await read_sse(client, f"/api/jobs/{job_id}/events")
    assert outcome(events) == "failed"
    state = (await client.get(f"/api/jobs/{job_id}")).json()
    assert state["error_reason"] == "timeout" and "timed out after 1.5s" in state["error"]
    assert not pid_alive(pid), "the child process survived the timeout"
    assert not workdir.exists(), "partial files were left behind"
    check_timeline(await read_timeline(js, stack.names, job_id))


async def test_cancelling_a_running_job_stops_it_within_a_second(
    client: httpx.AsyncClient, js: JetStreamContext, stack: Stack
) -> None:
    job_id = (await post(client, {"type": "sleeper"})).json()["id"]
    pid, workdir = await child_pid_and_workdir(js, stack.names, client, job_id)
    loop = asyncio.get_running_loop()
    asked = loop.time()
    response = await client.post(f"/api/jobs/{job_id}/cancel")
    assert response.status_code == 202 and response.json()["status"] == "cancelling"
    events = await read_sse(client, f"/api/jobs/{job_id}/events")
    assert outcome(events) == "cancelled"
    assert loop.time() - asked < 1.0
    assert not pid_alive(pid) and not workdir.exists()
    timeline = await read_timeline(js, stack.names, job_id)
    check_timeline(timeline)
    assert [r.kind for r in timeline].count("cancel_requested") == 1
    again = await client.post(f"/api/jobs/{job_id}/cancel")
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")


async def test_a_pending_job_cancelled_before_it_starts_never_runs(
    client: httpx.AsyncClient, js: JetStreamContext, stack: Stack
) -> None:
    blockers = [(await post(client, {"type": "long"})).json()["id"] for _ in range(2)]  # both slots busy
    waiting = (await post(client, {"type": "long"})).json()["id"]
    response = await client.post(f"/api/jobs/{waiting}/cancel")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    assert outcome(await read_sse(client, f"/api/jobs/{waiting}/events")) == "cancelled"
    for blocker in blockers:
        assert outcome(await read_sse(client, f"/api/jobs/{blocker}/events")) == "completed"
    timeline = await read_timeline(js, stack.names, waiting)
    check_timeline(timeline)
    assert not any(isinstance(r.event, JobStarted) for r in timeline), "a cancelled pending job ran"


async def test_failures_are_retried_with_growing_backoff_and_permanent_ones_are_not(
    client: httpx.AsyncClient, js: JetStreamContext, stack: Stack
) -> None:
    job_id = (await post(client, {"type": "flaky"})).json()["id"]
    assert outcome(await read_sse(client, f"/api/jobs/{job_id}/events")) == "completed"
    timeline = await read_timeline(js, stack.names, job_id)
    check_timeline(timeline)
    assert [r.kind for r in timeline if r.subject.split(".")[-2] == "run"] == [
        "started", "retrying", "started", "retrying", "started", "completed"]
    retries = [r.event for r in timeline if isinstance(r.event, JobRetrying)]
    assert [(r.attempt, r.next_attempt) for r in retries] == [(1, 2), (2, 3)]
    assert 0.05 <= retries[0].delay_s <= 0.15 and 0.1 <= retries[1].delay_s <= 0.3
    assert "transient failure on attempt 1" in retries[0].error
    state = (await client.get(f"/api/jobs/{job_id}")).json()
    assert state["attempt"] == 3 and state["result"] == {"attempt": 3}

    permanent = (await post(client, {"type": "unfixable"})).json()["id"]
    assert outcome(await read_sse(client, f"/api/jobs/{permanent}/events")) == "failed"
    kinds = [r.kind for r in await read_timeline(js, stack.names, permanent)]
    assert "retrying" not in kinds and kinds.count("started") == 1


async def test_a_poison_job_fails_after_its_attempts_and_never_stays_running(
    client: httpx.AsyncClient, js: JetStreamContext, stack: Stack
) -> None:
    job_id = (await post(client, {"type": "poison", "max_attempts": 4})).json()["id"]
    assert outcome(await read_sse(client, f"/api/jobs/{job_id}/events")) == "failed"
    timeline = await read_timeline(js, stack.names, job_id)
    check_timeline(timeline)
    assert [r.event.attempt for r in timeline if isinstance(r.event, JobStarted)] == [1, 2, 3, 4]
    state = (await client.get(f"/api/jobs/{job_id}")).json()
    assert state["status"] == "failed" and state["attempt"] == 4 and "always crashes" in state["error"]


async def test_a_job_longer_than_the_ack_wait_is_not_redelivered_while_its_worker_lives(
    client: httpx.AsyncClient, js: JetStreamContext, stack: Stack
) -> None:
    # ack_wait is 1 s here and the job takes 3 s: in-progress acks keep it with its worker.
    job_id = (await post(client, {"type": "long"})).json()["id"]
    assert outcome(await read_sse(client, f"/api/jobs/{job_id}/events")) == "completed"
    timeline = await read_timeline(js, stack.names, job_id)
    check_timeline(timeline)
    assert [r.kind for r in timeline].count("started") == 1


async def test_a_job_pending_past_its_queue_timeout_expires_without_running(
    client: httpx.AsyncClient, js: JetStreamContext, stack: Stack
) -> None:
    blockers = [(await post(client, {"type": "long"})).json()["id"] for _ in range(2)]
    late = (await post(client, {"type": "long", "queue_timeout_s": 0.5})).json()["id"]
    assert outcome(await read_sse(client, f"/api/jobs/{late}/events")) == "expired"
    timeline = await read_timeline(js, stack.names, late)
    check_timeline(timeline)
    assert not any(isinstance(r.event, JobStarted) for r in timeline)
    for blocker in blockers:
        assert outcome(await read_sse(client, f"/api/jobs/{blocker}/events")) == "completed"


@pytest.mark.parametrize(("body", "field"), [
    ({"type": "long", "timeout_s": 0}, "timeout_s"),
    ({"type": "long", "timeout_s": 10**9}, "timeout_s"),
    ({"type": "long", "max_attempts": 0}, "max_attempts"),
    ({"type": "long", "queue_timeout_s": -1}, "queue_timeout_s"),
])
async def test_out_of_range_limits_are_refused(client: httpx.AsyncClient, body: dict[str, object], field: str) -> None:
    response = await post(client, body)
    assert response.status_code == 422 and response.json()["errors"][0]["key"] == field


async def test_one_idempotency_key_makes_one_job_even_under_50_concurrent_requests(
    client: httpx.AsyncClient, js: JetStreamContext, stack: Stack
) -> None:
    responses = await asyncio.gather(*(post(client, {"type": "flaky"}, key="order-42") for _ in range(50)))
    assert {r.status_code for r in responses} == {202}
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1
    job_id = ids.pop()
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 49
    other = await post(client, {"type": "flaky"}, key="order-43")
    assert other.json()["id"] != job_id
    assert outcome(await read_sse(client, f"/api/jobs/{job_id}/events")) == "completed"
    created = [r for r in await read_timeline(js, stack.names, job_id) if r.kind == "created"]
    assert len(created) == 1


async def test_an_idempotency_key_outlives_the_duplicate_window(
    nats_server: EmbeddedNats, names: Names, data_dir: Path, js: JetStreamContext
) -> None:
    short = replace(TEST_RETENTION, duplicate_window_s=0.5)
    async with running_stack(nats_server.url, names, data_dir, js, registry=registry, with_logsink=False,
                             retention=short) as stack, httpx.AsyncClient(base_url=stack.url, timeout=20) as client:
        first = (await post(client, {"type": "flaky"}, key="k")).json()["id"]
        assert (await js.stream_info(names.jobs_stream)).config.duplicate_window == 0.5
        await asyncio.sleep(1.0)  # the point of the test is time passing beyond the window
        again = await post(client, {"type": "flaky"}, key="k")
        assert again.json()["id"] == first and again.headers["idempotent-replayed"] == "true"
        assert len([r for r in await read_timeline(js, names, first) if r.kind == "created"]) == 1


async def test_a_task_that_loses_a_cancel_is_stopped_all_the_same() -> None:
    lost = 0

    async def stubborn() -> None:
        nonlocal lost
        while True:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                if lost:
                    raise
                lost += 1  # (as Python 3.11's asyncio.wait_for can: the cancel is lost, the loop goes on)

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)  # (one loop turn: it waits)
    await cancel_and_wait(task, bound_s=5)
    assert task.cancelled() and lost == 1


    deaf_until = asyncio.Event()

    async def deaf() -> None:  # (swallows every cancel: the bound holds)
        while not deaf_until.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await deaf_until.wait()

    forever = asyncio.create_task(deaf())
    await asyncio.sleep(0)
    await cancel_and_wait(forever, bound_s=0.5)
    assert not forever.done()  # left running, logged
    deaf_until.set()
    await forever
