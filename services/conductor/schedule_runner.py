"""Turns recurring schedules' due wake-ups into jobs.

Every conductor runs one `ScheduleRunner` on the shared durable `schedule-ticks` (filter
`schedules.*.due`), so each wake-up is handled by one of them and an unacknowledged one (its
conductor died) is redelivered to another. Handling a wake-up for tick T of a live generation:

1. every fire time from T up to now is due: those older than the catch-up window are skipped and
   recorded, with overlap `skip` a tick whose previous run has not ended is skipped and recorded;
2. each remaining tick's job is published with `Nats-Expected-Last-Subject-Sequence: 0` on
   `jobs.<id>.>` (its id is `<name>-<tick>`): stored only if the job does not exist, so a
   redelivered or raced wake-up never makes a tick's job twice, however late;
3. the next wake-up is armed and the schedule's record updated; only then is the wake-up acked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import msgspec
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from jobline.contract.names import ENDED
from jobline.contract.schedules import MissedTicks, Schedule, Wake, wake_decoder
from jobline.contract.submissions import as_submission
from jobline.contract.vocabulary import Overlap
from jobline.jobs.cron import Cron
from jobline.jobs.errors import NotFound
from jobline.jobs.schedules import RECENT_KEPT, ScheduleStore, tick_job_id
from jobline.jobs.writer import JobWriter
from jobline.runtime.consume import DurableTasks, shared_durable

log = logging.getLogger(__name__)
ACK_WAIT_S = 5.0  # a conductor that dies holding a wake-up delays its schedule this long (then catch-up)
MAX_TICKS_PER_WAKE = 10_000  # a catch-up window this full runs its latest ticks; the rest are recorded missed


class ScheduleRunner:
    def __init__(self, writer: JobWriter, store: ScheduleStore, on_job: Callable[[], None] = lambda: None):
        self._writer = writer
        self._on_job = on_job
        self._store = store
        self._names = writer.names
        self._tasks: DurableTasks | None = None
        # One wake-up per schedule at a time here (a redelivered one and its successor can arrive
        # together): the second sees what the first recorded.
        self._locks: dict[str, asyncio.Lock] = {}

    async def start(self) -> None:
        names = self._names
        config = shared_durable(names.schedule_ticks_durable, "conductors: recurring schedules' due wake-ups become jobs",
                                ACK_WAIT_S, filter_subject=names.all_schedules_due)
        self._tasks = DurableTasks(self._writer.nc, self._writer.js, names.schedules_stream, config, self._handle,
                                   limit=8, name="schedule runner")
        await self._tasks.start()

    async def stop(self) -> None:
        if self._tasks is not None:
            await self._tasks.stop()  # a wake-up being handled is redelivered, to another conductor

    async def _handle(self, msg: Msg) -> None:
        # Kept ours while it takes (a long catch-up): the ack wait is short so that a gateway that
        # dies holding a wake-up delays its schedule by seconds, not by half a minute.
        async def keep() -> None:
            while True:
                await asyncio.sleep(ACK_WAIT_S / 3)
                with contextlib.suppress(Exception):  # (NATS away for a moment: the next one may pass)
                    await msg.in_progress()

        keeper = asyncio.create_task(keep())
        try:
            await self._handle_wake(msg)
        finally:
            keeper.cancel()

    async def _handle_wake(self, msg: Msg) -> None:
        try:
            wake = wake_decoder.decode(msg.data)
        except msgspec.DecodeError:
            await msg.term()
            return
        async with self._locks.setdefault(wake.name, asyncio.Lock()):  # (one per schedule name: few)
            await self._handle_live(msg, wake)

    async def _handle_live(self, msg: Msg, wake: Wake) -> None:
        schedule = await self._store.get(wake.name)
        if schedule is None or schedule.paused or schedule.generation != wake.generation:
            await msg.ack()  # deleted, paused, or re-armed since: this wake-up is stale
            return
        cron = Cron.parse(schedule.cron, schedule.timezone)
        now = max(time.time(), wake.tick)  # the broker fired it: its time has come, whatever our clock says
        made, missed, handled = await self._run_ticks(schedule, cron, wake.tick, now)
        tick = await self._store.arm(schedule, max(now, made[-1][0] if made else now))

        def record(s: Schedule) -> None:
            s.handled_until = max(s.handled_until or 0.0, handled)
            if made:
                s.last_tick, s.last_job_id = made[-1]
                s.recent_jobs = (s.recent_jobs + [job_id for _, job_id in made])[-RECENT_KEPT:]
                s.jobs_created += len(made)
            if missed:
                s.missed = (s.missed + missed)[-RECENT_KEPT:]
                s.missed_total += sum(m.count for m in missed)

        if handled:
            with contextlib.suppress(NotFound):  # deleted meanwhile: nothing to record
                await self._store.update(wake.name, record)
        current = await self._store.get(wake.name)
        if current is None or current.paused or current.generation != wake.generation:
            await self._store.disarm(wake.name)  # paused or deleted while we armed it
        log.debug("schedule %s: %d job(s), %d missed, next tick %s", wake.name, len(made), len(missed), tick)
        await msg.ack()

    async def _run_ticks(self, schedule: Schedule, cron: Cron, first: float, now: float
                         ) -> tuple[list[tuple[float, str]], list[MissedTicks], float]:
        window = self._store.catchup_s(schedule)
        due = [t for t in [first, *cron.between(first, now, MAX_TICKS_PER_WAKE)]
               if schedule.handled_until is None or t > schedule.handled_until]  # (a redelivered wake-up)
        missed: list[MissedTicks] = []
        late = [t for t in due if now - t > window]
        if late:
            missed.append(MissedTicks(tick=late[0], count=len(late), recorded_at=now,
                                      reason=f"missed by more than the catch-up window ({window:g}s)"))
            log.warning("schedule %s: %d tick(s) from %s missed by more than %gs; skipped", schedule.name,
                        len(late), late[0], window)
        made: list[tuple[float, str]] = []
        previous = schedule.last_job_id
        for tick in (t for t in due if now - t <= window):
            if schedule.overlap is Overlap.SKIP and previous is not None and await self._still_running(previous):
                missed.append(MissedTicks(tick=tick, recorded_at=now, reason=f"previous run {previous} still going"))
                continue
            job_id = tick_job_id(schedule.name, tick)
            await self._create(schedule, job_id, tick)
            made.append((tick, job_id))
            previous = job_id
        return made, missed, max(due, default=0.0)

    async def _create(self, schedule: Schedule, job_id: str, tick: float) -> None:
        writer = self._writer
        with writer.span("tick", **{"jobline.schedule": schedule.name, "jobline.job.id": job_id}) as traceparent:
            event = writer.created_event(as_submission(schedule.job), job_id, time.time(), schedule=schedule.name,
                                         tick=tick, traceparent=traceparent)
            # Stored only if the job has no event at all: once per tick, also long after the duplicate
            # window (a wake-up redelivered an hour later).
            await writer.store(event, None, event.ts, only_if_new=True)
        self._on_job()

    async def _still_running(self, job_id: str) -> bool:
        names, js = self._names, self._writer.js
        try:
            await js.get_last_msg(names.jobs_stream, names.run_event(job_id, ENDED), direct=True)
            return False
        except NotFoundError:
            pass
        try:  # not ended: does it still exist at all (a job older than the stream's retention ended long ago)?
            await js.get_last_msg(names.jobs_stream, names.job_timeline(job_id), direct=True)
            return True
        except NotFoundError:
            return False
