"""Risk tiers looked up by name once per transaction (reviewapp.review.tiers): no stale tier
across transactions, and a tier added, renamed or changed in the same session is seen."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import event
from sqlalchemy.orm import Session

from reviewapp.review.models import RiskTier
from reviewapp.review.tiers import tier_named


@contextlib.contextmanager
def _statements(session: Session) -> Iterator[list[str]]:
    """The SQL statements run on ``session``'s engine inside the block."""
    seen: list[str] = []
    engine = session.get_bind().engine

    def _seen(conn, cursor, statement, *args) -> None:  # noqa: ANN001, ANN002
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", _seen)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", _seen)


def test_one_statement_per_transaction_and_fresh_after_commit(committed_db: Session) -> None:
    with _statements(committed_db) as statements:
        high = tier_named(committed_db, "high")
        assert high is not None and high.name == "high"
        assert tier_named(committed_db, "low") is not None
        assert tier_named(committed_db, "no-such-tier") is None
        assert tier_named(committed_db, None) is None
    assert len(statements) == 1  # every tier in one SELECT, later names from the cache

    # another session changes the tier and commits; ours sees it in its next transaction
    committed_db.commit()
    other = Session(bind=committed_db.get_bind())
    try:
        other.get(RiskTier, high.id).sla_hours = 999  # type: ignore[union-attr]
        other.commit()
    finally:
        other.close()
    committed_db.expire_all()
    assert tier_named(committed_db, "high").sla_hours == 999  # type: ignore[union-attr]


def test_a_tier_added_or_renamed_in_the_same_session_is_found(db: Session) -> None:
    assert tier_named(db, "critical") is None  # fills the cache
    db.add(
        RiskTier(name="critical", rank=99, label="Critical", sla_hours=4, default_queue="general")
    )
    db.flush()
    assert tier_named(db, "critical") is not None
    renamed = tier_named(db, "critical")
    renamed.name = "severe"  # type: ignore[union-attr]
    db.flush()
    assert tier_named(db, "critical") is None and tier_named(db, "severe") is renamed
