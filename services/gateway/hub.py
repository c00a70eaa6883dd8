"""Fan-out of live job events to stream clients: one NATS feed, one frame per event, many queues.

Two kinds of listeners:
- job listeners follow a set of jobs and get every applied event of them (log lines included);
  a single-job listener's stream ends after the job's terminal event;
- wide listeners (dashboards, the firehose) get the events of every job matching a filter, without
  log lines, with progress coalesced to a few updates per second per job (latest value wins, and a
  pending progress update always goes out before the job's next event).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

END = b""  # queued after a single job's terminal frame, or when a client is dropped
WIDE_PROGRESS_INTERVAL_S = 0.25


@dataclass(frozen=True)
class WideFilter:
    types: frozenset[str] | None = None
    statuses: frozenset[str] | None = None

    def matches(self, job_type: str, status: str) -> bool:
        return (self.types is None or job_type in self.types) and (self.statuses is None or status in self.statuses)


class FrameQueue:
    """A bounded queue of frames that coalesces progress for a client falling behind: once it is
    half full, a new progress frame replaces a progress frame still waiting at its tail (latest
    value wins; every other event keeps its place)."""

    def __init__(self, limit: int):
        self._items: deque[tuple[bytes, bool]] = deque()
        self._limit = limit
        self._ready = asyncio.Event()

    def put_nowait(self, frame: bytes, progress: bool = False) -> None:
        if progress and len(self._items) >= self._limit // 2 and self._items and self._items[-1][1]:
            self._items[-1] = (frame, True)
            return
        if len(self._items) >= self._limit:
            raise asyncio.QueueFull
        self._items.append((frame, progress))
        self._ready.set()

    def get_nowait(self) -> bytes:
        frame, _ = self._items.popleft()
        if not self._items:
            self._ready.clear()
        return frame

    async def get(self) -> bytes:
        while not self._items:
            await self._ready.wait()
        return self.get_nowait()

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)


@dataclass(eq=False)
class Listener:
    """One client connection: a bounded queue of ready-made frames."""

    jobs: frozenset[str]
    queue: FrameQueue
    ends_with_job: bool = False  # a single-job stream ends after that job's terminal event
    wide: WideFilter | None = None  # also every other matching job (no logs, coalesced progress)
    dropped: bool = False


def frame_kind(frame: bytes) -> str:
    """The `event:` of a frame built by sse.frame (`id: …\nevent: <kind>\n…`)."""
    return frame.split(b"\n", 2)[1].removeprefix(b"event: ").decode()


async def live_frames(listener: Listener, heartbeat_s: float, heartbeat: bytes) -> AsyncIterator[bytes]:
    """The listener's frames as they come, a heartbeat after each quiet `heartbeat_s`, until END."""
    while True:
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the cancellation
            # that a client's disconnect sends, leaving the stream running.
            async with asyncio.timeout(heartbeat_s):
                chunk = await listener.queue.get()
        except TimeoutError:
            yield heartbeat
            continue
        if chunk is END:
            return
        yield chunk


class Hub:
    def __init__(self, buffer: int, on_sent: Callable[[], None] | None = None,
                 on_dropped: Callable[[], None] | None = None):
        self._buffer = buffer
        self._on_sent = on_sent or (lambda: None)
        self._on_dropped = on_dropped or (lambda: None)
        self._by_job: dict[str, set[Listener]] = defaultdict(set)
        self._wide: set[Listener] = set()
        self._pending_progress: dict[str, tuple[bytes, str, str]] = {}
        self._flush: asyncio.TimerHandle | None = None

    # --- listeners ------------------------------------------------------------------------
    def subscribe(self, job_id: str) -> Listener:
        return self.listen(frozenset({job_id}), ends_with_job=True)

    def listen(self, jobs: frozenset[str], *, ends_with_job: bool = False, wide: WideFilter | None = None) -> Listener:
        listener = Listener(jobs=jobs, queue=FrameQueue(self._buffer), ends_with_job=ends_with_job, wide=wide)
        for job_id in jobs:
            self._by_job[job_id].add(listener)
        if wide is not None:
            self._wide.add(listener)
        return listener

    def unsubscribe(self, listener: Listener) -> None:
        for job_id in listener.jobs:
            listeners = self._by_job.get(job_id)
            if listeners is not None:
                listeners.discard(listener)
                if not listeners:
                    del self._by_job[job_id]
        self._wide.discard(listener)

    def has_listeners(self, job_id: str) -> bool:
        return job_id in self._by_job or bool(self._wide)

    @property
    def listener_count(self) -> int:
        return len({id(x) for s in self._by_job.values() for x in s} | {id(x) for x in self._wide})

    # --- events ---------------------------------------------------------------------------
    def publish(self, job_id: str, frame: bytes, *, kind: str, job_type: str, status: str, last: bool) -> None:
        progress = kind == "progressed"
        for listener in tuple(self._by_job.get(job_id, ())):
            self._offer(listener, frame, progress)
            if last and listener.ends_with_job:
                self._offer(listener, END)
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
                self._offer(listener, frame)

    def _offer(self, listener: Listener, frame: bytes, progress: bool = False) -> None:
        if listener.dropped:
            return
        try:
            listener.queue.put_nowait(frame, progress)
            self._on_sent()
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
