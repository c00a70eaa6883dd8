"""Consume the job stream into the store; acknowledge only what is committed.

One durable pull consumer (`history`, ack policy *all*), read with exact credit. Messages are
written in batches, each batch in one transaction, and the batch's last message is acknowledged
after the commit (which acknowledges everything before it). A crash between the commit and the ack
redelivers the batch, and the store skips what it has applied (by stream sequence). While the
database is away nothing is acknowledged: the batch is retried with backoff, and the consumer's
position waits in the stream.
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


async def ensure_consumer(js: JetStreamContext, settings: HistorySettings) -> None:
    stream, durable = settings.names.jobs_stream, settings.names.history_durable
    wanted = ConsumerConfig(
        durable_name=durable,
        description="history: every job event into the history database",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.ALL,  # one writer applies in stream order: acking the last acks the batch
        ack_wait=settings.ack_wait_s,
        max_ack_pending=settings.batch_size * 4,
        filter_subject=settings.names.all_job_events,
    )
    try:
        info = await js.consumer_info(stream, durable)
        if round(info.config.ack_wait or 0, 3) != round(settings.ack_wait_s, 3) or info.config.max_ack_pending != wanted.max_ack_pending:
            log.warning("consumer %s differs from the settings; updating it", durable)
            await js.add_consumer(stream, wanted)
    except NotFoundError:
        await js.add_consumer(stream, wanted)
        log.info("created consumer %s on %s", durable, stream)


class Ingest:
    def __init__(self, nc: Client, js: JetStreamContext, settings: HistorySettings, store: HistoryStore,
                 watermark: Watermark, metrics: HistoryMetrics):
        self._nc = nc
        self._js = js
        self._settings = settings
        self._store = store
        self._watermark = watermark
        self._metrics = metrics
        self._buffer: deque[tuple[Delivered, str]] = deque()  # (message, its ack subject)
        self._arrived = asyncio.Event()

    def _on_message(self, msg: Msg) -> None:
        seq, stored_at, _ = stream_position(msg)
        self._buffer.append((Delivered(seq, msg.subject, msg.data, stored_at), msg.reply))
        self._arrived.set()

    async def run(self, stop: asyncio.Event) -> None:
        settings = self._settings
        await ensure_consumer(self._js, settings)
        pull = CreditedPull(self._nc, settings.names.jobs_stream, settings.names.history_durable, self._on_message,
                            heartbeat_s=HEARTBEAT_S)
        await pull.start()
        log.info("history consuming %s from sequence %d", settings.names.jobs_stream, self._store.applied_seq + 1)
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
                        pull.error = None
                        pull.reset()  # the server forgot our requests (restart, failover): ask again
                    if not self._buffer:
                        next_prune = await self._maybe_prune(next_prune)
                        continue
                batch = [self._buffer.popleft() for _ in range(min(len(self._buffer), settings.batch_size))]
                try:
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
                next_prune = await self._maybe_prune(next_prune)
        finally:
            stopping.cancel()
            with contextlib.suppress(Exception):
                await pull.stop()

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
