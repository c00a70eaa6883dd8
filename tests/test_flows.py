"""Flows: a parent runs only after its children have ended and reads their outcomes; siblings wait
for those they depend on; the failure policies; cancelling a parent; bad flows create nothing.
Checked from the jobs' own timelines (the order the stream stored them)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext

from jobline.contract.names import Names
from jobline.processor import JobContext
from jobline.processor.builtin_tasks import DemoParams, gather
from jobline.processor.builtin_tasks import demo as builtin_demo
from jobline.processor.registry import Registry
from jobline.runtime.embedded_nats import EmbeddedNats

from .helpers import Stack, wait_for_job_type
from .oracle import Recorded, check_timeline, read_timeline
from .processes import System
from .test_faults import started_worker_pid
from .test_queues import ends

registry = Registry()
registry.task("demo", params=DemoParams, steps=lambda p: list(p.steps))(builtin_demo)
registry.task("gather")(gather)


@registry.task("fanout")
async def fanout(ctx: JobContext) -> dict[str, str]:
    """Adds children while it runs, waits for them without holding a slot, then reports them."""
    if not ctx.children:
        ctx.step("Split")
        for i in range(int(ctx.params.get("parts", 3))):
            ctx.spawn("demo", {"steps": ["S"], "step_seconds": 0.1, "ticks_per_step": 1}, name=f"part{i}")
        if ctx.params.get("bad"):
            ctx.spawn("no-such-type", name="bad")
        return ctx.wait_for_children()
    ctx.step("Join")
    return {name: child.status for name, child in ctx.children.items()}


STACK: dict[str, Any] = dict(with_logsink=False, registry=registry)


def demo(seconds: float = 0.2, **extra: Any) -> dict[str, Any]:
    return {"type": "demo", "params": {"steps": ["S"], "step_seconds": seconds, "ticks_per_step": 2, **extra}}


FAILING = {"type": "demo", "params": {"steps": ["S"], "step_seconds": 0.05, "fail_at_step": "S"}, "max_attempts": 1}


@pytest.fixture
async def client(stack: Stack, js: JetStreamContext) -> AsyncIterator[httpx.AsyncClient]:
    await wait_for_job_type(js, stack.names, "gather")
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
        yield http


async def submit(client: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    answer = await client.post("/api/flows", json=body, headers=headers)
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


async def timelines(js: JetStreamContext, stack: Stack, accepted: dict[str, Any]) -> dict[str, list[Recorded]]:
    """Each job's timeline by its name (the root's: `root`), each checked by the oracle."""
    out = {}
    for job in accepted["jobs"]:
        timeline = await read_timeline(js, stack.names, job["id"])
        check_timeline(timeline)
        out[job["name"] or "root"] = timeline
    return out


def seq_of(timeline: list[Recorded], kind: str) -> int:
    return next(r.seq for r in timeline if r.kind == kind)


def end_seq(timeline: list[Recorded]) -> int:
    return next(r.seq for r in timeline if r.kind in ("completed", "failed", "cancelled", "expired"))


async def test_a_parent_runs_after_its_children_and_reads_their_outcomes(client: httpx.AsyncClient, stack: Stack,
                                                                         js: JetStreamContext) -> None:
    accepted = await submit(client, {"job": {"type": "gather"}, "on_child_failure": "continue", "children": [
        {"name": "a", "job": demo(0.3)},
        {"name": "b", "job": demo(0.1), "depends_on": ["a"]},
        {"name": "c", "job": FAILING}]})
    root = accepted["id"]
    assert [j["name"] for j in accepted["jobs"]] == [None, "a", "b", "c"]
    assert all(j["id"].startswith(root) for j in accepted["jobs"])
    state = (await client.get(f"/api/jobs/{root}")).json()
    assert state["status"] == "blocked" and len(state["blocked_on"]) == 3 and state["flow"] == root
    assert await ends(client, [root]) == ["completed"]
    result = (await client.get(f"/api/jobs/{root}")).json()["result"]
    assert result["a"] == {"status": "completed", "result": {"steps": 1, "ok": True}, "error": None}
    assert result["b"]["status"] == "completed" and result["c"]["status"] == "failed"
    assert "fail_at_step" in result["c"]["error"]
    lines = await timelines(js, stack, accepted)
    assert [r.kind for r in lines["root"][:2]] == ["blocked", "created"]
    last_child_end = max(end_seq(lines[n]) for n in "abc")
    assert seq_of(lines["root"], "created") > last_child_end  # released only after the last child ended
    assert seq_of(lines["b"], "started") > end_seq(lines["a"])  # b waited for a
    assert lines["a"][0].kind == "created"  # a waited for nothing
    tree = (await client.get(f"/api/flows/{root}")).json()
    assert tree["status"] == "completed" and tree["rollup"] == 1.0
    assert [(c["name"], c["status"]) for c in tree["children"]] == [("a", "completed"), ("b", "completed"), ("c", "failed")]


async def test_a_failed_child_fails_what_waits_for_it_unrun_by_default(client: httpx.AsyncClient, stack: Stack,
                                                                       js: JetStreamContext) -> None:
    accepted = await submit(client, {"job": {"type": "gather"}, "children": [
        {"name": "bad", "job": FAILING},
        {"name": "after", "job": demo(), "depends_on": ["bad"]},
        {"name": "fine", "job": demo()}]})
    root = accepted["id"]
    assert await ends(client, [root]) == ["failed"]
    state = (await client.get(f"/api/jobs/{root}")).json()
    assert state["error_reason"] == "child_failed" and state["attempt"] == 0
    lines = await timelines(js, stack, accepted)
    for name in ("root", "after"):
        assert "started" not in [r.kind for r in lines[name]], f"{name} ran"
        assert lines[name][-1].kind == "failed"
    assert lines["fine"][-1].kind == "completed"


async def test_under_ignore_the_parent_runs_and_sees_only_the_children_that_completed(
        client: httpx.AsyncClient) -> None:
    accepted = await submit(client, {"job": {"type": "gather"}, "on_child_failure": "ignore",
                                     "children": [{"name": "bad", "job": FAILING}, {"name": "good", "job": demo()}]})
    assert await ends(client, [accepted["id"]]) == ["completed"]
    assert list((await client.get(f"/api/jobs/{accepted['id']}")).json()["result"]) == ["good"]


async def test_nested_flows_roll_progress_up_and_end_bottom_up(client: httpx.AsyncClient, stack: Stack,
                                                               js: JetStreamContext) -> None:
    accepted = await submit(client, {"job": {"type": "gather"}, "children": [
        {"name": "left", "job": {"type": "gather"}, "weight": 3,
         "children": [{"name": "x", "job": demo()}, {"name": "y", "job": demo()}]},
        {"name": "right", "job": demo()}]})
    root = accepted["id"]
    assert await ends(client, [root]) == ["completed"]
    lines = await timelines(js, stack, accepted)
    assert seq_of(lines["left"], "started") > max(end_seq(lines["x"]), end_seq(lines["y"]))
    assert seq_of(lines["root"], "started") > max(end_seq(lines["left"]), end_seq(lines["right"]))
    result = (await client.get(f"/api/jobs/{root}")).json()["result"]
    assert result["left"]["result"] == {n: {"status": "completed", "result": {"steps": 1, "ok": True}, "error": None}
                                        for n in ("x", "y")}
    tree = (await client.get(f"/api/flows/{root}")).json()
    assert tree["children"][0]["weight"] == 3 and [c["name"] for c in tree["children"][0]["children"]] == ["x", "y"]


async def test_cancelling_a_parent_cancels_its_unfinished_children(client: httpx.AsyncClient, stack: Stack,
                                                                   js: JetStreamContext) -> None:
    accepted = await submit(client, {"job": {"type": "gather"}, "children": [
        {"name": "slow", "job": demo(30)}, {"name": "later", "job": demo(), "depends_on": ["slow"]}]})
    root, slow = accepted["id"], accepted["jobs"][1]["id"]
    await started_worker_pid(client, slow)  # (follows its events until it runs)
    answer = await client.post(f"/api/jobs/{root}/cancel")
    assert answer.status_code == 202, answer.text
    assert set(await ends(client, [j["id"] for j in accepted["jobs"]])) == {"cancelled"}
    lines = await timelines(js, stack, accepted)
    assert "started" not in [r.kind for r in lines["later"]]


@pytest.mark.parametrize("body, status, key", [
    ({"job": {"type": "gather"}, "children": [{"name": "a", "job": {"type": "demo"}, "depends_on": ["b"]},
                                              {"name": "b", "job": {"type": "demo"}, "depends_on": ["a"]}]},
     422, "children"),
    ({"job": {"type": "gather"}, "children": [{"name": "a", "job": {"type": "demo"}, "depends_on": ["nobody"]}]},
     422, "children[0].depends_on"),
    ({"job": {"type": "gather"}, "children": [{"job": {"type": "demo"}}, {"job": {"type": "no-such-type"}}]},
     422, "children[1].job.type"),
    ({"job": {"type": "gather"}, "children": [{"name": "a", "job": {"type": "demo"}}, {"name": "a", "job": {"type": "demo"}}]},
     422, "children[1].name"),
    ({"job": {"type": "gather"}, "children": [{"job": {"type": "demo", "delay_s": 5}}]}, 422, "children[0].job.delay_s"),
    ({"job": {"type": "gather"}, "children": [{"job": {"type": "demo"}}] * 500}, 422, "children"),
    ({"job": {"type": "gather"}, "children": []}, 422, "children"),
    ({"job": {"type": "gather"}, "children": [{"job": {"type": "demo"}, "surprise": 1}]}, 400, None),
    ({"job": {"type": "gather"}, "children": [{"job": {"type": "demo"}}], "on_child_failure": "maybe"}, 400, None),
])
async def test_bad_flows_create_nothing_and_say_where(client: httpx.AsyncClient, stack: Stack, js: JetStreamContext,
                                                      body: dict[str, Any], status: int, key: str | None) -> None:
    before = (await js.stream_info(stack.names.jobs_stream)).state.messages
    answer = await client.post("/api/flows", json=body)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    if key is not None:
        assert answer.json()["errors"][0]["key"] == key
    assert (await js.stream_info(stack.names.jobs_stream)).state.messages == before


async def test_a_flow_retried_with_one_idempotency_key_is_created_once(client: httpx.AsyncClient, stack: Stack,
                                                                       js: JetStreamContext) -> None:
    body = {"job": {"type": "gather"}, "children": [{"name": n, "job": demo(0.05)} for n in "abc"]}
    answers = await asyncio.gather(*(client.post("/api/flows", json=body, headers={"Idempotency-Key": "flow-1"})
                                     for _ in range(3)))
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["id"] for a in answers}) == 1
    accepted = answers[0].json()
    assert await ends(client, [accepted["id"]]) == ["completed"]
    await timelines(js, stack, accepted)  # every job of it: one created event, one end


@pytest.mark.slow
async def test_a_flow_survives_a_kill_9_of_a_processor_mid_child(nats_server: EmbeddedNats, names: Names,
                                                                 tmp_path: Path, js: JetStreamContext) -> None:
    system = System(nats_server.url, names, tmp_path, settings={"JOBLINE_ACK_WAIT_S": "2"})
    try:
        await system.start_all(processors=2, logsink=False)
        async with httpx.AsyncClient(base_url=system.url, timeout=20) as client:
            children = [{"name": f"c{i}", "job": {"type": "demo", "params": {"steps": ["A", "B"], "step_seconds": 0.5,
                                                                             "ticks_per_step": 2}}} for i in range(4)]
            answer = await client.post("/api/flows", json={"job": {"type": "gather"}, "children": children})
            assert answer.status_code == 202, answer.text
            accepted = answer.json()
            victim = await started_worker_pid(client, accepted["jobs"][1]["id"])
            os.kill(victim, signal.SIGKILL)  # mid-child: the other processor finishes it as attempt 2
            system.forget(system.by_pid(victim))
            root = accepted["id"]
            assert await ends(client, [root], timeout=90) == ["completed"]
            result = (await client.get(f"/api/jobs/{root}")).json()["result"]
            assert {name: outcome["status"] for name, outcome in result.items()} == {f"c{i}": "completed" for i in range(4)}
            ends_at, root_start = [], 0
            for job in accepted["jobs"]:
                timeline = await read_timeline(js, names, job["id"])
                check_timeline(timeline)  # one end each, attempts without gaps
                if job["parent"] is None:
                    root_start = seq_of(timeline, "started")
                else:
                    ends_at.append(end_seq(timeline))
            assert root_start > max(ends_at)  # the parent started only after the last child ended
            killed = await read_timeline(js, names, accepted["jobs"][1]["id"])
            assert [r.event.attempt for r in killed if r.kind == "started"] == [1, 2]
    finally:
        await system.stop()


async def test_a_handler_adds_children_waits_without_its_slot_and_runs_again_with_their_outcomes(
        client: httpx.AsyncClient, stack: Stack, js: JetStreamContext) -> None:
    await wait_for_job_type(js, stack.names, "fanout")
    job_id = (await client.post("/api/jobs", json={"type": "fanout"})).json()["id"]
    assert await ends(client, [job_id]) == ["completed"]
    state = (await client.get(f"/api/jobs/{job_id}")).json()
    assert state["result"] == {"part0": "completed", "part1": "completed", "part2": "completed"}
    assert state["flow"] == job_id and [c["name"] for c in state["children"]] == ["part0", "part1", "part2"]
    timeline = await read_timeline(js, stack.names, job_id)
    check_timeline(timeline)
    runs = [r.kind for r in timeline if r.kind in ("created", "started", "suspended", "completed")]
    assert runs == ["created", "started", "suspended", "created", "started", "completed"]
    resumed_at = [r.seq for r in timeline if r.kind == "created"][1]
    child_ends = []
    for child in state["children"]:
        child_timeline = await read_timeline(js, stack.names, child["id"])
        check_timeline(child_timeline)
        assert child_timeline[0].event.parent == job_id  # type: ignore[union-attr]
        child_ends.append(end_seq(child_timeline))
    assert resumed_at > max(child_ends)  # run again only after the last child ended
    tree = (await client.get(f"/api/flows/{job_id}")).json()
    assert tree["rollup"] == 1.0 and len(tree["children"]) == 3


async def test_a_child_that_cannot_be_created_fails_and_fails_its_parent_under_the_default_policy(
        client: httpx.AsyncClient, stack: Stack, js: JetStreamContext) -> None:
    await wait_for_job_type(js, stack.names, "fanout")
    job_id = (await client.post("/api/jobs", json={"type": "fanout", "params": {"parts": 1, "bad": True}})).json()["id"]
    assert await ends(client, [job_id]) == ["failed"]
    state = (await client.get(f"/api/jobs/{job_id}")).json()
    assert state["error_reason"] == "child_failed" and "-c1" in state["error"]
    bad = (await client.get(f"/api/jobs/{job_id}-c1")).json()
    assert bad["status"] == "failed" and "no-such-type" in bad["error"] and bad["name"] == "bad"
    timeline = await read_timeline(js, stack.names, job_id)
    assert [r.kind for r in timeline if r.kind == "started"] == ["started"]  # never resumed
