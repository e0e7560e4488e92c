"""axe-core accessibility checks of the main pages of every role in headless Chromium.

A page fails on any violation of impact "serious" or "critical"; the assertion message lists the
rule ids and the elements. One browser, one live server and one logged-in context per role serve
the whole module. axe-core is the pinned npm release of tests/browser/axe.py.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from reviewapp.extensions import db as database
from reviewapp.review.services import DecisionInput, claim, decide
from reviewapp.triage import lab
from tests.browser.axe import AxeUnavailable, blocking_violations, describe, load_axe_source
from tests.browser.conftest import CHROMIUM_ARGS, _browser_missing
from tests.conftest import _reset_database
from tests.factories import (
    HIGH_RISK,
    PASSWORD,
    ApplicationFactory,
    OrganizationFactory,
    UserFactory,
    bind_factories,
    content,
)

try:
    from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
    from playwright.sync_api import Error as PlaywrightError
except ImportError:  # pragma: no cover - the test extra is not installed
    from tests.conftest import IN_CI

    if IN_CI:
        raise
    pytest.skip("the playwright package is not installed", allow_module_level=True)

pytestmark = pytest.mark.browser

DEVELOPER = "a11y-dev@example.com"
REVIEWER = "a11y-reviewer@example.com"
ADMIN = "a11y-admin@example.com"


@pytest.fixture(scope="module")
def axe_source() -> str:
    """The pinned axe-core script (downloaded once, then cached)."""
    try:
        return load_axe_source()
    except AxeUnavailable as exc:
        _browser_missing(str(exc))
        raise


@pytest.fixture(scope="module")
def site(app: Flask) -> Iterator[dict[str, Any]]:
    """Committed data for every role and a live server; yields the base URL and references.

    The database is reset (emptied and re-seeded) after the module, as ``committed_db`` does.
    """
    with app.app_context():  # the services read the app's settings
        session = Session(bind=database.state(app).engine, expire_on_commit=False)
        bind_factories(session)
        try:
            developer = UserFactory(
                email=DEVELOPER, organization=OrganizationFactory(name="Accessible Apps Ltd")
            )
            staff = OrganizationFactory(name="A11y Trust and Safety")
            reviewer = UserFactory(reviewer=True, email=REVIEWER, organization=staff)
            admin = UserFactory(admin=True, email=ADMIN, organization=staff)
            # decided: a decision card for the developer, a precedent for the reviewer's page
            decided = ApplicationFactory(submitter=developer, submitted=True)
            claim(session, reviewer, decided)
            decide(
                session,
                reviewer,
                decided,
                DecisionInput(
                    outcome="reject",
                    citations=["usage-1.5"],
                    template_key="reject-insufficient-information",
                    safety_requirements=[],
                    reviewer_note="Please say who reads the summaries.",
                ),
            )
            other = UserFactory(organization=OrganizationFactory(name="Other Org"))
            to_review = ApplicationFactory(submitter=other, submitted=True)
            ApplicationFactory(submitter=developer, submitted=True)
            draft_application = ApplicationFactory(submitter=developer)
            draft = lab.start_draft(session, admin, lab.get_version(session, 1))
            draft.rules[-1].enabled = False  # a disabled rule is shown dimmed
            session.commit()
            info = {
                "decided": decided.reference,
                "draft_application": draft_application.reference,
                "to_review": to_review.reference,
                "draft": draft.number,
                "other_user": other.id,
            }
        finally:
            session.close()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="a11y-server", daemon=True)
    thread.start()
    try:
        yield {"url": f"http://127.0.0.1:{server.server_port}", **info}
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        _reset_database(app)


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Browser]:
    """One headless Chromium for the module."""
    with sync_playwright() as pw:
        try:
            instance = pw.chromium.launch(
                executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
            )
        except PlaywrightError as exc:
            _browser_missing(f"Chromium at {chromium_path} did not start: {exc}")
            raise
        try:
            yield instance
        finally:
            instance.close()


def _context(browser: Browser, base_url: str, email: str | None) -> BrowserContext:
    # bypass_csp: the app's CSP (script-src 'self') would refuse the injected axe script.
    context = browser.new_context(
        viewport={"width": 1400, "height": 900}, locale="en-GB", bypass_csp=True
    )
    context.set_default_timeout(10_000)
    if email is not None:
        page = context.new_page()
        page.goto(f"{base_url}/login")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("navigation", name="Main")).to_contain_text(email)
        page.close()
    return context


@pytest.fixture(scope="module")
def pages(browser: Browser, site: dict[str, Any]) -> Iterator[dict[str, Page]]:
    """One page per role (anonymous, developer, reviewer, admin), each logged in once."""
    contexts = {
        "anonymous": _context(browser, site["url"], None),
        "developer": _context(browser, site["url"], DEVELOPER),
        "reviewer": _context(browser, site["url"], REVIEWER),
        "admin": _context(browser, site["url"], ADMIN),
    }
    try:
        yield {role: context.new_page() for role, context in contexts.items()}
    finally:
        for context in contexts.values():
            context.close()


def assert_accessible(page: Page, axe_source: str) -> None:
    """Run axe on the page as it is now; fail listing every serious or critical violation."""
    page.add_script_tag(content=axe_source)
    results = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    violations = blocking_violations(results)
    assert not violations, f"axe violations on {page.url}:\n{describe(violations)}"


@pytest.mark.parametrize("path", ["/", "/login", "/register", "/policies"])
def test_anonymous_pages(
    pages: dict[str, Page], site: dict[str, Any], axe_source: str, path: str
) -> None:
    page = pages["anonymous"]
    page.goto(site["url"] + path)
    assert_accessible(page, axe_source)


def test_login_and_register_with_errors(
    pages: dict[str, Page], site: dict[str, Any], axe_source: str
) -> None:
    page = pages["anonymous"]
    page.goto(site["url"] + "/login")
    page.get_by_label("Email").fill("nobody@example.com")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".invalid-feedback, .alert").first).to_be_visible()
    assert_accessible(page, axe_source)
    page.goto(site["url"] + "/register")
    page.locator("main form [type=submit]").first.click()
    expect(page.locator(".invalid-feedback").first).to_be_visible()
    assert_accessible(page, axe_source)


@pytest.mark.parametrize(
    "path",
    [
        "/applications",
        "/applications/new",
        "/applications/{decided}",
        "/applications/{draft_application}",
        "/clarifications",
        "/policies/usage-1.5",
        "/account",
        "/webhooks/new",
    ],
)
def test_developer_pages(
    pages: dict[str, Page], site: dict[str, Any], axe_source: str, path: str
) -> None:
    page = pages["developer"]
    page.goto(site["url"] + path.format(**site))
    assert_accessible(page, axe_source)


def test_account_menu_open_and_password_form_with_errors(
    pages: dict[str, Page], site: dict[str, Any], axe_source: str
) -> None:
    page = pages["developer"]
    page.goto(site["url"] + "/account")
    nav = page.get_by_role("navigation", name="Main")
    nav.locator("summary", has_text="Account").click()
    expect(nav.get_by_role("link", name="API tokens")).to_be_visible()
    assert_accessible(page, axe_source)  # the open menu panel too
    page.get_by_label("Current password").fill("not the password")
    page.get_by_label("New password").fill("short")
    page.get_by_label("Repeat password").fill("other")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#password-error")).to_be_visible()
    assert_accessible(page, axe_source)


def test_new_application_with_validation_errors(
    pages: dict[str, Page], site: dict[str, Any], axe_source: str
) -> None:
    page = pages["developer"]
    page.goto(site["url"] + "/applications/new")
    page.get_by_label("Title").fill("x")
    page.get_by_role("button", name="Submit for review").click()
    expect(page.locator(".invalid-feedback").first).to_be_visible()
    assert_accessible(page, axe_source)


def test_withdraw_and_deactivate_ask_for_a_ticked_box(
    pages: dict[str, Page], site: dict[str, Any], axe_source: str
) -> None:
    """The two irreversible buttons lead to a confirmation page; submitting it without the
    box shows the message at the box (and changes nothing: the box is never ticked here)."""
    page = pages["developer"]
    page.goto(f"{site['url']}/applications/{site['draft_application']}")
    page.get_by_role("link", name="Withdraw…").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Withdraw")
    expect(page.get_by_text("This cannot be undone.")).to_be_visible()
    assert_accessible(page, axe_source)
    page.get_by_role("button", name=f"Withdraw {site['draft_application']}").click()
    expect(page.locator(".invalid-feedback")).to_contain_text("Tick the box to confirm")
    assert_accessible(page, axe_source)

    page = pages["admin"]
    page.goto(f"{site['url']}/admin/users/{site['other_user']}")
    page.get_by_role("link", name="Deactivate…").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Deactivate")
    assert_accessible(page, axe_source)
    page.locator("main form [type=submit]").click()
    expect(page.locator(".invalid-feedback")).to_contain_text("Tick the box to confirm")
    assert_accessible(page, axe_source)


def test_reviewer_queue_and_review_page_with_decision_form(
    pages: dict[str, Page], site: dict[str, Any], axe_source: str
) -> None:
    page = pages["reviewer"]
    page.goto(site["url"] + "/queue")
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    page.keyboard.press("j")  # the row selected with the keyboard is highlighted
    expect(page.locator("tr.table-active")).to_have_count(1)
    assert_accessible(page, axe_source)
    page.goto(f"{site['url']}/review/{site['to_review']}")
    page.get_by_role("button", name="Claim", exact=True).click()
    expect(page.get_by_role("region", name="Your decision")).to_be_visible()
    expect(page.get_by_role("link", name=site["decided"])).to_be_visible()  # a precedent
    assert_accessible(page, axe_source)
    page.get_by_role("button", name="Record decision").click()  # nothing chosen: errors shown
    expect(page.locator(".invalid-feedback").first).to_be_visible()
    assert_accessible(page, axe_source)
    page.goto(f"{site['url']}/review/{site['decided']}")  # decided: read-only, decision card
    assert_accessible(page, axe_source)


@pytest.mark.parametrize(
    "path",
    [
        "/admin",
        "/admin/metrics",
        "/admin/users",
        "/admin/audit",
        "/admin/claims",
        "/admin/tiers",
        "/admin/policies",
        "/admin/catalogue",
        "/admin/rulesets",
        "/admin/rulesets/1",
        "/admin/rulesets/{draft}",
        "/admin/rulesets/{draft}/rules/new",
        "/admin/users/invite",
        "/admin/policies/sections/usage-1.5/edit",
        "/admin/catalogue/templates/new",
    ],
)
def test_admin_pages(
    pages: dict[str, Page], site: dict[str, Any], axe_source: str, path: str
) -> None:
    page = pages["admin"]
    page.goto(site["url"] + path.format(**site))
    assert_accessible(page, axe_source)


def test_rules_lab_try_result(
    pages: dict[str, Page], site: dict[str, Any], axe_source: str
) -> None:
    page = pages["admin"]
    page.goto(f"{site['url']}/admin/rulesets/{site['draft']}")
    # the ↑/↓ buttons say which rule they move
    expect(page.get_by_role("button", name=re.compile(r"^Move .+ down$")).first).to_be_visible()
    try_it = page.get_by_role("region", name="Try this version")
    try_it.get_by_label("…or application JSON").fill(json.dumps(content(**HIGH_RISK)))
    try_it.get_by_role("button", name="Evaluate").click()
    expect(page.get_by_role("heading", name=f"Try ruleset v{site['draft']}")).to_be_visible()
    expect(page.locator("main tr.table-warning").first).to_be_visible()  # a fired rule
    assert_accessible(page, axe_source)
