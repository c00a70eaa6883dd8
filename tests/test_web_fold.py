"""The browser folds a job's events as the services do: recorded timelines of every kind of job
(steps and progress, logs, an artifact, retries, a delay, a cancel, an expiry, children spawned, a
flow's blocked jobs) go through web/jobstate.js in Chromium and through contract/job_state.py, and
every field of every state must match, with what each event's fold answered (applied or ignored)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from nats.js import JetStreamContext

from jobline.contract.events import JobEvent, JobSignalled, JobStarted, ProgressReported, WebhookAttempted
from jobline.contract.job_state import JobState, apply, start_state
from jobline.processor import JobContext
from jobline.processor.registry import Registry

from .browser import chromium
from .helpers import Stack, eventually, read_sse
from .oracle import read_timeline

pytestmark = pytest.mark.slow

registry = Registry()


@registry.task("work", steps=["Fetch", "Render"])
async def work(ctx: JobContext) -> dict[str, Any]:
    for name in ("Fetch", "Render"):
        ctx.step(name)
        ctx.log(f"{name} begins")
        for tick in range(3):
            ctx.progress(tick + 1, 3, message=f"{name} {tick + 1}/3")
    path = ctx.workdir / "out.txt"
    path.write_text("made")
    await ctx.artifact("out.txt", Path(path))
    return {"ok": True, "at": 1.5}


@registry.task("flaky", retry_backoff_s=0.05, max_attempts=3)
async def flaky(ctx: JobContext) -> str:
    ctx.progress(0.5)
    if ctx.attempt < 2:
        raise ConnectionError(f"transient failure on attempt {ctx.attempt}")
    return "fine"


@registry.task("doomed", retry_backoff_s=0.05, max_attempts=2)
async def doomed(ctx: JobContext) -> None:
    raise RuntimeError("always")


@registry.task("slow", steps=["Wait"])
async def slow(ctx: JobContext) -> None:
    ctx.step("Wait")
    await ctx.wait_cancelled()


@registry.task("parent")
async def parent(ctx: JobContext) -> Any:
    if ctx.children:
        return {"children": len(ctx.children)}
    ctx.spawn("work", name="one")
    ctx.spawn("flaky", name="two")
    return ctx.wait_for_children()


@registry.task("approval")
async def approval(ctx: JobContext) -> Any:
    return await ctx.wait_for_signal("go", timeout_s=600)


STACK: dict[str, Any] = dict(registry=registry, with_logsink=False, processor={"concurrency": 2})

FOLD = """async (timelines) => {
  const { startJob, applyEvent } = await import("/jobstate.js");
  return timelines.map((timeline) => {
    let job = null;
    return timeline.map(([seq, event]) => {
      const applied = job === null ? (job = startJob(event, seq)) !== null : applyEvent(job, event, seq);
      return { applied, job: structuredClone(job) };
    });
  });
}"""


def python_fold(timeline: list[tuple[int, JobEvent]]) -> list[dict[str, Any]]:
    """After each event: whether it was applied, and the whole state."""
    state: JobState | None = None
    out = []
    for seq, event in timeline:
        if state is None:
            state = start_state(event, seq)
            applied = state is not None
        else:
            applied = apply(state, event, seq)
        out.append({"applied": applied, "job": msgspec.to_builtins(state)})
    return out


async def _ended(client: httpx.AsyncClient, job_id: str) -> None:
    await read_sse(client, f"/api/jobs/{job_id}/events")


async def _recorded_jobs(client: httpx.AsyncClient) -> list[str]:
    async def post(body: dict[str, Any]) -> str:
        answer = await client.post("/api/jobs", json=body)
        assert answer.status_code == 202, answer.text
        return str(answer.json()["id"])

    slow = await post({"type": "slow"})

    async def running() -> bool:
        return bool((await client.get(f"/api/jobs/{slow}")).json()["status"] == "running")

    await eventually(running, what="the slow job runs")
    assert (await client.post("/api/queues/slow/pause")).status_code == 200
    late = await post({"type": "slow", "queue_timeout_s": 0.2})  # expires: its queue is paused past its timeout
    ids = [await post({"type": "work", "priority": 3, "concurrency_key": "k", "owner": "u1", "tags": ["a", "b"]}),
           await post({"type": "flaky", "timeout_s": 30}),
           await post({"type": "doomed"}),
           await post({"type": "work", "delay_s": 1.5, "owner": "u2", "tags": ["later"]}),
           await post({"type": "parent", "owner": "u3", "tags": ["p"]})]
    waiting = await post({"type": "approval"})

    async def waits() -> bool:
        return bool((await client.get(f"/api/jobs/{waiting}")).json()["status"] == "waiting")

    await eventually(waits, what="the approval job waits for its signal")
    assert (await client.post(f"/api/jobs/{waiting}/signals/go", json={"ok": 1})).status_code == 202
    ids.append(waiting)
    flow = (await client.post("/api/flows", json={
        "job": {"type": "work"}, "children": [{"name": "a", "job": {"type": "work"}},
                                              {"name": "b", "job": {"type": "flaky"}, "depends_on": ["a"]}]}))
    assert flow.status_code == 202, flow.text
    flow_jobs = [job["id"] for job in flow.json()["jobs"]]
    for job_id in [*ids, *flow_jobs]:
        await _ended(client, job_id)
    assert (await client.post(f"/api/jobs/{slow}/cancel")).status_code in (200, 202)
    assert (await client.post("/api/queues/slow/resume")).status_code == 200
    for job_id in (slow, late):
        await _ended(client, job_id)
    children = [child["id"] for child in (await client.get(f"/api/jobs/{ids[-2]}")).json()["children"]]
    for child in children:  # a spawned child is its parent's owner's, with its tags
        state = (await client.get(f"/api/jobs/{child}")).json()
        assert (state["owner"], state["tags"]) == ("u3", ["p"]), state
    return [*ids, slow, late, *flow_jobs, *children]


async def test_the_browser_folds_every_timeline_as_the_services_do(
        client: httpx.AsyncClient, js: JetStreamContext, stack: Stack) -> None:
    timelines: list[list[tuple[int, JobEvent]]] = []
    for job_id in await _recorded_jobs(client):
        timelines.append([(r.seq, r.event) for r in await read_timeline(js, stack.names, job_id)])
    # What a live stream may also bring: a webhook's attempts after the end, an event seen twice (a
    # resumed stream), and one from an attempt superseded by a later one.
    first = timelines[0]
    last_seq = first[-1][0]
    timelines.append([*first, (last_seq + 1, WebhookAttempted(ts=1.0, job_id=first[0][1].job_id, attempt=1, url="https://x",
                                                              delivered=False, status=500, error="HTTP 500")),
                      (last_seq + 2, WebhookAttempted(ts=2.0, job_id=first[0][1].job_id, attempt=2, url="https://x",
                                                      delivered=True, status=204, final=True))])
    retried = timelines[1]
    timelines.append([*retried[:4], retried[2], *retried[4:]])
    second = next(i for i, (_, e) in enumerate(retried) if isinstance(e, JobStarted) and e.attempt == 2)
    stale = next(e for _, e in retried if isinstance(e, ProgressReported) and e.attempt == 1)
    events = [e for _, e in retried[:second + 1]] + [stale] + [e for _, e in retried[second + 1:]]
    timelines.append(list(enumerate(events, start=1)))
    signalled = next(t for t in timelines if any(isinstance(e, JobSignalled) for _, e in t))
    again = next(e for _, e in signalled if isinstance(e, JobSignalled))  # (a second message on a signal's subject)
    timelines.append(list(enumerate([*(e for _, e in signalled[:-1]), again, signalled[-1][1]], start=1)))
    kinds = {type(event).__name__ for timeline in timelines for _, event in timeline}
    assert {"JobScheduled", "JobBlocked", "JobSuspended", "JobRetrying", "JobFailed", "JobCancelled", "JobExpired",
            "ArtifactStored", "LogLineWritten", "StepFinished", "WebhookAttempted", "CancelRequested",
            "JobAwaitingSignal", "JobSignalled"} <= kinds, kinds
    wire = [[(seq, msgspec.to_builtins(event)) for seq, event in timeline] for timeline in timelines]
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(f"{stack.url}/")
        folded = await page.evaluate(FOLD, wire)
    for timeline, in_browser in zip(timelines, folded, strict=True):
        for (_, event), browser_step, step in zip(timeline, in_browser, python_fold(timeline), strict=True):
            what, job = (type(event).__name__, step["job"]["id"]), step["job"]
            assert browser_step["applied"] == step["applied"], what
            assert set(browser_step["job"]) == set(job), (what, set(browser_step["job"]) ^ set(job))
            for field, value in job.items():
                assert browser_step["job"][field] == value, (what, field, browser_step["job"][field], value)
