"""Policy feedback: a reviewer flags a cited section while deciding; admins read it per section."""

from __future__ import annotations

from sqlalchemy import func, select

from reviewapp.policies.models import PolicyFeedback
from reviewapp.review.models import Decision
from tests.conftest import post_form
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

REJECT = {"outcome": "reject", "template": "reject-prohibited", "citations": ["usage-1.5"]}


def test_flag_a_cited_section_and_admins_see_it(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    staff = OrganizationFactory()
    client = login(UserFactory(reviewer=True, organization=staff))
    post_form(client, f"/review/{application.reference}/claim", token_from="/queue")
    uncited = post_form(
        client,
        f"/review/{application.reference}/decide",
        {
            **REJECT,
            "feedback_kind": "unclear",
            "feedback_section": "usage-2.1",
            "feedback_comment": "x",
        },
        token_from="/queue",
    )
    assert uncited.status_code == 422 and b"Flag one of the sections you cite." in uncited.data
    no_comment = post_form(
        client,
        f"/review/{application.reference}/decide",
        {**REJECT, "feedback_kind": "edge_case", "feedback_section": "usage-1.5"},
        token_from="/queue",
    )
    assert no_comment.status_code == 422 and b"Tell the policy team" in no_comment.data
    assert db.scalar(select(func.count()).select_from(Decision)) == 0
    ok = post_form(
        client,
        f"/review/{application.reference}/decide",
        {
            **REJECT,
            "feedback_kind": "edge_case",
            "feedback_section": "usage-1.5",
            "feedback_comment": "Voice cloning for consenting actors: impersonation or not?",
        },
        token_from="/queue",
    )
    assert ok.status_code == 302
    feedback = db.scalars(select(PolicyFeedback)).one()
    assert (
        feedback.kind == "edge_case"
        and feedback.section.key == "usage-1.5"
        and feedback.application_id == application.id
    )
    page = (
        login(UserFactory(admin=True, organization=staff))
        .get("/admin/policy-feedback")
        .get_data(as_text=True)
    )
    assert "§1.5 Fraud, scams and impersonation" in page and "consenting actors" in page
    developer_page = (
        login(application.submitter)
        .get(f"/applications/{application.reference}")
        .get_data(as_text=True)
    )
    assert "consenting actors" not in developer_page
