"""The whole workflow through the JSON API: create (idempotent), ETag/If-Match, submit, queue
position and SLA estimate, claim-next (200/204), request mitigations with parameters, answers,
resubmission, revisions and diff, approval with conditions, appeals, policies, OpenAPI."""

from __future__ import annotations

from sqlalchemy import func, select

from reviewapp.applications.models import Application
from reviewapp.auth.services import issue_token
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory, content

DETAILS = "Sign-up checks an ID document; under-16 accounts are refused."


def bearer(db, user, scopes: str = "read write") -> dict[str, str]:  # noqa: ANN001
    return {"Authorization": f"Bearer {issue_token(db, user, scopes=scopes)}"}


def test_developer_and_reviewer_work_a_case_through_the_api(client, db) -> None:
    dev = bearer(db, UserFactory())
    reviewer = bearer(
        db, UserFactory(reviewer=True, organization=OrganizationFactory()), "read write review"
    )
    body = content(title="Homework helper")

    # create twice with one idempotency key -> one application, the same answer replayed
    first = client.post(
        "/api/v1/applications", json=body, headers={**dev, "Idempotency-Key": "create-1"}
    )
    again = client.post(
        "/api/v1/applications", json=body, headers={**dev, "Idempotency-Key": "create-1"}
    )
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.json["reference"] == again.json["reference"]
    assert db.scalar(select(func.count()).select_from(Application)) == 1
    reused = client.post(
        "/api/v1/applications",
        json={**body, "title": "Another"},
        headers={**dev, "Idempotency-Key": "create-1"},
    )
    assert reused.status_code == 422 and reused.json["error"]["fields"]["Idempotency-Key"]
    ref = first.json["reference"]
    etag = first.headers["ETag"]

    # a stale If-Match is refused with 412; the current one works
    edited = client.patch(
        f"/api/v1/applications/{ref}",
        json={"benefits": "Saves teachers time."},
        headers={**dev, "If-Match": etag},
    )
    assert (
        edited.status_code == 200 and edited.json["content"]["benefits"] == "Saves teachers time."
    )
    stale = client.post(f"/api/v1/applications/{ref}/submit", headers={**dev, "If-Match": etag})
    assert stale.status_code == 412 and stale.json["error"]["code"] == "precondition_failed"
    submitted = client.post(
        f"/api/v1/applications/{ref}/submit",
        headers={**dev, "If-Match": edited.headers["ETag"], "Idempotency-Key": "submit-1"},
    )
    assert submitted.status_code == 200 and submitted.json["status"] == "queued"
    assert submitted.json["queue_position"] == 1 and submitted.json["sla_due_at"]
    twice = client.post(
        f"/api/v1/applications/{ref}/submit", headers={**dev, "Idempotency-Key": "submit-1"}
    )
    assert twice.status_code == 200 and twice.headers["Idempotent-Replayed"] == "true"
    assert len(client.get(f"/api/v1/applications/{ref}/revisions", headers=dev).json["items"]) == 1

    # reviewer: the queue, claim-next, request mitigations with a reason and a parameter
    assert ref in {
        i["reference"] for i in client.get("/api/v1/queue", headers=reviewer).json["items"]
    }
    assert client.get("/api/v1/queue", headers=dev).status_code == 403  # no review scope
    claimed = client.post("/api/v1/queue/claim-next", headers=reviewer)
    assert claimed.status_code == 200 and claimed.json["reference"] == ref
    assert client.post("/api/v1/queue/claim-next", headers=reviewer).status_code == 204
    decided = client.post(
        f"/api/v1/applications/{ref}/decisions",
        json={
            "outcome": "request_mitigations",
            "citations": ["usage-2.1"],
            "template": "mitigations-standard",
            "safety_requirements": [
                {
                    "id": "age-assurance",
                    "reason": "Open to teenagers.",
                    "parameters": {"minimum_user_age": 16},
                }
            ],
        },
        headers=reviewer,
    )
    assert decided.status_code == 201 and decided.json["final"] is True
    read = client.get(f"/api/v1/applications/{ref}", headers=dev).json
    assert read["status"] == "mitigations_requested" and read["sla_due_at"] is None
    requirement = read["decision"]["safety_requirements"][0]
    assert requirement["parameters"] == {"minimum_user_age": 16}
    assert requirement["reason"] == "Open to teenagers." and requirement["attested"] is False

    # developer: resubmitting before answering is refused; answer, edit, resubmit
    early = client.post(f"/api/v1/applications/{ref}/resubmit", headers=dev)
    assert early.status_code == 422 and "Age assurance" in early.json["error"]["message"]
    answered = client.patch(
        f"/api/v1/applications/{ref}",
        json={
            "description": read["content"]["description"] + " Under-16s are refused.",
            "answers": {"age-assurance": {"attested": True, "details": DETAILS}},
        },
        headers=dev,
    )
    assert answered.status_code == 200
    bad = client.patch(
        f"/api/v1/applications/{ref}",
        json={"answers": {"age-assurance": {"attested": "yes", "details": DETAILS}}},
        headers=dev,
    )
    assert bad.status_code == 422
    resubmitted = client.post(f"/api/v1/applications/{ref}/resubmit", headers=dev)
    assert resubmitted.status_code == 200 and resubmitted.json["revision"] == 2
    diff = client.get(f"/api/v1/applications/{ref}/revisions/2/diff", headers=dev).json
    assert [c["field"] for c in diff["changes"]] == ["description"]
    assert ["insert", " Under-16s are refused."] in diff["changes"][0]["segments"]
    assert (
        client.get(f"/api/v1/applications/{ref}/revisions/5/diff", headers=dev).status_code == 404
    )

    # reviewer approves: the attested requirement becomes a condition with its parameter
    assert client.post("/api/v1/queue/claim-next", headers=reviewer).json["reference"] == ref
    approved = client.post(
        f"/api/v1/applications/{ref}/decisions",
        json={
            "outcome": "approve",
            "citations": ["usage-2.1"],
            "template": "approve-with-conditions",
        },
        headers=reviewer,
    )
    assert approved.status_code == 201
    final = client.get(f"/api/v1/applications/{ref}", headers=dev).json
    assert final["status"] == "approved" and final["decision"]["conditional"] is True
    assert final["decision"]["safety_requirements"][0]["parameters"] == {"minimum_user_age": 16}
    assert final["decision"]["safety_requirements"][0]["attested"] is True


def test_appeal_withdraw_release_and_errors(client, db) -> None:
    application = ApplicationFactory(submitted=True)
    dev = bearer(db, application.submitter)
    staff = OrganizationFactory()
    first = bearer(db, UserFactory(senior=True, organization=staff), "read review")
    ref = application.reference
    assert client.post("/api/v1/queue/claim-next", headers=first).json["reference"] == ref
    released = client.post(f"/api/v1/applications/{ref}/release", headers=first)
    assert released.status_code == 200 and released.json["status"] == "queued"
    client.post("/api/v1/queue/claim-next", headers=first)
    missing_citation = client.post(
        f"/api/v1/applications/{ref}/decisions",
        json={"outcome": "reject", "template": "reject-prohibited"},
        headers=first,
    )
    assert (
        missing_citation.status_code == 422
        and "citations" in missing_citation.json["error"]["fields"]
    )
    rejected = client.post(
        f"/api/v1/applications/{ref}/decisions",
        json={"outcome": "reject", "template": "reject-prohibited", "citations": ["usage-1.5"]},
        headers=first,
    )
    assert rejected.status_code == 201
    short = client.post(f"/api/v1/applications/{ref}/appeal", json={"statement": "no"}, headers=dev)
    assert short.status_code == 422
    appealed = client.post(
        f"/api/v1/applications/{ref}/appeal",
        json={"statement": "We never process payments; 'card' meant flash cards."},
        headers=dev,
    )
    assert appealed.status_code == 200 and appealed.json["status"] == "appealed"
    assert client.post(f"/api/v1/applications/{ref}/withdraw", headers=dev).status_code == 409
    assert (
        client.post(f"/api/v1/applications/{ref}/appeal", json=[], headers=dev).status_code == 400
    )
    other = bearer(db, UserFactory())
    assert client.get(f"/api/v1/applications/{ref}/revisions", headers=other).status_code == 404
    assert client.post(f"/api/v1/applications/{ref}/withdraw", headers=other).status_code == 404


def test_policies_and_openapi_are_public(client, db) -> None:
    listing = client.get("/api/v1/policies")
    assert listing.status_code == 200
    first = listing.json["items"][0]
    detail = client.get(f"/api/v1/policies/{first['id']}").json
    assert detail["versions"][-1]["version"] == first["current_version"]
    assert detail["versions"][0]["url"].endswith(f"/policies/{first['id']}/v1")
    assert client.get("/api/v1/policies/nope").status_code == 404
    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"] == "3.1.0"
    assert {"/api/v1/queue/claim-next", "/api/v1/applications/{reference}/decisions"} <= set(
        spec["paths"]
    )
    assert "patch" in spec["paths"]["/api/v1/applications/{reference}"]
    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert "/api/v1/applications/{reference}/revisions/{number}/diff" in page
    assert "ApplicationOut" in page


def test_retries_stale_answers_and_field_names(client, db) -> None:
    dev = bearer(db, UserFactory())
    reviewer = bearer(
        db, UserFactory(reviewer=True, organization=OrganizationFactory()), "read review"
    )
    created = client.post("/api/v1/applications", json=content(), headers=dev)
    ref, etag = created.json["reference"], created.headers["ETag"]
    # a retried submit that also sends If-Match is replayed, not refused as stale
    headers = {**dev, "If-Match": etag, "Idempotency-Key": "submit-once"}
    assert client.post(f"/api/v1/applications/{ref}/submit", headers=headers).status_code == 200
    retry = client.post(f"/api/v1/applications/{ref}/submit", headers=headers)
    assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true"
    # request mitigations, then two clients answer: the second, stale one gets 412
    client.post("/api/v1/queue/claim-next", headers=reviewer)
    client.post(
        f"/api/v1/applications/{ref}/decisions",
        json={
            "outcome": "request_mitigations",
            "citations": ["usage-2.1"],
            "template": "mitigations-standard",
            "safety_requirements": [{"id": "ai-disclosure", "reason": "Public chat."}],
        },
        headers=reviewer,
    )
    read = client.get(f"/api/v1/applications/{ref}", headers=dev)
    answer = {"ai-disclosure": {"attested": True, "details": DETAILS}}
    first = client.patch(
        f"/api/v1/applications/{ref}",
        json={"answers": answer},
        headers={**dev, "If-Match": read.headers["ETag"]},
    )
    assert first.status_code == 200 and first.headers["ETag"] != read.headers["ETag"]
    stale = client.patch(
        f"/api/v1/applications/{ref}",
        json={"answers": answer},
        headers={**dev, "If-Match": read.headers["ETag"]},
    )
    assert stale.status_code == 412
    extra = client.patch(
        f"/api/v1/applications/{ref}",
        json={"answers": {**answer, "age-assurance": {"attested": True, "details": DETAILS}}},
        headers=dev,
    )
    assert extra.status_code == 422 and "answers.age-assurance" in extra.json["error"]["fields"]
    unknown = client.patch(
        f"/api/v1/applications/{ref}",
        json={"answers": {"ai-disclosure": {**answer["ai-disclosure"], "foo": 1}}},
        headers=dev,
    )
    assert (
        unknown.status_code == 422
        and "answers.ai-disclosure.foo" in unknown.json["error"]["fields"]
    )
    blank = client.patch(f"/api/v1/applications/{ref}", json={"title": "  "}, headers=dev)
    assert blank.status_code == 422 and "title" in blank.json["error"]["fields"]
    paging = client.get("/api/v1/applications?page=0", headers=dev).json["error"]["fields"]
    assert paging == {"page": "a whole number from 1 to 100000"}
    only_page = client.get("/api/v1/applications?page=abc&per_page=10", headers=dev)
    assert only_page.json["error"]["fields"] == {"page": "a whole number from 1 to 100000"}
    assert only_page.json["error"]["message"] == "page must be a whole number from 1 to 100000."


def test_catalogue_auth_header_and_visibility(client, db) -> None:
    dev = bearer(db, UserFactory())
    catalogue = client.get("/api/v1/catalogue", headers=dev).json
    assert "approve-with-conditions" in {t["key"] for t in catalogue["response_templates"]}
    age = next(r for r in catalogue["safety_requirements"] if r["id"] == "age-assurance")
    assert age["parameters"][0]["name"] == "minimum_user_age"
    assert "mitigations_requested" in catalogue["statuses"]
    unauthenticated = client.get("/api/v1/catalogue")
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["WWW-Authenticate"].startswith("Bearer")
    lower = {"Authorization": dev["Authorization"].replace("Bearer", "bearer")}
    assert client.get("/api/v1/catalogue", headers=lower).status_code == 200
    # a draft withdrawn before it was ever submitted stays private to its organization
    draft = ApplicationFactory()
    draft.status = "withdrawn"
    db.flush()
    reviewer = bearer(db, UserFactory(reviewer=True, organization=OrganizationFactory()))
    assert (
        client.get(f"/api/v1/applications/{draft.reference}", headers=reviewer).status_code == 404
    )


def test_decision_errors_use_json_paths(client, db) -> None:
    application = ApplicationFactory(submitted=True)
    reviewer = bearer(
        db, UserFactory(reviewer=True, organization=OrganizationFactory()), "read review"
    )
    ref = application.reference
    assert client.post(f"/api/v1/applications/{ref}/release", headers=reviewer).status_code == 409
    client.post("/api/v1/queue/claim-next", headers=reviewer)
    body = {
        "outcome": "request_mitigations",
        "citations": ["usage-2.1"],
        "template": "mitigations-standard",
        "safety_requirements": [{"id": "age-assurance", "parameters": {}}],
    }
    fields = client.post(f"/api/v1/applications/{ref}/decisions", json=body, headers=reviewer).json[
        "error"
    ]["fields"]
    assert "safety_requirements.age-assurance.reason" in fields
    assert "safety_requirements.age-assurance.parameters.minimum_user_age" in fields
    text_age = {**body["safety_requirements"][0], "parameters": {"minimum_user_age": "18"}}
    refused = client.post(
        f"/api/v1/applications/{ref}/decisions",
        json={**body, "safety_requirements": [text_age]},
        headers=reviewer,
    )
    assert refused.status_code == 422
    nested = client.post(
        f"/api/v1/applications/{ref}/decisions",
        json={**body, "citations": ["usage-2.1", None]},
        headers=reviewer,
    ).json["error"]["fields"]
    assert "citations.1" in nested


def test_queue_position_counts_up_to_the_limit_then_says_null(client, db, monkeypatch) -> None:
    """Each submission lands behind the earlier ones of its queue; once QUEUE_COUNT_LIMIT
    applications are ahead the answer stops counting (null) instead of reading the whole queue,
    and reading an application early in the queue still gives its exact place."""
    from reviewapp.api import views

    monkeypatch.setattr(views, "QUEUE_COUNT_LIMIT", 2)
    dev = bearer(db, UserFactory())
    answers = [
        client.post(
            "/api/v1/applications",
            json={**content(title=f"Helper {n}"), "submit": True},
            headers=dev,
        )
        for n in range(3)
    ]
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert len({a.json["queue"] for a in answers}) == 1  # same content, same queue
    assert [a.json["queue_position"] for a in answers] == [1, 2, None]
    assert all(a.json["status"] == "queued" for a in answers)
    first = client.get(f"/api/v1/applications/{answers[0].json['reference']}", headers=dev)
    assert first.json["queue_position"] == 1
    # a claimed application ahead is being reviewed: the others move up
    reviewer = bearer(
        db, UserFactory(reviewer=True, organization=OrganizationFactory()), "read review"
    )
    assert (
        client.post("/api/v1/queue/claim-next", headers=reviewer).json["reference"]
        == (answers[0].json["reference"])
    )
    second = client.get(f"/api/v1/applications/{answers[1].json['reference']}", headers=dev)
    third = client.get(f"/api/v1/applications/{answers[2].json['reference']}", headers=dev)
    assert (second.json["queue_position"], third.json["queue_position"]) == (1, 2)


def test_queue_filters_are_checked_like_the_queue_page(client, db) -> None:
    """Unknown queue, tier, status, view or a bad age give 422 naming each argument and what
    it accepts (never an empty list that looks like an empty queue); valid ones filter."""
    high = ApplicationFactory(submitted=True, high_tier=True)
    standard = ApplicationFactory(submitted=True)
    reviewer = bearer(
        db, UserFactory(reviewer=True, organization=OrganizationFactory()), "read review"
    )
    bad = client.get(
        "/api/v1/queue?tier=bogus&queue=policy-violations&status=draft&age_days=-3&view=x",
        headers=reviewer,
    )
    assert bad.status_code == 422
    fields = bad.json["error"]["fields"]
    assert set(fields) == {"tier", "queue", "status", "age_days", "view"}
    assert "high" in fields["tier"] and high.queue in fields["queue"]
    assert "policy-violations" not in fields["queue"]  # not a reviewer's queue
    assert fields["age_days"] == "a whole number from 0 to 3650"
    for age in ("abc", "3.5", "\u0663", "3651"):  # \u0663: an Arabic-Indic 3
        assert client.get(f"/api/v1/queue?age_days={age}", headers=reviewer).status_code == 422
    only_high = client.get("/api/v1/queue?tier=high&status=queued&age_days=0", headers=reviewer)
    assert only_high.status_code == 200
    assert [i["reference"] for i in only_high.json["items"]] == [high.reference]
    by_queue = client.get(f"/api/v1/queue?queue={standard.queue}", headers=reviewer)
    assert standard.reference in {i["reference"] for i in by_queue.json["items"]}
    # claim-next checks its queue too, instead of answering "nothing to claim"
    nope = client.post("/api/v1/queue/claim-next?queue=nope", headers=reviewer)
    assert nope.status_code == 422 and "queue" in nope.json["error"]["fields"]
    claimed = client.post(f"/api/v1/queue/claim-next?queue={high.queue}", headers=reviewer)
    assert claimed.status_code == 200 and claimed.json["reference"] == high.reference


def test_claim_next_over_the_api_takes_a_tier(client, db) -> None:
    standard = ApplicationFactory(submitted=True)
    high = ApplicationFactory(submitted=True, high_tier=True)
    reviewer = bearer(
        db, UserFactory(reviewer=True, organization=OrganizationFactory()), "read review"
    )
    first = client.post("/api/v1/queue/claim-next?tier=high", headers=reviewer)
    assert first.status_code == 200 and first.json["reference"] == high.reference
    assert client.post("/api/v1/queue/claim-next?tier=high", headers=reviewer).status_code == 204
    bad = client.post("/api/v1/queue/claim-next?tier=urgent", headers=reviewer)
    assert bad.status_code == 422 and "tier" in bad.json["error"]["fields"]
    db.expire_all()
    assert standard.claimed_by_id is None


def test_api_conflict_messages_do_not_speak_of_pages(client, db) -> None:
    """A 409 from the API says what happened and that nothing was saved, not "your text is
    kept below" or "reload the page" (browser words)."""
    application = ApplicationFactory(submitted=True)
    reviewer = bearer(
        db, UserFactory(reviewer=True, organization=OrganizationFactory()), "read review"
    )
    body = {"outcome": "approve", "template": "approve-standard", "citations": []}
    unclaimed = client.post(
        f"/api/v1/applications/{application.reference}/decisions", json=body, headers=reviewer
    )
    assert unclaimed.status_code == 409
    claimed = client.post("/api/v1/queue/claim-next", headers=reviewer)
    stale = client.post(
        f"/api/v1/applications/{application.reference}/decisions",
        json={**body, "version": claimed.json["version"] - 1},
        headers=reviewer,
    )
    assert stale.status_code == 409
    for answer in (unclaimed, stale):
        message = answer.json["error"]["message"]
        assert "Nothing was saved" in message
        assert "below" not in message and "page" not in message.lower()


def test_reads_are_never_304_and_the_decision_carries_the_etag(client, db) -> None:
    """The ETag is the version (for If-Match), but the answer also holds the queue position,
    which moves without a new version: If-None-Match never gets a 304 that would hide it. A
    decision's 201 carries the application's new ETag."""
    application = ApplicationFactory(submitted=True)
    dev = bearer(db, application.submitter, "read write")
    reviewer = bearer(
        db, UserFactory(reviewer=True, organization=OrganizationFactory()), "read review"
    )
    url = f"/api/v1/applications/{application.reference}"
    first = client.get(url, headers=dev)
    etag = first.headers["ETag"]
    unchanged = client.get(url, headers={**dev, "If-None-Match": etag})
    assert unchanged.status_code == 200 and unchanged.json["queue_position"] == 1
    client.post("/api/v1/queue/claim-next", headers=reviewer)
    changed = client.get(url, headers={**dev, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    decided = client.post(
        f"{url}/decisions",
        json={"outcome": "approve", "template": "approve-standard", "citations": []},
        headers=reviewer,
    )
    assert decided.status_code == 201, decided.json
    after = client.get(url, headers=dev)
    assert decided.headers["ETag"] == after.headers["ETag"]
    assert decided.json["application"]["version"] == after.json["version"]


def test_queue_position_follows_the_queue_order_when_due_times_tie(client, db) -> None:
    """Applications submitted out of business hours share an SLA due time; the queue (and
    claim-next) then orders by tier, then by time queued. queue_position agrees with it."""
    import datetime as dt

    from reviewapp.db import utcnow

    first, second = (ApplicationFactory(submitted=True) for _ in range(2))
    due = utcnow() + dt.timedelta(hours=5)
    first.sla_due_at = second.sla_due_at = due
    second.queued_at = first.queued_at - dt.timedelta(minutes=30)  # waited longer
    db.flush()
    dev = bearer(db, first.submitter, "read")
    dev2 = bearer(db, second.submitter, "read")
    position = {
        app.reference: client.get(f"/api/v1/applications/{app.reference}", headers=h).json[
            "queue_position"
        ]
        for app, h in ((first, dev), (second, dev2))
    }
    assert position == {second.reference: 1, first.reference: 2}
    reviewer = bearer(
        db, UserFactory(reviewer=True, organization=OrganizationFactory()), "read review"
    )
    claimed = client.post("/api/v1/queue/claim-next", headers=reviewer)
    assert claimed.json["reference"] == second.reference  # the same order


def test_claim_next_takes_every_queue_filter_and_refuses_unknown_arguments(client, db) -> None:
    import datetime as dt

    from reviewapp.db import utcnow

    fresh = ApplicationFactory(submitted=True)
    old = ApplicationFactory(submitted=True)
    old.queued_at = utcnow() - dt.timedelta(days=10)
    db.flush()
    reviewer = bearer(
        db, UserFactory(reviewer=True, organization=OrganizationFactory()), "read review"
    )
    typo = client.post("/api/v1/queue/claim-next?teir=high", headers=reviewer)
    assert typo.status_code == 422 and "teir" in typo.json["error"]["fields"]
    assert client.get("/api/v1/queue?teir=high", headers=reviewer).status_code == 422
    mine = client.post("/api/v1/queue/claim-next?view=mine", headers=reviewer)
    assert mine.status_code == 422  # already yours: nothing to claim there
    aged = client.post("/api/v1/queue/claim-next?age_days=7&status=queued", headers=reviewer)
    assert aged.status_code == 200 and aged.json["reference"] == old.reference
    appealed = client.post("/api/v1/queue/claim-next?status=appealed", headers=reviewer)
    assert appealed.status_code == 204
    db.expire_all()
    assert fresh.claimed_by_id is None


def test_the_api_queue_counts_up_to_the_limit_then_says_capped(client, db, monkeypatch) -> None:
    from reviewapp.api import views

    for _ in range(3):
        ApplicationFactory(submitted=True)
    reviewer = bearer(
        db, UserFactory(reviewer=True, organization=OrganizationFactory()), "read review"
    )
    exact = client.get("/api/v1/queue", headers=reviewer).json
    assert (exact["total"], exact["total_capped"]) == (3, False)
    monkeypatch.setattr(views, "QUEUE_COUNT_LIMIT", 2)
    capped = client.get("/api/v1/queue", headers=reviewer).json
    assert (capped["total"], capped["total_capped"]) == (2, True)
    assert len(capped["items"]) == 3  # every row is still listed


def test_claim_next_refuses_filters_sent_in_the_body(client, db) -> None:
    """Filters sent as a JSON body are refused (422 saying they go in the query string), not
    ignored: ignoring {"tier": "low"} claimed a high-tier application. No body, an empty body
    or {} still claims."""
    high = ApplicationFactory(submitted=True, high_tier=True)
    reviewer = bearer(
        db, UserFactory(reviewer=True, organization=OrganizationFactory()), "read review"
    )
    as_json = client.post(
        "/api/v1/queue/claim-next",
        headers=reviewer,
        json={"tier": "low", "queue": "standard", "bogus": 1},
    )
    assert as_json.status_code == 422
    assert "query string" in as_json.json["error"]["message"]
    assert set(as_json.json["error"]["fields"]) == {"tier", "queue", "bogus"}
    for data, content_type in (("tier=low", "application/x-www-form-urlencoded"), ("[]", None)):
        other = client.post(
            "/api/v1/queue/claim-next",
            headers=reviewer,
            data=data,
            content_type=content_type or "application/json",
        )
        assert other.status_code == 422 and "body" in other.json["error"]["fields"]
    db.expire_all()
    assert high.claimed_by_id is None
    empty = client.post("/api/v1/queue/claim-next", headers=reviewer, json={})
    assert empty.status_code == 200 and empty.json["reference"] == high.reference


def test_a_repeated_queue_argument_is_refused_naming_it(client, db) -> None:
    """tier=high&tier=low is ambiguous: 422 naming the argument, not the first value."""
    high = ApplicationFactory(submitted=True, high_tier=True)
    reviewer = bearer(
        db, UserFactory(reviewer=True, organization=OrganizationFactory()), "read review"
    )
    for url in (
        "/api/v1/queue?tier=high&tier=low",
        "/api/v1/queue?page=1&page=2&tier=high",
        "/api/v1/applications?status=queued&status=draft",
    ):
        response = client.get(url, headers=reviewer)
        assert response.status_code == 422, url
        assert "more than once" in response.json["error"]["message"]
    listing = client.get("/api/v1/queue?tier=high&tier=low&page=1&page=1", headers=reviewer)
    assert set(listing.json["error"]["fields"]) == {"tier", "page"}
    claim = client.post("/api/v1/queue/claim-next?tier=high&tier=low", headers=reviewer)
    assert claim.status_code == 422 and set(claim.json["error"]["fields"]) == {"tier"}
    db.expire_all()
    assert high.claimed_by_id is None
