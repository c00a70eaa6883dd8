"""Process entry points: logging set-up and turning SIGINT/SIGTERM into a stop event."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .redaction import RedactCredentials

T = TypeVar("T")


class Stopped(Exception):
    """The service was told to stop before it finished starting."""


async def until_stopped(stop: asyncio.Event, step: Awaitable[T]) -> T:
    """`await step`, abandoned (cancelled) as soon as `stop` is set; raises Stopped then.

    Start-up steps can wait a long time — NATS unreachable, JetStream electing leaders, a database
    away — and a SIGTERM must end the process promptly in every one of them; once started, a
    service stops by itself (draining) when it sees `stop`."""
    work = asyncio.ensure_future(step)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if work.done():
        return work.result()
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await work
    raise Stopped


def configure_logging(service: str, level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactCredentials())


def run_until_signalled(run: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `run(stop)` on uvloop when available; the first SIGINT/SIGTERM sets `stop`."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(stop)

    try:
        import uvloop
    except ImportError:  # uvloop is optional (not on Windows)
        asyncio.run(main())
        return
    # Outside the `try`: an ImportError raised by the service itself (a task module that does not
    # import) must not start it a second time without uvloop.
    uvloop.run(main())


# Collect the youngest generation every 50,000 allocations instead of 700. A server holding many
# connections allocates short-lived objects (futures, messages, handles) for each of them per
# event; collecting often catches thousands of them alive, promotes them, and that soon triggers a
# full collection of every long-lived object: measured at 250–330 ms with 5,000 open streams, every
# ~2 s while events flowed (docs/benchmarks.md). Collecting rarely lets them die by refcount first.
GC_THRESHOLDS = (50_000, 20, 100)


def service_main(service: str, load_settings: Callable[[], Any], run: Callable[[Any, asyncio.Event], Awaitable[None]]) -> None:
    """What each service's `python -m` does: read settings, log to stderr, run until signalled."""
    settings = load_settings()
    configure_logging(service, settings.log_level)
    gc.set_threshold(*GC_THRESHOLDS)

    async def start(stop: asyncio.Event) -> None:
        await run(settings, stop)

    run_until_signalled(start)
