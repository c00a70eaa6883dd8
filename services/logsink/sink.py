"""Consume the log stream into the store; acknowledge only what is committed."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from jobline.runtime.consuming import fetch_or_stop
from jobline.contract.events import LogLineWritten, ServiceLogged, log_entry_decoder

from .metrics import LogsinkMetrics
from .settings import LogsinkSettings
from .store import LogStore, Row

log = logging.getLogger(__name__)


def to_row(msg: Msg) -> Row | None:
    seq = msg.metadata.sequence.stream
    try:
        entry = log_entry_decoder.decode(msg.data)
    except msgspec.DecodeError as exc:
        log.warning("log message %s on %s is not a log entry: %s", seq, msg.subject, exc)
        return None
    match entry:
        case LogLineWritten():
            return (seq, entry.ts, entry.level, entry.message, entry.job_id, entry.attempt, None, None, None,
                    origin_seq(msg))
        case ServiceLogged():
            return (seq, entry.ts, entry.level, entry.message, None, None, entry.service, entry.instance, entry.logger,
                    None)
    return None


def origin_seq(msg: Msg) -> int | None:
    """A sourced message's sequence in its origin stream: `Nats-Stream-Source: JOBS 42 …`."""
    source = (msg.headers or {}).get("Nats-Stream-Source", "")
    parts = source.split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


async def ensure_consumer(js: JetStreamContext, settings: LogsinkSettings) -> None:
    stream, durable = settings.names.logs_stream, settings.names.logsink_durable
    wanted = ConsumerConfig(
        durable_name=durable,
        description="logsink: persists every log line to SQLite",
        deliver_policy=DeliverPolicy.ALL,
        # One logsink writes in stream order, so acking a batch's last message acks the batch.
        ack_policy=AckPolicy.ALL,
        ack_wait=settings.ack_wait_s,
        max_ack_pending=max(settings.batch_size * 4, 1000),
    )
    try:
        info = await js.consumer_info(stream, durable)
        if round(info.config.ack_wait or 0, 3) != round(settings.ack_wait_s, 3):
            log.warning("consumer %s ack_wait %s differs from settings %s; updating", durable,
                        info.config.ack_wait, settings.ack_wait_s)
            await js.add_consumer(stream, wanted)
    except NotFoundError:
        await js.add_consumer(stream, wanted)
        log.info("created consumer %s on %s", durable, stream)


async def consume(js: JetStreamContext, settings: LogsinkSettings, store: LogStore, stop: asyncio.Event,
                  metrics: LogsinkMetrics | None = None) -> None:
    await ensure_consumer(js, settings)
    psub = await js.pull_subscribe_bind(durable=settings.names.logsink_durable, stream=settings.names.logs_stream)
    log.info("logsink consuming %s", settings.names.logs_stream)
    loop = asyncio.get_running_loop()
    stop_wait = asyncio.create_task(stop.wait())
    written = 0
    try:
        while not stop.is_set():
            try:
                msgs = await fetch_or_stop(psub, settings.batch_size, stop_wait)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                continue
            except nats.errors.Error as exc:
                # Reconnecting, or JetStream answering 503 while the consumer's leader is elected
                # (a cluster node failed): both pass. Crashing here stopped the logsink for good.
                log.warning("fetch failed (%s: %s); retrying", type(exc).__name__, exc)
                await asyncio.wait({stop_wait}, timeout=0.5)
                continue
            if not msgs:
                continue
            rows = [row for row in map(to_row, msgs) if row is not None]
            if rows:
                new = await loop.run_in_executor(store.writer, store.write, rows)
                written += new
                if metrics is not None:
                    metrics.rows.inc(new)
            try:
                await msgs[-1].ack_sync()
            except nats.errors.Error as exc:  # not acked: redelivered later, and rows are keyed by sequence
                log.warning("ack failed (%s); the batch will be redelivered and skipped", type(exc).__name__)
    finally:
        stop_wait.cancel()
        with contextlib.suppress(Exception):
            await psub.unsubscribe()
        log.info("logsink stopped; %d new row(s) written this run", written)
