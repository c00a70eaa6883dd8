"""Job types that ship with Jobline: `demo` (shows every kind of event), `noop` (benchmarks),
`gather` (a flow parent that returns its children's outcomes) and `review` (waits for a person's
approval)."""

from __future__ import annotations

import asyncio

import msgspec

from .context import JobContext
from .registry import PermanentError, task
from .signals import SignalTimeout


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


class ReviewParams(msgspec.Struct, kw_only=True):
    title: str = "draft"
    prepare_seconds: float = 0.5
    timeout_s: float | None = 3600.0  # how long it waits for a reviewer (None: until one answers or a cancel)


@task("review", params=ReviewParams, steps=["Prepare", "Review", "Publish"],
      description="Prepares, then waits for a reviewer: signal `approval` with {\"approved\": true|false, "
                  "\"note\": \"…\"} (the job page's Approve/Reject); publishes only when approved.")
async def review(ctx: JobContext) -> dict[str, object]:
    params: ReviewParams = ctx.params
    ctx.step("Prepare")  # (done again when the signal resumes the job: the work before a wait is cheap)
    for i in range(5):
        await asyncio.sleep(params.prepare_seconds / 5)
        ctx.progress(i + 1, 5, message="preparing")
    ctx.step("Review")
    try:
        decision = await ctx.wait_for_signal("approval", timeout_s=params.timeout_s)
    except SignalTimeout:
        raise PermanentError(f"no reviewer answered within {params.timeout_s:g}s") from None
    note = decision.get("note") if isinstance(decision, dict) else None
    if not (isinstance(decision, dict) and decision.get("approved") is True):
        raise PermanentError("rejected by the reviewer" + (f": {note}" if note else ""))
    ctx.step("Publish")
    ctx.log(f"published {params.title!r}")
    return {"published": True, "title": params.title, "note": note}
