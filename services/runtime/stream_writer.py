"""A stream written into a store in order and exactly once, for stores that keep their own position
(the history service's database, the logsink's): the one pattern both follow.

- The store, not the consumer, says how far the stream is written (`position()`, committed with the
  rows). The writer (re)creates its durable consumer to start right after it (`consumer(start)`),
  and a message at or below it is a redelivery: skipped.
- Batches are written in stream order, each in one transaction (`write(batch)`), and the batch's
  last message is acked after the commit: with ack policy *all* that acks the batch.
- It insists on an unbroken run of sequences (both streams hold every message of theirs, so
  sequences only jump where retention dropped some): acking a batch would also ack a message lost
  in flight (a reconnect drops what is on the wire), and a crash leaves older messages to be
  redelivered after the ack wait, behind newer ones. A jump the stream's retention explains is
  reported (`on_missed`); any other makes the writer open the consumer again at the first missing
  sequence.
- While the store is away (`is_transient(exc)`), nothing is acked: the batch is kept and retried
  with backoff, and the consumer waits in the stream.

The intake is the one consume loop (runtime/consume.py) with exact credit: a buffer of at most two
batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig
from nats.js.errors import NotFoundError

from .consume import ConsumeLoop, recreate_durable
from .consuming import stream_position, subject_matches
from .tasks import cancel_and_wait

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivered:
    """One stream message as the writer received it."""

    seq: int
    subject: str
    data: bytes
    stored_at: float
    headers: dict[str, str] | None = None


class StreamWriter:
    def __init__(self, nc: Client, js: JetStreamContext, stream: str, *, name: str,
                 consumer: Callable[[int], ConsumerConfig], position: Callable[[], int],
                 write: Callable[[list[Delivered]], Awaitable[None]], is_transient: Callable[[BaseException], bool],
                 batch_size: int = 1000, heartbeat_s: float = 5.0,
                 on_missed: Callable[[int, int], None] | None = None,
                 between_batches: Callable[[], Awaitable[None]] | None = None,
                 keep_going: Callable[[], bool] = lambda: True, gather_s: float = 0.0):
        self._nc = nc
        self._js = js
        self._stream = stream
        self.name = name
        self._consumer = consumer
        self._position = position
        self._write = write
        self._is_transient = is_transient
        self._batch_size = batch_size
        self._on_missed = on_missed or (lambda first, last: None)
        self._between_batches = between_batches  # also called while idle, every heartbeat
        self._keep_going = keep_going
        self._gather_s = gather_s  # a batch short of batch_size waits this long for more (0: written at once)
        self._full = asyncio.Event()  # the buffer holds a whole batch
        self._buffer: deque[tuple[Delivered, str]] = deque()  # (message, its ack subject), in stream order
        self._next = 0  # the sequence the next message must have to be taken
        self._filters: tuple[str, ...] = ()  # the consumer's filter subjects (none: every message)
        self._arrived = asyncio.Event()
        self._loop = ConsumeLoop(nc, stream, self._on_message, open=self._open, wanted=self._wanted, reopen=True,
                                 heartbeat_s=heartbeat_s, name=name)

    # --- intake ------------------------------------------------------------------------------
    def _on_message(self, msg: Msg) -> None:
        seq, stored_at, _ = stream_position(msg)
        if seq < self._next:
            return  # a redelivery of what is buffered or written already
        self._next = seq + 1
        self._buffer.append((Delivered(seq, msg.subject, msg.data, stored_at, msg.headers), msg.reply or ""))
        self._arrived.set()
        if len(self._buffer) >= self._batch_size:
            self._full.set()

    def _wanted(self) -> tuple[int, int | None]:
        if len(self._buffer) >= self._batch_size:
            return 0, None  # enough in hand: the writer takes them first
        return self._batch_size * 2, self._batch_size

    async def _open(self) -> str:
        """The consumer anew, starting right after the store's position, with nothing buffered."""
        self._buffer.clear()
        self._next = self._position() + 1
        config = self._consumer(self._next)
        self._filters = tuple(config.filter_subjects or ([config.filter_subject] if config.filter_subject else []))
        await recreate_durable(self._js, self._stream, config)
        assert config.durable_name
        return config.durable_name

    # --- writing -------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set or `keep_going()` says no."""
        await self._loop.start()
        log.info("%s from sequence %d", self.name, self._next)
        intake = asyncio.create_task(self._loop.run(stop))
        stopping = asyncio.ensure_future(stop.wait())
        backoff = 0.1
        try:
            while not stop.is_set() and self._keep_going():
                if not self._buffer:
                    self._arrived.clear()
                    arrived = asyncio.ensure_future(self._arrived.wait())
                    await asyncio.wait({arrived, stopping, intake}, timeout=self._loop.heartbeat_s,
                                       return_when=asyncio.FIRST_COMPLETED)
                    arrived.cancel()
                    if intake.done():
                        intake.result()  # (raises what ended it)
                        return
                    if not self._buffer:
                        if self._between_batches is not None:
                            await self._between_batches()
                        continue
                if self._gather_s > 0 and len(self._buffer) < self._batch_size:
                    await self._gather(stopping)
                batch = [self._buffer.popleft() for _ in range(min(len(self._buffer), self._batch_size))]
                self._loop.wake()  # room in the buffer: ask for more while this batch is written
                batch, broken = await self._unbroken(batch)
                try:
                    if batch:
                        await self._write([message for message, _ in batch])
                    backoff = 0.1
                except Exception as exc:
                    if not self._is_transient(exc):
                        raise
                    self._buffer.extendleft(reversed(batch))  # not acked: tried again
                    log.warning("%s: the store is unavailable (%s: %s); retrying in %.1fs", self.name,
                                type(exc).__name__, exc, backoff)
                    await asyncio.wait({stopping}, timeout=backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                if batch:
                    with contextlib.suppress(Exception):  # not acked: redelivered later, and skipped
                        await self._nc.publish(batch[-1][1], b"+ACK")
                if broken:
                    self._loop.break_now()
                if self._between_batches is not None:
                    await self._between_batches()
        finally:
            stopping.cancel()
            await cancel_and_wait(intake)
            await self._loop.stop()

    async def _gather(self, stopping: asyncio.Future[Any]) -> None:
        """Let a short batch grow for `gather_s`: a transaction (and a trip to the store's thread) per
        batch costs the same for 5 messages as for 500, and under load a few milliseconds bring many."""
        self._full.clear()
        if len(self._buffer) >= self._batch_size:
            return
        full: asyncio.Future[Any] = asyncio.ensure_future(self._full.wait())
        try:
            await asyncio.wait({full, stopping}, timeout=self._gather_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            full.cancel()

    async def _none_for_us(self, first: int, last: int, most: int = 1000) -> bool:
        """Whether none of first..last is a message this consumer should have had: each is gone
        (purged, deleted) or on a subject outside its filter."""
        if last - first >= most:
            return False
        for seq in range(first, last + 1):
            try:
                msg = await self._js.get_msg(self._stream, seq, direct=True)
            except NotFoundError:
                continue
            if not self._filters or any(subject_matches(msg.subject or "", f) for f in self._filters):
                return False
        return True

    async def _unbroken(self, batch: list[tuple[Delivered, str]]) -> tuple[list[tuple[Delivered, str]], bool]:
        """The batch without what the store has, up to its first break in the run of sequences;
        and whether there was a break that calls for opening the consumer again."""
        expected = self._position() + 1
        kept: list[tuple[Delivered, str]] = []
        for item in batch:
            seq = item[0].seq
            if seq < expected:
                continue  # written already (a consumer opened again a moment too early)
            if seq > expected:
                first = (await self._js.stream_info(self._stream)).state.first_seq
                if first > expected and seq <= first:
                    log.warning("%s: the stream dropped %d..%d (its retention) before they were stored", self.name,
                                expected, seq - 1)
                    self._on_missed(expected, seq - 1)
                elif await self._none_for_us(expected, seq - 1):
                    pass  # messages outside the filter (a delayed job's schedule), or removed (fired)
                else:
                    log.warning("%s: sequence %d missing (lost in flight); opening the consumer there again",
                                self.name, expected)
                    return kept, True
            kept.append(item)
            expected = seq + 1
        return kept, False
