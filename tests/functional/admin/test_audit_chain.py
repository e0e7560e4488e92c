"""The audit log is tamper-evident: a hash chain that `flask audit verify` recomputes, naming
the first edited or deleted event."""

from __future__ import annotations

from sqlalchemy import delete, func, select, text, update

from reviewapp.audit.chain import verify_chain
from reviewapp.audit.models import AuditEvent
from tests.factories import ApplicationFactory


def test_chain_detects_an_edited_and_a_deleted_event(app, db) -> None:
    with app.app_context():
        for _ in range(4):
            ApplicationFactory(submitted=True)
    db.commit()  # events join the chain when their transaction commits
    total = db.scalar(select(func.count()).select_from(AuditEvent))
    assert total >= 4
    assert verify_chain(db).broken_event_id is None
    assert verify_chain(db).checked == total
    ids = db.scalars(select(AuditEvent.id).order_by(AuditEvent.id)).all()

    # someone edits an event in the database: that event is named
    edited = ids[2]
    db.execute(
        update(AuditEvent).where(AuditEvent.id == edited).values(after={"status": "approved"})
    )
    db.expire_all()
    report = verify_chain(db)
    assert report.broken_event_id == edited and "changed after it was written" in report.problem
    assert report.checked == 2


def test_deleting_an_event_breaks_the_next_link(app, db) -> None:
    with app.app_context():
        for _ in range(3):
            ApplicationFactory(submitted=True)
    db.commit()
    ids = db.scalars(select(AuditEvent.id).order_by(AuditEvent.id)).all()
    db.execute(delete(AuditEvent).where(AuditEvent.id == ids[1]))
    db.expire_all()
    report = verify_chain(db)
    assert report.broken_event_id == ids[2] and "does not follow" in report.problem


def test_verify_command(app, committed_db) -> None:
    with app.app_context():
        ApplicationFactory(submitted=True)
    committed_db.commit()
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["audit", "verify"])
    assert ok.exit_code == 0 and "audit chain intact" in ok.output
    first = committed_db.scalars(select(AuditEvent).order_by(AuditEvent.id)).first()
    committed_db.execute(
        update(AuditEvent).where(AuditEvent.id == first.id).values(action="application.approve")
    )
    committed_db.commit()
    broken = runner.invoke(args=["audit", "verify"])
    assert broken.exit_code == 1 and f"event {first.id}" in broken.output


def test_audit_page_filters_and_shows_before_after(app, login, db) -> None:
    from tests.factories import OrganizationFactory, UserFactory

    with app.app_context():
        first = ApplicationFactory(submitted=True)
        second = ApplicationFactory(submitted=True)
    admin = UserFactory(admin=True, organization=OrganizationFactory())
    client = login(admin)
    page = client.get(f"/admin/audit?subject={first.reference.lower()}").get_data(as_text=True)
    assert first.reference in page and second.reference not in page
    assert "application.submit" in page and "&#34;status&#34;: &#34;queued&#34;" in page
    by_actor = client.get(f"/admin/audit?actor={second.submitter.email}").get_data(as_text=True)
    assert second.reference in by_actor and first.reference not in by_actor
    none = client.get("/admin/audit?action=nothing.").get_data(as_text=True)
    assert "No event matches" in none
    bad = client.get("/admin/audit?since=yesterday").get_data(as_text=True)
    assert "Use a date like 2026-11-30" in bad


def test_reversed_dates_are_explained(login, db) -> None:
    from tests.factories import OrganizationFactory, UserFactory

    client = login(UserFactory(admin=True, organization=OrganizationFactory()))
    page = client.get("/admin/audit?since=2026-11-30&until=2026-11-01").get_data(as_text=True)
    assert "before the “from” day" in page


def test_concurrent_transactions_chain_in_commit_order_without_waiting(
    app, committed_db, is_postgres
) -> None:
    """Two transactions record events; the later-inserted one commits first without waiting for
    the other (the chain lock is taken only at commit), and the chain stays intact."""
    from sqlalchemy.orm import Session

    from reviewapp.audit.services import record_event
    from reviewapp.extensions import db as database

    if not is_postgres:
        return  # SQLite serializes writers anyway; the lock under test is PostgreSQL's
    engine = database.state(app).engine
    first, second = Session(bind=engine), Session(bind=engine)
    try:
        early = record_event(
            first, actor=None, action="test.early", subject_type="test", subject_id=1
        )
        second.execute(text("SET LOCAL lock_timeout = '2s'"))  # fail, not hang, if it waits
        late = record_event(
            second, actor=None, action="test.late", subject_type="test", subject_id=2
        )
        assert early.id < late.id
        second.commit()  # would wait for `first` (and time out) if the lock were held early
        first.commit()
    finally:
        first.close()
        second.close()
    rows = committed_db.execute(
        select(AuditEvent.action, AuditEvent.chain_seq).where(AuditEvent.subject_type == "test")
    ).all()
    order = [action for action, _seq in sorted(rows, key=lambda r: r[1])]
    assert order == ["test.late", "test.early"]
    report = verify_chain(committed_db)
    assert report.broken_event_id is None, report.problem


def test_an_event_written_around_the_application_is_flagged(app, committed_db) -> None:
    with app.app_context():
        ApplicationFactory(submitted=True)
    committed_db.commit()
    committed_db.execute(
        text(
            "INSERT INTO audit_event (action, subject_type, subject_id, created_at)"
            " VALUES ('application.approve', 'application', '1', CURRENT_TIMESTAMP)"
        )
    )
    committed_db.commit()
    report = verify_chain(committed_db)
    assert report.broken_event_id is not None and "not in the chain" in report.problem
