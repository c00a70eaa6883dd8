"""Past timelines: the whole timeline, the state at a moment, a replay at speed; cheap polling."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import msgspec
import pytest
from nats.js import JetStreamContext

from .helpers import Stack, outcome, read_sse, submit
from .oracle import read_timeline

DEMO = {"steps": ["Upload", "Processing", "Done"], "step_seconds": 0.5, "ticks_per_step": 5}


# The services this module's tests run against (conftest.py's `stack`).
STACK: dict[str, Any] = dict(with_logsink=False)



@pytest.fixture
async def finished(client: httpx.AsyncClient) -> str:
    job_id = await submit(client, "demo", DEMO)
    assert outcome(await read_sse(client, f"/api/jobs/{job_id}/events")) == "completed"
    return job_id


async def test_the_timeline_endpoint_returns_every_stored_event_in_order(
    client: httpx.AsyncClient, js: JetStreamContext, stack: Stack, finished: str
) -> None:
    body = (await client.get(f"/api/jobs/{finished}/timeline")).json()
    stored = await read_timeline(js, stack.names, finished)
    assert body["job_id"] == finished
    assert [e["seq"] for e in body["events"]] == [r.seq for r in stored]
    assert [e["event"] for e in body["events"]] == [msgspec.to_builtins(r.event) for r in stored]
    prefix = f"{stack.names.namespace}.jobs.{finished}."
    assert all(e["stored_at"] > 0 and e["subject"].startswith(prefix) for e in body["events"])


async def test_state_at_a_sequence_or_a_moment(client: httpx.AsyncClient, js: JetStreamContext, stack: Stack,
                                               finished: str) -> None:
    stored = await read_timeline(js, stack.names, finished)
    created, started = stored[0], stored[1]
    assert (await client.get(f"/api/jobs/{finished}/state", params={"at": created.seq})).json()["status"] == "pending"
    at_start = (await client.get(f"/api/jobs/{finished}/state", params={"at": f"seq:{started.seq}"})).json()
    assert at_start["status"] == "running" and at_start["progress"] is None
    middle = next(r for r in stored if r.kind == "step_started" and r.event.name == "Processing")  # type: ignore[union-attr]
    then = (await client.get(f"/api/jobs/{finished}/state", params={"at": str(middle.event.ts)})).json()
    assert then["step"] == "Processing" and [s["status"] for s in then["steps"]] == ["done", "running", "pending"]
    assert (await client.get(f"/api/jobs/{finished}/state", params={"at": str(stored[-1].seq)})).json()["status"] == "completed"
    assert (await client.get(f"/api/jobs/{finished}/state", params={"at": "yesterday"})).status_code == 400


async def test_a_replay_at_16x_plays_the_recorded_cadence_sped_up(client: httpx.AsyncClient, js: JetStreamContext,
                                                                  stack: Stack, finished: str) -> None:
    stored = await read_timeline(js, stack.names, finished)
    recorded = stored[-1].event.ts - stored[0].event.ts
    loop = asyncio.get_running_loop()
    began = loop.time()
    events = await read_sse(client, f"/api/jobs/{finished}/events?replay=16")
    took = loop.time() - began
    assert recorded / 16 * 0.8 <= took <= recorded / 16 + 1.0, (recorded, took)
    assert events[0].event == "snapshot" and json.loads(events[0].data)["replay"] is True
    assert events[-1].event == "replay_end"
    assert [(int(e.id or 0), e.event) for e in events[1:-1]] == [(r.seq, r.kind) for r in stored[1:]]


async def test_a_replay_from_an_offset_starts_from_the_job_as_it_was_then(client: httpx.AsyncClient,
                                                                         finished: str) -> None:
    events = await read_sse(client, f"/api/jobs/{finished}/events?replay=1000&from=0.9")
    snapshot = json.loads(events[0].data)
    assert snapshot["job"]["status"] == "running" and 0 < snapshot["job"]["progress"] < 1
    assert snapshot["logs"], "log lines up to the offset come with the snapshot"
    assert events[-2].event == "completed"
    for bad in ("replay=0", "replay=1001", "replay=nan", "from=-1", "replay=2&from=-1", "from=inf"):
        answer = await client.get(f"/api/jobs/{finished}/events?{bad}")
        assert answer.status_code == 400 and answer.json()["errors"][0]["source"] == "query", bad


async def test_etag_and_304_make_polling_cheap(client: httpx.AsyncClient, finished: str) -> None:
    first = await client.get(f"/api/jobs/{finished}")
    tag = first.headers["etag"]
    again = await client.get(f"/api/jobs/{finished}", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b""
    assert (await client.get(f"/api/jobs/{finished}", headers={"If-None-Match": '"0"'})).status_code == 200


async def test_a_long_poll_returns_as_soon_as_the_job_changes(client: httpx.AsyncClient) -> None:
    job_id = await submit(client, "demo", {"steps": ["A"], "step_seconds": 3.0, "ticks_per_step": 2})
    tag = (await client.get(f"/api/jobs/{job_id}")).headers["etag"]
    loop = asyncio.get_running_loop()
    began = loop.time()
    changed = await client.get(f"/api/jobs/{job_id}", params={"wait": 30}, headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag
    assert loop.time() - began < 2.5, "the long-poll waited past the change"
    assert (await client.get(f"/api/jobs/{job_id}", params={"wait": 61})).status_code == 400
