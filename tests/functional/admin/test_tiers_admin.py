"""Admins edit risk tiers (SLA target, approvals, fast track, QA rate) and queues; audited."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from reviewapp.audit.models import AuditEvent
from reviewapp.review.models import Queue, RiskTier
from tests.conftest import post_form
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

TIER = {
    "tier-high-label": "High",
    "tier-high-description": "High-stakes uses.",
    "tier-high-sla_hours": "16",
    "tier-high-approvals_required": "1",
    "tier-high-default_queue": "high-risk",
    "tier-high-qa_sample_rate": "0",
}


def test_admin_changes_a_tier_and_new_clocks_use_it(app, login, db) -> None:
    client = login(UserFactory(admin=True, organization=OrganizationFactory()))
    assert "SLA target (business hours)" in client.get("/admin/tiers").get_data(as_text=True)
    bad = post_form(
        client,
        "/admin/tiers/high",
        {**TIER, "tier-high-qa_sample_rate": "2", "tier-high-sla_hours": "0"},
        token_from="/admin/tiers",
    )
    page = bad.get_data(as_text=True)
    assert bad.status_code == 422
    assert "A share from 0 to 1" in page and "From 1 to 2000 hours." in page
    saved = post_form(client, "/admin/tiers/high", TIER, token_from="/admin/tiers")
    assert saved.status_code == 302
    flash = client.get(saved.location).get_data(as_text=True)
    assert "High tier saved. The new SLA target (16 business hours, was 24) applies" in flash
    db.expire_all()
    tier = db.scalars(select(RiskTier).where(RiskTier.name == "high")).one()
    assert (tier.sla_hours, tier.approvals_required) == (16, 1)
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "risk_tier.update")).one()
    assert {k: event.before[k] for k in ("sla_hours", "approvals_required")} == {
        "sla_hours": 24,
        "approvals_required": 2,
    }
    assert event.after["sla_hours"] == 16 and event.after["approvals_required"] == 1
    assert "label" not in event.after  # unchanged fields are not recorded
    with app.app_context():
        application = ApplicationFactory(submitted=True, high_tier=True)
    assert application.sla_target_seconds == 16 * 3600


def test_a_queue_needs_a_role(login, db) -> None:
    client = login(UserFactory(admin=True, organization=OrganizationFactory()))
    form = {
        "queue-standard-title": "Standard review",
        "queue-standard-description": "",
        "queue-standard-position": "0",
    }
    refused = post_form(client, "/admin/tiers/queues/standard", form, token_from="/admin/tiers")
    assert refused.status_code == 422
    assert "At least one role must be able to work the queue." in refused.get_data(as_text=True)
    ok = post_form(
        client,
        "/admin/tiers/queues/standard",
        {**form, "queue-standard-roles": ["senior_reviewer", "admin"]},
        token_from="/admin/tiers",
    )
    assert ok.status_code == 302
    db.expire_all()
    queue = db.scalars(select(Queue).where(Queue.key == "standard")).one()
    assert queue.roles == ["senior_reviewer", "admin"]


def test_saving_only_a_tier_label_does_not_speak_of_a_new_sla(login, db) -> None:
    client = login(UserFactory(admin=True, organization=OrganizationFactory()))
    unchanged_sla = {**TIER, "tier-high-sla_hours": "24", "tier-high-approvals_required": "2"}
    saved = post_form(
        client,
        "/admin/tiers/high",
        {**unchanged_sla, "tier-high-label": "Elevated"},
        token_from="/admin/tiers",
    )
    page = client.get(saved.location).get_data(as_text=True)
    assert "Elevated tier saved." in page and "The new SLA target" not in page


def _tier_form(name: str, label: str, queue: str, approvals: str, fast_track: bool) -> dict:
    form = {
        f"tier-{name}-label": label,
        f"tier-{name}-description": "",
        f"tier-{name}-sla_hours": "24",
        f"tier-{name}-approvals_required": approvals,
        f"tier-{name}-default_queue": queue,
        f"tier-{name}-qa_sample_rate": "0",
    }
    if fast_track:
        form[f"tier-{name}-auto_approve"] = "y"
    return form


def test_no_admin_setting_fast_tracks_or_relaxes_risky_tiers(login, db) -> None:
    client = login(UserFactory(admin=True, organization=OrganizationFactory()))
    refusals = [
        (
            "prohibited",
            _tier_form("prohibited", "Prohibited", "policy-violations", "1", fast_track=True),
            ["High needs 2", "The riskiest tier is never approved automatically."],
        ),
        (
            "high",
            _tier_form("high", "High", "high-risk", "2", fast_track=True),
            ["A tier that needs two approvals cannot be approved automatically."],
        ),
        (
            "low",
            _tier_form("low", "Low", "standard", "2", fast_track=False),
            ["Medium is riskier and needs only 1; raise it first."],
        ),
    ]
    for name, form, messages in refusals:
        refused = post_form(client, f"/admin/tiers/{name}", form, token_from="/admin/tiers")
        page = refused.get_data(as_text=True)
        assert refused.status_code == 422, name
        for message in messages:
            assert message in page, (name, message)
    db.expire_all()
    stored = {t.name: (t.approvals_required, t.auto_approve) for t in db.scalars(select(RiskTier))}
    assert stored == {
        "low": (1, False),
        "medium": (1, False),
        "high": (2, False),
        "prohibited": (2, False),
    }
    assert db.scalars(select(AuditEvent).where(AuditEvent.action == "risk_tier.update")).all() == []
    # the mild tiers still fast-track
    ok = post_form(
        client,
        "/admin/tiers/low",
        _tier_form("low", "Low", "standard", "1", fast_track=True),
        token_from="/admin/tiers",
    )
    assert ok.status_code == 302


def test_the_shipped_tiers_follow_the_tier_rules(app) -> None:
    from reviewapp.review.tiers import tier_policy_problems
    from reviewapp.textfiles import load_yaml_file

    doc = load_yaml_file(Path(app.config["SEED_DIR"]) / "tiers.yaml")
    tiers = [
        RiskTier(
            name=raw["name"],
            label=raw["label"],
            rank=rank,
            approvals_required=int(raw["approvals_required"]),
            auto_approve=bool(raw.get("auto_approve", False)),
        )
        for rank, raw in enumerate(doc["tiers"])
    ]
    for tier in tiers:
        others = [t for t in tiers if t is not tier]
        assert tier_policy_problems(tier, others, tier.approvals_required, tier.auto_approve) == {}
    assert tiers[-1].approvals_required == 2  # approving a prohibited-use signal takes two
