"""SLA clocks in business hours, with frozen time: across the end of daylight saving time, a
weekend and a holiday, paused while the developer works on mitigations; queue views; due times
in each viewer's own time zone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import time_machine

from reviewapp.applications.models import Status
from reviewapp.db import utcnow
from tests.conftest import post_form
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

NY = ZoneInfo("America/New_York")  # config/business_hours.yaml: Mon–Fri 09:00–17:00, US holidays


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=NY)


def test_clock_runs_in_business_hours_and_pauses_for_mitigations(login, db, app) -> None:
    staff = OrganizationFactory()
    reviewer = UserFactory(reviewer=True, organization=staff)
    # Fri 30 Oct 2026 15:00 EDT; daylight saving time ends on Sun 1 Nov
    with time_machine.travel(at(2026, 10, 30, 15, 0), tick=False):
        application = ApplicationFactory(submitted=True, high_tier=True)  # high: 24 business h
        db.flush()
        assert application.sla_target_seconds == 24 * 3600
        # Fri 2 h + Mon 8 h + Tue 8 h + Wed 6 h -> Wed 4 Nov 15:00 EST (20:00 UTC, not 19:00)
        assert application.sla_due_at == dt.datetime(2026, 11, 4, 20, 0, tzinfo=dt.UTC)
    with time_machine.travel(at(2026, 11, 2, 10, 0), tick=False):  # Mon 10:00 EST
        client = login(reviewer)
        page = client.get("/queue").get_data(as_text=True)
        assert "due in 2 d 5 h" in page and "Wed 4 Nov 2026, 15:00 EST" in page
        post_form(client, f"/review/{application.reference}/claim", token_from="/queue")
        response = post_form(
            client,
            f"/review/{application.reference}/decide",
            {
                "outcome": "request_mitigations",
                "citations": ["usage-2.1"],
                "template": "mitigations-standard",
                "safety_requirements": ["human-review-of-outputs"],
                "reason-human-review-of-outputs": "Outputs reach patients.",
            },
            token_from="/queue",
        )
        assert response.status_code == 302
    db.expire_all()
    assert application.status == Status.mitigations_requested
    assert application.sla_due_at is None and application.sla_running_since is None
    assert application.sla_consumed_seconds == 3 * 3600  # Fri 15–17, Mon 9–10
    # the developer resubmits on Saturday 7 Nov: the clock resumes with 21 h left, counted from
    # Mon 9 Nov 09:00; Wed 11 Nov is Veterans Day -> Mon 8 + Tue 8 + Thu 5 = Thu 12 Nov 14:00
    with time_machine.travel(at(2026, 11, 7, 11, 0), tick=False):
        dev = login(application.submitter)
        response = post_form(
            dev,
            f"/applications/{application.reference}/answers",
            {
                "attested-human-review-of-outputs": "yes",
                "details-human-review-of-outputs": "A nurse checks every answer before it is sent.",
                "resubmit": "1",
            },
            token_from=f"/applications/{application.reference}",
        )
        assert response.status_code == 302
    db.expire_all()
    assert application.status == Status.queued
    assert application.sla_due_at == dt.datetime(2026, 11, 12, 19, 0, tzinfo=dt.UTC)
    # seen from Berlin, the same due time reads in the viewer's zone
    reviewer.timezone = "Europe/Berlin"
    db.flush()
    with time_machine.travel(at(2026, 11, 13, 9, 0), tick=False):  # Fri 13 Nov, a day late
        page = login(reviewer).get("/queue?view=overdue").get_data(as_text=True)
        assert application.reference in page
        assert "overdue by 19 h" in page and "Thu 12 Nov 2026, 20:00 CET" in page


def test_queue_views(login, db, app) -> None:
    staff = OrganizationFactory()
    me = UserFactory(reviewer=True, organization=staff)
    other = UserFactory(reviewer=True, organization=staff)
    now = utcnow()
    overdue, soon, later, mine, theirs = (ApplicationFactory(submitted=True) for _ in range(5))
    overdue.sla_due_at = now - dt.timedelta(hours=1)
    soon.sla_due_at = now + dt.timedelta(minutes=30)
    for a in (later, mine, theirs):
        a.sla_due_at = now + dt.timedelta(days=30)
    db.flush()
    client = login(me)
    post_form(client, f"/review/{mine.reference}/claim", token_from="/queue")
    post_form(login(other), f"/review/{theirs.reference}/claim", token_from="/queue")

    def listed(query: str) -> set[str]:
        page = login(me).get("/queue" + query).get_data(as_text=True)
        return {a.reference for a in (overdue, soon, later, mine, theirs) if a.reference in page}

    everything = {a.reference for a in (overdue, soon, later, mine, theirs)}
    assert listed("") == everything
    assert listed("?view=overdue") == {overdue.reference}
    assert soon.reference in listed("?view=due_soon") and later.reference not in listed(
        "?view=due_soon"
    )
    assert listed("?view=unclaimed") == everything - {mine.reference, theirs.reference}
    assert listed("?mine=1") == {mine.reference}
    assert listed("?view=bogus") == everything  # an unknown view is ignored


def test_account_time_zone_setting(login, db) -> None:
    user = UserFactory()
    client = login(user)
    bad = post_form(client, "/account", {"timezone": "Mars/Olympus_Mons"}, token_from="/account")
    assert bad.status_code == 422 and "Not a valid choice" in bad.get_data(as_text=True)
    good = post_form(client, "/account", {"timezone": "Asia/Kolkata"}, token_from="/account")
    assert good.status_code == 302
    db.expire_all()
    assert user.timezone == "Asia/Kolkata"
