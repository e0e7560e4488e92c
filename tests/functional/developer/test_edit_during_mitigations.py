"""Editing while mitigations are requested: the edit page carries the answers to the requested
safety requirements, so "Save and resubmit" saves the edits and the answers and resubmits in one
go; a missing answer keeps everything typed and says what is missing next to the answer."""

from __future__ import annotations

from typing import Any

from reviewapp.applications.models import Application, Status
from reviewapp.review.mitigations import mitigation_request
from tests.conftest import post_form
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

MITIGATIONS = {
    "outcome": "request_mitigations",
    "citations": ["usage-2.1"],
    "template": "mitigations-standard",
    "safety_requirements": ["age-assurance", "human-review-of-outputs"],
    "reason-age-assurance": "The tutor app is open to teenagers.",
    "param-age-assurance-minimum_user_age": "16",
    "reason-human-review-of-outputs": "Grades are shown to parents.",
}
AGE = "Every new account passes an ID-document check by our vendor before first use."
HUMAN = "A teacher reads every grade before parents see it."
EDIT = " Users under 16 are turned away at sign-up."


def mitigations_requested(login: Any, db: Any) -> Application:
    application = ApplicationFactory(submitted=True)
    reviewer = login(UserFactory(reviewer=True, organization=OrganizationFactory()))
    ref = application.reference
    post_form(reviewer, f"/review/{ref}/claim", token_from="/queue")
    decided = post_form(reviewer, f"/review/{ref}/decide", MITIGATIONS, token_from=f"/review/{ref}")
    assert decided.status_code == 302
    db.expire_all()
    assert application.status == Status.mitigations_requested
    return application


def edit_form(application: Application, **extra: Any) -> dict[str, Any]:
    """The edit page's fields as a browser sends them: the draft with the description edited,
    plus ``extra`` (answers, the button pressed)."""
    d = application.draft
    return {
        "title": d["title"],
        "category": d["category"],
        "description": d["description"] + EDIT,
        "benefits": d["benefits"],
        "end_users": d["end_users"],
        "domains": d["domains"],
        "modalities": d["modalities"],
        "monthly_requests": str(d["monthly_requests"]),
        "human_review_of_outputs": "yes" if d["human_review_of_outputs"] else "no",
        "safety_measures": d["safety_measures"],
        "product_url": d["product_url"],
        **extra,
    }


ANSWERS = {
    "attested-age-assurance": "yes",
    "details-age-assurance": AGE,
    "link-age-assurance": "https://example.org/age-check",
    "attested-human-review-of-outputs": "yes",
    "details-human-review-of-outputs": HUMAN,
}


def test_edit_answer_and_resubmit_in_one_go(login, db) -> None:
    application = mitigations_requested(login, db)
    ref = application.reference
    dev = login(application.submitter)
    page = dev.get(f"/applications/{ref}/edit").get_data(as_text=True)
    # the answer fields are on the edit page, with why each requirement is asked
    assert 'name="details-age-assurance"' in page and 'name="attested-age-assurance"' in page
    assert "The tutor app is open to teenagers." in page
    assert 'value="Save and resubmit"' in page

    response = post_form(
        dev,
        f"/applications/{ref}/edit",
        edit_form(application, **ANSWERS, submit_application="Save and resubmit"),
        token_from=f"/applications/{ref}/edit",
    )
    assert response.status_code == 302
    db.expire_all()
    assert application.status == Status.queued
    revision = application.current_revision
    assert revision.number == 2 and revision.content["description"].endswith(EDIT)
    request = mitigation_request(db, application)
    assert request is not None
    answers = {r.safety_requirement.key: r.answer for r in request.required_safety_requirements}
    assert answers["age-assurance"]["attested"] is True
    assert answers["age-assurance"]["details"] == AGE
    assert answers["age-assurance"]["link"] == "https://example.org/age-check"
    assert answers["human-review-of-outputs"]["details"] == HUMAN
    detail = dev.get(f"/applications/{ref}").get_data(as_text=True)
    assert "submitted: triaged as" in detail


def test_missing_answers_keep_the_edits_and_say_what_is_missing(login, db) -> None:
    application = mitigations_requested(login, db)
    ref = application.reference
    draft_before = dict(application.draft)
    dev = login(application.submitter)
    response = post_form(
        dev,
        f"/applications/{ref}/edit",
        edit_form(
            application,
            **{**ANSWERS, "attested-human-review-of-outputs": "", "details-age-assurance": ""},
            submit_application="Save and resubmit",
        ),
        token_from=f"/applications/{ref}/edit",
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    # the errors sit next to the answer fields they are about
    assert (
        'id="attested-human-review-of-outputs-error" class="invalid-feedback d-block">'
        "Confirm that you meet this requirement.</div>"
    ) in page
    assert (
        'id="details-age-assurance-error" class="invalid-feedback d-block">'
        "Describe how you meet it in at least 20 characters.</div>"
    ) in page
    assert "Nothing was saved" in page
    # everything typed is still there: the edited content and the other answers
    assert EDIT.strip() in page and HUMAN in page and "https://example.org/age-check" in page
    db.expire_all()
    assert application.status == Status.mitigations_requested
    assert application.current_revision.number == 1
    assert application.draft == draft_before  # nothing half-saved
    request = mitigation_request(db, application)
    assert request is not None
    assert all(r.answer is None for r in request.required_safety_requirements)


def test_save_draft_keeps_answers_and_edits_for_later(login, db) -> None:
    application = mitigations_requested(login, db)
    ref = application.reference
    dev = login(application.submitter)
    blank = {
        "details-age-assurance": "",
        "link-age-assurance": "",
        "details-human-review-of-outputs": "",
        "link-human-review-of-outputs": "",
    }
    # untouched (empty) answers: "Save draft" saves the edits alone
    saved = post_form(
        dev,
        f"/applications/{ref}/edit",
        edit_form(application, **blank, save="Save draft"),
        token_from=f"/applications/{ref}/edit",
    )
    assert saved.status_code == 302
    db.expire_all()
    assert application.draft["description"].endswith(EDIT)
    assert application.status == Status.mitigations_requested

    # answers typed on the edit page are saved with "Save draft" too, then shown again
    saved = post_form(
        dev,
        f"/applications/{ref}/edit",
        edit_form(application, **ANSWERS, save="Save draft"),
        token_from=f"/applications/{ref}/edit",
    )
    assert saved.status_code == 302
    db.expire_all()
    request = mitigation_request(db, application)
    assert request is not None
    assert {
        r.safety_requirement.key: (r.answer or {}).get("details")
        for r in request.required_safety_requirements
    } == {
        "age-assurance": AGE,
        "human-review-of-outputs": HUMAN,
    }
    page = dev.get(f"/applications/{ref}/edit").get_data(as_text=True)
    assert AGE in page and HUMAN in page
    assert application.status == Status.mitigations_requested


def test_an_expired_form_keeps_the_answers_too(login, db) -> None:
    application = mitigations_requested(login, db)
    ref = application.reference
    dev = login(application.submitter)
    response = dev.post(
        f"/applications/{ref}/edit",
        data={**edit_form(application, **ANSWERS, submit_application="1"), "csrf_token": "old"},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "This form expired" in page
    assert AGE in page and HUMAN in page and EDIT.strip() in page
    db.expire_all()
    assert application.status == Status.mitigations_requested
