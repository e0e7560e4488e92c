"""End to end in headless Chromium: a reviewer requests mitigations (reason + parameter), the
developer edits, answers each requirement and resubmits, the same reviewer gets it back, reads
the field-by-field diff and the answers, and approves with conditions the developer can read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from tests.browser.test_review_flow import log_in, log_out, navbar
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


def test_mitigations_resubmission_diff_and_conditional_approval(
    browser_context: BrowserContext, live_server: str, committed_db: Session, screenshot_dir: Path
) -> None:
    application = ApplicationFactory(
        submitted=True,
        submitter=UserFactory(email="dev@tutor.example", organization=OrganizationFactory()),
    )
    reviewer = UserFactory(
        reviewer=True, email="rae@ts.example", organization=OrganizationFactory(name="T&S")
    )
    committed_db.commit()
    reference = application.reference
    page = browser_context.new_page()

    # --- reviewer: request mitigations with a reason and a parameter ----------------------
    log_in(page, live_server, reviewer.email)
    page.goto(f"{live_server}/review/{reference}")
    page.get_by_role("button", name="Claim", exact=True).click()
    decision = page.get_by_role("region", name="Your decision")
    decision.get_by_role("group", name="Outcome").get_by_label("Request mitigations").check()
    decision.get_by_role("group", name="Policy citations").get_by_role("checkbox").first.check()
    reason = decision.locator("textarea[name='reason-age-assurance']")
    expect(reason).to_be_hidden()  # shown only once the requirement is ticked (pure CSS)
    decision.get_by_label("Age assurance", exact=False).first.check()
    expect(reason).to_be_visible()
    reason.fill(REASON)
    decision.locator("input[name='param-age-assurance-minimum_user_age']").fill("16")
    decision.get_by_label("Response template").select_option("mitigations-standard")
    page.screenshot(path=screenshot_dir / "10-reviewer-requests-mitigations.png", full_page=True)
    decision.get_by_role("button", name="Record decision").click()
    expect(page.get_by_role("status").filter(has_text="Decision recorded")).to_be_visible()
    log_out(page)

    # --- developer: edit, answer, resubmit ------------------------------------------------
    log_in(page, live_server, application.submitter.email)
    page.goto(f"{live_server}/applications/{reference}")
    answers = page.get_by_role("region", name="Answer the mitigation request")
    expect(answers).to_contain_text(REASON)
    expect(answers).to_contain_text("Minimum user age: 16 years")
    page.get_by_role("link", name="Edit and resubmit").click()
    description = page.get_by_label("Description")
    description.fill(description.input_value() + ADDED)
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("status").filter(has_text="saved. Answer each")).to_be_visible()
    answers = page.get_by_role("region", name="Answer the mitigation request")
    answers.get_by_role("button", name="Save answers and resubmit").click()  # not answered yet
    expect(page.get_by_role("alert").filter(has_text="answers were not saved")).to_be_visible()
    expect(page.get_by_text("Confirm that you meet this requirement.")).to_be_visible()
    answers = page.get_by_role("region", name="Answer the mitigation request")
    answers.get_by_label("I confirm that we meet this requirement", exact=False).check()
    answers.get_by_label("How you meet it").fill(ATTESTATION)
    answers.get_by_label("Link to evidence", exact=False).fill("https://tutor.example/age-check")
    page.screenshot(path=screenshot_dir / "11-developer-answers.png", full_page=True)
    answers.get_by_role("button", name="Save answers and resubmit").click()
    expect(page.get_by_role("status").filter(has_text="submitted: triaged as")).to_be_visible()
    expect(page.locator("main")).to_contain_text("revision 2")
    log_out(page)

    # --- reviewer: gets it back first, reads the diff and answers, approves -------------
    log_in(page, live_server, reviewer.email)
    page.goto(f"{live_server}/queue")
    row = page.get_by_role("row").filter(has_text=reference)
    expect(row).to_contain_text("back to you")
    page.get_by_role("button", name="Claim next").click()
    expect(page).to_have_url(re.compile(rf"/review/{re.escape(reference)}$"))
    resubmission = page.get_by_role("region", name=re.compile("Resubmission: changes since"))
    expect(resubmission.locator("ins").filter(has_text="checked for age")).to_be_visible()
    expect(resubmission).to_contain_text(ATTESTATION)
    expect(resubmission).to_contain_text("attested")
    page.screenshot(path=screenshot_dir / "12-reviewer-sees-diff.png", full_page=True)
    decision = page.get_by_role("region", name="Your decision")
    decision.get_by_role("group", name="Outcome").get_by_label("Approve").check()
    decision.get_by_role("group", name="Policy citations").get_by_role("checkbox").first.check()
    decision.get_by_label("Response template").select_option("approve-with-conditions")
    decision.get_by_role("button", name="Record decision").click()
    expect(page.get_by_role("status").filter(has_text="Decision recorded for")).to_be_visible()
    log_out(page)

    # --- developer: reads the conditions ---------------------------------------------------
    log_in(page, live_server, application.submitter.email)
    navbar(page).get_by_role("link", name="My applications").click()
    page.get_by_role("link", name=reference).first.click()
    main = page.locator("main")
    expect(main).to_contain_text("Approved with conditions")
    expect(main).to_contain_text("Conditions of this approval")
    expect(main).to_contain_text("Minimum user age: 16 years")
    page.screenshot(path=screenshot_dir / "13-developer-conditions.png", full_page=True)
