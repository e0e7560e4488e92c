"""Precedents: the most similar decided applications, on PostgreSQL (full-text search, GIN) and
SQLite (FTS5), never from the reviewer's own organization."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, render_template
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from reviewapp import create_app
from reviewapp.applications.models import Application, Status
from reviewapp.auth.models import Organization, User
from reviewapp.cli import alembic_config, seed_reference_data, upgrade_database
from reviewapp.extensions import db as database
from reviewapp.review import precedents
from reviewapp.review.models import Decision
from reviewapp.review.precedents import (
    PG_VECTOR,
    Precedent,
    find_precedents,
    fts5_literal,
    tsquery_literal,
)
from tests.factories import (
    ApplicationFactory,
    OrganizationFactory,
    UserFactory,
    bind_factories,
    content,
)

SYMPTOMS = {
    "title": "Symptom checker chatbot for patients",
    "description": "Patients describe their symptoms; the chatbot suggests a likely diagnosis "
    "and whether to see a doctor or go to the emergency department.",
    "benefits": "Fewer unnecessary clinic visits; faster triage of urgent symptoms.",
    "safety_measures": "A clinician reviews the diagnosis rules; emergency symptoms always "
    "lead to a call to emergency services.",
}
SIMILAR = {
    "title": "Diagnosis assistant for patient symptoms",
    "description": "A chatbot asks patients about symptoms and proposes a diagnosis before "
    "their doctor appointment.",
    "benefits": "Doctors see a symptom summary and a suggested diagnosis up front.",
    "safety_measures": "Doctors confirm every diagnosis.",
}
LOOSELY_SIMILAR = {
    "title": "Clinic appointment scheduler",
    "description": "Books appointments with a doctor at our clinic by chat.",
    "benefits": "Fewer phone calls.",
    "safety_measures": "Staff can cancel bookings.",
}
UNRELATED = {
    "title": "Invoice line item extraction",
    "description": "Reads supplier invoices (PDF) and extracts line items, totals and VAT "
    "numbers into the accounting ledger.",
    "benefits": "Bookkeepers stop retyping invoices.",
    "safety_measures": "Accountants approve each ledger entry.",
}

# user text that means something to tsquery, FTS5 or SQL
NASTY = [
    "He said \"diagnosis\" 'quoted' it",
    "symptoms & diagnosis | doctor ! emergency",
    "diagnos:* prefix* -minus NEAR(a b) NOT AND OR",
    "a <-> b <2> (c | d) & !e : 'f' \\ backslash \\\\",
    "diagnosis'); DROP TABLE revision; --",
    '"unterminated quote and NEAR/3 * ^caret col:umn',
]


def _decide(session: Session, application: Application, outcome: str = "reject") -> Decision:
    """Record a final decision directly: only its existence and outcome matter here (the decide
    service is covered by the reviewer tests)."""
    assert application.current_revision_id is not None
    decision = Decision(
        application_id=application.id,
        revision_id=application.current_revision_id,
        outcome=outcome,
        message="Decided.",
        reviewer_id=UserFactory(reviewer=True).id,
    )
    session.add(decision)
    session.flush()
    application.last_decision_id = decision.id
    application.status = {
        "approve": Status.approved,
        "reject": Status.rejected,
        "request_mitigations": Status.mitigations_requested,
    }[outcome]
    application.claimed_by_id = None
    application.lease_expires_at = None
    session.flush()
    return decision


def _case(
    session: Session,
    org: Organization,
    fields: dict[str, str],
    *,
    outcome: str | None = "reject",
    submitted: bool = True,
) -> Application:
    """An application of ``org`` with ``fields`` as its text; decided with ``outcome`` (None:
    left in the queue)."""
    application = ApplicationFactory(
        submitter=UserFactory(organization=org), draft=content(**fields), submitted=submitted
    )
    if outcome is not None:
        _decide(session, application, outcome)
    else:
        session.refresh(application)
        assert application.last_decision_id is None
    return application


def _refs(precedents: list[Any]) -> list[str]:
    return [p.reference for p in precedents]


@pytest.fixture()
def reviewer(app: Flask, db: Session) -> Iterator[User]:
    """A reviewer of the platform's own team; the test runs in an app context (submitting an
    application writes an outbox event, whose webhook deliveries read the app's settings)."""
    with app.app_context():
        yield UserFactory(reviewer=True, organization=OrganizationFactory(name="Trust team"))


def test_similar_decided_applications_rank_first(app: Flask, db: Session, reviewer: User) -> None:
    other = OrganizationFactory()
    source = _case(db, other, SYMPTOMS, outcome=None)
    similar = _case(db, OrganizationFactory(), SIMILAR, outcome="reject")
    loose = _case(db, OrganizationFactory(), LOOSELY_SIMILAR, outcome="approve")
    unrelated = _case(db, OrganizationFactory(), UNRELATED, outcome="approve")
    found = find_precedents(db, reviewer, source)
    refs = _refs(found)
    assert refs[:2] == [similar.reference, loose.reference]
    assert unrelated.reference not in refs  # shares no term
    top = found[0]
    assert top.title == SIMILAR["title"] and top.outcome == "reject"
    assert top.outcome_label == "Rejected" and top.status == "rejected"
    assert top.risk_tier == similar.risk_tier and top.decided_at is not None
    assert found[0].score > found[1].score > 0
    assert _refs(find_precedents(db, reviewer, source, limit=1)) == [similar.reference]


def test_only_decided_cases_of_other_organizations(app: Flask, db: Session, reviewer: User) -> None:
    source = _case(db, OrganizationFactory(), SYMPTOMS, outcome="approve")  # itself decided
    expected = _case(db, OrganizationFactory(), SYMPTOMS, outcome="request_mitigations")
    undecided = _case(db, OrganizationFactory(), SYMPTOMS, outcome=None)
    draft = _case(db, OrganizationFactory(), SYMPTOMS, outcome=None, submitted=False)
    own_org = _case(db, reviewer.organization, SYMPTOMS, outcome="reject")
    found = find_precedents(db, reviewer, source, limit=10)
    refs = _refs(found)
    assert expected.reference in refs
    for hidden in (source, undecided, draft, own_org):
        assert hidden.reference not in refs
    assert found[0].outcome_label == "Mitigations requested"
    # the applicant's own organization's past cases are fair precedents for another reviewer
    colleague = UserFactory(reviewer=True, organization=expected.organization)
    assert expected.reference not in _refs(find_precedents(db, colleague, source, limit=10))
    # developers see no other organization's applications, so no precedents either
    assert find_precedents(db, source.submitter, source) == []
    # a draft has no revision to compare
    assert find_precedents(db, reviewer, draft) == []
    with pytest.raises(ValueError):
        find_precedents(db, reviewer, source, limit=0)


@pytest.mark.parametrize("nasty", NASTY)
def test_user_text_with_query_syntax_is_taken_literally(
    app: Flask, db: Session, reviewer: User, nasty: str
) -> None:
    source = _case(db, OrganizationFactory(), {**SYMPTOMS, "title": nasty}, outcome=None)
    similar = _case(db, OrganizationFactory(), SIMILAR)
    odd = _case(db, OrganizationFactory(), {**UNRELATED, "title": nasty})
    refs = _refs(find_precedents(db, reviewer, source, limit=10))
    assert similar.reference in refs and odd.reference in refs
    assert db.scalar(select(func.count()).select_from(Application)) > 0  # nothing dropped


def test_text_without_searchable_words_finds_nothing(
    app: Flask, db: Session, reviewer: User
) -> None:
    _case(db, OrganizationFactory(), SIMILAR)
    bare = {
        "title": "&|!:* ' \" - *",
        "description": "the and of",
        "benefits": "!!",
        "safety_measures": "",
    }
    source = _case(db, OrganizationFactory(), bare, outcome=None)
    assert find_precedents(db, reviewer, source) == []


def test_quoting_helpers() -> None:
    assert tsquery_literal(["don't", "a\\b", "x"]) == "'don''t' | 'a\\\\b' | 'x'"
    assert fts5_literal(['say "hi"', "NEAR"]) == '"say ""hi""" OR "NEAR"'


def test_postgres_query_can_use_the_gin_index(db: Session, is_postgres: bool) -> None:
    if not is_postgres:
        pytest.skip("PostgreSQL only")
    db.execute(text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(
        db.scalars(
            # PG_VECTOR is the model's constant index expression, not user text
            text(f"EXPLAIN SELECT id FROM revision WHERE {PG_VECTOR} @@ CAST(:q AS tsquery)"),  # noqa: S608
            {"q": "'diagnosi'"},
        )
    )
    assert "ix_revision_search" in plan


def test_postgres_weighs_rare_shared_words_and_skips_common_ones(
    app: Flask, db: Session, reviewer: User, is_postgres: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not is_postgres:
        pytest.skip("PostgreSQL only")
    generic = {
        "description": "The platform uses data and models to help staff with their data work.",
        "benefits": "Better use of data on the platform.",
        "safety_measures": "Staff check the platform output.",
    }
    for n in range(30):
        _case(db, OrganizationFactory(), {"title": f"Data platform {n}", **generic})
    rare = _case(
        db,
        OrganizationFactory(),
        {
            "title": "Smoke plume alerts",
            "description": "Satellite imagery of wildfire smoke plumes drives county alerts.",
            "benefits": "Earlier alerts.",
            "safety_measures": "A forecaster signs off.",
        },
    )
    source = _case(
        db,
        OrganizationFactory(),
        {
            "title": "Wildfire smoke forecaster",
            "description": "Forecasts wildfire smoke plumes from satellite imagery; the platform "
            "uses data and models to help staff with data.",
            "benefits": "Better use of data on the platform.",
            "safety_measures": "Staff check the platform output.",
        },
        outcome=None,
    )
    db.execute(text("ANALYZE revision"))  # sees this transaction's rows; rolled back with it
    stats = precedents._lexeme_stats(db)
    assert stats.shares["platform"] > stats.shares.get("wildfir", stats.floor)
    assert stats.idf("wildfir") > stats.idf("platform")
    found = find_precedents(db, reviewer, source, limit=3)
    assert found[0].reference == rare.reference  # rare shared words beat many common ones
    # with a small look-up budget, the common lexemes are left out of the query
    monkeypatch.setattr(precedents, "MAX_INDEX_HITS", 10)
    title, body = precedents._source_text(source.current_revision.content)
    chosen = [lexeme for lexeme, _ in precedents._postgres_terms(db, title, body)]
    assert "wildfir" in chosen and "platform" not in chosen and "data" not in chosen
    assert _refs(find_precedents(db, reviewer, source)) == [rare.reference]


def test_card_lists_precedents_and_says_when_there_are_none(app: Flask) -> None:
    precedent = Precedent(
        reference="APP-000123",
        title="Symptom <checker>",
        risk_tier="high",
        status="queued",
        outcome="reject",
        decided_at=dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC),
        score=0.5,
    )
    with app.test_request_context():
        page = render_template("review/_precedents.html", precedents=[precedent])
        empty = render_template("review/_precedents.html", precedents=[])
    assert "Similar past applications" in page
    assert 'href="/review/APP-000123"' in page and "Symptom &lt;checker&gt;" in page
    assert "Rejected" in page and ">high<" in page and "Thu 1 Jan 2026, 22:04 EST" in page
    assert "queued" in page  # moved on since the decision (a resubmission)
    assert "No decided application from another organization resembles this one yet." in empty


# --- SQLite (the embedded default) --------------------------------------------------------------


@pytest.fixture()
def sqlite_app(tmp_path: Path) -> Iterator[Flask]:
    """An app on a fresh SQLite file migrated to head, as ``flask init-db`` makes it."""
    url = f"sqlite:///{tmp_path / 'reviewapp.sqlite3'}"
    upgrade_database(url)
    application = create_app("testing", DATABASE_URL=url, REDIS_URL=None)
    previous = ApplicationFactory._meta.sqlalchemy_session
    with application.app_context():
        seed_reference_data(database.session, Path(application.config["SEED_DIR"]))
        database.commit()
        bind_factories(database.session)
        try:
            yield application
        finally:
            database.rollback()
            database.engine.dispose()
            # give the factories back to the PostgreSQL tests' session, as the db fixture left
            # them (dropping that reference lets the session app's engine be collected early,
            # with its pooled connection still open: an unraisable ResourceWarning)
            bind_factories(previous)


def _fts_rowids(session: Session) -> set[int]:
    return set(session.scalars(text("SELECT rowid FROM revision_fts")))


def test_sqlite_fts5_ranking_escaping_and_triggers(sqlite_app: Flask) -> None:
    session = database.session
    reviewer = UserFactory(reviewer=True, organization=OrganizationFactory(name="Trust team"))
    source = _case(session, OrganizationFactory(), SYMPTOMS, outcome=None)
    similar = _case(session, OrganizationFactory(), SIMILAR, outcome="reject")
    loose = _case(session, OrganizationFactory(), LOOSELY_SIMILAR, outcome="approve")
    unrelated = _case(session, OrganizationFactory(), UNRELATED, outcome="approve")
    own_org = _case(session, reviewer.organization, SYMPTOMS, outcome="reject")
    undecided = _case(session, OrganizationFactory(), SYMPTOMS, outcome=None)
    session.commit()
    # the insert trigger indexed every revision
    revision_ids = set(session.scalars(text("SELECT id FROM revision")))
    assert revision_ids and _fts_rowids(session) == revision_ids

    found = find_precedents(session, reviewer, source)
    refs = _refs(found)
    assert refs[:2] == [similar.reference, loose.reference]
    for hidden in (unrelated, own_org, undecided, source):
        assert hidden.reference not in refs
    assert found[0].score > found[1].score and found[0].outcome == "reject"

    for nasty in NASTY:
        source.current_revision.content = {**SYMPTOMS, "title": nasty}  # in memory only
        assert similar.reference in _refs(find_precedents(session, reviewer, source, limit=10))
    session.rollback()

    # deleting an application deletes its revisions (cascade) and their index rows
    gone = undecided.current_revision_id
    session.execute(text("DELETE FROM application WHERE id = :id"), {"id": undecided.id})
    session.commit()
    assert gone not in _fts_rowids(session)


def test_sqlite_migration_backfills_existing_revisions(sqlite_app: Flask) -> None:
    session = database.session
    _case(session, OrganizationFactory(), SIMILAR)
    _case(session, OrganizationFactory(), UNRELATED)
    session.commit()
    url = sqlite_app.config["DATABASE_URL"]
    cfg = alembic_config(url)
    cfg.attributes["skip_logging"] = True
    database.engine.dispose()
    from alembic import command

    command.downgrade(cfg, "7f3c1e2d9a10-1")
    assert not session.scalars(
        text("SELECT name FROM sqlite_master WHERE name LIKE 'revision_fts%'")
    ).all()
    session.rollback()
    command.upgrade(cfg, "head")
    assert _fts_rowids(session) == set(session.scalars(text("SELECT id FROM revision")))
