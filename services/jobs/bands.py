"""Priority bands' and owner lanes' queues: a job of priority N > 0 waits in its band's own queue, a
job with an owner in its owner's lane of its band; each queue is made when its first job is about to
be stored (a band or lane nobody uses costs the cluster no consumer)."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from jobline.contract.events import JobCreated
from jobline.contract.names import PRIORITY_MIN, Names, owner_lane
from jobline.contract.queues import QueueControls, controls_decoder
from jobline.runtime.queue_controls import apply_controls, create_queue_if_missing


class Bands:
    def __init__(self, js: JetStreamContext, names: Names, controls: KeyValue):
        self._js = js
        self._names = names
        self._controls = controls  # KV queue_controls: a new band's queue starts as its type's controls say
        self._made: set[tuple[str, int, int | None]] = set()

    async def ensure_for(self, jobs: list[JobCreated]) -> None:
        """The queues these jobs wait in exist (the default queue is the processors' to make)."""
        for job_type, priority, lane in {(j.type, j.priority, owner_lane(j.owner)) for j in jobs}:
            if priority != PRIORITY_MIN or lane is not None:
                await self.ensure(job_type, priority, lane)

    async def ensure(self, job_type: str, priority: int, lane: int | None = None) -> None:
        """The queue of a type's priority band (or owner lane of it) exists (made once per process)."""
        if (job_type, priority, lane) in self._made:
            return
        await create_queue_if_missing(self._js, self._names, job_type, await self._read(job_type), priority, lane)
        # The controls may have changed meanwhile (a change applies to the queues that exist).
        await apply_controls(self._js, self._names.jobs_stream, self._names.band_durable(job_type, priority, lane),
                             await self._read(job_type))
        self._made.add((job_type, priority, lane))

    async def _read(self, job_type: str) -> QueueControls:
        try:
            entry = await self._controls.get(job_type)
        except KeyNotFoundError:
            return QueueControls()
        return controls_decoder.decode(entry.value) if entry.value else QueueControls()
