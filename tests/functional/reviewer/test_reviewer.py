"""Reviewer flows: queue, claim, decide with citations; the developer sees the outcome."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from reviewapp.applications.models import Status
from reviewapp.audit.models import AuditEvent, OutboxEvent
from reviewapp.db import utcnow
from reviewapp.notifications.email import OUTBOX_MEMORY
from reviewapp.review.models import Citation, Decision
from tests.conftest import post_form
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory


def reviewer(**kw):  # noqa: ANN001, ANN201
    return UserFactory(
        reviewer=True,
        organization=kw.pop("organization", None) or OrganizationFactory(name="Trust & Safety"),
        **kw,
    )


def test_queue_lists_open_applications_in_sla_then_tier_order(login, db) -> None:
    low = ApplicationFactory(submitted=True)
    high = ApplicationFactory(submitted=True, high_tier=True)
    draft = ApplicationFactory()
    # same due time for both: the higher tier comes first
    now = utcnow()
    for a in (low, high):
        a.sla_due_at = now + dt.timedelta(hours=5)
    db.flush()
    client = login(reviewer())
    page = client.get("/queue").get_data(as_text=True)
    assert page.index(high.reference) < page.index(low.reference)
    assert draft.reference not in page
    low.sla_due_at = now + dt.timedelta(hours=1)  # due sooner wins over tier
    db.flush()
    page = client.get("/queue").get_data(as_text=True)
    assert page.index(low.reference) < page.index(high.reference)
    filtered = client.get(f"/queue?tier={high.risk_tier}").get_data(as_text=True)
    assert high.reference in filtered and low.reference not in filtered
    assert "overdue by" not in page


def test_queue_filter_errors_are_shown(login, db) -> None:
    client = login(reviewer())
    response = client.get("/queue?age_days=-3")
    assert response.status_code == 200
    assert b"Number must be between 0 and 3650" in response.data


def test_claim_next_reject_with_citation_and_developer_sees_message(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    rev = reviewer()
    client = login(rev)
    response = post_form(client, "/queue/claim-next", token_from="/queue")
    assert response.status_code == 302 and response.location.endswith(application.reference)
    db.expire_all()
    assert application.status == Status.in_review and application.claimed_by_id == rev.id
    assert application.lease_expires_at > utcnow() + dt.timedelta(minutes=29)

    page = client.get(f"/review/{application.reference}")
    assert b"Triage explanation" in page.data and b"Record decision" in page.data
    response = post_form(
        client,
        f"/review/{application.reference}/decide",
        {
            "outcome": "reject",
            "citations": ["usage-1.5"],
            "template": "reject-prohibited",
            "reviewer_note": "Impersonation <b>risk</b>.",
            "rationale": "internal only",
            "version": str(application.version),
        },
        token_from=f"/review/{application.reference}",
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    db.expire_all()
    assert application.status == Status.rejected and application.claimed_by_id is None
    decision = db.scalars(select(Decision).where(Decision.application_id == application.id)).one()
    citation = db.scalars(select(Citation).where(Citation.decision_id == decision.id)).one()
    assert citation.policy_section_version.section.key == "usage-1.5"
    # the note is the reviewer's text, shown as typed: escaped for Markdown, plain in the email
    assert "Impersonation \\<b\\>risk\\</b\\>." in decision.message
    assert (
        db.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "decision.reject")
        )
        == 1
    )
    outbox = db.scalars(select(OutboxEvent).where(OutboxEvent.kind == "decision")).one()
    assert outbox.delivered_at is not None  # inline job delivered it after commit
    assert [m["To"] for m in OUTBOX_MEMORY] == [application.submitter.email]
    assert "Impersonation <b>risk</b>." in OUTBOX_MEMORY[0].get_content()

    dev_client = login(application.submitter)
    page = dev_client.get(f"/applications/{application.reference}").get_data(as_text=True)
    assert "rejected" in page and "§1.5" in page and "Fraud, scams and impersonation" in page
    assert "Impersonation &lt;b&gt;risk&lt;/b&gt;." in page  # escaped, never HTML
    assert "internal only" not in page


def test_reject_without_citation_is_refused_and_form_kept(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    client = login(reviewer())
    post_form(client, "/queue/claim-next", token_from="/queue")
    response = post_form(
        client,
        f"/review/{application.reference}/decide",
        {"outcome": "reject", "template": "reject-prohibited", "reviewer_note": "kept text"},
        token_from=f"/review/{application.reference}",
    )
    assert response.status_code == 422
    assert b"Cite at least one policy section for this outcome." in response.data
    assert b"kept text" in response.data
    db.expire_all()
    assert application.status == Status.in_review
    assert db.scalar(select(func.count()).select_from(Decision)) == 0


def test_template_for_another_outcome_is_refused(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    client = login(reviewer())
    post_form(client, "/queue/claim-next", token_from="/queue")
    response = post_form(
        client,
        f"/review/{application.reference}/decide",
        {"outcome": "approve", "template": "reject-prohibited"},
        token_from=f"/review/{application.reference}",
    )
    assert response.status_code == 422 and b"not approve" in response.data


def test_request_mitigations_needs_requirements_then_developer_can_resubmit(login, db) -> None:
    application = ApplicationFactory(submitted=True, high_tier=True)
    client = login(reviewer())
    post_form(client, "/queue/claim-next", token_from="/queue")
    form = {
        "outcome": "request_mitigations",
        "citations": ["usage-2.1"],
        "template": "mitigations-standard",
    }
    response = post_form(
        client,
        f"/review/{application.reference}/decide",
        form,
        token_from=f"/review/{application.reference}",
    )
    assert response.status_code == 422 and b"Pick at least one safety requirement" in response.data
    response = post_form(
        client,
        f"/review/{application.reference}/decide",
        {
            **form,
            "safety_requirements": ["human-review-of-outputs"],
            "reason-human-review-of-outputs": "Outputs reach patients.",
        },
        token_from=f"/review/{application.reference}",
    )
    assert response.status_code == 302
    db.expire_all()
    assert application.status == Status.mitigations_requested
    dev = login(application.submitter)
    assert b"Human review of outputs" in dev.get(f"/applications/{application.reference}").data
    response = post_form(
        dev,
        f"/applications/{application.reference}/submit",
        token_from=f"/applications/{application.reference}",
        follow_redirects=True,
    )
    assert b"Answer every requested safety requirement" in response.data
    db.expire_all()
    assert application.status == Status.mitigations_requested
    response = post_form(
        dev,
        f"/applications/{application.reference}/answers",
        {
            "attested-human-review-of-outputs": "yes",
            "details-human-review-of-outputs": "A nurse checks every answer before it is sent.",
            "resubmit": "1",
        },
        token_from=f"/applications/{application.reference}",
    )
    assert response.status_code == 302
    db.expire_all()
    assert application.status == Status.queued and len(application.revisions) == 2


def test_stale_page_decision_is_refused(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    client = login(reviewer())
    post_form(client, "/queue/claim-next", token_from="/queue")
    stale_version = application.version
    db.expire_all()
    application.flags = ["changed elsewhere"]  # someone else's change bumps the version
    db.flush()
    response = post_form(
        client,
        f"/review/{application.reference}/decide",
        {"outcome": "approve", "template": "approve-standard", "version": str(stale_version)},
        token_from=f"/review/{application.reference}",
    )
    assert response.status_code == 409
    assert b"changed since you read it" in response.data
    assert b"Your text is kept below" in response.data  # the browser's own words
    assert db.scalar(select(func.count()).select_from(Decision)) == 0


def test_deciding_without_a_claim_is_refused(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    client = login(reviewer())
    response = post_form(
        client,
        f"/review/{application.reference}/decide",
        {"outcome": "approve", "template": "approve-standard"},
        token_from=f"/review/{application.reference}",
    )
    assert response.status_code == 409 and b"you have not claimed it" in response.data


def test_claim_conflicts_and_expired_lease_is_taken_over(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    org = OrganizationFactory()
    first, second = reviewer(organization=org), reviewer(organization=org)
    c1, c2 = login(first), login(second)
    post_form(c1, f"/review/{application.reference}/claim", token_from="/queue")
    response = post_form(
        c2, f"/review/{application.reference}/claim", token_from="/queue", follow_redirects=True
    )
    assert b"already claimed by" in response.data
    assert (
        post_form(c2, "/queue/claim-next", token_from="/queue", follow_redirects=True).data.count(
            b"Nothing to claim"
        )
        == 1
    )
    db.expire_all()
    application.lease_expires_at = utcnow() - dt.timedelta(seconds=1)
    db.flush()
    response = post_form(c2, "/queue/claim-next", token_from="/queue")
    assert response.location.endswith(application.reference)
    db.expire_all()
    assert application.claimed_by_id == second.id


def test_reviewer_never_gets_own_organizations_application(login, db) -> None:
    org = OrganizationFactory()
    own = ApplicationFactory(submitted=True, submitter=UserFactory(organization=org))
    rev = reviewer(organization=org)
    client = login(rev)
    assert own.reference not in client.get("/queue").get_data(as_text=True)
    assert (
        post_form(
            client, "/queue/claim-next", token_from="/queue", follow_redirects=True
        ).data.count(b"Nothing to claim")
        == 1
    )
    response = post_form(
        client, f"/review/{own.reference}/claim", token_from="/queue", follow_redirects=True
    )
    assert b"your own organization" in response.data


def test_release_returns_to_queue(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    client = login(reviewer())
    post_form(client, "/queue/claim-next", token_from="/queue")
    post_form(client, f"/review/{application.reference}/release", token_from="/queue")
    db.expire_all()
    assert (
        application.status == Status.queued
        and application.claimed_by_id is None
        and application.lease_expires_at is None
    )


def test_queue_page_query_count_does_not_grow_with_rows(app, login, db) -> None:
    from sqlalchemy import event

    from reviewapp.extensions import db as database

    client = login(reviewer())

    def statements_for_queue_page() -> int:
        seen: list[str] = []

        def listener(*args: object, **kw: object) -> None:
            seen.append(str(args[2]))

        engine = database.state(app).engine
        event.listen(engine, "before_cursor_execute", listener)
        try:
            page = client.get("/queue")
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        assert page.status_code == 200
        return len(seen)

    ApplicationFactory(submitted=True)
    statements_for_queue_page()  # the first view of the process loads the reference tables
    one = statements_for_queue_page()
    for _ in range(29):
        ApplicationFactory(submitted=True)
    thirty = statements_for_queue_page()
    assert thirty == one, (one, thirty)
    # the user, the reference tables' fingerprint, the page with its count (and the test's
    # savepoint around the request)
    assert one <= 5, one


def test_queue_counts_up_to_the_limit_then_says_more_than(login, db, monkeypatch) -> None:
    from reviewapp.review import views

    for _ in range(4):
        ApplicationFactory(submitted=True)
    client = login(reviewer())
    assert "4 applications, ordered by SLA" in client.get("/queue").get_data(as_text=True)
    monkeypatch.setattr(views, "QUEUE_COUNT_LIMIT", 3)
    page = client.get("/queue").get_data(as_text=True)
    assert "More than 3 applications, ordered by SLA" in page
    assert page.count("APP-") >= 4 * 2  # every row is still listed (link target and text)


def test_queue_pagination_past_the_count_limit_offers_next_while_pages_are_full(
    login, db, monkeypatch
) -> None:
    from reviewapp.review import views

    for _ in range(51):  # one more than a page
        ApplicationFactory(submitted=True)
    monkeypatch.setattr(views, "QUEUE_COUNT_LIMIT", 1)
    client = login(reviewer())
    first = client.get("/queue").get_data(as_text=True)
    assert "Page 1 · more than 1 in all" in first and ">Next</a>" in first
    second = client.get("/queue?page=2").get_data(as_text=True)
    assert "Page 2 · more than 1 in all" in second and ">Next</a>" not in second
    assert ">Previous</a>" in second


def test_queue_filter_form_follows_queue_changes_and_the_viewers_role(login, db) -> None:
    """The filter form is rendered once per (reference data, role, arguments) and kept: a
    renamed queue or a queue opened to reviewers shows at the next view, and the same
    arguments give each role its own choices."""
    from reviewapp.review.models import Queue

    client = login(reviewer())
    url = "/queue?queue=policy-violations&age_days=2"
    first = client.get(url).get_data(as_text=True)
    assert "Not a valid choice" in first  # reviewers do not work that queue
    again = client.get(url).get_data(as_text=True)  # the kept form
    assert "Not a valid choice" in again and "This filter was ignored." in again
    violations = db.scalars(select(Queue).where(Queue.key == "policy-violations")).one()
    violations.roles = [*violations.roles, "reviewer"]
    violations.title = "Prohibited uses (renamed)"
    db.flush()
    opened = client.get(url).get_data(as_text=True)
    assert "Not a valid choice" not in opened
    assert "Prohibited uses (renamed)</option>" in opened
    assert 'value="2"' in opened  # the age filter kept its value


def test_queue_age_filter_takes_only_the_digits_a_number_box_can_show(login, db) -> None:
    """'٣' (an Arabic-Indic 3) or ' 5 ' would be read by int() but shown as an empty number
    box: they are refused next to the field and ignored, like any invalid filter."""
    ApplicationFactory(submitted=True)
    client = login(reviewer())
    for raw in ("%D9%A3", "%205%20", "-3", "abc"):
        page = client.get(f"/queue?age_days={raw}").get_data(as_text=True)
        assert "This filter was ignored." in page, raw
        assert "Nothing matches these filters" not in page, raw  # the age filter did not apply
    assert "This filter was ignored." not in client.get("/queue?age_days=0").get_data(as_text=True)
    appealed = client.get("/queue?status=appealed").get_data(as_text=True)
    assert "Not a valid choice" not in appealed
    assert '<option selected value="appealed">Appealed</option>' in appealed


def test_claim_next_from_a_filtered_queue_claims_within_the_filter(login, db) -> None:
    """The page's Claim next carries its queue and tier filters: it claims the first
    application of that tier (not the overall first), and when nothing matches it returns to
    the same filtered page instead of the unfiltered queue."""
    standard = ApplicationFactory(submitted=True)  # low tier
    high = ApplicationFactory(submitted=True, high_tier=True)
    client = login(reviewer())
    page = client.get("/queue?tier=high").get_data(as_text=True)
    assert '<input type="hidden" name="tier" value="high">' in page
    assert '<input type="hidden" name="return_to" value="/queue?tier=high">' in page
    claimed = post_form(
        client,
        "/queue/claim-next",
        {"tier": "high", "return_to": "/queue?tier=high"},
        token_from="/queue",
    )
    assert claimed.location.endswith(f"/review/{high.reference}")
    again = post_form(
        client,
        "/queue/claim-next",
        {"tier": "high", "return_to": "/queue?tier=high"},
        token_from="/queue",
    )
    assert again.location.endswith("/queue?tier=high")  # nothing left in that tier
    db.expire_all()
    assert standard.claimed_by_id is None
    # a return_to off this site is not followed
    off_site = post_form(
        client,
        "/queue/claim-next",
        {"tier": "high", "return_to": "https://evil.example/queue"},
        token_from="/queue",
    )
    assert off_site.location.endswith("/queue")


def test_queue_rows_show_tier_and_queue_names_as_the_admin_set_them(login, db) -> None:
    from reviewapp.review.models import Queue, RiskTier

    application = ApplicationFactory(submitted=True, high_tier=True)
    client = login(reviewer())
    page = client.get("/queue").get_data(as_text=True)
    queue = db.scalars(select(Queue).where(Queue.key == application.queue)).one()
    assert f'<td class="small text-nowrap">{queue.title}</td>' in page
    assert '">High</span>' in page
    tier = db.scalars(select(RiskTier).where(RiskTier.name == "high")).one()
    tier.label = "Elevated"
    queue.title = "Sensitive uses"
    db.flush()
    page = client.get("/queue").get_data(as_text=True)
    assert '">Elevated</span>' in page and ">Sensitive uses</td>" in page


def test_claim_next_carries_every_filter_of_the_page(login, db) -> None:
    """Claim next from /queue?status=appealed claims nothing (nothing appealed) rather than
    any queued application; from a 'waiting at least' view it takes the old one."""
    import datetime as dt

    fresh = ApplicationFactory(submitted=True)
    old = ApplicationFactory(submitted=True)
    old.queued_at = utcnow() - dt.timedelta(days=10)
    db.flush()
    client = login(reviewer())
    page = client.get("/queue?status=appealed&age_days=0").get_data(as_text=True)
    assert '<input type="hidden" name="status" value="appealed">' in page
    assert '<input type="hidden" name="age_days" value="0">' in page
    nothing = post_form(
        client,
        "/queue/claim-next",
        {"status": "appealed", "return_to": "/queue?status=appealed"},
        token_from="/queue",
    )
    assert nothing.location.endswith("/queue?status=appealed")
    aged = post_form(client, "/queue/claim-next", {"age_days": "7"}, token_from="/queue")
    assert aged.location.endswith(f"/review/{old.reference}")
    db.expire_all()
    assert fresh.claimed_by_id is None


def test_claim_next_with_a_tampered_filter_says_so_and_claims_nothing(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    client = login(reviewer())
    for field, value in (("tier", "bogus"), ("queue", "policy-violations"), ("teir", "high")):
        response = post_form(
            client, "/queue/claim-next", {field: value}, token_from="/queue", follow_redirects=True
        )
        assert "Unknown or invalid filter" in response.get_data(as_text=True), field
    db.expire_all()
    assert application.claimed_by_id is None


def test_the_queue_page_takes_view_mine_as_the_api_does(login, db) -> None:
    mine = ApplicationFactory(submitted=True)
    other = ApplicationFactory(submitted=True)
    client = login(reviewer())
    post_form(client, f"/review/{mine.reference}/claim", token_from="/queue")
    for url in ("/queue?mine=1", "/queue?view=mine"):
        page = client.get(url).get_data(as_text=True)
        assert mine.reference in page and other.reference not in page, url
