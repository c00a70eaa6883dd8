"""What a client sends to create jobs: one job, a batch of them, a flow (a tree of them). The
gateway reads these bodies, the conductor reads jobs of the same shape (a schedule's template, a
spawned child), and the client library writes them."""

from __future__ import annotations

import re
from typing import Any, Final, Literal

import msgspec

from .names import PRIORITY_MIN
from .vocabulary import ChildFailurePolicy

# Whose a job is, and its labels: what lists, searches and (later) tokens and fairness go by.
OWNER_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}")  # a tenant or user id, as the app names it
TAG_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_TAGS: Final = 16


# A job with a unique_key: `active` — while a job of that key (and type) has not ended, a submission
# answers it instead of making another; `throttle` — one job per key per window, the window's first;
# `debounce` — the job starts a window after the last submission of its key, with that one's params.
UniqueMode = Literal["active", "throttle", "debounce"]
MAX_UNIQUE_KEY: Final = 255
MAX_UNIQUE_WINDOW_S: Final = 86400.0


class JobSubmission(msgspec.Struct, forbid_unknown_fields=True):
    """`POST /api/jobs`: a job."""

    type: str
    params: dict[str, Any] = {}
    timeout_s: float | None = None  # run time limit (default: the type's, else the processor's)
    max_attempts: int | None = None
    queue_timeout_s: float | None = None  # pending longer than this: ends `expired` without running
    webhook_url: str | None = None  # POSTed to when the job ends (Standard Webhooks, signed)
    run_at: str | None = None  # RFC 3339: stays `scheduled` until then
    delay_s: float | None = None  # or: this many seconds from now
    concurrency_key: str | None = None  # with the type's per-key limit: e.g. the user id (queue controls)
    priority: int = PRIORITY_MIN  # PRIORITY_MIN..PRIORITY_MAX: with a backlog, higher starts first
    owner: str | None = None  # whose job it is (a tenant or user id: OWNER_PATTERN)
    tags: list[str] = []  # a few short labels (TAG_PATTERN, at most MAX_TAGS)
    unique_key: str | None = None  # one job of the type per key at a time (`unique_mode` says how): POST /api/jobs only
    unique_mode: UniqueMode = "active"
    unique_window_s: float | None = None  # throttle and debounce: the window


class BatchJob(JobSubmission, forbid_unknown_fields=True):
    """A job of a batch: what `POST /api/jobs` takes, and its own optional Idempotency-Key."""

    idempotency_key: str | None = None

    def job(self) -> JobSubmission:
        """The job alone, as POST /api/jobs would take it (what its idempotency_key stands for)."""
        return JobSubmission(**{name: getattr(self, name) for name in JobSubmission.__struct_fields__})


class BatchSubmission(msgspec.Struct, forbid_unknown_fields=True):
    """`POST /api/batches`."""

    jobs: list[BatchJob]


class FlowChild(msgspec.Struct, forbid_unknown_fields=True):
    """A job of a flow below its root: what `POST /api/jobs` takes (`job`), its name among its
    siblings, the siblings it waits for, its weight in its parent's progress, its own children."""

    job: JobSubmission
    name: str | None = None
    depends_on: list[str] = []
    weight: float = 1.0
    children: list[FlowChild] = []
    on_child_failure: ChildFailurePolicy = ChildFailurePolicy.FAIL


class FlowSubmission(msgspec.Struct, forbid_unknown_fields=True):
    """`POST /api/flows`: the root runs once every child has ended."""

    job: JobSubmission
    children: list[FlowChild]
    on_child_failure: ChildFailurePolicy = ChildFailurePolicy.FAIL

    def job_count(self) -> int:
        """How many jobs the flow makes (counted without recursion: a body may nest deeply)."""
        count, waiting = 1, list(self.children)
        while waiting:
            count += 1
            waiting.extend(waiting.pop().children)
        return count


# Not strict, as Litestar reads the body of POST /api/jobs: `"max_attempts": 23.0` (an integer in JSON
# Schema's sense) is taken alike wherever a job is given (a flow, a schedule's template, a spawned child).
submission_decoder = msgspec.json.Decoder(JobSubmission, strict=False)
flow_decoder = msgspec.json.Decoder(FlowSubmission, strict=False)


def as_submission(job: dict[str, Any]) -> JobSubmission:
    """A job given as plain data (a schedule's template, a spawned child) as a submission;
    msgspec.ValidationError naming the field when it is not one."""
    return msgspec.convert(job, JobSubmission, strict=False)
