"""What a handler sees: `ctx.step()`, `ctx.progress()`, `ctx.log()` and its params.

All three are plain, non-blocking methods, callable from async handlers and from plain
functions running in a worker thread alike. Events leave through one ordered outbox per attempt;
progress is coalesced to at most `progress_rate` events per second, latest value wins, and is
flushed before every step change and before the end so the final value is never dropped.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Any

from nats.js import JetStreamContext

from jobline.contract.events import (
    JobEvent,
    LogLineWritten,
    ProgressReported,
    StepFinished,
    StepStarted,
    encoder,
)
from jobline.contract.names import Names
from jobline.contract.publishing import subject_of
from jobline.runtime.publishing import publish_reliably

LEVELS = ("debug", "info", "warning", "error")


class Outbox:
    """Publishes one attempt's events in the order they were put, each acked by the stream."""

    def __init__(self, js: JetStreamContext, names: Names, job_id: str, attempt: int):
        self._js = js
        self._names = names
        self._prefix = f"{job_id}:{attempt}:"
        self._queue: deque[JobEvent] = deque()
        self._count = 0
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task = asyncio.create_task(self._pump(), name=f"outbox-{job_id}")

    def put(self, event: JobEvent) -> None:
        self._queue.append(event)
        self._wakeup.set()

    async def _pump(self) -> None:
        while True:
            while self._queue:
                event = self._queue[0]
                self._count += 1
                await publish_reliably(
                    self._js, subject_of(self._names, event), encoder.encode(event), msg_id=f"{self._prefix}{self._count}"
                )
                self._queue.popleft()
            if self._closing:
                return
            self._wakeup.clear()
            await self._wakeup.wait()

    async def close(self) -> None:
        """Wait until everything put so far is stored."""
        self._closing = True
        self._wakeup.set()
        await self._task

    def abort(self) -> None:
        self._task.cancel()


class JobContext:
    def __init__(
        self,
        *,
        job_id: str,
        job_type: str,
        attempt: int,
        params: Any,
        outbox: Outbox,
        progress_rate: float,
        loop: asyncio.AbstractEventLoop,
    ):
        self.job_id = job_id
        self.job_type = job_type
        self.attempt = attempt
        self.params = params
        self._outbox = outbox
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._min_interval = 1.0 / progress_rate if progress_rate > 0 else 0.0
        self._started = time.monotonic()
        self._step: tuple[str, float] | None = None
        self._pending_progress: tuple[float | None, float | None, float | None, str | None, float] | None = None
        self._last_progress_at = float("-inf")
        self._timer: asyncio.TimerHandle | None = None

    # --- the handler's API ------------------------------------------------------------------
    def step(self, name: str) -> None:
        """Finish the current step (if any) and start the next one."""
        self._on_loop(self._step_now, str(name))

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """`done` of `total`; without `total`, `done` is a fraction from 0 to 1."""
        self._on_loop(self._progress_now, float(done), None if total is None else float(total), message, time.monotonic())

    def log(self, message: str, level: str = "info") -> None:
        level = level.lower()
        self._on_loop(self._log_now, str(message), level if level in LEVELS else "info")

    # --- used by the worker -----------------------------------------------------------------
    def finish(self, outcome: str) -> None:
        """Close the open step and flush the latest progress (on the loop)."""
        self._flush_progress()
        if self._step is not None:
            self._finish_step(outcome)

    # --- internals (always on the event loop) -------------------------------------------------
    def _on_loop(self, fn: Any, *args: Any) -> None:
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _now(self) -> float:
        return time.time()

    def _step_now(self, name: str) -> None:
        self._flush_progress()
        if self._step is not None:
            self._finish_step("done")
        self._step = (name, time.monotonic())
        self._outbox.put(StepStarted(ts=self._now(), job_id=self.job_id, attempt=self.attempt, name=name))

    def _finish_step(self, outcome: str) -> None:
        assert self._step is not None
        name, began = self._step
        self._step = None
        self._outbox.put(
            StepFinished(
                ts=self._now(), job_id=self.job_id, attempt=self.attempt, name=name,
                duration_s=round(time.monotonic() - began, 6), outcome=outcome,
            )
        )

    def _progress_now(self, done: float, total: float | None, message: str | None, at: float) -> None:
        if total is not None and total > 0:
            fraction: float | None = min(max(done / total, 0.0), 1.0)
            current, tot = done, total
        elif total is None:
            fraction, current, tot = min(max(done, 0.0), 1.0), None, None
        else:
            fraction, current, tot = None, done, total
        self._pending_progress = (fraction, current, tot, message, at)
        if self._timer is not None:
            return  # a flush is already scheduled; it will carry this latest value
        wait = self._last_progress_at + self._min_interval - time.monotonic()
        if wait <= 0:
            self._flush_progress()
        else:
            self._timer = self._loop.call_later(wait, self._flush_progress)

    def _flush_progress(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending = self._pending_progress
        if pending is None:
            return
        self._pending_progress = None
        fraction, current, total, message, at = pending
        elapsed = at - self._started
        eta = round(elapsed * (1 - fraction) / fraction, 3) if fraction else None
        self._last_progress_at = time.monotonic()
        self._outbox.put(
            ProgressReported(
                ts=self._now(), job_id=self.job_id, attempt=self.attempt, fraction=fraction,
                current=current, total=total, message=message, eta_s=eta,
            )
        )

    def _log_now(self, message: str, level: str) -> None:
        self._outbox.put(LogLineWritten(ts=self._now(), job_id=self.job_id, attempt=self.attempt, level=level, message=message))
