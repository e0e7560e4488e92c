"""The SLA clock: business-hours arithmetic for review targets. Pure code, no Flask, no database.

Each risk tier has a review target in *business hours*. Business hours are defined by one
:class:`BusinessCalendar` (``config/business_hours.yaml``): a reference time zone, business days,
an opening and a closing wall-clock time, and holidays. The clock starts when an application
enters the queue, pauses while the application waits on the developer, and is shown to each viewer
as "due in …" / "overdue by …" plus the due time in the viewer's own time zone.

Conventions used throughout:

* Every datetime passed in must be timezone-aware (a naive datetime is a ``ValueError``); every
  datetime returned is in UTC. Aware datetimes in other zones are accepted and treated as the
  instant they denote.
* Durations are whole seconds (``int``) of business time unless a name says otherwise.
* A business day's hours are the wall-clock span ``opens``–``closes`` in the reference zone on that
  date, converted to UTC for that date. So the opening stays at 09:00 local across a daylight-
  saving change while its UTC instant moves, and business time is real elapsed time: on a day
  whose business hours contain the clock change, an ``00:00``–``06:00`` span lasts 5 or 7 hours.
* A wall-clock time that does not exist (skipped by a spring-forward) is read with the offset in
  force before the change; an ambiguous one (repeated by a fall-back) is read as its first
  occurrence (``fold=0``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import yaml

from reviewapp.textfiles import InputFileError, load_yaml, read_utf8, yaml_problem

UTC = dt.UTC

#: Where the application's calendar lives (see :func:`load_calendar`).
DEFAULT_CALENDAR_PATH = Path(__file__).resolve().parents[2] / "config" / "business_hours.yaml"

#: How far :func:`add_business_seconds` searches before giving up. A target that cannot be met
#: within this many calendar days is a configuration error, not a due date.
MAX_SEARCH_DAYS = 10 * 366

WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_WEEKDAY_NAMES = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)
# English names, not strftime's %a/%b, so the text does not depend on the process locale.
_MONTH_ABBR = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DAY_ABBR = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

_CONFIG_KEYS = (
    "timezone",
    "business_days",
    "opens",
    "closes",
    "holiday_calendar",
    "extra_holidays",
    "due_soon_hours",
)
_REQUIRED_KEYS = ("timezone", "business_days", "opens", "closes")
_ZERO = dt.timedelta(0)
_SECOND = dt.timedelta(seconds=1)


# --------------------------------------------------------------------------------------------
# Calendar


@dataclass(frozen=True)
class BusinessCalendar:
    """When the review team works: one reference time zone, business days, hours and holidays.

    Fields:
        tz: the reference time zone (``zoneinfo.ZoneInfo``) in which ``opens``/``closes`` and
            holiday dates are read.
        weekdays: business weekdays as ints, 0 = Monday … 6 = Sunday; at least one.
        opens, closes: naive ``datetime.time`` wall-clock times in ``tz``; ``opens < closes``
            (business hours never cross midnight).
        holiday_country: a country code known to the ``holidays`` package (e.g. ``"US"``,
            public holidays including observed days), or ``None`` for no public holidays.
        extra_holidays: further non-working dates (company days off).
        due_soon_hours: business hours within which a running clock counts as "due soon"
            (:func:`is_due_soon`); ``>= 0``.

    Raises ``ValueError`` naming the configuration key when a field is invalid. Public holidays
    are looked up lazily, one year at a time, and cached on the instance.
    """

    tz: ZoneInfo
    weekdays: frozenset[int]
    opens: dt.time
    closes: dt.time
    holiday_country: str | None = None
    extra_holidays: frozenset[dt.date] = frozenset()
    due_soon_hours: float = 4
    _holiday_years: dict[int, frozenset[dt.date]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.tz, ZoneInfo):
            raise ValueError(f"timezone: expected a zoneinfo.ZoneInfo, got {self.tz!r}")
        if not self.weekdays:
            raise ValueError("business_days: a calendar needs at least one business day")
        if not all(isinstance(d, int) and 0 <= d <= 6 for d in self.weekdays):
            raise ValueError(
                f"business_days: weekdays must be ints 0 (Mon) to 6 (Sun), got {sorted(self.weekdays)}"
            )
        for key, value in (("opens", self.opens), ("closes", self.closes)):
            if not isinstance(value, dt.time) or value.tzinfo is not None:
                raise ValueError(
                    f"{key}: expected a wall-clock time without time zone, got {value!r}"
                )
        if self.opens >= self.closes:
            raise ValueError(
                f"opens/closes: opens ({self.opens:%H:%M}) must be before closes "
                f"({self.closes:%H:%M}); business hours cannot cross midnight"
            )
        if self.holiday_country is not None:
            try:
                holidays.country_holidays(self.holiday_country)
            except NotImplementedError:
                raise ValueError(
                    f"holiday_calendar: unknown country code {self.holiday_country!r} "
                    "(use a code the 'holidays' package supports, e.g. 'US', 'GB', 'DE')"
                ) from None
        if isinstance(self.due_soon_hours, bool) or not (
            isinstance(self.due_soon_hours, int | float)
            and math.isfinite(self.due_soon_hours)
            and self.due_soon_hours >= 0
        ):
            raise ValueError(
                f"due_soon_hours: expected a number of hours >= 0, got {self.due_soon_hours!r}"
            )

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> BusinessCalendar:
        """Build a calendar from a parsed configuration mapping (the YAML document's shape).

        Keys: ``timezone`` (IANA name), ``business_days`` (list of ``mon`` … ``sun``, or full
        English day names), ``opens`` and ``closes`` (``"HH:MM"`` strings), optional
        ``holiday_calendar`` (country code; empty or absent = no public holidays), optional
        ``extra_holidays`` (list of ISO ``YYYY-MM-DD`` dates), optional ``due_soon_hours``
        (number, default 4).

        Raises ``ValueError`` whose message starts with the offending key and says what is wrong:
        an unknown or missing key, unknown time zone, unknown weekday name, bad time, bad date,
        unknown holiday country.
        """
        if not isinstance(raw, Mapping):
            raise ValueError(f"business hours: expected a mapping of settings, got {raw!r}")
        unknown = sorted(str(k) for k in raw if k not in _CONFIG_KEYS)
        if unknown:
            raise ValueError(
                f"{unknown[0]}: unknown key; expected one of {', '.join(_CONFIG_KEYS)}"
            )
        for key in _REQUIRED_KEYS:
            if raw.get(key) is None:
                raise ValueError(f"{key}: missing; this key is required")

        due_soon = raw.get("due_soon_hours")
        return cls(
            tz=_parse_timezone(raw["timezone"]),
            weekdays=_parse_weekdays(raw["business_days"]),
            opens=_parse_time("opens", raw["opens"]),
            closes=_parse_time("closes", raw["closes"]),
            holiday_country=_parse_country(raw.get("holiday_calendar")),
            extra_holidays=_parse_dates(raw.get("extra_holidays")),
            due_soon_hours=4 if due_soon is None else due_soon,
        )

    def is_holiday(self, day: dt.date) -> bool:
        """Whether ``day`` (a local date in ``tz``) is a public or extra holiday."""
        if day in self.extra_holidays:
            return True
        if self.holiday_country is None:
            return False
        return day in self._holidays_in(day.year)

    def is_business_day(self, day: dt.date) -> bool:
        """Whether ``day`` (a local date in ``tz``) is a business weekday and not a holiday."""
        return day.weekday() in self.weekdays and not self.is_holiday(day)

    def hours_on(self, day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
        """The UTC instants (open, close) of business hours on local date ``day``.

        ``None`` when ``day`` is not a business day, or when a daylight-saving change leaves no
        time between opening and closing that day.
        """
        if not self.is_business_day(day):
            return None
        opens = dt.datetime.combine(day, self.opens, tzinfo=self.tz).astimezone(UTC)
        closes = dt.datetime.combine(day, self.closes, tzinfo=self.tz).astimezone(UTC)
        if closes <= opens:
            return None
        return opens, closes

    def _holidays_in(self, year: int) -> frozenset[dt.date]:
        if self.holiday_country is None:
            return frozenset()
        cached = self._holiday_years.get(year)
        if cached is None:
            # An observed day can fall in the year before its holiday (New Year's Day on a
            # Saturday is observed on 31 December); generating the neighbouring years too finds
            # it whichever year the package files it under.
            table = holidays.country_holidays(self.holiday_country, years=range(year - 1, year + 2))
            cached = frozenset(d for d in table if d.year == year)
            self._holiday_years[year] = cached
        return cached


def load_calendar(path: str | Path = DEFAULT_CALENDAR_PATH) -> BusinessCalendar:
    """Read a business-hours YAML file (``config/business_hours.yaml`` by default).

    Returns a :class:`BusinessCalendar`. Raises ``OSError`` when the file cannot be read and
    ``ValueError`` (prefixed with the path, then the key) when its content is invalid.
    """
    path = Path(path)
    try:
        raw = load_yaml(read_utf8(path))
        return BusinessCalendar.from_mapping(raw if raw is not None else {})
    except InputFileError:
        raise
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {yaml_problem(exc)}") from exc
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def _parse_timezone(value: object) -> ZoneInfo:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"timezone: expected an IANA time zone name, got {value!r}")
    try:
        return ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"timezone: unknown time zone {value!r} (use an IANA name such as 'America/New_York')"
        ) from None


def _parse_weekdays(value: object) -> frozenset[int]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValueError(f"business_days: expected a list such as [mon, tue, wed], got {value!r}")
    days = set()
    for item in value:
        name = str(item).strip().lower()
        if name in WEEKDAY_NAMES:
            days.add(WEEKDAY_NAMES.index(name))
        elif name in _FULL_WEEKDAY_NAMES:
            days.add(_FULL_WEEKDAY_NAMES.index(name))
        else:
            raise ValueError(
                f"business_days: unknown weekday {item!r}; use {', '.join(WEEKDAY_NAMES)}"
            )
    if not days:
        raise ValueError("business_days: a calendar needs at least one business day")
    return frozenset(days)


def _parse_time(key: str, value: object) -> dt.time:
    if isinstance(value, dt.time):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 17:00 as the base-60 integer 1020.
        raise ValueError(
            f'{key}: expected a quoted "HH:MM" time, got the number {value} '
            f'(write it in quotes in YAML, e.g. {key}: "17:00")'
        )
    if isinstance(value, str):
        text = value.strip()
        parts = text.split(":")
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit() and len(parts[1]) == 2:
            hour, minute = int(parts[0]), int(parts[1])
            if hour < 24 and minute < 60:
                return dt.time(hour, minute)
    raise ValueError(f'{key}: not a valid time {value!r}; expected "HH:MM" (24-hour), e.g. "09:00"')


def _parse_country(value: object) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ValueError(f"holiday_calendar: expected a country code such as 'US', got {value!r}")
    return value.strip().upper()


def _parse_dates(value: object) -> frozenset[dt.date]:
    if value is None:
        return frozenset()
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValueError(f"extra_holidays: expected a list of YYYY-MM-DD dates, got {value!r}")
    dates = set()
    for index, item in enumerate(value):
        # YAML turns an unquoted 2026-12-24 into a date already; a datetime is a date subclass
        # but a time of day has no meaning for a holiday.
        if isinstance(item, dt.date) and not isinstance(item, dt.datetime):
            dates.add(item)
            continue
        try:
            if not isinstance(item, str):
                raise ValueError
            dates.add(dt.date.fromisoformat(item.strip()))
        except ValueError:
            raise ValueError(
                f"extra_holidays[{index}]: not a date {item!r}; expected YYYY-MM-DD"
            ) from None
    return frozenset(dates)


# --------------------------------------------------------------------------------------------
# Business-time arithmetic


def _as_utc(value: dt.datetime, name: str) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise ValueError(f"{name}: expected a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name}: naive datetime {value.isoformat()}; pass a timezone-aware UTC one"
        )
    return value.astimezone(UTC)


def _days(first: dt.date, step: int) -> Iterator[dt.date]:
    """Local dates from ``first`` onwards (``step`` +1) or backwards (-1), at most the cap."""
    day = first
    for _ in range(MAX_SEARCH_DAYS):
        yield day
        day += dt.timedelta(days=step)


def add_business_seconds(cal: BusinessCalendar, start: dt.datetime, seconds: int) -> dt.datetime:
    """The UTC instant at which ``seconds`` of business time have elapsed after ``start``.

    ``start`` is an aware datetime; outside business hours counting begins at the next opening.
    ``seconds`` is business seconds: 0 returns ``start`` (in UTC) unchanged; a negative value
    walks backwards (counting ends at the previous closing), so that
    ``business_seconds_between(cal, result, start) == -seconds``. When the amount runs out
    exactly at a closing time, the result is that closing instant, not the next opening.

    Raises ``ValueError`` for a naive ``start`` and when no such instant exists within
    :data:`MAX_SEARCH_DAYS` calendar days (a calendar whose every day is a holiday, or an
    absurdly large amount).
    """
    start = _as_utc(start, "start")
    if seconds == 0:
        return start
    left = dt.timedelta(seconds=abs(seconds))
    first = start.astimezone(cal.tz).date()
    if seconds > 0:
        # The day before too: cheap insurance against a business day whose hours end after
        # midnight UTC being missed when start is early on the next local date.
        for day in _days(first - dt.timedelta(days=1), +1):
            hours = cal.hours_on(day)
            if hours is None or hours[1] <= start:
                continue
            begin = max(hours[0], start)
            available = hours[1] - begin
            if left <= available:
                return begin + left
            left -= available
    else:
        for day in _days(first + dt.timedelta(days=1), -1):
            hours = cal.hours_on(day)
            if hours is None or hours[0] >= start:
                continue
            end = min(hours[1], start)
            available = end - hours[0]
            if left <= available:
                return end - left
            left -= available
    raise ValueError(
        f"no business time for {seconds} s within {MAX_SEARCH_DAYS} days of {start.isoformat()}; "
        "check business_days and holidays"
    )


def _business_time_between(
    cal: BusinessCalendar, start: dt.datetime, end: dt.datetime
) -> dt.timedelta:
    if end <= start:
        return _ZERO
    total = _ZERO
    day = start.astimezone(cal.tz).date() - dt.timedelta(days=1)
    last = end.astimezone(cal.tz).date() + dt.timedelta(days=1)
    while day <= last:
        hours = cal.hours_on(day)
        if hours is not None:
            overlap = min(hours[1], end) - max(hours[0], start)
            if overlap > _ZERO:
                total += overlap
        day += dt.timedelta(days=1)
    return total


def business_seconds_between(cal: BusinessCalendar, start: dt.datetime, end: dt.datetime) -> int:
    """Whole business seconds (rounded down) between two aware instants; 0 when ``end <= start``.

    Raises ``ValueError`` for a naive datetime. Cost is linear in the number of calendar days
    spanned.
    """
    start = _as_utc(start, "start")
    end = _as_utc(end, "end")
    return _business_time_between(cal, start, end) // _SECOND


# --------------------------------------------------------------------------------------------
# The clock


@dataclass(frozen=True)
class SlaClock:
    """The stored state of one application's SLA clock (immutable; methods return new clocks).

    Fields:
        target_seconds: the tier's target, in business seconds (``>= 0``).
        consumed_seconds: business seconds used in earlier running periods that have ended
            (``>= 0``).
        running_since: aware UTC instant the current running period began, or ``None`` while
            paused (waiting on the developer).

    Raises ``ValueError`` for negative amounts or a naive ``running_since``.
    """

    target_seconds: int
    consumed_seconds: int = 0
    running_since: dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.target_seconds < 0:
            raise ValueError(f"target_seconds: must be >= 0, got {self.target_seconds}")
        if self.consumed_seconds < 0:
            raise ValueError(f"consumed_seconds: must be >= 0, got {self.consumed_seconds}")
        if self.running_since is not None:
            object.__setattr__(self, "running_since", _as_utc(self.running_since, "running_since"))

    @classmethod
    def start(cls, target_hours: float, now: dt.datetime) -> SlaClock:
        """A clock that starts running at ``now`` (entering the queue) with a target in hours.

        ``target_hours`` is business hours (``>= 0``, fractions allowed, rounded to the second).
        Raises ``ValueError`` for a negative or non-finite target or a naive ``now``.
        """
        if isinstance(target_hours, bool) or not (
            isinstance(target_hours, int | float)
            and math.isfinite(target_hours)
            and target_hours >= 0
        ):
            raise ValueError(f"target_hours: expected a number of hours >= 0, got {target_hours!r}")
        return cls(target_seconds=round(target_hours * 3600), running_since=_as_utc(now, "now"))

    @property
    def is_running(self) -> bool:
        """Whether the clock is counting (not waiting on the developer)."""
        return self.running_since is not None

    def due_at(self, cal: BusinessCalendar) -> dt.datetime | None:
        """The UTC instant the target runs out if the clock keeps running; ``None`` when paused.

        When the target was already used up before the current running period, the due time
        lies before ``running_since``: the instant that many business seconds earlier.
        """
        if self.running_since is None:
            return None
        return add_business_seconds(
            cal, self.running_since, self.target_seconds - self.consumed_seconds
        )

    def elapsed(self, cal: BusinessCalendar, now: dt.datetime) -> int:
        """Business seconds used up to ``now`` (aware). Raises ``ValueError`` if ``now`` is naive."""
        now = _as_utc(now, "now")
        if self.running_since is None:
            return self.consumed_seconds
        return self.consumed_seconds + business_seconds_between(cal, self.running_since, now)

    def remaining(self, cal: BusinessCalendar, now: dt.datetime) -> int:
        """Business seconds left at ``now``: ``target - elapsed``, negative once overdue.

        Outside business hours just after the due time it is still 0 (no business time has
        passed), while :func:`is_overdue`, which compares wall-clock instants, is already true.
        """
        return self.target_seconds - self.elapsed(cal, now)

    def pause(self, cal: BusinessCalendar, now: dt.datetime) -> SlaClock:
        """Stop the clock at ``now`` (waiting on the developer), folding the running period's
        business seconds into ``consumed_seconds``. Pausing a paused clock returns it unchanged.
        Raises ``ValueError`` if ``now`` is naive."""
        now = _as_utc(now, "now")
        if self.running_since is None:
            return self
        return replace(self, consumed_seconds=self.elapsed(cal, now), running_since=None)

    def resume(self, now: dt.datetime) -> SlaClock:
        """Restart a paused clock at ``now`` (back in the queue); a running clock is returned
        unchanged. Raises ``ValueError`` if ``now`` is naive."""
        now = _as_utc(now, "now")
        if self.running_since is not None:
            return self
        return replace(self, running_since=now)


def is_overdue(cal: BusinessCalendar, clock: SlaClock, now: dt.datetime) -> bool:
    """Whether the clock's due time has passed at ``now`` (aware).

    A running clock is overdue when ``now`` is strictly after :meth:`SlaClock.due_at`, the same
    comparison the "overdue by" text makes. A paused clock is overdue when it had used up its
    whole target before it was paused. Raises ``ValueError`` if ``now`` is naive.
    """
    now = _as_utc(now, "now")
    due = clock.due_at(cal)
    if due is None:
        return clock.consumed_seconds >= clock.target_seconds
    return now > due


def is_due_soon(
    cal: BusinessCalendar,
    clock: SlaClock,
    now: dt.datetime,
    due_soon_hours: float | None = None,
) -> bool:
    """Whether a running clock is not yet overdue and has at most ``due_soon_hours`` business
    hours left at ``now`` (default: ``cal.due_soon_hours``). Paused clocks are never due soon.
    Raises ``ValueError`` if ``now`` is naive."""
    if clock.running_since is None or is_overdue(cal, clock, now):
        return False
    hours = cal.due_soon_hours if due_soon_hours is None else due_soon_hours
    return clock.remaining(cal, now) <= hours * 3600


# --------------------------------------------------------------------------------------------
# Display


def _span_text(span: dt.timedelta) -> str:
    minutes = span // dt.timedelta(minutes=1)
    if minutes == 0:
        return "less than 1 min"
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    units = [(days, "d"), (hours, "h"), (mins, "min")]
    first = next(i for i, (value, _) in enumerate(units) if value)
    shown = [units[first]]
    if first + 1 < len(units) and units[first + 1][0]:
        shown.append(units[first + 1])
    return " ".join(f"{value} {unit}" for value, unit in shown)


def describe(due_utc: dt.datetime, now_utc: dt.datetime) -> str:
    """Human text for a due time seen at ``now_utc``: ``"due in 3 h 20 min"``,
    ``"overdue by 1 d 2 h"``, ``"due in 45 min"``, ``"due in less than 1 min"``.

    Uses the wall-clock difference (not business time), rounded down to whole minutes, in the
    two largest units among days, hours and minutes (a zero second unit is left out). "overdue"
    means ``now_utc`` is strictly after ``due_utc``. Raises ``ValueError`` for naive datetimes.
    """
    delta = _as_utc(due_utc, "due_utc") - _as_utc(now_utc, "now_utc")
    if delta >= _ZERO:
        return f"due in {_span_text(delta)}"
    return f"overdue by {_span_text(-delta)}"


def local_time(due_utc: dt.datetime, tz_name: str | None) -> str:
    """Format an instant in a viewer's IANA time zone, e.g. ``"Tue 1 Dec 2026, 14:00 EST"``.

    An unknown, empty or ``None`` zone name falls back to UTC (``"…, 19:00 UTC"``). Names are
    English whatever the process locale. Raises ``ValueError`` if ``due_utc`` is naive.
    """
    return format_local(due_utc, resolve_zone(tz_name))


def resolve_zone(tz_name: str | None) -> dt.tzinfo:
    """The IANA zone named ``tz_name``; UTC for an unknown, empty or ``None`` name."""
    if tz_name:
        try:
            return ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            pass
    return UTC


def format_local(due_utc: dt.datetime, zone: dt.tzinfo) -> str:
    """:func:`local_time` with the zone already resolved (:func:`resolve_zone`): pages that
    show many instants resolve the viewer's zone once. Raises ``ValueError`` if ``due_utc``
    is naive."""
    local = _as_utc(due_utc, "due_utc").astimezone(zone)
    return (
        f"{_DAY_ABBR[local.weekday()]} {local.day} {_MONTH_ABBR[local.month - 1]} {local.year}, "
        f"{local:%H:%M} {local.tzname()}"
    )
