"""What the gateway keeps in memory: the live jobs, not all history.

It holds every job that has not ended, plus the `recent` newest jobs (ended or not) for the
dashboard; a job that has ended and falls out of the recent window is dropped (the history service
has it). So the gateway's memory and start-up depend on what is live, not on how much history
there is. At start the window is loaded from the history service (`load`), and the job feed
folds the stream in from the position it reflects; every later event comes from the feed.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import deque
from collections.abc import Iterable, Iterator

from jobline.contract.events import JobDeleted, JobEvent
from jobline.contract.job_state import JobState, apply, start_state
from jobline.runtime.watermark import Watermark


class ReadModel:
    def __init__(self, recent: int = 1000):
        self.recent = max(recent, 1)
        self._jobs: dict[str, JobState] = {}
        self._window: deque[JobState] = deque()  # the `recent` newest jobs, oldest first
        self._older: dict[str, JobState] = {}  # not ended, older than the window; in creation order
        self._watermark = Watermark()
        self.evicted = 0  # ended jobs dropped from memory since start

    def __len__(self) -> int:
        return len(self._jobs)

    @property
    def last_seq(self) -> int:
        """Every event of the job stream up to here is folded in."""
        return self._watermark.seq

    def get(self, job_id: str) -> JobState | None:
        return self._jobs.get(job_id)

    # --- filling ---------------------------------------------------------------------------
    def load(self, states: Iterable[JobState], applied_seq: int) -> None:
        """Start from the history service's live window (it reflects the stream up to
        `applied_seq`); the feed then folds in everything after it."""
        for state in sorted(states, key=lambda s: s.created_seq):
            if state.id not in self._jobs:
                self._admit(state)
        self._watermark.advance(applied_seq)

    def apply(self, event: JobEvent, seq: int) -> JobState | None:
        """Fold the event in; the job's state when it changed, None when nothing changed (unknown
        job, stale attempt, after the end, already folded in) — such events are not worth sending
        to clients either."""
        state: JobState | None = None
        known = self._jobs.get(event.job_id)
        if isinstance(event, JobDeleted):
            if known is not None and known.is_terminal:
                self._forget(known)  # deleted from history: 404 from now on
        elif known is None:
            state = start_state(event, seq)
            if state is not None:
                self._admit(state)
        elif apply(known, event, seq):
            state = known
            if state.is_terminal and state.id in self._older:
                self._drop(state)  # it ended outside the recent window
        self._watermark.advance(seq)
        return state

    def advance(self, seq: int) -> None:
        self._watermark.advance(seq)

    async def wait_for(self, seq: int, timeout: float) -> bool:
        """Wait until every event up to `seq` is applied; False on timeout."""
        return await self._watermark.wait_for(seq, timeout)

    def _admit(self, state: JobState) -> None:
        self._jobs[state.id] = state
        self._window.append(state)
        while len(self._window) > self.recent:
            oldest = self._window.popleft()
            if oldest.is_terminal:
                self._drop(oldest)
            else:
                self._older[oldest.id] = oldest  # leaves the window in creation order

    def _forget(self, state: JobState) -> None:
        self._drop(state)
        with contextlib.suppress(ValueError):  # (no longer in the window)
            self._window.remove(state)

    def _drop(self, state: JobState) -> None:
        self._jobs.pop(state.id, None)
        self._older.pop(state.id, None)
        self.evicted += 1

    # --- reading ---------------------------------------------------------------------------
    def newest_first(self, *, before_seq: int | None = None, status: str | None = None,
                     job_type: str | None = None, created_after: float | None = None,
                     created_before: float | None = None) -> Iterator[JobState]:
        """The jobs held, by creation, newest first; `before_seq` is a stable cursor (a created_seq)."""
        for state in itertools.chain(reversed(self._window), reversed(self._older.values())):
            if before_seq is not None and state.created_seq >= before_seq:
                continue
            if created_before is not None and state.created_at >= created_before:
                continue
            if created_after is not None and state.created_at < created_after:
                continue
            if status is not None and state.status != status:
                continue
            if job_type is not None and state.type != job_type:
                continue
            yield state

