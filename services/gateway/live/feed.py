"""The gateway's one reader of the job stream, feeding the read model and the hub.

An ephemeral pull consumer (no acks, in memory, deleted by the server when the gateway goes
away) read by the one consume loop (runtime/consume.py) with exact credit. It survives what a push
subscription may not: when the server restarts or the consumer vanishes, a reconnect, the silence
of its heartbeats or an error answer makes the loop open a new consumer starting right after the
last event applied, so nothing is missed or applied twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from jobline.contract.events import TERMINAL_KINDS, job_event_decoder, kind_of
from jobline.contract.names import Names
from jobline.jobs.timeline import last_event_seq
from jobline.runtime.consume import ConsumeLoop
from jobline.runtime.consuming import stream_position
from jobline.runtime.tasks import cancel_and_wait

from .hub import Hub
from .read_model import ReadModel
from .sse import frame

log = logging.getLogger(__name__)
BATCH = 2000
HEARTBEAT_S = 2.0


class JobFeed:
    def __init__(self, nc: Client, js: JetStreamContext, names: Names, read_model: ReadModel, hub: Hub):
        self._nc = nc
        self._js = js
        self._names = names
        self._read_model = read_model
        self._hub = hub
        self._consumer = ""
        self._loop = ConsumeLoop(nc, names.jobs_stream, self._on_message, open=self._open,
                                 wanted=lambda: (BATCH, BATCH // 2), reopen=True, heartbeat_s=HEARTBEAT_S,
                                 name="job feed")
        self._task: asyncio.Task[None] | None = None

    async def start(self, catch_up_timeout: float) -> None:
        """Fold in everything after the read model's position up to the stream's current end
        before the gateway serves requests."""
        stream = self._names.jobs_stream
        info = (await self._js.stream_info(stream)).state
        began = time.monotonic()
        start_seq = self._read_model.last_seq
        if info.messages == 0:
            # Nothing stored (e.g. every event dropped by age): nothing to wait for, however high
            # the stream's last sequence is.
            self._read_model.advance(info.last_seq)
        await self._loop.start()
        self._task = asyncio.create_task(self._loop.run())
        target = await last_event_seq(self._js, self._names) if info.messages else info.last_seq
        deadline = began + catch_up_timeout
        while not await self._read_model.wait_for(target, 1.0):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the job feed did not catch up with sequence {target} in {catch_up_timeout}s")
            # The stream may have dropped its last events (by age) after we looked: once the
            # consumer has nothing pending and we have applied all it delivered, we are caught up.
            consumer = await self._js.consumer_info(stream, self._consumer)
            delivered = consumer.delivered.stream_seq if consumer.delivered and consumer.delivered.stream_seq else 0
            if not consumer.num_pending and delivered <= self._read_model.last_seq:
                self._read_model.advance(target)
        log.info("job feed caught up: %d jobs in memory, events %d..%d folded in %.2fs", len(self._read_model),
                 start_seq + 1, target, time.monotonic() - began)

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        await self._loop.stop()
        with contextlib.suppress(Exception):
            await self._js.delete_consumer(self._names.jobs_stream, self._consumer)

    async def _open(self) -> str:
        """(Re)create the consumer to start right after the last applied event (the consume
        loop's `open`, again after every break: a restarted server may have lost it)."""
        if self._consumer:
            with contextlib.suppress(Exception):
                await self._js.delete_consumer(self._names.jobs_stream, self._consumer)
        # A new name each time: after a failover the old consumer may outlive a failed delete, and
        # the server refuses to move an existing consumer's start sequence (error 10012). A
        # leftover is removed by its inactive threshold.
        self._consumer = f"gateway-{uuid.uuid4().hex[:12]}"
        await self._js.add_consumer(self._names.jobs_stream, ConsumerConfig(
            name=self._consumer,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self._read_model.last_seq + 1,
            ack_policy=AckPolicy.NONE,
            filter_subject=self._names.all_job_events,
            inactive_threshold=60.0,
            mem_storage=True,
            num_replicas=1,
        ), timeout=2.0)
        log.info("job feed reading from sequence %d", self._read_model.last_seq + 1)
        return self._consumer

    def _on_message(self, msg: Msg) -> None:
        seq = stream_position(msg)[0]
        if seq <= self._read_model.last_seq:
            return  # already applied (a consumer re-created a moment too early)
        try:
            event = job_event_decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            log.warning("skipping undecodable event %d on %s: %s", seq, msg.subject, exc)
            self._read_model.advance(seq)
            return
        state = self._read_model.apply(event, seq)
        if state is not None and self._hub.has_listeners(event.job_id):
            kind = kind_of(event)
            self._hub.publish(event.job_id, frame(kind, msg.data, seq), kind=kind, job_type=state.type,
                              status=state.status, last=kind in TERMINAL_KINDS)
