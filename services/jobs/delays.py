"""Delayed jobs: `run_at` (RFC 3339) or `delay_s` on a submission, held by the broker until then.

The job's created event is not published now: a JetStream message schedule (nats-server 2.12+,
ADR-51) holding it is stored on `scheduler.<id>` with `Nats-Schedule: @at <time>` and the created
subject as its target, and the server itself publishes it there at that time — across restarts of
every service and of the server, with no scheduler process of ours. A `scheduled` event on the job's
own subjects makes it visible meanwhile. Cancelling replaces the schedule, so it never fires.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from nats.js import JetStreamContext

from jobline.contract.events import JobCreated, JobScheduled, encoder
from jobline.contract.names import Names
from jobline.contract.publishing import subject_of
from jobline.runtime.publishing import publish_reliably

from .errors import Invalid

MIN_DELAY_S = 1.0  # sooner than this (the broker's resolution is a second): submitted at once


def _refused(key: str, detail: str) -> Invalid:
    return Invalid(detail, title="Invalid schedule", key=key)


def run_time(run_at: str | None, delay_s: float | None, max_delay_s: float, now: float | None = None) -> float | None:
    """When the job should run (unix seconds), None for now; Invalid for a time it cannot have."""
    if run_at is None and delay_s is None:
        return None
    now = time.time() if now is None else now
    if run_at is not None and delay_s is not None:
        raise _refused("run_at", "give run_at or delay_s, not both")
    if delay_s is not None:
        if not 0 <= delay_s <= max_delay_s:
            raise _refused("delay_s", f"delay_s must be from 0 to {max_delay_s:g} seconds")
        when, key = now + delay_s, "delay_s"
    else:
        assert run_at is not None
        try:
            moment = datetime.fromisoformat(run_at.strip())
        except ValueError:
            raise _refused("run_at", f"{run_at!r} is not an RFC 3339 time (e.g. 2026-12-01T08:00:00Z)") from None
        if moment.tzinfo is None:
            raise _refused("run_at", "run_at needs its time zone (Z or an offset such as +01:00)")
        when, key = moment.timestamp(), "run_at"
        if when < now - MIN_DELAY_S:
            raise _refused("run_at", f"run_at {run_at} is in the past")
    if when - now > max_delay_s:
        raise _refused(key, f"that is more than {max_delay_s:g} seconds ahead (JOBLINE_MAX_DELAY_S, and within the "
                            "job stream's retention JOBLINE_JOBS_MAX_AGE_S: the schedule is kept there)")
    return None if when - now < MIN_DELAY_S else float(math.ceil(when))


def schedule_headers(names: Names, created: JobCreated) -> dict[str, str]:
    moment = datetime.fromtimestamp(created.ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    target = subject_of(names, created)
    return {"Nats-Schedule": f"@at {moment}", "Nats-Schedule-Target": target}


def scheduled_event(created: JobCreated, submitted_at: float) -> JobScheduled:
    return JobScheduled(ts=submitted_at, job_id=created.job_id, type=created.type, run_at=created.ts,
                        params=created.params, steps=created.steps, timeout_s=created.timeout_s,
                        max_attempts=created.max_attempts, queue_timeout_s=created.queue_timeout_s,
                        webhook_url=created.webhook_url, batch=created.batch,
                        concurrency_key=created.concurrency_key, priority=created.priority, owner=created.owner,
                        tags=created.tags, retry_of=created.retry_of,
                        traceparent=created.traceparent)


async def unschedule(js: JetStreamContext, names: Names, job_id: str) -> None:
    """Stop the job's schedule from firing: the broker fires only the latest message of a schedule
    subject, so a plain message there replaces it (no purge right needed: no service may purge
    the job stream). Harmless once it has fired."""
    await publish_reliably(js, names.schedule(job_id), encoder.encode({"job_id": job_id, "unscheduled": True}),
                           msg_id=f"{job_id}:unschedule", give_up_after=10.0)
