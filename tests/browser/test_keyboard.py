"""Keyboard shortcuts in headless Chromium: ? shows help, j/k move through the queue, c claims
next, r picks reject on the claimed application."""

from __future__ import annotations

import re

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


def test_queue_and_decision_shortcuts(
    browser_context: BrowserContext, live_server: str, committed_db: Session
) -> None:
    first = ApplicationFactory(submitted=True)
    ApplicationFactory(submitted=True)
    UserFactory(
        reviewer=True, email="keys@example.com", organization=OrganizationFactory(name="T&S keys")
    )
    committed_db.commit()
    page = browser_context.new_page()
    log_in(page, live_server, "keys@example.com")
    page.goto(f"{live_server}/queue")
    page.keyboard.press("?")
    expect(page.get_by_role("dialog")).to_be_visible()
    expect(page.get_by_role("dialog")).to_contain_text("claim the next application")
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    page.keyboard.press("j")
    expect(page.locator("tr.table-active")).to_have_count(1)
    page.keyboard.press("j")
    page.keyboard.press("k")
    expect(page.locator("tbody tr").first).to_have_class(re.compile("table-active"))
    page.keyboard.press("c")
    expect(page).to_have_url(re.compile(r"/review/APP-\d+$"))
    expect(page.get_by_role("heading", name="Your decision")).to_be_visible()
    page.locator("body").click()
    page.keyboard.press("r")
    expect(page.get_by_role("radio", name="Reject")).to_be_checked()
    page.keyboard.press("a")
    expect(page.get_by_role("radio", name="Approve")).to_be_checked()
    _ = first
