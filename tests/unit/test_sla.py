"""The SLA clock: business-hours targets across weekends, holidays and daylight-saving changes.

Expected instants are worked out by hand in the comments (New York is UTC-4 in summer time, EDT,
and UTC-5 in winter time, EST; in 2026 summer time starts Sun 8 Mar and ends Sun 1 Nov).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine

from reviewapp.review.sla import (
    DEFAULT_CALENDAR_PATH,
    BusinessCalendar,
    SlaClock,
    add_business_seconds,
    business_seconds_between,
    describe,
    is_due_soon,
    is_overdue,
    load_calendar,
    local_time,
)

NEW_YORK = ZoneInfo("America/New_York")
UTC = dt.UTC
HOUR = 3600

SETTINGS: dict[str, Any] = {
    "timezone": "America/New_York",
    "business_days": ["mon", "tue", "wed", "thu", "fri"],
    "opens": "09:00",
    "closes": "17:00",
    "holiday_calendar": "US",
    "extra_holidays": [],
    "due_soon_hours": 4,
}


def calendar(**changes: Any) -> BusinessCalendar:
    return BusinessCalendar.from_mapping({**SETTINGS, **changes})


@pytest.fixture
def cal() -> BusinessCalendar:
    return calendar()


def ny(year: int, month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    """A New York wall-clock time as the UTC instant it denotes."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=NEW_YORK).astimezone(UTC)


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- the shipped configuration ---------------------------------------------------------------


def test_shipped_config_is_new_york_weekdays_nine_to_five_with_us_holidays() -> None:
    cal = load_calendar(DEFAULT_CALENDAR_PATH)
    assert cal.tz == NEW_YORK
    assert cal.weekdays == frozenset({0, 1, 2, 3, 4})
    assert (cal.opens, cal.closes) == (dt.time(9), dt.time(17))
    assert cal.is_holiday(dt.date(2026, 11, 26))  # Thanksgiving
    assert cal.due_soon_hours == 4
    assert cal == calendar()


# --- weekends, opening hours, holidays -------------------------------------------------------


def test_24h_target_started_friday_afternoon_is_due_wednesday_afternoon(
    cal: BusinessCalendar,
) -> None:
    # Fri 16 Oct 15:00-17:00 = 2 h; Mon 19 = 10 h; Tue 20 = 18 h; Wed 21 09:00 + 6 h = 15:00 EDT.
    start = ny(2026, 10, 16, 15)
    assert start == utc(2026, 10, 16, 19)
    assert add_business_seconds(cal, start, 24 * HOUR) == utc(2026, 10, 21, 19)


def test_target_running_out_at_closing_is_due_at_closing_not_next_opening(
    cal: BusinessCalendar,
) -> None:
    assert add_business_seconds(cal, ny(2026, 10, 16, 9), 8 * HOUR) == ny(2026, 10, 16, 17)
    assert add_business_seconds(cal, ny(2026, 10, 16, 9), 8 * HOUR + 1) == ny(
        2026, 10, 19, 9
    ) + dt.timedelta(seconds=1)


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (ny(2026, 10, 17, 10), ny(2026, 10, 19, 10)),  # Saturday: counts from Monday 09:00
        (ny(2026, 10, 18, 23, 30), ny(2026, 10, 19, 10)),  # Sunday night
        (ny(2026, 10, 20, 7), ny(2026, 10, 20, 10)),  # before opening
        (ny(2026, 10, 20, 18), ny(2026, 10, 21, 10)),  # after closing
        (ny(2026, 10, 20, 17), ny(2026, 10, 21, 10)),  # exactly at closing
        (ny(2026, 10, 20, 9), ny(2026, 10, 20, 10)),  # exactly at opening
    ],
)
def test_start_outside_business_hours_counts_from_the_next_opening(
    cal: BusinessCalendar, start: dt.datetime, expected: dt.datetime
) -> None:
    assert add_business_seconds(cal, start, HOUR) == expected


def test_zero_seconds_returns_start_unchanged_even_on_a_weekend(cal: BusinessCalendar) -> None:
    saturday = ny(2026, 10, 17, 10)
    assert add_business_seconds(cal, saturday, 0) == saturday


def test_thanksgiving_is_skipped(cal: BusinessCalendar) -> None:
    # Wed 25 Nov 13:00-17:00 = 4 h; Thu 26 Nov is Thanksgiving; Fri 27 09:00 + 4 h = 13:00 EST.
    assert add_business_seconds(cal, ny(2026, 11, 25, 13), 8 * HOUR) == utc(2026, 11, 27, 18)


def test_christmas_and_the_weekend_after_it_are_skipped(cal: BusinessCalendar) -> None:
    # Thu 24 Dec 15:00-17:00 = 2 h; Fri 25 Christmas; Sat, Sun; Mon 28 09:00 + 6 h = 15:00 EST.
    assert add_business_seconds(cal, ny(2026, 12, 24, 15), 8 * HOUR) == utc(2026, 12, 28, 20)


def test_extra_company_holiday_is_skipped_as_well() -> None:
    cal = calendar(extra_holidays=["2026-12-24"])
    # Wed 23 Dec 15:00-17:00 = 2 h; Thu 24 company day off; Fri 25 Christmas; Mon 28 + 6 h.
    assert add_business_seconds(cal, ny(2026, 12, 23, 15), 8 * HOUR) == ny(2026, 12, 28, 15)


def test_without_a_holiday_calendar_thanksgiving_is_a_working_day() -> None:
    cal = calendar(holiday_calendar="")
    assert add_business_seconds(cal, ny(2026, 11, 25, 13), 8 * HOUR) == ny(2026, 11, 26, 13)


def test_observed_holiday_is_skipped(cal: BusinessCalendar) -> None:
    # 4 July 2026 is a Saturday, observed Fri 3 July: Thu 2 Jul 16:00 + 2 h -> Mon 6 Jul 10:00.
    assert add_business_seconds(cal, ny(2026, 7, 2, 16), 2 * HOUR) == ny(2026, 7, 6, 10)


def test_new_years_day_observed_in_the_previous_year_is_skipped(cal: BusinessCalendar) -> None:
    # 1 Jan 2028 is a Saturday, observed Fri 31 Dec 2027: Thu 30 Dec 16:00 + 2 h -> Mon 3 Jan.
    assert add_business_seconds(cal, ny(2027, 12, 30, 16), 2 * HOUR) == ny(2028, 1, 3, 10)


# --- daylight-saving changes -----------------------------------------------------------------


def test_target_spanning_the_end_of_summer_time_keeps_nine_o_clock_opening(
    cal: BusinessCalendar,
) -> None:
    # Fri 30 Oct 13:00 EDT (17:00 UTC) - 17:00 = 4 h; Sun 1 Nov clocks go back;
    # Mon 2 Nov 09:00 EST (14:00 UTC) + 4 h = 13:00 EST = 18:00 UTC, not 17:00 UTC.
    start = ny(2026, 10, 30, 13)
    assert start == utc(2026, 10, 30, 17)
    due = add_business_seconds(cal, start, 8 * HOUR)
    assert due == utc(2026, 11, 2, 18)
    assert due.astimezone(NEW_YORK).hour == 13


def test_target_spanning_the_start_of_summer_time_keeps_nine_o_clock_opening(
    cal: BusinessCalendar,
) -> None:
    # Fri 6 Mar 15:00 EST (20:00 UTC) - 17:00 = 2 h; Sun 8 Mar clocks go forward;
    # Mon 9 Mar 09:00 EDT (13:00 UTC) + 6 h = 15:00 EDT = 19:00 UTC, not 20:00 UTC.
    start = ny(2026, 3, 6, 15)
    assert start == utc(2026, 3, 6, 20)
    assert add_business_seconds(cal, start, 8 * HOUR) == utc(2026, 3, 9, 19)


def test_business_time_across_a_clock_change_weekend_is_two_full_days(
    cal: BusinessCalendar,
) -> None:
    # 79 hours pass on the wall clock in UTC (an hour is skipped), but both days are 8 h.
    assert business_seconds_between(cal, ny(2026, 3, 6, 9), ny(2026, 3, 9, 17)) == 16 * HOUR
    assert business_seconds_between(cal, ny(2026, 10, 30, 9), ny(2026, 11, 2, 17)) == 16 * HOUR


@pytest.mark.parametrize(
    ("day", "real_hours"),
    [(dt.date(2026, 3, 8), 5), (dt.date(2026, 11, 1), 7), (dt.date(2026, 3, 15), 6)],
)
def test_hours_containing_the_clock_change_count_real_elapsed_time(
    day: dt.date, real_hours: int
) -> None:
    # A 00:00-06:00 Sunday shift lasts 5 h when the clocks go forward and 7 h when they go back.
    cal = calendar(business_days=["sun"], opens="00:00", closes="06:00", holiday_calendar=None)
    start = dt.datetime.combine(day, dt.time(0), tzinfo=NEW_YORK)
    end = dt.datetime.combine(day, dt.time(6), tzinfo=NEW_YORK)
    assert business_seconds_between(cal, start, end) == real_hours * HOUR
    assert add_business_seconds(cal, start, real_hours * HOUR) == end.astimezone(UTC)


# --- between, and the round trip -------------------------------------------------------------


def test_business_seconds_between_counts_only_open_hours(cal: BusinessCalendar) -> None:
    assert business_seconds_between(cal, ny(2026, 10, 16, 15), ny(2026, 10, 19, 10)) == 3 * HOUR
    assert business_seconds_between(cal, ny(2026, 10, 17, 0), ny(2026, 10, 18, 23)) == 0
    assert business_seconds_between(cal, ny(2026, 10, 19, 10), ny(2026, 10, 16, 15)) == 0


def _grid_starts() -> list[dt.datetime]:
    # Every 7 h 13 min across both 2026 clock changes, Thanksgiving and Christmas week, so the
    # starts fall at every time of day, on weekends, holidays and the change days themselves.
    starts: list[dt.datetime] = []
    for first, last in (
        (utc(2026, 3, 1, 0), utc(2026, 3, 16, 0)),
        (utc(2026, 10, 25, 0), utc(2026, 11, 30, 0)),
        (utc(2026, 12, 20, 0), utc(2027, 1, 5, 0)),
    ):
        at = first
        while at < last:
            starts.append(at)
            at += dt.timedelta(hours=7, minutes=13)
    return starts


GRID_SECONDS = [0, 1, 59, 3599, 8 * HOUR - 1, 8 * HOUR, 8 * HOUR + 1, 24 * HOUR, 72 * HOUR + 17]


def test_round_trip_between_of_added_seconds_is_the_seconds(cal: BusinessCalendar) -> None:
    starts = _grid_starts()
    assert len(starts) > 200
    for start in starts:
        previous = start
        for seconds in GRID_SECONDS:
            due = add_business_seconds(cal, start, seconds)
            assert business_seconds_between(cal, start, due) == seconds, (start, seconds)
            assert due >= previous, (start, seconds)  # more time never lands earlier
            previous = due
            if seconds:
                # The due instant is inside business hours, never in a gap between them.
                local = due.astimezone(NEW_YORK)
                assert cal.is_business_day(local.date()), (start, seconds)
                assert dt.time(9) < local.time() <= dt.time(17), (start, seconds)
            back = add_business_seconds(cal, start, -seconds)
            assert business_seconds_between(cal, back, start) == seconds, (start, seconds)


def test_calendar_whose_every_business_day_is_a_holiday_fails_instead_of_looping() -> None:
    # Mondays only, and every Monday from 5 Jan 2026 for eleven years is a company holiday.
    mondays = [(dt.date(2026, 1, 5) + dt.timedelta(weeks=w)).isoformat() for w in range(11 * 53)]
    cal = calendar(business_days=["mon"], holiday_calendar=None, extra_holidays=mondays)
    with pytest.raises(ValueError, match="no business time"):
        add_business_seconds(cal, utc(2026, 1, 1, 0), 60)
    with pytest.raises(ValueError, match="no business time"):
        add_business_seconds(cal, utc(2037, 1, 1, 0), -60)


def test_target_longer_than_the_search_horizon_is_an_error(cal: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="within 3660 days"):
        add_business_seconds(cal, utc(2026, 1, 1, 0), 11 * 366 * 8 * HOUR)


def test_calendar_without_business_days_is_refused() -> None:
    with pytest.raises(ValueError, match="business_days: a calendar needs at least one"):
        calendar(business_days=[])
    with pytest.raises(ValueError, match="business_days"):
        BusinessCalendar(tz=NEW_YORK, weekdays=frozenset(), opens=dt.time(9), closes=dt.time(17))


# --- the clock: start, pause, resume ---------------------------------------------------------


def test_clock_started_friday_afternoon_runs_over_the_weekend(cal: BusinessCalendar) -> None:
    clock = SlaClock.start(24, ny(2026, 10, 16, 15))
    assert clock.target_seconds == 24 * HOUR
    assert clock.due_at(cal) == ny(2026, 10, 21, 15)
    # Monday noon: Fri 2 h + Mon 3 h used.
    assert clock.elapsed(cal, ny(2026, 10, 19, 12)) == 5 * HOUR
    assert clock.remaining(cal, ny(2026, 10, 19, 12)) == 19 * HOUR
    # Over the weekend the remaining time does not move.
    assert clock.remaining(cal, ny(2026, 10, 17, 12)) == 22 * HOUR
    assert clock.remaining(cal, ny(2026, 10, 18, 22)) == 22 * HOUR


def test_pause_while_waiting_on_the_developer_over_a_weekend_keeps_remaining_time(
    cal: BusinessCalendar,
) -> None:
    # Queued Wed 21 Oct 09:00 with a 24 h target; mitigations requested Fri 23 Oct 11:00 after
    # Wed 8 h + Thu 8 h + Fri 2 h = 18 h; resubmitted Tue 27 Oct 10:00 with 6 h left.
    clock = SlaClock.start(24, ny(2026, 10, 21, 9))
    paused = clock.pause(cal, ny(2026, 10, 23, 11))
    assert paused.running_since is None
    assert paused.consumed_seconds == 18 * HOUR
    assert paused.due_at(cal) is None
    for during in (ny(2026, 10, 23, 16), ny(2026, 10, 26, 12), ny(2026, 10, 27, 9, 59)):
        assert paused.remaining(cal, during) == 6 * HOUR

    resumed = paused.resume(ny(2026, 10, 27, 10))
    assert resumed.remaining(cal, ny(2026, 10, 27, 10)) == 6 * HOUR
    assert resumed.due_at(cal) == ny(2026, 10, 27, 16)
    assert resumed.remaining(cal, ny(2026, 10, 27, 17)) == -HOUR


def test_pause_and_resume_are_idempotent(cal: BusinessCalendar) -> None:
    clock = SlaClock.start(8, ny(2026, 10, 21, 9))
    assert clock.resume(ny(2026, 10, 21, 12)) == clock
    paused = clock.pause(cal, ny(2026, 10, 21, 12))
    assert paused.pause(cal, ny(2026, 10, 22, 12)) == paused


def test_clock_overdue_before_a_pause_stays_overdue_after_resuming(
    cal: BusinessCalendar,
) -> None:
    # 8 h target from Mon 19 Oct 09:00; paused Tue 20 Oct 11:00 after 10 h (2 h overdue).
    paused = SlaClock.start(8, ny(2026, 10, 19, 9)).pause(cal, ny(2026, 10, 20, 11))
    assert paused.remaining(cal, ny(2026, 10, 21, 9)) == -2 * HOUR
    assert is_overdue(cal, paused, ny(2026, 10, 21, 9))
    resumed = paused.resume(ny(2026, 10, 22, 9))
    # The due time is the instant 2 business hours before the resume: Wed 21 Oct 15:00.
    assert resumed.due_at(cal) == ny(2026, 10, 21, 15)
    assert resumed.remaining(cal, ny(2026, 10, 22, 10)) == -3 * HOUR
    assert is_overdue(cal, resumed, ny(2026, 10, 22, 10))


def test_remaining_agrees_with_business_time_to_the_due_instant(cal: BusinessCalendar) -> None:
    clock = SlaClock(target_seconds=24 * HOUR, consumed_seconds=5 * HOUR).resume(
        ny(2026, 11, 24, 16)
    )
    due = clock.due_at(cal)
    assert due is not None
    for now in (ny(2026, 11, 25, 10), ny(2026, 11, 26, 12), ny(2026, 12, 3, 11)):
        expected = (
            business_seconds_between(cal, now, due)
            if now <= due
            else -business_seconds_between(cal, due, now)
        )
        assert clock.remaining(cal, now) == expected


def test_is_overdue_and_is_due_soon(cal: BusinessCalendar) -> None:
    clock = SlaClock.start(8, ny(2026, 10, 19, 9))  # due Mon 19 Oct 17:00
    assert not is_due_soon(cal, clock, ny(2026, 10, 19, 12, 59))  # 4 h 1 min left
    assert is_due_soon(cal, clock, ny(2026, 10, 19, 13))  # exactly 4 h left
    assert is_due_soon(cal, clock, ny(2026, 10, 19, 13), due_soon_hours=4)
    assert not is_due_soon(cal, clock, ny(2026, 10, 19, 13), due_soon_hours=2)
    assert not is_overdue(cal, clock, ny(2026, 10, 19, 17))  # due at 17:00 exactly
    # After closing: no business time has passed (remaining 0) but the due time has.
    assert clock.remaining(cal, ny(2026, 10, 19, 18)) == 0
    assert is_overdue(cal, clock, ny(2026, 10, 19, 18))
    assert not is_due_soon(cal, clock, ny(2026, 10, 19, 18))
    paused = clock.pause(cal, ny(2026, 10, 19, 14))
    assert not is_due_soon(cal, paused, ny(2026, 10, 19, 14))
    assert not is_overdue(cal, paused, ny(2026, 10, 30, 14))


def test_fractional_target_hours_round_to_the_second(cal: BusinessCalendar) -> None:
    assert SlaClock.start(1.5, utc(2026, 10, 19, 14)).target_seconds == 5400


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), True])
def test_bad_target_hours_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="target_hours"):
        SlaClock.start(bad, utc(2026, 10, 19, 14))


# --- frozen time: what a viewer sees ---------------------------------------------------------


def test_describe_flips_from_due_in_to_overdue_by_as_time_passes(cal: BusinessCalendar) -> None:
    with time_machine.travel(ny(2026, 10, 16, 15), tick=False) as traveller:
        clock = SlaClock.start(24, dt.datetime.now(UTC))
        due = clock.due_at(cal)
        assert due == ny(2026, 10, 21, 15)
        assert describe(due, dt.datetime.now(UTC)) == "due in 5 d"

        traveller.move_to(ny(2026, 10, 21, 11, 40))
        assert describe(due, dt.datetime.now(UTC)) == "due in 3 h 20 min"
        assert is_due_soon(cal, clock, dt.datetime.now(UTC))

        traveller.move_to(ny(2026, 10, 21, 14, 15))
        assert describe(due, dt.datetime.now(UTC)) == "due in 45 min"

        traveller.move_to(ny(2026, 10, 21, 15))
        assert describe(due, dt.datetime.now(UTC)) == "due in less than 1 min"
        assert not is_overdue(cal, clock, dt.datetime.now(UTC))

        traveller.shift(dt.timedelta(seconds=1))
        assert describe(due, dt.datetime.now(UTC)) == "overdue by less than 1 min"
        assert is_overdue(cal, clock, dt.datetime.now(UTC))

        traveller.move_to(ny(2026, 10, 22, 17, 30))
        assert describe(due, dt.datetime.now(UTC)) == "overdue by 1 d 2 h"


def test_frozen_clock_across_the_autumn_clock_change_weekend(cal: BusinessCalendar) -> None:
    # Due Mon 2 Nov 13:00 EST; seen from Fri 30 Oct 17:00 EDT that is 68 h of wall-clock time
    # plus the hour the clocks went back: 2 d 21 h.
    with time_machine.travel(ny(2026, 10, 30, 13), tick=False) as traveller:
        clock = SlaClock.start(8, dt.datetime.now(UTC))
        due = clock.due_at(cal)
        assert due == utc(2026, 11, 2, 18)
        traveller.move_to(ny(2026, 10, 30, 17))
        assert describe(due, dt.datetime.now(UTC)) == "due in 2 d 21 h"
        assert clock.remaining(cal, dt.datetime.now(UTC)) == 4 * HOUR
        traveller.move_to(ny(2026, 11, 1, 12))
        assert clock.remaining(cal, dt.datetime.now(UTC)) == 4 * HOUR
        assert local_time(due, "America/New_York") == "Mon 2 Nov 2026, 13:00 EST"


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (dt.timedelta(hours=3, minutes=20, seconds=59), "due in 3 h 20 min"),
        (dt.timedelta(minutes=45), "due in 45 min"),
        (dt.timedelta(days=2), "due in 2 d"),
        (dt.timedelta(days=1, minutes=5), "due in 1 d"),
        (dt.timedelta(days=1, hours=2, minutes=59), "due in 1 d 2 h"),
        (dt.timedelta(hours=5), "due in 5 h"),
        (dt.timedelta(0), "due in less than 1 min"),
        (-dt.timedelta(days=1, hours=2, minutes=10), "overdue by 1 d 2 h"),
        (-dt.timedelta(minutes=1), "overdue by 1 min"),
        (-dt.timedelta(days=40, hours=1), "overdue by 40 d 1 h"),
    ],
)
def test_describe_shows_the_two_largest_units(delta: dt.timedelta, text: str) -> None:
    now = utc(2026, 10, 19, 14)
    assert describe(now + delta, now) == text


@pytest.mark.parametrize(
    ("zone", "text"),
    [
        ("America/New_York", "Tue 1 Dec 2026, 14:00 EST"),
        ("Europe/Berlin", "Tue 1 Dec 2026, 20:00 CET"),
        ("Asia/Kolkata", "Wed 2 Dec 2026, 00:30 IST"),
        ("UTC", "Tue 1 Dec 2026, 19:00 UTC"),
        ("Mars/Olympus_Mons", "Tue 1 Dec 2026, 19:00 UTC"),
        ("", "Tue 1 Dec 2026, 19:00 UTC"),
        (None, "Tue 1 Dec 2026, 19:00 UTC"),
        ("../../etc/passwd", "Tue 1 Dec 2026, 19:00 UTC"),
    ],
)
def test_local_time_is_shown_in_the_viewers_own_zone(zone: str | None, text: str) -> None:
    assert local_time(utc(2026, 12, 1, 19), zone) == text


def test_local_time_in_summer_shows_daylight_time() -> None:
    assert local_time(utc(2026, 7, 1, 13), "America/New_York") == "Wed 1 Jul 2026, 09:00 EDT"


# --- refusing naive datetimes ----------------------------------------------------------------


def test_naive_datetimes_are_refused_everywhere(cal: BusinessCalendar) -> None:
    naive = dt.datetime(2026, 10, 19, 9)
    aware = utc(2026, 10, 19, 14)
    clock = SlaClock.start(8, aware)
    calls = [
        lambda: add_business_seconds(cal, naive, 60),
        lambda: business_seconds_between(cal, naive, aware),
        lambda: business_seconds_between(cal, aware, naive),
        lambda: SlaClock.start(8, naive),
        lambda: SlaClock(target_seconds=60, running_since=naive),
        lambda: clock.elapsed(cal, naive),
        lambda: clock.pause(cal, naive),
        lambda: clock.pause(cal, aware).resume(naive),
        lambda: is_overdue(cal, clock, naive),
        lambda: describe(naive, aware),
        lambda: describe(aware, naive),
        lambda: local_time(naive, "UTC"),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="naive datetime"):
            call()


def test_aware_non_utc_input_is_accepted_and_output_is_utc(cal: BusinessCalendar) -> None:
    start = dt.datetime(2026, 10, 16, 15, tzinfo=NEW_YORK)
    due = add_business_seconds(cal, start, 24 * HOUR)
    assert due == utc(2026, 10, 21, 19)
    assert due.tzinfo is UTC
    assert SlaClock.start(1, start).running_since == utc(2026, 10, 16, 19)


# --- configuration validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"timezone": "America/Gotham"}, "timezone: unknown time zone 'America/Gotham'"),
        ({"timezone": ""}, "timezone: expected an IANA time zone name"),
        ({"business_days": ["mon", "funday"]}, "business_days: unknown weekday 'funday'"),
        ({"business_days": "mon"}, "business_days: expected a list"),
        ({"opens": "9am"}, "opens: not a valid time '9am'"),
        ({"closes": "25:00"}, "closes: not a valid time '25:00'"),
        ({"closes": 1020}, 'closes: expected a quoted "HH:MM" time, got the number 1020'),
        ({"opens": "17:00", "closes": "09:00"}, r"opens/closes: opens \(17:00\) must be before"),
        ({"opens": "09:00", "closes": "09:00"}, "opens/closes"),
        ({"holiday_calendar": "XX"}, "holiday_calendar: unknown country code 'XX'"),
        ({"holiday_calendar": 1}, "holiday_calendar: expected a country code"),
        ({"extra_holidays": ["2026-12-24", "24/12/2026"]}, r"extra_holidays\[1\]: not a date"),
        ({"extra_holidays": ["2026-02-30"]}, r"extra_holidays\[0\]: not a date '2026-02-30'"),
        ({"extra_holidays": "2026-12-24"}, "extra_holidays: expected a list"),
        ({"due_soon_hours": -1}, "due_soon_hours: expected a number of hours >= 0"),
        ({"due_soon_hours": "soon"}, "due_soon_hours"),
        ({"closing": "17:00"}, "closing: unknown key"),
        ({"timezone": None}, "timezone: missing"),
    ],
)
def test_config_errors_name_the_key_and_the_problem(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        calendar(**changes)


def test_missing_key_is_named() -> None:
    settings = {k: v for k, v in SETTINGS.items() if k != "closes"}
    with pytest.raises(ValueError, match="^closes: missing"):
        BusinessCalendar.from_mapping(settings)


def test_optional_keys_may_be_left_out() -> None:
    cal = BusinessCalendar.from_mapping(
        {
            "timezone": "Europe/Berlin",
            "business_days": ["Monday", "TUE"],
            "opens": "8:30",
            "closes": "16:00",
        }
    )
    assert cal.weekdays == frozenset({0, 1})
    assert cal.opens == dt.time(8, 30)
    assert cal.holiday_country is None
    assert cal.extra_holidays == frozenset()
    assert cal.due_soon_hours == 4


def test_load_calendar_reports_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "business_hours.yaml"
    # Unquoted, YAML 1.1 reads 17:00 as the base-60 number 1020; unquoted dates become dates.
    path.write_text(
        "timezone: Europe/London\nbusiness_days: [mon, tue]\nopens: '09:00'\nclosses: 17:00\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match=r"business_hours\.yaml: closses: unknown key"):
        load_calendar(path)
    path.write_text(
        "timezone: Europe/London\nbusiness_days: [mon, tue]\nopens: '09:00'\ncloses: 17:00\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="closes: expected a quoted"):
        load_calendar(path)
    path.write_text(
        "timezone: Europe/London\nbusiness_days: [mon]\nopens: '09:00'\ncloses: '17:00'\n"
        "extra_holidays: [2026-12-24]\n",
        encoding="utf-8",
    )
    assert load_calendar(path).extra_holidays == frozenset({dt.date(2026, 12, 24)})
    path.write_text("timezone: [unclosed\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_calendar(path)
