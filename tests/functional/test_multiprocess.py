"""Scale-out on one machine: two gunicorn web processes (two ports) and two `rq worker`
processes against one PostgreSQL database and one Redis. Reviewers claim-next concurrently over
HTTP through both web processes; no application is ever claimed by two reviewers, and the two
workers share the pending notifications without delivering one twice.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select

from reviewapp import ROOT, create_app
from reviewapp.applications.models import Application
from reviewapp.audit.models import AuditEvent, OutboxEvent
from reviewapp.extensions import db as database
from reviewapp.notifications.jobs import dispatch_pending
from tests.factories import PASSWORD, ApplicationFactory, OrganizationFactory, UserFactory

REVIEWERS = 10
APPLICATIONS = 24
CSRF_RE = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        return None  # hand the 302 to the caller: its Location names the claimed application


class Browser:
    """One reviewer's cookie session against one web process (stdlib only)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), _NoRedirect()
        )

    def request(self, path: str, data: dict[str, str] | None = None) -> tuple[int, str, str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        try:
            with self.opener.open(self.base + path, data=body, timeout=30) as response:
                return (
                    response.status,
                    response.headers.get("Location", ""),
                    response.read().decode(),
                )
        except urllib.error.HTTPError as exc:  # 3xx/4xx/5xx arrive here without redirects
            return exc.code, exc.headers.get("Location", ""), exc.read().decode()

    def csrf(self, path: str) -> str:
        status, _, page = self.request(path)
        match = CSRF_RE.search(page)
        assert status == 200 and match, (path, status, page[:300])
        return match.group(1)

    def login(self, email: str) -> None:
        status, location, page = self.request(
            "/login", {"email": email, "password": PASSWORD, "csrf_token": self.csrf("/login")}
        )
        assert status == 302, (status, page[:500])

    def claim_until_empty(self) -> list[str]:
        token = self.csrf("/queue")
        claimed = []
        for _ in range(APPLICATIONS + 1):
            status, location, page = self.request("/queue/claim-next", {"csrf_token": token})
            assert status == 302, (status, page[:500])
            if "/review/APP-" not in location:
                break  # back to the queue: nothing left to claim
            claimed.append(location.rsplit("/", 1)[-1])
        return claimed


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{base} exited: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{base} not ready in {timeout} s: {log.read_text()[-3000:]}")


@pytest.fixture()
def env(database_url, redis_url, is_postgres):  # noqa: ANN001, ANN201
    if not is_postgres:
        from tests.conftest import service_missing

        service_missing("PostgreSQL (several processes share one database)")
    return dict(
        os.environ,
        REVIEWAPP_CONFIG="testing",
        REVIEWAPP_DATABASE_URL=database_url,
        REVIEWAPP_REDIS_URL=redis_url,
        REVIEWAPP_RQ_QUEUE_PREFIX=f"multi-{uuid.uuid4().hex[:8]}",
        REVIEWAPP_RATELIMIT_KEY_PREFIX=f"multi-{uuid.uuid4().hex[:8]}",
        REVIEWAPP_RATELIMIT_LOGIN="1000 per minute",  # every reviewer logs in from 127.0.0.1
        REVIEWAPP_MAIL_BACKEND="memory",
        REVIEWAPP_DB_POOL_SIZE="4",
        REVIEWAPP_DB_MAX_OVERFLOW="2",
    )


def test_two_web_processes_and_two_workers_never_hand_out_one_application_twice(
    env, committed_db, tmp_path
) -> None:
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent))
    assert gunicorn, "gunicorn is a dependency of the project (pyproject.toml)"
    processes: list[subprocess.Popen[bytes]] = []
    bases = []

    def spawn(args: list[str], name: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = tmp_path / f"{name}.log"
        with log.open("wb") as handle:
            proc = subprocess.Popen(
                args, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT
            )
        processes.append(proc)
        return proc, log

    started = time.monotonic()
    try:
        webs = []
        for index in range(2):
            port = _free_port()
            base = f"http://127.0.0.1:{port}"
            bases.append(base)
            webs.append(
                (
                    base,
                    *spawn(
                        [gunicorn, "--workers", "1", "--threads", "4", "--bind",
                         f"127.0.0.1:{port}", "wsgi:app"],
                        f"web{index}",
                    ),
                )
            )  # fmt: skip
        workers = [
            spawn([sys.executable, "-m", "flask", "--app", "wsgi", "worker"], f"worker{i}")
            for i in range(2)
        ]
        # the data is made while the processes boot (they read nothing before the first request)
        staff = OrganizationFactory(name="Trust & Safety")
        reviewers = [UserFactory(reviewer=True, organization=staff) for _ in range(REVIEWERS)]
        emails = [r.email for r in reviewers]
        for _ in range(APPLICATIONS):
            ApplicationFactory(submitted=True)
        committed_db.commit()
        pending = committed_db.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.delivered_at.is_(None))
        )
        assert pending  # submissions left notifications for the workers
        for base, proc, log in webs:
            _wait_healthy(base, proc, log, timeout=60)
        boot_seconds = time.monotonic() - started

        # the workers get the pending notifications while the reviewers claim
        app = create_app("testing", DATABASE_URL=env["REVIEWAPP_DATABASE_URL"],
                         REDIS_URL=env["REVIEWAPP_REDIS_URL"],
                         RQ_QUEUE_PREFIX=env["REVIEWAPP_RQ_QUEUE_PREFIX"])  # fmt: skip
        with app.app_context():
            assert dispatch_pending() == pending
        database.state(app).engine.dispose()

        def work(index: int) -> list[str]:
            browser = Browser(bases[index % 2])  # half the reviewers on each web process
            browser.login(emails[index])
            return browser.claim_until_empty()

        claim_start = time.monotonic()
        with ThreadPoolExecutor(max_workers=REVIEWERS) as pool:
            results = list(pool.map(work, range(REVIEWERS)))
        claim_seconds = time.monotonic() - claim_start

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            committed_db.expire_all()
            left = committed_db.scalar(
                select(func.count())
                .select_from(OutboxEvent)
                .where(OutboxEvent.delivered_at.is_(None))
            )
            if not left:
                break
            time.sleep(0.2)
        for proc, log in workers:
            assert proc.poll() is None, log.read_text()[-3000:]
    finally:
        for proc in processes:
            proc.terminate()
        for proc in processes:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    handed_out = [ref for claimed in results for ref in claimed]
    print(
        f"boot {boot_seconds:.1f} s; {len(handed_out)} claims by {REVIEWERS} reviewers through "
        f"2 web processes in {claim_seconds:.1f} s"
    )
    # over HTTP: every application handed out exactly once, all of them handed out
    assert Counter(handed_out).most_common(1)[0][1] == 1
    assert len(handed_out) == APPLICATIONS
    # (which process wins the claims is up to the scheduler: on a quiet machine one process can
    # answer all of them first, so the split between them is not asserted)
    # in the database: one claim event per application, held by the reviewer who was told
    committed_db.expire_all()
    claim_events = committed_db.execute(
        select(AuditEvent.subject_id, func.count())
        .where(AuditEvent.action == "application.claim")
        .group_by(AuditEvent.subject_id)
    ).all()
    assert len(claim_events) == APPLICATIONS and {n for _, n in claim_events} == {1}
    holder = {ref: reviewers[i].id for i, claimed in enumerate(results) for ref in claimed}
    for application in committed_db.scalars(select(Application)):
        assert application.claimed_by_id == holder[application.reference]
    # the two workers delivered every notification, each once
    events = committed_db.scalars(select(OutboxEvent)).all()
    assert events and all(e.delivered_at is not None and e.attempts == 1 for e in events)
