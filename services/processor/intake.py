"""Where a job type's work comes in: its default queue, its priority bands, their owner lanes and
the jobs parked meanwhile, behind one face.

The default queue's consume loop asks for as many jobs as there are free slots here (the fast
path). While a band above the default may hold work (bands.py), the default queue stops asking
and the bands' pick starts jobs, highest band first; jobs the default queue delivered meanwhile
are parked and start in the default band's turn. `finish` acks a job of the default queue and,
on the fast path, asks for the next one in the same message.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from jobline.contract.names import PRIORITY_MIN
from jobline.runtime.consume import ConsumeLoop

from .bands import Bands
from .queues import Queues
from .settings import ProcessorSettings


class Intake:
    def __init__(self, nc: Client, js: JetStreamContext, settings: ProcessorSettings, controls: Queues, job_type: str,
                 *, start: Callable[[Msg], None], free: Callable[[], int], draining: Callable[[], bool]):
        self.job_type = job_type
        self._nc = nc
        self._controls = controls
        self._start, self._free, self._draining = start, free, draining
        # A resumed queue hands its waiting pull requests jobs only at their next idle heartbeat
        # (nats-server 2.15): a one-second heartbeat is what makes resume take effect within a second.
        heartbeat_s = min(1.0, max(settings.ack_wait_s / 2, 0.5))
        self._queue = ConsumeLoop(nc, settings.names.jobs_stream, self._from_default_queue,
                                  open=functools.partial(controls.open, job_type), wanted=self._wanted,
                                  heartbeat_s=heartbeat_s, name=f"queue {job_type}")
        self._bands = Bands(nc, js, settings, controls, job_type, start=start, free=free,
                            default_wake=self._queue.wake)

    async def start(self) -> None:
        await self._queue.start()
        await self._bands.open()

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(self._queue.run(stop), self._bands.run(stop))

    async def withdraw(self) -> None:
        """Ask for nothing more (the server drops pull requests nobody listens to, so what is handed
        back goes to other processors, not back here)."""
        await self._queue.stop()
        await self._bands.close()

    def wake(self) -> None:
        """A slot is free here."""
        self._queue.wake()
        if self._bands.busy:
            self._bands.wake()

    async def finish(self, msg: Msg, priority: int, lane: int | None = None) -> None:
        """Done with a job of this type: ack it. On the fast path (a job of the default queue, no band
        or lane live) the ack asks for the next job itself: one message instead of an ack and a pull."""
        pull = self._queue.pull if priority == PRIORITY_MIN and lane is None else None
        if pull is not None and not self._bands.busy and not self._draining() and self._nc.is_connected:
            await pull.ack_and_ask(msg, 1)
        else:
            await msg.ack()

    def _wanted(self) -> tuple[int, int | None]:
        if self._bands.busy:
            return 0, None  # higher priorities may wait: the bands' pick asks the default queue too
        return self._controls.credit(self.job_type, self._free()), None

    def _from_default_queue(self, msg: Msg) -> None:
        if self._bands.busy and not self._draining():
            self._bands.park(msg)  # a job of a higher priority may be waiting: it starts in its band's turn
            return
        self._start(msg)
