"""The timeline oracle: read a job's whole timeline from the stream and check its invariants."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from jobline.contract.events import (
    TERMINAL_KINDS,
    JobEvent,
    JobStarted,
    ProgressReported,
    StepFinished,
    StepStarted,
    job_event_decoder,
    kind_of,
)
from jobline.contract.names import Names


@dataclass(frozen=True)
class Recorded:
    seq: int
    subject: str
    event: JobEvent
    stored_at: float = 0.0  # when the stream stored it (unix seconds)

    @property
    def kind(self) -> str:
        return kind_of(self.event)


async def read_timeline(js: JetStreamContext, names: Names, job_id: str, timeout: float = 10.0) -> list[Recorded]:
    """Everything stored under `jobs.<id>.>`, in stream order."""
    sub = await js.subscribe(names.job_timeline(job_id), stream=names.jobs_stream, ordered_consumer=True,
                             deliver_policy=DeliverPolicy.ALL)
    out: list[Recorded] = []
    try:
        info = await sub.consumer_info()
        if not info.num_pending and not (info.delivered and info.delivered.consumer_seq):
            return out
        async with asyncio.timeout(timeout):
            while True:
                msg = await sub.next_msg(timeout=timeout)
                out.append(Recorded(msg.metadata.sequence.stream, msg.subject, job_event_decoder.decode(msg.data),
                                    msg.metadata.timestamp.timestamp()))
                if msg.metadata.num_pending == 0:
                    break
    finally:
        await sub.unsubscribe()
    return out


def check_timeline(timeline: list[Recorded]) -> None:
    """Exactly one terminal event, and it is last; attempts numbered without gaps; progress never
    goes back within an attempt; steps start and finish in order."""
    assert timeline, "empty timeline"
    # A delayed job: scheduled, then created when it fired; a job of a flow that waited: blocked, then
    # created when released (or cancelled while it waited, or failed unrun when what it waited for failed).
    first = 1 if timeline[0].kind in ("scheduled", "blocked") else 0
    allowed = {"created", "cancel_requested", "cancelled", "failed"} if first else {"created"}
    assert timeline[first].kind in allowed, f"first event is {timeline[first].kind}"
    firsts = [r for r in timeline if r.kind == "created" and not getattr(r.event, "resumed", 0)]
    assert len(firsts) <= 1, "created more than once"  # (a job that spawned children is published again to resume)
    resumes = [r.event.resumed for r in timeline if r.kind == "created" and getattr(r.event, "resumed", 0)]
    assert resumes == list(range(1, len(resumes) + 1)), f"resumed {resumes}"
    seqs = [r.seq for r in timeline]
    assert seqs == sorted(set(seqs)), "sequences not strictly increasing"
    terminals = [r for r in timeline if r.kind in TERMINAL_KINDS]
    assert len(terminals) == 1, f"{len(terminals)} terminal events"
    end = terminals[0]
    for late in (r for r in timeline if r.seq > end.seq):
        # Webhook deliveries follow the end by design (and a signal wait's timeout the broker fired as the
        # job ended); nothing of any attempt may.
        assert late.kind in ("webhook_attempted", "signalled"), f"{late.kind} after the terminal event"
    attempts = [r.event.attempt for r in timeline if isinstance(r.event, JobStarted)]
    assert attempts == list(range(1, len(attempts) + 1)), f"attempts {attempts}"
    # Every attempt's events are conditional on the run chain, so none lands after the next
    # attempt's `started` (a superseded worker is fenced out by the broker).
    superseded_at = {r.event.attempt - 1: r.seq for r in timeline if isinstance(r.event, JobStarted) and r.event.attempt > 1}
    for r in timeline:
        attempt = getattr(r.event, "attempt", 0)
        if attempt in superseded_at and r.kind != "webhook_attempted":  # its attempt counts deliveries
            assert r.seq < superseded_at[attempt], f"attempt {attempt}'s {r.kind} at {r.seq} after attempt {attempt + 1} started"
    last_fraction: dict[int, float] = {}
    open_step: dict[int, str | None] = {}
    for r in timeline:
        e = r.event
        if isinstance(e, ProgressReported) and e.fraction is not None:
            assert e.fraction >= last_fraction.get(e.attempt, 0.0), f"progress went back at seq {r.seq}"
            last_fraction[e.attempt] = e.fraction
        if isinstance(e, StepStarted):
            assert open_step.get(e.attempt) is None, f"step {e.name} started inside another at seq {r.seq}"
            open_step[e.attempt] = e.name
        if isinstance(e, StepFinished):
            assert open_step.get(e.attempt) == e.name, f"step {e.name} finished without starting at seq {r.seq}"
            open_step[e.attempt] = None
