"""Emails from the outbox: submission received, decision (incl. mitigations requested and
appeal outcomes, covered in their own tests), and SLA breaches reported to the review leads."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from reviewapp.audit.models import OutboxEvent
from reviewapp.db import utcnow
from reviewapp.review.services import notify_sla_breaches
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory


def outbox(db, kind: str) -> list[OutboxEvent]:  # noqa: ANN001
    return list(db.scalars(select(OutboxEvent).where(OutboxEvent.kind == kind)))


def test_submission_is_confirmed_to_the_organization(db, app) -> None:
    with app.app_context():
        application = ApplicationFactory(submitted=True)
    (event,) = outbox(db, "submitted")
    assert event.payload["to"] == [application.submitter.email]
    assert application.reference in event.payload["subject"]
    assert f"{application.risk_tier} risk tier" in event.payload["body"]


def test_sla_breaches_reach_the_leads_once_per_due_time(db, app) -> None:
    staff = OrganizationFactory()
    lead = UserFactory(senior=True, organization=staff)
    admin = UserFactory(admin=True, organization=staff)
    UserFactory(reviewer=True, organization=staff)  # not a lead
    with app.app_context():
        late = ApplicationFactory(submitted=True)
        on_time = ApplicationFactory(submitted=True)
    late.sla_due_at = utcnow() - dt.timedelta(hours=2)
    db.flush()
    with app.app_context():
        assert notify_sla_breaches(db) == 1
        assert notify_sla_breaches(db) == 0  # reported once
    (digest,) = outbox(db, "sla_breach")
    assert digest.payload["to"] == sorted([lead.email, admin.email])
    assert late.reference in digest.payload["body"]
    assert on_time.reference not in digest.payload["body"]
