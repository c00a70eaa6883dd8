"""Fan-out of live job events to SSE clients: one NATS feed, one frame per event, many queues."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

log = logging.getLogger(__name__)

END = b""  # queued after a terminal event's frame, or when a client is dropped


class Listener:
    """One client's view of one job: a bounded queue of ready-made frames."""

    __slots__ = ("job_id", "queue", "dropped")

    def __init__(self, job_id: str, limit: int):
        self.job_id = job_id
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(limit)
        self.dropped = False


class Hub:
    def __init__(self, buffer: int):
        self._buffer = buffer
        self._by_job: dict[str, set[Listener]] = defaultdict(set)

    def has_listeners(self, job_id: str) -> bool:
        return job_id in self._by_job

    def subscribe(self, job_id: str) -> Listener:
        listener = Listener(job_id, self._buffer)
        self._by_job[job_id].add(listener)
        return listener

    def unsubscribe(self, listener: Listener) -> None:
        listeners = self._by_job.get(listener.job_id)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self._by_job[listener.job_id]

    def publish(self, job_id: str, frame: bytes, *, last: bool) -> None:
        for listener in tuple(self._by_job.get(job_id, ())):
            self._offer(listener, frame)
            if last:
                self._offer(listener, END)

    def _offer(self, listener: Listener, frame: bytes) -> None:
        if listener.dropped:
            return
        try:
            listener.queue.put_nowait(frame)
        except asyncio.QueueFull:
            # A client that does not read is cut off (it may reconnect and resume) rather than
            # holding memory or slowing everyone else.
            listener.dropped = True
            self.unsubscribe(listener)
            while not listener.queue.empty():
                listener.queue.get_nowait()
            listener.queue.put_nowait(END)
            log.info("dropped a slow SSE client of job %s", listener.job_id)

    @property
    def listener_count(self) -> int:
        return sum(len(s) for s in self._by_job.values())
