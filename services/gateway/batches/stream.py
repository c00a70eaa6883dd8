"""`GET /api/batches/{id}/events`: one live stream for a whole batch.

A `snapshot` (the batch's state, as `GET /api/batches/{id}` gives it), then a `job_ended` per job
that ends (its status and error, with the batch's counts so far; `id:` = the stream sequence of its
terminal event), a coalesced `progress` at most twice a second while jobs run, and a final
`batch_completed` with the whole state, after which the stream ends. A reconnect (Last-Event-ID)
gets a fresh snapshot: its counts are complete up to that moment and the `job_ended` events after
it add up to the rest, with no job counted twice. A client reconnecting after `batch_completed`
gets the completed snapshot and the end at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

import msgspec

from jobline.contract.batches import BatchRecord, BatchState
from jobline.contract.events import encoder
from jobline.contract.vocabulary import TERMINAL_KINDS, TERMINAL_STATUSES

from ..live import sse
from ..live.hub import END
from ..live.streams import Live
from .service import Batches, summarise

PROGRESS_EVERY_S = 0.5
SUMMARISED = frozenset({*TERMINAL_KINDS, "progressed", "started", "retrying", "created"})  # what moves a count


class _Event(msgspec.Struct):
    job_id: str = ""
    fraction: float | None = None
    error: str | None = None


_event_decoder = msgspec.json.Decoder(_Event)


def _aggregate(state: BatchState, ended: int, running: dict[str, float | None], counts: dict[str, int]) -> bytes:
    done = ended + sum(f or 0.0 for f in running.values())
    fraction = done / state.total if state.total else 1.0
    return encoder.encode({"id": state.id, "total": state.total, "ended": ended, "progress": round(fraction, 4),
                           "counts": {k: v for k, v in counts.items() if v}})


def _move(counts: dict[str, int], status_of: dict[str, str], job_id: str, status: str) -> None:
    counts[status_of[job_id]] = counts.get(status_of[job_id], 0) - 1
    counts[status] = counts.get(status, 0) + 1
    status_of[job_id] = status


async def batch_events(batches: Batches, live: Live, record: BatchRecord) -> AsyncGenerator[bytes, None]:
    listener = live.hub.listen_to_many(frozenset(record.jobs), SUMMARISED)
    seq = live.read_model.last_seq  # (no await since listening: nothing falls between the two)
    try:
        state = summarise(record, await batches.job_states(record))
        status_of = {j.id: j.status for j in state.jobs}
        ended = {j.id for j in state.jobs if j.status in TERMINAL_STATUSES}
        counts = dict(state.counts)
        running = {j.id: j.progress for j in state.jobs if j.status not in TERMINAL_STATUSES}
        yield sse.frame("snapshot", encoder.encode(state), seq, live.retry_ms)
        last_seq, dirty = seq, False
        loop = asyncio.get_running_loop()
        next_progress = loop.time()
        while len(ended) < state.total:
            frames: list[bytes] = []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PROGRESS_EVERY_S):
                    frames = await listener.queue.take()
            for frame in frames:
                if frame is sse.HEARTBEAT:
                    yield sse.HEARTBEAT
                    continue
                if frame is END or listener.dropped:
                    return  # too slow for the hub: the client reconnects and gets a fresh snapshot
                kind, frame_seq, data = sse.parse_frame(frame)
                event = _event_decoder.decode(data) if data else _Event()
                if frame_seq is not None:
                    last_seq = max(last_seq, frame_seq)
                job_id = event.job_id
                if job_id not in status_of or job_id in ended:
                    continue  # (already counted by the snapshot)
                if kind in TERMINAL_KINDS:
                    ended.add(job_id)
                    running.pop(job_id, None)
                    _move(counts, status_of, job_id, kind)
                    body = encoder.encode({"job_id": job_id, "status": kind, "error": event.error,
                                           "ended": len(ended), "total": state.total,
                                           "counts": {k: v for k, v in counts.items() if v}})
                    yield sse.frame("job_ended", body, frame_seq)
                elif kind == "progressed":
                    running[job_id] = event.fraction
                    dirty = True
                elif kind in ("started", "retrying", "created"):
                    _move(counts, status_of, job_id, "running" if kind == "started" else
                          "retrying" if kind == "retrying" else "pending")
                    dirty = True
            if dirty and loop.time() >= next_progress:
                yield sse.frame("progress", _aggregate(state, len(ended), running, counts), last_seq)
                dirty, next_progress = False, loop.time() + PROGRESS_EVERY_S
        final = summarise(record, await batches.job_states(record))
        yield sse.frame("batch_completed", encoder.encode(final), max(last_seq, live.read_model.last_seq))
    finally:
        live.hub.unsubscribe(listener)
