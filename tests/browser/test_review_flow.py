"""End to end in headless Chromium: a developer submits, a reviewer rejects with a citation and a
note, the developer reads the decision."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from tests.conftest import IN_CI
from tests.factories import PASSWORD, OrganizationFactory, UserFactory

try:
    from playwright.sync_api import BrowserContext, Locator, Page, expect
except ImportError:  # pragma: no cover - the test extra is not installed
    if IN_CI:
        raise
    pytest.skip(
        "the playwright package is not installed (pip install -e '.[test]')",
        allow_module_level=True,
    )

pytestmark = pytest.mark.browser

CITATION_KEY = "usage-1.5"
CITATION_TEXT = "§1.5 Fraud, scams and impersonation"
REJECT_TEMPLATE = "reject-insufficient-information"
NOTE = "Please describe who reads the summaries and how transcripts are retained."


def navbar(page: Page) -> Locator:
    return page.get_by_role("navigation", name="Main")


def log_in(page: Page, base_url: str, email: str) -> None:
    page.goto(f"{base_url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(navbar(page)).to_contain_text(email)


def log_out(page: Page) -> None:
    navbar(page).get_by_role("button", name="Log out").click()
    expect(page.get_by_role("status")).to_contain_text("You are logged out.")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


def test_developer_submits_reviewer_rejects_developer_sees_decision(
    browser_context: BrowserContext, live_server: str, committed_db: Session, screenshot_dir: Path
) -> None:
    developer = UserFactory(
        email="dev@example.com",
        name="Dana Developer",
        organization=OrganizationFactory(name="Acme Notes Ltd"),
    )
    reviewer = UserFactory(
        reviewer=True,
        email="reviewer@example.com",
        name="Rae Reviewer",
        organization=OrganizationFactory(name="Platform Trust and Safety"),
    )
    assert developer.organization_id != reviewer.organization_id
    committed_db.commit()

    page = browser_context.new_page()

    # --- developer: new application, submitted ---------------------------------------------
    log_in(page, live_server, developer.email)
    navbar(page).get_by_role("link", name="New application").click()
    expect(page.get_by_role("heading", name="New go-live application")).to_be_visible()
    page.get_by_label("Title").fill("Meeting notes summarizer")
    page.get_by_label("Use-case category").select_option("search_summarization")
    page.get_by_label("Description").fill(
        "Summarizes internal meeting transcripts into action items for our staff."
    )
    page.get_by_label("Intended benefits").fill("Saves staff time after meetings.")
    page.get_by_role("group", name="End users").get_by_label("Internal employees").check()
    page.get_by_role("group", name="Domains").get_by_label(
        "General purpose / none of the below"
    ).check()
    page.get_by_role("group", name="Modalities").get_by_label("Text", exact=True).check()
    page.get_by_label("Expected monthly requests").fill("5000")
    page.get_by_role("group", name="Human review of outputs").get_by_label(
        "Yes, a person reviews outputs", exact=False
    ).check()
    page.screenshot(path=screenshot_dir / "01-developer-new-application.png", full_page=True)
    page.get_by_role("button", name="Submit for review").click()

    flash = page.get_by_role("status").filter(has_text="submitted: triaged as")
    expect(flash).to_be_visible()
    reference = re.search(r"(\S+) submitted: triaged as", flash.inner_text())
    assert reference is not None
    reference = reference.group(1)
    expect(page).to_have_url(re.compile(rf"/applications/{re.escape(reference)}$"))
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text("Meeting notes summarizer")
    expect(page.locator("main")).to_contain_text("Risk triage")
    expect(
        page.locator("main .badge").filter(has_text=re.compile(r"^(queued|submitted)$"))
    ).to_be_visible()
    expect(
        page.locator("main .badge")
        .filter(has_text=re.compile(r"^(low|medium|high|prohibited)$"))
        .first
    ).to_be_visible()
    page.screenshot(path=screenshot_dir / "02-developer-submitted.png", full_page=True)
    log_out(page)

    # --- reviewer: claim next, reject with a citation and a note ----------------------------
    log_in(page, live_server, reviewer.email)
    page.goto(f"{live_server}/queue")
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    expect(page.get_by_role("link", name=reference)).to_be_visible()
    page.screenshot(path=screenshot_dir / "03-reviewer-queue.png", full_page=True)
    page.get_by_role("button", name="Claim next").click()

    expect(page).to_have_url(re.compile(rf"/review/{re.escape(reference)}$"))
    expect(page.get_by_role("heading", name="Triage explanation")).to_be_visible()
    decision = page.get_by_role("region", name="Your decision")
    expect(decision).to_be_visible()
    decision.get_by_role("group", name="Outcome").get_by_label("Reject").check()
    decision.get_by_role("group", name="Policy citations").get_by_label(
        CITATION_TEXT, exact=False
    ).first.check()
    decision.get_by_label("Response template").select_option(REJECT_TEMPLATE)
    decision.get_by_label("Note to the developer").fill(NOTE)
    page.screenshot(path=screenshot_dir / "04-reviewer-review-page.png", full_page=True)
    decision.get_by_role("button", name="Record decision").click()

    expect(
        page.get_by_role("status").filter(has_text=f"Decision recorded for {reference}: rejected")
    ).to_be_visible()
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    page.screenshot(path=screenshot_dir / "05-reviewer-after-decision.png", full_page=True)
    log_out(page)

    # --- developer: reads the decision -------------------------------------------------------
    log_in(page, live_server, developer.email)
    navbar(page).get_by_role("link", name="My applications").click()
    page.get_by_role("link", name=reference).first.click()
    expect(page).to_have_url(re.compile(rf"/applications/{re.escape(reference)}$"))
    main = page.locator("main")
    expect(main.locator(".badge").filter(has_text=re.compile(r"^rejected$"))).to_be_visible()
    expect(main).to_contain_text("Latest decision: Rejected")
    expect(main.get_by_role("link", name=CITATION_TEXT).first).to_be_visible()
    expect(main).to_contain_text(NOTE)
    page.screenshot(path=screenshot_dir / "06-developer-decision.png", full_page=True)
