"""In headless Chromium: an admin edits a response template, previews it against a real
application, is told which placeholder is unknown, fixes it and saves."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from tests.browser.test_review_flow import log_in
from tests.conftest import IN_CI
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

try:
    from playwright.sync_api import BrowserContext, expect
except ImportError:  # pragma: no cover - the test extra is not installed
    if IN_CI:
        raise
    pytest.skip("the playwright package is not installed", allow_module_level=True)

pytestmark = pytest.mark.browser


def test_admin_previews_and_saves_a_template(
    browser_context: BrowserContext, live_server: str, committed_db: Session, screenshot_dir: Path
) -> None:
    application = ApplicationFactory(submitted=True)
    admin = UserFactory(admin=True, email="ada@ts.example", organization=OrganizationFactory())
    committed_db.commit()
    page = browser_context.new_page()
    log_in(page, live_server, admin.email)
    page.goto(f"{live_server}/admin/catalogue/templates/approve-standard")
    body = page.get_by_label("Message", exact=True)
    body.fill(
        "Hello {{ organization }} team, {{ application.reference }} is approved.\n\n"
        "Signed, {{ reviewer_name }}"
    )
    page.get_by_label("Preview with application").fill(application.reference)
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("main")).to_contain_text("'reviewer_name' is undefined")
    expect(page.get_by_label("Message", exact=True)).to_have_value(
        "Hello {{ organization }} team, {{ application.reference }} is approved.\n\n"
        "Signed, {{ reviewer_name }}"
    )
    page.screenshot(path=screenshot_dir / "20-template-unknown-placeholder.png", full_page=True)
    page.get_by_label("Message", exact=True).fill(
        "Hello {{ organization }} team, **{{ application.reference }}** is approved."
    )
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("#preview")
    expect(preview).to_contain_text(f"{application.reference} is approved")
    expect(preview.locator("strong")).to_have_text(application.reference)
    page.screenshot(path=screenshot_dir / "21-template-preview.png", full_page=True)
    page.get_by_role("button", name="Save template").click()
    expect(page.get_by_role("status")).to_contain_text("saved")
