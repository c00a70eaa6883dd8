"""HTTP routes of recurring schedules: thin handlers over jobs/schedules.py (the conductor runs
their ticks)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from jobline.contract.schedules import ScheduleSpec, ScheduleView
from jobline.jobs.checks import JobChecks
from jobline.jobs.errors import Malformed
from jobline.jobs.schedules import ScheduleStore, check_spec

_strict_spec = msgspec.json.Decoder(ScheduleSpec)


@post("/api/schedules", status_code=201, summary="Create a recurring schedule", errors=(409, 413, 422, 503),
      description="`cron`: 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, or "
      "`@hourly`/`@daily`/`@weekly`/`@monthly`/`@yearly`, read in `timezone` (an IANA name, default UTC). `job`: "
      "a job as `POST /api/jobs` takes it (no `run_at`/`delay_s`), checked now. Each tick makes one job with the "
      "id `<name>-<tick, UTC, YYYYMMDDTHHMMSS>` whose `schedule` and `tick` say where it came from — one job per "
      "tick however many conductors run. `overlap`: `allow` (default) or `skip` (no new run while the previous "
      "one has not ended; skipped ticks are recorded in `missed`). Ticks missed while every conductor or "
      "nats-server was down run late if younger than `catchup_window_s` (default JOBLINE_SCHEDULE_CATCHUP_S), "
      "else are skipped and recorded. Daylight saving: a skipped local time fires once at the end of the gap; a "
      "repeated one fires once, at its first occurrence, unless the hour field is `*`. 409 if the name is taken.")
async def create_schedule(request: Request[Any, Any, Any], schedules: NamedDependency[ScheduleStore],
                          checks: NamedDependency[JobChecks],
                          data: JSONBody[ScheduleSpec]) -> Response[ScheduleView]:  # (`data`: the documented body)
    try:  # strictly, as documented: Litestar's own decoding would take `"paused": 0` for false
        strict = _strict_spec.decode(await request.body())
    except msgspec.ValidationError as exc:
        raise Malformed(str(exc), title="Bad Request") from None
    schedule = await schedules.create(await check_spec(strict, checks))
    return Response(schedules.view(schedule), status_code=201, headers={"Location": f"/api/schedules/{schedule.name}"})


@get("/api/schedules", summary="Every recurring schedule, by name", errors=(503,))
async def list_schedules(schedules: NamedDependency[ScheduleStore]) -> list[ScheduleView]:
    return [schedules.view(s, upcoming=1) for s in await schedules.all()]


@get("/api/schedules/{name:str}", summary="A recurring schedule: its next fire times and what it last did",
     errors=(404, 503))
async def get_schedule(schedules: NamedDependency[ScheduleStore], name: FromPath[str]) -> ScheduleView:
    return schedules.view(await schedules.require(name))


@post("/api/schedules/{name:str}/pause", status_code=200, errors=(404, 503),
      summary="Pause a schedule: no tick makes a job until resumed")
async def pause_schedule(schedules: NamedDependency[ScheduleStore], name: FromPath[str]) -> ScheduleView:
    return schedules.view(await schedules.pause(name))


@post("/api/schedules/{name:str}/resume", status_code=200, errors=(404, 503),
      summary="Resume a schedule from now on (ticks that fell in the pause do not run)")
async def resume_schedule(schedules: NamedDependency[ScheduleStore], name: FromPath[str]) -> ScheduleView:
    return schedules.view(await schedules.resume(name))


@delete("/api/schedules/{name:str}", status_code=204, summary="Delete a schedule (its jobs stay)", errors=(404, 503))
async def delete_schedule(schedules: NamedDependency[ScheduleStore], name: FromPath[str]) -> None:
    await schedules.delete(name)


schedule_handlers = [create_schedule, list_schedules, get_schedule, pause_schedule, resume_schedule, delete_schedule]
