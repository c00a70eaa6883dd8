"""Where each event goes: the subject and the headers that make the broker enforce our rules."""

from __future__ import annotations

from typing import Final

from .events import (
    JobCompleted,
    JobCreated,
    JobEvent,
    JobFailed,
    JobStarted,
    LogLineWritten,
    ProgressReported,
    StepFinished,
    StepStarted,
)
from .names import CREATED, ENDED, LOG, PROGRESS, STARTED, STEP, Names

# Publishing a terminal event with this header succeeds only if the job has no terminal event yet.
ONLY_IF_FIRST: Final = {"Nats-Expected-Last-Subject-Sequence": "0"}
# JetStream's error code for a failed expected-last-subject-sequence check.
WRONG_LAST_SEQUENCE_ERR: Final = 10071


def subject_of(names: Names, event: JobEvent) -> str:
    match event:
        case JobCreated(job_id=job_id, type=job_type):
            return names.job_created(job_id, job_type)
        case JobStarted():
            return names.job_event(event.job_id, STARTED)
        case StepStarted() | StepFinished():
            return names.job_event(event.job_id, STEP)
        case ProgressReported():
            return names.job_event(event.job_id, PROGRESS)
        case LogLineWritten():
            return names.job_event(event.job_id, LOG)
        case JobCompleted() | JobFailed():
            return names.job_event(event.job_id, ENDED)
    raise TypeError(f"not a job event: {event!r}")


def created_msg_id(job_id: str) -> str:
    """`Nats-Msg-Id` of a job's created event: a retried submit never creates the job twice."""
    return f"{job_id}:{CREATED}"
