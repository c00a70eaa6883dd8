"""Traces across the services (OpenTelemetry, the SDK's in-memory exporter): a job is one trace whose
spans come from the gateway (its submission, continuing the request's traceparent) and the processor
(its queue wait, the attempt, each step, the publish of its end); the job's state says its trace id.
Off (no exporter configured), nothing is made and a client's traceparent is only carried."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from jobline.processor import JobContext
from jobline.processor.registry import Registry
from jobline.runtime import tracing

from .helpers import outcome, read_sse

registry = Registry()


@registry.task("encode", steps=["probe", "encode"])
async def encode(ctx: JobContext) -> None:
    ctx.step("probe")
    ctx.step("encode")


@registry.task("fan-out")
async def fan_out(ctx: JobContext) -> Any:
    if ctx.children:  # (run again once they ended)
        return {"children": len(ctx.children)}
    ctx.spawn("encode", name="left")
    ctx.spawn("encode", name="right")
    return ctx.wait_for_children()


STACK: dict[str, Any] = dict(registry=registry, with_logsink=False)  # (the conductor releases a flow's parent)
TRACE, PARENT = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    try:
        yield exporter
    finally:
        tracing.use(None)


async def test_a_job_is_one_trace_from_the_gateway_to_the_processor(spans: InMemorySpanExporter,
                                                                  client: httpx.AsyncClient) -> None:
    answer = await client.post("/api/jobs", json={"type": "encode"}, headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
    job_id = answer.json()["id"]
    assert (await read_sse(client, f"/api/jobs/{job_id}/events"))[-1].event == "completed"
    assert (await client.get(f"/api/jobs/{job_id}")).json()["trace_id"] == TRACE
    found = {span.name: span for span in spans.get_finished_spans()}
    assert {"submit", "queue wait", "attempt", "step probe", "step encode", "publish completed"} <= set(found)
    assert {span.context.trace_id for span in found.values()} == {int(TRACE, 16)}
    assert found["submit"].instrumentation_scope.name == "jobline.gateway"
    assert found["attempt"].instrumentation_scope.name == "jobline.processor"
    submit = found["submit"]
    assert submit.parent is not None and submit.parent.span_id == int(PARENT, 16)  # the request's span
    for name in ("queue wait", "attempt"):
        assert found[name].parent.span_id == submit.context.span_id, name  # type: ignore[union-attr]
    for name in ("step probe", "step encode", "publish completed"):
        assert found[name].parent.span_id == found["attempt"].context.span_id, name  # type: ignore[union-attr]
    assert found["attempt"].attributes["jobline.job.id"] == job_id  # type: ignore[index]
    assert found["queue wait"].start_time <= found["attempt"].start_time  # type: ignore[operator]

    # Without a traceparent the submission starts the trace.
    other = (await client.post("/api/jobs", json={"type": "encode"})).json()["id"]
    await read_sse(client, f"/api/jobs/{other}/events")
    trace_id = (await client.get(f"/api/jobs/{other}")).json()["trace_id"]
    assert trace_id and trace_id != TRACE and len(trace_id) == 32
    assert any(s.name == "attempt" and f"{s.context.trace_id:032x}" == trace_id for s in spans.get_finished_spans())


async def test_a_batch_and_a_flow_are_one_trace_each(spans: InMemorySpanExporter, client: httpx.AsyncClient) -> None:
    batch = await client.post("/api/batches", json={"jobs": [{"type": "encode"}] * 2},
                              headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
    assert batch.status_code == 202, batch.text
    flow = await client.post("/api/flows", json={"job": {"type": "encode"}, "children": [{"job": {"type": "encode"}}]})
    assert flow.status_code == 202, flow.text
    jobs = [*batch.json()["jobs"], *(job["id"] for job in flow.json()["jobs"])]
    for job_id in jobs:
        assert outcome(await read_sse(client, f"/api/jobs/{job_id}/events")) == "completed"
    finished = spans.get_finished_spans()
    made = {span.name: span for span in finished if span.name in ("batch", "flow")}
    assert set(made) == {"batch", "flow"}, sorted({s.name for s in finished})
    assert made["batch"].parent is not None and made["batch"].parent.span_id == int(PARENT, 16)
    for name, ids in (("batch", jobs[:2]), ("flow", jobs[2:])):
        attempts = [s for s in finished if s.name == "attempt" and s.attributes["jobline.job.id"] in ids]  # type: ignore[index]
        assert len(attempts) == len(ids), name
        for attempt in attempts:  # each job's attempt under its queue wait, in the batch's (the flow's) trace
            assert attempt.context.trace_id == made[name].context.trace_id, name  # type: ignore[union-attr]
        states = [(await client.get(f"/api/jobs/{job_id}")).json()["trace_id"] for job_id in ids]
        assert set(states) == {f"{made[name].context.trace_id:032x}"}, name  # type: ignore[union-attr]


async def test_the_children_a_handler_spawns_are_in_its_trace(spans: InMemorySpanExporter,
                                                             client: httpx.AsyncClient) -> None:
    answer = await client.post("/api/jobs", json={"type": "fan-out"}, headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
    parent = answer.json()["id"]
    assert outcome(await read_sse(client, f"/api/jobs/{parent}/events")) == "completed"
    children = [f"{parent}-c0", f"{parent}-c1"]
    for child in children:
        assert outcome(await read_sse(client, f"/api/jobs/{child}/events")) == "completed"
        assert (await client.get(f"/api/jobs/{child}")).json()["trace_id"] == TRACE
    finished = spans.get_finished_spans()
    spawned = {s.attributes["jobline.job.id"]: s for s in finished if s.name == "spawn"}  # type: ignore[index]
    assert set(spawned) == set(children), sorted(s.name for s in finished)
    assert {s.instrumentation_scope.name for s in spawned.values()} == {"jobline.conductor"}
    published = [s for s in finished if s.name == "publish suspended"]  # (the first attempt's end: it spawned)
    assert len(published) == 1 and all(s.parent.span_id == published[0].context.span_id  # type: ignore[union-attr]
                                       for s in spawned.values())
    attempts = [s for s in finished if s.name == "attempt" and s.attributes["jobline.job.id"] in children]  # type: ignore[index]
    assert len(attempts) == 2 and {a.context.trace_id for a in attempts} == {int(TRACE, 16)}


async def test_off_nothing_is_made_and_a_traceparent_is_carried(client: httpx.AsyncClient) -> None:
    assert not tracing.enabled()
    plain = (await client.post("/api/jobs", json={"type": "encode"})).json()["id"]
    carried = (await client.post("/api/jobs", json={"type": "encode"},
                                 headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})).json()["id"]
    bad = (await client.post("/api/jobs", json={"type": "encode"}, headers={"traceparent": "nonsense"})).json()["id"]
    for job_id in (plain, carried, bad):
        await read_sse(client, f"/api/jobs/{job_id}/events")
    states = [(await client.get(f"/api/jobs/{j}")).json()["trace_id"] for j in (plain, carried, bad)]
    assert states == [None, TRACE, None]
