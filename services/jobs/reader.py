"""Reading jobs: a job's state and its stored events, wherever they are kept now.

A job is found in the live memory of the process that has one (the gateway's read model) when it
is live or recent, else the history service has it; its events are read from the job stream while
the stream holds them, else from the history service (which outlives the stream's retention).
"""

from __future__ import annotations

from typing import Protocol

from nats.js import JetStreamContext

from jobline.contract.job_state import JobState
from jobline.contract.names import Names, is_valid_job_id

from .errors import Malformed, NotFound
from .history_client import HistoryClient, HistoryRefused, HistoryUnavailable
from .timeline import StoredEvent, last_event_seq, read_events


class LiveJobs(Protocol):
    """What a process keeps of the jobs in memory (the gateway's read model)."""

    @property
    def last_seq(self) -> int: ...

    def get(self, job_id: str) -> JobState | None: ...

    async def wait_for(self, seq: int, timeout: float) -> bool: ...


class NoLiveJobs:
    """For a process without a read model (the conductor): every job is looked up."""

    last_seq = 0

    def get(self, job_id: str) -> JobState | None:
        return None

    async def wait_for(self, seq: int, timeout: float) -> bool:
        return False


def check_job_id(job_id: str) -> None:
    if not is_valid_job_id(job_id):
        raise Malformed(f"{job_id!r} is not a job id (letters, digits, '-' and '_', at most 64)", title="Invalid job id",
                        key="id", source="path", message="invalid job id")


class JobReader:
    def __init__(self, js: JetStreamContext, names: Names, history: HistoryClient, live: LiveJobs,
                 catch_up_timeout_s: float = 5.0):
        self.js = js
        self.names = names
        self.history = history
        self.live = live
        self.catch_up_timeout_s = catch_up_timeout_s

    async def find(self, job_id: str) -> JobState:
        """The job's state: from memory when it is live or recent, else from the history service
        (NotFound when there is no such job; HistoryUnavailable when only the history could tell).
        An id not in memory first waits (bounded) for memory to reach the stream's end, so a job
        created a moment ago (here or elsewhere) is found live — before a slower history lookup,
        during which a short job could end and leave memory."""
        check_job_id(job_id)
        state = self.live.get(job_id)
        if state is not None:
            return state
        if not isinstance(self.live, NoLiveJobs):
            await self.live.wait_for(await last_event_seq(self.js, self.names), self.catch_up_timeout_s)
            state = self.live.get(job_id)  # (also when it got there during the lookup of the end)
            if state is not None:
                return state
        state = await self.history.job(job_id, min_seq=self.live.last_seq)
        if state is None:
            raise NotFound(f"there is no job {job_id!r}", title="Job not found")
        return state

    async def lookup(self, job_id: str) -> JobState | None:
        """`find` for callers that are not requests: None when there is no such job; raises
        HistoryUnavailable when only the history service could tell."""
        try:
            return await self.find(job_id)
        except NotFound:
            return None

    async def events(self, state: JobState, *, after_seq: int = 0, upto_seq: int | None = None,
                     only_logs: bool = False, last: int | None = None) -> list[StoredEvent]:
        """The job's stored events with after_seq < seq <= upto_seq, in order (`last`: only the
        last ones): from the job stream while it still holds them, else from the history service
        (and what that has not applied yet is recent, so still in the stream)."""
        names = self.names
        first = (await self.js.stream_info(names.jobs_stream)).state.first_seq
        if state.created_seq >= first or after_seq + 1 >= first:
            return await read_events(self.js, names, state.id, after_seq=after_seq, upto_seq=upto_seq,
                                     only_logs=only_logs, limit=last, timeout=30)
        wanted = state.seq if upto_seq is None else min(upto_seq, state.seq)
        records, applied = await self.history.events(state.id, after_seq=after_seq, upto_seq=upto_seq,
                                                     only_logs=only_logs, last=last, min_seq=wanted)
        events = [StoredEvent(r.seq, r.subject, bytes(r.data), r.stored_at) for r in records]
        if applied < wanted:
            events += await read_events(self.js, names, state.id, after_seq=max(applied, after_seq), upto_seq=upto_seq,
                                        only_logs=only_logs, limit=last, timeout=30)
            if last is not None:
                events = events[-last:]
        return events

    async def recent_log_lines(self, state: JobState, *, upto_seq: int, keep: int) -> list[bytes]:
        """The last `keep` log lines of the job at or before `upto_seq`, as stored JSON (for a
        snapshot: one without its log lines beats none, so a failure gives none; /logs has them)."""
        if state.log_lines <= 0 or keep <= 0:
            return []
        try:
            events = await self.events(state, upto_seq=upto_seq, only_logs=True, last=keep)
        except (TimeoutError, HistoryUnavailable, HistoryRefused):
            return []
        return [e.data for e in events]
