"""The cron rules of recurring schedules, daylight saving included (gateway/cron.py)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from jobline.jobs.cron import Cron, InvalidCron

BERLIN = ZoneInfo("Europe/Berlin")


def local_times(expression: str, start: datetime, count: int) -> list[str]:
    cron = Cron.parse(expression, "Europe/Berlin")
    return [datetime.fromtimestamp(t, BERLIN).strftime("%m-%d %H:%M:%S%z") for t in cron.next_times(start.timestamp(), count)]


def test_a_local_time_skipped_by_spring_forward_fires_once_after_the_gap() -> None:
    assert local_times("30 2 * * *", datetime(2026, 3, 28, 12, tzinfo=BERLIN), 2) == \
        ["03-29 03:00:00+0200", "03-30 02:30:00+0200"]


def test_a_local_time_repeated_by_fall_back_fires_once() -> None:
    assert local_times("0 30 2 * * *", datetime(2026, 10, 24, 12, tzinfo=BERLIN), 2) == \
        ["10-25 02:30:00+0200", "10-26 02:30:00+0100"]


def test_an_hourly_schedule_fires_in_both_repeated_hours() -> None:
    assert local_times("0 * * * *", datetime(2026, 10, 25, 1, 30, tzinfo=BERLIN), 3) == \
        ["10-25 02:00:00+0200", "10-25 02:00:00+0100", "10-25 03:00:00+0100"]


def test_six_fields_put_seconds_first_and_five_mean_whole_minutes() -> None:
    start = datetime(2026, 1, 1, 0, 0, 0, tzinfo=BERLIN)
    assert local_times("*/20 * * * * *", start, 3) == ["01-01 00:00:20+0100", "01-01 00:00:40+0100", "01-01 00:01:00+0100"]
    assert local_times("*/20 * * * *", start, 2) == ["01-01 00:20:00+0100", "01-01 00:40:00+0100"]
    assert local_times("@daily", start, 1) == ["01-02 00:00:00+0100"]


def test_between_keeps_the_latest_ticks_when_there_are_too_many() -> None:
    cron = Cron.parse("* * * * * *")
    assert cron.between(100.0, 110.0, limit=3) == [108.0, 109.0, 110.0]
    assert cron.between(100.0, 100.5, limit=3) == []


@pytest.mark.parametrize("expression, zone", [("* * *", "UTC"), ("61 * * * * *", "UTC"), ("0 0 30 2 *", "UTC"),
                                              ("* * * * *", "Nowhere/Land"), ("* * * * *", "")])
def test_what_cannot_be_a_schedule_is_refused(expression: str, zone: str) -> None:
    with pytest.raises(InvalidCron):
        Cron.parse(expression, zone)
