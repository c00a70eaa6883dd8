"""Recurring schedules as the API shows them (`GET /api/schedules/{name}`): the gateway writes
this shape, the client library reads it."""

from __future__ import annotations

from typing import Literal

import msgspec

Overlap = Literal["allow", "skip"]  # skip: no new run while the previous one has not ended


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
