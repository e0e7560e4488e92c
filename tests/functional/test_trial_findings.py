"""Regression tests for what a new-user trial found: sessions, look-alike names, filters,
stale decisions, citations on high-risk approvals, CLI input checks."""

from __future__ import annotations

from sqlalchemy import func, select

from reviewapp.auth.models import Organization
from reviewapp.review.models import Decision
from tests.conftest import csrf_token, post_form
from tests.factories import PASSWORD, ApplicationFactory, OrganizationFactory, UserFactory


def test_a_copied_session_cookie_stops_working_after_logout(app, client, db) -> None:
    UserFactory(email="copy@example.com", reviewer=True)
    token = csrf_token(client, "/login")
    client.post(
        "/login", data={"email": "copy@example.com", "password": PASSWORD, "csrf_token": token}
    )
    assert client.get("/queue").status_code == 200
    stolen = client.get_cookie("session")
    assert stolen is not None
    post_form(client, "/logout", token_from="/queue")
    thief = app.test_client()
    thief.set_cookie("session", stolen.value)
    response = thief.get("/queue")
    assert response.status_code == 302 and "/login" in response.location


def test_look_alike_organization_names_are_the_same_organization(client, db) -> None:
    org = OrganizationFactory(name="Trust & Safety")
    for disguised, answer in (
        ("Trust &\u200b Safety", b"contains the invisible character U+200B; remove it"),
        ("TRUST & SAFETY", b"Ask a member for its join code"),
        ("Trust\u00a0&  Safety", b"Ask a member for its join code"),
        ("\u202eTrust & Safety\u202c", b"contains the invisible direction control U+202E"),
    ):
        token = csrf_token(client, "/register")
        response = client.post(
            "/register",
            data={
                "name": "Mallory",
                "email": "mallory@example.com",
                "password": "long-enough-pw",
                "confirm": "long-enough-pw",
                "organization": disguised,
                "csrf_token": token,
            },
        )
        # invisible characters are refused (not removed); the rest match the existing name
        assert response.status_code == 422 and answer in response.data, disguised
    assert (
        db.scalar(
            select(func.count())
            .select_from(Organization)
            .where(func.lower(Organization.name).like("%trust%"))
        )
        == 1
    )
    assert org.name == "Trust & Safety"


def test_invalid_queue_filter_is_reported_and_the_others_still_apply(login, db) -> None:
    standard = ApplicationFactory(submitted=True)
    high = ApplicationFactory(submitted=True, high_tier=True)
    client = login(UserFactory(reviewer=True, organization=OrganizationFactory()))
    page = client.get(f"/queue?tier=bogus&queue={high.queue}").get_data(as_text=True)
    assert "Not a valid choice" in page and "This filter was ignored." in page
    assert high.reference in page and standard.reference not in page
    page = client.get("/queue?queue=policy-violations").get_data(
        as_text=True
    )  # not a reviewer's queue
    assert "Not a valid choice" in page


def test_a_page_past_the_end_says_so(login, db) -> None:
    ApplicationFactory(submitted=True)
    client = login(UserFactory(reviewer=True, organization=OrganizationFactory()))
    page = client.get("/queue?page=44").get_data(as_text=True)
    assert "Page 44 is past the end: 1 applications match" in page
    assert client.get("/queue?page=99999999999999999999").status_code == 200
    assert client.get("/applications/APP-999999999999999999999999999999").status_code == 404


def test_approving_a_high_risk_application_needs_a_citation(login, db) -> None:
    application = ApplicationFactory(submitted=True, high_tier=True)
    client = login(UserFactory(senior=True, organization=OrganizationFactory()))
    post_form(client, f"/review/{application.reference}/claim", token_from="/queue")
    response = post_form(
        client,
        f"/review/{application.reference}/decide",
        {"outcome": "approve", "template": "approve-standard"},
        token_from=f"/review/{application.reference}",
    )
    assert response.status_code == 422 and b"needs at least one citation" in response.data
    assert db.scalar(select(func.count()).select_from(Decision)) == 0


def test_text_typed_into_a_decision_survives_someone_else_deciding_first(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    staff = OrganizationFactory()
    slow, fast = (
        UserFactory(reviewer=True, organization=staff),
        UserFactory(reviewer=True, organization=staff),
    )
    c_slow, c_fast = login(slow), login(fast)
    post_form(c_slow, f"/review/{application.reference}/claim", token_from="/queue")
    token = csrf_token(c_slow, f"/review/{application.reference}")
    # the lease runs out and the other reviewer claims and decides
    from reviewapp.db import utcnow

    db.expire_all()
    application.lease_expires_at = utcnow()
    db.flush()
    post_form(c_fast, f"/review/{application.reference}/claim", token_from="/queue")
    post_form(
        c_fast,
        f"/review/{application.reference}/decide",
        {"outcome": "approve", "template": "approve-standard"},
        token_from=f"/review/{application.reference}",
    )
    response = c_slow.post(
        f"/review/{application.reference}/decide",
        data={
            "csrf_token": token,
            "outcome": "reject",
            "citations": ["usage-1.5"],
            "template": "reject-prohibited",
            "reviewer_note": "my careful note",
            "rationale": "my reasoning",
        },
    )
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "it is now approved" in page
    assert "my careful note" in page and "my reasoning" in page
    assert db.scalar(select(func.count()).select_from(Decision)) == 1


def test_cli_refuses_bad_users_and_policies(app, db, tmp_path) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["create-user", "not-an-email", "--org", "X", "--password", "long-enough-pw"]
    )
    assert result.exit_code == 1 and "Not a valid email address" in result.output
    result = runner.invoke(
        args=["create-user", "ok@example.com", "--org", "   ", "--password", "long-enough-pw"]
    )
    assert result.exit_code == 1 and "organization name is empty" in result.output
    policies = tmp_path / "p.yaml"
    policies.write_text("sections:\n  - {id: usage-9, title: 5}\n", encoding="utf-8")
    result = runner.invoke(args=["import-policies", str(policies)])
    assert result.exit_code == 1 and "text title" in result.output
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("row_id,agenc\xe9\n1,Cafe\n".encode("latin-1"))
    result = runner.invoke(args=["import-applications", str(latin1)])
    assert result.exit_code != 0 and "UTF-8" in result.output
