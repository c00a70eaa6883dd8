"""Process entry points: logging set-up and turning SIGINT/SIGTERM into a stop event."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any


def configure_logging(service: str, level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s",
    )


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

        uvloop.run(main())
    except ImportError:  # uvloop is optional (not on Windows)
        asyncio.run(main())


def service_main(service: str, load_settings: Callable[[], Any], run: Callable[[Any, asyncio.Event], Awaitable[None]]) -> None:
    """What each service's `python -m` does: read settings, log to stderr, run until signalled."""
    settings = load_settings()
    configure_logging(service, settings.log_level)

    async def start(stop: asyncio.Event) -> None:
        await run(settings, stop)

    run_until_signalled(start)
