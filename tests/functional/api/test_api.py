"""JSON API: tokens, create/submit, read, list, vocabularies, errors."""

from __future__ import annotations

from sqlalchemy import select

from reviewapp.auth.models import ApiToken
from reviewapp.auth.services import issue_token
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory, content


def token_for(db, user) -> dict[str, str]:  # noqa: ANN001
    return {"Authorization": f"Bearer {issue_token(db, user)}"}


def test_create_and_submit_returns_triage(client, db) -> None:
    dev = UserFactory()
    headers = token_for(db, dev)
    body = {
        **content(domains=["health"], end_users=["consumers"], human_review_of_outputs=False),
        "submit": True,
    }
    response = client.post("/api/v1/applications", json=body, headers=headers)
    assert response.status_code == 201, response.json
    data = response.json
    assert data["reference"].startswith("APP-") and data["status"] == "queued"
    assert data["risk_tier"] in ("high", "prohibited") and data["queue"]
    assert data["triage"]["ruleset_version"] == 1
    assert data["triage"]["fired_rules"] and all(
        r["explanation"] for r in data["triage"]["fired_rules"]
    )
    assert response.headers["Location"] == f"/api/v1/applications/{data['reference']}"
    again = client.get(data["reference"].join(["/api/v1/applications/", ""]), headers=headers)
    assert again.status_code == 200 and again.json["reference"] == data["reference"]
    token = db.scalars(select(ApiToken).where(ApiToken.user_id == dev.id)).one()
    db.refresh(token)
    assert token.last_used_at is not None and "ra_" not in token.secret_hash


def test_draft_without_submit(client, db) -> None:
    headers = token_for(db, UserFactory())
    response = client.post("/api/v1/applications", json={"title": "Only a title"}, headers=headers)
    assert (
        response.status_code == 201
        and response.json["status"] == "draft"
        and response.json["risk_tier"] is None
    )


def test_unknown_vocabulary_value_is_422_naming_the_field(client, db) -> None:
    headers = token_for(db, UserFactory())
    response = client.post(
        "/api/v1/applications", json={**content(), "domains": ["astrology"]}, headers=headers
    )
    assert response.status_code == 422
    error = response.json["error"]
    assert error["code"] == "validation_failed" and "astrology" in error["fields"]["domains"]


def test_incomplete_submit_is_422_and_nothing_stored(client, db) -> None:
    headers = token_for(db, UserFactory())
    response = client.post(
        "/api/v1/applications", json={"title": "x", "submit": True}, headers=headers
    )
    assert response.status_code == 422 and "category" in response.json["error"]["fields"]
    listing = client.get("/api/v1/applications", headers=headers).json
    assert listing["total"] == 0


def test_bad_bodies(client, db, app) -> None:
    headers = token_for(db, UserFactory())
    for body, kwargs in (
        ("not json", {}),
        ('{"title": "x"', {"content_type": "application/json"}),
        ("[" * 100_000, {"content_type": "application/json"}),
    ):
        response = client.post("/api/v1/applications", data=body, headers=headers, **kwargs)
        assert response.status_code == 400, body[:20]
        assert response.json["error"]["code"] == "bad_request"
    assert client.post("/api/v1/applications", json=[1, 2], headers=headers).status_code == 400
    assert (
        client.post("/api/v1/applications", json={"submit": "yes"}, headers=headers).status_code
        == 422
    )
    big = "x" * (app.config["MAX_CONTENT_LENGTH"] + 10)
    response = client.post(
        "/api/v1/applications", data=big, headers={**headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 413 and response.json["error"]["code"] == "payload_too_large"


def test_unstorable_text_and_wrong_types_are_422_not_500(client, db) -> None:
    headers = token_for(db, UserFactory())
    for body, field in (
        ({"title": "bad \ud800 surrogate"}, "title"),
        ({"title": "nul \u0000 byte"}, "title"),
        ({"title": "ok", "description": "bell \u0007"}, "description"),
        ({"title": "ok", "category": ["a"]}, "category"),
        ({"title": "ok", "category": {"a": 1}}, "category"),
    ):
        response = client.post("/api/v1/applications", json=body, headers=headers)
        assert response.status_code == 422, body
        assert field in response.json["error"]["fields"]
    listing = client.get("/api/v1/applications", headers=headers)
    assert listing.status_code == 200 and listing.json["total"] == 0
    # a title is one line (it becomes an email subject); other text fields keep line breaks
    ok = client.post(
        "/api/v1/applications",
        json={"title": "Tabs\tand emoji 🚀, RTL مرحبا", "description": "new\nlines"},
        headers=headers,
    )
    assert ok.status_code == 201
    assert ok.json["content"]["title"] == "Tabs\tand emoji 🚀, RTL مرحبا"
    assert ok.json["content"]["description"] == "new\nlines"


def test_huge_numbers_in_pages_and_references_are_handled(client, db) -> None:
    headers = token_for(db, UserFactory(reviewer=True))
    assert (
        client.get("/api/v1/applications?page=99999999999999999999", headers=headers).status_code
        == 422
    )
    assert (
        client.get("/api/v1/applications/APP-99999999999999999999", headers=headers).status_code
        == 404
    )
    assert client.get("/api/v1/applications/APP-2147483648", headers=headers).status_code == 404


def test_reviewers_cannot_read_other_organizations_drafts(client, db) -> None:
    draft = ApplicationFactory()
    submitted = ApplicationFactory(submitted=True)
    headers = token_for(db, UserFactory(reviewer=True))
    assert client.get(f"/api/v1/applications/{draft.reference}", headers=headers).status_code == 404
    assert (
        client.get(f"/api/v1/applications/{submitted.reference}", headers=headers).status_code
        == 200
    )
    refs = {
        i["reference"]
        for i in client.get("/api/v1/applications?per_page=100", headers=headers).json["items"]
    }
    assert draft.reference not in refs and submitted.reference in refs


def test_authentication_errors(client, db) -> None:
    assert client.get("/api/v1/applications").status_code == 401
    assert (
        client.get(
            "/api/v1/applications", headers={"Authorization": "Bearer ra_nope_nope"}
        ).status_code
        == 401
    )
    user = UserFactory()
    headers = token_for(db, user)
    user.active = False
    db.flush()
    assert client.get("/api/v1/applications", headers=headers).status_code == 401


def test_lists_are_scoped_and_paginated(client, db) -> None:
    org = OrganizationFactory()
    mine = [
        ApplicationFactory(submitted=True, submitter=UserFactory(organization=org))
        for _ in range(3)
    ]
    theirs = ApplicationFactory(submitted=True)
    dev_headers = token_for(db, mine[0].submitter)
    listing = client.get("/api/v1/applications?per_page=2&page=1", headers=dev_headers).json
    assert listing["total"] == 3 and len(listing["items"]) == 2 and listing["per_page"] == 2
    refs = {i["reference"] for i in listing["items"]} | {
        i["reference"]
        for i in client.get("/api/v1/applications?per_page=2&page=2", headers=dev_headers).json[
            "items"
        ]
    }
    assert refs == {a.reference for a in mine}
    assert set(listing["items"][0]) == {
        "sla_due_at",
        "reference",
        "external_ref",
        "title",
        "organization",
        "status",
        "risk_tier",
        "queue",
        "submitted_at",
    }
    assert (
        client.get(f"/api/v1/applications/{theirs.reference}", headers=dev_headers).status_code
        == 404
    )
    reviewer_headers = token_for(db, UserFactory(reviewer=True))
    assert (
        client.get("/api/v1/applications?per_page=100", headers=reviewer_headers).json["total"] == 4
    )
    assert (
        client.get("/api/v1/applications?per_page=101", headers=reviewer_headers).status_code == 422
    )
    assert (
        client.get("/api/v1/applications?status=bogus", headers=reviewer_headers).status_code == 422
    )
    tier = theirs.risk_tier
    filtered = client.get(
        f"/api/v1/applications?tier={tier}&status=queued", headers=reviewer_headers
    ).json
    assert all(i["risk_tier"] == tier for i in filtered["items"])


def test_vocabularies(client, db) -> None:
    data = client.get("/api/v1/vocabularies").json
    assert data["tiers"] == ["low", "medium", "high", "prohibited"]
    assert (
        "health" in data["domains"]
        and "minors" in data["end_users"]
        and "text" in data["modalities"]
    )
    assert "assistant_chatbot" in data["category"]


def test_unknown_api_route_is_json_404(client, db) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"
