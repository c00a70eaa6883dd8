"""Reading parts of one job's stored timeline back from the job stream, and folding it."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from jobline.contract.events import JobEvent, job_event_decoder
from jobline.contract.job_state import JobState, apply, start_state
from jobline.contract.names import LOG, Names
from jobline.runtime.consuming import stream_position


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    subject: str
    data: bytes  # the event's JSON exactly as stored
    ts: float  # when the stream stored it (unix seconds)


async def read_events(js: JetStreamContext, names: Names, job_id: str | None, *, after_seq: int = 0,
                      upto_seq: int | None = None, only_logs: bool = False, limit: int | None = None,
                      timeout: float = 10.0) -> list[StoredEvent]:
    """The job's (or with job_id None, every job's) stored events with after_seq < seq <= upto_seq,
    in order (`limit`: the last ones)."""
    if job_id is None:
        subject = names.all_job_events
    else:
        subject = names.job_event(job_id, LOG) if only_logs else names.job_timeline(job_id)
    config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after_seq + 1) \
        if after_seq > 0 else ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
    out: deque[StoredEvent] = deque(maxlen=limit)
    finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # A callback, not next_msg(): nats-py's next_msg() costs two tasks per message, which capped
    # a 100,000-event replay at ~15,000 events/s (docs/benchmarks.md).
    async def on_message(msg: Msg) -> None:
        if finished.done():
            return
        seq, ts, pending = stream_position(msg)
        if upto_seq is not None and seq > upto_seq:
            finished.set_result(None)
            return
        out.append(StoredEvent(seq, msg.subject, msg.data, ts))
        if pending == 0 or (upto_seq is not None and seq >= upto_seq):
            finished.set_result(None)

    sub = await js.subscribe(subject, stream=names.jobs_stream, ordered_consumer=True, config=config, cb=on_message)
    try:
        info = await sub.consumer_info()
        if not finished.done() and not info.num_pending and not (info.delivered and info.delivered.consumer_seq):
            return []  # nothing matched (what was pending may already be on its way to us)
        async with asyncio.timeout(timeout):
            await finished
    finally:
        await sub.unsubscribe()
    return list(out)


async def last_event_seq(js: JetStreamContext, names: Names) -> int:
    """The sequence of the job stream's last job event (`jobs.>`): the end a reader of job events
    can reach. The stream's own last sequence may be a delayed job's schedule (`scheduler.<id>`),
    which no such reader ever sees."""
    try:
        return int((await js.get_last_msg(names.jobs_stream, names.all_job_events, direct=True)).seq or 0)
    except NotFoundError:
        return 0


def decoded(events: list[StoredEvent]) -> list[tuple[StoredEvent, JobEvent]]:
    out = []
    for stored in events:
        try:
            out.append((stored, job_event_decoder.decode(stored.data)))
        except msgspec.DecodeError:
            continue
    return out


def fold(events: list[tuple[StoredEvent, JobEvent]], *, upto_seq: int | None = None,
         upto_ts: float | None = None) -> JobState | None:
    """The job's state after its events up to a sequence or a moment (None: not created yet)."""
    state: JobState | None = None
    for stored, event in events:
        if upto_seq is not None and stored.seq > upto_seq:
            break
        if upto_ts is not None and event.ts > upto_ts:
            break
        started = start_state(event, stored.seq)
        if started is not None:
            state = state or started
        elif state is not None:
            apply(state, event, stored.seq)
    return state
