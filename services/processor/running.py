"""The jobs running in this processor, and the cancel requests that reach them.

Every processor hears every cancel request (`jobs.*.cancel`); one for a job running here stops its
handler at once. A request for a job not (yet) running here is kept for a while: one that arrives
between the attempt's `started` and its registration here must not be lost.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import OrderedDict
from dataclasses import dataclass

import msgspec
from nats.aio.msg import Msg

from jobline.contract.events import CancelRequested

from .context import JobContext

log = logging.getLogger(__name__)
UNCLAIMED_CANCELS_KEPT = 10_000
_cancel_decoder = msgspec.json.Decoder(CancelRequested)


@dataclass
class RunningJob:
    ctx: JobContext
    handler: asyncio.Task[object]
    stop_reason: str | None = None  # "cancelled" once a cancel request reached it, "timeout"

    def stop(self, reason: str) -> None:
        """Stop the work (the handler is cancelled; a thread is told through ctx.cancelled)."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.ctx.stop()
            self.handler.cancel()


class RunningJobs:
    def __init__(self) -> None:
        self._jobs: dict[str, RunningJob] = {}
        self._unclaimed: OrderedDict[str, None] = OrderedDict()

    def add(self, job_id: str, running: RunningJob) -> None:
        self._jobs[job_id] = running
        if job_id in self._unclaimed:  # requested while it was starting
            del self._unclaimed[job_id]
            log.info("cancelling job %s", job_id)
            running.stop("cancelled")

    def remove(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)

    def ids(self, most: int) -> list[str]:
        """The ids of jobs whose handler runs here now (at most `most`)."""
        return list(itertools.islice(self._jobs, most))

    async def on_cancel_request(self, msg: Msg) -> None:
        try:
            request = _cancel_decoder.decode(msg.data)
        except msgspec.DecodeError:
            return
        running = self._jobs.get(request.job_id)
        if running is None:
            self._unclaimed[request.job_id] = None
            while len(self._unclaimed) > UNCLAIMED_CANCELS_KEPT:
                self._unclaimed.popitem(last=False)
            return
        if running.stop_reason is None:
            log.info("cancelling job %s", request.job_id)
        running.stop("cancelled")
