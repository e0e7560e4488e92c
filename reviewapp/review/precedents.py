"""Precedents: the decided applications most like the one under review, so alike cases are
decided alike.

The text compared is a revision's free text: title, description, intended benefits and safety
measures (the other content fields are vocabulary keys, numbers and a URL, which the triage
result already shows).

- PostgreSQL: the English ``tsvector`` of that text, indexed by the GIN expression index
  ``ix_revision_search`` (see ``Revision.__table_args__``; the query below reuses the index's own
  expression so the planner can use it). The source text becomes an OR query of its most telling
  lexemes, ranked with ``ts_rank``.
- SQLite: the FTS5 table ``revision_fts`` (rowid = revision id; title and body columns), created by
  migration 7f3c1e2d9a10 and kept in step by triggers on ``revision``; the source text becomes an
  OR query of double-quoted words, ranked with ``bm25``.

User text never reaches SQL except as a bound parameter, and never reaches a query parser
unescaped: PostgreSQL lexemes are quoted as tsquery literals, FTS5 words as FTS5 strings.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnClause,
    ColumnElement,
    Table,
    bindparam,
    cast,
    column,
    func,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.orm import Session

from reviewapp.applications.models import Application, Revision, Status
from reviewapp.auth.models import Permission, User
from reviewapp.review.models import Decision, Outcome

#: content fields whose text is compared (the same four as the index and the FTS5 triggers)
SEARCH_FIELDS = ("title", "description", "benefits", "safety_measures")
#: at most this many terms of the source text go into the OR query: enough to describe a use
#: case, few enough that the query stays selective and quick
MAX_TERMS = 32
#: PostgreSQL: leave out lexemes that the planner's statistics say occur in more than this share
#: of revisions ("system", "data", "use"): ts_rank has no inverse document frequency, so such
#: words would rank long, generic texts first (and make the OR query match nearly every row)
COMMON_SHARE = 0.2
#: SQLite: FTS5 table holding the searchable text of every revision
FTS_TABLE = "revision_fts"
#: SQLite: bm25 column weights (title, body): a shared title word says more than a body word
BM25_WEIGHTS = (4.0, 1.0)
SEARCH_INDEX = "ix_revision_search"

_WORD_RE = re.compile(r"[^\W_]+")  # letters and digits; FTS5's unicode61 splits on the rest
# Frequent English words carry no meaning for similarity. PostgreSQL drops them itself (the
# english configuration's stop words); for FTS5, which keeps every word, this short list keeps
# them out of the query's term budget (bm25 would weigh them near zero anyway).
_STOPWORDS = frozenset(
    """a about above after again all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers him his how i if in into is it its itself just me more
    most my no nor not now of off on once only or other our ours out over own same she should so
    some such than that the their theirs them then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would
    you your yours""".split()
)


@dataclass(frozen=True)
class Precedent:
    """One similar, already decided application.

    ``outcome`` is the value of its last final decision (``approve``, ``request_mitigations``,
    ``reject``); ``status`` is where the application is now (a resubmission may have moved it on).
    ``score`` is the similarity, higher = more alike; it compares precedents of one call only
    (PostgreSQL ``ts_rank`` and SQLite ``-bm25`` are on different scales).
    """

    reference: str
    title: str
    risk_tier: str | None
    status: str
    outcome: str | None
    decided_at: dt.datetime | None
    score: float

    @property
    def outcome_label(self) -> str:
        """``Approved``, ``Mitigations requested``, ``Rejected``, or ``—`` without one."""
        return _OUTCOME_LABELS.get(self.outcome or "", "—")


_OUTCOME_LABELS = {
    Outcome.approve.value: "Approved",
    Outcome.request_mitigations.value: "Mitigations requested",
    Outcome.reject.value: "Rejected",
}


def find_precedents(
    session: Session, user: User, application: Application, *, limit: int = 5
) -> list[Precedent]:
    """The decided applications whose current revision is most like ``application``'s.

    Candidates are applications other than ``application`` with a final decision
    (``last_decision_id`` set) whose current revision shares terms with ``application``'s current
    revision. Never from ``user``'s own organization (a reviewer does not review, nor lean on, their
    organization's cases); never drafts. Users who cannot see other organizations' applications
    (developers) get no precedents, as ``can_view`` would hide every candidate from them.

    Args:
        session: bound to PostgreSQL (full-text search) or SQLite (FTS5).
        user: the reader; their organization is left out.
        application: the application under review; without a current revision (a draft) or
            without a searchable word, there are no precedents.
        limit: at most this many precedents, 1 or more.
    Returns:
        Up to ``limit`` precedents, most similar first (ties: most recently decided first).
    Raises:
        ValueError: ``limit`` below 1.
        NotImplementedError: a database other than PostgreSQL or SQLite.
        sqlalchemy.exc.OperationalError: on SQLite, a database not migrated to the precedents
            revision (no ``revision_fts`` table).
    """
    if limit < 1:
        raise ValueError("limit must be 1 or more")
    revision = application.current_revision
    if revision is None or not user.can(Permission.view_all_applications):
        return []
    title, body = _source_text(revision.content)
    conditions: list[ColumnElement[bool]] = [
        Application.last_decision_id.is_not(None),
        Application.id != application.id,
        Application.organization_id != user.organization_id,
        Application.status != Status.draft,
    ]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        rows = _search_postgres(session, title, body, conditions, limit)
    elif dialect == "sqlite":
        rows = _search_sqlite(session, title, body, conditions, limit)
    else:
        raise NotImplementedError(f"precedent search needs PostgreSQL or SQLite, not {dialect}")
    return [
        Precedent(
            reference=f"APP-{row.id:06d}",
            title=str(row.title or ""),
            risk_tier=row.risk_tier,
            status=str(row.status),
            outcome=row.outcome,
            decided_at=row.decided_at,
            score=float(row.score),
        )
        for row in rows
    ]


def is_search_table(name: str | None) -> bool:
    """True for the SQLite FTS5 table and its shadow tables (``revision_fts_data``, …), which
    no model declares; migrations/env.py leaves them out of autogenerate comparisons."""
    return name is not None and (name == FTS_TABLE or name.startswith(FTS_TABLE + "_"))


def _source_text(content: dict[str, Any]) -> tuple[str, str]:
    """(title, all searched fields joined) of a revision's content."""
    values = [content.get(name) for name in SEARCH_FIELDS]
    strings = [v.strip() for v in values if isinstance(v, str) and v.strip()]
    title = content.get("title")
    return (title if isinstance(title, str) else ""), "\n".join(strings)


def _pick_terms(counts: dict[str, int], in_title: set[str], limit: int = MAX_TERMS) -> list[str]:
    """The ``limit`` most telling terms: title terms first, then the most repeated, then the
    longest (longer words tend to be rarer); alphabetical last, so the choice is stable."""
    ordered = sorted(counts, key=lambda t: (t not in in_title, -counts[t], -len(t), t))
    return ordered[:limit]


# --- PostgreSQL ---------------------------------------------------------------------------------


def _index_expression(name: str) -> str:
    """The SQL text of the (single) expression of the model's index ``name`` on revision."""
    revision_table = Revision.__table__
    assert isinstance(revision_table, Table)
    index = next(i for i in revision_table.indexes if i.name == name)
    (expression,) = index.expressions
    return str(expression)


#: the indexed document vector; reused verbatim so PostgreSQL matches it to the GIN index.
#: Its bare ``content`` is revision.content: no other table of the query has that column.
PG_VECTOR = _index_expression(SEARCH_INDEX)


def tsquery_literal(lexemes: Sequence[str]) -> str:
    """An OR tsquery of ``lexemes`` taken literally: each one quoted (``'` and ``\\`` doubled),
    so no character of user text can act as a tsquery operator (``& | ! <-> : * ( )``)."""

    def quote(lexeme: str) -> str:
        return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"

    return " | ".join(quote(lexeme) for lexeme in lexemes)


def _common_lexemes(session: Session) -> dict[str, float]:
    """Lexeme -> share of revisions, for the most common lexemes (planner statistics of the
    index expression, refreshed by ANALYZE/autovacuum); empty before the first ANALYZE."""
    row = session.execute(
        text(
            "SELECT most_common_elems::text::text[] AS elems, most_common_elem_freqs AS freqs "
            "FROM pg_stats WHERE schemaname = current_schema() AND tablename = :index"
        ),
        {"index": SEARCH_INDEX},
    ).first()
    if row is None or row.elems is None:
        return {}
    return dict(zip(row.elems, row.freqs, strict=False))


def _postgres_terms(session: Session, title: str, body: str) -> list[str]:
    """The source text's lexemes (english configuration: stemmed, stop words dropped), without
    the very common ones, best first (see :func:`_pick_terms`)."""
    rows = session.execute(
        text(
            "SELECT v.lexeme, coalesce(array_length(v.positions, 1), 1) AS n, "
            "v.lexeme = ANY (tsvector_to_array(to_tsvector('english', :title))) AS in_title "
            "FROM unnest(to_tsvector('english', :body)) AS v"
        ),
        {"title": title, "body": body},
    ).all()
    common = _common_lexemes(session)
    counts = {r.lexeme: r.n for r in rows if common.get(r.lexeme, 0.0) <= COMMON_SHARE}
    if not counts:  # every word is common: better a broad query than none
        counts = {r.lexeme: r.n for r in rows}
    return _pick_terms(counts, {r.lexeme for r in rows if r.in_title})


def _search_postgres(
    session: Session,
    title: str,
    body: str,
    conditions: list[ColumnElement[bool]],
    limit: int,
) -> Sequence[Any]:
    terms = _postgres_terms(session, title, body)
    if not terms:
        return []
    vector: ColumnClause[Any] = literal_column(PG_VECTOR)
    query = cast(bindparam("precedent_query", tsquery_literal(terms)), TSQUERY)
    # normalization 1: divide by 1 + log(document length), so long texts do not win by bulk
    score = func.ts_rank(vector, query, 1).label("score")
    stmt = (
        select(
            Application.id,
            Revision.content["title"].as_string().label("title"),
            Application.risk_tier,
            Application.status,
            Decision.outcome,
            Decision.decided_at,
            score,
        )
        .select_from(Revision)
        .join(Application, Application.current_revision_id == Revision.id)
        .join(Decision, Decision.id == Application.last_decision_id)
        .where(vector.bool_op("@@")(query), *conditions)
        .order_by(score.desc(), Decision.decided_at.desc(), Application.id.desc())
        .limit(limit)
    )
    return session.execute(stmt).all()


# --- SQLite -------------------------------------------------------------------------------------


def fts5_literal(words: Sequence[str]) -> str:
    """An FTS5 OR query of ``words``, each one an FTS5 string (double-quoted, ``"`` doubled), so
    ``NEAR``, ``AND``, ``-``, ``*``, ``^``, ``:`` and parentheses in user text are plain text."""
    return " OR ".join('"' + word.replace('"', '""') + '"' for word in words)


def _sqlite_terms(title: str, body: str) -> list[str]:
    """The source text's words (lower-cased, stop words dropped), best first."""
    words = [w.lower() for w in _WORD_RE.findall(body)]
    counts = Counter(w for w in words if len(w) > 1 and w not in _STOPWORDS)
    return _pick_terms(dict(counts), {w.lower() for w in _WORD_RE.findall(title)})


def _search_sqlite(
    session: Session,
    title: str,
    body: str,
    conditions: list[ColumnElement[bool]],
    limit: int,
) -> Sequence[Any]:
    terms = _sqlite_terms(title, body)
    if not terms:
        return []
    fts_table = table(FTS_TABLE, column("rowid"))
    fts: ColumnClause[Any] = literal_column(
        FTS_TABLE
    )  # the table's hidden column of its own name: MATCH, bm25
    # bm25: lower is better; negated so that, as on PostgreSQL, a higher score is more alike
    bm25 = func.bm25(fts, *BM25_WEIGHTS)
    stmt = (
        select(
            Application.id,
            Revision.content["title"].as_string().label("title"),
            Application.risk_tier,
            Application.status,
            Decision.outcome,
            Decision.decided_at,
            (-bm25).label("score"),
        )
        .select_from(fts_table)
        .join(Revision, Revision.id == fts_table.c.rowid)
        .join(Application, Application.current_revision_id == Revision.id)
        .join(Decision, Decision.id == Application.last_decision_id)
        .where(fts.op("MATCH")(bindparam("precedent_query", fts5_literal(terms))), *conditions)
        .order_by(bm25, Decision.decided_at.desc(), Application.id.desc())
        .limit(limit)
    )
    return session.execute(stmt).all()
