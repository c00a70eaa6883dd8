"""Recurring schedules: a cron expression in a time zone and a job template, by name.

Each definition (and what it last did) is a value in the `schedules` KV bucket. Its next tick is
held by the broker: a JetStream message schedule `@at <tick>` on `schedules.<name>.wake`, whose
target is `schedules.<name>.due` in the same stream, so the wake-up survives restarts of every
service and of nats-server without a scheduler process of ours. The gateway keeps the definitions
(the API); the conductors share one durable consumer of the due wake-ups (conductor/schedule_runner.py):
each is handled by one conductor, which creates the tick's job with an id made of the schedule's
name and the tick, written only if no event of that id exists yet — one job per tick however many
run — and arms the next wake-up. The cron arithmetic is ours (cron.py), so the broker only ever
holds one-shot `@at` times.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
from nats.js import JetStreamContext

from jobline.contract.events import encoder
from jobline.contract.names import SCHEDULE_NAME_PATTERN, Names, is_valid_schedule_name
from jobline.contract.schedules import Schedule, ScheduleSpec, ScheduleView, Wake
from jobline.contract.streams import schedules_bucket_config, schedules_stream_config
from jobline.contract.submissions import as_submission
from jobline.runtime.buckets import bucket_keys, key_value
from jobline.runtime.kv_records import KvRecords
from jobline.runtime.publishing import publish_reliably
from jobline.runtime.stream_setup import ensure_stream, when_jetstream_ready

from .checks import JobChecks
from .cron import Cron, InvalidCron
from .errors import Conflict, Invalid, JobError, NotFound

RECENT_KEPT = 20  # job ids and missed ticks a schedule remembers (older: the job list / the log)


def _refused(key: str, detail: str) -> Invalid:
    return Invalid(detail, title="Invalid schedule", key=key)


def parse_cron(spec_cron: str, timezone: str) -> Cron:
    try:
        return Cron.parse(spec_cron, timezone)
    except InvalidCron as exc:
        raise _refused("timezone" if "time zone" in str(exc) else "cron", str(exc)) from None


def tick_job_id(name: str, tick: float) -> str:
    """The job a tick makes: `<name>-<tick as YYYYMMDDTHHMMSS, UTC>` (at most 56 characters)."""
    return f"{name}-{datetime.fromtimestamp(tick, UTC):%Y%m%dT%H%M%S}"


def rfc3339(ts: float, cron: Cron) -> str:
    return datetime.fromtimestamp(ts, cron.zone).isoformat()


class ScheduleStore:
    def __init__(self, js: JetStreamContext, names: Names, records: KvRecords[Schedule], default_catchup_s: float):
        self.js = js
        self.names = names
        self.records = records
        self.default_catchup_s = default_catchup_s

    @classmethod
    async def open(cls, js: JetStreamContext, names: Names, replicas: int, default_catchup_s: float) -> ScheduleStore:
        await when_jetstream_ready(lambda: ensure_stream(js, schedules_stream_config(names, replicas)),
                                   "the schedules stream")
        kv = await key_value(js, schedules_bucket_config(names, replicas))
        return cls(js, names, KvRecords(kv, Schedule), default_catchup_s)

    # --- reading ----------------------------------------------------------------------------
    async def get(self, name: str) -> Schedule | None:
        if not is_valid_schedule_name(name):
            return None
        return await self.records.value(name)

    async def require(self, name: str) -> Schedule:
        schedule = await self.get(name)
        if schedule is None:
            raise NotFound(f"there is no schedule {name!r}", title="Schedule not found")
        return schedule

    async def all(self) -> list[Schedule]:
        keys = await bucket_keys(self.js, self.names.schedules_bucket)
        found = [await self.get(k) for k in keys]
        return [s for s in found if s is not None]

    def view(self, schedule: Schedule, upcoming: int = 5) -> ScheduleView:
        cron = Cron.parse(schedule.cron, schedule.timezone)
        nexts = [] if schedule.paused else [rfc3339(t, cron) for t in cron.next_times(time.time(), upcoming)]
        return ScheduleView(
            name=schedule.name, cron=schedule.cron, timezone=schedule.timezone, job=schedule.job,
            overlap=schedule.overlap, catchup_window_s=self.catchup_s(schedule), paused=schedule.paused,
            created_at=schedule.created_at, updated_at=schedule.updated_at, next_runs=nexts,
            last_tick=schedule.last_tick, last_job_id=schedule.last_job_id, recent_jobs=schedule.recent_jobs,
            jobs_created=schedule.jobs_created, missed=schedule.missed, missed_total=schedule.missed_total,
            links={"self": f"/api/schedules/{schedule.name}"})

    def catchup_s(self, schedule: Schedule) -> float:
        return schedule.catchup_window_s if schedule.catchup_window_s is not None else self.default_catchup_s

    # --- changing ---------------------------------------------------------------------------
    async def create(self, spec: ScheduleSpec) -> Schedule:
        now = time.time()
        schedule = Schedule(name=spec.name, cron=" ".join(spec.cron.split()), timezone=spec.timezone, job=spec.job,
                            overlap=spec.overlap, catchup_window_s=spec.catchup_window_s, paused=spec.paused,
                            created_at=now, updated_at=now, generation=_generation())
        if not await self.records.create(spec.name, schedule):
            raise Conflict(f"there is already a schedule {spec.name!r}; delete it first", title="Schedule exists")
        if not schedule.paused:
            await self.arm(schedule, now)
        return schedule

    async def update(self, name: str, change: Callable[[Schedule], None]) -> Schedule:
        """Apply `change(schedule)` with compare-and-set on the KV revision (writers race);
        NotFound when there is none."""
        def changed(schedule: Schedule | None) -> Schedule:
            if schedule is None:
                raise NotFound(f"there is no schedule {name!r}", title="Schedule not found")
            change(schedule)
            return schedule

        result = await self.records.update(name, changed)
        assert result is not None
        return result

    async def pause(self, name: str) -> Schedule:
        def paused(s: Schedule) -> None:
            s.paused, s.updated_at = True, time.time()

        schedule = await self.update(name, paused)
        await self.disarm(name)
        return schedule

    async def resume(self, name: str) -> Schedule:
        """Resumed from now on: ticks that fell in the pause do not run."""
        def resumed(s: Schedule) -> None:
            s.paused, s.updated_at, s.generation = False, time.time(), _generation()

        schedule = await self.update(name, resumed)
        await self.arm(schedule, time.time())
        return schedule

    async def delete(self, name: str) -> None:
        await self.require(name)
        await self.records.delete(name)
        await self.disarm(name)

    # --- the broker-held wake-up ------------------------------------------------------------
    async def arm(self, schedule: Schedule, after: float) -> float:
        """Hold a wake-up for the first fire time after `after`; returns it."""
        cron = Cron.parse(schedule.cron, schedule.timezone)
        tick = next(cron.after(after))
        moment = datetime.fromtimestamp(tick, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        wake = Wake(name=schedule.name, tick=tick, generation=schedule.generation)
        await publish_reliably(self.js, self.names.schedule_wake(schedule.name), encoder.encode(wake),
                               headers={"Nats-Schedule": f"@at {moment}",
                                        "Nats-Schedule-Target": self.names.schedule_due(schedule.name)},
                               msg_id=f"{schedule.name}:{schedule.generation}:{tick:.0f}", give_up_after=10.0)
        return tick

    async def disarm(self, name: str) -> None:
        """A plain message on the wake-up subject replaces the held schedule: it will not fire."""
        await publish_reliably(self.js, self.names.schedule_wake(name), b'{"disarmed":true}',
                               msg_id=f"{name}:disarm:{_generation()}", give_up_after=10.0)


def _generation() -> str:
    return os.urandom(6).hex()


def check_name(name: str) -> None:
    if not is_valid_schedule_name(name):
        raise _refused("name", f"{name!r} is not a schedule name ({SCHEDULE_NAME_PATTERN}: lowercase letters, "
                               "digits, '-' and '_', at most 40)")


async def check_spec(spec: ScheduleSpec, checks: JobChecks) -> ScheduleSpec:
    """Every check a schedule must pass before it is stored (Invalid naming the field)."""
    check_name(spec.name)
    parse_cron(spec.cron, spec.timezone)
    if spec.catchup_window_s is not None and not 0 < spec.catchup_window_s <= 366 * 86400:
        raise _refused("catchup_window_s", "catchup_window_s must be above 0 and at most a year")
    try:
        submission = as_submission(spec.job)
    except msgspec.ValidationError as exc:
        raise _refused("job", f"job: {exc}") from None
    try:
        await checks.check_now(submission)
    except JobError as error:
        raise error.within("job") from None
    return spec
