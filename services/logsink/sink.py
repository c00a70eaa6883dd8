"""Write the log stream into the log store: the ordered stream writer (runtime/stream_writer.py),
keyed by log stream sequence, acked after each commit, realigned on the store's position."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import msgspec
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from jobline.contract.events import LogLineWritten, ServiceLogged, log_entry_decoder
from jobline.runtime.stream_writer import Delivered, StreamWriter

from .metrics import LogsinkMetrics
from .settings import LogsinkSettings
from .store import LogStore, Row

log = logging.getLogger(__name__)


def to_row(message: Delivered) -> Row | None:
    try:
        entry = log_entry_decoder.decode(message.data)
    except msgspec.DecodeError as exc:
        log.warning("log message %s on %s is not a log entry: %s", message.seq, message.subject, exc)
        return None
    match entry:
        case LogLineWritten():
            return (message.seq, entry.ts, entry.level, entry.message, entry.job_id, entry.attempt, None, None, None,
                    origin_seq(message.headers))
        case ServiceLogged():
            return (message.seq, entry.ts, entry.level, entry.message, None, None, entry.service, entry.instance,
                    entry.logger, None)
    return None


def origin_seq(headers: dict[str, str] | None) -> int | None:
    """A sourced message's sequence in its origin stream: `Nats-Stream-Source: JOBS 42 …`."""
    parts = (headers or {}).get("Nats-Stream-Source", "").split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError)  # locked, busy, disk I/O: worth trying again


async def consume(js: JetStreamContext, settings: LogsinkSettings, store: LogStore, stop: asyncio.Event,
                  metrics: LogsinkMetrics | None = None) -> None:
    loop = asyncio.get_running_loop()
    position = store.last_seq()  # how far the store has the log stream (a message without a row moves it too)
    written = 0

    def consumer(start_seq: int) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=settings.names.logsink_durable,
            description="logsink: persists every log line",
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start_seq,
            # One logsink writes in stream order, so acking a batch's last message acks the batch.
            ack_policy=AckPolicy.ALL,
            ack_wait=settings.ack_wait_s,
            max_ack_pending=max(settings.batch_size * 4, 1000),
        )

    async def write(batch: list[Delivered]) -> None:
        nonlocal position, written
        rows = [row for row in map(to_row, batch) if row is not None]
        if rows:
            new = await loop.run_in_executor(store.writer, store.write, rows)
            written += new
            if metrics is not None:
                metrics.rows.inc(new)
        position = batch[-1].seq

    writer = StreamWriter(js._nc, js, settings.names.logs_stream, name="logsink consuming", consumer=consumer,
                          position=lambda: position, write=write, is_transient=is_transient,
                          batch_size=settings.batch_size, gather_s=settings.gather_s)
    try:
        await writer.run(stop)
    finally:
        log.info("logsink stopped; %d new row(s) written this run", written)
