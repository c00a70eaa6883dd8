"""All jobs' current state, rebuilt from the job stream at start and kept up to date by the feed."""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
from collections.abc import Iterator

from jobline.contract.events import JobCreated, JobEvent

from .job_state import JobState, apply, new_state


class ReadModel:
    def __init__(self) -> None:
        self._jobs: dict[str, JobState] = {}
        self._created_seqs: list[int] = []  # ascending, one per job, parallel to _created_ids
        self._created_ids: list[str] = []
        self.last_seq = 0
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._tiebreak = itertools.count()

    def __len__(self) -> int:
        return len(self._jobs)

    def get(self, job_id: str) -> JobState | None:
        return self._jobs.get(job_id)

    def apply(self, event: JobEvent, seq: int) -> bool:
        """Fold the event in; False when it changed nothing (unknown job, stale attempt, after
        the end) — such events are not worth sending to clients either."""
        applied = False
        if isinstance(event, JobCreated):
            if event.job_id not in self._jobs:
                self._jobs[event.job_id] = new_state(event, seq)
                self._created_seqs.append(seq)
                self._created_ids.append(event.job_id)
                applied = True
        else:
            state = self._jobs.get(event.job_id)
            applied = state is not None and apply(state, event, seq)
        self.advance(seq)
        return applied

    def advance(self, seq: int) -> None:
        self.last_seq = max(self.last_seq, seq)
        while self._waiters and self._waiters[0][0] <= self.last_seq:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)

    async def wait_for(self, seq: int, timeout: float) -> bool:
        """Wait until every event up to `seq` is applied; False on timeout."""
        if self.last_seq >= seq:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (seq, next(self._tiebreak), future))
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            return False
        return True

    def newest_first(self, *, before_seq: int | None = None, status: str | None = None,
                     job_type: str | None = None, created_after: float | None = None,
                     created_before: float | None = None) -> Iterator[JobState]:
        """Jobs by creation, newest first; `before_seq` is a stable cursor (a created_seq)."""
        end = len(self._created_seqs) if before_seq is None else bisect.bisect_left(self._created_seqs, before_seq)
        for index in range(end - 1, -1, -1):
            state = self._jobs[self._created_ids[index]]
            if created_before is not None and state.created_at >= created_before:
                continue
            if created_after is not None and state.created_at < created_after:
                break  # creation order: everything further is older still
            if status is not None and state.status != status:
                continue
            if job_type is not None and state.type != job_type:
                continue
            yield state
