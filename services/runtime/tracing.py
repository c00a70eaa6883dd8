"""OpenTelemetry traces across the services: a job's trace begins at its submission (continuing the
submitting request's W3C `traceparent`, or a new one) and goes with the job in its created event to
the processor, whose spans (queue wait, the attempt, each step) join it.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set: then
`tracer(service)` is None, the SDK is not even imported, and a job's path costs one `is None` test
per place. On, spans go out over OTLP/HTTP in batches (the SDK reads its own `OTEL_*` variables:
headers, timeouts, sampling). Tests install their own provider (an in-memory exporter) with `use`.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

TRACEPARENT = re.compile(r"^00-(?!0{32})([0-9a-f]{32})-(?!0{16})([0-9a-f]{16})-([0-9a-f]{2})$")
_installed: Any = None  # a TracerProvider installed by `use` (tests)
_tracers: dict[str, Tracer] = {}


def enabled() -> bool:
    return _installed is not None or bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                                          or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def use(provider: Any) -> None:
    """Send every service's spans to this SDK TracerProvider (None: back to the environment's choice)."""
    global _installed
    _installed = provider
    _tracers.clear()


def tracer(service: str) -> Tracer | None:
    """The service's tracer, or None when tracing is off."""
    if not enabled():
        return None
    found = _tracers.get(service)
    if found is None:
        if _installed is not None:
            found = _installed.get_tracer(f"jobline.{service}")
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            provider = TracerProvider(resource=Resource.create({"service.name": f"jobline-{service}"}))
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            found = provider.get_tracer(f"jobline.{service}")
        _tracers[service] = found
    return found


def valid_traceparent(value: str | None) -> str | None:
    """The header if it is a W3C traceparent (version 00) we can continue, else None."""
    if value is None:
        return None
    value = value.strip().lower()
    return value if TRACEPARENT.fullmatch(value) else None


def trace_id_of(traceparent: str | None) -> str | None:
    return traceparent[3:35] if traceparent else None


def context_of(traceparent: str | None) -> Any:
    """An OpenTelemetry context whose parent is that span (None: a new trace)."""
    if traceparent is None:
        return None
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    match = TRACEPARENT.fullmatch(traceparent)
    assert match is not None
    parent = SpanContext(trace_id=int(match[1], 16), span_id=int(match[2], 16), is_remote=True,
                         trace_flags=TraceFlags(int(match[3], 16)))
    return set_span_in_context(NonRecordingSpan(parent))


def traceparent_of(span: Any) -> str:
    """The W3C traceparent naming this span (what the job carries on)."""
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def current_traceparent() -> str | None:
    """The traceparent of the span running now, if it is a valid one (tracing on only)."""
    from opentelemetry.trace import get_current_span

    span = get_current_span()
    return traceparent_of(span) if span.get_span_context().is_valid else None


def annotate(key: str, value: str) -> None:
    """Set an attribute on the span running now (tracing on only: callers test their tracer first)."""
    from opentelemetry.trace import get_current_span

    get_current_span().set_attribute(key, value)
