"""Parallel registrations of webhook endpoints respect the limit of 20 per organization (found:
twelve at once with 13 registered left 23): the extra ones are refused with the limit's
message, never stored."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from reviewapp.auth.models import User
from reviewapp.errors import ValidationFailed
from reviewapp.extensions import db as database
from reviewapp.webhooks.models import WebhookEndpoint
from reviewapp.webhooks.services import MAX_ENDPOINTS_PER_ORGANIZATION, create_endpoint
from tests.factories import OrganizationFactory, UserFactory

EXISTING = 13
PARALLEL = 10


def test_parallel_registrations_stop_at_the_organization_limit(
    app, committed_db, is_postgres
) -> None:
    if not is_postgres:
        pytest.skip("row locks need PostgreSQL (CI always has it)")
    organization = OrganizationFactory()
    developers = [UserFactory(organization=organization) for _ in range(2)]
    committed_db.flush()
    with app.app_context():
        for i in range(EXISTING):
            create_endpoint(
                committed_db, developers[0], url=f"https://example.com/h{i}", event_types=["*"]
            )
    committed_db.commit()
    user_ids = [d.id for d in developers]

    results: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(PARALLEL)

    def register(n: int) -> None:
        try:
            with app.app_context():
                session = database.session
                actor = session.get(User, user_ids[n % 2])
                barrier.wait()
                try:
                    create_endpoint(
                        session, actor, url=f"https://example.com/p{n}", event_types=["*"]
                    )
                    database.commit()
                    results.append("created")
                except ValidationFailed as exc:
                    database.rollback()
                    results.append(str(exc))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=register, args=(n,)) for n in range(PARALLEL)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    room = MAX_ENDPOINTS_PER_ORGANIZATION - EXISTING
    assert results.count("created") == room
    refusals = [r for r in results if r != "created"]
    assert len(refusals) == PARALLEL - room
    assert all("already has 20 endpoints" in r for r in refusals)
    stored = committed_db.scalar(
        select(func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.organization_id == organization.id)
    )
    assert stored == MAX_ENDPOINTS_PER_ORGANIZATION


def test_parallel_token_creations_stop_at_the_per_user_limit(
    app, committed_db, is_postgres
) -> None:
    """The same kind of limit on personal API tokens (20 active per user) holds because
    create_personal_token locks the user's row before counting; kept here beside the
    webhook one so a refactor cannot drop the lock unnoticed."""
    from reviewapp.auth.tokens import MAX_ACTIVE_TOKENS, active_token_count, create_personal_token
    from reviewapp.errors import ConflictError

    if not is_postgres:
        pytest.skip("row locks need PostgreSQL (CI always has it)")
    developer = UserFactory(organization=OrganizationFactory())
    committed_db.flush()
    with app.app_context():
        for i in range(EXISTING):
            create_personal_token(committed_db, developer, name=f"t{i}", scopes=["read"])
    committed_db.commit()
    user_id = developer.id

    results: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(PARALLEL)

    def create(n: int) -> None:
        try:
            with app.app_context():
                session = database.session
                user = session.get(User, user_id)
                barrier.wait()
                try:
                    create_personal_token(session, user, name=f"p{n}", scopes=["read"])
                    database.commit()
                    results.append("created")
                except ConflictError:
                    database.rollback()
                    results.append("refused")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(PARALLEL)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert results.count("created") == MAX_ACTIVE_TOKENS - EXISTING
    committed_db.expire_all()
    assert active_token_count(committed_db, committed_db.get(User, user_id)) == MAX_ACTIVE_TOKENS
