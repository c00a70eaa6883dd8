"""Priorities on the processor's side: a type's priority bands and the pick that starts the highest first.

A job of priority N above the default (0) is published on its band's subject and waits in the
band's own queue, `queue-<type>-P<N>`, shared like the default queue by every processor serving the
type. While no band above the default holds work, nothing changes: the default queue's consume
loop hands jobs over as slots free (the fast path). Once a band may hold work ("live"), this
processor stops asking the default queue for more and, whenever it has free slots, asks the bands
for what they hold now (a no-wait pull, answered at once), highest band first, down to the default
queue: with a backlog, a higher priority starts first, and within one the oldest (each band is a
queue). Jobs the default queue delivered meanwhile are parked and start in the default band's turn.

A band becomes live when a job of it is created (an ordered consumer of `jobs.*.created.<type>.*`,
headers only: the processor hears every prioritized job's creation) or when a scan
of the bands' consumer info finds work (a retry back from its backoff, a backlog found at start);
it stops being live when it has nothing to give (unless the type is paused: resuming it makes no
event here, so a paused type's bands stay live and are asked again every second).

No band starves: every `JOBLINE_PRIORITY_SHARE_S` the band served least recently goes first once
(a share: under a flood of high-priority work, a waiting low-priority job still starts once per
share period on each processor).

Owners: a job with an owner waits in its owner's lane of its band (names.OWNER_LANES queues per
band, by a hash of the owner). A band's lanes and its own queue are asked in turn, the one served
least recently first, each for an equal share of the free slots: with a backlog, owners are served
round-robin within a priority, and one owner's flood fills its own lane instead of delaying every
other owner's jobs. A queue here is (priority, lane); lane None is the band's own queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from jobline.contract.names import PRIORITY_MIN, InvalidName
from jobline.runtime.pull import PullNow
from jobline.runtime.queue_controls import queues_of

from .queues import Queues
from .settings import ProcessorSettings

log = logging.getLogger(__name__)
LIVE_TICK_S = 1.0  # while a band is live: look again this often (a paused type, a lost answer)
RECENT_SCAN_S = 2.0  # bands that had work lately: their consumer info is read this often …
FULL_SCAN_S = 30.0  # … and every band's this often
RECENT_FOR_S = 600.0  # how long a band counts as having had work lately (a retry's backoff)

Queue = tuple[int, int | None]  # (priority, owner lane or None)
DEFAULT: Queue = (PRIORITY_MIN, None)  # the type's default queue (the fast path's)


class Bands:
    def __init__(self, nc: Client, js: JetStreamContext, settings: ProcessorSettings, queues: Queues, job_type: str, *,
                 start: Callable[[Msg], None], free: Callable[[], int], default_wake: Callable[[], None]):
        self._nc, self._js, self._settings, self._queues = nc, js, settings, queues
        self.job_type = job_type
        self._start, self._free, self._default_wake = start, free, default_wake
        self._names = settings.names
        self._durables: dict[Queue, str] = {}
        self._pull = PullNow(nc, self._names.jobs_stream)
        self._hints: Subscription | None = None
        self.live: set[Queue] = set()
        self._parked: list[tuple[float, Msg]] = []  # default-queue jobs delivered while bands were live
        self._served: dict[Queue, float] = {}  # queue → when a job of it last started here (never: first)
        self._recent: dict[Queue, float] = {}  # queue → when it last had work
        self._next_share = time.monotonic() + settings.priority_share_s
        self._next_full_scan = 0.0
        self._next_recent_scan = 0.0
        self._woken = asyncio.Event()

    @property
    def busy(self) -> bool:
        """Whether the default queue must wait for the pick (a band may hold higher work, a lane an
        owner's turn)."""
        return bool(self.live or self._parked)

    async def open(self) -> None:
        """Open the bands' queues that exist (a band's queue is made when its first job is submitted:
        by the gateway, or here when a job of it is heard of first)."""
        self._durables[DEFAULT] = self._names.queue_durable(self.job_type)
        await self._scan_all()  # (also finds a backlog waiting in one)
        self._next_full_scan = time.monotonic() + FULL_SCAN_S
        # An ordered consumer, not a plain subscription: a delayed job's created event is stored by
        # the broker's message schedule, never published where a subscriber would hear it.
        self._hints = await self._js.subscribe(
            self._names.prioritized_created(self.job_type), stream=self._names.jobs_stream, cb=self._on_created,
            ordered_consumer=True, deliver_policy=DeliverPolicy.NEW, headers_only=True)

    async def close(self) -> None:
        if self._hints is not None:
            with contextlib.suppress(Exception):
                await self._hints.unsubscribe()
        for _, msg in self._parked:  # handed back: someone else takes them
            with contextlib.suppress(Exception):
                await msg.nak()
        self._parked.clear()

    async def _open(self, queue: Queue) -> None:
        self._durables[queue] = await self._queues.open(self.job_type, *queue)

    def wake(self) -> None:
        self._woken.set()

    def park(self, msg: Msg) -> None:
        self._parked.append((time.monotonic(), msg))
        self._woken.set()

    async def _on_created(self, msg: Msg) -> None:
        try:
            _, priority, lane = self._names.created_queue(msg.subject)
        except InvalidName:
            return
        queue = (priority, lane)
        if queue != DEFAULT and (queue not in self.live or queue not in self._durables):
            self.live.add(queue)
            self._recent[queue] = time.monotonic()
            self._woken.set()

    async def run(self, stop: asyncio.Event) -> None:
        stopping = asyncio.ensure_future(stop.wait())
        stopping.add_done_callback(lambda _: self._woken.set())  # (the stop ends the wait at once)
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(LIVE_TICK_S if self.busy else RECENT_SCAN_S):
                        await self._woken.wait()
                self._woken.clear()
                if stop.is_set():
                    return
                try:
                    for queue in [q for q in self.live if q not in self._durables]:
                        await self._open(queue)  # (heard of before any queue of it was found)
                    await self._scan()
                    await self._keep_parked()
                    if self.busy:
                        await self.pick()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # NATS away: the next turn tries again
                    log.warning("priority bands of %s: %s", self.job_type, exc or type(exc).__name__)
        finally:
            stopping.cancel()

    async def pick(self) -> None:
        """Start jobs in the free slots, highest band first (one queue first once per share period);
        within a band, its queues (its own, its owners' lanes) take turns."""
        tiers: dict[int, list[Queue]] = {PRIORITY_MIN: [DEFAULT]}
        for queue in self.live:
            if queue in self._durables and queue != DEFAULT:
                tiers.setdefault(queue[0], []).append(queue)
        order = [sorted(tiers[p], key=self._last_served) for p in sorted(tiers, reverse=True)]
        now = time.monotonic()
        if now >= self._next_share:
            self._next_share = now + self._settings.priority_share_s
            order.insert(0, [min((q for tier in order for q in tier), key=self._last_served)])
        paused = self._queues.controls(self.job_type).paused
        for tier in order:
            if not await self._take_turns(tier, paused):
                return
        if not self.busy:
            self._default_wake()  # the default queue's fast path again

    def _last_served(self, queue: Queue) -> float:
        return self._served.get(queue, 0.0)

    async def _take_turns(self, tier: list[Queue], paused: bool) -> bool:
        """Round-robin over one band's queues, each asked for an equal share of the free slots, until
        the slots or the queues run out; False when the slots did."""
        remaining = list(tier)
        while remaining:
            for queue in list(remaining):
                credit = self._queues.credit(self.job_type, self._free())
                if credit <= 0:
                    return False
                want = min(max(1, credit // len(remaining)), credit)
                got = await self._take(queue, want)
                if got < want:
                    remaining.remove(queue)  # (it has no more now)
                    if not got and queue != DEFAULT and not paused:
                        self.live.discard(queue)
        return True

    async def _take(self, queue: Queue, want: int) -> int:
        """Start up to `want` jobs of one queue (for the default queue, the parked ones first)."""
        taken = 0
        if queue == DEFAULT:
            while self._parked and taken < want:
                self._started(queue, self._parked.pop(0)[1])
                taken += 1
            if taken >= want:
                return taken
        msgs = await self._pull.pull(self._durables[queue], want - taken)
        for msg in msgs:
            self._started(queue, msg)
        return taken + len(msgs)

    def _started(self, queue: Queue, msg: Msg) -> None:
        now = time.monotonic()
        self._served[queue] = now
        if queue != DEFAULT:
            self._recent[queue] = now
        self._start(msg)

    async def _keep_parked(self) -> None:
        """A parked job stays ours (not redelivered) while it waits for its turn."""
        keep_after = self._settings.ack_wait_s / 3
        now = time.monotonic()
        for i, (since, msg) in enumerate(self._parked):
            if now - since > keep_after:
                await msg.in_progress()
                self._parked[i] = (now, msg)

    async def _scan(self) -> None:
        """Find work no creation announced: every queue now and then, those that had work lately more often."""
        now = time.monotonic()
        if now >= self._next_full_scan:
            self._next_full_scan = now + FULL_SCAN_S
            self._next_recent_scan = now + RECENT_SCAN_S
            await self._scan_all()
        elif now >= self._next_recent_scan:
            self._next_recent_scan = now + RECENT_SCAN_S
            await self._look_at([q for q, at in self._recent.items() if now - at < RECENT_FOR_S and q not in self.live])

    async def _scan_all(self) -> None:
        """Every queue of the type that exists (one consumer list), live if it holds work."""
        for found in await queues_of(self._js, self._names, self.job_type):
            queue = (found.priority, found.lane)
            if queue == DEFAULT:
                continue
            if queue not in self._durables:
                await self._open(queue)  # (made by a gateway while no job of it was heard of here)
            self._mark(queue, found.waiting + found.running)

    async def _look_at(self, queues: list[Queue]) -> None:
        """Mark live those of these queues holding work."""
        for queue in queues:
            try:
                info = await self._js.consumer_info(self._names.jobs_stream, self._names.band_durable(self.job_type, *queue))
            except NotFoundError:
                continue
            if queue not in self._durables:
                await self._open(queue)
            # Pending: never delivered. Ack pending: running, or back from a processor (a retry's
            # backoff): asked once more to find out.
            self._mark(queue, int(info.num_pending or 0) + int(info.num_ack_pending or 0))

    def _mark(self, queue: Queue, work: int) -> None:
        if work:
            if queue not in self.live:
                self.live.add(queue)
                self._woken.set()
        else:
            self._recent.pop(queue, None)
