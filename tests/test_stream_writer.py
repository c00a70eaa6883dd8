"""The ordered stream writer (runtime/stream_writer.py) gathers a short batch for `gather_s` before it
writes it, and writes a whole batch at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig

from jobline.contract.names import Names
from jobline.runtime.stream_writer import Delivered, StreamWriter


class Store:
    def __init__(self, expected: int) -> None:
        self.batches: list[list[int]] = []
        self.position = 0
        self.expected = expected
        self.all_written = asyncio.Event()

    async def write(self, batch: list[Delivered]) -> None:
        self.batches.append([m.seq for m in batch])
        self.position = batch[-1].seq
        if self.position >= self.expected:
            self.all_written.set()


@contextlib.asynccontextmanager
async def writing(nc: Client, js: JetStreamContext, stream: str, store: Store, *, batch_size: int,
                  gather_s: float) -> AsyncIterator[None]:
    def consumer(start: int) -> ConsumerConfig:
        return ConsumerConfig(durable_name=f"{stream}-writer", deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                              opt_start_seq=start, ack_policy=AckPolicy.ALL, ack_wait=30)

    writer = StreamWriter(nc, js, stream, name="test writer", consumer=consumer, position=lambda: store.position,
                          write=store.write, is_transient=lambda exc: False, batch_size=batch_size, gather_s=gather_s)
    stop = asyncio.Event()
    task = asyncio.create_task(writer.run(stop))
    try:
        yield
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task


async def test_a_short_batch_is_gathered_and_a_whole_one_written_at_once(nc: Client, js: JetStreamContext,
                                                                          names: Names) -> None:
    stream = f"{names.namespace.upper()}_GATHER"
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{names.namespace}.gather.>"]))
    store = Store(expected=1)
    async with writing(nc, js, stream, store, batch_size=100, gather_s=1.0):
        await js.publish(f"{names.namespace}.gather.a", b"first")  # (the writer is then open and waiting)
        async with asyncio.timeout(10):
            await store.all_written.wait()
        store.expected, store.all_written = 6, asyncio.Event()
        for i in range(5):  # (one by one, each acked: without gathering the first is written alone)
            await js.publish(f"{names.namespace}.gather.a", str(i).encode())
        async with asyncio.timeout(10):
            await store.all_written.wait()
    assert store.batches == [[1], [2, 3, 4, 5, 6]]
    # A whole batch does not wait: six messages, batches of three, with a gather far longer than the wait.
    store.expected, store.all_written = 12, asyncio.Event()
    async with writing(nc, js, stream, store, batch_size=3, gather_s=60.0):
        for i in range(6):
            await js.publish(f"{names.namespace}.gather.b", str(i).encode())
        async with asyncio.timeout(10):
            await store.all_written.wait()
    assert store.batches[2:] == [[7, 8, 9], [10, 11, 12]]
