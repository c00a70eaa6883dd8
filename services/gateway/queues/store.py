"""Queue controls from the gateway: read a job type's queue, pause and resume it, set its limits.

The value in the `queue_controls` KV bucket is what counts (processors read it when they create a
queue, and watch it for rate limits); after writing it the gateway applies it to the queue itself
(JetStream consumer pause, `max_ack_pending`) and, for a rate limit, makes the token stream first.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec
from nats.js import JetStreamContext

from jobline.contract.names import Names, is_valid_job_type
from jobline.contract.queues import QueueControls, QueueView, rate_stream_config
from jobline.jobs.catalogue import Catalogue
from jobline.jobs.errors import Invalid, NotFound
from jobline.runtime.kv_records import KvRecords
from jobline.runtime.queue_controls import apply_controls, queues_of
from jobline.runtime.stream_setup import ensure_stream

MAX_CONCURRENCY = 100_000


class QueueLimits(msgspec.Struct, forbid_unknown_fields=True):
    """`PUT /api/queues/{type}`: a field left out keeps its value, null lifts the limit."""

    concurrency: int | msgspec.UnsetType | None = msgspec.UNSET
    key_concurrency: int | msgspec.UnsetType | None = msgspec.UNSET
    rate_max: int | msgspec.UnsetType | None = msgspec.UNSET
    rate_window_s: float | msgspec.UnsetType = msgspec.UNSET


def _refused(key: str, detail: str) -> Invalid:
    return Invalid(detail, title="Invalid limit", key=key)


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
    def __init__(self, js: JetStreamContext, names: Names, records: KvRecords[QueueControls], catalogue: Catalogue,
                 replicas: int, serving: Callable[[str], int] = lambda job_type: 0):
        self.js = js
        self.names = names
        self.records = records  # KV queue_controls: what counts (processors read it when they make a queue)
        self.catalogue = catalogue
        self.replicas = replicas
        self.serving = serving  # how many processors serve a type (the workers bucket)

    def _known(self, job_type: str) -> None:
        if not is_valid_job_type(job_type) or job_type not in self.catalogue.types:
            raise NotFound(f"no processor serves a job type {job_type!r}", title="Unknown job type")

    async def _read(self, job_type: str) -> QueueControls:
        return await self.records.value(job_type) or QueueControls()

    async def view(self, job_type: str) -> QueueView:
        self._known(job_type)
        controls = await self._read(job_type)
        queues = await queues_of(self.js, self.names, job_type)  # (every band and owner lane that exists)
        waiting, running = sum(q.waiting for q in queues), sum(q.running for q in queues)
        return QueueView(type=job_type, paused=controls.paused, concurrency=controls.concurrency,
                         key_concurrency=controls.key_concurrency,
                         rate_max=controls.rate_max, rate_window_s=controls.rate_window_s, waiting=waiting,
                         running=running, updated_at=controls.updated_at, workers=self.serving(job_type))

    async def all(self) -> list[QueueView]:
        return [await self.view(t) for t in sorted(self.catalogue.types)]

    async def change(self, job_type: str, change: Callable[[QueueControls], None]) -> QueueView:
        """Apply `change` to the type's controls (compare-and-set: gateways race), then to its queues."""
        self._known(job_type)

        async def changed(current: QueueControls | None) -> QueueControls:
            controls = current or QueueControls()
            change(controls)
            controls.updated_at = time.time()
            if controls.rate_max is not None:  # the token stream before any processor is told to use it
                await ensure_stream(self.js, rate_stream_config(self.names, job_type, controls, self.replicas))
            return controls

        controls = await self.records.update(job_type, changed)
        assert controls is not None
        for queue in await queues_of(self.js, self.names, job_type):
            await apply_controls(self.js, self.names.jobs_stream, queue.durable, controls)
        return await self.view(job_type)

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
