"""How an attempt ended, from its handler's task: completed (with its result), failed (why), cancelled,
timed out, or suspended waiting for the children it spawned or for a signal."""

from __future__ import annotations

import logging
import math
import time

from jobline.contract.events import (
    ChildRef,
    JobAwaitingSignal,
    JobCancelled,
    JobCompleted,
    JobCreated,
    JobFailed,
    JobSuspended,
    TerminalEvent,
    encoder,
)
from jobline.contract.vocabulary import FailureReason

from .context import WaitForChildren
from .registry import PermanentError
from .running import RunningJob
from .signals import AwaitSignal

Suspension = JobSuspended | JobAwaitingSignal  # the attempt ended, the job did not

log = logging.getLogger(__name__)


def outcome_of(running: RunningJob, created: JobCreated, attempt: int, timeout: float) -> TerminalEvent | Suspension:
    job_id, now = created.job_id, time.time()
    handler = running.handler
    if running.stop_reason == "timeout":
        return JobFailed(ts=now, job_id=job_id, attempt=attempt, reason=FailureReason.TIMEOUT,
                         error=f"timed out after {timeout:g}s; the work was stopped")
    if running.stop_reason == "cancelled":
        return JobCancelled(ts=now, job_id=job_id, attempt=attempt, reason="cancel requested")
    if handler.cancelled():
        return JobFailed(ts=now, job_id=job_id, attempt=attempt, error="the handler was cancelled")
    exc = handler.exception()
    if exc is None:
        result = handler.result()
        if isinstance(result, WaitForChildren):  # continue once the children it spawned have ended
            children = [ChildRef(id=c.id, name=c.name, weight=c.weight) for c in running.ctx.spawned]
            return JobSuspended(ts=now, job_id=job_id, attempt=attempt, children=children)
        try:
            encoder.encode(result)
        except TypeError as bad:  # a result that cannot be stored is the handler's failure
            return JobFailed(ts=now, job_id=job_id, attempt=attempt, reason=FailureReason.ERROR, error=f"TypeError: {bad}")
        return JobCompleted(ts=now, job_id=job_id, attempt=attempt, result=result)
    if isinstance(exc, AwaitSignal):  # continue once the signal (or the wait's timeout) has come
        timeout_at = float(math.ceil(now + exc.timeout_s)) if exc.timeout_s is not None else None
        return JobAwaitingSignal(ts=now, job_id=job_id, attempt=attempt, name=exc.name, timeout_at=timeout_at)
    if isinstance(exc, PermanentError):
        return JobFailed(ts=now, job_id=job_id, attempt=attempt, error=str(exc), reason=FailureReason.PERMANENT)
    log.warning("job %s (%s) attempt %d failed: %s: %s", job_id, created.type, attempt, type(exc).__name__, exc)
    return JobFailed(ts=now, job_id=job_id, attempt=attempt, error=f"{type(exc).__name__}: {exc}")
