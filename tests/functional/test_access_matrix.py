"""Access matrix: role × endpoint -> expected status, for every browser route.

Roles: anonymous, developer (applicant's organization), other_developer (another organization),
reviewer, senior_reviewer, admin. 302 to the login page for anonymous users on protected pages.
"""

from __future__ import annotations

import pytest

from tests.conftest import csrf_token
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

ROLES = ["anonymous", "developer", "other_developer", "reviewer", "senior_reviewer", "admin"]

# (method, path template, {role: status})
MATRIX = [
    (
        "GET",
        "/",
        dict(
            anonymous=200,
            developer=302,
            other_developer=302,
            reviewer=302,
            senior_reviewer=302,
            admin=302,
        ),
    ),
    (
        "GET",
        "/login",
        dict(
            anonymous=200,
            developer=302,
            other_developer=302,
            reviewer=302,
            senior_reviewer=302,
            admin=302,
        ),
    ),
    (
        "POST",
        "/login",
        dict(
            anonymous=200,
            developer=302,
            other_developer=302,
            reviewer=302,
            senior_reviewer=302,
            admin=302,
        ),
    ),
    (
        "POST",
        "/register",
        dict(
            anonymous=200,
            developer=302,
            other_developer=302,
            reviewer=302,
            senior_reviewer=302,
            admin=302,
        ),
    ),
    (
        "GET",
        "/register",
        dict(
            anonymous=200,
            developer=302,
            other_developer=302,
            reviewer=302,
            senior_reviewer=302,
            admin=302,
        ),
    ),
    (
        "POST",
        "/logout",
        dict(
            anonymous=302,
            developer=302,
            other_developer=302,
            reviewer=302,
            senior_reviewer=302,
            admin=302,
        ),
    ),
    (
        "GET",
        "/policies",
        dict(
            anonymous=200,
            developer=200,
            other_developer=200,
            reviewer=200,
            senior_reviewer=200,
            admin=200,
        ),
    ),
    (
        "GET",
        "/policies/usage-1.1",
        dict(
            anonymous=200,
            developer=200,
            other_developer=200,
            reviewer=200,
            senior_reviewer=200,
            admin=200,
        ),
    ),
    (
        "GET",
        "/policies/usage-1.1/v1",
        dict(
            anonymous=200,
            developer=200,
            other_developer=200,
            reviewer=200,
            senior_reviewer=200,
            admin=200,
        ),
    ),
    (
        "GET",
        "/policies/usage-1.1/v9",
        dict(
            anonymous=404,
            developer=404,
            other_developer=404,
            reviewer=404,
            senior_reviewer=404,
            admin=404,
        ),
    ),
    (
        "GET",
        "/applications",
        dict(
            anonymous=302,
            developer=200,
            other_developer=200,
            reviewer=403,
            senior_reviewer=403,
            admin=403,
        ),
    ),
    (
        "GET",
        "/applications/new",
        dict(
            anonymous=302,
            developer=200,
            other_developer=200,
            reviewer=403,
            senior_reviewer=403,
            admin=403,
        ),
    ),
    (
        "POST",
        "/applications/new",
        dict(
            anonymous=302,
            developer=200,
            other_developer=200,
            reviewer=403,
            senior_reviewer=403,
            admin=403,
        ),
    ),
    (
        "GET",
        "/applications/{ref}",
        dict(
            anonymous=302,
            developer=200,
            other_developer=404,
            reviewer=302,
            senior_reviewer=302,
            admin=302,
        ),
    ),
    (
        "GET",
        "/applications/{draft}/edit",
        dict(
            anonymous=302,
            developer=200,
            other_developer=404,
            reviewer=404,
            senior_reviewer=404,
            admin=404,
        ),
    ),
    (
        "POST",
        "/applications/{draft}/edit",
        dict(
            anonymous=302,
            developer=200,
            other_developer=404,
            reviewer=404,
            senior_reviewer=404,
            admin=404,
        ),
    ),
    (
        "POST",
        "/applications/{draft}/submit",
        dict(
            anonymous=302,
            developer=302,
            other_developer=404,
            reviewer=404,
            senior_reviewer=404,
            admin=404,
        ),
    ),
    (
        "POST",
        "/applications/{ref}/withdraw",
        dict(
            anonymous=302,
            developer=302,
            other_developer=404,
            reviewer=302,
            senior_reviewer=302,
            admin=302,
        ),
    ),
    (
        "GET",
        "/queue",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=200,
            senior_reviewer=200,
            admin=200,
        ),
    ),
    (
        "POST",
        "/queue/claim-next",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=302,
            senior_reviewer=302,
            admin=302,
        ),
    ),
    (
        "GET",
        "/review/{ref}",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=200,
            senior_reviewer=200,
            admin=200,
        ),
    ),
    (
        "POST",
        "/review/{ref}/claim",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=302,
            senior_reviewer=302,
            admin=302,
        ),
    ),
    (
        "POST",
        "/review/{ref}/release",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=302,
            senior_reviewer=302,
            admin=302,
        ),
    ),
    (
        "POST",
        "/applications/{ref}/appeal",
        dict(
            anonymous=302,
            developer=422,
            other_developer=404,
            reviewer=422,
            senior_reviewer=422,
            admin=422,
        ),
    ),
    (
        "POST",
        "/review/{ref}/escalate",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=302,
            senior_reviewer=302,
            admin=302,
        ),
    ),
    (
        "POST",
        "/review/{ref}/hand-back",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=403,
            senior_reviewer=302,
            admin=302,
        ),
    ),
    (
        "GET",
        "/admin/policy-feedback",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=403,
            senior_reviewer=403,
            admin=200,
        ),
    ),
    (
        "POST",
        "/review/{ref}/renew",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=302,
            senior_reviewer=302,
            admin=302,
        ),
    ),
    (
        "POST",
        "/review/{ref}/notes",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=422,
            senior_reviewer=422,
            admin=422,
        ),
    ),
    (
        "POST",
        "/review/{ref}/decide",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=422,
            senior_reviewer=422,
            admin=422,
        ),
    ),
    (
        "GET",
        "/admin/rulesets",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=403,
            senior_reviewer=403,
            admin=200,
        ),
    ),
    (
        "GET",
        "/admin/rulesets/1",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=403,
            senior_reviewer=403,
            admin=200,
        ),
    ),
    (
        "POST",
        "/admin/rulesets/1/draft",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=403,
            senior_reviewer=403,
            admin=302,
        ),
    ),
    (
        "GET",
        "/admin/rulesets/1/rules/new",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=403,
            senior_reviewer=403,
            admin=302,
        ),
    ),
    (
        "POST",
        "/admin/rulesets/1/rules/new",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=403,
            senior_reviewer=403,
            admin=302,
        ),
    ),
    (
        "GET",
        "/admin/rulesets/1/rules/prohibited-weapons-cbrn/edit",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=403,
            senior_reviewer=403,
            admin=302,
        ),
    ),
    (
        "POST",
        "/admin/rulesets/1/rules/prohibited-weapons-cbrn/edit",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=403,
            senior_reviewer=403,
            admin=302,
        ),
    ),
    (
        "POST",
        "/admin/rulesets/1/rules/prohibited-weapons-cbrn/delete",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=403,
            senior_reviewer=403,
            admin=302,
        ),
    ),
    (
        "POST",
        "/admin/rulesets/1/rules/prohibited-weapons-cbrn/move",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=403,
            senior_reviewer=403,
            admin=302,
        ),
    ),
    (
        "GET",
        "/admin/rulesets/1/keyword-lists/new",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=403,
            senior_reviewer=403,
            admin=200,
        ),
    ),
    (
        "POST",
        "/admin/rulesets/1/keyword-lists/new",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=403,
            senior_reviewer=403,
            admin=302,
        ),
    ),
    (
        "GET",
        "/admin/rulesets/1/keyword-lists/weapons_cbrn",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=403,
            senior_reviewer=403,
            admin=200,
        ),
    ),
    (
        "POST",
        "/admin/rulesets/1/keyword-lists/weapons_cbrn",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=403,
            senior_reviewer=403,
            admin=302,
        ),
    ),
    (
        "POST",
        "/admin/rulesets/1/try",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=403,
            senior_reviewer=403,
            admin=422,
        ),
    ),
    (
        "POST",
        "/admin/rulesets/1/approve",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=403,
            senior_reviewer=403,
            admin=302,
        ),
    ),
    (
        "POST",
        "/admin/rulesets/1/publish",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=403,
            senior_reviewer=403,
            admin=302,
        ),
    ),
    (
        "POST",
        "/admin/rulesets/1/rollback",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=403,
            senior_reviewer=403,
            admin=302,
        ),
    ),
    (
        "POST",
        "/admin/rulesets/1/shadow",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=403,
            senior_reviewer=403,
            admin=302,
        ),
    ),
    (
        "GET",
        "/admin/rulesets/1/shadow-results",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=403,
            senior_reviewer=403,
            admin=200,
        ),
    ),
    (
        "POST",
        "/admin/rulesets/1/backtests",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=403,
            senior_reviewer=403,
            admin=302,
        ),
    ),
    (
        "GET",
        "/admin/rulesets/backtests/999",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=403,
            senior_reviewer=403,
            admin=404,
        ),
    ),
    (
        "GET",
        "/admin/rulesets/backtests/999/progress",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=403,
            senior_reviewer=403,
            admin=404,
        ),
    ),
    (
        "GET",
        "/admin",
        dict(
            anonymous=302,
            developer=403,
            other_developer=403,
            reviewer=403,
            senior_reviewer=403,
            admin=200,
        ),
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "expected"), MATRIX, ids=[f"{m} {p}" for m, p, _ in MATRIX]
)
@pytest.mark.parametrize("role", ROLES)
def test_access(
    app, db, login, method: str, path: str, expected: dict[str, int], role: str
) -> None:
    applicant_org = OrganizationFactory()
    staff = OrganizationFactory(name="Staff org")
    developer = UserFactory(organization=applicant_org)
    application = ApplicationFactory(submitted=True, submitter=developer)
    draft = ApplicationFactory(submitter=developer)
    users = {
        "developer": developer,
        "other_developer": UserFactory(),
        "reviewer": UserFactory(reviewer=True, organization=staff),
        "senior_reviewer": UserFactory(senior=True, organization=staff),
        "admin": UserFactory(admin=True, organization=staff),
    }
    client = app.test_client() if role == "anonymous" else login(users[role])
    url = path.format(ref=application.reference, draft=draft.reference)
    if method == "GET":
        response = client.get(url)
    else:
        token = (
            csrf_token(client, "/login" if role == "anonymous" else "/policies")
            if role == "anonymous"
            else _token(client)
        )
        response = client.post(url, data={"csrf_token": token})
    assert response.status_code == expected[role], (role, method, url, response.status_code)
    if response.status_code == 302 and role == "anonymous" and path not in ("/logout",):
        assert "/login" in response.location


def _token(client) -> str:  # noqa: ANN001
    return csrf_token(client, "/policies")


def test_every_route_is_in_the_matrix(app) -> None:
    """A new route must get a row here (or in the API tests) before it ships."""

    def normalise(path: str) -> str:
        return (
            path.replace("{ref}", "<reference>")
            .replace("{draft}", "<reference>")
            .replace("/usage-1.1/v1", "/<key>/v<int:version>")
            .replace("/usage-1.1/v9", "/<key>/v<int:version>")
            .replace("/usage-1.1", "/<key>")
            .replace("/admin/rulesets/1", "/admin/rulesets/<int:number>")
            .replace("/prohibited-weapons-cbrn/", "/<key>/")
            .replace("/keyword-lists/weapons_cbrn", "/keyword-lists/<name>")
            .replace("/backtests/999", "/backtests/<int:backtest_id>")
        )

    covered = {(m, normalise(p)) for m, p, _ in MATRIX}
    missing = [
        f"{method} {rule.rule}"
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in ("static", "bootstrap.static") and not rule.rule.startswith("/api/")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
        if (method, rule.rule) not in covered
    ]
    assert missing == []
