"""An attempt's spans, when tracing is on (runtime/tracing.py): the time the job waited in its queue
(from its creation to this start), the attempt itself, and each step the handler names — children of
the span that submitted the job, so a job is one trace from the gateway to here."""

from __future__ import annotations

import time
from typing import Any

from jobline.contract.events import JobCreated
from jobline.runtime.tracing import context_of, valid_traceparent


class AttemptSpans:
    def __init__(self, tracer: Any, created: JobCreated, attempt: int, worker: str):
        from opentelemetry.trace import set_span_in_context

        self._tracer = tracer
        parent = context_of(valid_traceparent(created.traceparent))
        attributes = {"jobline.job.id": created.job_id, "jobline.job.type": created.type, "jobline.attempt": attempt}
        now = time.time_ns()
        waited = tracer.start_span("queue wait", context=parent, start_time=int(created.ts * 1e9),
                                   attributes=attributes)
        waited.end(end_time=max(now, int(created.ts * 1e9)))
        self._attempt = tracer.start_span("attempt", context=parent, start_time=now,
                                          attributes={**attributes, "jobline.worker": worker})
        self._inside = set_span_in_context(self._attempt)
        self._step: Any = None

    def step(self, name: str) -> None:
        if self._step is not None:
            self._step.end()
        self._step = self._tracer.start_span(f"step {name}", context=self._inside)

    def publishing(self, kind: str) -> Any:
        """A span around publishing the attempt's end (`with spans.publishing("completed"):`)."""
        return self._tracer.start_as_current_span(f"publish {kind}", context=self._inside)

    def end(self, outcome: str) -> None:
        from opentelemetry.trace import Status, StatusCode

        if self._step is not None:
            self._step.end()
            self._step = None
        self._attempt.set_attribute("jobline.outcome", outcome)
        if outcome.startswith("failed") or outcome in ("expired", "timeout"):
            self._attempt.set_status(Status(StatusCode.ERROR, outcome))
        self._attempt.end()
