"""The processor's side of queue controls: one queue (durable consumer) per served type, shared by
every processor serving it, and start tokens for rate-limited types."""

from __future__ import annotations

import asyncio
import logging
import random

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, NoStreamResponseError, ServiceUnavailableError

from jobline.contract.names import PRIORITY_MIN
from jobline.contract.queues import QueueControls, controls_decoder, queue_controls_bucket_config
from jobline.runtime.consume import ensure_durable
from jobline.runtime.kv_mirror import KvMirror
from jobline.runtime.publishing import publish_acked
from jobline.runtime.queue_controls import apply_controls, queue_config

from .settings import ProcessorSettings

log = logging.getLogger(__name__)
MAX_MSGS_ERR = 10077  # the rate stream refused a token: the window is full


class Queues:
    """The queue controls of the served types (a live mirror) and what a processor does with them."""

    def __init__(self, js: JetStreamContext, settings: ProcessorSettings):
        self._js = js
        self._settings = settings
        self._names = settings.names
        self._mirror: KvMirror[QueueControls] = KvMirror(QueueControls)
        self._waiting: dict[str, asyncio.Lock] = {}  # one token taker per type here: the others queue behind it

    async def start(self) -> None:
        await self._mirror.start(self._js, queue_controls_bucket_config(self._names, self._settings.retention.replicas))

    async def stop(self) -> None:
        await self._mirror.stop()

    def controls(self, job_type: str) -> QueueControls:
        return self._mirror.values.get(job_type) or QueueControls()

    async def open(self, job_type: str, priority: int = PRIORITY_MIN, lane: int | None = None) -> str:
        """Make sure the type's queue of one priority band (or owner lane of it) exists as its controls
        say; its durable name."""
        config = queue_config(self._names, job_type, await self._read(job_type), self._settings.ack_wait_s, priority,
                              lane)
        assert config.durable_name
        await ensure_durable(self._js, self._names.jobs_stream, config,
                             compared=("filter_subjects", "ack_wait", "max_deliver"))
        # The controls may have changed while it was made (the gateway found no queue to change then).
        await apply_controls(self._js, self._names.jobs_stream, config.durable_name, await self._read(job_type))
        return config.durable_name

    async def _read(self, job_type: str) -> QueueControls:
        kv = self._mirror.kv
        assert kv is not None, "start() first"
        try:
            entry = await kv.get(job_type)
        except KeyNotFoundError:
            return QueueControls()
        return controls_decoder.decode(entry.value) if entry.value else QueueControls()

    def credit(self, job_type: str, free: int) -> int:
        """How many jobs of the type to ask for with `free` slots: a rate-limited type no more than
        one window's worth (they would only wait here for tokens)."""
        rate_max = self.controls(job_type).rate_max
        return free if rate_max is None else min(free, rate_max)

    async def take_token(self, job_type: str) -> None:
        """Wait for a start token of a rate-limited type (at once for any other type)."""
        controls = self.controls(job_type)
        if controls.rate_max is None:
            return
        # Unlocked while tokens are to be had (publishes in flight together); once the window is
        # full, one taker here retries and the others queue behind it.
        if await self._try_token(job_type):
            return
        async with self._waiting.setdefault(job_type, asyncio.Lock()):
            while not await self._try_token(job_type):
                # Backoff for the window to move on; the broker, not this loop, is what limits.
                await asyncio.sleep(controls.rate_window_s / controls.rate_max / 4 * random.uniform(0.5, 1.5))
                controls = self.controls(job_type)
                if controls.rate_max is None:
                    return  # the limit was lifted meanwhile

    async def _try_token(self, job_type: str) -> bool:
        try:
            await publish_acked(self._js, self._names.rate_tokens(job_type), b"", {}, timeout=5.0)
            return True
        except ServiceUnavailableError as exc:
            if exc.err_code != MAX_MSGS_ERR:
                raise
            return False
        except NoStreamResponseError:
            log.warning("%s has a rate limit but no token stream; starting without a token", job_type)
            return True
