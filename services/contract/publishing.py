"""Where each event goes: the subject and the headers that make the broker enforce our rules."""

from __future__ import annotations

from typing import Final

from .events import (
    ArtifactStored,
    CancelRequested,
    JobBlocked,
    JobCancelled,
    JobCompleted,
    JobCreated,
    JobEvent,
    JobExpired,
    JobFailed,
    JobRetrying,
    JobScheduled,
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
    BLOCKED,
    CANCEL,
    CREATED,
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


def subject_of(names: Names, event: JobEvent) -> str:
    match event:
        case JobScheduled():
            return names.job_event(event.job_id, SCHEDULED)
        case JobBlocked():
            return names.job_event(event.job_id, BLOCKED)
        case JobCreated(job_id=job_id, type=job_type, priority=priority):
            return names.job_created(job_id, job_type, priority)
        case JobWaiting():
            return names.job_event(event.job_id, WAITING)
        case JobStarted():
            return names.run_event(event.job_id, STARTED)
        case JobRetrying():
            return names.run_event(event.job_id, RETRYING)
        case JobSuspended():
            return names.run_event(event.job_id, SUSPENDED)
        case StepStarted() | StepFinished():
            return names.job_event(event.job_id, STEP)
        case ProgressReported():
            return names.job_event(event.job_id, PROGRESS)
        case LogLineWritten():
            return names.job_event(event.job_id, LOG)
        case JobCompleted() | JobFailed() | JobCancelled() | JobExpired():
            return names.run_event(event.job_id, ENDED)
        case CancelRequested():
            return names.job_event(event.job_id, CANCEL)
        case ArtifactStored():
            return names.job_event(event.job_id, ARTIFACT)
        case WebhookAttempted():
            return names.job_event(event.job_id, WEBHOOK)
    raise TypeError(f"not a job event: {event!r}")


def created_msg_id(job_id: str) -> str:
    """`Nats-Msg-Id` of a job's created event: a retried submit never creates the job twice."""
    return f"{job_id}:{CREATED}"
