"""`GET /api/events`: one stream per browser tab — the firehose of every job (filtered, progress
coalesced) and, over the same connection, every event and log line of the jobs the tab watches.

Browsers allow six HTTP/1.1 connections per host across all tabs: one stream per job or per panel
starves the seventh; one multiplexed stream per tab does not.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from jobline.contract.events import encoder
from jobline.contract.job_state import JobState
from jobline.jobs.timeline import StoredEvent, read_events

from . import sse
from .hub import Listener, WideFilter
from .streams import Live

MAX_REPLAY_EVENTS = 20_000  # a client further behind than this gets a reset instead of a replay
WIDE_SNAPSHOT_JOBS = 100


def _snapshot(live: Live, jobs: frozenset[str], wide: WideFilter | None) -> tuple[list[JobState], int]:
    """States to start from (taken with no await, at the feed position returned)."""
    states: dict[str, JobState] = {}
    for job_id in jobs:
        state = live.read_model.get(job_id)
        if state is not None:
            states[job_id] = state
    if wide is not None:
        for state in live.read_model.newest_first():
            if len(states) >= WIDE_SNAPSHOT_JOBS + len(jobs):
                break
            if wide.matches(state.type, state.status):
                states.setdefault(state.id, state)
    return list(states.values()), live.read_model.last_seq


def _job_of(subject: str, names_prefix: str) -> str:
    """`[ns.]jobs.<id>.…` → `<id>`."""
    return subject[len(names_prefix):].split(".", 1)[0]


async def multiplexed(live: Live, jobs: frozenset[str], wide: WideFilter | None, logs: bool,
                      cursor: str | None) -> AsyncGenerator[bytes | Listener, None]:
    names = live.names
    prefix = names.all_job_events[:-1]  # "jobs." or "ns.jobs."
    listener = live.hub.listen(jobs, wide=wide, logs=logs)
    states, seq = _snapshot(live, jobs, wide)
    states_json = encoder.encode(states)
    followed = [s for s in states if s.id in jobs]
    try:
        after = sse.parse_cursor(cursor)
        replay: list[StoredEvent] | None = None
        if after is not None and after <= seq and seq - after <= MAX_REPLAY_EVENTS:
            first = (await live.js.stream_info(names.jobs_stream)).state.first_seq
            if after + 1 >= first:
                replay = await read_events(live.js, names, None, after_seq=after, upto_seq=seq, timeout=30)
        if replay is None:
            parts = []
            if logs:
                for state in followed:
                    lines = await live.reader.recent_log_lines(state, upto_seq=seq, keep=live.snapshot_log_lines)
                    parts.append(encoder.encode(state.id) + b":[" + b",".join(lines) + b"]")
            data = b'{"jobs":' + states_json + b',"logs":{' + b",".join(parts) + b"}}"
            yield sse.frame("snapshot" if cursor is None else "reset", data, seq, live.retry_ms)
        else:
            yield f": resumed after {after}\nretry: {live.retry_ms}\n\n".encode()
            for stored in replay:
                kind = sse.kind_of(stored.data)
                job_id = _job_of(stored.subject, prefix)
                if job_id in jobs:
                    send = logs or kind != "logged"
                else:
                    other = live.read_model.get(job_id)
                    send = wide is not None and kind != "logged" and other is not None \
                        and wide.matches(other.type, other.status)
                if send:
                    yield sse.frame(kind, stored.data, stored.seq)
        yield listener  # then live
    finally:
        live.hub.unsubscribe(listener)
