"""A burst timed end to end: from the first submission to the n-th job end seen on NATS, with the
CPU each process spent per job (from /proc) — shared by the benchmarks that compare ways to submit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from nats.aio.client import Client

from jobline.contract.names import Names

from .clients import cpu_s


async def timed(nc: Client, names: Names, n: int, submit_all: Callable[[], Awaitable[None]], pids: dict[str, int],
                cpu: dict[str, list[float]]) -> float:
    """jobs/s from the first submission to the n-th job end; each process's CPU µs per job into `cpu`."""
    before = {name: cpu_s(pid) for name, pid in pids.items()}
    ended = 0
    done = asyncio.Event()

    async def on_end(_msg: object) -> None:
        nonlocal ended
        ended += 1
        if ended >= n:
            done.set()

    sub = await nc.subscribe(names.all_job_ends, cb=on_end)
    t0 = time.perf_counter()
    try:
        await submit_all()
        async with asyncio.timeout(300):
            await done.wait()
    finally:
        await sub.unsubscribe()
    elapsed = time.perf_counter() - t0
    for name, pid in pids.items():
        cpu.setdefault(name, []).append((cpu_s(pid) - before[name]) * 1e6 / n)
    return n / elapsed
