"""Leases: renewal by the holder, expiry by the sweeper (audited), nothing lost on expiry."""

from __future__ import annotations

import datetime as dt

import time_machine
from sqlalchemy import select

from reviewapp.applications.models import Status
from reviewapp.audit.models import AuditEvent
from reviewapp.db import utcnow
from reviewapp.review.models import Note
from tests.conftest import post_form
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory


def test_renew_extends_the_lease_only_for_its_holder(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    staff = OrganizationFactory()
    holder, other = (
        UserFactory(reviewer=True, organization=staff),
        UserFactory(reviewer=True, organization=staff),
    )
    client = login(holder)
    post_form(client, f"/review/{application.reference}/claim", token_from="/queue")
    db.expire_all()
    first_expiry = application.lease_expires_at
    with time_machine.travel(utcnow() + dt.timedelta(minutes=20), tick=False):
        response = post_form(
            client,
            f"/review/{application.reference}/renew",
            token_from="/queue",
            follow_redirects=True,
        )
        assert b"Lease renewed until" in response.data
    db.expire_all()
    assert application.lease_expires_at >= first_expiry + dt.timedelta(minutes=19)
    refused = post_form(
        login(other),
        f"/review/{application.reference}/renew",
        token_from="/queue",
        follow_redirects=True,
    )
    assert b"Your lease has already ended" in refused.data


def test_sweeper_returns_expired_leases_and_keeps_notes(app, login, db) -> None:
    application = ApplicationFactory(submitted=True)
    reviewer = UserFactory(reviewer=True, organization=OrganizationFactory())
    client = login(reviewer)
    post_form(client, f"/review/{application.reference}/claim", token_from="/queue")
    post_form(
        client,
        f"/review/{application.reference}/notes",
        {"body": "half-way through"},
        token_from="/queue",
    )
    with time_machine.travel(utcnow() + dt.timedelta(minutes=31), tick=False):
        result = app.test_cli_runner().invoke(args=["sweep"])
    assert result.exit_code == 0 and "1 expired leases returned" in result.output
    db.expire_all()
    assert application.status == Status.queued and application.claimed_by_id is None
    assert db.scalars(select(Note.body).where(Note.application_id == application.id)).all() == [
        "half-way through"
    ]
    assert (
        db.scalars(select(AuditEvent).where(AuditEvent.action == "application.lease_expired"))
        .one()
        .actor_id
        is None
    )
    again = app.test_cli_runner().invoke(args=["sweep"])
    assert "0 expired leases" in again.output


def test_one_reviewer_cannot_hoard_the_queue(app, login, db, monkeypatch) -> None:
    from tests.conftest import post_form
    from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

    monkeypatch.setitem(app.config, "MAX_CLAIMS_PER_REVIEWER", 2)
    for _ in range(3):
        ApplicationFactory(submitted=True)
    client = login(UserFactory(reviewer=True, organization=OrganizationFactory()))
    for _ in range(2):
        assert post_form(client, "/queue/claim-next", token_from="/queue").status_code == 302
    third = post_form(client, "/queue/claim-next", token_from="/queue", follow_redirects=True)
    assert "You already hold 2 applications (the limit is 2)" in third.get_data(as_text=True)
