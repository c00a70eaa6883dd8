"""Job types that ship with Jobline: `demo` (shows every kind of event), `noop` (benchmarks) and
`gather` (a flow parent that returns its children's outcomes)."""

from __future__ import annotations

import asyncio

import msgspec

from .context import JobContext
from .registry import PermanentError, task


class DemoParams(msgspec.Struct, kw_only=True):
    steps: list[str] = msgspec.field(default_factory=lambda: ["Upload", "Processing", "Done"])
    step_seconds: float = 1.0
    ticks_per_step: int = 10
    fail_at_step: str | None = None  # name of the step that fails, to see a failure end to end


@task("demo", params=DemoParams, steps=lambda p: list(p.steps),
      description="Walks through named steps, reporting progress and log lines; can be told to fail.")
async def demo(ctx: JobContext) -> dict[str, object]:
    params: DemoParams = ctx.params
    total = max(len(params.steps) * params.ticks_per_step, 1)
    done = 0
    tick = params.step_seconds / max(params.ticks_per_step, 1)
    for name in params.steps:
        ctx.step(name)
        ctx.log(f"{name}: started")
        if name == params.fail_at_step:
            ctx.log(f"{name}: failing on purpose", level="error")
            raise PermanentError(f"step {name!r} failed (fail_at_step)")
        for i in range(params.ticks_per_step):
            await asyncio.sleep(tick)  # the demo's "work"
            done += 1
            ctx.progress(done, total, message=f"{name} {i + 1}/{params.ticks_per_step}")
        ctx.log(f"{name}: finished")
    return {"steps": len(params.steps), "ok": True}


@task("noop", description="Does nothing and completes at once (for benchmarks).")
async def noop(ctx: JobContext) -> None:
    return None


@task("gather", description="A flow's parent that collects its children's outcomes (POST /api/flows).")
async def gather(ctx: JobContext) -> dict[str, object]:
    return {name: {"status": child.status, "result": child.result, "error": child.error}
            for name, child in ctx.children.items()}
