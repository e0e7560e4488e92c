"""The SLA clock stored on an application: start, pause, resume and stop it, and compute the
due time. The business-hours arithmetic lives in :mod:`reviewapp.review.sla`; this module maps
it onto the ``sla_*`` columns (all UTC):

* ``sla_target_seconds``: the tier's target in business seconds;
* ``sla_consumed_seconds``: business seconds used in earlier running periods;
* ``sla_running_since``: since when the clock runs (None: paused or stopped);
* ``sla_due_at``: the due instant while the clock runs (None otherwise), kept in a column so the
  queue can sort and filter on it with an index.

The clock starts when an application enters the queue, keeps running through claims,
escalations and second approvals, pauses while mitigations are requested (the developer's turn)
and resumes on resubmission; a final decision or a withdrawal stops it.
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

from flask import current_app, has_app_context

from reviewapp.applications.models import Application
from reviewapp.review.sla import BusinessCalendar, SlaClock, load_calendar


@functools.cache
def _default_calendar() -> BusinessCalendar:
    return load_calendar()


def business_calendar() -> BusinessCalendar:
    """The app's business calendar (BUSINESS_HOURS_FILE, default
    ``<SEED_DIR>/business_hours.yaml``), loaded once per app; outside an app context (scripts,
    service calls in tests) the repository's ``config/business_hours.yaml``.

    Raises:
        ValueError: the calendar file is invalid (the message names the key).
    """
    if not has_app_context():
        return _default_calendar()
    cached = current_app.extensions.get("reviewapp.calendar")
    if cached is None:
        path = current_app.config.get("BUSINESS_HOURS_FILE") or (
            Path(current_app.config["SEED_DIR"]) / "business_hours.yaml"
        )
        cached = load_calendar(path)
        current_app.extensions["reviewapp.calendar"] = cached
    return cached  # type: ignore[no-any-return]


def clock_of(application: Application) -> SlaClock | None:
    """The application's clock, or None when it never started."""
    if application.sla_target_seconds is None:
        return None
    return SlaClock(
        target_seconds=application.sla_target_seconds,
        consumed_seconds=application.sla_consumed_seconds or 0,
        running_since=application.sla_running_since,
    )


def _store(application: Application, clock: SlaClock, cal: BusinessCalendar) -> None:
    if clock.due_at(cal) != application.sla_due_at:
        application.sla_breach_notified_at = None  # a new due time can be missed anew
    application.sla_target_seconds = clock.target_seconds
    application.sla_consumed_seconds = clock.consumed_seconds
    application.sla_running_since = clock.running_since
    application.sla_due_at = clock.due_at(cal)


def run_clock(
    application: Application, target_hours: float, now: dt.datetime, *, fresh: bool = False
) -> None:
    """Run the clock with the tier's target from ``now``: a fresh start (``fresh``: an
    application entering the queue for the first time, or an appeal), or a resumption that
    keeps the business time already used (a resubmission, a re-triage to another tier).
    A clock that already runs keeps its start and only takes the new target."""
    cal = business_calendar()
    target = int(round(target_hours * 3600))
    current = clock_of(application)
    if fresh or current is None:
        clock = SlaClock(target_seconds=target, consumed_seconds=0, running_since=now)
    else:
        clock = SlaClock(
            target_seconds=target,
            consumed_seconds=current.consumed_seconds,
            running_since=current.running_since or now,
        )
    _store(application, clock, cal)


def pause_clock(application: Application, now: dt.datetime) -> None:
    """Stop counting (waiting on the developer, or a final outcome): the business time used so
    far is kept in ``sla_consumed_seconds`` and the due time is cleared."""
    clock = clock_of(application)
    if clock is None:
        application.sla_due_at = None
        return
    _store(application, clock.pause(business_calendar(), now), business_calendar())
