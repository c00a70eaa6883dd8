"""Job types for the benchmarks (loaded by the processor with JOBLINE_TASK_MODULES=bench.tasks)."""

from __future__ import annotations

import asyncio

from jobline.processor import JobContext, task


@task("bench-flood", description="Calls progress() `rate` times a second for `seconds` (or only loops).")
async def flood(ctx: JobContext) -> dict[str, int]:
    """With `report=false` the loop is the same but progress() is not called: the difference in the
    processor's CPU between the two is what Jobline's handling of the calls costs."""
    rate, seconds, report = int(ctx.params["rate"]), float(ctx.params["seconds"]), bool(ctx.params["report"])
    loop = asyncio.get_running_loop()
    began, calls = loop.time(), 0
    total = rate * seconds
    per_tick = max(rate // 100, 1)
    while loop.time() - began < seconds:
        for _ in range(per_tick):
            calls += 1
            if report:
                ctx.progress(min(calls, total), total)
        await asyncio.sleep(0.01)
    return {"calls": calls}


@task("bench-progress", description="Completes at once after one progress report: a job's full event set.")
async def progress_once(ctx: JobContext) -> None:
    ctx.progress(1, 1)
