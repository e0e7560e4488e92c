"""Two submissions of a decision at the same moment (two tabs, a double click, two reviewers
racing an expired lease): exactly one decision, one audit event and one notification; the other
submission is refused with a clear message."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm.exc import StaleDataError

from reviewapp.applications.models import Application, Status
from reviewapp.audit.models import AuditEvent, OutboxEvent
from reviewapp.auth.models import User
from reviewapp.errors import ConflictError
from reviewapp.extensions import db as database
from reviewapp.review.models import Decision
from reviewapp.review.services import DecisionInput, claim, decide
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

OUTCOMES = [
    DecisionInput(
        outcome="approve", citations=[], template_key="approve-standard", safety_requirements=[]
    ),
    DecisionInput(
        outcome="reject",
        citations=["usage-1.5"],
        template_key="reject-prohibited",
        safety_requirements=[],
    ),
]


def test_concurrent_decisions_leave_exactly_one(app, committed_db, is_postgres) -> None:
    if not is_postgres:
        pytest.skip("row locks need PostgreSQL (CI always has it)")
    staff = OrganizationFactory()
    reviewer = UserFactory(reviewer=True, organization=staff)
    application = ApplicationFactory(submitted=True)
    committed_db.flush()
    with app.app_context():
        claim(committed_db, reviewer, application)
    committed_db.commit()
    app_id, user_id = application.id, reviewer.id

    results: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def submit(data: DecisionInput) -> None:
        try:
            with app.app_context():
                session = database.session
                user = session.get(User, user_id)
                row = session.get(Application, app_id)
                barrier.wait()
                try:
                    decide(session, user, row, data)
                    database.commit()
                    results.append(data.outcome)
                except (ConflictError, StaleDataError):
                    database.rollback()
                    results.append("refused")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=(d,)) for d in OUTCOMES]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(results) == 2 and results.count("refused") == 1
    winner = next(r for r in results if r != "refused")
    committed_db.expire_all()
    assert committed_db.scalar(select(func.count()).select_from(Decision)) == 1
    stored = committed_db.get(Application, app_id)
    assert stored.status == {"approve": Status.approved, "reject": Status.rejected}[winner]
    decided = committed_db.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action.like("decision.%"))
    )
    assert decided == 1
    sent = select(func.count()).where(OutboxEvent.kind == "decision")
    assert committed_db.scalar(sent) == 1
