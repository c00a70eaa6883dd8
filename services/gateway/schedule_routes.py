"""HTTP routes of recurring schedules: thin handlers over schedules.py and schedule_runner.py."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.params import FromPath, JSONBody

from jobline.contract.schedules import ScheduleView

from .core import Core
from .problems import Problem
from .schedule_runner import checked_spec
from .schedules import ScheduleSpec, ScheduleStore

_strict_spec = msgspec.json.Decoder(ScheduleSpec)


def _store(request: Request[Any, Any, Any]) -> tuple[Core, ScheduleStore]:
    core: Core = request.app.state.core
    store = core.schedules
    if store is None:
        raise Problem(503, "Schedules unavailable", "this gateway has not opened the schedules yet")
    return core, store


@post("/api/schedules", status_code=201, summary="Create a recurring schedule",
      description="`cron`: 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, or "
      "`@hourly`/`@daily`/`@weekly`/`@monthly`/`@yearly`, read in `timezone` (an IANA name, default UTC). `job`: "
      "a job as `POST /api/jobs` takes it (no `run_at`/`delay_s`), checked now. Each tick makes one job with the "
      "id `<name>-<tick, UTC, YYYYMMDDTHHMMSS>` whose `schedule` and `tick` say where it came from — one job per "
      "tick however many gateways run. `overlap`: `allow` (default) or `skip` (no new run while the previous one "
      "has not ended; skipped ticks are recorded in `missed`). Ticks missed while every gateway or nats-server "
      "was down run late if younger than `catchup_window_s` (default JOBLINE_SCHEDULE_CATCHUP_S), else are "
      "skipped and recorded. Daylight saving: a skipped local time fires once at the end of the gap; a repeated "
      "one fires once, at its first occurrence, unless the hour field is `*`. 409 if the name is taken.")
async def create_schedule(request: Request[Any, Any, Any],
                          data: JSONBody[ScheduleSpec]) -> Response[ScheduleView]:  # (`data`: the documented body)
    core, store = _store(request)
    try:  # strictly, as documented: Litestar's own decoding would take `"paused": 0` for false
        strict = _strict_spec.decode(await request.body())
    except msgspec.ValidationError as exc:
        raise Problem(400, "Bad Request", str(exc)) from None
    spec = await checked_spec(core, strict)
    schedule = await store.create(spec)
    return Response(store.view(schedule), status_code=201, headers={"Location": f"/api/schedules/{schedule.name}"})


@get("/api/schedules", summary="Every recurring schedule, by name")
async def list_schedules(request: Request[Any, Any, Any]) -> list[ScheduleView]:
    _, store = _store(request)
    return [store.view(s, upcoming=1) for s in await store.all()]


@get("/api/schedules/{name:str}", summary="A recurring schedule: its next fire times and what it last did")
async def get_schedule(request: Request[Any, Any, Any], name: FromPath[str]) -> ScheduleView:
    _, store = _store(request)
    schedule, _ = await store.require(name)
    return store.view(schedule)


@post("/api/schedules/{name:str}/pause", status_code=200, summary="Pause a schedule: no tick makes a job until resumed")
async def pause_schedule(request: Request[Any, Any, Any], name: FromPath[str]) -> ScheduleView:
    _, store = _store(request)
    return store.view(await store.pause(name))


@post("/api/schedules/{name:str}/resume", status_code=200,
      summary="Resume a schedule from now on (ticks that fell in the pause do not run)")
async def resume_schedule(request: Request[Any, Any, Any], name: FromPath[str]) -> ScheduleView:
    _, store = _store(request)
    return store.view(await store.resume(name))


@delete("/api/schedules/{name:str}", status_code=204, summary="Delete a schedule (its jobs stay)")
async def delete_schedule(request: Request[Any, Any, Any], name: FromPath[str]) -> None:
    _, store = _store(request)
    await store.delete(name)


schedule_handlers = [create_schedule, list_schedules, get_schedule, pause_schedule, resume_schedule, delete_schedule]
