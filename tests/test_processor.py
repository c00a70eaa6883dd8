"""The processor's handler API: coalesced progress, plain functions, failures, one end per job."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
from nats.js import JetStreamContext

from jobline.contract.events import JobStarted, ProgressReported
from jobline.processor import JobContext, PermanentError
from jobline.processor.registry import Registry

from .helpers import Stack, outcome, read_sse, submit
from .oracle import check_timeline, read_timeline

registry = Registry()
FLOOD_CALLS = 200_000


@registry.task("flood", steps=["Count"])
async def flood(ctx: JobContext) -> dict[str, int]:
    ctx.step("Count")
    began = time.monotonic()
    for i in range(1, FLOOD_CALLS + 1):
        ctx.progress(i, FLOOD_CALLS)
    return {"seconds_ms": int((time.monotonic() - began) * 1000)}


@registry.task("slow-flood", steps=["Count"])
async def slow_flood(ctx: JobContext) -> None:
    """Progress called constantly for ~1 s: the rate cap, not the call count, bounds the events."""
    import asyncio

    ctx.step("Count")
    deadline = time.monotonic() + 1.0
    n = 0
    while time.monotonic() < deadline:
        for _ in range(1000):
            n += 1
            ctx.progress(min(n / 2_000_000, 0.99))
        await asyncio.sleep(0)
    ctx.progress(1.0)


@registry.task("blocking", steps=["Sleep", "Wake"])
def blocking(ctx: JobContext) -> dict[str, bool]:
    """A plain function: runs in a worker thread, reports through the same context."""
    ctx.step("Sleep")
    ctx.log(f"in thread {threading.current_thread().name}")
    time.sleep(0.05)
    ctx.progress(0.5, message="halfway")
    ctx.step("Wake")
    ctx.progress(1.0)
    return {"main_thread": threading.current_thread() is threading.main_thread()}


@registry.task("permanent")
async def permanent(ctx: JobContext) -> None:
    raise PermanentError("the input is unusable")


@registry.task("bad-result")
async def bad_result(ctx: JobContext) -> object:
    return object()


# The services this module's tests run against (conftest.py's `stack`).
STACK: dict[str, Any] = dict(registry=registry, with_logsink=False,
                             processor={"progress_rate": 10.0})



async def test_a_burst_of_progress_calls_is_coalesced_and_keeps_the_final_value(
    client: httpx.AsyncClient, js: JetStreamContext, stack: Stack
) -> None:
    job_id = await submit(client, "flood")
    events = await read_sse(client, f"/api/jobs/{job_id}/events")
    assert outcome(events) == "completed"
    timeline = await read_timeline(js, stack.names, job_id)
    check_timeline(timeline)
    progress = [r.event for r in timeline if isinstance(r.event, ProgressReported)]
    assert 1 <= len(progress) <= 5, f"{len(progress)} progress events for {FLOOD_CALLS} calls"
    assert progress[-1].fraction == 1.0 and progress[-1].current == FLOOD_CALLS


async def test_progress_events_per_second_stay_under_the_rate(
    client: httpx.AsyncClient, js: JetStreamContext, stack: Stack
) -> None:
    job_id = await submit(client, "slow-flood")
    await read_sse(client, f"/api/jobs/{job_id}/events")
    timeline = await read_timeline(js, stack.names, job_id)
    check_timeline(timeline)
    progress = [r.event for r in timeline if isinstance(r.event, ProgressReported)]
    span = progress[-1].ts - progress[0].ts
    # 10/s over ~1 s, plus the final flush.
    assert len(progress) <= 10 * span + 3, f"{len(progress)} events in {span:.2f}s"
    assert len(progress) >= 5, "progress must keep flowing while the job runs"
    assert progress[-1].fraction == 1.0


async def test_plain_functions_run_off_the_event_loop_and_report_in_order(
    client: httpx.AsyncClient, js: JetStreamContext, stack: Stack
) -> None:
    job_id = await submit(client, "blocking")
    events = await read_sse(client, f"/api/jobs/{job_id}/events")
    assert outcome(events) == "completed"
    timeline = await read_timeline(js, stack.names, job_id)
    check_timeline(timeline)
    kinds = [r.kind for r in timeline]
    assert kinds == ["created", "started", "step_started", "logged", "progressed", "step_finished", "step_started",
                     "progressed", "step_finished", "completed"]
    assert timeline[-1].event.result == {"main_thread": False}  # type: ignore[union-attr]
    started = timeline[1].event
    assert isinstance(started, JobStarted) and started.steps == ["Sleep", "Wake"] and started.attempt == 1


async def test_permanent_errors_and_unstorable_results_fail_the_job(client: httpx.AsyncClient, js: JetStreamContext,
                                                                   stack: Stack) -> None:
    first = await submit(client, "permanent")
    second = await submit(client, "bad-result")
    for job_id in (first, second):
        events = await read_sse(client, f"/api/jobs/{job_id}/events")
        assert outcome(events) == "failed"
        check_timeline(await read_timeline(js, stack.names, job_id))
    assert (await client.get(f"/api/jobs/{first}")).json()["error"] == "the input is unusable"
    assert "TypeError" in (await client.get(f"/api/jobs/{second}")).json()["error"]
