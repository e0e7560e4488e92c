"""Two admins removing each other at the same moment (demotion or deactivation, in parallel
requests with real commits): one succeeds, the other is refused with "the last active admin",
and the product is never left without an active admin."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from reviewapp.auth.admin_services import change_role, deactivate_user
from reviewapp.auth.models import Role, User
from reviewapp.errors import ConflictError
from reviewapp.extensions import db as database
from tests.factories import OrganizationFactory, UserFactory


def _demote(session, actor: User, user: User) -> None:  # noqa: ANN001
    change_role(session, actor, user, Role.reviewer)


def _deactivate(session, actor: User, user: User) -> None:  # noqa: ANN001
    deactivate_user(session, actor, user)


Remove = Callable[..., None]


def _active_admins(session) -> int:  # noqa: ANN001
    return (
        session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.role == Role.admin, User.active.is_(True))
        )
        or 0
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [(_demote, _demote), (_demote, _deactivate), (_deactivate, _deactivate)],
    ids=["demote-demote", "demote-deactivate", "deactivate-deactivate"],
)
def test_two_admins_removing_each_other_leave_one_admin(
    app, committed_db, is_postgres, first: Remove, second: Remove
) -> None:
    if not is_postgres:
        pytest.skip("row locks need PostgreSQL (CI always has it)")
    staff = OrganizationFactory()
    one = UserFactory(admin=True, organization=staff)
    two = UserFactory(admin=True, organization=staff)
    committed_db.commit()
    assert _active_admins(committed_db) == 2
    one_id, two_id = one.id, two.id

    results: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def remove(remove_: Remove, actor_id: int, user_id: int) -> None:
        try:
            with app.app_context():
                session = database.session
                actor = session.get(User, actor_id)
                user = session.get(User, user_id)
                barrier.wait()
                try:
                    remove_(session, actor, user)
                    database.commit()
                    results.append("done")
                except ConflictError as exc:
                    database.rollback()
                    results.append(str(exc))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=remove, args=(first, one_id, two_id)),
        threading.Thread(target=remove, args=(second, two_id, one_id)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(results) == 2 and results.count("done") == 1
    refusal = next(r for r in results if r != "done")
    assert "is the last active admin" in refusal
    committed_db.expire_all()
    assert _active_admins(committed_db) == 1
