"""The backbone: streams set up idempotently, drift reported, one terminal event per job."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StorageType
from nats.js.errors import APIError

from jobline.contract.events import JobCompleted, JobFailed, JobStarted, LogLineWritten, ProgressReported, encoder
from jobline.contract.names import Names
from jobline.contract.publishing import WRONG_LAST_SEQUENCE_ERR, fenced, subject_of
from jobline.contract.streams import types_bucket_config
from jobline.runtime.buckets import key_value
from jobline.runtime.embedded_nats import start_nats_server
from jobline.runtime.stream_setup import ensure_streams

from .helpers import TEST_RETENTION, eventually


async def test_streams_are_created_once_and_left_alone_when_unchanged(js: JetStreamContext, names: Names,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    retention = replace(TEST_RETENTION, jobs_max_age_s=3600, logs_max_bytes=10_000_000)
    await ensure_streams(js, names, retention)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="jobline.runtime.stream_setup"):
        await ensure_streams(js, names, retention)
    assert caplog.records == []
    jobs = await js.stream_info(names.jobs_stream)
    assert jobs.config.subjects == [names.all_job_events, names.all_schedules] and jobs.config.allow_msg_schedules
    assert StorageType(jobs.config.storage) == StorageType.FILE
    assert jobs.config.max_age == 3600


async def test_configuration_drift_is_reported_and_fixed(js: JetStreamContext, names: Names,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    await ensure_streams(js, names, TEST_RETENTION)
    with caplog.at_level(logging.WARNING, logger="jobline.runtime.stream_setup"):
        await ensure_streams(js, names, replace(TEST_RETENTION, jobs_max_age_s=60, logs_max_bytes=5_000_000))
    warnings = " ".join(r.getMessage() for r in caplog.records)
    assert f"stream {names.jobs_stream} differs" in warnings and "max_age" in warnings
    assert f"stream {names.logs_stream} differs" in warnings and "max_bytes" in warnings
    assert (await js.stream_info(names.jobs_stream)).config.max_age == 60


async def test_the_broker_keeps_one_terminal_event_and_fences_out_a_superseded_attempt(
    js: JetStreamContext, names: Names
) -> None:
    await ensure_streams(js, names, TEST_RETENTION)

    async def append(event: object, last_seq: int) -> int:
        ack = await js.publish(subject_of(names, event), encoder.encode(event), headers=fenced(names, "j1", last_seq))
        return ack.seq

    first = await append(JobStarted(ts=1.0, job_id="j1", attempt=1, worker="a"), 0)
    # Worker a is presumed dead; attempt 2 starts after it.
    second = await append(JobStarted(ts=2.0, job_id="j1", attempt=2, worker="b"), first)
    # Unrelated events of the job do not move the run chain.
    progress = ProgressReported(ts=2.5, job_id="j1", attempt=2, fraction=0.5)
    await js.publish(subject_of(names, progress), encoder.encode(progress))
    # a wakes up and tries to end the job: refused.
    with pytest.raises(APIError) as stale:
        await append(JobCompleted(ts=3.0, job_id="j1", attempt=1), first)
    assert stale.value.err_code == WRONG_LAST_SEQUENCE_ERR
    await append(JobCompleted(ts=4.0, job_id="j1", attempt=2), second)
    # Exactly one end: a second terminal event is refused whoever sends it.
    for last in (0, first, second):
        with pytest.raises(APIError):
            await append(JobFailed(ts=5.0, job_id="j1", attempt=2, error="late"), last)
    # Another job's chain is independent.
    other = JobCompleted(ts=1.0, job_id="j2", attempt=0)
    await js.publish(subject_of(names, other), encoder.encode(other), headers=fenced(names, "j2", 0))


async def test_job_log_lines_reach_the_log_stream(js: JetStreamContext, names: Names) -> None:
    await ensure_streams(js, names, TEST_RETENTION)
    line = LogLineWritten(ts=1.0, job_id="j1", attempt=1, level="info", message="hello")
    await js.publish(subject_of(names, line), encoder.encode(line))
    await js.publish(names.service_log("gateway", "info"), b"{}")

    async def both_in_log_stream() -> bool:
        return (await js.stream_info(names.logs_stream)).state.messages == 2

    await eventually(both_in_log_stream, what="the sourced job log line")
    assert (await js.stream_info(names.jobs_stream)).state.messages == 1


async def test_the_fast_ack_subject_reading_agrees_with_nats_py(js: JetStreamContext, names: Names) -> None:
    from nats.aio.msg import Msg

    from jobline.runtime.consuming import delivery_of, stream_position

    await ensure_streams(js, names, TEST_RETENTION)
    for _ in range(3):
        await js.publish(names.job_event("pos", "log"), b"{}")
    sub = await js.subscribe(names.job_timeline("pos"), stream=names.jobs_stream, ordered_consumer=True)
    try:
        for _ in range(3):
            msg = await sub.next_msg(timeout=5)
            meta = msg.metadata
            assert meta.timestamp is not None
            seq, ts, pending = stream_position(msg)
            assert (seq, pending) == (meta.sequence.stream, meta.num_pending)
            assert delivery_of(msg) == (meta.sequence.stream, meta.num_delivered)
            assert ts == pytest.approx(meta.timestamp.timestamp(), abs=1e-6)  # datetime keeps only µs
        v2 = Msg(_client=None, subject="x", reply="$JS.ACK.hub.ACCHASH.JOBS.c.1.42.7.1700000000123456789.5.rnd")  # type: ignore[arg-type]
        assert stream_position(v2) == (42, 1700000000.123456789, 5)
        assert delivery_of(v2) == (42, 1)
        assert v2.metadata.sequence.stream == 42 and v2.metadata.num_pending == 5 and v2.metadata.num_delivered == 1
    finally:
        await sub.unsubscribe()


async def test_acked_publish_reports_the_stream_answer_like_nats_py(js: JetStreamContext, names: Names) -> None:
    from nats.js.errors import NoStreamResponseError

    from jobline.runtime.publishing import publish_acked

    with pytest.raises(NoStreamResponseError):  # no stream on the subject: nobody answers
        await publish_acked(js, f"{names.namespace}-nowhere.x", b"{}", {"Nats-Msg-Id": "n"}, timeout=2)
    await ensure_streams(js, names, TEST_RETENTION)
    started = JobStarted(ts=1.0, job_id="ack", attempt=1, worker="w")
    subject, payload = subject_of(names, started), encoder.encode(started)
    first = await publish_acked(js, subject, payload, {"Nats-Msg-Id": "ack-1", **fenced(names, "ack", 0)}, timeout=2)
    assert first.stream == names.jobs_stream and first.seq > 0 and not first.duplicate
    again = await publish_acked(js, subject, payload, {"Nats-Msg-Id": "ack-1"}, timeout=2)
    assert again.duplicate and again.seq == first.seq
    with pytest.raises(APIError) as refused:  # the chain is no longer empty
        await publish_acked(js, subject, payload, {"Nats-Msg-Id": "ack-2", **fenced(names, "ack", 0)}, timeout=2)
    assert refused.value.err_code == WRONG_LAST_SEQUENCE_ERR


async def test_credited_pull_gets_exactly_what_it_asked_for_and_an_ack_can_ask_for_the_next(
        nc: Client, js: JetStreamContext, names: Names) -> None:
    from nats.js.api import AckPolicy, ConsumerConfig

    from jobline.runtime.pull import CreditedPull

    await ensure_streams(js, names, TEST_RETENTION)
    for i in range(3):
        await js.publish(names.job_event(f"pull{i}", "log"), b"{}")
    await js.add_consumer(names.jobs_stream, ConsumerConfig(durable_name="pulltest", ack_policy=AckPolicy.EXPLICIT,
                                                            filter_subject=names.all_job_events))
    got: asyncio.Queue[object] = asyncio.Queue()
    pull = CreditedPull(nc, names.jobs_stream, "pulltest", got.put_nowait)
    await pull.start()
    try:
        await pull.want(1)
        first = await asyncio.wait_for(got.get(), 5)
        assert pull.credit == 0
        await pull.want(1, low_water=0)
        second = await asyncio.wait_for(got.get(), 5)
        await nc.flush()
        assert got.empty() and pull.credit == 0  # never more in hand than asked for
        await pull.ack_and_ask(first, 1)  # type: ignore[arg-type]
        third = await asyncio.wait_for(got.get(), 5)
        assert [m.subject for m in (first, second, third)] == [names.job_event(f"pull{i}", "log") for i in range(3)]  # type: ignore[attr-defined]
        info = await js.consumer_info(names.jobs_stream, "pulltest")
        assert info.num_ack_pending == 2 and info.ack_floor.stream_seq == 1  # the first is acked
    finally:
        await pull.stop()


async def test_buckets_and_streams_wait_for_jetstream_to_come_up(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A service started before its cluster has JetStream ready (compose bringing all up at once)
    waits, bounded, instead of exiting: here a server first runs without JetStream, then with it
    on the same port."""
    server = start_nats_server(tmp_path / "nats", extra_args=["-js=false"])
    port = int(server.url.rsplit(":", 1)[1])
    nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    names = Names("late")
    try:
        js = nc.jetstream()
        with caplog.at_level(logging.WARNING, logger="jobline.runtime.stream_setup"):
            opening = asyncio.create_task(key_value(js, types_bucket_config(names, 1), ready_timeout_s=60))
            streams = asyncio.create_task(ensure_streams(js, names, TEST_RETENTION, ready_timeout_s=60))

            async def both_refused() -> bool:
                text = caplog.text
                return "KV bucket" in text and "the streams" in text

            await eventually(both_refused, what="both to be told JetStream is not ready")
            assert not opening.done() and not streams.done()
            server.stop()
            server = start_nats_server(tmp_path / "nats", port=port)
            kv = await asyncio.wait_for(opening, 60)
            await asyncio.wait_for(streams, 60)
        await kv.put("noop", b"1")
        assert (await kv.get("noop")).value == b"1"
        assert (await js.stream_info(names.jobs_stream)).config.name == names.jobs_stream
    finally:
        await nc.close()
        server.stop()
