"""Whether a delivered job runs, and as which attempt: one pure decision, from what is known of it.

A first delivery is decided from its created event alone. A redelivery (or a resumed parent) is
decided with its run chain's last event and whether a cancel was requested, since the job may have
ended, been cancelled, or been started by a worker that died while it was away. Attempts are
counted from the run chain, never from the delivery count: a delivery handed back before it
started is not an attempt. tests/test_admission.py tries every branch without NATS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from jobline.contract.events import (
    JobAwaitingSignal,
    JobCancelled,
    JobCreated,
    JobEvent,
    JobExpired,
    JobFailed,
    JobRetrying,
    JobStarted,
    JobSuspended,
    TerminalEvent,
)
from jobline.contract.vocabulary import FailureReason

from .registry import TaskSpec


@dataclass(frozen=True)
class Run:
    """Run it: this attempt, out of at most so many, with its params converted."""

    attempt: int
    max_attempts: int
    params: Any


@dataclass(frozen=True)
class End:
    """End it without running it (`attempt` names the write: `<job>:<attempt>:end`)."""

    event: TerminalEvent
    attempt: int


@dataclass(frozen=True)
class AlreadyEnded:
    """It ended while it was away: signal its end again (its ender may have died before it could)."""

    event: TerminalEvent


Decision = Run | End | AlreadyEnded


@dataclass(frozen=True)
class Defaults:
    """The processor's own bounds, for a job (and its type) that sets none."""

    max_attempts: int = 3
    queue_timeout_s: float = 86400.0


def needs_history(created: JobCreated, delivered: int) -> bool:
    """Whether the decision needs the run chain and the cancel requests: only for a job that may
    have been seen before (a redelivery, a parent resumed after its children)."""
    return delivered > 1 or created.resumed > 0


def max_attempts_of(created: JobCreated, spec: TaskSpec | None, defaults: Defaults) -> int:
    limit = created.max_attempts or (spec.max_attempts if spec else None) or defaults.max_attempts
    return limit + created.resumed  # (each run after it suspended — children, a signal — is an attempt of its own)


def admit(created: JobCreated, spec: TaskSpec | None, defaults: Defaults, now: float, *,
          last: JobEvent | None = None, cancel_requested: bool = False) -> Decision:
    job_id, attempt = created.job_id, 1
    max_attempts = max_attempts_of(created, spec, defaults)
    if isinstance(last, TerminalEvent):
        return AlreadyEnded(last)
    if isinstance(last, JobStarted | JobRetrying | JobSuspended | JobAwaitingSignal):
        attempt = last.attempt + 1
    if cancel_requested:
        return End(JobCancelled(ts=now, job_id=job_id, attempt=attempt, reason="cancel requested"), attempt)
    if attempt > max_attempts and isinstance(last, JobStarted):
        # The worker died each time (a job that crashes its process): stop trying.
        return End(JobFailed(ts=now, job_id=job_id, attempt=attempt - 1, reason=FailureReason.ATTEMPTS_EXHAUSTED,
                             error=f"gave up after {max_attempts - created.resumed} attempt(s): the worker stopped "
                                   "responding each time"), attempt)
    waited = now - created.ts
    queue_timeout = created.queue_timeout_s or defaults.queue_timeout_s
    if attempt == 1 and waited > queue_timeout:
        return End(JobExpired(ts=now, job_id=job_id, waited_s=round(waited, 3), queue_timeout_s=queue_timeout), attempt)
    if spec is None:  # the queue's filter makes this a configuration error, not user input
        return End(JobFailed(ts=now, job_id=job_id, attempt=attempt, error=f"no handler for job type {created.type!r}",
                             reason=FailureReason.UNKNOWN_TYPE), attempt)
    try:
        params = spec.parse_params(created.params)
    except msgspec.ValidationError as exc:
        return End(JobFailed(ts=now, job_id=job_id, attempt=attempt, error=f"invalid params: {exc}",
                             reason=FailureReason.INVALID_PARAMS), attempt)
    return Run(attempt, max_attempts, params)
