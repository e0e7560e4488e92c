"""Keyboard use in headless Chromium.

Shortcuts: ? shows help, j/k move through the queue, c claims next, r picks reject on the
claimed application. Keyboard only (Tab, Shift+Tab, Enter, Space, arrows and typing): the skip
link leads to the main content; a developer submits an application, a reviewer claims the next
application and records a decision, an admin saves a rule in a new ruleset draft; every element
that takes focus on the way shows a focus ring (a solid outline of at least 2px).
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy.orm import Session

from tests.browser.test_review_flow import log_in
from tests.conftest import IN_CI
from tests.factories import PASSWORD, ApplicationFactory, OrganizationFactory, UserFactory

try:
    from playwright.sync_api import BrowserContext, Locator, Page, expect
except ImportError:  # pragma: no cover - the test extra is not installed
    if IN_CI:
        raise
    pytest.skip("the playwright package is not installed", allow_module_level=True)

pytestmark = pytest.mark.browser

# What has focus, and whether it shows it: a solid outline of 2px or more, on a visible box.
FOCUSED_JS = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) { return null; }
  const style = getComputedStyle(el);
  const box = el.getBoundingClientRect();
  const label = el.getAttribute("aria-label") || el.innerText || el.value || el.name || el.id;
  return {
    element: el.tagName.toLowerCase() + " " + String(label || "").trim().slice(0, 60),
    ring: style.outlineStyle === "solid" && parseFloat(style.outlineWidth) >= 2,
    shown: box.width > 0 && box.height > 0,
  };
}"""


def press_tab_until(
    page: Page, target: Locator, *, backwards: bool = False, limit: int = 80
) -> None:
    """Press Tab (Shift+Tab if ``backwards``) until ``target`` has focus; every element focused
    on the way must show a focus ring. Fails after ``limit`` presses."""
    key = "Shift+Tab" if backwards else "Tab"
    for _ in range(limit):
        page.keyboard.press(key)
        focused = page.evaluate(FOCUSED_JS)
        if focused is not None:
            assert focused["shown"], f"focus went to an invisible element: {focused['element']}"
            assert focused["ring"], f"no 2px focus ring on {focused['element']}"
        if target.evaluate("el => el === document.activeElement"):
            return
    raise AssertionError(f"{target} was not reached with {limit} presses of {key}")


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


def test_skip_link_then_developer_logs_in_and_submits_with_the_keyboard_only(
    browser_context: BrowserContext, live_server: str, committed_db: Session
) -> None:
    UserFactory(email="keyboard-dev@example.com", organization=OrganizationFactory(name="Keys Ltd"))
    committed_db.commit()
    page = browser_context.new_page()
    page.goto(f"{live_server}/login")
    skip = page.get_by_role("link", name="Skip to content")
    press_tab_until(page, skip, limit=1)  # the first stop on every page
    expect(skip).to_be_visible()
    page.keyboard.press("Enter")
    email = page.get_by_label("Email")
    press_tab_until(page, email, limit=1)  # straight into the main content, past the navbar
    page.keyboard.type("keyboard-dev@example.com")
    press_tab_until(page, page.get_by_label("Password"))
    page.keyboard.type(PASSWORD)
    press_tab_until(page, page.get_by_role("button", name="Log in"))
    page.keyboard.press("Enter")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav).to_contain_text("keyboard-dev@example.com")

    press_tab_until(page, nav.get_by_role("link", name="New application"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="New go-live application")).to_be_visible()
    press_tab_until(page, page.get_by_label("Title"))
    page.keyboard.type("Keyboard-only notes helper")
    category = page.get_by_label("Use-case category")
    press_tab_until(page, category)
    page.keyboard.press("ArrowDown")
    expect(category).not_to_have_value("")
    press_tab_until(page, page.get_by_label("Description"))
    page.keyboard.type("Summarizes internal meeting transcripts into action items for our staff.")
    press_tab_until(page, page.get_by_label("Intended benefits"))
    page.keyboard.type("Saves staff time after meetings.")
    for group, option in (
        ("End users", "Internal employees"),
        ("Modalities", "Text"),
    ):
        box = page.get_by_role("group", name=group).get_by_label(option, exact=True)
        press_tab_until(page, box)
        page.keyboard.press("Space")
        expect(box).to_be_checked()
    press_tab_until(page, page.get_by_label("Expected monthly requests"))
    page.keyboard.type("5000")
    human = page.get_by_role("group", name="Human review of outputs").get_by_label(
        "Yes, a person reviews outputs", exact=False
    )
    press_tab_until(page, human)
    page.keyboard.press("Space")
    expect(human).to_be_checked()
    general = page.get_by_role("group", name="Domains").get_by_label(
        "General purpose / none of the below"
    )
    press_tab_until(page, general)
    page.keyboard.press("Space")
    expect(general).to_be_checked()
    # past the button, then back to it
    press_tab_until(page, page.get_by_role("link", name="Cancel"))
    press_tab_until(page, page.get_by_role("button", name="Submit for review"), backwards=True)
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text="submitted: triaged as")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Keyboard-only notes helper")


def test_reviewer_claims_next_and_decides_with_the_keyboard_only(
    browser_context: BrowserContext, live_server: str, committed_db: Session
) -> None:
    application = ApplicationFactory(submitted=True)
    UserFactory(
        reviewer=True, email="keys-rev@example.com", organization=OrganizationFactory(name="T&S")
    )
    committed_db.commit()
    page = browser_context.new_page()
    log_in(page, live_server, "keys-rev@example.com")
    page.goto(f"{live_server}/queue")
    press_tab_until(page, page.get_by_role("button", name="Claim next"))
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/review/{re.escape(application.reference)}$"))
    decision = page.get_by_role("region", name="Your decision")
    approve = decision.get_by_role("radio", name="Approve")
    press_tab_until(page, approve)
    page.keyboard.press("Space")
    expect(approve).to_be_checked()
    template = decision.get_by_label("Response template")
    press_tab_until(page, template)
    page.keyboard.press("ArrowDown")
    expect(template).to_have_value(re.compile(r"^approve-"))
    press_tab_until(page, decision.get_by_role("button", name="Record decision"))
    page.keyboard.press("Enter")
    expect(
        page.get_by_role("status").filter(
            has_text=f"Decision recorded for {application.reference}: approved"
        )
    ).to_be_visible()


def test_admin_saves_a_rule_in_a_new_ruleset_draft_with_the_keyboard_only(
    browser_context: BrowserContext, live_server: str, committed_db: Session
) -> None:
    UserFactory(admin=True, email="keys-admin@example.com", organization=OrganizationFactory())
    committed_db.commit()
    page = browser_context.new_page()
    log_in(page, live_server, "keys-admin@example.com")
    page.goto(f"{live_server}/admin/rulesets")
    press_tab_until(page, page.get_by_role("button", name="New draft from v1"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text="Draft v2 started from v1.")).to_be_visible()
    press_tab_until(page, page.get_by_role("link", name="Edit").first)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/admin/rulesets/2/rules/[^/]+/edit$"))
    name = page.get_by_label("Name")
    press_tab_until(page, name)
    page.keyboard.press("End")
    page.keyboard.type(" (checked by keyboard)")
    press_tab_until(page, page.get_by_role("button", name="Save rule"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text="saved in draft v2")).to_be_visible()
    expect(page.locator("main")).to_contain_text("(checked by keyboard)")


def test_account_menu_and_password_change_with_the_keyboard_only(
    browser_context: BrowserContext, live_server: str, committed_db: Session
) -> None:
    UserFactory(email="keys-account@example.com", organization=OrganizationFactory(name="Acct"))
    committed_db.commit()
    page = browser_context.new_page()
    log_in(page, live_server, "keys-account@example.com")
    nav = page.get_by_role("navigation", name="Main")
    menu = nav.locator("summary", has_text="Account")
    press_tab_until(page, menu)
    page.keyboard.press("Enter")
    tokens = nav.get_by_role("link", name="API tokens")
    expect(tokens).to_be_visible()
    page.keyboard.press("Escape")  # closes the menu, focus back on "Account"
    expect(tokens).to_be_hidden()
    assert menu.evaluate("el => el === document.activeElement")
    page.keyboard.press("Enter")
    press_tab_until(page, nav.get_by_role("link", name="Name, password and time zone"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Change password")).to_be_visible()
    press_tab_until(page, page.get_by_label("Current password"))
    page.keyboard.type(PASSWORD)
    press_tab_until(page, page.get_by_label("New password"))
    page.keyboard.type("a-brand-new-passphrase")
    press_tab_until(page, page.get_by_label("Repeat password"))
    page.keyboard.type("a-brand-new-passphrase")
    press_tab_until(page, page.get_by_role("button", name="Change password"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text="Your password is changed.")).to_be_visible()
    expect(nav).to_contain_text("keys-account@example.com")  # still signed in
