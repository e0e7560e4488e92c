"""Re-triage after publish and rollback: it never takes an application out of a queue a person
routed it to, and every change it makes to an application is an audit event."""

from __future__ import annotations

from sqlalchemy import select

from reviewapp.applications.models import Application
from reviewapp.audit.models import AuditEvent
from reviewapp.triage import lab
from reviewapp.triage.models import Backtest, RulesetStatus, RulesetVersion
from reviewapp.triage.services import create_ruleset_version, ruleset_document
from tests.conftest import post_form
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

GENERAL_HIGH = {
    "key": "general-high",
    "name": "General purpose goes to high",
    "condition": "'general' in domains",
    "actions": "raise_tier: high",
    "enabled": "y",
    "examples": "must_fire:\n  - {domains: [general]}\nmust_not_fire:\n  - {domains: [health]}\n",
}


def _active(db) -> RulesetVersion:  # noqa: ANN001
    return db.scalars(
        select(RulesetVersion).where(RulesetVersion.status == RulesetStatus.published)
    ).one()


def _escalate(client, application: Application) -> None:  # noqa: ANN001
    post_form(client, f"/review/{application.reference}/claim", token_from="/queue")
    response = post_form(
        client,
        f"/review/{application.reference}/escalate",
        {"reason": "Dual-use; needs a senior call."},
        token_from="/queue",
    )
    assert response.status_code == 302


def _retriage_events(db, application: Application) -> list[AuditEvent]:  # noqa: ANN001
    return list(
        db.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.action == "application.retriage",
                AuditEvent.subject_id == application.reference,
            )
            .order_by(AuditEvent.id)
        )
    )


def test_publish_keeps_an_escalation_in_its_queue_and_audits_every_move(login, db) -> None:
    staff = OrganizationFactory(name="Policy team")
    first, second = (UserFactory(admin=True, organization=staff) for _ in range(2))
    escalated = ApplicationFactory(submitted=True)
    plain = ApplicationFactory(submitted=True)
    assert escalated.queue == plain.queue == "standard" and plain.risk_tier == "low"
    _escalate(login(UserFactory(reviewer=True, organization=staff)), escalated)
    db.expire_all()
    assert escalated.queue == "escalations"
    plain_due = plain.sla_due_at

    c1, c2 = login(first), login(second)
    response = post_form(c1, "/admin/rulesets/1/draft", token_from="/admin/rulesets")
    number = int(response.location.rsplit("/", 1)[-1])
    page = f"/admin/rulesets/{number}"
    post_form(c1, f"{page}/rules/new", GENERAL_HIGH, token_from=f"{page}/rules/new")
    post_form(c1, f"{page}/backtests", token_from=page)
    assert db.scalars(select(Backtest).order_by(Backtest.id.desc())).first().status == "done"
    post_form(c1, f"{page}/approve", token_from=page)
    response = post_form(
        c2, f"{page}/publish", {"active_id": _active(db).id}, token_from=page, follow_redirects=True
    )
    assert b"is now the active ruleset" in response.data
    db.expire_all()

    # the escalation stays where the reviewer sent it; the senior still finds it
    assert escalated.queue == "escalations" and escalated.risk_tier == "high"
    senior = login(UserFactory(senior=True, organization=staff))
    assert escalated.reference in senior.get("/queue?queue=escalations").get_data(as_text=True)
    [kept] = _retriage_events(db, escalated)
    assert kept.actor_id is None  # the system, on the publish's behalf
    assert kept.before["risk_tier"] == "low" and "queue" not in kept.before
    assert kept.after["risk_tier"] == "high" and kept.after["ruleset_version"] == number
    assert kept.after["queue_kept"] == "escalations"

    # the untouched application follows the new ruleset, and the move is on its record
    assert plain.queue == "high-risk" and plain.risk_tier == "high"
    [moved] = _retriage_events(db, plain)
    assert moved.before["queue"] == "standard" and moved.after["queue"] == "high-risk"
    assert moved.before["risk_tier"] == "low" and moved.after["risk_tier"] == "high"
    assert moved.before["sla_due_at"] == plain_due.isoformat()
    assert moved.after["sla_due_at"] == plain.sla_due_at.isoformat() != plain_due.isoformat()
    assert moved.after["ruleset_version"] == number


def test_rollback_keeps_an_escalation_in_its_queue_and_audits_every_move(login, db) -> None:
    staff = OrganizationFactory(name="Policy team")
    admin = UserFactory(admin=True, organization=staff)
    v1 = _active(db)
    document = ruleset_document(v1)
    document["rules"].append(
        {
            "key": "general-high",
            "name": "General purpose goes to high",
            "description": "",
            "condition": "'general' in domains",
            "actions": lab.parse_actions("raise_tier: high"),
            "enabled": True,
            "examples": {},
        }
    )
    v2 = create_ruleset_version(db, document, actor=admin, publish=True)
    escalated = ApplicationFactory(submitted=True)
    plain = ApplicationFactory(submitted=True)
    assert escalated.queue == plain.queue == "high-risk"
    _escalate(login(UserFactory(reviewer=True, organization=staff)), escalated)
    db.expire_all()
    assert escalated.queue == "escalations"

    client = login(admin)
    response = post_form(
        client,
        f"/admin/rulesets/{v1.number}/rollback",
        {"active_id": v2.id, "confirm": "y"},
        token_from=f"/admin/rulesets/{v1.number}/rollback",
        follow_redirects=True,
    )
    assert b"Rolled back: v1 is active again" in response.data
    db.expire_all()

    assert escalated.queue == "escalations" and escalated.risk_tier == "low"
    senior = login(UserFactory(senior=True, organization=staff))
    assert escalated.reference in senior.get("/queue?queue=escalations").get_data(as_text=True)
    [kept] = _retriage_events(db, escalated)
    assert kept.after["queue_kept"] == "escalations" and kept.after["ruleset_version"] == 1

    assert plain.queue == "standard" and plain.risk_tier == "low"
    [moved] = _retriage_events(db, plain)
    assert (moved.before["queue"], moved.after["queue"]) == ("high-risk", "standard")
    assert moved.after["ruleset_version"] == 1


def test_rollback_asks_for_confirmation_and_keeps_the_first_publish_time(login, db) -> None:
    staff = OrganizationFactory(name="Policy team")
    admin = UserFactory(admin=True, organization=staff)
    v1 = _active(db)
    first_published = v1.published_at
    v2 = create_ruleset_version(db, ruleset_document(v1), actor=admin, publish=True)
    waiting = [ApplicationFactory(submitted=True) for _ in range(3)]
    client = login(admin)

    # the version page links to a confirmation page, which says what the rollback will do
    version_page = client.get("/admin/rulesets/1").get_data(as_text=True)
    assert 'href="/admin/rulesets/1/rollback"' in version_page
    confirm = client.get("/admin/rulesets/1/rollback")
    page = confirm.get_data(as_text=True)
    assert confirm.status_code == 200 and "Roll back to ruleset v1?" in page
    assert "<strong>3</strong> unclaimed queued applications will be re-triaged" in page
    assert 'type="checkbox"' in page and f'name="active_id" type="hidden" value="{v2.id}"' in page

    # without the box ticked nothing happens, and the page says why
    refused = post_form(
        client,
        "/admin/rulesets/1/rollback",
        {"active_id": v2.id},
        token_from="/admin/rulesets/1/rollback",
    )
    assert refused.status_code == 422 and "Tick the box to confirm" in refused.get_data(
        as_text=True
    )
    db.expire_all()
    assert v1.status == RulesetStatus.retired and v2.status == RulesetStatus.published
    assert not db.scalars(select(AuditEvent).where(AuditEvent.action == "ruleset.rollback")).all()

    done = post_form(
        client,
        "/admin/rulesets/1/rollback",
        {"active_id": v2.id, "confirm": "y"},
        token_from="/admin/rulesets/1/rollback",
    )
    assert done.status_code == 302 and done.location.endswith("/admin/rulesets/1")
    db.expire_all()
    assert v1.status == RulesetStatus.published and len(waiting) == 3
    # the first publish stays on record; the rollback is recorded beside it
    assert v1.published_at == first_published
    assert v1.reactivated_at is not None and v1.reactivated_at > first_published
    assert v1.reactivated_by_id == admin.id
    listing = client.get("/admin/rulesets").get_data(as_text=True)
    row = listing[listing.index('href="/admin/rulesets/1"') :].split("</tr>")[0]
    assert "re-activated" in row and admin.email in row

    # a version that is not retired cannot be rolled back to: no confirmation page for it
    active_page = client.get("/admin/rulesets/1/rollback", follow_redirects=True)
    assert b"Only a version that was published before can be rolled back to." in active_page.data
