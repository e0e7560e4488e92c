"""The audit log is tamper-evident: a hash chain that `flask audit verify` recomputes, naming
the first edited or deleted event."""

from __future__ import annotations

from sqlalchemy import delete, func, select, update

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
    assert "Use a date like 2026-11-30." in bad


def test_reversed_dates_are_explained(login, db) -> None:
    from tests.factories import OrganizationFactory, UserFactory

    client = login(UserFactory(admin=True, organization=OrganizationFactory()))
    page = client.get("/admin/audit?since=2026-11-30&until=2026-11-01").get_data(as_text=True)
    assert "before the “from” day" in page
