"""CSRF: every state-changing browser route (enumerated from the url_map) refuses a request
without a valid token and records nothing. A form whose token EXPIRED while the user typed
re-renders with the text kept, says so, answers 400, saves nothing, and submitting the
re-rendered form again works."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import time_machine
from sqlalchemy import func, select

from reviewapp.models import Base
from reviewapp.review.services import claim
from reviewapp.triage import lab
from tests.conftest import _CSRF_RE, csrf_token
from tests.factories import PASSWORD, OrganizationFactory, UserFactory
from tests.functional.security.world import World, build_world

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}

# who may use a route (by path prefix): the token check must hold for someone allowed in
ROLE_BY_PREFIX = [
    ("/login", "anonymous"),
    ("/register", "anonymous"),
    ("/password-reset", "anonymous"),
    ("/invite/", "anonymous"),
    ("/logout", "developer"),
    ("/account", "developer"),
    ("/applications", "developer"),
    ("/webhooks", "developer"),
    ("/policies/", "developer"),
    ("/review/", "senior_reviewer"),
    ("/queue/", "senior_reviewer"),
    ("/admin/", "admin"),
]

# plausible input, so a route that skipped the token check would have something to save
FORM_DATA = {
    "email": "someone@example.com",
    "current_password": PASSWORD,  # the account page's password change: the real one
    "password": "a-long-enough-password",
    "confirm": "a-long-enough-password",
    "name": "Forged",
    "organization": "Forged org",
    "title": "Forged title",
    "description": "Forged description",
    "statement": "A forged appeal statement that is long enough.",
    "body": "A forged note",
    "message": "A forged clarification message, long enough.",
    "kind": "clarification",
    "answer": "A forged answer",
    "decision": "answered",
    "outcome": "approve",
    "template": "approve-standard",
    "text": "Forged policy text",
    "change_summary": "Forged",
    "effective_date": dt.date.today().isoformat(),
    "url": "https://example.com/hook",
    "event_types": "*",
    "scopes": "read",
    "role": "admin",
    "timezone": "Europe/Paris",
    "reason": "Forged reason",
    "enabled": "1",
    "submit_application": "y",
    "details-age-assurance": "Forged details",
    "attested-age-assurance": "yes",
    "reference": "APP-000001",
}


def _role_for(rule: str) -> str | None:
    return next((role for prefix, role in ROLE_BY_PREFIX if rule.startswith(prefix)), None)


def _state_changing_routes(app) -> list[tuple[str, str]]:  # noqa: ANN001
    return sorted(
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if not rule.rule.startswith("/api/")
        for method in rule.methods & STATE_CHANGING
    )


def row_counts(db) -> dict[str, int]:  # noqa: ANN001
    """Rows in every table (what "records nothing" is checked against)."""
    db.expire_all()
    return {
        table.name: db.scalar(select(func.count()).select_from(table)) or 0
        for table in Base.metadata.sorted_tables
    }


def test_every_state_changing_route_has_a_role(app) -> None:
    unplaced = [r for _m, r in _state_changing_routes(app) if _role_for(r) is None]
    assert unplaced == [], "add these routes to ROLE_BY_PREFIX in test_csrf.py"


def _path(rule: str, world: World) -> str:
    values = world.path_values()
    values["reference"] = (
        world.mitigations.reference
        if rule.endswith("/answers")
        else world.rejected.reference
        if rule.endswith("/appeal")
        else world.draft.reference
        if rule.startswith("/applications/")
        else world.queued.reference
    )
    values["name"] = "low" if rule.startswith("/admin/tiers") else "weapons_cbrn"
    values["key"] = (
        "standard"
        if rule.startswith("/admin/tiers/queues")
        else world.template_key
        if "/templates/" in rule
        else "age-assurance"
        if "/requirements/" in rule
        else world.rule_key
        if "/rules/" in rule
        else world.section_key
    )
    values["token"] = "not-a-valid-token"
    path = rule
    for name, value in values.items():
        path = path.replace(f"<int:{name}>", str(value)).replace(f"<{name}>", str(value))
    assert "<" not in path, path
    return path


def _cases() -> list[tuple[str, str, str]]:
    """Every route without a token; with a forged one too where the view is re-run to keep the
    typed input (the path that must still never save)."""
    from reviewapp import create_app

    app = create_app("testing", DATABASE_URL="sqlite://")
    cases = []
    for method, rule in _state_changing_routes(app):
        cases.append((method, rule, "missing"))
        endpoint = next(r.endpoint for r in app.url_map.iter_rules() if r.rule == rule)
        if getattr(app.view_functions[endpoint], "keeps_input_on_csrf_failure", False):
            cases.append((method, rule, "forged"))
    return cases


@pytest.mark.parametrize(
    ("method", "rule", "bad_token"), _cases(), ids=[" ".join(c) for c in _cases()]
)
def test_a_request_without_a_valid_token_is_refused_and_records_nothing(
    app, db, login, method: str, rule: str, bad_token: str
) -> None:
    world = build_world(app, db)
    role = _role_for(rule)
    client = app.test_client() if role == "anonymous" else login(world.users[role])
    if role == "senior_reviewer":
        with app.test_request_context():
            claim(db, world.users[role], world.queued)
        db.flush()
    data = dict(FORM_DATA)
    if bad_token == "forged":
        data["csrf_token"] = "IjBmMDBiYTIi.Z2FyYmFnZQ.forgedforgedforgedforged"
    before = row_counts(db)
    response = client.open(_path(rule, world), method=method, data=data)
    assert response.status_code == 400, (rule, response.status_code)
    assert "nothing was saved" in response.get_data(as_text=True)
    assert row_counts(db) == before
    if rule == "/logout":
        assert client.get("/account").status_code == 200  # still logged in


# --- expired tokens on the text-heavy forms ----------------------------------------------

TYPED = "Typed-by-hand-7731 and a longer sentence the user would hate to lose."


def _open_clarification(app, db, world: World) -> int:  # noqa: ANN001
    from reviewapp.policies.clarifications import request_clarification
    from reviewapp.policies.models import PolicySection

    section = db.scalars(select(PolicySection).where(PolicySection.key == "usage-1.1")).one()
    with app.test_request_context():
        row = request_clarification(
            db,
            actor=world.users["developer"],
            section=section,
            version=section.current,
            kind="change",
            message="Please allow research use of this with supervision.",
        )
    db.flush()
    return row.id


def _application_form(**extra: Any) -> dict[str, Any]:
    return {
        "title": "A careful title",
        "category": "search_summarization",
        "description": TYPED,
        "benefits": "Saves time.",
        "end_users": ["internal_employees"],
        "domains": ["general"],
        "modalities": ["text"],
        "monthly_requests": "5000",
        "human_review_of_outputs": "yes",
        "safety_measures": "Reviewed by staff.",
        "product_url": "https://example.com/p",
        "save": "Save draft",
        **extra,
    }


def _rule_form(world: World, db) -> dict[str, Any]:  # noqa: ANN001
    version = lab.get_version(db, world.draft_ruleset)
    rule = next(r for r in version.rules if r.key == world.rule_key)
    return {
        "key": rule.key,
        "name": rule.name,
        "description": TYPED,
        "condition": rule.condition,
        "actions": lab.format_actions(rule.actions),
        "enabled": "y",
        "examples": "",
    }


# name -> (role, setup(app, db, world) -> (form page, post path, data))
Setup = Callable[[Any, Any, World], tuple[str, str, dict[str, Any]]]
TEXT_FORMS: dict[str, tuple[str, Setup]] = {
    "new application": (
        "developer",
        lambda app, db, w: ("/applications/new", "/applications/new", _application_form()),
    ),
    "edit application": (
        "developer",
        lambda app, db, w: (
            f"/applications/{w.draft.reference}/edit",
            f"/applications/{w.draft.reference}/edit",
            _application_form(),
        ),
    ),
    "mitigation answers": (
        "developer",
        lambda app, db, w: (
            f"/applications/{w.mitigations.reference}",
            f"/applications/{w.mitigations.reference}/answers",
            {"attested-age-assurance": "yes", "details-age-assurance": TYPED},
        ),
    ),
    "appeal": (
        "developer",
        lambda app, db, w: (
            f"/applications/{w.rejected.reference}",
            f"/applications/{w.rejected.reference}/appeal",
            {"statement": TYPED},
        ),
    ),
    "clarification": (
        "developer",
        lambda app, db, w: (
            "/policies/usage-1.1/clarifications",
            "/policies/usage-1.1/clarifications",
            {"kind": "clarification", "message": TYPED},
        ),
    ),
    "reviewer note": (
        "reviewer",
        lambda app, db, w: (
            f"/review/{w.queued.reference}",
            f"/review/{w.queued.reference}/notes",
            {"body": TYPED},
        ),
    ),
    "decision with notes": (
        "senior_reviewer",
        lambda app, db, w: (
            f"/review/{w.queued.reference}",
            f"/review/{w.queued.reference}/decide",
            {
                "outcome": "approve",
                "template": "approve-standard",
                "reviewer_note": TYPED,
                "rationale": "Low risk.",
            },
        ),
    ),
    "policy edit": (
        "admin",
        lambda app, db, w: (
            "/admin/policies/sections/usage-1.1/edit",
            "/admin/policies/sections/usage-1.1/edit",
            {
                "text": TYPED,
                "effective_date": (dt.date.today() + dt.timedelta(days=1)).isoformat(),
                "change_summary": "Clarified wording",
                "base_version": "2",
            },
        ),
    ),
    "new policy section": (
        "admin",
        lambda app, db, w: (
            "/admin/policies/new",
            "/admin/policies/new",
            {
                "key": "usage-9.9",
                "number": "§9.9",
                "title": "A new section",
                "text": TYPED,
                "effective_date": dt.date.today().isoformat(),
                "change_summary": "Initial version",
            },
        ),
    ),
    "rule edit": (
        "admin",
        lambda app, db, w: (
            f"/admin/rulesets/{w.draft_ruleset}/rules/{w.rule_key}/edit",
            f"/admin/rulesets/{w.draft_ruleset}/rules/{w.rule_key}/edit",
            _rule_form(w, db),
        ),
    ),
    "response template edit": (
        "admin",
        lambda app, db, w: (
            f"/admin/catalogue/templates/{w.template_key}",
            f"/admin/catalogue/templates/{w.template_key}",
            {"title": "Approval", "outcome": "approve", "body": TYPED},
        ),
    ),
    "new response template": (
        "admin",
        lambda app, db, w: (
            "/admin/catalogue/templates/new",
            "/admin/catalogue/templates/new",
            {"key": "approve-new", "title": "Approval", "outcome": "approve", "body": TYPED},
        ),
    ),
    "clarification answer": (
        "admin",
        lambda app, db, w: (
            f"/admin/policies/clarifications/{_open_clarification(app, db, w)}",
            f"/admin/policies/clarifications/{_open_clarification(app, db, w)}",
            {"decision": "answered", "answer": TYPED},
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(TEXT_FORMS))
def test_an_expired_form_comes_back_with_the_text_and_nothing_saved(
    app, db, login, monkeypatch, name: str
) -> None:
    role, setup = TEXT_FORMS[name]
    world = build_world(app, db)
    client = login(world.users[role])
    if role == "senior_reviewer":
        with app.test_request_context():
            claim(db, world.users[role], world.queued)
        db.flush()
    page, path, data = setup(app, db, world)
    if name == "clarification answer":
        path = page  # one request, not two
    token = csrf_token(client, page)
    # a short limit and a short trip (the claim lease must outlive it); session cookies signed
    # in the future do not load back in the present, so the resubmission happens there too
    monkeypatch.setitem(app.config, "WTF_CSRF_TIME_LIMIT", 60)
    before = row_counts(db)
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)):
        response = client.post(path, data={**data, "csrf_token": token})
        text = response.get_data(as_text=True)
        assert response.status_code == 400, (name, response.status_code)
        assert "This form expired" in text and "nothing was saved" in text
        assert "submit again" in text
        assert TYPED in text, "the typed text must come back"
        assert row_counts(db) == before

        # the re-rendered form carries a fresh token: sending it again now works
        fresh = _CSRF_RE.search(text)
        assert fresh is not None
        fresh_token = fresh.group(1) or fresh.group(2)
        assert fresh_token != token
        again = client.post(path, data={**data, "csrf_token": fresh_token})
        assert again.status_code in (200, 302), (name, again.status_code)
        assert "This form expired" not in again.get_data(as_text=True)
        assert row_counts(db) != before, ("the resubmitted form saves", again.status_code)


def test_other_forms_get_a_clear_400_page_with_a_way_back(app, db, login) -> None:
    admin = UserFactory(admin=True, organization=OrganizationFactory())
    client = login(admin)
    response = client.post(
        "/admin/tiers/low",
        data={"label": "Low"},
        headers={"Referer": "http://localhost/admin/tiers"},
    )
    text = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "This form expired or was sent from another site, so nothing was saved" in text
    assert 'href="/admin/tiers"' in text  # back to the form
    offsite = client.post(
        "/admin/tiers/low", data={"label": "Low"}, headers={"Referer": "https://evil.com/x"}
    )
    assert "evil.com" not in offsite.get_data(as_text=True)
