"""Where each event goes: the subject and the headers that make the broker enforce our rules."""

from __future__ import annotations

from typing import Final

from .events import (
    ArtifactStored,
    CancelRequested,
    JobAwaitingSignal,
    JobBlocked,
    JobCancelled,
    JobCompleted,
    JobCreated,
    JobDeleted,
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
from .names import (
    ARTIFACT,
    AWAITING,
    BLOCKED,
    CANCEL,
    CREATED,
    DELETED,
    ENDED,
    LOG,
    PROGRESS,
    RETRYING,
    SCHEDULED,
    STARTED,
    STEP,
    SUSPENDED,
    WAITING,
    WEBHOOK,
    Names,
    owner_lane,
)

# JetStream's error code for a failed expected-last-subject-sequence check.
WRONG_LAST_SEQUENCE_ERR: Final = 10071


def expect_last(subject: str, last_seq: int) -> dict[str, str]:
    """Headers for a write stored only if the last message on `subject` (a filter may have
    wildcards) is still `last_seq` (0: there is none); else JetStream refuses it (10071)."""
    return {"Nats-Expected-Last-Subject-Sequence": str(last_seq),
            "Nats-Expected-Last-Subject-Sequence-Subject": subject}


def fenced(names: Names, job_id: str, last_seq: int) -> dict[str, str]:
    """Headers for a write to the job's run chain: stored only if the chain's last message is still
    `last_seq` (0: the chain is empty). Every started, retrying and terminal event uses them."""
    return expect_last(names.run_chain(job_id), last_seq)


# Each event type's last subject token: on the job's own subjects, or on its run chain.
_JOB_KINDS: Final[dict[type, str]] = {
    JobScheduled: SCHEDULED, JobBlocked: BLOCKED, JobWaiting: WAITING, StepStarted: STEP, StepFinished: STEP,
    ProgressReported: PROGRESS, LogLineWritten: LOG, CancelRequested: CANCEL, ArtifactStored: ARTIFACT,
    WebhookAttempted: WEBHOOK, JobDeleted: DELETED,
}
_RUN_KINDS: Final[dict[type, str]] = {
    JobStarted: STARTED, JobRetrying: RETRYING, JobSuspended: SUSPENDED, JobAwaitingSignal: AWAITING,
    JobCompleted: ENDED, JobFailed: ENDED, JobCancelled: ENDED, JobExpired: ENDED,
}


def subject_of(names: Names, event: JobEvent) -> str:
    kind = _JOB_KINDS.get(type(event))
    if kind is not None:
        return names.job_event(event.job_id, kind)
    kind = _RUN_KINDS.get(type(event))
    if kind is not None:
        return names.run_event(event.job_id, kind)
    match event:
        case JobCreated(job_id=job_id, type=job_type, priority=priority, owner=owner):
            return names.job_created(job_id, job_type, priority, owner_lane(owner))
        case JobSignalled():
            return names.job_signal(event.job_id, event.name)
    raise TypeError(f"not a job event: {event!r}")


def created_msg_id(job_id: str) -> str:
    """`Nats-Msg-Id` of a job's created event: a retried submit never creates the job twice."""
    return f"{job_id}:{CREATED}"
