"""Create or update the streams idempotently at start, reporting configuration drift clearly."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError, ServiceUnavailableError

from jobline.contract.names import Names
from jobline.contract.streams import RetentionSettings, all_stream_configs

log = logging.getLogger(__name__)
T = TypeVar("T")

# Fields that define a stream's behaviour and that we own; the server fills in the rest.
_COMPARED = (
    "subjects", "retention", "storage", "discard", "max_age", "max_bytes", "max_msgs", "max_msgs_per_subject",
    "num_replicas", "duplicate_window", "allow_direct", "allow_msg_schedules", "allow_atomic",
)


def _normalise(field: str, value: Any) -> Any:
    if hasattr(value, "value"):
        return value.value
    if field in ("max_age", "duplicate_window") and value is not None:
        return round(float(value), 3)
    return value


def config_drift(desired: StreamConfig, actual: StreamConfig) -> dict[str, tuple[Any, Any]]:
    """{field: (actual, desired)} for every owned field that differs."""
    drift: dict[str, tuple[Any, Any]] = {}
    for field in _COMPARED:
        want = _normalise(field, getattr(desired, field))
        have = _normalise(field, getattr(actual, field))
        if want is not None and want != have:
            drift[field] = (have, want)
    want_sources = sorted((s.name, s.filter_subject) for s in desired.sources or [])
    have_sources = sorted((s.name, s.filter_subject) for s in actual.sources or [])
    if want_sources != have_sources:
        drift["sources"] = (have_sources, want_sources)
    return drift


async def ensure_stream(js: JetStreamContext, desired: StreamConfig) -> None:
    try:
        info = await js.stream_info(desired.name)  # type: ignore[arg-type]
    except NotFoundError:
        await js.add_stream(desired)
        log.info("created stream %s", desired.name)
        return
    drift = config_drift(desired, info.config)
    if not drift:
        return
    details = ", ".join(f"{k}: {have!r} -> {want!r}" for k, (have, want) in drift.items())
    log.warning("stream %s differs from the settings (%s); updating it", desired.name, details)
    # Raises a clear API error for fields the server cannot change (e.g. storage type).
    await js.update_stream(desired)


# What a cluster answers while it is still electing its JetStream meta leader (all nodes just
# started, e.g. `docker compose up`): worth waiting for, unlike a configuration error.
_NOT_READY = (ServiceUnavailableError, NoRespondersError, NatsTimeoutError)


async def when_jetstream_ready(operation: Callable[[], Awaitable[T]], what: str, ready_timeout_s: float = 60.0) -> T:
    """`operation()`, retried with backoff while JetStream answers "not ready" (bounded)."""
    delay = 0.1
    async with asyncio.timeout(ready_timeout_s):
        while True:
            try:
                return await operation()
            except _NOT_READY as exc:
                log.warning("JetStream is not ready for %s yet (%s); retrying in %.1fs", what, type(exc).__name__, delay)
                await asyncio.sleep(delay)  # backoff between attempts, not a poll for an event
                delay = min(delay * 2, 2.0)


async def ensure_streams(js: JetStreamContext, names: Names, retention: RetentionSettings,
                         ready_timeout_s: float = 60.0) -> None:
    async def ensure_all() -> None:
        for config in all_stream_configs(names, retention):
            await ensure_stream(js, config)

    await when_jetstream_ready(ensure_all, "the streams", ready_timeout_s)
