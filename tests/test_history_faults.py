"""The history service under faults, as a real process: killed mid-batch, down under
load, its PostgreSQL server gone for a while. Every job row and event is stored exactly once."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from nats.js import JetStreamContext

from jobline.contract.history import StatusReply
from jobline.contract.names import Names
from jobline.runtime.embedded_nats import EmbeddedNats
from jobline.runtime.stream_setup import ensure_streams

from .helpers import TEST_RETENTION, eventually, read_sse, running_stack, submit
from .postgres import new_database, postgres_server
from .processes import ServiceProcess, service_env
from .test_history import DEMO, finished_jobs, publish

pytestmark = pytest.mark.slow


def query(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    """Read the history database directly (a test may; services ask the history service)."""
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url[len("sqlite:///"):]) as db:
            return db.execute(sql).fetchall()
    import psycopg

    with psycopg.connect(database_url) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[return-value]


async def applied_seq(js: JetStreamContext, names: Names) -> int:
    try:
        reply = await js._nc.request(names.history_rpc("status"), b"{}", timeout=2)
    except Exception:
        return -1
    if (reply.headers or {}).get("Nats-Service-Error-Code"):
        return -1
    return msgspec.json.decode(reply.data, type=StatusReply).applied_seq


async def start_history(nats_url: str, names: Names, data_dir: Path, database_url: str, **extra: str) -> ServiceProcess:
    env = service_env(nats_url, names, data_dir, JOBLINE_DATABASE_URL=database_url, **extra)
    process = await ServiceProcess.service("history", env)
    await process.wait_for_line("writing the job history")
    return process


async def caught_up(js: JetStreamContext, names: Names, timeout: float = 60.0) -> int:
    last = (await js.stream_info(names.jobs_stream)).state.last_seq

    async def done() -> bool:
        return await applied_seq(js, names) >= last

    await eventually(done, timeout, f"the history service to apply sequence {last}")
    return last


async def ended_ids(js: JetStreamContext, names: Names) -> set[str]:
    """The ids of every job whose terminal event is in the stream."""
    info = await js.stream_info(names.jobs_stream, subjects_filter=names.all_job_ends)
    return {subject.split(".")[-3] for subject in (info.state.subjects or {})}


def check_stored_once(database_url: str, last: int, jobs: int) -> None:
    (events, distinct, low, high), = query(database_url,
                                           "SELECT COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq) FROM job_events")
    assert (events, distinct, low, high) == (last, last, 1, last)
    assert query(database_url, "SELECT status, COUNT(*) FROM jobs GROUP BY status") == [("completed", jobs)]
    # Counts would be off had a redelivered batch been folded in twice.
    assert query(database_url, "SELECT type, status, n FROM job_counts WHERE n <> 0") == [("ghost", "completed", jobs)]
    (ended,), = query(database_url, "SELECT SUM(n) FROM job_minutes")
    assert ended == jobs


async def test_the_store_killed_mid_batch_and_restarted_stores_every_job_and_event_once(
        nats_server: EmbeddedNats, names: Names, data_dir: Path, js: JetStreamContext, database_url: str) -> None:
    await ensure_streams(js, names, TEST_RETENTION)
    jobs = 30_000
    last = await publish(js, names, finished_jobs(jobs), chunk=2000)
    history = await start_history(nats_server.url, names, data_dir, database_url)
    try:
        async def writing() -> bool:
            return await applied_seq(js, names) > 0

        await eventually(writing, 30, "the history service to commit a first batch")
        history.send(signal.SIGKILL)
        await history.process.wait()
        at_kill = query(database_url, "SELECT applied_seq FROM projection")[0][0]
        assert 0 < at_kill < last, f"killed at {at_kill} of {last}: not mid-way"
        history = await start_history(nats_server.url, names, data_dir, database_url)
        await caught_up(js, names)
        check_stored_once(database_url, last, jobs)
    finally:
        await history.stop()


OUTAGE_S = 20.0  # the store away while 10 jobs a second are submitted (and end): 200 jobs to catch up


async def submit_for(client: httpx.AsyncClient, seconds: float, every_s: float = 0.1, watch: bool = False) -> list[str]:
    """Submit a short demo job every `every_s` for `seconds`; `watch`: follow each one live to its
    end (its stream opened at once, while it is live in the gateway's memory)."""
    job_ids: list[str] = []
    watchers = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job_id = await submit(client, "demo", {**DEMO, "step_seconds": 0.05})
        job_ids.append(job_id)
        if watch:
            watchers.append(asyncio.create_task(read_sse(client, f"/api/jobs/{job_id}/events")))
        await asyncio.sleep(every_s)  # the load's own pace
    for events in await asyncio.gather(*watchers):
        assert events[-1].event == "completed"
    return job_ids


async def check_jobs_stored(client: httpx.AsyncClient, js: JetStreamContext, names: Names, database_url: str,
                            job_ids: list[str]) -> None:
    async def all_ended() -> bool:  # (in the stream: the gateway may not hold them any more)
        return set(job_ids) <= await ended_ids(js, names)

    await eventually(all_ended, 30, "every job to end")
    last = await caught_up(js, names)
    stream = (await js.stream_info(names.jobs_stream)).state
    (events,), = query(database_url, "SELECT COUNT(*) FROM job_events")
    assert events == stream.messages == last
    statuses = dict(query(database_url, "SELECT id, status FROM jobs"))
    assert {job_id: statuses.get(job_id) for job_id in job_ids} == {job_id: "completed" for job_id in job_ids}


async def test_the_store_down_under_load_catches_up_and_loses_nothing(
        nats_server: EmbeddedNats, names: Names, data_dir: Path, js: JetStreamContext, database_url: str) -> None:
    history = await start_history(nats_server.url, names, data_dir, database_url)
    try:
        async with running_stack(nats_server.url, names, data_dir, js, with_history=False,
                                 gateway={"history_start_wait_s": 10.0, "recent_jobs": 20}) as stack:
            async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
                job_ids = await submit_for(client, 2)
                history.send(signal.SIGKILL)
                await history.process.wait()
                ends = await js._nc.subscribe(names.all_job_ends, max_msgs=3)
                down = asyncio.create_task(submit_for(client, OUTAGE_S))
                async with asyncio.timeout(30):  # some jobs end while it is away
                    for _ in range(3):
                        await ends.next_msg(timeout=30)
                page = (await client.get("/api/jobs?limit=5")).json()
                assert page["partial"] is True  # listed from memory meanwhile
                job_ids += await down
                history = await start_history(nats_server.url, names, data_dir, database_url)
                await check_jobs_stored(client, js, names, database_url, job_ids)
                assert (await client.get(f"/api/jobs/{job_ids[0]}")).json()["status"] == "completed"
    finally:
        await history.stop()


async def test_postgres_gone_for_a_while_history_answers_503_then_catches_up(
        nats_server: EmbeddedNats, names: Names, data_dir: Path, js: JetStreamContext) -> None:
    with postgres_server() as server:
        database_url = new_database(server.url)
        history = await start_history(nats_server.url, names, data_dir, database_url)
        try:
            async with running_stack(nats_server.url, names, data_dir, js, with_history=False,
                                     gateway={"history_start_wait_s": 10.0, "recent_jobs": 5}) as stack:
                async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
                    job_ids = await submit_for(client, 1)
                    server.stop()
                    job_ids += await submit_for(client, 3, watch=True)  # live jobs keep working
                    began = time.monotonic()
                    response = await client.get(f"/api/jobs/{job_ids[0]}")  # left memory: only the store has it
                    assert response.status_code == 503 and time.monotonic() - began < 6
                    assert (await client.get("/api/stats/counts")).status_code == 503
                    await history.wait_for_line("history database unavailable")
                    server.start()
                    await check_jobs_stored(client, js, names, database_url, job_ids)
                    assert (await client.get(f"/api/jobs/{job_ids[0]}")).status_code == 200
        finally:
            await history.stop()
