"""Request mitigations -> the developer answers each requirement -> resubmission (a new
revision) -> the same reviewer first -> field-by-field diff -> approval with conditions."""

from __future__ import annotations

import datetime as dt

from reviewapp.applications.models import Status
from reviewapp.auth.services import issue_token
from reviewapp.db import utcnow
from reviewapp.notifications.email import OUTBOX_MEMORY
from reviewapp.review.models import Decision
from reviewapp.review.services import claim_next
from tests.conftest import post_form
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

DETAILS = "Every new account passes an ID-document check by our vendor before first use."
MITIGATIONS = {
    "outcome": "request_mitigations",
    "citations": ["usage-2.1"],
    "template": "mitigations-standard",
    "safety_requirements": ["age-assurance", "human-review-of-outputs"],
    "reason-age-assurance": "The tutor app is open to teenagers.",
    "param-age-assurance-minimum_user_age": "16",
    "reason-human-review-of-outputs": "Grades are shown to parents.",
}


def decide(client, application, form):  # noqa: ANN001, ANN201
    return post_form(
        client,
        f"/review/{application.reference}/decide",
        form,
        token_from=f"/review/{application.reference}",
    )


def answer(client, application, **extra):  # noqa: ANN001, ANN003, ANN201
    form = {
        "attested-age-assurance": "yes",
        "details-age-assurance": DETAILS,
        "link-age-assurance": "https://example.org/age-check",
        "attested-human-review-of-outputs": "yes",
        "details-human-review-of-outputs": "A teacher reads every grade before parents see it.",
        **extra,
    }
    return post_form(
        client,
        f"/applications/{application.reference}/answers",
        form,
        token_from=f"/applications/{application.reference}",
    )


def mitigations_requested(login, db, staff):  # noqa: ANN001, ANN201
    application = ApplicationFactory(submitted=True)
    first = UserFactory(reviewer=True, organization=staff)
    client = login(first)
    post_form(client, f"/review/{application.reference}/claim", token_from="/queue")
    assert decide(client, application, MITIGATIONS).status_code == 302
    db.expire_all()
    assert application.status == Status.mitigations_requested
    return application, first


def test_each_requirement_needs_a_reason_and_valid_parameters(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    client = login(UserFactory(reviewer=True, organization=OrganizationFactory()))
    post_form(client, f"/review/{application.reference}/claim", token_from="/queue")
    response = decide(
        client,
        application,
        {
            **MITIGATIONS,
            "reason-human-review-of-outputs": "",
            "param-age-assurance-minimum_user_age": "9",
            "reviewer_note": "kept text",
        },
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Say why “Human review of outputs” is needed." in page
    assert "Minimum user age must be a whole number from 13 to 21." in page
    assert "The tutor app is open to teenagers." in page and "kept text" in page  # kept
    db.expire_all()
    assert application.status == Status.in_review and application.last_decision_id is None


def test_mitigations_answers_resubmission_diff_and_conditional_approval(
    login, db, client, app
) -> None:
    staff = OrganizationFactory()
    application, first = mitigations_requested(login, db, staff)
    dev = login(application.submitter)
    page = dev.get(f"/applications/{application.reference}").get_data(as_text=True)
    assert "The tutor app is open to teenagers." in page and "Minimum user age: 16 years" in page

    # resubmitting before answering is refused and says what is missing
    refused = answer(dev, application, **{"attested-age-assurance": "", "resubmit": "1"})
    assert refused.status_code == 422
    assert "Confirm that you meet this requirement." in refused.get_data(as_text=True)
    assert DETAILS in refused.get_data(as_text=True)  # what was typed is kept
    short = answer(dev, application, **{"details-human-review-of-outputs": "yes"})
    assert short.status_code == 422 and "at least 20 characters" in short.get_data(as_text=True)
    bad_link = answer(dev, application, **{"link-age-assurance": "javascript:alert(1)"})
    assert bad_link.status_code == 422 and "http(s) address" in bad_link.get_data(as_text=True)
    db.expire_all()
    assert application.status == Status.mitigations_requested

    # edit the content, save the answers, resubmit
    edited = dict(application.draft)
    edited["description"] = edited["description"] + " Users under 16 are turned away."
    application.draft = edited
    db.flush()
    assert answer(dev, application).status_code == 302
    resubmitted = answer(dev, application, resubmit="1")
    assert resubmitted.status_code == 302
    db.expire_all()
    assert application.status == Status.queued and application.current_revision.number == 2
    assert application.preferred_reviewer_id == first.id
    assert any(first.email in m["To"] for m in OUTBOX_MEMORY)  # the reviewer hears it is back

    # another reviewer's claim-next passes it over while the first reviewer's hold lasts
    other = UserFactory(reviewer=True, organization=staff)
    earlier = ApplicationFactory(submitted=True)
    earlier.sla_due_at = utcnow() - dt.timedelta(days=3)  # first in queue order
    db.flush()
    with app.app_context():
        assert claim_next(db, other) is earlier
        assert claim_next(db, first) is application  # returned to its reviewer first

    review = login(first).get(f"/review/{application.reference}").get_data(as_text=True)
    assert "Resubmission: changes since revision 1" in review
    assert "<ins> Users under 16 are turned away.</ins>" in review
    assert DETAILS in review and "https://example.org/age-check" in review

    approve = decide(
        login(first),
        application,
        {"outcome": "approve", "template": "approve-with-conditions", "citations": ["usage-2.1"]},
    )
    assert approve.status_code == 302
    db.expire_all()
    approval = db.get(Decision, application.last_decision_id)
    assert approval.outcome == "approve" and application.status == Status.approved
    conditions = {r.safety_requirement.key: r for r in approval.required_safety_requirements}
    assert set(conditions) == {"age-assurance", "human-review-of-outputs"}
    assert conditions["age-assurance"].parameters == {"minimum_user_age": 16}
    assert conditions["age-assurance"].answer["details"] == DETAILS
    assert "Minimum user age: 16 years" in approval.message

    page = dev.get(f"/applications/{application.reference}").get_data(as_text=True)
    assert "Approved with conditions" in page and "Minimum user age: 16 years" in page
    token = issue_token(db, application.submitter)
    body = client.get(
        f"/api/v1/applications/{application.reference}",
        headers={"Authorization": f"Bearer {token}"},
    ).get_json()
    assert body["decision"]["conditional"] is True
    api_conditions = {r["id"]: r for r in body["decision"]["safety_requirements"]}
    assert api_conditions["age-assurance"]["parameters"] == {"minimum_user_age": 16}
    assert api_conditions["age-assurance"]["attested"] is True


def test_hold_for_the_first_reviewer_ends(login, db, app) -> None:
    staff = OrganizationFactory()
    application, first = mitigations_requested(login, db, staff)
    dev = login(application.submitter)
    assert answer(dev, application, resubmit="1").status_code == 302
    db.expire_all()
    other = UserFactory(reviewer=True, organization=staff)
    later = utcnow() + dt.timedelta(hours=9)  # PREFERRED_REVIEWER_HOLD_SECONDS is 8 h
    with app.app_context():
        assert claim_next(db, other) is None  # held for the first reviewer
        assert claim_next(db, other, now=later) is application


def test_parameters_on_an_approval_are_its_conditions(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    client = login(UserFactory(reviewer=True, organization=OrganizationFactory()))
    post_form(client, f"/review/{application.reference}/claim", token_from="/queue")
    form = {
        "outcome": "approve",
        "template": "approve-with-conditions",
        "citations": ["usage-2.1"],
        "safety_requirements": ["rate-limits"],
    }
    missing = decide(client, application, form)
    assert missing.status_code == 422
    assert "Set requests per end user per minute" in missing.get_data(as_text=True)
    done = decide(
        client, application, {**form, "param-rate-limits-requests_per_user_per_minute": "30"}
    )
    assert done.status_code == 302
    db.expire_all()
    decision = db.get(Decision, application.last_decision_id)
    assert decision.required_safety_requirements[0].parameters == {
        "requests_per_user_per_minute": 30
    }
    page = login(application.submitter).get(f"/applications/{application.reference}")
    assert "Requests per end user per minute: 30 requests/minute" in page.get_data(as_text=True)


def test_revision_diff_page_and_its_access(login, db) -> None:
    staff = OrganizationFactory()
    application, first = mitigations_requested(login, db, staff)
    dev = login(application.submitter)
    edited = dict(application.draft)
    edited["title"] = "Homework helper for teenagers"
    edited["domains"] = [*edited["domains"], "health"]
    application.draft = edited
    db.flush()
    assert answer(dev, application, resubmit="1").status_code == 302
    path = f"/applications/{application.reference}/revisions/2/diff?against=1"
    page = dev.get(path).get_data(as_text=True)
    assert "<ins>Homework helper for teenagers</ins>" in page or "teenagers</ins>" in page
    assert "+ Health" in page
    assert login(first).get(path).status_code == 200
    outsider = login(UserFactory())  # a developer of another organization
    assert outsider.get(path).status_code == 404
    assert dev.get(f"/applications/{application.reference}/revisions/7/diff").status_code == 404


def test_answers_only_while_mitigations_are_requested(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    dev = login(application.submitter)
    response = answer(dev, application)
    assert response.status_code == 422
    assert "No mitigations are requested" in response.get_data(as_text=True)
    outsider = login(UserFactory())
    assert answer(outsider, application).status_code == 404


def test_decision_form_reports_every_problem_at_once(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    client = login(UserFactory(reviewer=True, organization=OrganizationFactory()))
    post_form(client, f"/review/{application.reference}/claim", token_from="/queue")
    response = decide(
        client,
        application,
        {"outcome": "request_mitigations", "safety_requirements": ["age-assurance"]},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    for problem in (
        "Choose a response template.",
        "Cite at least one policy section",
        "Say why “Age assurance” is needed.",
        "Set minimum user age",
    ):
        assert problem in page


def test_a_conditions_template_needs_conditions(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    client = login(UserFactory(reviewer=True, organization=OrganizationFactory()))
    post_form(client, f"/review/{application.reference}/claim", token_from="/queue")
    response = decide(
        client,
        application,
        {"outcome": "approve", "template": "approve-with-conditions", "citations": ["usage-2.1"]},
    )
    assert response.status_code == 422
    assert "lists safety requirements: choose at least one" in response.get_data(as_text=True)
    db.expire_all()
    assert application.last_decision_id is None
