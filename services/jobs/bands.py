"""Priority bands' queues: a job of priority N > 0 waits in its band's own queue, made when the
band's first job is about to be stored (a band nobody uses costs the cluster no consumer)."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from jobline.contract.names import Names
from jobline.contract.queues import QueueControls, controls_decoder
from jobline.runtime.queue_controls import apply_controls, create_queue_if_missing


class Bands:
    def __init__(self, js: JetStreamContext, names: Names, controls: KeyValue):
        self._js = js
        self._names = names
        self._controls = controls  # KV queue_controls: a new band's queue starts as its type's controls say
        self._made: set[tuple[str, int]] = set()

    async def ensure(self, job_type: str, priority: int) -> None:
        """The queue of a type's priority band exists (made once per process)."""
        if (job_type, priority) in self._made:
            return
        await create_queue_if_missing(self._js, self._names, job_type, await self._read(job_type), priority)
        # The controls may have changed meanwhile (a change applies to the queues that exist).
        await apply_controls(self._js, self._names.jobs_stream, self._names.band_durable(job_type, priority),
                             await self._read(job_type))
        self._made.add((job_type, priority))

    async def _read(self, job_type: str) -> QueueControls:
        try:
            entry = await self._controls.get(job_type)
        except KeyNotFoundError:
            return QueueControls()
        return controls_decoder.decode(entry.value) if entry.value else QueueControls()
