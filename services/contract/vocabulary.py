"""The words every part of Jobline shares, in one place: job statuses, event kinds and the reasons a
job fails. Services import them from here; the web UI gets them from the gateway as a module
(`/vocabulary.js`, built from these), so nothing is copied by hand.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class JobStatus(StrEnum):
    SCHEDULED = "scheduled"  # submitted with run_at/delay_s: waiting for its time (the broker holds it)
    BLOCKED = "blocked"  # a job of a flow waiting for its children or the siblings it depends on
    WAITING = "waiting"  # its handler waits for a signal (ctx.wait_for_signal): no worker holds it
    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class EventKind(StrEnum):
    """The `kind` tag of every event (events.py: each type's `tag`)."""

    SCHEDULED = "scheduled"
    BLOCKED = "blocked"
    CREATED = "created"
    WAITING = "waiting"
    STARTED = "started"
    STEP_STARTED = "step_started"
    STEP_FINISHED = "step_finished"
    PROGRESSED = "progressed"
    LOGGED = "logged"
    RETRYING = "retrying"
    SUSPENDED = "suspended"
    AWAITING_SIGNAL = "awaiting_signal"
    SIGNALLED = "signalled"
    CANCEL_REQUESTED = "cancel_requested"
    ARTIFACT_STORED = "artifact_stored"
    WEBHOOK_ATTEMPTED = "webhook_attempted"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    DELETED = "deleted"
    SERVICE_LOGGED = "service_logged"


class FailureReason(StrEnum):
    """Why a job ended `failed` (its `reason`), or `error_reason` in its state."""

    ERROR = "error"  # the handler raised; retried while attempts last
    PERMANENT = "permanent"  # the handler raised PermanentError: not retried
    TIMEOUT = "timeout"  # it ran longer than its timeout_s
    INVALID_PARAMS = "invalid_params"  # its params do not fit the type's
    UNKNOWN_TYPE = "unknown_type"  # no handler for its type here
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"  # its workers died max_attempts times
    CANCELLED = "cancelled"  # error_reason of a cancelled job
    EXPIRED = "expired"  # error_reason of a job that waited past its queue timeout
    CHILD_FAILED = "child_failed"  # a child (or a sibling it depends on) did not complete: it never ran


class ChildFailurePolicy(StrEnum):
    """What a job of a flow does when one of its children (or a sibling a child depends on) did not
    complete."""

    FAIL = "fail"  # it fails without running (and so on up the tree); dependants of the child too
    IGNORE = "ignore"  # it runs; `ctx.children` leaves the unfinished children out
    CONTINUE = "continue"  # it runs and sees every child's outcome in `ctx.children`


class Overlap(StrEnum):
    """What a recurring schedule does at a tick while its previous run has not ended."""

    ALLOW = "allow"  # it runs anyway
    SKIP = "skip"  # no new run: the tick is recorded missed


# A job ends with one terminal event; its status then is that event's kind.
TERMINAL_KINDS: Final = frozenset({EventKind.COMPLETED, EventKind.FAILED, EventKind.CANCELLED, EventKind.EXPIRED})
TERMINAL_STATUSES: Final = frozenset(JobStatus(kind) for kind in TERMINAL_KINDS)
LIVE_STATUSES: Final = tuple(s for s in JobStatus if s not in TERMINAL_STATUSES)
ENDED_STATUSES: Final = tuple(s for s in JobStatus if s in TERMINAL_STATUSES)
ALL_STATUSES: Final = tuple(JobStatus)
JOB_EVENT_KINDS: Final = tuple(k for k in EventKind if k is not EventKind.SERVICE_LOGGED)
