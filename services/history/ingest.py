"""Write the job stream into the history database: the ordered stream writer (runtime/
stream_writer.py) over the store's projection, plus what only this store needs — a batch that
fails for a reason other than the database being away is applied message by message (one that
fails every time is skipped and logged, instead of stopping the store for good), retention runs
when there is nothing to write, and writing stops when this instance loses the writer lock.
"""

from __future__ import annotations

import asyncio
import logging
import time

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from jobline.runtime.stream_writer import Delivered, StreamWriter
from jobline.runtime.watermark import Watermark

from .metrics import HistoryMetrics
from .settings import HistorySettings
from .store import HistoryStore, is_transient

log = logging.getLogger(__name__)
HEARTBEAT_S = 5.0


class Ingest:
    def __init__(self, nc: Client, js: JetStreamContext, settings: HistorySettings, store: HistoryStore,
                 watermark: Watermark, metrics: HistoryMetrics):
        self._settings = settings
        self._store = store
        self._watermark = watermark
        self._metrics = metrics
        self._next_prune = time.monotonic()
        self._writer = StreamWriter(
            nc, js, settings.names.jobs_stream, name="history consuming", consumer=self._consumer,
            position=lambda: store.applied_seq, write=self._write, is_transient=is_transient,
            batch_size=settings.batch_size, heartbeat_s=HEARTBEAT_S, on_missed=self._missed, between_batches=self._maybe_prune,
            keep_going=lambda: store.is_writer, gather_s=settings.gather_s)

    def _consumer(self, start_seq: int) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self._settings.names.history_durable,
            description="history: every job event into the history database",
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start_seq,
            ack_policy=AckPolicy.ALL,  # one writer applies in stream order: acking the last acks the batch
            ack_wait=self._settings.ack_wait_s,
            max_ack_pending=self._settings.batch_size * 4,
            filter_subject=self._settings.names.all_job_events,
        )

    async def run(self, stop: asyncio.Event) -> None:
        await self._writer.run(stop)

    def _missed(self, first: int, last: int) -> None:
        self._metrics.missed.inc(last - first + 1)

    async def _write(self, messages: list[Delivered]) -> None:
        began = time.perf_counter()
        try:
            new = await self._store.write(messages)
        except Exception as exc:
            if is_transient(exc):
                self._metrics.write_errors.inc()
                raise
            new = await self._write_one_by_one(messages, exc)
        self._metrics.events.inc(new)
        self._metrics.batch_seconds.observe(time.perf_counter() - began)
        self._watermark.advance(self._store.applied_seq)
        self._metrics.applied_seq.set(self._store.applied_seq)

    async def _write_one_by_one(self, messages: list[Delivered], cause: Exception) -> int:
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

    async def _maybe_prune(self) -> None:
        if time.monotonic() < self._next_prune or self._settings.max_age_s <= 0:
            return
        try:
            removed, more = await self._store.prune(self._settings.max_age_s)
        except Exception as exc:
            log.warning("pruning history failed (%s: %s); trying again later", type(exc).__name__, exc)
            self._next_prune = time.monotonic() + 60
            return
        if removed:
            self._metrics.pruned.inc(removed)
            log.info("pruned %d job(s) that ended more than %.0f days ago", removed, self._settings.max_age_s / 86400)
        self._next_prune = time.monotonic() + (0 if more else self._settings.prune_interval_s)
