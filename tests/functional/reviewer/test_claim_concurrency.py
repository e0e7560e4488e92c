"""claim-next under concurrency: several reviewers at once never get the same application."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import select

from reviewapp.applications.models import Application, Status
from reviewapp.auth.models import User
from reviewapp.extensions import db as database
from reviewapp.review.services import claim_next
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

REVIEWERS = 6
APPLICATIONS = 60


def test_concurrent_claim_next_never_double_claims(
    app, committed_db, is_postgres, monkeypatch
) -> None:
    monkeypatch.setitem(app.config, "MAX_CLAIMS_PER_REVIEWER", APPLICATIONS)
    if not is_postgres:
        pytest.skip("SKIP LOCKED needs PostgreSQL (CI always has it)")
    staff = OrganizationFactory(name="T&S")
    reviewer_ids = [UserFactory(reviewer=True, organization=staff).id for _ in range(REVIEWERS)]
    for _ in range(APPLICATIONS):
        ApplicationFactory(submitted=True)
    committed_db.commit()

    claims: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(REVIEWERS)

    def work(user_id: int) -> None:
        try:
            with app.app_context():
                user = database.session.get(User, user_id)
                barrier.wait()
                while True:
                    application = claim_next(database.session, user)
                    if application is None:
                        database.rollback()
                        return
                    with lock:
                        claims.append((application.id, user_id))
                    database.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(uid,)) for uid in reviewer_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    counts = Counter(app_id for app_id, _ in claims)
    assert len(counts) == APPLICATIONS
    assert max(counts.values()) == 1, [k for k, v in counts.items() if v > 1]
    assert len({uid for _, uid in claims}) > 1  # the work was really shared
    committed_db.expire_all()
    rows = committed_db.scalars(select(Application)).all()
    assert all(a.status == Status.in_review for a in rows)
    assert {a.id: a.claimed_by_id for a in rows} == dict(claims)
