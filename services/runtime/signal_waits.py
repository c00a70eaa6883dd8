"""Ending a job's wait for a signal: reading the signal, the job's created event published again
(the handler runs once more and finds the signal), and the broker-held timeout of the wait.

The conductors' signal runner hears both halves — the wait recorded (`jobs.<id>.run.awaiting`) and
the signal (`jobs.<id>.signal.<name>`) — and resumes the job when it finds the other half there,
whichever came first; both may find it (a signal stored while the wait was recorded), and a
redelivered message finds it again: the created event is stored again only if its subject's last
message is still the one that ran (`created_seq`), so the job is resumed once.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from jobline.contract.events import JobAwaitingSignal, JobCreated, JobSignalled, encoder, job_event_decoder
from jobline.contract.names import Names
from jobline.contract.publishing import expect_last

from .publishing import publish_if_last, publish_reliably


async def first_signal(js: JetStreamContext, names: Names, job_id: str, name: str) -> JobSignalled | None:
    """The signal that counts (the first message on its subject), None if none came yet."""
    try:
        raw = await js.get_msg(names.jobs_stream, seq=1, subject=names.job_signal(job_id, name), next=True,
                               direct=True)
    except NotFoundError:
        return None
    try:
        event = job_event_decoder.decode(raw.data or b"")
    except msgspec.DecodeError:
        return None
    return event if isinstance(event, JobSignalled) else None


async def resume_waiting(js: JetStreamContext, names: Names, awaiting: JobAwaitingSignal) -> bool:
    """Publish the waiting job's created event again; False when it was resumed already."""
    raw = await js.get_msg(names.jobs_stream, seq=awaiting.created_seq, direct=True)
    created = job_event_decoder.decode(raw.data or b"")
    if not isinstance(created, JobCreated):
        raise ValueError(f"job {awaiting.job_id}: sequence {awaiting.created_seq} is not its created event")
    again = msgspec.structs.replace(created, ts=time.time(), resumed=created.resumed + 1)
    return await publish_if_last(js, awaiting.created_subject, encoder.encode(again),
                                 msg_id=f"{awaiting.job_id}:created:after:{awaiting.created_seq}",
                                 headers=expect_last(awaiting.created_subject, awaiting.created_seq), give_up_after=30.0)


async def schedule_timeout(js: JetStreamContext, names: Names, awaiting: JobAwaitingSignal) -> None:
    """Have the broker publish a `timed_out` signal at `timeout_at` (a JetStream message schedule;
    it replaces an earlier one of the same wait). Its message counts only if no signal came first."""
    assert awaiting.timeout_at is not None
    moment = datetime.fromtimestamp(awaiting.timeout_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    timeout = JobSignalled(ts=awaiting.timeout_at, job_id=awaiting.job_id, name=awaiting.name, timed_out=True)
    headers = {"Nats-Schedule": f"@at {moment}",
               "Nats-Schedule-Target": names.job_signal(awaiting.job_id, awaiting.name)}
    await publish_reliably(js, names.signal_timeout(awaiting.job_id, awaiting.name), encoder.encode(timeout),
                           msg_id=f"{awaiting.job_id}:{awaiting.attempt}:signal-timeout", headers=headers,
                           give_up_after=30.0)


async def unschedule_timeout(js: JetStreamContext, names: Names, job_id: str, name: str) -> None:
    """The signal came: its wait's timeout never fires (a plain message replaces the schedule)."""
    await publish_reliably(js, names.signal_timeout(job_id, name),
                           encoder.encode({"job_id": job_id, "signal": name, "unscheduled": True}),
                           msg_id=f"{job_id}:{name}:unschedule", give_up_after=10.0)
