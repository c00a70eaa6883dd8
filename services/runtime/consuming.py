"""Pull-consumer helpers shared by the processor and the logsink."""

from __future__ import annotations

import asyncio

from nats.aio.msg import Msg
from nats.js import JetStreamContext


async def fetch_or_stop(psub: JetStreamContext.PullSubscription, batch: int, stop_wait: asyncio.Task[object],
                        expires: float = 5.0) -> list[Msg]:
    """A long-poll fetch that gives way at once when `stop_wait` completes (returns [])."""
    fetch = asyncio.ensure_future(psub.fetch(batch, timeout=expires))
    await asyncio.wait({fetch, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    if fetch.done():
        return fetch.result()
    fetch.cancel()
    try:
        await fetch
    except (asyncio.CancelledError, Exception):
        pass
    return []
