"""Event types: one tagged union of frozen msgspec Structs, JSON on the wire.

Schema evolution rules (msgspec's): a new field always gets a default; a field's type never
changes; a removed meaning gets a new field instead. `v` is bumped when the meaning of an existing
field changes, which we avoid.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from .vocabulary import TERMINAL_KINDS as TERMINAL_KINDS  # (re-exported: where the events are)
from .vocabulary import ChildFailurePolicy

SCHEMA_VERSION: Final = 1


class _Tagged(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", omit_defaults=False):
    v: int = SCHEMA_VERSION
    ts: float  # unix time (seconds) at which the event happened, by the publisher's clock


class _JobEvent(_Tagged, frozen=True, kw_only=True):
    job_id: str


class ChildRef(msgspec.Struct, frozen=True, kw_only=True):
    """A child of a job in a flow: its id, its name among its siblings, its weight in the parent's progress."""

    id: str
    name: str
    weight: float = 1.0


class JobCreated(_JobEvent, frozen=True, kw_only=True, tag="created"):
    type: str
    params: dict[str, Any] = {}
    steps: list[str] = []  # the planned step names, so a client can draw them before the job runs
    timeout_s: float | None = None  # run time limit; None: the type's, else the processor's default
    max_attempts: int | None = None  # None: the type's, else the processor's default
    queue_timeout_s: float | None = None  # pending longer than this: ends `expired` without running
    webhook_url: str | None = None  # POSTed to when the job ends (Standard Webhooks)
    schedule: str | None = None  # made by this recurring schedule …
    tick: float | None = None  # … for this fire time (unix seconds)
    batch: str | None = None  # submitted as part of this batch (POST /api/batches)
    concurrency_key: str | None = None  # jobs of a type with one key share its per-key limit (queue controls)
    priority: int = 0  # 0..9, higher starts first (names.PRIORITY_MIN/MAX; its subject carries the band)
    flow: str | None = None  # part of this flow (its root job's id; POST /api/flows) …
    parent: str | None = None  # … as a child of this job …
    name: str | None = None  # … named so among its siblings
    children: list[ChildRef] = []  # its children: it ran only once they had all ended
    on_child_failure: ChildFailurePolicy = ChildFailurePolicy.FAIL  # what it does when a child fails (flows)
    resumed: int = 0  # > 0: published again after children it spawned ended (the how-many-th time)
    owner: str | None = None  # whose job it is (submissions.OWNER_PATTERN)
    tags: list[str] = []  # its labels
    retry_of: str | None = None  # made to run an ended job again (POST /api/jobs/retry): that job's id
    traceparent: str | None = None  # W3C: the span that submitted it (runtime/tracing.py); the processor's join it


class JobScheduled(_JobEvent, frozen=True, kw_only=True, tag="scheduled"):
    """A job submitted to run later: it is `scheduled` until `run_at`, when the broker itself
    publishes its created event (a JetStream message schedule held on `scheduler.<id>`)."""

    type: str
    run_at: float  # unix time at which it becomes pending (whole seconds: the broker's resolution)
    params: dict[str, Any] = {}
    steps: list[str] = []
    timeout_s: float | None = None
    max_attempts: int | None = None
    queue_timeout_s: float | None = None
    webhook_url: str | None = None
    batch: str | None = None
    concurrency_key: str | None = None
    priority: int = 0
    owner: str | None = None
    tags: list[str] = []
    retry_of: str | None = None
    traceparent: str | None = None


class JobBlocked(_JobEvent, frozen=True, kw_only=True, tag="blocked"):
    """A job of a flow that waits for other jobs of it (its children, the siblings it depends on):
    it is `blocked` until they have ended, when the conductor's flow runner publishes `job` (its
    created event) — or ends it `failed` without running when one failed and its policy says so."""

    blocked_on: list[str]  # job ids
    job: JobCreated


class JobWaiting(_JobEvent, frozen=True, kw_only=True, tag="waiting"):
    """A pending job a processor could not start yet, and why (e.g. its concurrency key's slots are
    all taken): it stays pending and is tried again shortly."""

    reason: str


class JobStarted(_JobEvent, frozen=True, kw_only=True, tag="started"):
    attempt: int
    worker: str
    steps: list[str] = []  # the handler's plan for this attempt (may refine the created plan)


class StepStarted(_JobEvent, frozen=True, kw_only=True, tag="step_started"):
    attempt: int
    name: str


class StepFinished(_JobEvent, frozen=True, kw_only=True, tag="step_finished"):
    attempt: int
    name: str
    duration_s: float
    outcome: str = "done"  # done | failed


class ProgressReported(_JobEvent, frozen=True, kw_only=True, tag="progressed"):
    attempt: int
    fraction: float | None = None  # 0..1, None when the total is unknown
    current: float | None = None
    total: float | None = None
    message: str | None = None
    eta_s: float | None = None


class LogLineWritten(_JobEvent, frozen=True, kw_only=True, tag="logged"):
    attempt: int
    level: str
    message: str


class JobCompleted(_JobEvent, frozen=True, kw_only=True, tag="completed"):
    attempt: int
    result: Any = None


class JobFailed(_JobEvent, frozen=True, kw_only=True, tag="failed"):
    attempt: int
    error: str
    reason: str = "error"  # a FailureReason (vocabulary.py)


class JobSuspended(_JobEvent, frozen=True, kw_only=True, tag="suspended"):
    """A handler added children (`ctx.spawn`) and returned `ctx.wait_for_children()`: the attempt
    ended without ending the job, its worker slot is free, and the job is `blocked` until the
    children have ended; then it runs again (the next attempt) with their outcomes."""

    attempt: int
    children: list[ChildRef]  # the ones this attempt added


class JobAwaitingSignal(_JobEvent, frozen=True, kw_only=True, tag="awaiting_signal"):
    """A handler called `ctx.wait_for_signal(name)` before the signal came: the attempt ended without
    ending the job, its worker slot is free, and the job is `waiting` until the signal (or its
    timeout) arrives on `jobs.<id>.signal.<name>`; then it runs again (the next attempt), and this
    time the call returns the signal's payload (or raises SignalTimeout)."""

    attempt: int
    name: str
    timeout_at: float | None = None  # when the wait ends without the signal (None: never)
    created_subject: str = ""  # where its created event is published again to resume it …
    created_seq: int = 0  # … only if it is still this one (so one resume, whoever resumes it)


class JobSignalled(_JobEvent, frozen=True, kw_only=True, tag="signalled"):
    """A signal for a job (`POST /api/jobs/<id>/signals/<name>`), or the end of a wait for it
    (`timed_out`, published by the broker at the wait's `timeout_at`). Only the first message on a
    job's `jobs.<id>.signal.<name>` counts: a signal is sent once."""

    name: str
    payload: Any = None
    timed_out: bool = False


class JobRetrying(_JobEvent, frozen=True, kw_only=True, tag="retrying"):
    attempt: int  # the attempt that failed
    next_attempt: int
    delay_s: float
    error: str


class CancelRequested(_JobEvent, frozen=True, kw_only=True, tag="cancel_requested"):
    reason: str = ""


class JobCancelled(_JobEvent, frozen=True, kw_only=True, tag="cancelled"):
    attempt: int = 0  # 0: cancelled before it ever started
    reason: str = ""


class JobExpired(_JobEvent, frozen=True, kw_only=True, tag="expired"):
    waited_s: float
    queue_timeout_s: float


class WebhookAttempted(_JobEvent, frozen=True, kw_only=True, tag="webhook_attempted"):
    attempt: int  # delivery attempt, from 1
    url: str
    delivered: bool
    status: int | None = None  # the receiver's HTTP status, if it answered
    error: str | None = None
    final: bool = False  # no more attempts will be made
    duration_s: float = 0.0


class ArtifactStored(_JobEvent, frozen=True, kw_only=True, tag="artifact_stored"):
    attempt: int
    name: str
    size: int
    content_type: str
    sha256: str = ""


class JobDeleted(_JobEvent, frozen=True, kw_only=True, tag="deleted"):
    """An ended job deleted from history (`DELETE /api/jobs/<id>`, `POST /api/jobs/delete`): the
    history service drops its row and its stored events, every gateway forgets it, and from then on
    it is `404` everywhere. Its events stay in the job stream until they age out of its retention."""

    reason: str = ""


class ServiceLogged(_Tagged, frozen=True, kw_only=True, tag="service_logged"):
    """One Python log record of a Jobline service (the services' own live log stream)."""

    service: str
    instance: str
    level: str
    logger: str
    message: str


JobEvent = (
    JobScheduled
    | JobBlocked
    | JobCreated
    | JobWaiting
    | JobStarted
    | StepStarted
    | StepFinished
    | ProgressReported
    | LogLineWritten
    | JobCompleted
    | JobFailed
    | JobRetrying
    | JobSuspended
    | JobAwaitingSignal
    | JobSignalled
    | CancelRequested
    | JobCancelled
    | JobExpired
    | ArtifactStored
    | WebhookAttempted
    | JobDeleted
)
TerminalEvent = JobCompleted | JobFailed | JobCancelled | JobExpired

# What the log stream holds: job log lines (sourced from the job stream) and service records.
LogEntry = LogLineWritten | ServiceLogged

job_event_decoder: Final[msgspec.json.Decoder[JobEvent]] = msgspec.json.Decoder(JobEvent)
log_entry_decoder: Final[msgspec.json.Decoder[LogEntry]] = msgspec.json.Decoder(LogEntry)
encoder: Final = msgspec.json.Encoder()


def kind_of(event: _Tagged) -> str:
    return type(event).__struct_config__.tag  # type: ignore[return-value]


def tags_of(union: object) -> frozenset[str]:
    """The kinds of the event types in a union (`TerminalEvent`, `JobEvent`): the vocabulary must
    name exactly these (tests/test_contract.py)."""
    return frozenset(t.__struct_config__.tag for t in getattr(union, "__args__", ()))


class JobTypeInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a processor advertises about a job type it serves (in the types KV bucket)."""

    name: str
    description: str = ""
    steps: list[str] = []
    params: dict[str, Any] = {}  # example/default params, shown by clients
    params_schema: dict[str, Any] = {}  # JSON Schema of the params (forms are drawn from it); {}: none given
    timeout_s: float | None = None  # a job's run time limit when it sets none (the type's, else the processor's)


class LogQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Request to the logsink's history subject."""

    job_id: str | None = None
    service: str | None = None
    after_seq: int = 0
    limit: int = 500
    tail: bool = False  # the last `limit` rows (still in order) instead of the first after after_seq


class LogRow(msgspec.Struct, frozen=True, kw_only=True):
    seq: int  # sequence in the log stream
    ts: float
    level: str
    message: str
    job_id: str | None = None
    service: str | None = None
    logger: str | None = None
    attempt: int | None = None
    job_seq: int | None = None  # for a job line: its sequence in the job stream (its SSE id)


class LogPage(msgspec.Struct, frozen=True, kw_only=True):
    rows: list[LogRow]
    last_seq: int  # pass as after_seq to get the next page
    error: str | None = None
