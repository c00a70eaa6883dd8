"""Whole-system faults on one NATS node, every service a real process: nats-server restarted under
running jobs and SSE clients, the logsink down (20 s of 500 lines a second) or killed between its write and its ack,
and a job flooding progress."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from jobline.contract.names import Names
from jobline.logsink.sink import to_row as delivered_to_row
from jobline.logsink.store import LogStore
from jobline.runtime.embedded_nats import EmbeddedNats, start_nats_server
from jobline.runtime.stream_writer import Delivered

from .helpers import eventually, outcome, read_sse
from .oracle import check_timeline, read_timeline
from .processes import System, free_port, restart_nats
from .whole_system import Watcher, check_job, log_lines_of, stored_log_lines, submit_until_accepted

pytestmark = pytest.mark.slow

TASKS = '''
import asyncio
from jobline.processor import JobContext, task

@task("chatty", description="Logs `rate` lines per second for `seconds`.")
async def chatty(ctx: JobContext) -> dict:
    rate, seconds = int(ctx.params.get("rate", 100)), float(ctx.params.get("seconds", 5))
    loop = asyncio.get_running_loop()
    began, n = loop.time(), 0
    while loop.time() - began < seconds:
        for _ in range(rate // 20):
            n += 1
            ctx.log(f"line {n}")
        await asyncio.sleep(0.05)
    return {"lines": n}

@task("flood", description="Calls progress() `rate` times per second for `seconds`.")
async def flood(ctx: JobContext) -> dict:
    rate, seconds = int(ctx.params.get("rate", 10000)), float(ctx.params.get("seconds", 30))
    loop = asyncio.get_running_loop()
    began, calls = loop.time(), 0
    total = rate * seconds
    while loop.time() - began < seconds:
        for _ in range(rate // 100):
            calls += 1
            ctx.progress(min(calls, total), total)
        if calls % rate < rate // 100:
            ctx.log(f"{calls} progress calls")
        await asyncio.sleep(0.01)
    return {"calls": calls}
'''


@pytest.fixture
async def system(nats_server: EmbeddedNats, names: Names, tmp_path: Path) -> AsyncIterator[System]:
    running = System(nats_server.url, names, tmp_path, task_modules={"wstasks": TASKS})
    try:
        yield running
    finally:
        await running.stop()


DEMO = {"type": "demo", "params": {"steps": ["A", "B", "C"], "step_seconds": 1.0, "ticks_per_step": 4}}


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
async def test_a_nats_restart_under_20_running_jobs_and_100_sse_clients_loses_and_doubles_nothing(
    names: Names, tmp_path: Path, how: signal.Signals
) -> None:
    server = start_nats_server(tmp_path / "store", port=free_port())
    system = System(server.url, names, tmp_path, {"JOBLINE_PROCESSOR_CONCURRENCY": "10"}, {"wstasks": TASKS})
    nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    clients: list[httpx.AsyncClient] = []
    try:
        js = nc.jetstream()
        await system.start_all(processors=2)
        client = httpx.AsyncClient(base_url=system.url, timeout=30, limits=httpx.Limits(max_connections=200))
        clients.append(client)
        job_ids = await asyncio.gather(*(submit_until_accepted(client, DEMO) for _ in range(20)))
        watchers = [Watcher(job_id) for job_id in job_ids for _ in range(5)]
        follows = [asyncio.create_task(w.follow(client)) for w in watchers]

        async def all_running() -> bool:
            return all(w.running for w in watchers)

        await eventually(all_running, timeout=30, what="20 jobs running")
        server = restart_nats(server, how)
        for name in system.processes:
            await system.processes[name].wait_for_line(r"reconnected to nats", timeout=20)
        await asyncio.gather(*follows)
        for watcher in watchers:
            timeline = await check_job(js, names, client, watcher)
            assert timeline[-1].kind == "completed", (watcher.job_id, timeline[-1])
        for job_id in job_ids:
            want = log_lines_of(await read_timeline(js, names, job_id))

            async def stored(job_id: str = job_id, want: list = want) -> bool:
                return await stored_log_lines(client, job_id) == want

            await eventually(stored, timeout=30, what=f"the log lines of {job_id}")
        # Pull consumers keep receiving: a job submitted now runs.
        after = await submit_until_accepted(client, {"type": "demo", "params": {"step_seconds": 0.1, "ticks_per_step": 1}})
        assert outcome(await read_sse(client, f"/api/jobs/{after}/events", timeout=30)) == "completed"
        assert not system.lines_matching("slow consumer")
    finally:
        for c in clients:
            await c.aclose()
        await system.stop()
        await nc.close()
        server.stop()


async def logs_stream_rows(js: JetStreamContext, names: Names) -> list[tuple[int, str]]:
    """(log stream sequence, message) of every message in the log stream, in order."""
    info = await js.stream_info(names.logs_stream)
    last = info.state.last_seq
    sub = await js.subscribe(names.all_job_logs, stream=names.logs_stream, ordered_consumer=True,
                             deliver_policy=DeliverPolicy.ALL)
    out: list[tuple[int, str]] = []
    try:
        while True:
            msg = await sub.next_msg(timeout=10)
            row = to_row(msg)
            assert row is not None
            out.append((row[0], row[3]))
            if msg.metadata.sequence.stream >= last or msg.metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return out


def to_row(msg: Msg) -> Any:
    """The row the logsink writes for a message read here."""
    return delivered_to_row(Delivered(msg.metadata.sequence.stream, msg.subject, msg.data, 0.0, msg.headers))


def db_rows(path: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(path) as db:
        return [(seq, message) for seq, message in
                db.execute("SELECT seq, message FROM log_lines WHERE job_id IS NOT NULL ORDER BY rowid")]


OUTAGE_S = 20  # the logsink away while 5 jobs log 100 lines a second each: 10,000 lines to catch up

async def test_logsink_down_and_killed_between_write_and_ack_stores_every_line_once(
    system: System, js: JetStreamContext, names: Names
) -> None:
    await system.start_all(processors=1)
    database = system.root / "data" / "logs.sqlite3"
    async with httpx.AsyncClient(base_url=system.url, timeout=30) as client:
        chatty = {"type": "chatty", "params": {"rate": 100, "seconds": OUTAGE_S + 10}}
        jobs = await asyncio.gather(*(submit_until_accepted(client, chatty)
                                      for _ in range(5)))

        async def some_stored() -> bool:
            return len(await stored_log_lines(client, jobs[0]) or []) >= 100

        await eventually(some_stored, timeout=30, what="the first lines stored")
        sink = system.processes.pop("logsink")
        await sink.stop(signal.SIGKILL)  # mid-batch: whatever it wrote and did not ack comes again
        await asyncio.sleep(OUTAGE_S)  # the outage under test: 5 jobs keep logging 100 lines/s each
        # The exact "written but not acknowledged" state: rows beyond what the consumer has acked,
        # written the way the logsink writes them, as if it died right after its commit.
        consumer = await js.consumer_info(names.logs_stream, names.logsink_durable)
        acked = consumer.ack_floor.stream_seq if consumer.ack_floor else 0
        with sqlite3.connect(database) as db:
            written = db.execute("SELECT coalesce(max(seq), 0) FROM log_lines").fetchone()[0]
        acked = max(acked, written)  # the killed logsink may already have rows it never acked
        sub = await js.subscribe(names.all_job_logs, stream=names.logs_stream, ordered_consumer=True,
                                 config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                                                       opt_start_seq=acked + 1))
        try:
            ahead = [row for row in [to_row(await sub.next_msg(timeout=10)) for _ in range(300)] if row is not None]
        finally:
            await sub.unsubscribe()
        store = LogStore(database)
        try:
            assert store.write(ahead) > 0
        finally:
            store.close()
        await system.start("logsink")
        for job_id in jobs:
            assert outcome(await read_sse(client, f"/api/jobs/{job_id}/events", timeout=60)) == "completed"

        async def caught_up() -> bool:
            info = await js.consumer_info(names.logs_stream, names.logsink_durable)
            return info.num_pending == 0 and info.num_ack_pending == 0

        await eventually(caught_up, timeout=60, what="the logsink to catch up")
    await system.processes.pop("logsink").stop()
    stored = db_rows(database)
    assert len(stored) == len({seq for seq, _ in stored}), "duplicate rows"
    assert stored == sorted(stored), "rows out of order"
    expected = await logs_stream_rows(js, names)
    assert len(expected) > 5 * 100 * OUTAGE_S
    assert stored == expected


async def test_a_progress_flood_is_coalesced_and_does_not_slow_other_jobs(
    system: System, js: JetStreamContext, names: Names
) -> None:
    await system.start_all(processors=1)
    async with httpx.AsyncClient(base_url=system.url, timeout=30) as client:

        async def latency() -> float:
            began = time.monotonic()
            job_id = await submit_until_accepted(client, {"type": "noop"})
            assert outcome(await read_sse(client, f"/api/jobs/{job_id}/events")) == "completed"
            return time.monotonic() - began

        quiet = [await latency() for _ in range(15)]
        before = (await js.stream_info(names.jobs_stream)).state.messages
        flood = await submit_until_accepted(client, {"type": "flood", "params": {"rate": 10000, "seconds": 30}})
        watcher = Watcher(flood)
        following = asyncio.create_task(watcher.follow(client, timeout=90))

        async def flooding() -> bool:
            return any(kind == "progressed" for _, kind, _ in watcher.events)

        await eventually(flooding, timeout=20, what="the flood to start")
        busy = [await latency() for _ in range(15)]
        await following
        timeline = await check_job(js, names, client, watcher)
        assert timeline[-1].kind == "completed"
        calls = timeline[-1].event.result["calls"]  # type: ignore[attr-defined]
        assert calls > 30 * 5000, f"the job made only {calls} progress calls"
        progress = [r for r in timeline if r.kind == "progressed"]
        # progress_rate (10/s) bounds the stream's growth, whatever the job does.
        assert len(progress) <= 10 * 31 + 2, len(progress)
        assert progress[-1].event.fraction == pytest.approx(min(calls, 300000) / 300000)  # type: ignore[attr-defined]
        growth = (await js.stream_info(names.jobs_stream)).state.messages - before
        assert growth < 1000, growth
        want = log_lines_of(timeline)
        assert len(want) == calls // 10000  # one line per 10,000 calls

        async def lines_stored() -> bool:
            return await stored_log_lines(client, flood) == want

        await eventually(lines_stored, timeout=30, what="every log line of the flood job")
    assert statistics.median(busy) < statistics.median(quiet) * 2 + 0.05, (quiet, busy)
    assert not system.lines_matching("slow consumer")


BROWSER_WATCH = """(ids) => {
  const kinds = ["started", "step_started", "step_finished", "progressed", "logged", "artifact_stored", "retrying",
                 "cancel_requested", "webhook_attempted", "completed", "failed", "cancelled", "expired"];
  const terminal = new Set(["completed", "failed", "cancelled", "expired"]);
  window.watched = {};
  for (const id of ids) {
    const record = window.watched[id] = {snapshot: null, status: null, events: [], done: false, errors: 0};
    const source = new EventSource(`/api/jobs/${id}/events`);
    source.addEventListener("snapshot", (e) => {
      if (record.snapshot === null) { record.snapshot = Number(e.lastEventId); record.status = JSON.parse(e.data).job.status; }
    });
    source.onerror = () => { record.errors += 1; };
    for (const kind of kinds) {
      source.addEventListener(kind, (e) => {
        record.events.push([Number(e.lastEventId), kind]);
        if (terminal.has(kind)) { record.done = true; source.close(); }
      });
    }
  }
}"""


async def test_a_gateway_restart_under_200_sse_clients_resumes_each_without_gap_or_duplicate(
    system: System, js: JetStreamContext, names: Names
) -> None:
    from .browser import chromium

    system.settings.update(JOBLINE_PORT=str(free_port()), JOBLINE_SSE_RETRY_MS="300",
                           JOBLINE_PROCESSOR_CONCURRENCY="20", JOBLINE_SHUTDOWN_TIMEOUT_S="2",
                           JOBLINE_MAX_STREAMS_PER_CLIENT="1000")  # 200 clients from one address
    await system.start_all(processors=1)
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    async with httpx.AsyncClient(base_url=system.url, timeout=30, limits=limits) as client, chromium() as browser:
        body = {"type": "demo", "params": {"steps": ["A", "B", "C"], "step_seconds": 2.0, "ticks_per_step": 8}}
        job_ids = await asyncio.gather(*(submit_until_accepted(client, body) for _ in range(20)))
        watchers = [Watcher(job_ids[i % 20]) for i in range(196)]
        follows = [asyncio.create_task(w.follow(client)) for w in watchers]
        page = await browser.new_page()
        await page.goto(f"{system.url}/healthz")
        in_browser = job_ids[:4]  # Chromium allows 6 connections per host: 4 EventSources
        await page.evaluate(BROWSER_WATCH, in_browser)

        async def all_running() -> bool:
            browser_ok = await page.evaluate("(ids) => ids.every((id) => window.watched[id].status !== null)", in_browser)
            return browser_ok and all(w.running for w in watchers)

        await eventually(all_running, timeout=30, what="200 clients following running jobs")
        old = system.processes.pop("gateway")
        assert await old.stop(signal.SIGTERM) == 0, old.output()
        await system.start("gateway")
        await asyncio.gather(*follows)

        async def browsers_done() -> bool:
            return bool(await page.evaluate("(ids) => ids.every((id) => window.watched[id].done)", in_browser))

        await eventually(browsers_done, timeout=60, what="the Chromium clients to see every end")
        seen_by_browser = await page.evaluate("window.watched")
    for watcher in watchers:
        await check_job(js, names, client, watcher)
    reconnected = [w for w in watchers if w.outages]
    assert len(reconnected) >= 150, "the restart did not cut the clients off"
    outages = sorted(o for w in watchers for o in w.outages)
    assert outages[-1] < 10, f"slowest reconnect {outages[-1]:.1f}s (median {statistics.median(outages):.1f}s)"
    for job_id in in_browser:
        record = seen_by_browser[job_id]
        assert record["errors"] >= 1, "the Chromium EventSource never noticed the restart"
        tab = Watcher(job_id, events=[(seq, kind, {}) for seq, kind in record["events"]], snapshot_seq=record["snapshot"])
        timeline = await read_timeline(js, names, job_id)
        check_timeline(timeline)
        tab.check_against(timeline)
        assert timeline[-1].kind == "completed"
