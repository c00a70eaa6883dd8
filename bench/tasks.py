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


@task("bench-realistic", description="What a web app's job reports: 20 progress events and 20 log lines, then ends.")
async def realistic(ctx: JobContext) -> None:
    """Progress is coalesced to JOBLINE_PROGRESS_RATE a job (10 a second by default): run the processor
    with JOBLINE_PROGRESS_RATE=0 to have every report an event (bench.compare --type bench-realistic)."""
    for i in range(1, 21):
        ctx.progress(i, 20)
        ctx.log(f"part {i} of 20 done")
