"""Log streams: a job's lines (history, then live, no gap at the seam) and the services' own logs."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import msgspec
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy

from jobline.contract.events import LogLineWritten, LogQuery, ServiceLogged, encoder, log_entry_decoder
from jobline.contract.job_state import JobState
from jobline.jobs.errors import Unavailable
from jobline.jobs.timeline import read_events
from jobline.runtime.consuming import stream_position

from . import sse
from .hub import Listener
from .streams import Live

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
SERVICE_TAIL = 200


async def _stored_job_lines(live: Live, job_id: str, after_job_seq: int, upto_seq: int) -> list[tuple[int, bytes]]:
    """(job stream seq, logged-event JSON) for lines in (after_job_seq, upto_seq]: from the logsink's
    store first (it outlives the stream's retention), then the rest from the job stream."""
    lines: list[tuple[int, bytes]] = []
    covered = after_job_seq
    after = 0
    try:
        while True:
            page = await live.logs.page(LogQuery(job_id=job_id, after_seq=after, limit=2000))
            for row in page.rows:
                if row.job_seq is None or row.job_seq <= after_job_seq or row.job_seq > upto_seq:
                    continue
                event = LogLineWritten(ts=row.ts, job_id=job_id, attempt=row.attempt or 0, level=row.level,
                                       message=row.message)
                lines.append((row.job_seq, encoder.encode(event)))
                covered = max(covered, row.job_seq)
            if len(page.rows) < 2000:
                break
            after = page.last_seq
    except Unavailable:
        pass  # no logsink: the job stream has whatever its retention kept
    for stored in await read_events(live.js, live.names, job_id, after_seq=covered, upto_seq=upto_seq,
                                    only_logs=True, timeout=30):
        lines.append((stored.seq, stored.data))
    return lines


async def follow_job_logs(live: Live, state: JobState, cursor: str | None) -> AsyncGenerator[bytes | Listener, None]:
    """`event: logged` per line (id = its job stream sequence), history then live, ending with the
    job's terminal event — also for a job that had ended already, so a client knows it is over (and
    reconnecting after that event gets 204)."""
    listener = None if state.is_terminal else live.hub.subscribe(state.id, logs_only=True)
    seq = live.read_model.last_seq
    try:
        after = sse.parse_cursor(cursor) or 0
        first = True
        for job_seq, data in await _stored_job_lines(live, state.id, after, seq):
            yield sse.frame("logged", data, job_seq, live.retry_ms if first else None)
            first = False
        if first:
            yield f"retry: {live.retry_ms}\n\n".encode()
        if listener is None:
            end = await live.reader.events(state, after_seq=state.run_seq - 1, upto_seq=state.run_seq)
            for stored in end[-1:]:
                yield sse.frame(sse.kind_of(stored.data), stored.data, stored.seq)
            return
        yield listener  # then live: its lines and the job's end
    finally:
        if listener is not None:
            live.hub.unsubscribe(listener)


async def service_logs(live: Live, service: str | None, min_level: int,
                       cursor: str | None) -> AsyncGenerator[bytes | Listener, None]:
    """The services' own log records: recent history from the logsink, then live from the log
    stream from the next sequence (one sequence space: no gap, no duplicate). id = log stream seq.

    Live records go through a hub listener like every other stream (its heartbeats, its bounded
    queue, the one writer per connection), so a client that goes away frees its slot at once."""
    names = live.names
    after = sse.parse_cursor(cursor)
    history = []
    if after is None:
        try:
            page = await live.logs.page(LogQuery(service=service, limit=SERVICE_TAIL, tail=True))
            history = [r for r in page.rows if r.service is not None]
            after = page.rows[-1].seq if page.rows else None
        except Unavailable:
            after = None
    if after is None:
        # No stored history (no logsink, or it has not caught up): the stream's recent records.
        last = (await live.js.stream_info(names.logs_stream)).state.last_seq
        after = max(last - SERVICE_TAIL * 5, 0)
    listener = live.hub.listen(frozenset())  # no job: it gets heartbeats, and what we offer it below

    async def on_message(msg: Msg) -> None:
        try:
            entry = log_entry_decoder.decode(msg.data)
        except msgspec.DecodeError:
            return
        if isinstance(entry, ServiceLogged) and LEVELS.get(entry.level, 0) >= min_level:
            live.hub.offer(listener, sse.frame("log", msg.data, stream_position(msg)[0]))

    subject = names.service_log(service, "*") if service else names.all_service_logs
    config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after + 1)
    sub = await live.js.subscribe(subject, stream=names.logs_stream, ordered_consumer=True, config=config,
                                  cb=on_message)
    try:
        frames = [f"retry: {live.retry_ms}\n\n".encode()]
        for row in history:
            if LEVELS.get(row.level, 0) >= min_level:
                record = ServiceLogged(ts=row.ts, service=row.service or "", instance="", level=row.level,
                                       logger=row.logger or "", message=row.message)
                frames.append(sse.frame("log", encoder.encode(record), row.seq))
        yield b"".join(frames)
        yield listener  # then live
    finally:
        live.hub.unsubscribe(listener)
        await sub.unsubscribe()
