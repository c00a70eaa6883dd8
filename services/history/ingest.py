"""Consume the job stream into the store; acknowledge only what is committed.

One durable pull consumer (`history`, ack policy *all*), read with exact credit. Messages are
written in batches, each batch in one transaction, and the batch's last message is acknowledged
after the commit (which acknowledges everything before it). While the database is away nothing is
acknowledged: the batch is retried with backoff, and the consumer's position waits in the stream.

The database, not the consumer, says how far the stream is applied (`applied_seq`, committed with
the rows). So the writer (re)creates the durable consumer to start right after it, and it insists
on an unbroken run of sequences: acking a batch with policy *all* also acks anything before it, so
a message lost in flight (a reconnect drops what was on the wire) and a later one acked would be
lost for good — and a crash leaves messages that JetStream would redeliver only after the ack
wait, behind newer ones. A break in the run that the stream's retention does not explain makes the
writer realign the consumer at the first missing sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from jobline.runtime.consuming import stream_position
from jobline.runtime.pull import CreditedPull
from jobline.runtime.watermark import Watermark

from .metrics import HistoryMetrics
from .projection import Delivered
from .settings import HistorySettings
from .store import HistoryStore, is_transient

log = logging.getLogger(__name__)
HEARTBEAT_S = 5.0


async def align_consumer(js: JetStreamContext, settings: HistorySettings, start_seq: int) -> None:
    """The durable consumer, (re)created to deliver from `start_seq` (the database's position)."""
    stream, durable = settings.names.jobs_stream, settings.names.history_durable
    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(stream, durable)
    await js.add_consumer(stream, ConsumerConfig(
        durable_name=durable,
        description="history: every job event into the history database",
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=start_seq,
        ack_policy=AckPolicy.ALL,  # one writer applies in stream order: acking the last acks the batch
        ack_wait=settings.ack_wait_s,
        max_ack_pending=settings.batch_size * 4,
        filter_subject=settings.names.all_job_events,
    ))


class Ingest:
    def __init__(self, nc: Client, js: JetStreamContext, settings: HistorySettings, store: HistoryStore,
                 watermark: Watermark, metrics: HistoryMetrics):
        self._nc = nc
        self._js = js
        self._settings = settings
        self._store = store
        self._watermark = watermark
        self._metrics = metrics
        self._buffer: deque[tuple[Delivered, str]] = deque()  # (message, its ack subject), in stream order
        self._next = 0  # the sequence the next message must have to be taken
        self._arrived = asyncio.Event()
        self._pull: CreditedPull | None = None

    def _on_message(self, msg: Msg) -> None:
        seq, stored_at, _ = stream_position(msg)
        if seq < self._next:
            return  # a redelivery of what is buffered or applied already
        self._next = seq + 1
        self._buffer.append((Delivered(seq, msg.subject, msg.data, stored_at), msg.reply))
        self._arrived.set()

    async def _open(self) -> CreditedPull:
        """A fresh consumer and pull from the database's position, with nothing buffered."""
        if self._pull is not None:
            with contextlib.suppress(Exception):
                await self._pull.stop()
        self._buffer.clear()
        self._next = self._store.applied_seq + 1
        await align_consumer(self._js, self._settings, self._next)
        self._pull = CreditedPull(self._nc, self._settings.names.jobs_stream, self._settings.names.history_durable,
                                  self._on_message, heartbeat_s=HEARTBEAT_S)
        await self._pull.start()
        return self._pull

    async def run(self, stop: asyncio.Event) -> None:
        settings = self._settings
        pull = await self._open()
        log.info("history consuming %s from sequence %d", settings.names.jobs_stream, self._next)
        reconnects = self._nc.stats["reconnects"]
        next_prune = time.monotonic()
        backoff = 0.1
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set() and self._store.is_writer:
                if len(self._buffer) < settings.batch_size:
                    try:
                        await pull.want(settings.batch_size * 2, low_water=settings.batch_size)
                    except Exception as exc:  # reconnecting: asked again below
                        log.debug("pull request failed: %s", exc)
                if not self._buffer:
                    self._arrived.clear()
                    arrived = asyncio.ensure_future(self._arrived.wait())
                    await asyncio.wait({arrived, stopping}, timeout=HEARTBEAT_S, return_when=asyncio.FIRST_COMPLETED)
                    arrived.cancel()
                    reconnected = self._nc.stats["reconnects"] != reconnects
                    reconnects = self._nc.stats["reconnects"]
                    if reconnected or pull.error is not None or (pull.credit and pull.silent_for() > HEARTBEAT_S * 2.5):
                        # The server may have lost our requests, or messages on the wire: start
                        # again from what is committed.
                        log.info("history consumer interrupted (%s); resuming after sequence %d",
                                 pull.error or ("reconnected" if reconnected else "no heartbeat"), self._store.applied_seq)
                        pull = await self._reopen(stopping)
                        continue
                    if not self._buffer:
                        next_prune = await self._maybe_prune(next_prune)
                        continue
                batch = [self._buffer.popleft() for _ in range(min(len(self._buffer), settings.batch_size))]
                batch, broken = await self._unbroken(batch)
                try:
                    if batch:
                        await self._write(batch)
                    backoff = 0.1
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    # The database is away: keep the batch (unacknowledged) and try again.
                    self._buffer.extendleft(reversed(batch))
                    self._metrics.write_errors.inc()
                    log.warning("history database unavailable (%s: %s); retrying in %.1fs", type(exc).__name__, exc, backoff)
                    await asyncio.wait({stopping}, timeout=backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                if broken:
                    pull = await self._reopen(stopping)
                    continue
                next_prune = await self._maybe_prune(next_prune)
        finally:
            stopping.cancel()
            if self._pull is not None:
                with contextlib.suppress(Exception):
                    await self._pull.stop()

    async def _reopen(self, stopping: asyncio.Future[object]) -> CreditedPull:
        """`_open`, retried while NATS or JetStream is away."""
        delay = 0.25
        while True:
            try:
                return await self._open()
            except Exception as exc:
                log.warning("could not re-create the history consumer (%s); retrying", exc)
                await asyncio.wait({stopping}, timeout=delay)
                if stopping.done():
                    raise asyncio.CancelledError from exc
                delay = min(delay * 2, 5.0)

    async def _unbroken(self, batch: list[tuple[Delivered, str]]) -> tuple[list[tuple[Delivered, str]], bool]:
        """The batch up to its first break in the run of sequences, and whether there was one that
        calls for realigning the consumer (a break the stream's retention explains is fine)."""
        expected = self._store.applied_seq + 1
        for index, (message, _) in enumerate(batch):
            if message.seq != expected:
                first = (await self._js.stream_info(self._settings.names.jobs_stream)).state.first_seq
                if first > expected and message.seq <= first:
                    log.warning("the job stream dropped events %d..%d (its retention) before the history stored them",
                                expected, message.seq - 1)
                    self._metrics.missed.inc(message.seq - expected)
                else:
                    log.warning("job stream event %d missing after %d (lost in flight); realigning the consumer",
                                expected, expected - 1)
                    return batch[:index], True
            expected = message.seq + 1
        return batch, False

    async def _write(self, batch: list[tuple[Delivered, str]]) -> None:
        messages = [message for message, _ in batch]
        began = time.perf_counter()
        try:
            new = await self._store.write(messages)
        except Exception as exc:
            if is_transient(exc):
                raise
            new = await self._write_one_by_one(messages, exc)
        self._metrics.events.inc(new)
        self._metrics.batch_seconds.observe(time.perf_counter() - began)
        self._watermark.advance(self._store.applied_seq)
        self._metrics.applied_seq.set(self._store.applied_seq)
        try:
            await self._nc.publish(batch[-1][1], b"+ACK")
        except Exception as exc:  # not acknowledged: redelivered later, and skipped (already applied)
            log.warning("ack failed (%s); the batch will be redelivered and skipped", type(exc).__name__)

    async def _write_one_by_one(self, messages: list[Delivered], cause: Exception) -> int:
        """A batch failed for a reason that is not the database being away: apply its messages one
        at a time, so that one that fails every time is skipped (and logged) instead of stopping
        the store for good."""
        log.warning("a batch of %d failed (%s: %s); applying its messages one by one", len(messages),
                    type(cause).__name__, cause)
        new = 0
        for message in messages:
            try:
                new += await self._store.write([message])
            except Exception as exc:
                if is_transient(exc):
                    raise
                log.error("skipping job stream message %d on %s: it cannot be stored (%s: %s)", message.seq,
                          message.subject, type(exc).__name__, exc)
                self._metrics.skipped.inc()
                await self._store.skip(message.seq)
        return new

    async def _maybe_prune(self, due: float) -> float:
        if time.monotonic() < due or self._settings.max_age_s <= 0:
            return due
        try:
            removed, more = await self._store.prune(self._settings.max_age_s)
        except Exception as exc:
            log.warning("pruning history failed (%s: %s); trying again later", type(exc).__name__, exc)
            return time.monotonic() + 60
        if removed:
            self._metrics.pruned.inc(removed)
            log.info("pruned %d job(s) that ended more than %.0f days ago", removed, self._settings.max_age_s / 86400)
        return time.monotonic() if more else time.monotonic() + self._settings.prune_interval_s
