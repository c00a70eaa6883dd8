"""All or nothing, for real: a batch or flow is stored whole or not at all — also when one of its
jobs is too big, when its request is fuzzed, when its gateway is killed in the middle of the write —
and a key names one request only."""

from __future__ import annotations

import asyncio
import json
import random
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext

from jobline.contract.names import Names
from jobline.runtime.embedded_nats import EmbeddedNats

from .helpers import Stack, wait_for_job_type
from .processes import System

STACK: dict[str, Any] = dict(with_logsink=False, gateway={"stream_buffer": 64})
FAST = {"type": "demo", "params": {"steps": ["A"], "step_seconds": 0.01, "ticks_per_step": 1}}
BIG = 300 * 1024  # over the 256 KiB a single job may have (413 on /api/jobs)


@pytest.fixture
async def client(stack: Stack, js: JetStreamContext) -> AsyncIterator[httpx.AsyncClient]:
    await wait_for_job_type(js, stack.names, "demo")
    async with httpx.AsyncClient(base_url=stack.url, timeout=120) as http:
        yield http


async def stored_job_ids(js: JetStreamContext, names: Names) -> set[str]:
    """Every job id with at least one event in the job stream (from its subjects)."""
    info = await js.stream_info(names.jobs_stream, subjects_filter=names.all_job_events)
    position = len(names.job_timeline("x").split(".")) - 2  # (the id's token, after any namespace)
    return {subject.split(".")[position] for subject in (info.state.subjects or {})}


async def records(client: httpx.AsyncClient) -> list[str]:
    return [b["id"] for b in (await client.get("/api/batches")).json()]


def is_problem(response: httpx.Response, status: int) -> bool:
    return response.status_code == status and response.headers["content-type"].startswith("application/problem+json")


async def test_a_job_too_big_anywhere_refuses_the_whole_request_and_stores_nothing(
        client: httpx.AsyncClient, js: JetStreamContext, stack: Stack) -> None:
    big = {**FAST, "params": {**FAST["params"], "blob": "x" * BIG}}
    huge = {**FAST, "params": {**FAST["params"], "blob": "x" * (1 << 20)}}  # over NATS' 1 MB message limit
    before = await stored_job_ids(js, stack.names)
    alone = await client.post("/api/jobs", json=big)
    assert is_problem(alone, 413)
    for job in (big, huge):
        answer = await client.post("/api/batches", json={"jobs": [FAST, job]})
        assert is_problem(answer, 413), answer.text[:300]
        assert answer.json()["errors"][0]["key"] == "jobs[1].params" and answer.json()["index"] == 1
        flow = await client.post("/api/flows", json={"job": FAST, "children": [{"job": FAST}, {"job": job}]})
        assert is_problem(flow, 413), flow.text[:300]
        assert flow.json()["errors"][0]["key"] == "children[1].job.params"
        schedule = await client.post("/api/schedules", json={"name": "too-big", "cron": "@daily", "job": job})
        assert is_problem(schedule, 413), schedule.text[:300]
        assert schedule.json()["errors"][0]["key"] == "job.params"
    assert await stored_job_ids(js, stack.names) == before
    assert await records(client) == []
    assert (await client.get("/api/schedules")).json() == []


async def test_one_key_one_request(client: httpx.AsyncClient, js: JetStreamContext, stack: Stack) -> None:
    before = await stored_job_ids(js, stack.names)
    twice = await client.post("/api/batches", json={"jobs": [{**FAST, "idempotency_key": "same"}, FAST,
                                                             {**FAST, "idempotency_key": "same"}]})
    assert is_problem(twice, 409) and twice.json()["errors"][0]["key"] == "jobs[2].idempotency_key"
    assert await stored_job_ids(js, stack.names) == before

    other = {**FAST, "params": {**FAST["params"], "steps": ["B"]}}
    for path, first, second in [
        ("/api/jobs", FAST, other),
        ("/api/batches", {"jobs": [FAST]}, {"jobs": [other]}),
        ("/api/flows", {"job": FAST, "children": [{"job": FAST}]}, {"job": FAST, "children": [{"job": other}]}),
    ]:
        key = {"Idempotency-Key": f"key-of{path.replace('/', '-')}"}
        made = await client.post(path, json=first, headers=key)
        assert made.status_code == 202, made.text
        again = await client.post(path, json=json.loads(json.dumps(first)), headers=key)  # the same request
        assert again.status_code == 202 and again.json()["id"] == made.json()["id"]
        assert again.headers.get("idempotent-replayed") == "true"
        reused = await client.post(path, json=second, headers=key)  # the key with another body
        assert is_problem(reused, 409), (path, reused.status_code, reused.text[:300])
        assert reused.json()["errors"][0]["key"] == "Idempotency-Key"
    # The members of a JSON object in another order are the same request.
    key = {"Idempotency-Key": "order"}
    first = await client.post("/api/jobs", json={"type": "demo", "params": {"steps": ["A"], "step_seconds": 0.01}},
                              headers=key)
    second = await client.post("/api/jobs", json={"params": {"step_seconds": 0.01, "steps": ["A"]}, "type": "demo"},
                               headers=key)
    assert second.status_code == 202 and second.json()["id"] == first.json()["id"]


def _flow(rng: random.Random, depth: int, budget: list[int]) -> list[dict[str, Any]]:
    children = []
    for index in range(rng.randint(1, 3) if depth < 4 else 0):
        if budget[0] <= 0:
            break
        budget[0] -= 1
        children.append({"name": f"c{index}", "job": dict(FAST), "children": _flow(rng, depth + 1, budget)})
    return children


def _broken(rng: random.Random, body: dict[str, Any], jobs: list[dict[str, Any]]) -> str:
    """Break one job (or the whole) of a body in a random way; returns how."""
    how = rng.choice(["big", "huge", "type", "params", "limit", "key", "deep"])
    job = rng.choice(jobs)
    if how == "deep" and "children" in body:  # one branch 33 levels below the root: one too many
        node: dict[str, Any] = {"job": dict(FAST)}
        for _ in range(32):
            node = {"job": dict(FAST), "children": [node]}
        body["children"].append({"name": "deep", **node})
        return how
    if how == "big":
        job["params"] = {**job["params"], "blob": "x" * BIG}
    elif how == "huge":
        job["params"] = {**job["params"], "blob": "y" * (1 << 20)}
    elif how == "type":
        job["type"] = "no-such-type"
    elif how == "params":
        job["params"] = {**job["params"], "step_seconds": "soon"}
    elif how == "limit":
        job["max_attempts"] = 10_000
    elif "jobs" in body and len(jobs) > 1:  # key: the same idempotency_key twice in one batch
        jobs[0]["idempotency_key"] = jobs[-1]["idempotency_key"] = f"k{rng.random()}"
    else:
        job["timeout_s"] = -1
    return how


async def test_fuzzed_batches_and_flows_are_stored_whole_or_not_at_all(
        client: httpx.AsyncClient, js: JetStreamContext, stack: Stack) -> None:
    rng = random.Random(20261207)
    for round_ in range(40):
        known = await stored_job_ids(js, stack.names)
        if rng.random() < 0.5:
            jobs = [json.loads(json.dumps(FAST)) for _ in range(rng.randint(1, 300))]
            for job in rng.sample(jobs, k=min(len(jobs), rng.randint(0, 3))):
                job["idempotency_key"] = f"fuzz-{round_}-{rng.random()}"
            body: dict[str, Any] = {"jobs": jobs}
            path = "/api/batches"
        else:
            body = {"job": dict(FAST), "children": _flow(rng, 1, [rng.randint(1, 40)])}
            jobs, waiting = [body["job"]], list(body["children"])
            while waiting:
                child = waiting.pop()
                jobs.append(child["job"])
                waiting.extend(child["children"])
            path = "/api/flows"
        broken = _broken(rng, body, jobs) if rng.random() < 0.7 else None
        answer = await client.post(path, json=body)
        now = await stored_job_ids(js, stack.names)
        if broken is None:
            assert answer.status_code == 202, (round_, answer.text[:300])
            made = set(answer.json()["jobs"] if path == "/api/batches" else (j["id"] for j in answer.json()["jobs"]))
            assert made <= now and len(made) == len(jobs)
        else:
            assert 400 <= answer.status_code < 500, (round_, broken, answer.status_code, answer.text[:300])
            assert now == known, (round_, broken, f"{len(now - known)} jobs stored by a refused request")


async def test_a_batch_stream_with_many_jobs_is_not_dropped_after_its_snapshot(
        client: httpx.AsyncClient, stack: Stack) -> None:
    # 2,000 jobs against a stream buffer of 64 frames (this module's STACK): every job's events arrive
    # while the snapshot is read, far more than the buffer.
    answer = await client.post("/api/batches", json={"jobs": [FAST] * 2000})
    batch_id = answer.json()["id"]
    snapshot_ended, ended, completed = 0, set(), None
    async with client.stream("GET", f"/api/batches/{batch_id}/events") as response:
        kind = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                if kind == "snapshot":
                    snapshot_ended = data["ended"]
                elif kind == "job_ended":
                    ended.add(data["job_id"])
                elif kind == "batch_completed":
                    completed = data
    assert completed is not None, "the stream ended before the batch did (a dropped client)"
    assert completed["ended"] == 2000 and snapshot_ended + len(ended) == 2000


# --- a gateway killed in the middle of the write ----------------------------------------------------
@pytest.mark.slow
async def test_a_batch_whose_gateway_is_killed_mid_write_is_stored_whole_or_not_at_all(
        nats_server: EmbeddedNats, names: Names, tmp_path: Path, js: JetStreamContext) -> None:
    system = System(nats_server.url, names, tmp_path, settings={"JOBLINE_HISTORY_START_WAIT_S": "0"})
    await system.start_all(processors=1, logsink=False)
    jobs = [{"type": "noop", "params": {"n": i}} for i in range(10_000)]
    try:
        async with httpx.AsyncClient(timeout=120) as http:
            post = asyncio.create_task(http.post(f"{system.url}/api/batches", json={"jobs": jobs},
                                                 headers={"Idempotency-Key": "killed"}))
            gateway = system.processes["gateway"]
            await gateway.wait_for_line(r"storing \d+ jobs in one atomic write", timeout=60)
            gateway.send(signal.SIGKILL)
            with pytest.raises(httpx.HTTPError):
                await post
            system.forget(gateway)
            stored = await stored_job_ids(js, names)
            assert len(stored) in (0, 10_000), f"{len(stored)} of 10,000 jobs stored: a partial batch"
            await system.start("gateway")  # the client repeats its request: the batch is made once, whole
            again = await http.post(f"{system.url}/api/batches", json={"jobs": jobs},
                                    headers={"Idempotency-Key": "killed"})
            assert again.status_code == 202, again.text[:300]
            assert again.headers.get("idempotent-replayed") == "true"
            assert set(again.json()["jobs"]) == await stored_job_ids(js, names) and len(again.json()["jobs"]) == 10_000
    finally:
        for process in list(system.processes.values()):
            await process.stop()
