"""A job's current state, folded from its events: the one fold every reader uses.

The gateway folds the live stream into its in-memory window with it, the history service folds the
same stream into its database rows with it, and a replay folds a stored timeline with it; all three
must agree on what a job looked like, so there is one implementation, here in the contract.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .events import (
    ArtifactStored,
    CancelRequested,
    ChildRef,
    JobAwaitingSignal,
    JobBlocked,
    JobCancelled,
    JobCompleted,
    JobCreated,
    JobEvent,
    JobExpired,
    JobFailed,
    JobRetrying,
    JobScheduled,
    JobSignalled,
    JobStarted,
    JobSuspended,
    JobWaiting,
    LogLineWritten,
    ProgressReported,
    StepFinished,
    StepStarted,
    WebhookAttempted,
)
from .vocabulary import TERMINAL_STATUSES, FailureReason, JobStatus


class ArtifactInfo(msgspec.Struct, kw_only=True):
    name: str
    size: int
    content_type: str
    sha256: str = ""
    url: str = ""


class StepState(msgspec.Struct, kw_only=True):
    name: str
    status: str = "pending"  # pending | running | done | failed
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None


class WebhookStatus(msgspec.Struct, kw_only=True):
    attempts: int
    delivered: bool
    status: int | None = None
    error: str | None = None
    final: bool = False


class SignalInfo(msgspec.Struct, kw_only=True):
    """A signal the job received (its payload is in the timeline), or its wait's timeout."""

    name: str
    at: float
    timed_out: bool = False


class JobState(msgspec.Struct, kw_only=True):
    id: str
    type: str
    status: str = JobStatus.PENDING  # a JobStatus (vocabulary.py)
    params: dict[str, Any] = {}
    progress: float | None = None  # 0..1
    current: float | None = None
    total: float | None = None
    message: str | None = None
    eta_s: float | None = None
    step: str | None = None  # the step running now
    steps: list[StepState] = []
    attempt: int = 0
    worker: str | None = None
    created_at: float = 0.0
    run_at: float | None = None  # a delayed job: when it becomes (or became) pending
    schedule: str | None = None  # the recurring schedule that made it …
    tick: float | None = None  # … and the fire time it was made for
    batch: str | None = None  # the batch it was submitted in
    concurrency_key: str | None = None
    priority: int = 0  # 0..9, higher starts first
    owner: str | None = None  # whose job it is
    tags: list[str] = []  # its labels
    retry_of: str | None = None  # the ended job it runs again (a bulk retry)
    trace_id: str | None = None  # its OpenTelemetry trace (from the submission's traceparent)
    flow: str | None = None  # a job of a flow: the flow's id (its root job's) …
    parent: str | None = None  # … its parent …
    name: str | None = None  # … its name among its siblings
    children: list[ChildRef] = []  # its children (it runs once they have all ended)
    blocked_on: list[str] = []  # while blocked: the jobs it waits for
    resumes: int = 0  # runs after it suspended (its children ended, its signal came; each one an attempt)
    waiting_for: str | None = None  # while pending: why no processor could start it yet
    awaiting_signal: str | None = None  # while waiting: the signal its handler waits for …
    signal_timeout_at: float | None = None  # … until then (None: no timeout)
    signals: list[SignalInfo] = []  # the signals it received (each name once), in order
    started_at: float | None = None
    finished_at: float | None = None
    result: Any = None
    error: str | None = None
    error_reason: str | None = None
    timeout_s: float | None = None
    max_attempts: int | None = None
    next_attempt_in_s: float | None = None  # while retrying: the backoff before the next attempt
    cancel_requested: bool = False
    artifacts: list[ArtifactInfo] = []
    webhook_url: str | None = None
    webhook: WebhookStatus | None = None
    log_lines: int = 0
    created_seq: int = 0  # stream sequence of the created event
    seq: int = 0  # stream sequence of the last event applied
    run_seq: int = 0  # stream sequence of the last event of the run chain (jobs.<id>.run.*)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


def new_state(event: JobCreated | JobScheduled | JobBlocked, seq: int) -> JobState:
    if isinstance(event, JobBlocked):
        state = new_state(event.job, seq)
        state.status, state.blocked_on, state.created_at = JobStatus.BLOCKED, list(event.blocked_on), event.ts
        return state
    state = JobState(
        id=event.job_id, type=event.type, params=event.params, created_at=event.ts,
        steps=[StepState(name=n) for n in event.steps], created_seq=seq, seq=seq,
        timeout_s=event.timeout_s, max_attempts=event.max_attempts, webhook_url=event.webhook_url,
    )
    state.batch, state.concurrency_key, state.priority = event.batch, event.concurrency_key, event.priority
    state.owner, state.tags, state.retry_of = event.owner, list(event.tags), event.retry_of
    state.trace_id = event.traceparent[3:35] if event.traceparent else None  # (00-<trace id>-<span id>-<flags>)
    if isinstance(event, JobCreated):
        state.schedule, state.tick = event.schedule, event.tick
        state.flow, state.parent, state.name, state.children = event.flow, event.parent, event.name, list(event.children)
    if isinstance(event, JobScheduled):
        state.status, state.run_at = JobStatus.SCHEDULED, event.run_at
    return state


def start_state(event: JobEvent, seq: int) -> JobState | None:
    """The state a job's first event starts (its created event, or its scheduled one for a
    delayed job); None for any other event."""
    return new_state(event, seq) if isinstance(event, (JobCreated, JobScheduled, JobBlocked)) else None


def _step(state: JobState, name: str) -> StepState:
    for step in state.steps:
        if step.name == name and step.status in ("pending", "running"):
            return step
    step = StepState(name=name)
    state.steps.append(step)
    return step


def apply(state: JobState, event: JobEvent, seq: int) -> bool:
    """Fold one event into the state; False when it was ignored. Events of an attempt older than
    the current one are ignored: a worker presumed dead cannot rewrite what its successor reports.
    An event at or before the last one folded in (`state.seq`) is ignored too, so folding is
    idempotent by stream sequence: a state loaded from the history store and then fed the stream
    from an earlier position ends up the same as one fed every event once."""
    if seq <= state.seq:
        return False
    if isinstance(event, WebhookAttempted):  # delivered after the end, by design
        state.seq = seq
        state.webhook = WebhookStatus(attempts=event.attempt, delivered=event.delivered, status=event.status,
                                      error=event.error, final=event.final)
        return True
    if state.is_terminal:
        return False
    attempt = getattr(event, "attempt", None)
    if attempt is not None and attempt and attempt < state.attempt:
        return False
    state.seq = seq
    match event:
        case JobWaiting():
            if state.status not in (JobStatus.PENDING, JobStatus.RETRYING):
                return False
            state.waiting_for = event.reason
        case JobStarted():
            state.run_seq = seq
            state.status = JobStatus.RUNNING
            state.waiting_for = None
            state.attempt = event.attempt
            state.next_attempt_in_s = None
            state.worker = event.worker
            state.started_at = event.ts
            state.progress = state.current = state.total = state.eta_s = None
            state.step = state.message = None
            plan = event.steps or [s.name for s in state.steps]
            state.steps = [StepState(name=n) for n in plan]
        case StepStarted():
            step = _step(state, event.name)
            step.status, step.started_at = "running", event.ts
            state.step = event.name
        case StepFinished():
            step = _step(state, event.name)
            step.status, step.finished_at, step.duration_s = event.outcome, event.ts, event.duration_s
            if state.step == event.name:
                state.step = None
        case ProgressReported():
            if event.fraction is not None and state.progress is not None and event.fraction < state.progress:
                return False  # progress never goes back within an attempt
            state.progress, state.current, state.total = event.fraction, event.current, event.total
            state.eta_s = event.eta_s
            if event.message is not None:
                state.message = event.message
        case LogLineWritten():
            state.log_lines += 1
        case JobSuspended():
            state.run_seq = seq
            state.status, state.step, state.eta_s = JobStatus.BLOCKED, None, None
            state.blocked_on = [c.id for c in event.children]
            state.children = [*state.children, *event.children]
        case JobAwaitingSignal():
            state.run_seq = seq
            state.status, state.step, state.eta_s = JobStatus.WAITING, None, None
            state.awaiting_signal, state.signal_timeout_at = event.name, event.timeout_at
        case JobSignalled():
            if any(s.name == event.name for s in state.signals):
                return False  # (only the first message of a signal's subject counts)
            state.signals = [*state.signals, SignalInfo(name=event.name, at=event.ts, timed_out=event.timed_out)]
        case JobRetrying():
            state.run_seq = seq
            state.status, state.error, state.next_attempt_in_s = JobStatus.RETRYING, event.error, event.delay_s
            state.step = state.eta_s = None
        case CancelRequested():
            state.cancel_requested = True
        case ArtifactStored():
            state.artifacts.append(ArtifactInfo(name=event.name, size=event.size, content_type=event.content_type,
                                                sha256=event.sha256, url=f"/api/jobs/{state.id}/artifacts/{event.name}"))
        case JobCompleted():
            state.run_seq = seq
            state.status, state.result, state.finished_at = JobStatus.COMPLETED, event.result, event.ts
            state.progress, state.eta_s, state.step, state.error = 1.0, 0.0, None, None
        case JobFailed():
            state.run_seq = seq
            state.status, state.finished_at = JobStatus.FAILED, event.ts
            state.error, state.error_reason, state.eta_s = event.error, event.reason, None
            state.attempt = max(state.attempt, event.attempt)
        case JobCancelled():
            state.run_seq = seq
            state.status, state.finished_at, state.eta_s = JobStatus.CANCELLED, event.ts, None
            state.error, state.error_reason = event.reason or "cancelled", FailureReason.CANCELLED
        case JobExpired():
            state.run_seq = seq
            state.status, state.finished_at = JobStatus.EXPIRED, event.ts
            state.error = f"expired after waiting {event.waited_s:g}s (queue timeout {event.queue_timeout_s:g}s)"
            state.error_reason = FailureReason.EXPIRED
        case JobCreated():
            if state.status not in (JobStatus.SCHEDULED, JobStatus.BLOCKED, JobStatus.WAITING):
                return False  # (the state started from it)
            # A delayed job's time came (the broker published it), or a blocked one was released (or
            # resumed after children it spawned: it is part of a flow now, with every child named), or
            # a waiting one resumed by its signal.
            state.status, state.blocked_on = JobStatus.PENDING, []
            state.awaiting_signal = state.signal_timeout_at = None
            state.flow, state.resumes = event.flow or state.flow, event.resumed
            state.children = list(event.children) or state.children
        case JobScheduled() | JobBlocked():
            return False
    return True
