"""Recurring schedules: a cron expression in a time zone and a job template, by name.

Each definition (and what it last did) is a value in the `schedules` KV bucket. Its next tick is
held by the broker: a JetStream message schedule `@at <tick>` on `schedules.<name>.wake`, whose
target is `schedules.<name>.due` in the same stream, so the wake-up survives restarts of every
gateway and of nats-server without a scheduler process of ours. The gateways share one durable
consumer of the due wake-ups (schedule_ticks.py): each is handled by one gateway, which creates
the tick's job with an id made of the schedule's name and the tick, written only if no event of
that id exists yet — one job per tick however many gateways run — and arms the next wake-up.
The cron arithmetic is ours (cron.py), so the broker only ever holds one-shot `@at` times.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from jobline.contract.events import encoder
from jobline.contract.names import SCHEDULE_NAME_PATTERN, Names, is_valid_schedule_name
from jobline.contract.schedules import MissedTicks, Overlap, ScheduleView
from jobline.contract.streams import schedules_bucket_config, schedules_stream_config
from jobline.runtime.buckets import bucket_keys, key_value
from jobline.runtime.publishing import publish_reliably
from jobline.runtime.stream_setup import ensure_stream, when_jetstream_ready

from .cron import Cron, InvalidCron
from .problems import Problem

RECENT_KEPT = 20  # job ids and missed ticks a schedule remembers (older: the job list / the log)


class ScheduleSpec(msgspec.Struct, forbid_unknown_fields=True):
    """`POST /api/schedules`: what to run and when."""

    name: str
    cron: str  # 5 fields (minute first) or 6 (second first), or @hourly/@daily/@weekly/@monthly/@yearly
    job: dict[str, object]  # a job as POST /api/jobs takes it (without run_at / delay_s)
    timezone: str = "UTC"  # IANA name the cron expression is read in
    overlap: Overlap = "allow"  # skip: no new run while the previous one has not ended
    catchup_window_s: float | None = None  # missed ticks younger than this still run (default JOBLINE_SCHEDULE_CATCHUP_S)
    paused: bool = False


class Schedule(msgspec.Struct, kw_only=True):
    """The stored definition and what it last did."""

    name: str
    cron: str
    timezone: str
    job: dict[str, object]
    overlap: Overlap = "allow"
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
    """The body of a wake-up: which schedule, for which fire time, of which generation."""

    name: str
    tick: float
    generation: str


_schedule_decoder = msgspec.json.Decoder(Schedule)
wake_decoder = msgspec.json.Decoder(Wake)


def _refused(key: str, detail: str, status: int = 422) -> Problem:
    return Problem(status, "Invalid schedule", detail, errors=[{"key": key, "source": "body", "message": detail}])


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
    def __init__(self, js: JetStreamContext, names: Names, kv: KeyValue, default_catchup_s: float):
        self.js = js
        self.names = names
        self.kv = kv
        self.default_catchup_s = default_catchup_s

    @classmethod
    async def open(cls, js: JetStreamContext, names: Names, replicas: int, default_catchup_s: float) -> ScheduleStore:
        await when_jetstream_ready(lambda: ensure_stream(js, schedules_stream_config(names, replicas)),
                                   "the schedules stream")
        kv = await key_value(js, schedules_bucket_config(names, replicas))
        return cls(js, names, kv, default_catchup_s)

    # --- reading ----------------------------------------------------------------------------
    async def get(self, name: str) -> tuple[Schedule, int] | None:
        """The schedule and its KV revision, None when there is none."""
        if not is_valid_schedule_name(name):
            return None
        try:
            entry = await self.kv.get(name)
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        return _schedule_decoder.decode(entry.value), int(entry.revision or 0)

    async def require(self, name: str) -> tuple[Schedule, int]:
        found = await self.get(name)
        if found is None:
            raise Problem(404, "Schedule not found", f"there is no schedule {name!r}")
        return found

    async def all(self) -> list[Schedule]:
        keys = await bucket_keys(self.js, self.names.schedules_bucket)
        found = [await self.get(k) for k in keys]
        return [s for s, _ in (f for f in found if f is not None)]

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
        try:
            await self.kv.create(spec.name, encoder.encode(schedule))
        except KeyWrongLastSequenceError:
            raise Problem(409, "Schedule exists", f"there is already a schedule {spec.name!r}; delete it first") from None
        if not schedule.paused:
            await self.arm(schedule, now)
        return schedule

    async def update(self, name: str, change: Callable[[Schedule], None]) -> Schedule:
        """Apply `change(schedule)` with compare-and-set on the KV revision (gateways race)."""
        for _ in range(20):
            schedule, revision = await self.require(name)
            change(schedule)
            try:
                await self.kv.update(name, encoder.encode(schedule), last=revision)
                return schedule
            except KeyWrongLastSequenceError:
                continue
        raise Problem(503, "Schedule busy", f"schedule {name!r} kept changing under this request; try again")

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
        await self.kv.delete(name)
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
