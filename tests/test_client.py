"""The Python client (`jobline.client`) against the real stack."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext

from jobline.client import ApiError, AsyncClient, Client, JobCancelled, JobFailed, QueueView, ScheduleView, Snapshot, Unreachable
from jobline.client.events import JobCompleted, JobCreated, LogLineWritten, ProgressReported
from jobline.contract.names import Names
from jobline.runtime.embedded_nats import EmbeddedNats

from .helpers import Stack, eventually, wait_for_job_type
from .processes import System, free_port

FAST = {"step_seconds": 0.05, "ticks_per_step": 2}
STACK: dict[str, Any] = dict(with_logsink=True)


@pytest.fixture
async def jobline(stack: Stack, js: JetStreamContext) -> Any:
    await wait_for_job_type(js, stack.names, "demo")
    async with AsyncClient(stack.url, retries=3) as client:
        yield client


async def test_submit_watch_and_wait_with_typed_events(jobline: AsyncClient, tmp_path: Path) -> None:
    job = await jobline.submit("demo", {**FAST, "steps": ["A", "B"]}, priority=3)
    events = [event async for event in job.watch()]
    assert isinstance(events[0], Snapshot)
    assert isinstance(events[-1], JobCompleted) and events[-1].result == {"steps": 2, "ok": True}
    assert any(isinstance(e, ProgressReported) for e in events) and any(isinstance(e, LogLineWritten) for e in events)
    assert job.state is not None and job.state.status == "completed" and job.state.progress == 1
    assert job.state.priority == 3
    assert [s.status for s in job.state.steps] == ["done", "done"]
    final = await jobline.wait(job.id, timeout=10)
    assert final.result == {"steps": 2, "ok": True}
    # What watch folded equals what the gateway says, and the timeline holds what watch saw.
    assert (await jobline.get(job.id)).status == "completed"
    timeline = await job.timeline()
    assert isinstance(timeline[0][1], JobCreated) and timeline[-1][1] == events[-1]
    expected = ["A: started", "A: finished", "B: started", "B: finished"]

    async def stored() -> bool:  # the logsink's store follows the stream: it may be a moment behind
        return [line.message for line in await job.logs()] == expected

    await eventually(stored, what="the job's log lines in the logsink's store")
    assert job.id in [state.id async for state in jobline.list(status="completed", type="demo", page_size=1)]


async def test_typed_errors_for_failed_cancelled_and_timed_out(jobline: AsyncClient) -> None:
    failing = await jobline.submit("demo", {**FAST, "fail_at_step": "Processing"}, max_attempts=1)
    with pytest.raises(JobFailed) as failed:
        await failing.wait(timeout=20)
    assert failed.value.state.status == "failed" and "Processing" in (failed.value.state.error or "")
    slow = await jobline.submit("demo", {"step_seconds": 30})
    with pytest.raises(TimeoutError):
        await slow.wait(timeout=0.5)  # the job goes on
    assert slow.state is not None and slow.state.status in ("pending", "running")  # what the watch saw so far
    await slow.cancel()
    with pytest.raises(JobCancelled):
        await slow.wait(timeout=20)
    timed_out = await jobline.submit("demo", {"step_seconds": 30}, timeout_s=0.5, max_attempts=1)
    with pytest.raises(JobFailed) as failed:
        await timed_out.wait(timeout=20)
    assert failed.value.state.error_reason == "timeout"


class CutAfterSubmit(httpx.AsyncBaseTransport):
    """Delivers the first submission to the gateway, then loses its answer (a cut connection)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.cut = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path == "/api/jobs" and not self.cut:
            self.cut += 1
            await response.aread()
            raise httpx.ReadError("connection cut before the answer arrived", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class CountRefused(httpx.AsyncBaseTransport):
    """Counts the requests that found no gateway listening."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self.inner.handle_async_request(request)
        except httpx.ConnectError:
            self.refused += 1
            raise

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_schedules_through_the_client(jobline: AsyncClient) -> None:
    made = await jobline.create_schedule("client-ticks", "* * * * * *", "demo", FAST, timeout_s=30)
    assert isinstance(made, ScheduleView) and made.job["timeout_s"] == 30 and made.next_runs
    with pytest.raises(ApiError) as taken:
        await jobline.create_schedule("client-ticks", "@daily", "demo")
    assert taken.value.status == 409

    async def ticked() -> bool:
        return (await jobline.schedule("client-ticks")).jobs_created >= 1

    await eventually(ticked, timeout=15, what="the schedule's first job")
    first = (await jobline.schedule("client-ticks")).recent_jobs[0]
    state = await jobline.wait(first, timeout=20)
    assert state.schedule == "client-ticks" and state.tick is not None
    assert (await jobline.pause_schedule("client-ticks")).paused
    assert [s.name for s in await jobline.schedules()] == ["client-ticks"]
    await jobline.delete_schedule("client-ticks")
    with pytest.raises(ApiError) as gone:
        await jobline.schedule("client-ticks")
    assert gone.value.status == 404


async def test_queue_controls_through_the_client(jobline: AsyncClient) -> None:
    paused = await jobline.pause_queue("demo")
    assert isinstance(paused, QueueView) and paused.paused
    job = await jobline.submit("demo", FAST)
    assert (await jobline.queue("demo")).waiting == 1
    assert not (await jobline.resume_queue("demo")).paused
    assert (await job.wait(timeout=20)).status == "completed"
    limited = await jobline.set_queue_limits("demo", concurrency=3, rate_max=50)
    assert (limited.concurrency, limited.rate_max, limited.rate_window_s) == (3, 50, 1.0)
    assert (await jobline.set_queue_limits("demo", rate_max=None)).concurrency == 3  # the rest kept
    assert {q.type for q in await jobline.queues()} >= {"demo", "noop"}
    with pytest.raises(ApiError) as refused:
        await jobline.set_queue_limits("demo", concurrency=0)
    assert refused.value.status == 422
    with pytest.raises(TypeError):
        await jobline.set_queue_limits("demo", speed=1)


async def test_batches_through_the_client(jobline: AsyncClient) -> None:
    accepted = await jobline.submit_batch([{"type": "demo", "params": FAST}] * 5, idempotency_key="client-batch")
    again = await jobline.submit_batch([{"type": "demo", "params": FAST}] * 5, idempotency_key="client-batch")
    assert again.id == accepted.id and len(accepted.jobs) == 5
    kinds = [event.kind async for event in jobline.watch_batch(accepted.id)]
    assert kinds[0] == "snapshot" and kinds[-1] == "batch_completed"
    assert (await jobline.batch(accepted.id)).counts == {"completed": 5}
    with pytest.raises(ApiError) as refused:
        await jobline.submit_batch([{"type": "demo"}, {"type": "no-such-type"}])
    assert refused.value.status == 422 and refused.value.problem["index"] == 1


async def test_flows_through_the_client(jobline: AsyncClient) -> None:
    flow = {"job": {"type": "gather"}, "children": [{"name": "a", "job": {"type": "demo", "params": FAST}},
                                                    {"name": "b", "job": {"type": "demo", "params": FAST}, "depends_on": ["a"]}]}
    accepted = await jobline.submit_flow(flow)
    final = await jobline.wait(accepted.id, timeout=30)
    assert final.status == "completed" and set(final.result) == {"a", "b"}
    tree = await jobline.flow(accepted.id)
    assert tree.rollup == 1.0 and [c.status for c in tree.children] == ["completed", "completed"]
    with pytest.raises(ApiError) as refused:
        await jobline.submit_flow({"job": {"type": "gather"}, "children": [{"job": {"type": "demo"}, "depends_on": ["x"]}]})
    assert refused.value.status == 422 and refused.value.problem["errors"][0]["key"] == "children[0].depends_on"


async def test_a_submission_retried_after_a_cut_connection_creates_one_job(stack: Stack, js: JetStreamContext) -> None:
    await wait_for_job_type(js, stack.names, "demo")
    transport = CutAfterSubmit()
    async with AsyncClient(stack.url, transport=transport) as jobline:
        job = await jobline.submit("demo", {**FAST, "steps": ["only-once"]})
        assert transport.cut == 1
        await job.wait(timeout=20)
        matching = [s async for s in jobline.list(type="demo", params={"steps": ["only-once"]})]
    assert [s.id for s in matching] == [job.id]


async def test_the_sync_client_and_refused_connections(stack: Stack, js: JetStreamContext) -> None:
    await wait_for_job_type(js, stack.names, "demo")

    def use() -> tuple[str, Any]:
        with Client(stack.url) as client:
            job = client.submit("demo", FAST)
            kinds = [type(e).__name__ for e in job.watch()]
            return kinds[-1], job.wait(5).result

    assert await asyncio.to_thread(use) == ("JobCompleted", {"steps": 3, "ok": True})
    nobody = f"http://127.0.0.1:{free_port()}"

    def refused() -> None:
        with Client(nobody, retries=2) as client:
            client.submit("demo")

    with pytest.raises(Unreachable):
        await asyncio.to_thread(refused)


@pytest.mark.slow
async def test_watch_survives_a_gateway_restart_and_yields_exactly_the_timeline(
        nats_server: EmbeddedNats, names: Names, tmp_path: Path) -> None:
    port = free_port()
    system = System(nats_server.url, names, tmp_path, settings={"JOBLINE_PORT": str(port)})
    try:
        await system.start_all(history=True)
        transport = CountRefused()
        async with AsyncClient(system.url, transport=transport) as jobline:
            await jobline.request("GET", "/readyz")
            # Submitted while no gateway answers: the client waits for it and submits once.
            await system.processes["gateway"].stop()
            submitting = asyncio.create_task(jobline.submit("demo", {"step_seconds": 0.6, "ticks_per_step": 3}))

            async def refused() -> bool:
                return transport.refused > 0

            await eventually(refused, what="a submission refused while no gateway listens")
            await system.start("gateway")
            job = await submitting
            seen: list[tuple[int | None, str]] = []
            restarted = False
            async for event in job.watch():
                seen.append((job.last_event_id, type(event).__name__))
                if not restarted and isinstance(event, ProgressReported):
                    restarted = True
                    await system.processes["gateway"].stop(signal.SIGTERM)
                    await system.start("gateway")
            assert restarted and seen[-1][1] == "JobCompleted"
            timeline = await job.timeline()
            snapshot_seq = seen[0][0]
            assert snapshot_seq is not None
            # After the snapshot: every stored event exactly once, in order, across the restart.
            assert [seq for seq, _ in seen[1:]] == [seq for seq, _ in timeline if seq > snapshot_seq]
            assert len([s async for s in jobline.list(type="demo")]) == 1
    finally:
        await system.stop()
