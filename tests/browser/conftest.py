"""Browser test fixtures: a live server on a free port and headless Debian Chromium via Playwright.

Playwright never downloads a browser here: it drives the system Chromium at ``CHROMIUM_PATH``
(override: REVIEWAPP_TEST_CHROMIUM). Under ``CI=true`` a missing Chromium fails the run;
elsewhere the browser tests are skipped.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.conftest import IN_CI

CHROMIUM_PATH = os.environ.get("REVIEWAPP_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT_DIR = Path(__file__).parent / "screenshots"  # git-ignored


def _browser_missing(message: str) -> None:
    """Fail under CI, skip elsewhere (CI must never silently skip browser tests)."""
    if IN_CI:
        pytest.fail(message + " (CI=true: browser tests fail instead of skipping)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Path of an executable Chromium."""
    path = Path(CHROMIUM_PATH)
    if not (path.is_file() and os.access(path, os.X_OK)):
        found = shutil.which(CHROMIUM_PATH)
        if found is None:
            _browser_missing(
                f"Chromium is not installed at {CHROMIUM_PATH} (apt-get install chromium)"
            )
        return str(found)
    return str(path)


@pytest.fixture()
def live_server(app: Flask, committed_db: object) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 on a free port in a background thread; yields the base URL.

    Depends on ``committed_db``: the server's requests use their own connections, so test data
    must be committed, and the database is reset after the server has stopped.
    """
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture()
def browser_context(chromium_path: str) -> Iterator[object]:
    """A fresh Playwright browser context (own cookies) in headless Chromium.

    The browser, the context and the Playwright driver are closed even when the test fails.
    """
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        _browser_missing("the playwright package is not installed (pip install -e '.[test]')")
        raise  # unreachable: _browser_missing always raises

    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(
                executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
            )
        except PlaywrightError as exc:
            _browser_missing(f"Chromium at {chromium_path} did not start: {exc}")
            raise
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-GB")
            context.set_default_timeout(10_000)
            try:
                yield context
            finally:
                context.close()
        finally:
            browser.close()


@pytest.fixture()
def screenshot_dir() -> Path:
    """Where browser tests save screenshots (created on demand)."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    return SCREENSHOT_DIR
