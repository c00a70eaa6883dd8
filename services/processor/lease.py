"""An attempt's hold on its job, kept alive by in-progress acks.

JetStream redelivers a job whose worker sent no ack for `ack_wait`. A worker that was frozen that
long (SIGSTOP, a stalled VM, a long network partition) may have been superseded: on waking it must
not publish anything more until it has checked that the run chain still ends with its own
`started`. If not, the attempt is fenced: its work is stopped and nothing more is published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg

from .fence import Fenced, RunChain
from .key_slots import SlotLost

log = logging.getLogger(__name__)


class Lease:
    def __init__(self, msg: Msg, chain: RunChain, started_seq: int, ack_wait_s: float,
                 on_lost: Callable[[], None], also_renew: Callable[[], Awaitable[None]] | None = None):
        self._msg = msg
        self._chain = chain
        self._started_seq = started_seq
        # Renewed every third of the ack wait; trust it for a bit less than the whole wait.
        self._interval = max(ack_wait_s / 3, 0.05)
        self._trust_s = ack_wait_s * 0.8
        self._renewed = time.monotonic()
        self._on_lost = on_lost
        self._also_renew = also_renew  # e.g. the job's concurrency-key slot: renewed with the delivery
        self._check: asyncio.Task[None] | None = None
        self.lost = False
        self._closed = False
        # A timer, not a task sleeping in a loop: most jobs end before the first renewal is due.
        self._loop = asyncio.get_running_loop()
        self._renewal: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(self._interval, self._renew_due)

    async def guard(self) -> None:
        """Await before publishing: raises Fenced once the attempt has been superseded."""
        if self.lost:
            raise Fenced(f"job {self._chain.job_id}: attempt superseded")
        if time.monotonic() - self._renewed > self._trust_s:
            await self._verify()

    async def _verify(self) -> None:
        if self._check is None or self._check.done():
            self._check = asyncio.create_task(self._read_chain())
        await asyncio.shield(self._check)
        if self.lost:
            raise Fenced(f"job {self._chain.job_id}: attempt superseded")

    async def _read_chain(self) -> None:
        await self._chain.read_last()
        if self._chain.last_seq != self._started_seq:
            if not self.lost:
                self.lost = True
                log.warning("job %s: another attempt took over while this worker was away; stopping",
                            self._chain.job_id)
                self._on_lost()
        else:
            self._renewed = time.monotonic()

    def _renew_due(self) -> None:
        self._timer = None
        if not self.lost and not self._closed:
            self._renewal = asyncio.create_task(self._renew())

    async def _renew(self) -> None:
        """In-progress acks: a job longer than the ack wait is not redelivered while we live."""
        try:
            if time.monotonic() - self._renewed > self._trust_s:
                # We were away longer than we can vouch for: check before renewing.
                with contextlib.suppress(Exception):
                    await self._verify()
                if self.lost:
                    return
            with contextlib.suppress(Exception):
                await self._msg.in_progress()
                self._renewed = time.monotonic()
            if self._also_renew is not None:
                try:
                    await self._also_renew()
                except SlotLost as exc:
                    if not self.lost:
                        self.lost = True
                        log.warning("job %s: %s; stopping", self._chain.job_id, exc)
                        self._on_lost()
                except Exception:  # (NATS away for a moment: the slot's TTL outlasts a renewal or two)
                    log.debug("could not renew a slot", exc_info=True)
        finally:
            if not self.lost and not self._closed:
                self._timer = self._loop.call_later(self._interval, self._renew_due)

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._renewal is not None:
            self._renewal.cancel()
