"""Queue page: what each row shows, and changes to queues, tiers, sections and templates seen by
the very next view (the page keeps those tables per process, checked on every view)."""

from __future__ import annotations

import datetime as dt
import re

import time_machine
from sqlalchemy import select

from reviewapp.applications.models import Status
from reviewapp.policies.models import PolicySection, ResponseTemplate
from reviewapp.review.models import Queue, RiskTier
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory


def reviewer(**kw):  # noqa: ANN001, ANN201
    return UserFactory(
        reviewer=True,
        organization=kw.pop("organization", None) or OrganizationFactory(name="Trust & Safety"),
        **kw,
    )


def row_of(page: str, reference: str) -> str:
    """The <tr> of ``reference`` on the queue page."""
    match = re.search(rf'<tr>\s*<td><input[^>]*value="{reference}".*?</tr>', page, re.S)
    assert match, f"{reference} is not listed"
    return match.group(0)


def select_options(page: str, name: str) -> list[str]:
    """The option labels of the <select name=...> on the page."""
    match = re.search(rf'<select[^>]*name="{name}"[^>]*>(.*?)</select>', page, re.S)
    assert match, f"no select {name}"
    return re.findall(r"<option[^>]*>([^<]*)</option>", match.group(1))


def test_rows_show_claimant_expired_lease_returned_resubmission_and_external_ref(login, db) -> None:
    staff = OrganizationFactory(name="Trust & Safety")
    me = reviewer(organization=staff)
    other = reviewer(organization=staff, email="holder@example.com")
    now = dt.datetime(2026, 11, 30, 15, 0, tzinfo=dt.UTC)
    held = ApplicationFactory(submitted=True, external_ref="CRM-77")
    held.status = Status.in_review
    held.claimed_by_id = other.id
    held.lease_expires_at = now + dt.timedelta(minutes=20)
    lapsed = ApplicationFactory(submitted=True)
    lapsed.status = Status.in_review
    lapsed.claimed_by_id = other.id
    lapsed.lease_expires_at = now - dt.timedelta(minutes=1)
    returned = ApplicationFactory(submitted=True)
    returned.preferred_reviewer_id = me.id
    returned.sla_due_at = now - dt.timedelta(hours=3, minutes=30)
    db.flush()

    with time_machine.travel(now, tick=False):
        page = login(me).get("/queue").get_data(as_text=True)

    row = row_of(page, held.reference)
    assert "holder@example.com" in row and "lease expired" not in row
    assert '<div class="small text-muted">CRM-77</div>' in row
    assert f'href="/review/{held.reference}"' in row
    assert '<span class="badge text-bg-warning">in review</span>' in row
    row = row_of(page, lapsed.reference)
    assert "lease expired" in row and "holder@example.com" not in row
    row = row_of(page, returned.reference)
    assert "back to you" in row
    assert "text-danger fw-semibold" in row and "overdue by 3 h 30 min" in row
    assert "back to you" not in row_of(page, held.reference)


def test_a_queue_closed_to_reviewers_disappears_from_their_next_view(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    client = login(reviewer())
    page = client.get("/queue").get_data(as_text=True)
    assert application.reference in page
    queue = db.scalars(select(Queue).where(Queue.key == application.queue)).one()
    assert queue.title in select_options(page, "queue")

    queue.roles = [r for r in queue.roles if r != "reviewer"]
    db.flush()

    page = client.get("/queue").get_data(as_text=True)
    assert application.reference not in page
    assert queue.title not in select_options(page, "queue")
    # asking for the queue by name does not get round it either
    page = client.get(f"/queue?queue={queue.key}").get_data(as_text=True)
    assert application.reference not in page


def test_tier_labels_sections_and_templates_edited_show_on_the_next_view(login, db) -> None:
    ApplicationFactory(submitted=True)
    client = login(reviewer())
    page = client.get("/queue").get_data(as_text=True)
    assert "Renamed tier" not in select_options(page, "tier")

    tier = db.scalars(select(RiskTier).order_by(RiskTier.rank)).first()
    assert tier is not None
    tier.label = "Renamed tier"
    section = db.scalars(select(PolicySection)).first()
    assert section is not None
    section.title = "Renamed section"
    db.add(
        ResponseTemplate(
            key="approve-new", title="Brand-new approval", outcome="approve", body="Hi"
        )
    )
    db.flush()

    page = client.get("/queue").get_data(as_text=True)
    assert "Renamed tier" in select_options(page, "tier")
    assert f"{section.number} Renamed section" in select_options(page, "citations")
    assert "Brand-new approval" in select_options(page, "template")
