"""Stopping a background task for sure.

`task.cancel(); await task` can hang for ever on Python 3.11: `asyncio.wait_for` (inside nats-py's
requests and our own bounded waits) loses a cancel that lands in the same loop turn as its inner
future completes (cpython gh-86296, fixed in 3.12), and a loop around it then goes on. Seen here as
a conductor whose alert checker never stopped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(task: asyncio.Task[Any], bound_s: float = 10.0) -> None:
    """Cancel `task` and wait for its end, cancelling it again each second (a lost cancel is sent
    again), at most `bound_s` (then it is logged and left). Its own error, if any, is logged, never
    raised; a cancel of the caller is raised as usual (`asyncio.wait` does not swallow it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound_s
    while not task.done():
        left = deadline - loop.time()
        if left <= 0:
            log.warning("task %s did not stop in %.0fs: left running", task.get_name(), bound_s)
            return
        task.cancel()
        await asyncio.wait({task}, timeout=min(1.0, left))
    if not task.cancelled() and task.exception() is not None:
        log.warning("task %s ended with %r while stopping", task.get_name(), task.exception())
