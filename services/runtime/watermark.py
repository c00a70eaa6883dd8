"""How far a reader has applied a stream, and waiting until it has applied a given sequence."""

from __future__ import annotations

import asyncio
import heapq
import itertools


class Watermark:
    """`seq` only grows; `wait_for(n)` returns once it reaches `n` (or the timeout passes)."""

    def __init__(self, seq: int = 0):
        self.seq = seq
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._tiebreak = itertools.count()

    def advance(self, seq: int) -> None:
        if seq <= self.seq:
            return
        self.seq = seq
        while self._waiters and self._waiters[0][0] <= seq:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)

    async def wait_for(self, seq: int, timeout: float) -> bool:
        """True once every event up to `seq` is applied; False on timeout."""
        if self.seq >= seq:
            return True
        if timeout <= 0:
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (seq, next(self._tiebreak), future))
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            return False
        return True
