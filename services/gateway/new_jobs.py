"""Many new jobs stored as one write: all of them, or none (batches, flows).

Each job becomes its messages — its created event; a delayed job's schedule and `scheduled`
event; a waiting job of a flow its `blocked` event — and every job's first message on its own
subjects is stored only if the job has no event yet (`Nats-Expected-Last-Subject-Sequence: 0` on
`jobs.<id>.>`). All of them go into the job stream as one JetStream atomic batch
(runtime/atomic_publish.py): a request that fails or dies half-way stores nothing, and a retried
request whose jobs exist is refused whole — then the jobs that exist are left out and the rest is
sent again, so a retry completes what another request (or an earlier try) did not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import partial
from typing import NamedTuple

from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import APIError, NotFoundError

from jobline.contract.events import JobBlocked, JobCreated, encoder
from jobline.contract.publishing import WRONG_LAST_SEQUENCE_ERR, expect_last, subject_of
from jobline.runtime.atomic_publish import BATCH_TOO_LARGE_ERR, Message, publish_batch_reliably
from jobline.runtime.concurrency import bounded

from .core import Core
from .delays import schedule_headers, scheduled_event
from .problems import Problem

log = logging.getLogger(__name__)
ATTEMPTS = 4  # writes of what is still missing, each after finding what exists


class NewJob(NamedTuple):
    id: str
    event: JobCreated  # what it is (for a blocked job: what it will be once released)
    messages: list[Message]


def created(core: Core, event: JobCreated, run_at: float | None, submitted_at: float) -> NewJob:
    """A job that runs now (its created event) or at `run_at` (its schedule, then `scheduled`)."""
    names = core.settings.names
    only_if_new = expect_last(names.job_timeline(event.job_id), 0)
    if run_at is None:
        return NewJob(event.job_id, event, [Message(subject_of(names, event), encoder.encode(event), only_if_new)])
    scheduled = scheduled_event(event, submitted_at)
    return NewJob(event.job_id, event, [
        Message(names.schedule(event.job_id), encoder.encode(event), schedule_headers(names, event)),
        Message(subject_of(names, scheduled), encoder.encode(scheduled), only_if_new)])


def blocked(core: Core, event: JobBlocked) -> NewJob:
    """A job of a flow that waits for other jobs: stored `blocked`, holding its created event."""
    names = core.settings.names
    return NewJob(event.job_id, event.job, [
        Message(subject_of(names, event), encoder.encode(event), expect_last(names.job_timeline(event.job_id), 0))])


async def existing(core: Core, job_ids: Iterable[str]) -> set[str]:
    """The ids among `job_ids` that have at least one event in the job stream."""
    names = core.settings.names

    async def has_events(job_id: str) -> bool:
        try:
            await core.js.get_last_msg(names.jobs_stream, names.job_timeline(job_id), direct=True)
        except NotFoundError:
            return False
        return True

    ids = list(job_ids)
    found = await bounded([partial(has_events, j) for j in ids], 64)
    return {job_id for job_id, yes in zip(ids, found, strict=True) if yes}


async def store_all(core: Core, jobs: list[NewJob]) -> None:
    """Store every job not stored yet, in one atomic write; raises a Problem when the write could
    not be made (then none of them was stored by this call)."""
    pending = jobs
    for priority_type in {(j.event.type, j.event.priority) for j in jobs if j.event.priority}:
        if core.queues is not None:  # (a band's queue exists before its first job)
            await core.queues.ensure_band(*priority_type)
    for _ in range(ATTEMPTS):
        if not pending:
            return
        messages = [m for job in pending for m in job.messages]
        log.info("storing %d jobs in one atomic write (%d messages)", len(pending), len(messages))
        try:
            await publish_batch_reliably(core.nc, messages, give_up_after=10.0)
        except APIError as exc:
            if exc.err_code == BATCH_TOO_LARGE_ERR:
                raise Problem(413, "Too many jobs at once", f"the event store takes at most so many messages in one "
                              f"atomic write ({exc.description}); {len(messages)} were needed; nothing was created. "
                              "Its nats-server needs jetstream.limits.batch.max_msgs (docs/deployment.md).") from exc
            if exc.err_code != WRONG_LAST_SEQUENCE_ERR:
                raise Problem(503, "Event store refused the jobs", f"{exc.description}; nothing was created") from exc
            # Some of the jobs exist (stored by an earlier try of this request, or by another
            # request that claimed the same keys): leave them out and write the rest.
            found = await existing(core, [j.id for j in pending])
            log.info("%d of %d jobs exist already; storing the other %d", len(found), len(pending),
                     len(pending) - len(found))
            pending = [j for j in pending if j.id not in found]
            continue
        except (NatsTimeout, NoRespondersError) as exc:
            raise Problem(503, "Event store unavailable", f"the jobs could not be stored ({type(exc).__name__}); "
                          "repeat the request with the same Idempotency-Key to be sure of the outcome") from exc
        for job in pending:
            core.metrics.count_submitted(job.event.type)
        return
    raise Problem(503, "Event store busy", "the jobs kept being created by other requests meanwhile; try again")
