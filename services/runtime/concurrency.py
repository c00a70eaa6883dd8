"""Many awaitables at once, but never more than a limit in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


async def bounded(calls: Iterable[Callable[[], Awaitable[T]]], limit: int = 256) -> list[T]:
    """The results of `calls` in order, at most `limit` running at once (lookups and acked
    publishes: enough in flight to hide the round trips, not so many that one request floods
    the connection)."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(one(c) for c in calls)))
