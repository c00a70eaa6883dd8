"""New jobs as the messages that store them, for one write of many (batches, flows: JobWriter.store_all).

Each job becomes its messages — its created event; a delayed job's schedule and `scheduled`
event; a waiting job of a flow its `blocked` event — and every job's first message on its own
subjects is stored only if the job has no event yet (`Nats-Expected-Last-Subject-Sequence: 0` on
`jobs.<id>.>`). All of them go into the job stream as one JetStream atomic batch
(runtime/atomic_publish.py): a request that fails or dies half-way stores nothing, and a retried
request whose jobs exist is refused whole — then the jobs that exist are left out and the rest is
sent again, so a retry completes what another request (or an earlier try) did not.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import NamedTuple

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from jobline.contract.events import JobBlocked, JobCreated, encoder
from jobline.contract.names import Names
from jobline.contract.publishing import expect_last, subject_of
from jobline.runtime.atomic_publish import Message
from jobline.runtime.concurrency import bounded

from .delays import schedule_headers, scheduled_event


class NewJob(NamedTuple):
    id: str
    event: JobCreated  # what it is (for a blocked job: what it will be once released)
    messages: list[Message]


def created(names: Names, event: JobCreated, run_at: float | None, submitted_at: float) -> NewJob:
    """A job that runs now (its created event) or at `run_at` (its schedule, then `scheduled`)."""
    only_if_new = expect_last(names.job_timeline(event.job_id), 0)
    if run_at is None:
        return NewJob(event.job_id, event, [Message(subject_of(names, event), encoder.encode(event), only_if_new)])
    scheduled = scheduled_event(event, submitted_at)
    return NewJob(event.job_id, event, [
        Message(names.schedule(event.job_id), encoder.encode(event), schedule_headers(names, event)),
        Message(subject_of(names, scheduled), encoder.encode(scheduled), only_if_new)])


def blocked(names: Names, event: JobBlocked) -> NewJob:
    """A job of a flow that waits for other jobs: stored `blocked`, holding its created event."""
    return NewJob(event.job_id, event.job, [
        Message(subject_of(names, event), encoder.encode(event), expect_last(names.job_timeline(event.job_id), 0))])


async def existing(js: JetStreamContext, names: Names, job_ids: Iterable[str]) -> set[str]:
    """The ids among `job_ids` that have at least one event in the job stream."""

    async def has_events(job_id: str) -> bool:
        try:
            await js.get_last_msg(names.jobs_stream, names.job_timeline(job_id), direct=True)
        except NotFoundError:
            return False
        return True

    ids = list(job_ids)
    found = await bounded([partial(has_events, j) for j in ids], 64)
    return {job_id for job_id, yes in zip(ids, found, strict=True) if yes}
