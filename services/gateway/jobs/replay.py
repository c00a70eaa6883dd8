"""Past timelines: the whole timeline as JSON, the job as it was at a moment, and a replay at speed."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator
from datetime import datetime

from jobline.contract.events import TERMINAL_KINDS, JobEvent, encoder, kind_of
from jobline.jobs.timeline import StoredEvent, fold

from ..live import sse

MAX_GAP_S = 10.0  # a replay never waits longer than this between two events, whatever the speed


def timeline_json(job_id: str, events: list[StoredEvent]) -> bytes:
    """`{"job_id", "events": [{"seq", "subject", "stored_at", "event"}]}` from the stored JSON."""
    parts = [
        b'{"seq":%d,"subject":%s,"stored_at":%s,"event":%s}' % (
            e.seq, encoder.encode(e.subject), encoder.encode(round(e.ts, 6)), e.data)
        for e in events
    ]
    return b'{"job_id":' + encoder.encode(job_id) + b',"events":[' + b",".join(parts) + b"]}"


_UNIX_SECONDS = re.compile(r"[0-9]{1,18}(\.[0-9]{1,9})?")


def parse_at(raw: str) -> tuple[int | None, float | None]:
    """`at` is a stream sequence (`123` or `seq:123`) or a moment (ISO 8601, or unix seconds with a
    fraction or of 10 digits and more). Returns (seq, ts); raises ValueError."""
    raw = raw.strip()
    if raw.startswith("seq:"):
        return int(raw[4:]), None
    if raw.isdigit() and len(raw) < 10:
        return int(raw), None
    if _UNIX_SECONDS.fullmatch(raw):  # (as the document says: no exponent, no sign)
        return None, float(raw)
    moment = datetime.fromisoformat(raw.upper().replace("Z", "+00:00"))  # RFC 3339 allows t and z
    return None, moment.timestamp()


async def replay(events: list[tuple[StoredEvent, JobEvent]], *, speed: float, offset_s: float,
                 retry_ms: int) -> AsyncGenerator[bytes, None]:
    """A `snapshot` of the job as it was `offset_s` after its creation, then each later event at its
    recorded cadence divided by `speed`, then `replay_end`. Event ids are the stream sequences."""
    if not events:
        return
    start_ts = events[0][1].ts + offset_s
    before = [(s, e) for s, e in events if e.ts <= start_ts]
    after = [(s, e) for s, e in events if e.ts > start_ts]
    state = fold(before)
    seq = before[-1][0].seq if before else events[0][0].seq - 1
    snapshot = b'{"job":' + (encoder.encode(state) if state else b"null") + b',"logs":[' + b",".join(
        s.data for s, e in before if kind_of(e) == "logged") + b'],"replay":true}'
    yield sse.frame("snapshot", snapshot, seq, retry_ms)
    clock = start_ts
    batch: list[bytes] = []
    owed = 0.0  # waiting is batched: sleeping a few microseconds per event would cap the rate
    for stored, event in after:
        owed += min(max(event.ts - clock, 0.0) / speed, MAX_GAP_S)
        clock = event.ts
        if owed >= 0.005 or len(batch) >= 500:
            if batch:
                yield b"".join(batch)
                batch = []
            if owed >= 0.005:
                await asyncio.sleep(owed)  # the recorded cadence, sped up: the point of a replay
                owed = 0.0
        kind = kind_of(event)
        batch.append(sse.frame(kind, stored.data, stored.seq))
        if kind in TERMINAL_KINDS:
            break
    batch.append(sse.frame("replay_end", b"{}"))
    yield b"".join(batch)
