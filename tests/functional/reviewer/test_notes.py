"""Internal notes: reviewers only, append-only, never shown to developers, never lost."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from reviewapp.auth.models import User
from reviewapp.extensions import db as database
from reviewapp.review.models import Note
from reviewapp.review.services import add_note
from tests.conftest import post_form
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory


def test_reviewers_add_notes_developers_never_see_them(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    reviewer = UserFactory(reviewer=True, organization=OrganizationFactory())
    client = login(reviewer)
    response = post_form(
        client,
        f"/review/{application.reference}/notes",
        {"body": "Checked the <b>vendor</b> 🚀"},
        token_from=f"/review/{application.reference}",
    )
    assert response.status_code == 302
    page = client.get(f"/review/{application.reference}").get_data(as_text=True)
    assert "Checked the &lt;b&gt;vendor&lt;/b&gt; 🚀" in page and reviewer.email in page
    developer_page = (
        login(application.submitter)
        .get(f"/applications/{application.reference}")
        .get_data(as_text=True)
    )
    assert "vendor" not in developer_page


def test_bad_notes_are_refused_with_the_text_kept(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    client = login(UserFactory(reviewer=True, organization=OrganizationFactory()))
    response = post_form(
        client,
        f"/review/{application.reference}/notes",
        {"body": "   "},
        token_from=f"/review/{application.reference}",
    )
    assert response.status_code == 422 and b"Write something first." in response.data
    long_text = "x" * 5001
    response = post_form(
        client,
        f"/review/{application.reference}/notes",
        {"body": long_text},
        token_from=f"/review/{application.reference}",
    )
    assert response.status_code == 422 and long_text.encode() in response.data
    assert db.scalar(select(func.count()).select_from(Note)) == 0


def test_two_reviewers_writing_at_once_keep_every_note(app, committed_db, is_postgres) -> None:
    if not is_postgres:
        pytest.skip("concurrent writers need PostgreSQL (CI always has it)")
    application = ApplicationFactory(submitted=True)
    staff = OrganizationFactory()
    ids = [UserFactory(reviewer=True, organization=staff).id for _ in range(2)]
    committed_db.commit()
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def write(user_id: int) -> None:
        try:
            with app.app_context():
                user = database.session.get(User, user_id)
                target = database.session.get(type(application), application.id)
                barrier.wait()
                for i in range(20):
                    add_note(database.session, user, target, f"note {i} by {user_id}")
                    database.commit()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(uid,)) for uid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert (
        committed_db.scalar(
            select(func.count()).select_from(Note).where(Note.application_id == application.id)
        )
        == 40
    )
