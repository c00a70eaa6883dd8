"""The shared contract: names that cannot be injected, and events that evolve safely."""

from __future__ import annotations

import msgspec
import pytest

from jobline.contract.events import (
    JobCompleted,
    JobCreated,
    JobFailed,
    JobStarted,
    LogLineWritten,
    ProgressReported,
    ServiceLogged,
    StepFinished,
    StepStarted,
    encoder,
    job_event_decoder,
    kind_of,
    log_entry_decoder,
)
from jobline.contract.names import InvalidName, Names, is_valid_job_id
from jobline.contract.publishing import subject_of


@pytest.mark.parametrize("bad", ["a.b", "*", ">", "a b", "", "a\tb", "x" * 65, "jobs.>", "ü"])
def test_job_ids_that_could_inject_subject_tokens_are_refused(bad: str) -> None:
    assert not is_valid_job_id(bad)
    with pytest.raises(InvalidName):
        Names().job_timeline(bad)
    with pytest.raises(InvalidName):
        Names().job_created(bad, "demo")


@pytest.mark.parametrize("bad", ["Demo", "a.b", "*", ">", "", "-x"])
def test_job_types_are_single_lowercase_tokens(bad: str) -> None:
    with pytest.raises(InvalidName):
        Names().job_created("abc", bad)


def test_subjects_of_one_job_share_one_filter() -> None:
    names = Names()
    assert names.job_timeline("j1") == "jobs.j1.>"
    assert names.job_created("j1", "demo") == "jobs.j1.created.demo"
    assert names.created_filter("demo") == "jobs.*.created.demo"
    assert names.created_filter() == "jobs.*.created.*"
    assert names.created_filter("demo", 7) == "jobs.*.created.demo.p7"
    assert names.job_created("abc", "demo", 3) == "jobs.abc.created.demo.p3"
    assert names.created_queue("jobs.abc.created.p5") == ("p5", 0, None)
    assert names.created_queue("jobs.abc.created.demo.p5") == ("demo", 5, None)
    assert names.band_durable("demo", 0) == "queue-demo"
    assert names.band_durable("demo", 9) == "queue-demo-P9"
    with pytest.raises(InvalidName):
        names.job_created("abc", "demo", 10)
    assert names.all_job_events == "jobs.>"
    assert names.all_service_logs == "logs.>"
    assert not names.log_history_rpc.startswith(("jobs.", "logs.")), "request/reply must stay outside the streams"


def test_namespace_prefixes_every_name() -> None:
    names = Names("t1")
    assert names.jobs_stream == "T1_JOBS"
    assert names.job_timeline("j") == "t1.jobs.j.>"
    assert names.log_history_rpc.startswith("t1.")
    with pytest.raises(InvalidName):
        Names("a.b")


EVENTS = [
    JobCreated(ts=1.0, job_id="j", type="demo", params={"a": 1}, steps=["A"]),
    JobStarted(ts=1.0, job_id="j", attempt=1, worker="w"),
    StepStarted(ts=1.0, job_id="j", attempt=1, name="A"),
    StepFinished(ts=1.0, job_id="j", attempt=1, name="A", duration_s=0.5),
    ProgressReported(ts=1.0, job_id="j", attempt=1, fraction=0.5, current=1, total=2, message="half"),
    LogLineWritten(ts=1.0, job_id="j", attempt=1, level="info", message="<b>hi</b>"),
    JobCompleted(ts=1.0, job_id="j", attempt=1, result={"ok": True}),
    JobFailed(ts=1.0, job_id="j", attempt=1, error="boom"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_every_event_round_trips_through_json_with_its_kind_and_version(event: object) -> None:
    wire = encoder.encode(event)
    assert msgspec.json.decode(wire)["kind"] == kind_of(event)  # type: ignore[arg-type]
    assert msgspec.json.decode(wire)["v"] == 1
    assert job_event_decoder.decode(wire) == event


def test_terminal_events_share_one_subject_per_job() -> None:
    names = Names()
    assert subject_of(names, EVENTS[-1]) == subject_of(names, EVENTS[-2]) == "jobs.j.run.ended"
    assert subject_of(names, EVENTS[1]) == "jobs.j.run.started"
    assert names.run_chain("j") == "jobs.j.run.*"


def test_old_messages_without_newer_optional_fields_still_decode() -> None:
    old = b'{"kind":"created","ts":1,"job_id":"j","type":"demo"}'
    event = job_event_decoder.decode(old)
    assert isinstance(event, JobCreated) and event.params == {} and event.steps == [] and event.v == 1


def test_unknown_kinds_and_wrong_types_are_rejected() -> None:
    with pytest.raises(msgspec.ValidationError):
        job_event_decoder.decode(b'{"kind":"exploded","ts":1,"job_id":"j"}')
    with pytest.raises(msgspec.ValidationError):
        job_event_decoder.decode(b'{"kind":"started","ts":1,"job_id":"j","attempt":"one","worker":"w"}')


def test_log_stream_entries_decode_to_job_lines_or_service_records() -> None:
    record = ServiceLogged(ts=1.0, service="gateway", instance="g@h:1", level="info", logger="x", message="m")
    assert log_entry_decoder.decode(encoder.encode(record)) == record
    assert isinstance(log_entry_decoder.decode(encoder.encode(EVENTS[5])), LogLineWritten)


def test_the_vocabulary_names_exactly_the_event_kinds_and_the_terminal_ones() -> None:
    from jobline.contract.events import JobEvent, LogEntry, TerminalEvent, tags_of
    from jobline.contract.vocabulary import TERMINAL_KINDS, TERMINAL_STATUSES, EventKind, JobStatus

    assert tags_of(TerminalEvent) == TERMINAL_KINDS
    assert tags_of(JobEvent) | tags_of(LogEntry) == set(EventKind)
    assert {str(s) for s in TERMINAL_STATUSES} == {str(k) for k in TERMINAL_KINDS} < set(JobStatus)
