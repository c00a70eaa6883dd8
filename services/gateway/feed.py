"""The gateway's one subscription to the job stream, feeding the read model and the hub."""

from __future__ import annotations

import logging
import time

import msgspec
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from jobline.contract.events import TERMINAL_KINDS, job_event_decoder, kind_of
from jobline.contract.names import Names

from .hub import Hub
from .read_model import ReadModel
from .sse import frame

log = logging.getLogger(__name__)


class JobFeed:
    """An ordered consumer over `jobs.>` from the first message: replays history at start, then
    stays live. Ordered consumers recreate themselves after a gap or a server restart."""

    def __init__(self, js: JetStreamContext, names: Names, read_model: ReadModel, hub: Hub):
        self._js = js
        self._names = names
        self._read_model = read_model
        self._hub = hub
        self._sub: Subscription | None = None

    async def start(self, catch_up_timeout: float) -> None:
        target = (await self._js.stream_info(self._names.jobs_stream)).state.last_seq
        began = time.monotonic()
        self._sub = await self._js.subscribe(
            self._names.all_job_events,
            stream=self._names.jobs_stream,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
            cb=self._on_message,
        )
        if not await self._read_model.wait_for(target, catch_up_timeout):
            raise TimeoutError(f"read model did not catch up with {target} events in {catch_up_timeout}s")
        log.info("read model rebuilt: %d jobs from %d events in %.2fs", len(self._read_model), target,
                 time.monotonic() - began)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _on_message(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        try:
            event = job_event_decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            log.warning("skipping undecodable event %d on %s: %s", seq, msg.subject, exc)
            self._read_model.advance(seq)
            return
        if self._read_model.apply(event, seq) and self._hub.has_listeners(event.job_id):
            kind = kind_of(event)
            self._hub.publish(event.job_id, frame(kind, msg.data, seq), last=kind in TERMINAL_KINDS)
