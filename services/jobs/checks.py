"""Every check a job must pass before anything is stored: one place for a job alone, each job of a
batch or a flow, a schedule's template and a child a running job spawns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from jobline.contract.events import encoder
from jobline.contract.names import PRIORITY_MAX, PRIORITY_MIN, is_valid_job_type
from jobline.contract.submissions import (
    MAX_TAGS,
    MAX_UNIQUE_KEY,
    MAX_UNIQUE_WINDOW_S,
    OWNER_PATTERN,
    TAG_PATTERN,
    JobSubmission,
)

from .catalogue import Catalogue
from .delays import run_time
from .errors import Invalid, Malformed, TooLarge
from .webhook_targets import WebhookTargetRefused, check_target

# A job: its JSON as POST /api/jobs takes it. Its params travel in one NATS message (1 MB at most by
# default, with room for the event around them); big inputs are uploads.
MAX_JOB_BYTES: Final = 256 * 1024
MAX_CONCURRENCY_KEY: Final = 256  # characters
MAX_WEBHOOK_URL: Final = 2048  # characters
MAX_IDEMPOTENCY_KEY: Final = 255  # characters


@dataclass(frozen=True)
class JobLimits:
    """The configurable bounds a job is held to (from the service's settings)."""

    max_timeout_s: float = 86400.0  # timeout_s and queue_timeout_s
    max_attempts: int = 100
    max_delay_s: float = 366 * 86400.0  # how far ahead run_at / delay_s may be (within the stream's retention)
    webhook_secrets: tuple[str, ...] = ()  # none: webhooks are off
    webhook_allow: tuple[str, ...] = ()  # hosts or CIDRs admitted although private


def check_idempotency_key(key: str | None) -> None:
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise Malformed(f"the key must have 1 to {MAX_IDEMPOTENCY_KEY} characters", title="Invalid Idempotency-Key",
                        key="Idempotency-Key", source="header", message="bad length")


def _check_labels(submission: JobSubmission) -> None:
    if submission.owner is not None and not OWNER_PATTERN.fullmatch(submission.owner):
        raise Invalid("owner is 1 to 128 letters, digits and _ . : @ - (starting with a letter or digit)",
                      title="Invalid owner", key="owner", message="not an owner id")
    if len(submission.tags) > MAX_TAGS or len(set(submission.tags)) != len(submission.tags):
        raise Invalid(f"at most {MAX_TAGS} tags, each once", title="Invalid tags", key="tags", message="too many")
    for index, tag in enumerate(submission.tags):
        if not TAG_PATTERN.fullmatch(tag):
            raise Invalid(f"tags[{index}] is not a tag: 1 to 64 letters, digits, _ and -", title="Invalid tags",
                          key=f"tags[{index}]", message="not a tag")


class JobChecks:
    def __init__(self, catalogue: Catalogue, limits: JobLimits):
        self.catalogue = catalogue
        self.limits = limits

    async def check(self, submission: JobSubmission, idempotency_key: str | None = None) -> float | None:
        """Every check a job must pass before anything is stored (a JobError naming the field when
        one fails); returns when it is to run (None: now)."""
        types = self.catalogue.types
        if not is_valid_job_type(submission.type) or submission.type not in types:
            known = ", ".join(sorted(types)) or "none yet: is a processor running?"
            raise Invalid(f"job type {submission.type!r} is not served by any processor (known: {known})",
                          title="Unknown job type", key="type", message="unknown job type")
        self._check_limits(submission)
        size = len(encoder.encode(submission))
        if size > MAX_JOB_BYTES:
            raise TooLarge(f"the job is {size} bytes as JSON; a job is at most {MAX_JOB_BYTES} (big inputs are "
                           "uploads: POST /api/uploads)", title="Job too large", key="params",
                           message=f"at most {MAX_JOB_BYTES} bytes")
        mismatches = self.catalogue.params_errors(submission.type, submission.params)
        if mismatches:
            where, what = mismatches[0]
            raise Invalid(f"the params do not fit the type's schema: {what}" + (f" (at params.{where})" if where else ""),
                          title="Invalid params", errors=[
                              {"key": f"params.{w}" if w else "params", "source": "body", "message": m}
                              for w, m in mismatches])
        key = submission.concurrency_key
        if key is not None and not 0 < len(key) <= MAX_CONCURRENCY_KEY:
            raise Invalid(f"concurrency_key must have 1 to {MAX_CONCURRENCY_KEY} characters",
                          title="Invalid concurrency key", key="concurrency_key", message="bad length")
        if not PRIORITY_MIN <= submission.priority <= PRIORITY_MAX:
            raise Invalid(f"priority must be from {PRIORITY_MIN} to {PRIORITY_MAX} (higher starts first)",
                          title="Invalid priority", key="priority", message="out of range")
        _check_labels(submission)
        _check_unique(submission)
        if submission.webhook_url is not None:
            await self.check_webhook(submission.webhook_url)
        check_idempotency_key(idempotency_key)
        return run_time(submission.run_at, submission.delay_s, self.limits.max_delay_s)

    async def check_now(self, submission: JobSubmission) -> None:
        """`check` for a job that runs when something else says (a schedule's tick, a flow's turn):
        no run_at or delay_s of its own, no unique_key."""
        refuse_unique(submission)
        if submission.run_at is not None or submission.delay_s is not None:
            raise Invalid("it runs at its tick or turn: no run_at or delay_s", title="Invalid job", key="delay_s"
                          if submission.delay_s is not None else "run_at", message="not allowed here")
        await self.check(submission)

    def _check_limits(self, submission: JobSubmission) -> None:
        limit = self.limits.max_timeout_s
        for name in ("timeout_s", "queue_timeout_s"):
            value = getattr(submission, name)
            if value is not None and not 0 < value <= limit:
                raise Invalid(f"{name} must be above 0 and at most {limit:g} seconds", title="Invalid limit", key=name,
                              message=f"must be in (0, {limit:g}]")
        attempts = submission.max_attempts
        if attempts is not None and not 1 <= attempts <= self.limits.max_attempts:
            raise Invalid(f"max_attempts must be from 1 to {self.limits.max_attempts}", title="Invalid limit",
                          key="max_attempts", message="out of range")

    async def check_webhook(self, url: str) -> None:
        if not self.limits.webhook_secrets:
            raise Invalid("this service has no JOBLINE_WEBHOOK_SECRETS to sign webhooks with", title="Webhooks are off",
                          key="webhook_url", message="webhooks are not configured")
        if len(url) > MAX_WEBHOOK_URL:
            raise Invalid("the URL is too long", title="Webhook refused", key="webhook_url")
        try:
            await check_target(url, self.limits.webhook_allow)
        except WebhookTargetRefused as exc:
            raise Invalid(str(exc), title="Webhook refused", key="webhook_url") from exc


def refuse_unique(submission: JobSubmission) -> None:
    """One job per key is decided for one submission at a time (`POST /api/jobs`): not in a batch, a
    flow or a schedule."""
    if submission.unique_key is not None:
        raise Invalid("unique_key is taken by POST /api/jobs only (not in a batch, flow or schedule)",
                      title="Invalid job", key="unique_key", message="not allowed here")


def _check_unique(submission: JobSubmission) -> None:
    key, mode, window = submission.unique_key, submission.unique_mode, submission.unique_window_s
    if key is None:
        if mode != "active" or window is not None:
            raise Invalid("unique_mode and unique_window_s go with a unique_key", title="Invalid unique key",
                          key="unique_key", message="missing")
        return
    if not 0 < len(key) <= MAX_UNIQUE_KEY or any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise Invalid(f"unique_key must have 1 to {MAX_UNIQUE_KEY} characters, none of them a control character",
                      title="Invalid unique key", key="unique_key", message="bad key")
    if mode == "active":
        if window is not None:
            raise Invalid("unique_window_s is for throttle and debounce (active holds until the job ends)",
                          title="Invalid unique key", key="unique_window_s", message="not for active")
        return
    if window is None or not 0 < window <= MAX_UNIQUE_WINDOW_S:
        raise Invalid(f"{mode} needs unique_window_s above 0 and at most {MAX_UNIQUE_WINDOW_S:g} seconds",
                      title="Invalid unique key", key="unique_window_s", message="out of range")
    if mode == "debounce" and (submission.run_at is not None or submission.delay_s is not None):
        raise Invalid("a debounced job starts its window after the last submission: no run_at or delay_s",
                      title="Invalid unique key", key="delay_s" if submission.delay_s is not None else "run_at",
                      message="not with debounce")
