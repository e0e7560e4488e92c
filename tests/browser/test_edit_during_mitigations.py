"""In headless Chromium: while mitigations are requested, "Edit and resubmit" leads to an edit
page that carries the answer fields; a resubmission without answers keeps the edits and shows
the error at the answer, and with answers it resubmits edits and answers as one revision."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from tests.browser.test_review_flow import log_in, log_out
from tests.conftest import IN_CI
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

try:
    from playwright.sync_api import BrowserContext, expect
except ImportError:  # pragma: no cover - the test extra is not installed
    if IN_CI:
        raise
    pytest.skip("the playwright package is not installed", allow_module_level=True)

pytestmark = pytest.mark.browser

REASON = "The tutoring app is open to teenagers; younger children must be kept out."
ADDED = " Accounts are checked for age before first use."
ATTESTATION = "Our sign-up uses an ID-document age check by a vendor; under-16s are refused."


def test_edit_answer_and_resubmit_from_the_edit_page(
    browser_context: BrowserContext, live_server: str, committed_db: Session, screenshot_dir: Path
) -> None:
    application = ApplicationFactory(
        submitted=True,
        submitter=UserFactory(email="dev@edit.example", organization=OrganizationFactory()),
    )
    reviewer = UserFactory(
        reviewer=True, email="rex@ts.example", organization=OrganizationFactory(name="T&S")
    )
    committed_db.commit()
    reference = application.reference
    page = browser_context.new_page()

    log_in(page, live_server, reviewer.email)
    page.goto(f"{live_server}/review/{reference}")
    page.get_by_role("button", name="Claim", exact=True).click()
    decision = page.get_by_role("region", name="Your decision")
    decision.get_by_role("group", name="Outcome").get_by_label("Request mitigations").check()
    decision.get_by_role("group", name="Policy citations").get_by_role("checkbox").first.check()
    decision.get_by_label("Age assurance", exact=False).first.check()
    decision.locator("textarea[name='reason-age-assurance']").fill(REASON)
    decision.locator("input[name='param-age-assurance-minimum_user_age']").fill("16")
    decision.get_by_label("Response template").select_option("mitigations-standard")
    decision.get_by_role("button", name="Record decision").click()
    expect(page.get_by_role("status").filter(has_text="Decision recorded")).to_be_visible()
    log_out(page)

    log_in(page, live_server, application.submitter.email)
    page.goto(f"{live_server}/applications/{reference}")
    page.get_by_role("link", name="Edit and resubmit").click()
    answers = page.get_by_role("region", name="Answer the mitigation request")
    expect(answers).to_contain_text(REASON)
    description = page.get_by_label("Description")
    description.fill(description.input_value() + ADDED)
    page.get_by_role("button", name="Save and resubmit").click()  # not answered yet
    expect(page.get_by_role("alert").filter(has_text="Nothing was saved")).to_be_visible()
    answers = page.get_by_role("region", name="Answer the mitigation request")
    expect(answers.get_by_text("Confirm that you meet this requirement.")).to_be_visible()
    expect(page.get_by_label("Description")).to_have_value(  # the edit is kept
        application.draft["description"] + ADDED
    )
    answers.get_by_label("I confirm that we meet this requirement", exact=False).check()
    answers.get_by_label("How you meet it").fill(ATTESTATION)
    page.screenshot(path=screenshot_dir / "13-developer-edits-and-answers.png", full_page=True)
    page.get_by_role("button", name="Save and resubmit").click()
    expect(page.get_by_role("status").filter(has_text="submitted: triaged as")).to_be_visible()
    expect(page.locator("main")).to_contain_text("revision 2")
    page.goto(f"{live_server}/applications/{reference}/revisions/2/diff")
    expect(page.locator("main")).to_contain_text("checked for age")
