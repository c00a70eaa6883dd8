"""Every event of an attempt is a conditional write on the job's run chain: once a newer attempt
(or an end) is on the chain, the broker refuses the old attempt's events."""

from __future__ import annotations

import asyncio
import time

import pytest
from nats.js import JetStreamContext

from jobline.contract.events import JobStarted, LogLineWritten
from jobline.contract.names import Names
from jobline.processor.context import Outbox
from jobline.processor.fence import Fenced, RunChain
from jobline.runtime.stream_setup import ensure_streams

from .helpers import TEST_RETENTION
from .oracle import read_timeline


async def test_a_superseded_attempts_outbox_is_refused_by_the_broker(js: JetStreamContext, names: Names) -> None:
    await ensure_streams(js, names, TEST_RETENTION)
    job_id = "fenced-job"
    first = RunChain(js, names, job_id)
    started_1 = await first.append(JobStarted(ts=time.time(), job_id=job_id, attempt=1, worker="w1"), "s1")
    fenced_out = asyncio.Event()
    outbox = Outbox(js, names, job_id, 1, started_1, on_fenced=fenced_out.set)
    outbox.put(LogLineWritten(ts=time.time(), job_id=job_id, attempt=1, level="info", message="before"))
    await _stored(js, names, job_id, 2)

    # Attempt 2 takes over (the worker of attempt 1 was presumed dead).
    second = RunChain(js, names, job_id, last_seq=started_1)
    await second.append(JobStarted(ts=time.time(), job_id=job_id, attempt=2, worker="w2"), "s2")
    outbox.put(LogLineWritten(ts=time.time(), job_id=job_id, attempt=1, level="info", message="too late"))
    with pytest.raises(Fenced):
        await asyncio.wait_for(outbox.close(), 10)
    assert fenced_out.is_set()
    messages = [getattr(r.event, "message", r.kind) for r in await read_timeline(js, names, job_id)]
    assert messages == ["started", "before", "started"]


async def _stored(js: JetStreamContext, names: Names, job_id: str, count: int) -> None:
    """Event-driven: follow the job's subjects until `count` messages are stored."""
    sub = await js.subscribe(names.job_timeline(job_id), stream=names.jobs_stream, ordered_consumer=True)
    try:
        for _ in range(count):
            await sub.next_msg(timeout=10)
    finally:
        await sub.unsubscribe()


async def test_an_outbox_publishes_what_was_put_before_close_and_nothing_after(js: JetStreamContext, names: Names) -> None:
    await ensure_streams(js, names, TEST_RETENTION)
    job_id = "closed-outbox"
    chain = RunChain(js, names, job_id)
    started = await chain.append(JobStarted(ts=time.time(), job_id=job_id, attempt=1, worker="w1"), "s1")
    quiet = Outbox(js, names, job_id, 1, started)
    await asyncio.wait_for(quiet.close(), 10)  # nothing put: closes at once
    quiet.put(LogLineWritten(ts=time.time(), job_id=job_id, attempt=1, level="info", message="late"))
    busy = Outbox(js, names, job_id, 1, started)
    for message in ("one", "two"):
        busy.put(LogLineWritten(ts=time.time(), job_id=job_id, attempt=1, level="info", message=message))
    await asyncio.wait_for(busy.close(), 10)
    busy.put(LogLineWritten(ts=time.time(), job_id=job_id, attempt=1, level="info", message="late too"))
    await chain.append(JobStarted(ts=time.time(), job_id=job_id, attempt=2, worker="w1"), "s2")  # a later marker
    messages = [getattr(r.event, "message", r.kind) for r in await read_timeline(js, names, job_id)]
    assert messages == ["started", "one", "two", "started"]
