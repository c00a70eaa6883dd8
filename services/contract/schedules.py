"""Recurring schedules: what a client asks for (`ScheduleSpec`), what the `schedules` KV bucket
keeps (`Schedule`), what the broker-held wake-up carries (`Wake`), and what the API shows
(`ScheduleView`: the gateway writes it, the client library reads it)."""

from __future__ import annotations

from typing import Final

import msgspec

from .vocabulary import Overlap


class MissedTicks(msgspec.Struct, kw_only=True):
    tick: float  # the (first) missed fire time
    count: int = 1  # ticks missed in a row from it
    reason: str
    recorded_at: float


class ScheduleView(msgspec.Struct, kw_only=True):
    name: str
    cron: str
    timezone: str
    job: dict[str, object]
    overlap: Overlap
    catchup_window_s: float
    paused: bool
    created_at: float
    updated_at: float
    next_runs: list[str]  # the next fire times, RFC 3339 in the schedule's time zone (none while paused)
    last_tick: float | None
    last_job_id: str | None
    recent_jobs: list[str]
    jobs_created: int
    missed: list[MissedTicks]
    missed_total: int
    links: dict[str, str]


class ScheduleSpec(msgspec.Struct, forbid_unknown_fields=True):
    """`POST /api/schedules`: what to run and when."""

    name: str
    cron: str  # 5 fields (minute first) or 6 (second first), or @hourly/@daily/@weekly/@monthly/@yearly
    job: dict[str, object]  # a job as POST /api/jobs takes it (without run_at / delay_s)
    timezone: str = "UTC"  # IANA name the cron expression is read in
    overlap: Overlap = Overlap.ALLOW  # skip: no new run while the previous one has not ended
    catchup_window_s: float | None = None  # missed ticks younger than this still run (default JOBLINE_SCHEDULE_CATCHUP_S)
    paused: bool = False


class Schedule(msgspec.Struct, kw_only=True):
    """The stored definition (KV `schedules`, key = its name) and what it last did."""

    name: str
    cron: str
    timezone: str
    job: dict[str, object]
    overlap: Overlap = Overlap.ALLOW
    catchup_window_s: float | None = None
    paused: bool = False
    created_at: float
    updated_at: float
    generation: str  # new on create and resume: a wake-up of an older generation does nothing
    last_tick: float | None = None  # the tick of the last job made
    last_job_id: str | None = None
    handled_until: float | None = None  # every tick up to this one made its job or was recorded missed
    recent_jobs: list[str] = []
    jobs_created: int = 0
    missed: list[MissedTicks] = []
    missed_total: int = 0


class Wake(msgspec.Struct, kw_only=True):
    """The body of a wake-up (`schedules.<name>.wake`, fired onto `.due`): which schedule, for which
    fire time, of which generation."""

    name: str
    tick: float
    generation: str


wake_decoder: Final = msgspec.json.Decoder(Wake)
