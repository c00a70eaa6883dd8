"""The gateway's HTTP API against real NATS, a real processor and logsink, through uvicorn."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from nats.js import JetStreamContext

from jobline.contract.events import JobCreated, encoder
from jobline.contract.publishing import subject_of

from .helpers import Stack, outcome, read_sse, submit
from .oracle import check_timeline, read_timeline

FAST_DEMO = {"steps": ["Upload", "Processing", "Done"], "step_seconds": 0.05, "ticks_per_step": 3}




def test_job_ids_are_ulids_in_lowercase_crockford_base32() -> None:
    import time

    from jobline.jobs.writer import new_job_id

    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    before = int(time.time() * 1000)
    ids = [new_job_id() for _ in range(2000)]
    after = int(time.time() * 1000)
    values = []
    for job_id in ids:
        assert len(job_id) == 26 and set(job_id) <= set(alphabet), job_id
        value = 0
        for char in job_id:
            value = value << 5 | alphabet.index(char)
        assert value < 1 << 128
        assert before <= value >> 80 <= after  # the first 48 bits are the creation time in ms
        values.append(value)
    assert len(set(ids)) == len(ids)
    assert sorted(ids) == [i for _, i in sorted(zip(values, ids, strict=True))]  # text order is numeric order


async def test_submit_returns_202_with_location_and_links(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/jobs", json={"type": "demo", "params": FAST_DEMO})
    assert response.status_code == 202
    body = response.json()
    job_id = body["id"]
    assert body["status"] == "pending"
    assert response.headers["location"] == f"/api/jobs/{job_id}"
    assert body["links"] == {"self": f"/api/jobs/{job_id}", "events": f"/api/jobs/{job_id}/events",
                             "logs": f"/api/jobs/{job_id}/logs"}
    state = (await client.get(f"/api/jobs/{job_id}")).json()
    assert state["id"] == job_id and state["type"] == "demo"
    assert [s["name"] for s in state["steps"]] == ["Upload", "Processing", "Done"]


BAD_BODIES = [
    (b'{"type": "demo", "params": ', 400, None),
    (b"not json at all", 400, None),
    (b'{"params": {}}', 400, "type"),
    (b'{"type": 42}', 400, "type"),
    (b'{"type": "demo", "params": [1, 2]}', 400, "params"),
    (b'{"type": "demo", "surprise": true}', 400, "surprise"),
    (b'{"type": "no-such-type"}', 422, "type"),
    (b'{"type": "jobs.>"}', 422, "type"),
    (b"[]", 400, None),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD_BODIES)
async def test_bad_submissions_get_a_problem_naming_the_field_and_publish_nothing(
    client: httpx.AsyncClient, js: JetStreamContext, stack: Stack, body: bytes, status: int, field: str | None
) -> None:
    before = (await js.stream_info(stack.names.jobs_stream)).state.last_seq
    response = await client.post("/api/jobs", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    if field is not None:
        assert field in json.dumps(problem), problem
    assert (await js.stream_info(stack.names.jobs_stream)).state.last_seq == before


async def test_an_oversized_submission_is_refused_with_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/jobs", json={"type": "demo", "params": {"blob": "x" * 300_000}})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_unknown_and_malformed_job_ids(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/jobs/01nosuchjob")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    for bad in ("a.b", "*", "%3E", "a%20b"):
        response = await client.get(f"/api/jobs/{bad}")
        assert response.status_code == 400, bad
        assert response.json()["errors"][0]["key"] == "id"
    assert (await client.get("/api/jobs/01nosuchjob/events")).status_code == 404


async def test_sse_sends_a_snapshot_then_every_event_then_ends(client: httpx.AsyncClient, js: JetStreamContext,
                                                               stack: Stack) -> None:
    job_id = await submit(client, "demo", FAST_DEMO)
    events = await read_sse(client, f"/api/jobs/{job_id}/events")
    assert events[0].event == "snapshot"
    assert json.loads(events[0].data)["job"]["id"] == job_id
    assert outcome(events) == "completed"
    ids = [int(e.id) for e in events if e.id is not None]
    assert len(ids) == len(events) and ids == sorted(set(ids)), "every event has a strictly increasing id"
    # What followed the snapshot is exactly the stored timeline after the snapshot's sequence.
    timeline = await read_timeline(js, stack.names, job_id)
    check_timeline(timeline)
    after_snapshot = [r for r in timeline if r.seq > int(events[0].id or 0)]
    assert [(int(e.id or 0), e.event) for e in events[1:]] == [(r.seq, r.kind) for r in after_snapshot]
    state = (await client.get(f"/api/jobs/{job_id}")).json()
    assert state["status"] == "completed" and state["progress"] == 1.0
    assert [s["status"] for s in state["steps"]] == ["done", "done", "done"]
    assert state["result"] == {"steps": 3, "ok": True}


async def test_a_finished_job_streams_its_snapshot_and_a_reconnect_after_the_end_gets_204(
    client: httpx.AsyncClient,
) -> None:
    job_id = await submit(client, "noop")
    live = await read_sse(client, f"/api/jobs/{job_id}/events")
    last_id = live[-1].id
    again = await read_sse(client, f"/api/jobs/{job_id}/events")
    assert [e.event for e in again] == ["snapshot"]
    snapshot = json.loads(again[0].data)
    assert snapshot["job"]["status"] == "completed" and snapshot["logs"] == []
    response = await client.get(f"/api/jobs/{job_id}/events", headers={"Last-Event-ID": str(last_id)})
    assert response.status_code == 204


async def test_a_failing_job_ends_failed_with_its_error(client: httpx.AsyncClient, js: JetStreamContext,
                                                       stack: Stack) -> None:
    job_id = await submit(client, "demo", {**FAST_DEMO, "fail_at_step": "Processing"})
    events = await read_sse(client, f"/api/jobs/{job_id}/events")
    assert outcome(events) == "failed"
    state = (await client.get(f"/api/jobs/{job_id}")).json()
    assert state["status"] == "failed" and "Processing" in state["error"]
    assert [s["status"] for s in state["steps"]] == ["done", "failed", "pending"]
    check_timeline(await read_timeline(js, stack.names, job_id))


async def test_params_of_the_wrong_type_are_refused_at_submit_naming_the_field(client: httpx.AsyncClient) -> None:
    before = (await client.get("/api/jobs")).json()["jobs"]
    for body in ({"type": "demo", "params": {"step_seconds": "slow"}},
                 {"jobs": [{"type": "demo", "params": {"step_seconds": "slow"}}] * 100}):
        path = "/api/batches" if "jobs" in body else "/api/jobs"
        refused = await client.post(path, json=body)
        assert refused.status_code == 422, refused.text
        key = refused.json()["errors"][0]["key"]
        assert key == ("jobs[0].params.step_seconds" if "jobs" in body else "params.step_seconds")
        assert "number" in refused.json()["detail"]
    assert (await client.get("/api/jobs")).json()["jobs"] == before  # nothing was created


async def test_a_job_whose_params_its_processor_refuses_fails_naming_the_field(
        client: httpx.AsyncClient, stack: Stack, js: JetStreamContext) -> None:
    # A created event the gateway did not check (another client of the stream, an older schema):
    # the processor's own check ends it failed, unrun.
    created = JobCreated(ts=time.time(), job_id="bypassed-1", type="demo", params={"step_seconds": "slow"})
    await js.publish(subject_of(stack.names, created), encoder.encode(created))
    events = await read_sse(client, "/api/jobs/bypassed-1/events")
    assert outcome(events) == "failed"
    state = (await client.get("/api/jobs/bypassed-1")).json()
    assert state["error_reason"] == "invalid_params" and "step_seconds" in state["error"]
    assert state["attempt"] == 1 and state["started_at"] is None


async def test_list_jobs_newest_first_with_a_stable_cursor(client: httpx.AsyncClient) -> None:
    ids = [await submit(client, "noop") for _ in range(5)]
    first = (await client.get("/api/jobs", params={"limit": 2})).json()
    assert [j["id"] for j in first["jobs"]] == ids[::-1][:2]
    await submit(client, "noop")  # a new job does not shift the next page
    second = (await client.get("/api/jobs", params={"limit": 2, "before": first["next_before"]})).json()
    assert [j["id"] for j in second["jobs"]] == ids[::-1][2:4]
    only_demo = (await client.get("/api/jobs", params={"type": "demo"})).json()
    assert only_demo["jobs"] == []
    states = [(await client.get(f"/api/jobs/{i}")).json() for i in ids]
    window = (await client.get("/api/jobs", params={"created_after": states[1]["created_at"],
                                                    "created_before": states[3]["created_at"]})).json()
    assert [j["id"] for j in window["jobs"]] == [ids[2], ids[1]]
    assert (await client.get("/api/jobs", params={"limit": 0})).status_code == 400


async def test_job_log_lines_are_persisted_by_the_logsink(client: httpx.AsyncClient, js: JetStreamContext,
                                                         stack: Stack) -> None:
    job_id = await submit(client, "demo", FAST_DEMO)
    await read_sse(client, f"/api/jobs/{job_id}/events")
    emitted = [r.event.message for r in await read_timeline(js, stack.names, job_id) if r.kind == "logged"]
    assert len(emitted) == 6

    async def stored() -> list[str]:
        page = (await client.get(f"/api/jobs/{job_id}/logs")).json()
        return [row["message"] for row in page["rows"]]

    from .helpers import eventually

    async def all_stored() -> bool:
        return len(await stored()) >= len(emitted)

    await eventually(all_stored, what="the logsink to store the job's lines")
    assert await stored() == emitted


async def test_types_health_readiness_openapi_and_ui(client: httpx.AsyncClient) -> None:
    types = (await client.get("/api/types")).json()
    assert {"demo", "noop"} <= {t["name"] for t in types}
    by_name = {t["name"]: t for t in types}
    assert by_name["noop"]["timeout_s"] == 300.0  # the processor's default, for jobs that set no limit
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).status_code == 200
    schema = (await client.get("/schema/openapi.json")).json()
    for path in ("/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/events", "/api/jobs/{job_id}/logs"):
        assert path in schema["paths"], path
    page = await client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    vocabulary = await client.get("/vocabulary.js")  # the UI's statuses and kinds, from the contract
    assert vocabulary.headers["content-type"].startswith("text/javascript")
    assert 'export const TERMINAL = Object.freeze(["completed", "failed", "cancelled", "expired"]);' in vocabulary.text
    assert '"webhook_attempted"' in vocabulary.text
