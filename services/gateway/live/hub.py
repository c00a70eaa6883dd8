"""Fan-out of live job events to stream clients: one NATS feed, one frame per event, many queues.

Two kinds of listeners:
- job listeners follow a set of jobs and get the applied events of them they want (log lines
  included unless they say not); a single-job listener's stream ends after the job's terminal event;
- wide listeners (dashboards, the firehose) get the events of every job matching a filter, without
  log lines, with progress coalesced to a few updates per second per job (latest value wins, and a
  pending progress update always goes out before the job's next event).

Filtering happens here, where the event's kind is known, so a client's writer only ever wakes for
frames it sends; heartbeats come from one sweep over every listener, not a timer per client.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from jobline.contract.history import ALL_STATUSES
from jobline.contract.names import is_valid_job_type

from .sse import HEARTBEAT

log = logging.getLogger(__name__)

END = b""  # queued after a single job's terminal frame, or when a client is dropped
WIDE_PROGRESS_INTERVAL_S = 0.25


@dataclass(frozen=True)
class WideFilter:
    types: frozenset[str] | None = None
    statuses: frozenset[str] | None = None

    @classmethod
    def parse(cls, types: str | None, statuses: str | None) -> WideFilter:
        """From comma lists (`type=a,b`, `status=running`); ValueError naming the bad part."""
        def names(raw: str | None, what: str, valid: Callable[[str], bool]) -> frozenset[str] | None:
            if raw is None:
                return None
            parts = [part.strip(" ") for part in raw.split(",")]
            bad = next((part for part in parts if not valid(part)), None)
            if bad is not None:
                raise ValueError(f"{what}: {bad!r} is not a {what} (a comma list of names, none empty)")
            return frozenset(parts)

        return cls(types=names(types, "type", is_valid_job_type),
                   statuses=names(statuses, "status", ALL_STATUSES.__contains__))

    def matches(self, job_type: str, status: str) -> bool:
        return (self.types is None or job_type in self.types) and (self.statuses is None or status in self.statuses)


class FrameQueue:
    """A bounded queue of frames that coalesces progress for a client falling behind: once it is
    half full, a new progress frame replaces a progress frame still waiting at its tail (latest
    value wins; every other event keeps its place). With `per_job`, a job's progress frame always
    replaces that job's progress frame still waiting, wherever it is (a stream of many jobs whose
    client only wants the latest fraction of each)."""

    def __init__(self, limit: int, per_job: bool = False):
        self._items: deque[list[Any]] = deque()  # [frame, is progress]
        self._limit = limit
        self._waiting_progress: dict[str, list[Any]] | None = {} if per_job else None
        self._waiter: asyncio.Future[None] | None = None  # a bare future: asyncio.Event costs more per wake-up

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def put_nowait(self, frame: bytes, progress: bool = False, job_id: str = "") -> None:
        waiting = self._waiting_progress
        if progress and waiting is not None:
            item = waiting.get(job_id)
            if item is not None:
                item[0] = frame
                return
        elif progress and len(self._items) >= self._limit // 2 and self._items and self._items[-1][1]:
            self._items[-1][0] = frame
            return
        if len(self._items) >= self._limit:
            raise asyncio.QueueFull
        item = [frame, progress]
        self._items.append(item)
        if progress and waiting is not None:
            waiting[job_id] = item
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def get_nowait(self) -> bytes:
        if self._waiting_progress:
            self._waiting_progress.clear()  # (a job's next progress is queued anew, behind what is taken)
        frame: bytes = self._items.popleft()[0]
        return frame

    async def get(self) -> bytes:
        while not self._items:
            await self._wait()
        return self.get_nowait()

    async def take(self) -> list[bytes]:
        """Every frame waiting (at least one): a client that fell behind catches up in one write."""
        while not self._items:
            await self._wait()
        frames = [frame for frame, _ in self._items]
        self._items.clear()
        if self._waiting_progress:
            self._waiting_progress.clear()
        return frames

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)


@dataclass(eq=False)
class Listener:
    """One client connection: a bounded queue of ready-made frames, and which frames it wants."""

    jobs: frozenset[str]
    queue: FrameQueue
    ends_with_job: bool = False  # a single-job stream ends after that job's terminal event
    wide: WideFilter | None = None  # also every other matching job (no logs, coalesced progress)
    logs: bool = True  # the log lines of the jobs it follows
    logs_only: bool = False  # only log lines and the terminal event
    kinds: frozenset[str] | None = None  # only these kinds of event (and the terminal one), if given
    dropped: bool = False
    active: bool = field(default=False, repr=False)  # got a frame since the last heartbeat sweep

    def wants(self, kind: str, last: bool) -> bool:
        if kind == "logged":
            return self.logs
        if self.kinds is not None:
            return last or kind in self.kinds
        return last or not self.logs_only


async def frames_of(source: AsyncIterator[bytes | Listener]) -> AsyncIterator[bytes]:
    """A stream source's frames with the listener it ends on expanded into its live frames
    (heartbeats included) until END: for consumers other than the SSE writer (the WebSocket)."""
    async for item in source:
        if not isinstance(item, Listener):
            yield item
            continue
        while True:
            for frame in await item.queue.take():
                if frame is END:
                    return
                yield frame


class Hub:
    def __init__(self, buffer: int, heartbeat_s: float = 15.0, on_dropped: Callable[[], None] | None = None):
        self._buffer = buffer
        self._heartbeat_s = heartbeat_s
        self._on_dropped = on_dropped or (lambda: None)
        self._by_job: dict[str, set[Listener]] = defaultdict(set)
        self._wide: set[Listener] = set()
        self._all: set[Listener] = set()
        self._pending_progress: dict[str, tuple[bytes, str, str]] = {}
        self._flush: asyncio.TimerHandle | None = None
        self._sweep: asyncio.TimerHandle | None = None
        self.frames_queued = 0  # read by the metrics endpoint: a counter call per frame costs more than the frame

    # --- heartbeats -----------------------------------------------------------------------
    def start(self) -> None:
        self._sweep = asyncio.get_running_loop().call_later(self._heartbeat_s / 2, self._send_heartbeats)

    def stop(self) -> None:
        for timer in (self._sweep, self._flush):
            if timer is not None:
                timer.cancel()
        self._sweep = self._flush = None

    def _send_heartbeats(self) -> None:
        # Every half heartbeat_s, a listener that got nothing for the whole interval gets one: no
        # stream stays quiet longer than heartbeat_s.
        for listener in self._all:
            if not listener.active and listener.queue.empty():
                listener.queue.put_nowait(HEARTBEAT)
            listener.active = False
        self.start()

    # --- listeners ------------------------------------------------------------------------
    def subscribe(self, job_id: str, *, logs_only: bool = False) -> Listener:
        return self.listen(frozenset({job_id}), ends_with_job=True, logs_only=logs_only)

    def listen(self, jobs: frozenset[str], *, ends_with_job: bool = False, wide: WideFilter | None = None,
               logs: bool = True, logs_only: bool = False) -> Listener:
        listener = Listener(jobs=jobs, queue=FrameQueue(self._buffer), ends_with_job=ends_with_job, wide=wide,
                            logs=logs, logs_only=logs_only)
        return self._add(listener)

    def listen_to_many(self, jobs: frozenset[str], kinds: frozenset[str]) -> Listener:
        """A listener for the summary of many jobs (a batch): only `kinds` (and ends), each job's
        progress coalesced to its latest, room for every job's few lifecycle events — so a client
        is not dropped because its jobs are many (a 10,000-job batch whose snapshot takes a while)."""
        queue = FrameQueue(self._buffer + 4 * len(jobs), per_job=True)
        return self._add(Listener(jobs=jobs, queue=queue, logs=False, kinds=kinds))

    def _add(self, listener: Listener) -> Listener:
        jobs, wide = listener.jobs, listener.wide
        for job_id in jobs:
            self._by_job[job_id].add(listener)
        if wide is not None:
            self._wide.add(listener)
        self._all.add(listener)
        return listener

    def unsubscribe(self, listener: Listener) -> None:
        for job_id in listener.jobs:
            listeners = self._by_job.get(job_id)
            if listeners is not None:
                listeners.discard(listener)
                if not listeners:
                    del self._by_job[job_id]
        self._wide.discard(listener)
        self._all.discard(listener)

    def has_listeners(self, job_id: str) -> bool:
        return job_id in self._by_job or bool(self._wide)

    @property
    def listener_count(self) -> int:
        return len(self._all)

    # --- events ---------------------------------------------------------------------------
    def publish(self, job_id: str, frame: bytes, *, kind: str, job_type: str, status: str, last: bool) -> None:
        progress = kind == "progressed"
        for listener in tuple(self._by_job.get(job_id, ())):
            if listener.wants(kind, last):
                self.offer(listener, frame, progress, job_id)
            if last and listener.ends_with_job:
                self.offer(listener, END)
        if not self._wide or kind == "logged":
            return
        if kind == "progressed":
            self._pending_progress[job_id] = (frame, job_type, status)
            if self._flush is None:
                self._flush = asyncio.get_running_loop().call_later(WIDE_PROGRESS_INTERVAL_S, self._flush_progress)
            return
        pending = self._pending_progress.pop(job_id, None)
        if pending is not None:
            self._offer_wide(job_id, *pending)
        self._offer_wide(job_id, frame, job_type, status)

    def _flush_progress(self) -> None:
        self._flush = None
        pending, self._pending_progress = self._pending_progress, {}
        for job_id, (frame, job_type, status) in pending.items():
            self._offer_wide(job_id, frame, job_type, status)

    def _offer_wide(self, job_id: str, frame: bytes, job_type: str, status: str) -> None:
        for listener in tuple(self._wide):
            if job_id in listener.jobs:
                continue  # it follows this job in full already
            assert listener.wide is not None
            if listener.wide.matches(job_type, status):
                self.offer(listener, frame)

    def offer(self, listener: Listener, frame: bytes, progress: bool = False, job_id: str = "") -> None:
        """Queue a frame for one listener (dropping the listener when its queue is full)."""
        if listener.dropped:
            return
        try:
            listener.queue.put_nowait(frame, progress, job_id)
            listener.active = True
            self.frames_queued += 1
        except asyncio.QueueFull:
            self._on_dropped()
            # A client that does not read is cut off (it may reconnect and resume) rather than
            # holding memory or slowing everyone else.
            listener.dropped = True
            self.unsubscribe(listener)
            while not listener.queue.empty():
                listener.queue.get_nowait()
            listener.queue.put_nowait(END)
            log.info("dropped a slow stream client (%d jobs%s)", len(listener.jobs), ", wide" if listener.wide else "")
