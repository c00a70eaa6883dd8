"""What a handler sees: `ctx.step()`, `ctx.progress()`, `ctx.log()` and its params.

All three are plain, non-blocking methods, callable from async handlers and from plain
functions running in a worker thread alike. Events leave through one ordered outbox per attempt;
progress is coalesced to at most `progress_rate` events per second, latest value wins, and is
flushed before every step change and before the end so the final value is never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import os
import re
import shutil
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import APIError

from jobline.contract.events import (
    ArtifactStored,
    JobEvent,
    LogLineWritten,
    ProgressReported,
    StepFinished,
    StepStarted,
    encoder,
)
from jobline.contract.flows import ChildOutcome, SpawnedChild
from jobline.contract.names import InvalidName, Names, checked_signal_name
from jobline.contract.publishing import WRONG_LAST_SEQUENCE_ERR, fenced, subject_of
from jobline.runtime.publishing import publish_reliably
from jobline.runtime.signal_waits import first_signal

from .fence import Fenced
from .objects import Objects
from .registry import JobCancelledError
from .signals import AwaitSignal, SignalTimeout

LEVELS = ("debug", "info", "warning", "error")
ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ProcessFailed(Exception):
    def __init__(self, args: list[str], returncode: int, stderr: str):
        super().__init__(f"{Path(args[0]).name} exited with {returncode}: {stderr.strip()[-500:]}")
        self.returncode = returncode
        self.stderr = stderr


class Outbox:
    """Publishes one attempt's events in the order they were put, each acked by the stream."""

    def __init__(self, js: JetStreamContext, names: Names, job_id: str, attempt: int, started_seq: int,
                 guard: Callable[[], Any] | None = None, on_fenced: Callable[[], None] | None = None):
        self._js = js
        self._guard = guard
        self._names = names
        self._job_id = job_id
        # Every event is a conditional write: stored only while the run chain still ends with this
        # attempt's `started`. A publish still being retried when the attempt was superseded (a
        # failover longer than the ack wait) is refused by the broker instead of landing after the
        # new attempt's events.
        self._fence = fenced(names, job_id, started_seq)
        self._on_fenced = on_fenced
        self._prefix = f"{job_id}:{attempt}:"
        self._queue: deque[JobEvent] = deque()
        self._count = 0
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None  # started by the first event: many jobs put none
        self._aborted = False

    def put(self, event: JobEvent) -> None:
        if self._aborted or (self._closing and self._task is None):
            return  # closed with nothing sent: a late call (a handler thread outliving its job) is dropped
        self._queue.append(event)
        self._wakeup.set()
        if self._task is None:
            self._task = asyncio.create_task(self._pump(), name=f"outbox-{self._job_id}")

    async def _pump(self) -> None:
        while True:
            while self._queue:
                event = self._queue[0]
                if self._guard is not None:
                    await self._guard()  # a superseded attempt publishes nothing more
                self._count += 1
                try:
                    await publish_reliably(self._js, subject_of(self._names, event), encoder.encode(event),
                                           msg_id=f"{self._prefix}{self._count}", headers=self._fence)
                except APIError as exc:
                    if exc.err_code != WRONG_LAST_SEQUENCE_ERR:
                        raise
                    self._queue.clear()
                    if self._on_fenced is not None:
                        self._on_fenced()
                    raise Fenced(f"job {self._job_id}: the run chain moved on; nothing more is published") from exc
                self._queue.popleft()
            if self._closing:
                return
            self._wakeup.clear()
            await self._wakeup.wait()

    async def close(self) -> None:
        """Wait until everything put so far is stored."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    def abort(self) -> None:
        self._aborted = True
        if self._task is not None:
            self._task.cancel()


class WaitForChildren:
    """What a handler returns to continue once the children it spawned have ended."""


WAIT_FOR_CHILDREN = WaitForChildren()


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
        objects: Objects | None = None,
        work_root: Path | None = None,
        children: dict[str, ChildOutcome] | None = None,
        js: JetStreamContext | None = None,
        names: Names | None = None,
    ):
        self.job_id = job_id
        self._js, self._names = js, names  # (reading the job's signals)
        # A parent in a flow: each child's outcome by its name (status, result, error); under the
        # `ignore` policy only the children that completed.
        self.children: dict[str, ChildOutcome] = children or {}
        self.spawned: list[SpawnedChild] = []  # children added by this attempt (ctx.spawn)
        self.on_step: Callable[[str], None] | None = None  # (a span per step when tracing: processor/spans.py)
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
        # Set on the loop, read by handler threads too: a bool is enough (no threading.Event per job).
        self._stopped = False
        self._stopped_event: asyncio.Event | None = None
        self._objects = objects
        self._work_root = work_root
        self._workdir: Path | None = None

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

    @property
    def cancelled(self) -> bool:
        """True once the job is cancelled or timed out: plain (threaded) handlers should stop."""
        return self._stopped

    async def wait_cancelled(self) -> None:
        """Returns once the job is cancelled or timed out (for handlers that wait on something
        else and want to stop cleanly; plain `await`s are interrupted anyway)."""
        if self._stopped_event is None:
            self._stopped_event = asyncio.Event()
            if self._stopped:
                self._stopped_event.set()
        await self._stopped_event.wait()

    def check_cancelled(self) -> None:
        if self._stopped:
            raise JobCancelledError(f"job {self.job_id} was stopped")

    @property
    def workdir(self) -> Path:
        """A scratch folder for this attempt, removed when it ends (partial files included)."""
        if self._workdir is None:
            root = self._work_root or Path(os.environ.get("TMPDIR", "/tmp"))
            self._workdir = root / f"{self.job_id}-{self.attempt}"
            self._workdir.mkdir(parents=True, exist_ok=True)
        return self._workdir

    async def run_process(self, args: list[str], *, on_line: Callable[[str], None] | None = None,
                          on_error_line: Callable[[str], None] | None = None, cwd: Path | None = None) -> str:
        """Run an external tool where it can be killed: cancelling the job (or its timeout)
        kills the whole process group. `on_line`/`on_error_line` get each stdout/stderr line;
        returns stdout's tail and raises ProcessFailed on a non-zero exit."""
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            cwd=cwd or self.workdir, start_new_session=True,
        )
        out_tail: deque[str] = deque(maxlen=50)
        err_tail: deque[str] = deque(maxlen=50)

        async def pump(stream: asyncio.StreamReader, tail: deque[str], callback: Callable[[str], None] | None) -> None:
            async for raw in stream:
                line = raw.decode(errors="replace").rstrip("\n")
                tail.append(line)
                if callback is not None:
                    callback(line)

        assert proc.stdout is not None and proc.stderr is not None
        try:
            await asyncio.gather(pump(proc.stdout, out_tail, on_line), pump(proc.stderr, err_tail, on_error_line))
            returncode = await proc.wait()
        except BaseException:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
            raise
        if returncode != 0:
            raise ProcessFailed(args, returncode, "\n".join(err_tail))
        return "\n".join(out_tail)

    async def fetch_upload(self, upload_id: str, filename: str = "input") -> Path:
        """Download an upload (from POST /api/uploads) into the workdir."""
        if self._objects is None:
            raise RuntimeError("this processor has no object store")
        return await self._objects.fetch_upload(upload_id, self.workdir / filename)

    async def artifact(self, name: str, path: Path, content_type: str | None = None) -> None:
        """Store a result file; served at GET /api/jobs/<id>/artifacts/<name>."""
        if self._objects is None:
            raise RuntimeError("this processor has no object store")
        if not ARTIFACT_NAME.fullmatch(name):
            raise ValueError(f"invalid artifact name {name!r}")
        size, sha256 = await self._objects.store_artifact(f"{self.job_id}/{name}", Path(path))
        kind = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        self._on_loop(self._outbox.put, ArtifactStored(ts=self._now(), job_id=self.job_id, attempt=self.attempt,
                                                        name=name, size=size, content_type=kind, sha256=sha256))

    def spawn(self, job_type: str, params: dict[str, Any] | None = None, *, name: str | None = None,
              weight: float = 1.0, **options: Any) -> str:
        """Add a child job (what POST /api/jobs takes: `options` are its other fields); returns its
        id. The children are created when the handler returns `ctx.wait_for_children()`."""
        number = len(self.children) + len(self.spawned)
        child_id = f"{self.job_id}-c{number}"
        name = name if name is not None else str(number)
        if len(child_id) > 64:
            raise ValueError(f"job {self.job_id} is nested too deep to add children (ids are at most 64 characters)")
        if name in self.children or any(s.name == name for s in self.spawned):
            raise ValueError(f"a child named {name!r} exists already")
        self.spawned.append(SpawnedChild(id=child_id, name=name, weight=weight,
                                         job={"type": job_type, "params": params or {}, **options}))
        return child_id

    def wait_for_children(self) -> WaitForChildren:
        """Return this from the handler to end this attempt without ending the job: its worker slot
        is freed, and the handler runs again (`ctx.children` filled) once the children have ended."""
        if not self.spawned:
            raise ValueError("wait_for_children() needs children: call ctx.spawn(...) first")
        return WAIT_FOR_CHILDREN

    def wait_for_signal(self, name: str, timeout_s: float | None = None) -> Any:
        """The payload of the job's signal `name` (`POST /api/jobs/<id>/signals/<name>`, once per
        name). If it has not come, the attempt ends here and frees its slot (the job is `waiting`);
        when it comes the handler runs again from the start and this call returns it. After
        `timeout_s` (whole seconds, from the first wait) without it, raises SignalTimeout.
        `await ctx.wait_for_signal(...)` in an async handler; a plain function (in its thread) calls
        it without `await`."""
        waiting = self._wait_for_signal(name, timeout_s)
        if threading.get_ident() == self._loop_thread:
            return waiting
        return asyncio.run_coroutine_threadsafe(waiting, self._loop).result()

    async def _wait_for_signal(self, name: str, timeout_s: float | None) -> Any:
        try:
            checked_signal_name(name)
        except InvalidName as exc:
            raise ValueError(str(exc)) from None
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError("timeout_s must be more than 0 (or None: wait until the signal or a cancel)")
        if self._js is None or self._names is None:
            raise RuntimeError("this context cannot read signals")
        received = await first_signal(self._js, self._names, self.job_id, name)
        if received is None:
            raise AwaitSignal(name, timeout_s)
        if received.timed_out:
            raise SignalTimeout(name, received.ts)
        return received.payload

    # --- used by the worker -----------------------------------------------------------------
    def stop(self) -> None:
        self._stopped = True
        if self._stopped_event is not None:
            self._stopped_event.set()

    def cleanup(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)

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
        if self.on_step is not None:
            self.on_step(name)
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
