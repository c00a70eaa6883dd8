"""Cron expressions of recurring schedules: parsed once, evaluated in the schedule's time zone.

Five fields (minute first) or six (seconds first, as nats-server writes them), plus `@hourly`,
`@daily`, `@weekly`, `@monthly`, `@yearly`. croniter does the calendar work; this module adds the
daylight-saving rule Jobline documents (docs/api.md, "Recurring schedules"):

- a local time skipped when clocks go forward fires once, at the first valid time after the gap
  (a daily 02:30 in Europe/Berlin runs at 03:00 on that day);
- a local time that happens twice when clocks go back fires once, at its first occurrence — unless
  the hour field is `*`, where the repeated hour is real elapsed time and fires again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

_ALIASES = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")


class InvalidCron(ValueError):
    pass


def _second_occurrence(moment: datetime) -> bool:
    """True for the later of the two instants a fall-back wall-clock time names."""
    first, second = moment.replace(fold=0), moment.replace(fold=1)
    return first.utcoffset() != second.utcoffset() and moment.utcoffset() == second.utcoffset()


@dataclass(frozen=True)
class Cron:
    expression: str
    zone: ZoneInfo
    _six_fields: bool
    _hour_is_star: bool

    @classmethod
    def parse(cls, expression: str, timezone: str = "UTC") -> Cron:
        expression = " ".join(expression.split())
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidCron(f"unknown time zone {timezone!r} (an IANA name such as Europe/Berlin)") from None
        fields = expression.split(" ")
        if expression.lower() in _ALIASES:
            six, hour_star = False, False
        elif len(fields) in (5, 6):
            six = len(fields) == 6
            hour_star = fields[2 if six else 1] == "*"
        else:
            raise InvalidCron(f"{expression!r} has {len(fields)} fields: give 5 (minute hour day month weekday) "
                              "or 6 (second first)")
        if not croniter.is_valid(expression, second_at_beginning=six):
            raise InvalidCron(f"{expression!r} is not a valid cron expression")
        cron = cls(expression, zone, six, hour_star)
        try:
            next(cron.after(datetime.now(zone).timestamp()))
        except (StopIteration, ValueError, KeyError) as exc:  # e.g. 30 February: valid fields, never a date
            raise InvalidCron(f"{expression!r} never fires") from exc
        return cron

    @property
    def timezone(self) -> str:
        return self.zone.key

    def after(self, ts: float) -> Iterator[float]:
        """Fire times (unix seconds) strictly after `ts`, in order."""
        start = datetime.fromtimestamp(ts, self.zone)
        it = croniter(self.expression, start, second_at_beginning=self._six_fields, max_years_between_matches=8)
        while True:
            moment: datetime = it.get_next(datetime)
            if not self._hour_is_star and _second_occurrence(moment):
                continue  # its first occurrence, an hour earlier, is the one that fires
            yield moment.timestamp()

    def between(self, after: float, upto: float, limit: int) -> list[float]:
        """Fire times in (after, upto], at most `limit` of them (the latest ones kept)."""
        times: list[float] = []
        for moment in self.after(after):
            if moment > upto:
                break
            times.append(moment)
            if len(times) > limit:
                times.pop(0)
        return times

    def next_times(self, ts: float, count: int) -> list[float]:
        it = self.after(ts)
        return [next(it) for _ in range(count)]
