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


def test_one_reviewers_parallel_claims_cannot_pass_the_claim_limit(
    app, committed_db, is_postgres, monkeypatch
) -> None:
    """Six claim-nexts of one reviewer at once, one below the limit: one claim, five refusals
    (each thread pauses between the limit check and its claim, so without the lock all six
    would pass the check before any had claimed)."""
    if not is_postgres:
        pytest.skip("row locks need PostgreSQL (CI always has it)")
    import time

    from reviewapp.errors import ConflictError
    from reviewapp.review import services

    monkeypatch.setitem(app.config, "MAX_CLAIMS_PER_REVIEWER", 3)
    staff = OrganizationFactory(name="T&S")
    reviewer = UserFactory(reviewer=True, organization=staff)
    for _ in range(12):
        ApplicationFactory(submitted=True)
    committed_db.commit()
    with app.app_context():
        for _ in range(2):
            assert claim_next(database.session, database.session.get(User, reviewer.id))
            database.commit()

    real_take_first = services._take_first

    def slow_take_first(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        time.sleep(0.3)
        return real_take_first(*args, **kwargs)

    monkeypatch.setattr(services, "_take_first", slow_take_first)
    outcomes: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def work() -> None:
        try:
            with app.app_context():
                user = database.session.get(User, reviewer.id)
                barrier.wait()
                try:
                    claim_next(database.session, user)
                    database.commit()
                    outcomes.append("claimed")
                except ConflictError as exc:
                    database.rollback()
                    outcomes.append(exc.message)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert outcomes.count("claimed") == 1, outcomes
    assert all("the limit is 3" in o for o in outcomes if o != "claimed")
    committed_db.expire_all()
    held = committed_db.scalars(
        select(Application).where(Application.claimed_by_id == reviewer.id)
    ).all()
    assert len(held) == 3
