"""Queue controls from the gateway: read a job type's queue, pause and resume it, set its limits.

The value in the `queue_controls` KV bucket is what counts (processors read it when they create a
queue, and watch it for rate limits); after writing it the gateway applies it to the queue itself
(JetStream consumer pause, `max_ack_pending`) and, for a rate limit, makes the token stream first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from jobline.contract.events import encoder
from jobline.contract.names import ALL_PRIORITIES, Names, is_valid_job_type
from jobline.contract.queues import (
    QueueControls,
    QueueView,
    controls_decoder,
    queue_controls_bucket_config,
    rate_stream_config,
)
from jobline.runtime.buckets import key_value
from jobline.runtime.queue_controls import apply_controls, create_queue_if_missing
from jobline.runtime.stream_setup import ensure_stream

from .catalogue import Catalogue
from .problems import Problem

MAX_CONCURRENCY = 100_000


class QueueLimits(msgspec.Struct, forbid_unknown_fields=True):
    """`PUT /api/queues/{type}`: a field left out keeps its value, null lifts the limit."""

    concurrency: int | None | msgspec.UnsetType = msgspec.UNSET
    key_concurrency: int | None | msgspec.UnsetType = msgspec.UNSET
    rate_max: int | None | msgspec.UnsetType = msgspec.UNSET
    rate_window_s: float | msgspec.UnsetType = msgspec.UNSET


def _refused(key: str, detail: str) -> Problem:
    return Problem(422, "Invalid limit", detail, errors=[{"key": key, "source": "body", "message": detail}])


def check_limits(limits: QueueLimits) -> None:
    if isinstance(limits.concurrency, int) and not 1 <= limits.concurrency <= MAX_CONCURRENCY:
        raise _refused("concurrency", f"concurrency must be from 1 to {MAX_CONCURRENCY} (null: no limit)")
    if isinstance(limits.key_concurrency, int) and not 1 <= limits.key_concurrency <= MAX_CONCURRENCY:
        raise _refused("key_concurrency", f"key_concurrency must be from 1 to {MAX_CONCURRENCY} (null: no limit)")
    if isinstance(limits.rate_max, int) and not 1 <= limits.rate_max <= 1_000_000:
        raise _refused("rate_max", "rate_max must be from 1 to 1000000 (null: no limit)")
    if isinstance(limits.rate_window_s, float | int) and not 0.1 <= limits.rate_window_s <= 86400:
        raise _refused("rate_window_s", "rate_window_s must be from 0.1 to 86400 seconds")


class QueueStore:
    def __init__(self, js: JetStreamContext, names: Names, kv: KeyValue, catalogue: Catalogue, replicas: int):
        self.js = js
        self.names = names
        self.kv = kv
        self.catalogue = catalogue
        self.replicas = replicas
        self._bands_made: set[tuple[str, int]] = set()

    @classmethod
    async def open(cls, js: JetStreamContext, names: Names, catalogue: Catalogue, replicas: int) -> QueueStore:
        return cls(js, names, await key_value(js, queue_controls_bucket_config(names, replicas)), catalogue, replicas)

    def _known(self, job_type: str) -> None:
        if not is_valid_job_type(job_type) or job_type not in self.catalogue.types:
            raise Problem(404, "Unknown job type", f"no processor serves a job type {job_type!r}")

    async def _read(self, job_type: str) -> tuple[QueueControls, int]:
        try:
            entry = await self.kv.get(job_type)
        except KeyNotFoundError:
            return QueueControls(), 0
        return (controls_decoder.decode(entry.value) if entry.value else QueueControls()), int(entry.revision or 0)

    async def ensure_band(self, job_type: str, priority: int) -> None:
        """The queue of a type's priority band exists before its first job is stored (made once)."""
        if (job_type, priority) in self._bands_made:
            return
        controls, _ = await self._read(job_type)
        await create_queue_if_missing(self.js, self.names, job_type, controls, priority)
        # The controls may have changed meanwhile (a change applies to the queues that exist).
        await apply_controls(self.js, self.names.jobs_stream, self.names.band_durable(job_type, priority),
                             (await self._read(job_type))[0])
        self._bands_made.add((job_type, priority))

    async def view(self, job_type: str) -> QueueView:
        self._known(job_type)
        controls, _ = await self._read(job_type)
        counts = await asyncio.gather(*(self._counts(self.names.band_durable(job_type, p)) for p in ALL_PRIORITIES))
        waiting, running = sum(w for w, _ in counts), sum(r for _, r in counts)
        return QueueView(type=job_type, paused=controls.paused, concurrency=controls.concurrency,
                         key_concurrency=controls.key_concurrency,
                         rate_max=controls.rate_max, rate_window_s=controls.rate_window_s, waiting=waiting,
                         running=running, updated_at=controls.updated_at)

    async def _counts(self, durable: str) -> tuple[int, int]:
        """(waiting, running) of one queue of the type (one per priority band)."""
        try:
            info = await self.js.consumer_info(self.names.jobs_stream, durable)
        except NotFoundError:
            return 0, 0  # no processor has opened the queue yet
        return int(info.num_pending or 0), int(info.num_ack_pending or 0)

    async def all(self) -> list[QueueView]:
        return [await self.view(t) for t in sorted(self.catalogue.types)]

    async def change(self, job_type: str, change: Callable[[QueueControls], None]) -> QueueView:
        """Apply `change` to the type's controls (compare-and-set: gateways race), then to the queue."""
        self._known(job_type)
        for _ in range(20):
            controls, revision = await self._read(job_type)
            change(controls)
            controls.updated_at = time.time()
            if controls.rate_max is not None:  # the token stream before any processor is told to use it
                await ensure_stream(self.js, rate_stream_config(self.names, job_type, controls, self.replicas))
            try:
                if revision:
                    await self.kv.update(job_type, encoder.encode(controls), last=revision)
                else:
                    await self.kv.create(job_type, encoder.encode(controls))
            except KeyWrongLastSequenceError:
                continue
            for priority in ALL_PRIORITIES:
                await apply_controls(self.js, self.names.jobs_stream, self.names.band_durable(job_type, priority), controls)
            return await self.view(job_type)
        raise Problem(503, "Queue busy", f"the controls of {job_type!r} kept changing under this request; try again")

    async def set_limits(self, job_type: str, limits: QueueLimits) -> QueueView:
        check_limits(limits)

        def limited(controls: QueueControls) -> None:
            if limits.concurrency is not msgspec.UNSET:
                controls.concurrency = limits.concurrency
            if limits.key_concurrency is not msgspec.UNSET:
                controls.key_concurrency = limits.key_concurrency
            if limits.rate_max is not msgspec.UNSET:
                controls.rate_max = limits.rate_max
            if not isinstance(limits.rate_window_s, msgspec.UnsetType):
                controls.rate_window_s = float(limits.rate_window_s)

        return await self.change(job_type, limited)

    async def pause(self, job_type: str, paused: bool) -> QueueView:
        def set_paused(controls: QueueControls) -> None:
            controls.paused = paused

        return await self.change(job_type, set_paused)
