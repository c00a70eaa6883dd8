"""Job history in a database: every job and event kept past the stream's retention, searched over
all history, on SQLite and on PostgreSQL (each test runs on both, with the same assertions)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from nats.js import JetStreamContext

from jobline.contract.events import JobCompleted, JobCreated, JobEvent, JobStarted, encoder
from jobline.contract.history import CountsRequest, StatusReply
from jobline.contract.names import Names
from jobline.contract.publishing import subject_of
from jobline.runtime.embedded_nats import EmbeddedNats

from .helpers import (
    TEST_RETENTION,
    Stack,
    another_gateway,
    eventually,
    read_sse,
    running_stack,
    submit,
    wait_for_history_seq,
)

DEMO = {"steps": ["Upload", "Processing", "Done"], "step_seconds": 0.15, "ticks_per_step": 3}
TERMINAL = ("completed", "failed", "cancelled", "expired")


@pytest.fixture
async def stack(nats_server: EmbeddedNats, names: Names, data_dir: Path, js: JetStreamContext,
                database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(nats_server.url, names, data_dir, js, history={"database_url": database_url},
                             gateway={"recent_jobs": 2}) as running:
        yield running


async def ended(client: httpx.AsyncClient, job_id: str) -> str:
    """Wait for the job's end through its event stream; its final status."""
    events = await read_sse(client, f"/api/jobs/{job_id}/events")
    last = events[-1]
    return str(msgspec.json.decode(last.data)["job"]["status"]) if last.event == "snapshot" else last.event


async def page_of(client: httpx.AsyncClient, query: str) -> dict[str, Any]:
    response = await client.get(f"/api/jobs?{query}")
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    assert page["partial"] is False
    return page


def ids(page: dict[str, Any]) -> list[str]:
    return [job["id"] for job in page["jobs"]]


async def history_status(js: JetStreamContext, names: Names) -> StatusReply:
    reply = await js._nc.request(names.history_rpc("status"), b"{}", timeout=5)
    return msgspec.json.decode(reply.data, type=StatusReply)


async def publish(js: JetStreamContext, names: Names, events: list[JobEvent], chunk: int = 500) -> int:
    """Publish events straight into the job stream (the way a processor would); the last sequence."""
    last = 0
    for start in range(0, len(events), chunk):
        acks = await asyncio.gather(*(js.publish(subject_of(names, e), encoder.encode(e))
                                      for e in events[start:start + chunk]))
        last = max(last, *(ack.seq for ack in acks))
    return last


def finished_jobs(count: int, *, prefix: str = "h", job_type: str = "ghost") -> list[JobEvent]:
    """`count` small jobs that were created, started and completed (of a type no processor serves)."""
    now = time.time()
    events: list[JobEvent] = []
    for i in range(count):
        job_id = f"{prefix}{i:07d}"
        events += [JobCreated(ts=now, job_id=job_id, type=job_type, params={"n": i}),
                   JobStarted(ts=now + 0.1, job_id=job_id, attempt=1, worker="bench"),
                   JobCompleted(ts=now + 0.2, job_id=job_id, attempt=1, result={"n": i})]
    return events


# --- the promise: history outlives the stream ----------------------------------------------------------
async def test_jobs_whose_events_left_the_stream_are_still_listed_fetched_and_replayed(
        nats_server: EmbeddedNats, names: Names, data_dir: Path, js: JetStreamContext, database_url: str) -> None:
    retention = replace(TEST_RETENTION, jobs_max_age_s=3.0)
    async with running_stack(nats_server.url, names, data_dir, js, retention=retention, gateway={"recent_jobs": 1},
                             history={"database_url": database_url}) as stack:
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
            job_ids = [await submit(client, "demo", DEMO) for _ in range(3)]
            job_ids.append(await submit(client, "demo", {**DEMO, "fail_at_step": "Processing"}))
            assert [await ended(client, job_id) for job_id in job_ids] == ["completed"] * 3 + ["failed"]
            before: dict[str, tuple[Any, Any, list[tuple[str, str | None, str]], Any]] = {}
            for job_id in job_ids:
                state = (await client.get(f"/api/jobs/{job_id}")).json()
                timeline = (await client.get(f"/api/jobs/{job_id}/timeline")).json()
                replayed = await read_sse(client, f"/api/jobs/{job_id}/events?replay=16")
                logs = (await client.get(f"/api/jobs/{job_id}/logs")).json()["rows"]
                assert logs and timeline["events"][0]["event"]["kind"] == "created"
                before[job_id] = (state, timeline, [(e.event, e.id, e.data) for e in replayed], logs)
            last = max(e["seq"] for _, timeline, _, _ in before.values() for e in timeline["events"])
            await wait_for_history_seq(js, names, last)

            async def dropped() -> bool:
                state = (await js.stream_info(names.jobs_stream)).state
                return state.messages == 0 or state.first_seq > last

            await eventually(dropped, 20, "the job stream to drop the jobs' events by age")

            async with another_gateway(stack) as (second_url, second):
                # A gateway started now holds only its live window (here: the one newest job).
                assert [s.id for s in second.read_model.newest_first()] == [job_ids[-1]]
                async with httpx.AsyncClient(base_url=second_url, timeout=60) as fresh:
                    for http in (client, fresh):
                        for job_id, (state, timeline, replayed, logs) in before.items():
                            assert (await http.get(f"/api/jobs/{job_id}")).json() == state
                            assert (await http.get(f"/api/jobs/{job_id}/timeline")).json() == timeline
                            again = await read_sse(http, f"/api/jobs/{job_id}/events?replay=16")
                            assert [(e.event, e.id, e.data) for e in again] == replayed
                            assert (await http.get(f"/api/jobs/{job_id}/logs")).json()["rows"] == logs
                            seq = timeline["events"][0]["seq"]  # just created
                            at = (await http.get(f"/api/jobs/{job_id}/state?at={seq}")).json()
                            assert at["status"] == "pending" and at["seq"] == seq
                        assert ids(await page_of(http, "limit=10")) == job_ids[::-1]
                        assert ids(await page_of(http, "status=failed")) == [job_ids[-1]]


async def test_a_gateway_started_over_a_long_history_reads_only_its_live_window(
        stack: Stack, js: JetStreamContext, names: Names) -> None:
    await publish(js, names, finished_jobs(3000))
    # Five jobs still waiting (no processor serves "ghost"), older than the recent window below.
    await publish(js, names, [JobCreated(ts=time.time(), job_id=f"live{i}", type="ghost") for i in range(5)])
    last = await publish(js, names, finished_jobs(100, prefix="new"))
    await wait_for_history_seq(js, names, last)
    async with another_gateway(stack, recent_jobs=50) as (_, core):
        held = [s.id for s in core.read_model.newest_first()]
        # The 50 newest, then the 5 jobs still pending (older than the window), newest first.
        assert held == [f"new{i:07d}" for i in range(99, 49, -1)] + [f"live{i}" for i in range(4, -1, -1)]
        # Nothing was read from the stream (the history service had applied all of it), so nothing
        # was folded in and dropped again: the start did not depend on the 3,000 jobs before.
        assert core.read_model.evicted == 0
        assert core.read_model.last_seq == last


# --- search over all history ----------------------------------------------------------------------------
async def test_search_by_status_type_time_fields_and_error_text_with_stable_cursors(
        stack: Stack, client: httpx.AsyncClient) -> None:
    small = await submit(client, "noop", {"height": 360})
    big = await submit(client, "noop", {"height": 720, "label": "b c", "nested": {"codec": "h264"}})
    made_at = time.time()
    failed = await submit(client, "demo", {**DEMO, "fail_at_step": "Processing"})
    done = await submit(client, "demo", DEMO)
    every = [done, failed, big, small]
    assert [await ended(client, job_id) for job_id in (small, big, failed, done)] == [
        "completed", "completed", "failed", "completed"]

    assert ids(await page_of(client, "limit=50")) == every
    assert ids(await page_of(client, "status=failed")) == [failed]
    assert ids(await page_of(client, "status=completed,failed&type=demo")) == [done, failed]
    assert ids(await page_of(client, "params.height=720")) == [big]
    assert ids(await page_of(client, "params.label=b c")) == [big]
    assert ids(await page_of(client, "params.nested.codec=h264")) == [big]
    assert ids(await page_of(client, "params.height=361")) == []
    assert ids(await page_of(client, "result.ok=true")) == [done]
    assert ids(await page_of(client, "error=PROCESSING")) == [failed]  # case-insensitive
    assert ids(await page_of(client, "error=50%25")) == []  # % is text, not a wildcard
    assert ids(await page_of(client, f"created_after={made_at}")) == [done, failed]
    assert ids(await page_of(client, f"created_before={made_at}&type=noop")) == [big, small]
    assert ids(await page_of(client, f"finished_after={time.time() + 60}")) == []

    seen: list[str] = []
    cursor = ""
    while True:  # one job per page, and a new job arriving meanwhile does not shift the pages
        page = await page_of(client, f"limit=1{cursor}")
        seen += ids(page)
        if len(seen) == 1:
            await ended(client, await submit(client, "noop"))
        if page["next_before"] is None:
            break
        cursor = f"&before={page['next_before']}"
    assert seen == every

    for bad in ("status=bogus", "params.a..b=1", "limit=0", "limit=501", "type=Not A Type", "params.x.y.z.a.b.c.d.e.f=1"):
        response = await client.get(f"/api/jobs?{bad}")
        assert response.status_code == 400, bad
        assert response.headers["content-type"].startswith("application/problem+json")

    counts = (await client.get("/api/stats/counts")).json()
    assert counts["by_type"] == {"noop": {"completed": 3}, "demo": {"completed": 1, "failed": 1}}
    assert counts["by_status"]["completed"] == 4 and counts["total"] == 5
    activity = (await client.get("/api/stats/activity?window=hour")).json()
    assert sum(b["completed"] for b in activity["buckets"]) == 4
    assert sum(b["failed"] for b in activity["buckets"]) == 1
    durations = {d["type"]: d for d in activity["durations"]}
    assert durations["demo"]["count"] == 2 and durations["noop"]["count"] == 3
    assert 0.1 <= durations["demo"]["p50_s"] <= durations["demo"]["p99_s"] <= durations["demo"]["max_s"] * 1.1
    assert 0.4 <= durations["demo"]["max_s"] < 10  # the completed demo ran its three steps
    assert (await client.get("/api/stats/activity?window=year")).status_code == 400


async def test_jobs_have_an_owner_and_tags_that_lists_filter_on(stack: Stack, client: httpx.AsyncClient) -> None:
    async def post(body: dict[str, Any]) -> str:
        answer = await client.post("/api/jobs", json={"type": "noop", **body})
        assert answer.status_code == 202, answer.text
        return str(answer.json()["id"])

    alice = await post({"owner": "alice@example.com", "tags": ["video", "pro"]})
    bob = await post({"owner": "tenant:bob", "tags": ["video"]})
    nobody = await post({})
    flow = await client.post("/api/flows", json={"job": {"type": "noop", "owner": "tenant:bob", "tags": ["pack"]},
                                                 "children": [{"name": "a", "job": {"type": "noop"}},
                                                              {"name": "b", "job": {"type": "noop", "owner": "carol"}}]})
    assert flow.status_code == 202, flow.text
    root, child_a, child_b = (job["id"] for job in flow.json()["jobs"])
    for job_id in (alice, bob, nobody, root, child_a, child_b):
        await ended(client, job_id)
    state = (await client.get(f"/api/jobs/{alice}")).json()
    assert state["owner"] == "alice@example.com" and state["tags"] == ["video", "pro"]
    children = {job["name"]: job for job in [(await client.get(f"/api/jobs/{j}")).json() for j in (child_a, child_b)]}
    assert (children["a"]["owner"], children["a"]["tags"]) == ("tenant:bob", ["pack"])  # the root's, inherited
    assert children["b"]["owner"] == "carol"  # its own
    assert ids(await page_of(client, "owner=alice@example.com")) == [alice]
    assert set(ids(await page_of(client, "owner=tenant:bob"))) == {bob, root, child_a}
    assert set(ids(await page_of(client, "owner=alice@example.com,carol"))) == {alice, child_b}
    assert set(ids(await page_of(client, "tag=video"))) == {alice, bob}
    assert ids(await page_of(client, "tag=video,pro")) == [alice]  # every tag
    assert ids(await page_of(client, "tag=video&owner=tenant:bob")) == [bob]
    assert ids(await page_of(client, "tag=pro&type=demo")) == []

    async def ended_in_hour(query: str) -> int:  # (activity: from those jobs, as it is not kept per owner)
        activity = (await client.get(f"/api/stats/activity?window=hour&{query}")).json()
        return sum(b["completed"] for b in activity["buckets"])

    assert await ended_in_hour("owner=tenant:bob") == 3
    assert await ended_in_hour("owner=alice@example.com,carol") == 2
    assert await ended_in_hour("tag=video,pro") == 1
    assert await ended_in_hour("owner=tenant:bob&type=demo") == 0
    assert await ended_in_hour("") == 6
    too_many = [f"t{i}" for i in range(17)]
    for bad in ({"owner": "not an owner"}, {"owner": ""}, {"tags": ["a b"]}, {"tags": ["x"] * 2}, {"tags": too_many}):
        refused = await client.post("/api/jobs", json={"type": "noop", **bad})
        assert refused.status_code == 422, (bad, refused.text)
    for bad_query in ("owner=a b", "tag=a+b", "tag=,"):
        assert (await client.get(f"/api/jobs?{bad_query}")).status_code == 400, bad_query
        assert (await client.get(f"/api/stats/activity?{bad_query}")).status_code == 400, bad_query


async def test_every_live_job_a_filter_matches_is_cancelled_in_one_request(stack: Stack, client: httpx.AsyncClient) -> None:
    async def later(owner: str) -> str:
        answer = await client.post("/api/jobs", json={"type": "noop", "delay_s": 600, "owner": owner})
        return str(answer.json()["id"])

    acme = [await later("acme") for _ in range(5)]
    zed = [await later("zed") for _ in range(2)]
    done = await submit(client, "noop")
    await ended(client, done)
    dry = await client.post("/api/jobs/cancel?status=scheduled,completed&owner=acme&dry_run=true")
    assert dry.json() == {"matched": 5, "cancelled": 0, "cancelling": 0, "more": False, "dry_run": True}
    assert (await client.get(f"/api/jobs/{acme[0]}")).json()["status"] == "scheduled"  # (only counted)
    answer = await client.post("/api/jobs/cancel?status=scheduled,completed&owner=acme")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"matched": 5, "cancelled": 5, "cancelling": 0, "more": False, "dry_run": False}
    for job_id in acme:
        assert (await client.get(f"/api/jobs/{job_id}")).json()["status"] == "cancelled"
    for job_id in zed:
        assert (await client.get(f"/api/jobs/{job_id}")).json()["status"] == "scheduled"
    assert (await client.post("/api/jobs/cancel?status=scheduled&owner=acme")).json()["matched"] == 0
    assert (await client.post("/api/jobs/cancel?status=completed")).json()["matched"] == 0  # (ended: nothing to do)
    assert (await client.post("/api/jobs/cancel")).status_code == 400  # the statuses are always named


# --- when the history service is away ---------------------------------------------------------------------
async def test_without_the_history_service_live_jobs_work_and_history_requests_answer_503_at_once(
        nats_server: EmbeddedNats, names: Names, data_dir: Path, js: JetStreamContext) -> None:
    async with running_stack(nats_server.url, names, data_dir, js, with_history=False,
                             gateway={"recent_jobs": 1}) as stack, httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
        first = await submit(client, "noop")
        assert await ended(client, first) == "completed"
        second = await submit(client, "demo", DEMO)
        assert await ended(client, second) == "completed"  # live: streamed to the end
        page = (await client.get("/api/jobs")).json()
        assert page["partial"] is True and ids(page) == [second]  # the first left memory
        for path in (f"/api/jobs/{first}", "/api/stats/counts", "/api/jobs?error=x", "/api/jobs/01unknownjob"):
            began = time.monotonic()
            response = await client.get(path)
            assert response.status_code == 503, (path, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert time.monotonic() - began < 3, path  # never hangs


# --- the store itself: migrations and retention -------------------------------------------------------------
def test_migrations_are_recorded_run_once_and_refuse_a_newer_schema(database_url: str) -> None:
    from jobline.history.database import Database
    from jobline.history.migrations import LATEST, SchemaTooNew, migrate

    db = Database(database_url)
    conn = db.connect()
    try:
        assert migrate(db, conn) == LATEST
        assert migrate(db, conn) == LATEST  # nothing to do the second time
        rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
        assert [r[0] for r in rows] == list(range(1, LATEST + 1))
        conn.execute(db.sql("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"),
                     (LATEST + 1, "from the future", time.time()))
        with pytest.raises(SchemaTooNew):
            migrate(db, conn)
    finally:
        conn.close()


def test_retention_removes_jobs_ended_long_ago_with_their_events_and_keeps_running_ones(database_url: str) -> None:
    from jobline.contract.events import JobFailed
    from jobline.history import queries
    from jobline.history.database import Database
    from jobline.history.migrations import migrate
    from jobline.history.projection import Delivered, Projection
    from jobline.history.retention import prune

    db = Database(database_url)
    conn = db.connect()
    try:
        migrate(db, conn)
        projection = Projection(db)
        projection.open(conn)
        day = 86400.0
        old, recent = time.time() - 40 * day, time.time() - day
        events: list[JobEvent] = []
        for i, at in enumerate((old, old, recent)):
            events += [JobCreated(ts=at, job_id=f"j{i}", type="t"), JobStarted(ts=at, job_id=f"j{i}", attempt=1, worker="w"),
                       JobFailed(ts=at + 1, job_id=f"j{i}", attempt=1, error="boom")]
        events.append(JobCreated(ts=old, job_id="still-pending", type="t"))
        batch = [Delivered(seq, subject_of(Names(), e), encoder.encode(e), e.ts) for seq, e in enumerate(events, 1)]
        assert projection.apply_batch(conn, batch) == len(batch)
        assert projection.apply_batch(conn, batch) == 0  # a redelivery writes nothing
        removed, more = prune(db, conn, 30 * day)
        assert (removed, more) == (2, False)
        left = {row[0] for row in conn.execute("SELECT id FROM jobs").fetchall()}
        assert left == {"j2", "still-pending"}
        assert {row[0] for row in conn.execute("SELECT DISTINCT job_id FROM job_events").fetchall()} == left
        reply = queries.counts(db, conn, CountsRequest())
        assert {(c.type, c.status): c.n for c in reply.counts} == {("t", "failed"): 1, ("t", "pending"): 1}
        minutes = conn.execute("SELECT minute FROM job_minutes").fetchall()
        assert [int(m[0]) for m in minutes] == [int((recent + 1) // 60) * 60]
    finally:
        conn.close()


def test_field_search_uses_the_index_and_still_finds_jobs_whose_fields_do_not_fit(database_url: str) -> None:
    from jobline.contract.history import FieldMatch, JobFilter, SearchRequest
    from jobline.history import queries
    from jobline.history.database import Database
    from jobline.history.migrations import migrate
    from jobline.history.projection import Delivered, Projection

    db = Database(database_url)
    conn = db.connect()
    try:
        migrate(db, conn)
        projection = Projection(db)
        projection.open(conn)
        now = time.time()
        many = {f"k{i:03d}": i for i in range(100)} | {"height": 720}  # more fields than are indexed
        events: list[JobEvent] = [
            JobCreated(ts=now, job_id="a", type="t", params={"height": 720.0, "tags": ["x", "y"],
                                                             "deep": {"a": {"b": {"c": {"d": 1}}}}}),
            JobCreated(ts=now, job_id="b", type="t", params=many),
            JobCreated(ts=now, job_id="c", type="t"),
            JobStarted(ts=now, job_id="c", attempt=1, worker="w"),
            JobCompleted(ts=now, job_id="c", attempt=1, result={"ok": True, "codec": "h264"}),
        ]
        batch = [Delivered(seq, subject_of(Names(), e), encoder.encode(e), e.ts) for seq, e in enumerate(events, 1)]
        projection.apply_batch(conn, batch)

        def found(*matches: tuple[str, object]) -> list[str]:
            job_filter = JobFilter(fields=[FieldMatch(path=p.split("."), value=v) for p, v in matches])
            page = queries.search(db, conn, SearchRequest(filter=job_filter, limit=10))
            return [msgspec.json.decode(raw)["id"] for raw in page.jobs]

        assert found(("params.height", 720)) == ["b", "a"]  # a from the index, b (partial) from its JSON
        assert found(("params.tags", ["x", "y"])) == ["a"]
        assert found(("params.deep.a.b.c", {"d": 1})) == ["a"]  # the deepest indexed level, whole
        assert found(("params.deep.a.b.c.d", 1)) == ["a"]  # deeper than the index: a scan
        assert found(("result.codec", "h264"), ("result.ok", True)) == ["c"]
        assert found(("params.height", 720), ("params.k050", 50)) == ["b"]
        assert found(("params.height", 721)) == []
        (partial,), = conn.execute("SELECT COUNT(*) FROM jobs WHERE fields_partial = 1").fetchall()
        assert partial == 1
    finally:
        conn.close()
