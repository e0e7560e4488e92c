"""IDOR: an object of one organization is invisible to everyone else: 404, the same answer as
for an object that does not exist (never the data, never a 403 that confirms it exists),
and nothing changes. Every route naming an object is enumerated from the url_map: a new one
fails ``test_every_object_route_is_covered`` until it is classified here."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from reviewapp.audit.models import AuditEvent
from reviewapp.auth.models import ApiToken
from tests.conftest import csrf_token
from tests.functional.security.world import World, build_world

MISSING_REFERENCE = "APP-999999"
MISSING_ID = 999_999

# API routes that take an object reference -> (JSON body, query string)
DECISION = {"outcome": "approve", "template": "approve-standard", "citations": []}
API_OBJECT_ROUTES: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/api/v1/applications/<reference>"): {},
    ("PATCH", "/api/v1/applications/<reference>"): {"json": {"title": "Taken over"}},
    ("POST", "/api/v1/applications/<reference>/submit"): {},
    ("POST", "/api/v1/applications/<reference>/resubmit"): {},
    ("POST", "/api/v1/applications/<reference>/withdraw"): {},
    ("POST", "/api/v1/applications/<reference>/appeal"): {
        "json": {"statement": "We disagree with this rejection entirely, see attached."}
    },
    ("GET", "/api/v1/applications/<reference>/revisions"): {},
    ("GET", "/api/v1/applications/<reference>/revisions/<int:number>/diff"): {
        "query_string": {"against": 1}
    },
    ("POST", "/api/v1/applications/<reference>/claim"): {},
    ("POST", "/api/v1/applications/<reference>/renew"): {},
    ("POST", "/api/v1/applications/<reference>/release"): {},
    ("POST", "/api/v1/applications/<reference>/decisions"): {"json": DECISION},
}
# API routes with an argument that names no organization's object
API_PUBLIC_ROUTES = {
    ("GET", "/api/v1/policies/<key>"): "published policy sections are public",
}

# texts only the applicant's organization (and, once submitted, the staff) may read
LEAK_MARKERS = ["Acme", "Title plain text", "Dev plain text", "Internal note", "Token plain"]
STATES = ["draft", "queued", "rejected", "appealed", "mitigations"]


def _api_rules(app) -> list[tuple[str, str]]:  # noqa: ANN001
    return [
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/") and rule.arguments
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
    ]


def test_every_api_object_route_is_covered(app) -> None:
    missing = [
        r for r in _api_rules(app) if r not in API_OBJECT_ROUTES and r not in API_PUBLIC_ROUTES
    ]
    assert missing == [], "classify these API routes in test_idor.py"


def _counts(db) -> tuple[int, int]:  # noqa: ANN001
    return (
        db.scalar(select(func.count()).select_from(AuditEvent)) or 0,
        db.scalar(select(func.count()).select_from(ApiToken)) or 0,
    )


def _api_call(client, method: str, rule: str, reference: str, token: str) -> Any:  # noqa: ANN001
    spec = API_OBJECT_ROUTES[(method, rule)]
    path = rule.replace("<reference>", reference).replace("<int:number>", "2")
    return client.open(
        path,
        method=method,
        headers={"Authorization": f"Bearer {token}", "If-Match": '"1"'},
        json=spec.get("json"),
        query_string=spec.get("query_string"),
    )


def _token(db, user, scopes: str) -> str:  # noqa: ANN001
    row, clear = ApiToken.issue(user, name="idor", scopes=scopes)
    db.add(row)
    db.flush()
    return clear


@pytest.mark.parametrize(
    ("method", "rule"), list(API_OBJECT_ROUTES), ids=[f"{m} {r}" for m, r in API_OBJECT_ROUTES]
)
def test_another_organizations_token_gets_404_like_a_missing_object(
    app, db, client, method: str, rule: str
) -> None:
    world = build_world(app, db)
    # every scope, as a user whose role changed after the token was issued might hold: the
    # object check must not lean on the scope check
    token = _token(db, world.users["other_developer"], "read write review")
    missing = _api_call(client, method, rule, MISSING_REFERENCE, token)
    assert missing.status_code == 404, missing.json
    for state in STATES:
        application = getattr(world, state)
        before = (application.status, application.version, _counts(db))
        response = _api_call(client, method, rule, application.reference, token)
        assert response.status_code == 404, (state, response.status_code, response.json)
        assert response.json["error"]["code"] == missing.json["error"]["code"] == "not_found"
        body = response.get_data(as_text=True)
        assert "Title plain text" not in body and "Acme" not in body
        db.expire_all()
        assert (application.status, application.version, _counts(db)) == before, state


@pytest.mark.parametrize(
    ("method", "rule"), list(API_OBJECT_ROUTES), ids=[f"{m} {r}" for m, r in API_OBJECT_ROUTES]
)
def test_staff_tokens_never_see_a_draft(app, db, client, method: str, rule: str) -> None:
    """The review team sees what was submitted; a draft stays private to its organization."""
    world = build_world(app, db)
    for role in ("reviewer", "admin"):
        token = _token(db, world.users[role], "read write review")
        response = _api_call(client, method, rule, world.draft.reference, token)
        missing = _api_call(client, method, rule, MISSING_REFERENCE, token)
        assert response.status_code == missing.status_code == 404, (role, response.json)
        assert "Title plain text" not in response.get_data(as_text=True)


# --- browser routes --------------------------------------------------------------------------

# browser routes naming an object of an organization: rule -> how to fill it for a real object
# of the applicant's organization, and for one that does not exist
BROWSER_OBJECT_ROUTES: dict[str, str] = {
    "/applications/<reference>": "reference",
    "/applications/<reference>/edit": "reference",
    "/applications/<reference>/submit": "reference",
    "/applications/<reference>/withdraw": "reference",
    "/applications/<reference>/appeal": "reference",
    "/applications/<reference>/answers": "reference",
    "/applications/<reference>/revisions/<int:number>/diff": "reference",
    "/review/<reference>": "reference",
    "/review/<reference>/claim": "reference",
    "/review/<reference>/decide": "reference",
    "/review/<reference>/escalate": "reference",
    "/review/<reference>/hand-back": "reference",
    "/review/<reference>/notes": "reference",
    "/review/<reference>/release": "reference",
    "/review/<reference>/renew": "reference",
    "/admin/claims/<reference>/reassign": "reference",
    "/webhooks/<int:endpoint_id>": "endpoint_id",
    "/webhooks/<int:endpoint_id>/activate": "endpoint_id",
    "/webhooks/<int:endpoint_id>/deactivate": "endpoint_id",
    "/webhooks/<int:endpoint_id>/delete": "endpoint_id",
    "/webhooks/<int:endpoint_id>/rotate": "endpoint_id",
    "/webhooks/deliveries/<int:delivery_id>/redeliver": "delivery_id",
    "/account/tokens/<int:token_id>/revoke": "token_id",
    "/clarifications/<int:request_id>": "request_id",
    "/admin/policies/clarifications/<int:request_id>": "request_id",
    "/admin/users/<int:user_id>": "user_id",
    "/admin/users/<int:user_id>/deactivate": "user_id",
    "/admin/users/<int:user_id>/password-link": "user_id",
    "/admin/users/<int:user_id>/reactivate": "user_id",
    "/admin/users/<int:user_id>/role": "user_id",
}
# routes whose arguments name no organization's object (public, staff catalogue, secrets)
BROWSER_OTHER_ROUTES = {
    "/static/<path:filename>",
    "/bootstrap/static/<path:filename>",
    "/policies/<key>",
    "/policies/<key>/v<int:version>",
    "/policies/<key>/clarifications",
    "/invite/<token>",
    "/password-reset/<token>",
}


def _browser_rules(app) -> list[Any]:  # noqa: ANN001
    return [
        rule
        for rule in app.url_map.iter_rules()
        if rule.arguments and not rule.rule.startswith("/api/")
    ]


def test_every_browser_object_route_is_covered(app) -> None:
    missing = [
        rule.rule
        for rule in _browser_rules(app)
        if rule.rule not in BROWSER_OBJECT_ROUTES
        and rule.rule not in BROWSER_OTHER_ROUTES
        and not rule.rule.startswith(("/admin/rulesets", "/admin/catalogue", "/admin/tiers"))
        and not rule.rule.startswith(("/admin/policies/sections", "/admin/metrics"))
    ]
    assert missing == [], "classify these routes in test_idor.py"


def _fill(rule: str, world: World, missing: bool) -> str:
    values = world.path_values()
    if not missing:
        values["reference"] = world.queued.reference
    path = rule
    for name, value in values.items():
        if missing and name in ("reference",):
            value = MISSING_REFERENCE
        elif missing and name.endswith("_id"):
            value = MISSING_ID
        path = path.replace(f"<int:{name}>", str(value)).replace(f"<{name}>", str(value))
    return path


def _rule_methods(app, path: str) -> list[str]:  # noqa: ANN001
    rule = next(r for r in app.url_map.iter_rules() if r.rule == path)
    return sorted(rule.methods - {"HEAD", "OPTIONS"})


@pytest.mark.parametrize("rule", sorted(BROWSER_OBJECT_ROUTES))
def test_other_developer_cannot_tell_an_object_exists(app, db, login, rule: str) -> None:
    """other_developer gets for the applicant's real object exactly what a missing one gets
    (404 on the developer areas; the role's 403 on staff pages), sees none of its text, and
    changes nothing."""
    world = build_world(app, db)
    client = login(world.users["other_developer"])
    token = csrf_token(client, "/policies")
    for method in _rule_methods(app, rule):
        answers = []
        for missing in (False, True):
            path = _fill(rule, world, missing)
            before = _counts(db)
            if method == "GET":
                response = client.get(path)
            else:
                response = client.post(path, data={"csrf_token": token, "once": "x"})
            body = response.get_data(as_text=True)
            leaked = [m for m in LEAK_MARKERS if m in body]
            assert leaked == [], (method, path, leaked)
            db.expire_all()
            assert _counts(db) == before, (method, path)
            answers.append(response.status_code)
        assert answers[0] == answers[1], (method, rule, answers)
        expected = 403 if rule.startswith(("/review/", "/admin/")) else 404
        assert answers[0] == expected, (method, rule, answers)
