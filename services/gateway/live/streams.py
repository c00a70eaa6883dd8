"""A job's live event stream, and what every live stream reads (`Live`).

Without a cursor: a `snapshot` (the state and its recent log lines), then every later event. With a
cursor (Last-Event-ID or ?after=): exactly the events after it (from the stream, or from the history
service once the stream has dropped them), then live — no gap, no duplicate. With a cursor that is
garbage, beyond the end, or that neither can serve now: a `reset` event carrying a fresh snapshot
(still HTTP 200: a 4xx would make EventSource give up for good). The stream ends after the
terminal event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from nats.js import JetStreamContext

from jobline.contract.events import TERMINAL_KINDS, encoder
from jobline.contract.job_state import JobState
from jobline.contract.names import Names
from jobline.jobs.history_client import HistoryRefused, HistoryUnavailable
from jobline.jobs.reader import JobReader
from jobline.jobs.timeline import StoredEvent

from . import sse
from .event_stream import StreamWatchdog
from .hub import Hub, Listener
from .log_client import LogClient
from .read_model import ReadModel


@dataclass(frozen=True)
class Live:
    """What the live streams read: this gateway's memory of the jobs and its fan-out, the stored
    events (stream, history service), the logsink; and how they frame it. One object, so that a
    route that reads jobs has one dependency: Litestar resolves two or more independent ones
    concurrently, in an anyio task group per request (~10 % of the gateway's CPU per job)."""

    read_model: ReadModel
    hub: Hub
    reader: JobReader
    logs: LogClient
    js: JetStreamContext
    names: Names
    watchdog: StreamWatchdog  # cuts off a stream client that takes nothing for too long
    retry_ms: int = 2000  # suggested to EventSource clients
    snapshot_log_lines: int = 500  # recent log lines sent with a snapshot
    max_wait_s: float = 60.0  # the longest long-poll (GET /api/jobs/{id}?wait=)


def finished_before(state: JobState, cursor: str | None, last_seq: int) -> bool:
    """A client reconnecting after it saw the job's end (its terminal event, the run chain's last:
    a webhook record may follow it): answer 204 so EventSource stops. (A cursor beyond the end of
    the stream is not one we gave out: that gets a reset instead.)"""
    seen = sse.parse_cursor(cursor)
    return state.is_terminal and seen is not None and state.run_seq <= seen <= max(last_seq, state.seq)


def snapshot_data(state_json: bytes, log_lines: list[bytes]) -> bytes:
    """`{"job": <state>, "logs": [<logged events>]}` built from already-encoded parts."""
    return b'{"job":' + state_json + b',"logs":[' + b",".join(log_lines) + b"]}"


async def wait_for_change(live: Live, state: JobState, timeout: float) -> None:
    """Hold until an event changes the job (or the timeout passes): a long-poll for pollers."""
    listener = live.hub.subscribe(state.id)
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while await listener.queue.get() is sse.HEARTBEAT:
                    pass
    finally:
        live.hub.unsubscribe(listener)


async def job_events(live: Live, state: JobState, cursor: str | None = None) -> AsyncGenerator[bytes | Listener, None]:
    """The job's live event stream (the module's docstring says what it sends).

    Subscribing to the live feed and fixing the position `seq` happen with no await between them,
    so nothing can fall between what is read back and what arrives live."""
    listener = None if state.is_terminal else live.hub.subscribe(state.id)
    seq, state_json = live.read_model.last_seq, encoder.encode(state)
    try:
        after = sse.parse_cursor(cursor)
        replay: list[StoredEvent] | None = None
        upto = max(seq, state.seq)  # (a state from the history service may be a moment ahead of the feed)
        if after is not None and after <= upto:
            try:
                replay = await live.reader.events(state, after_seq=after, upto_seq=upto)
            except (HistoryUnavailable, HistoryRefused):
                replay = None  # neither the stream nor the history service can serve it now: reset
        if replay is None:
            lines = await live.reader.recent_log_lines(state, upto_seq=upto, keep=live.snapshot_log_lines)
            kind = "snapshot" if cursor is None else "reset"
            yield sse.frame(kind, snapshot_data(state_json, lines), upto, live.retry_ms)
        else:
            yield f": resumed after {after}\nretry: {live.retry_ms}\n\n".encode()
            for stored in replay:
                kind = sse.kind_of(stored.data)
                yield sse.frame(kind, stored.data, stored.seq)
                if kind in TERMINAL_KINDS:
                    return
        if listener is None:
            return
        yield listener  # then live
    finally:
        if listener is not None:
            live.hub.unsubscribe(listener)
