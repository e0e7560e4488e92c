"""Precedents: the decided applications most like the one under review, so alike cases are
decided alike.

The text compared is a revision's free text: title, description, intended benefits and safety
measures (the other content fields are vocabulary keys, numbers and a URL, which the triage
result already shows).

- PostgreSQL: the English ``tsvector`` of that text, indexed by the GIN expression index
  ``ix_revision_search`` (see ``Revision.__table_args__``; the queries reuse the index's own
  expression so the planner can use it). The source text's most telling lexemes are looked up in
  the index one by one; the revisions sharing the rarest ones (inverse document frequencies from
  the planner's statistics) become candidates, and the best CANDIDATES of those are ranked with
  ``ts_rank`` against the OR query of the lexemes, rarer lexemes weighing more. The index cannot
  hand ``ts_rank`` its vectors, so ranking re-parses each candidate's text (~0.2 ms): hence the
  two steps, which keep a call near a tenth of a second on 100,000 revisions instead of seconds.
- SQLite: the FTS5 table ``revision_fts`` (rowid = revision id; title and body columns), created by
  migration 7f3c1e2d9a10 and kept in step by triggers on ``revision``; the source text becomes an
  OR query of double-quoted words, ranked with ``bm25``.

User text never reaches SQL except as a bound parameter, and never reaches a query parser
unescaped: PostgreSQL lexemes are quoted as tsquery literals, FTS5 words as FTS5 strings.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnClause,
    ColumnElement,
    Float,
    Table,
    Text,
    bindparam,
    cast,
    column,
    func,
    literal_column,
    select,
    table,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, TSQUERY
from sqlalchemy.orm import Session

from reviewapp.applications.models import Application, Revision, Status
from reviewapp.auth.models import Permission, User
from reviewapp.review.models import Decision, Outcome

#: content fields whose text is compared (the same four as the index and the FTS5 triggers)
SEARCH_FIELDS = ("title", "description", "benefits", "safety_measures")
#: at most this many terms of the source text go into the OR query: enough to describe a use
#: case, few enough that the query stays selective and quick
MAX_TERMS = 32
#: a title term counts this many times a body term when choosing the query's terms
TITLE_BOOST = 2.0
#: PostgreSQL: lexemes are looked up in the index, rarest first, until they are expected to
#: match about this many revisions in all (the planner's statistics give each lexeme's share):
#: a few microseconds each, so common words cannot make a call slow
MAX_INDEX_HITS = 10_000
#: PostgreSQL: this many best candidates (by shared rare lexemes) are ranked with ts_rank
CANDIDATES = 30
#: a precedent shares at least this many of the searched words (fewer when the source text has
#: fewer): one common word in common is not similarity
MIN_SHARED_TERMS = 2
#: PostgreSQL: the best CANDIDATES * this many matching revisions are checked for being a
#: current revision of another organization's decided application
HITS_PER_CANDIDATE = 20
#: SQLite: FTS5 table holding the searchable text of every revision
FTS_TABLE = "revision_fts"
#: SQLite: bm25 column weights (title, body): a shared title word says more than a body word
BM25_WEIGHTS = (4.0, 1.0)
SEARCH_INDEX = "ix_revision_search"

#: a word: letters and digits (FTS5's unicode61 tokenizer splits on the rest); also read by
#: the queue search (review/search.py)
WORD_RE = re.compile(r"[^\W_]+")
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


def _pick_terms(
    counts: dict[str, int], in_title: set[str], weight: dict[str, float] | None = None
) -> list[str]:
    """Terms best first: by rarity (``weight``: inverse document frequency, when known) times
    TITLE_BOOST for title terms times 1 + ln(repetitions); then the longest (longer words tend to
    be rarer); alphabetical last, so the choice is stable."""

    def priority(term: str) -> float:
        boost = TITLE_BOOST if term in in_title else 1.0
        return (weight or {}).get(term, 1.0) * boost * (1.0 + math.log(counts[term]))

    return sorted(counts, key=lambda t: (-priority(t), -len(t), t))


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
    """An OR tsquery of ``lexemes`` taken literally: each one quoted (``'`` and ``\\`` doubled),
    so no character of user text can act as a tsquery operator (``& | ! <-> : * ( )``)."""

    def quote(lexeme: str) -> str:
        return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"

    return " | ".join(quote(lexeme) for lexeme in lexemes)


@dataclass(frozen=True)
class _LexemeStats:
    """How common lexemes are among revisions, from the planner's statistics of the index
    expression (ANALYZE: the migration runs one, autovacuum keeps them fresh)."""

    rows: float  # estimated number of revisions
    shares: dict[str, float]  # lexeme -> share of revisions containing it, the most common ones
    floor: float  # share assumed for every other lexeme: the rarest tracked share

    def expected_hits(self, lexeme: str) -> float:
        """Revisions expected to contain ``lexeme``; 0 without statistics (no budget then)."""
        return self.shares.get(lexeme, self.floor) * self.rows if self.shares else 0.0

    def idf(self, lexeme: str) -> float:
        """Inverse document frequency ln(1 + 1/share); 1 for all without statistics."""
        return math.log1p(1.0 / self.shares.get(lexeme, self.floor)) if self.shares else 1.0


def _lexeme_stats(session: Session) -> _LexemeStats:
    """The statistics of ``ix_revision_search``'s expression; empty before the first ANALYZE."""
    row = session.execute(
        text(
            "SELECT greatest(c.reltuples, 0) AS rows, "
            "s.most_common_elems::text::text[] AS elems, s.most_common_elem_freqs AS freqs "
            "FROM pg_class AS c LEFT JOIN pg_stats AS s "
            "ON s.schemaname = current_schema() AND s.tablename = :index "
            "WHERE c.oid = to_regclass('revision')"
        ),
        {"index": SEARCH_INDEX},
    ).first()
    if row is None or not row.elems or not row.freqs:
        return _LexemeStats(rows=0.0, shares={}, floor=1.0)
    # the frequencies list one share per element, then (tsvector statistics) their min and max
    shares = dict(zip(row.elems, row.freqs[: len(row.elems)], strict=True))
    return _LexemeStats(rows=float(row.rows), shares=shares, floor=min(shares.values()))


def _postgres_terms(session: Session, title: str, body: str) -> list[tuple[str, float]]:
    """(lexeme, idf) of the source text's most telling lexemes (english configuration: stemmed,
    stop words dropped), best first: at most MAX_TERMS, expected to match at most about
    MAX_INDEX_HITS revisions in all. A text made only of very common words can have none."""
    rows = session.execute(
        text(
            "SELECT v.lexeme, coalesce(array_length(v.positions, 1), 1) AS n, "
            "v.lexeme = ANY (tsvector_to_array(to_tsvector('english', :title))) AS in_title "
            "FROM unnest(to_tsvector('english', :body)) AS v"
        ),
        {"title": title, "body": body},
    ).all()
    if not rows:
        return []
    stats = _lexeme_stats(session)
    idf = {r.lexeme: stats.idf(r.lexeme) for r in rows}
    ordered = _pick_terms(
        {r.lexeme: r.n for r in rows}, {r.lexeme for r in rows if r.in_title}, idf
    )
    chosen: list[tuple[str, float]] = []
    hits = 0.0
    for lexeme in ordered:
        expected = stats.expected_hits(lexeme)
        if hits + expected > MAX_INDEX_HITS:
            continue  # too common to look up within budget; a rarer one may still fit
        chosen.append((lexeme, idf[lexeme]))
        hits += expected
        if len(chosen) == MAX_TERMS:
            break
    return chosen


#: ts_rank's weights of the labels D, C, B, A, which _rarity_labels gives by rarity
_RARITY_WEIGHTS = "'{0.25, 0.5, 0.7, 1.0}'::float4[]"


def _rarity_labels(terms: list[tuple[str, float]]) -> dict[str, list[str]]:
    """Label -> lexemes: A for the rarest (idf at least 0.8 of the largest), then B (0.6), C
    (0.4); the rest keep ts_rank's default label D. Without statistics every idf is equal: all A."""
    top = max(idf for _, idf in terms)
    labels: dict[str, list[str]] = {}
    for lexeme, idf in terms:
        ratio = idf / top
        label = "A" if ratio >= 0.8 else "B" if ratio >= 0.6 else "C" if ratio >= 0.4 else None
        if label:
            labels.setdefault(label, []).append(lexeme)
    return labels


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
    # 1. candidates from the index alone: one bitmap index scan per lexeme; a revision weighs
    #    the inverse document frequencies of the lexemes it shares
    term_rows = (
        func.unnest(
            bindparam("terms", [tsquery_literal([t]) for t, _ in terms], type_=ARRAY(Text)),
            bindparam("idfs", [w for _, w in terms], type_=ARRAY(Float)),
        )
        .table_valued("term", "idf")
        .render_derived(name="search_term")
    )
    matches = (
        select(Revision.id, Revision.application_id)
        .where(vector.bool_op("@@")(cast(term_rows.c.term, TSQUERY)))
        .lateral("matched")
    )
    weight = func.sum(term_rows.c.idf).label("weight")
    hits = (
        select(matches.c.id, matches.c.application_id, weight)
        .select_from(term_rows)
        .join(matches, true())
        .group_by(matches.c.id, matches.c.application_id)
        .having(func.count() >= min(MIN_SHARED_TERMS, len(terms)))
        # only the best revisions go on to the (primary key) look-ups of their applications;
        # plenty are left after the filters below unless most such cases are undecided
        .order_by(weight.desc(), matches.c.id.desc())
        .limit(max(CANDIDATES, limit) * HITS_PER_CANDIDATE)
        .subquery("hits")
    )
    candidates = (
        select(Application.id, hits.c.weight)
        .select_from(hits)
        # by primary key (application.current_revision_id has no index)
        .join(Application, Application.id == hits.c.application_id)
        .where(Application.current_revision_id == hits.c.id, *conditions)
        .order_by(hits.c.weight.desc(), Application.id.desc())
        .limit(max(CANDIDATES, limit))
        .subquery("candidates")
    )
    # 2. rank those few with ts_rank (which re-parses their text: ~0.2 ms each). ts_rank knows
    #    no document frequencies, so the candidate's lexemes are first labelled A-D by rarity
    #    (setweight) and the labels weighted; normalization 1 divides by 1 + log(document
    #    length), so long texts do not win by bulk.
    document: ColumnElement[Any] = vector
    for label, lexemes in _rarity_labels(terms).items():
        document = func.setweight(
            document,
            literal_column(f"'{label}'"),
            bindparam(f"rarity_{label}", lexemes, type_=ARRAY(Text)),
        )
    query = cast(bindparam("query", tsquery_literal([t for t, _ in terms])), TSQUERY)
    score = func.ts_rank(literal_column(_RARITY_WEIGHTS), document, query, 1).label("score")
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
        .select_from(candidates)
        .join(Application, Application.id == candidates.c.id)
        .join(Revision, Revision.id == Application.current_revision_id)
        .join(Decision, Decision.id == Application.last_decision_id)
        .order_by(score.desc(), Decision.decided_at.desc(), Application.id.desc())
        .limit(limit)
    )
    return session.execute(stmt).all()


# --- SQLite -------------------------------------------------------------------------------------


def fts5_literal(words: Sequence[str], *, every: bool = False) -> str:
    """An FTS5 query of ``words``, each one an FTS5 string (double-quoted, ``"`` doubled), so
    ``NEAR``, ``AND``, ``-``, ``*``, ``^``, ``:`` and parentheses in user text are plain text.
    Any word matches (OR); with ``every``, all of them must (FTS5's implicit AND)."""
    joiner = " " if every else " OR "
    return joiner.join('"' + word.replace('"', '""') + '"' for word in words)


def _sqlite_terms(title: str, body: str) -> list[str]:
    """The source text's words (lower-cased, stop words dropped), best first."""
    words = [w.lower() for w in WORD_RE.findall(body)]
    counts = Counter(w for w in words if len(w) > 1 and w not in _STOPWORDS)
    return _pick_terms(dict(counts), {w.lower() for w in WORD_RE.findall(title)})[:MAX_TERMS]


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
    # the FTS5 table's hidden column of its own name, for MATCH and bm25
    fts: ColumnClause[Any] = literal_column(FTS_TABLE)
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
            Revision.content,
        )
        .select_from(fts_table)
        .join(Revision, Revision.id == fts_table.c.rowid)
        # by primary key: joined on application.current_revision_id, which has no index, SQLite
        # would scan every application for every match
        .join(Application, Application.id == Revision.application_id)
        .join(Decision, Decision.id == Application.last_decision_id)
        .where(
            fts.op("MATCH")(bindparam("query", fts5_literal(terms))),
            Application.current_revision_id == Revision.id,
            *conditions,
        )
        .order_by(bm25, Decision.decided_at.desc(), Application.id.desc())
        .limit(max(CANDIDATES, limit))
    )
    wanted, needed = set(terms), min(MIN_SHARED_TERMS, len(terms))

    def shared(content: dict[str, Any]) -> int:
        cand_title, cand_body = _source_text(content)
        return len(wanted & {w.lower() for w in WORD_RE.findall(cand_title + " " + cand_body)})

    return [row for row in session.execute(stmt).all() if shared(row.content) >= needed][:limit]
