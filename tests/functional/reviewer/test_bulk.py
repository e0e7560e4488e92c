"""Bulk decisions: several applications approved or rejected with one template and citation;
the result says per item what happened; every item is audited on its own."""

from __future__ import annotations

from sqlalchemy import func, select

from reviewapp.applications.models import Status
from reviewapp.audit.models import AuditEvent, OutboxEvent
from tests.conftest import post_form
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory


def test_bulk_approve_reports_each_item(login, db) -> None:
    staff = OrganizationFactory()
    me = UserFactory(reviewer=True, organization=staff)
    low_a, low_b = ApplicationFactory(submitted=True), ApplicationFactory(submitted=True)
    high = ApplicationFactory(submitted=True, high_tier=True)
    own = ApplicationFactory(submitted=True, submitter=UserFactory(organization=staff))
    held = ApplicationFactory(submitted=True)
    post_form(
        login(UserFactory(reviewer=True, organization=staff)),
        f"/review/{held.reference}/claim",
        token_from="/queue",
    )
    client = login(me)
    refs = [a.reference for a in (low_a, low_b, high, own, held)] + ["APP-999999"]
    response = post_form(
        client,
        "/queue/bulk",
        {
            "reference": refs,
            "outcome": "approve",
            "template": "approve-standard",
            "citations": ["usage-2.1"],
        },
        token_from="/queue",
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    db.expire_all()
    assert low_a.status == low_b.status == Status.approved
    assert high.status == Status.awaiting_second_approval  # high tier needs a second approval
    assert own.status == Status.queued and held.status == Status.in_review
    assert "3 of 6 applications decided." in page
    assert "First approval recorded" in page
    assert "your own organization" in page  # why the own-organization item failed
    assert "already claimed" in page and "No application" in page
    decided = db.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.action.in_(["decision.approve", "decision.first_approval"]))
    )
    assert decided == 3
    decisions_sent = select(func.count()).where(OutboxEvent.kind == "decision")
    assert db.scalar(decisions_sent) == 2  # final ones only
    bulk = db.scalars(select(AuditEvent).where(AuditEvent.action == "decision.bulk")).one()
    assert sorted(bulk.after["succeeded"]) == sorted(
        [low_a.reference, low_b.reference, high.reference]
    )


def test_bulk_reject_needs_a_citation_and_nothing_is_half_done(login, db) -> None:
    staff = OrganizationFactory()
    a, b = ApplicationFactory(submitted=True), ApplicationFactory(submitted=True)
    client = login(UserFactory(reviewer=True, organization=staff))
    response = post_form(
        client,
        "/queue/bulk",
        {
            "reference": [a.reference, b.reference],
            "outcome": "reject",
            "template": "reject-prohibited",
        },
        token_from="/queue",
    )
    page = response.get_data(as_text=True)
    assert "0 of 2 applications decided." in page
    assert page.count("Cite at least one policy section") == 2
    db.expire_all()
    assert a.status == b.status == Status.queued and a.claimed_by_id is None  # claim undone too


def test_bulk_refuses_mitigations_and_empty_selection(login, db) -> None:
    client = login(UserFactory(reviewer=True, organization=OrganizationFactory()))
    nothing = post_form(
        client,
        "/queue/bulk",
        {"outcome": "approve", "template": "approve-standard"},
        token_from="/queue",
        follow_redirects=True,
    )
    assert "Select at least one application." in nothing.get_data(as_text=True)
    bad = post_form(
        client,
        "/queue/bulk",
        {"reference": ["APP-000001"], "outcome": "request_mitigations", "template": "x"},
        token_from="/queue",
        follow_redirects=True,
    )
    assert "Nothing was decided" in bad.get_data(as_text=True)


def test_bulk_approve_says_who_is_notified(login, db) -> None:
    """An organization without an active developer account (imported agency applications)
    gets no decision email, and the result says so instead of "the developer is notified"."""
    staff = OrganizationFactory()
    with_developer = ApplicationFactory(submitted=True)
    colleague = UserFactory(organization=with_developer.submitter.organization)
    nobody = ApplicationFactory(submitted=True)
    nobody.submitter.active = False  # the only account of its organization left
    db.flush()
    response = post_form(
        login(UserFactory(reviewer=True, organization=staff)),
        "/queue/bulk",
        {
            "reference": [with_developer.reference, nobody.reference],
            "outcome": "approve",
            "template": "approve-standard",
            "citations": ["usage-2.1"],
        },
        token_from="/queue",
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "2 of 2 applications decided." in page
    assert "the developer is notified" not in page
    recipients = sorted([with_developer.submitter.email, colleague.email])
    assert f"Approved; notified {', '.join(recipients)}." in page
    assert "Approved; nobody to notify (no active developer account)." in page
    sent = db.scalars(select(OutboxEvent).where(OutboxEvent.kind == "decision")).all()
    assert sorted((e.payload["application"], tuple(e.payload["to"])) for e in sent) == sorted(
        [(with_developer.reference, tuple(recipients)), (nobody.reference, ())]
    )
