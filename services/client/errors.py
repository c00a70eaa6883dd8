"""What the client raises: a problem the gateway answered, or a job that did not complete."""

from __future__ import annotations

from typing import Any

from jobline.contract.job_state import JobState


class JoblineError(Exception):
    """Base of every error this client raises (besides the builtin TimeoutError of `wait`)."""


class ApiError(JoblineError):
    """The gateway answered with an RFC 9457 problem (4xx, or a 5xx that outlived the retries)."""

    def __init__(self, status: int, title: str, detail: str, problem: dict[str, Any] | None = None):
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.status = status
        self.title = title
        self.detail = detail
        self.problem = problem or {}


class Unreachable(JoblineError):
    """The gateway could not be reached (or kept answering 5xx) through every retry."""


class JobError(JoblineError):
    """A job ended without completing; `state` is its final state."""

    def __init__(self, state: JobState):
        super().__init__(f"job {state.id} ({state.type}) {state.status}: {state.error or ''}".rstrip(": "))
        self.state = state


class JobFailed(JobError):
    """The job failed (its error and reason are in `state.error` and `state.error_reason`)."""


class JobCancelled(JobError):
    """The job was cancelled."""


class JobExpired(JobError):
    """The job waited longer than its queue timeout and never ran."""


def error_for(state: JobState) -> JobError:
    match state.status:
        case "cancelled":
            return JobCancelled(state)
        case "expired":
            return JobExpired(state)
        case _:
            return JobFailed(state)
