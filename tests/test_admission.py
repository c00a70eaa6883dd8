"""The processor's admission decision (processor/admission.py), without NATS: every way a delivered
job is run, ended unrun, or found ended already."""

from __future__ import annotations

import msgspec

from jobline.contract.events import (
    JobCancelled,
    JobCompleted,
    JobCreated,
    JobExpired,
    JobFailed,
    JobRetrying,
    JobStarted,
    JobSuspended,
)
from jobline.contract.vocabulary import FailureReason
from jobline.processor.admission import AlreadyEnded, Defaults, End, Run, admit, max_attempts_of, needs_history
from jobline.processor.registry import TaskSpec

NOW = 1_000_000.0
DEFAULTS = Defaults(max_attempts=3, queue_timeout_s=60.0)


class Params(msgspec.Struct):
    height: int = 360


def spec(**options: object) -> TaskSpec:
    return TaskSpec(name="t", handler=lambda ctx: None, params_type=Params, **options)  # type: ignore[arg-type]


def created(**fields: object) -> JobCreated:
    return JobCreated(**{"ts": NOW - 1, "job_id": "j1", "type": "t", "params": {"height": 720}, **fields})  # type: ignore[arg-type]


def test_a_first_delivery_runs_as_attempt_1_with_its_params_converted() -> None:
    decision = admit(created(), spec(), DEFAULTS, NOW)
    assert decision == Run(attempt=1, max_attempts=3, params=Params(height=720))
    assert not needs_history(created(), delivered=1) and needs_history(created(), delivered=2)
    assert needs_history(created(resumed=1), delivered=1)


def test_attempts_are_counted_from_the_run_chain_not_the_delivery_count() -> None:
    for last, attempt in [(None, 1), (JobStarted(ts=NOW, job_id="j1", attempt=1, worker="w"), 2),
                          (JobRetrying(ts=NOW, job_id="j1", attempt=2, next_attempt=3, delay_s=1, error="e"), 3),
                          (JobSuspended(ts=NOW, job_id="j1", attempt=1, children=[]), 2)]:
        decision = admit(created(max_attempts=5), spec(), DEFAULTS, NOW, last=last)
        assert isinstance(decision, Run) and decision.attempt == attempt, last


def test_a_job_that_ended_while_away_is_only_signalled_again() -> None:
    end = JobCompleted(ts=NOW, job_id="j1", attempt=1, result=None)
    assert admit(created(), spec(), DEFAULTS, NOW, last=end, cancel_requested=True) == AlreadyEnded(end)


def test_a_cancel_requested_while_it_was_away_ends_it_cancelled() -> None:
    decision = admit(created(), spec(), DEFAULTS, NOW, last=JobStarted(ts=NOW, job_id="j1", attempt=1, worker="w"),
                     cancel_requested=True)
    assert isinstance(decision, End) and isinstance(decision.event, JobCancelled) and decision.attempt == 2


def test_a_job_whose_worker_died_each_time_is_failed_not_retried_for_ever() -> None:
    last = JobStarted(ts=NOW, job_id="j1", attempt=3, worker="w")
    decision = admit(created(), spec(), DEFAULTS, NOW, last=last)
    assert isinstance(decision, End) and isinstance(decision.event, JobFailed)
    assert decision.event.reason == FailureReason.ATTEMPTS_EXHAUSTED and decision.event.attempt == 3
    # A job's own limit, then its type's, then the processor's; a resumed parent gets one run more.
    assert max_attempts_of(created(max_attempts=7), spec(max_attempts=5), DEFAULTS) == 7
    assert max_attempts_of(created(), spec(max_attempts=5), DEFAULTS) == 5
    assert max_attempts_of(created(resumed=2), spec(), DEFAULTS) == 5


def test_a_job_that_waited_past_its_queue_timeout_expires_unrun_on_its_first_attempt_only() -> None:
    old = created(ts=NOW - 120)
    decision = admit(old, spec(), DEFAULTS, NOW)
    assert isinstance(decision, End) and isinstance(decision.event, JobExpired) and decision.event.waited_s == 120
    retrying = JobRetrying(ts=NOW, job_id="j1", attempt=1, next_attempt=2, delay_s=1, error="e")
    retried = admit(old, spec(), DEFAULTS, NOW, last=retrying)
    assert isinstance(retried, Run)  # a retry is not expired by the time its first attempt waited
    assert isinstance(admit(created(ts=NOW - 120, queue_timeout_s=300), spec(), DEFAULTS, NOW), Run)


def test_an_unknown_type_or_params_that_do_not_fit_fail_it_unrun() -> None:
    unknown = admit(created(), None, DEFAULTS, NOW)
    assert isinstance(unknown, End) and unknown.event.reason == FailureReason.UNKNOWN_TYPE  # type: ignore[union-attr]
    bad = admit(created(params={"height": "tall"}), spec(), DEFAULTS, NOW)
    assert isinstance(bad, End) and bad.event.reason == FailureReason.INVALID_PARAMS  # type: ignore[union-attr]
    assert "height" in bad.event.error  # type: ignore[union-attr, operator]
