"""The hub's per-client queue: bounded, and coalescing progress for a client that falls behind."""

from __future__ import annotations

import asyncio
import time

import pytest

from jobline.gateway.live.hub import END, FrameQueue, Hub
from jobline.gateway.live.sse import HEARTBEAT


async def test_a_lagging_client_gets_the_latest_progress_and_every_other_event_in_order() -> None:
    queue = FrameQueue(limit=10)
    for i in range(5):
        queue.put_nowait(f"log {i}".encode())
    for i in range(100):  # a flood of progress while the client does not read
        queue.put_nowait(f"progress {i}".encode(), progress=True)
    queue.put_nowait(b"step")
    queue.put_nowait(b"progress 100", progress=True)
    got = [queue.get_nowait() for _ in range(queue.qsize())]
    assert got == [b"log 0", b"log 1", b"log 2", b"log 3", b"log 4", b"progress 99", b"step", b"progress 100"]


async def test_a_reading_client_gets_every_progress_update() -> None:
    queue = FrameQueue(limit=10)
    for i in range(3):
        queue.put_nowait(f"progress {i}".encode(), progress=True)
    assert [await queue.get() for _ in range(3)] == [b"progress 0", b"progress 1", b"progress 2"]


async def test_a_client_that_stops_reading_is_dropped_and_its_stream_ends() -> None:
    dropped: list[int] = []
    hub = Hub(buffer=4, on_dropped=lambda: dropped.append(1))
    listener = hub.subscribe("job")
    for i in range(10):
        hub.publish("job", f"log {i}".encode(), kind="logged", job_type="t", status="running", last=False)
    assert dropped == [1] and not hub.has_listeners("job")
    assert await asyncio.wait_for(listener.queue.get(), 1) == END


def test_the_queue_is_bounded() -> None:
    queue = FrameQueue(limit=2)
    queue.put_nowait(b"a")
    queue.put_nowait(b"b")
    with pytest.raises(asyncio.QueueFull):
        queue.put_nowait(b"c")


async def test_a_quiet_listener_gets_a_heartbeat_and_a_busy_one_does_not() -> None:
    hub = Hub(buffer=10, heartbeat_s=0.2)
    quiet, busy = hub.subscribe("quiet"), hub.subscribe("busy")
    hub.start()
    try:
        async def keep_busy() -> None:
            while True:
                hub.publish("busy", b"step", kind="step_started", job_type="t", status="running", last=False)
                await asyncio.sleep(0.02)

        feeder = asyncio.create_task(keep_busy())
        try:
            assert await asyncio.wait_for(quiet.queue.get(), 2) == HEARTBEAT
            taken: list[bytes] = []
            async with asyncio.timeout(2):
                while len(taken) < 20:
                    taken += await busy.queue.take()
            assert HEARTBEAT not in taken
        finally:
            feeder.cancel()
    finally:
        hub.stop()


async def test_listeners_get_only_the_kinds_they_asked_for() -> None:
    hub = Hub(buffer=10)
    everything, no_logs, logs_only = hub.subscribe("job"), hub.listen(frozenset({"job"}), logs=False), \
        hub.subscribe("job", logs_only=True)
    for kind, last in (("progressed", False), ("logged", False), ("completed", True)):
        hub.publish("job", kind.encode(), kind=kind, job_type="t", status="running", last=last)
    assert await everything.queue.take() == [b"progressed", b"logged", b"completed", END]
    assert await no_logs.queue.take() == [b"progressed", b"completed"]
    assert await logs_only.queue.take() == [b"logged", b"completed", END]


async def test_a_writer_stops_at_the_end_even_when_a_later_event_was_queued_behind_it() -> None:
    from jobline.gateway.live.event_stream import _pump

    hub = Hub(buffer=10)
    listener = hub.subscribe("job")
    hub.publish("job", b"completed", kind="completed", job_type="t", status="completed", last=True)
    hub.publish("job", b"webhook", kind="webhook_attempted", job_type="t", status="completed", last=False)
    sent: list[bytes] = []

    async def send(message: dict) -> None:  # type: ignore[type-arg]
        sent.append(message["body"])

    writer = asyncio.current_task()
    assert writer is not None
    await asyncio.wait_for(_pump(listener, send, writer, {}, time.monotonic), 2)  # type: ignore[arg-type]
    assert sent == [b"completed"]
