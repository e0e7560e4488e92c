"""The queue page's search box: find an application by reference, words of its current
revision, or its organization's name.

- ``APP-000123`` (any case, with or without the dash and leading zeros) finds that
  application.
- Otherwise every word must match (AND), in the current revision's title, description,
  benefits or safety measures (full-text, with the same index as precedent search: PostgreSQL's
  English ``tsvector`` GIN index, so "schools" finds "school"; SQLite's FTS5 table
  ``revision_fts``), or the whole text must appear in the organization's name (case-insensitive).
  User text is never query syntax: words are passed as literals.

Other filters, the conflict-of-interest rule and the queue order apply as usual: the search only
narrows the queue (review.services.queue_statement).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, bindparam, false, func, literal_column, or_, select, table
from sqlalchemy.orm import Session

from reviewapp.applications.models import Application, Revision
from reviewapp.auth.models import Organization
from reviewapp.db import is_postgres
from reviewapp.limits import LIMITS
from reviewapp.review.precedents import FTS_TABLE, PG_VECTOR, WORD_RE, fts5_literal

#: longest search text accepted (code points, docs/limits.md); the form says so next to the box
SEARCH_MAX_LENGTH = LIMITS["queue.search"]
#: at most this many words are searched (all must match)
MAX_WORDS = 10

_REFERENCE = re.compile(r"(?i)APP-?0*(\d{1,10})")


def search_condition(session: Session, text: str) -> ColumnElement[bool]:
    """A WHERE condition on ``application`` rows matching the search ``text`` (see the module
    docstring). Text without a reference, a word or a name to look for matches nothing.

    Args:
        session: bound to PostgreSQL or SQLite (decides the full-text flavour).
        text: what the reviewer typed, at most SEARCH_MAX_LENGTH characters (the form checks).
    """
    a = Application.__table__.c
    typed = text.strip()
    reference = _REFERENCE.fullmatch(typed)
    if reference is not None:
        return a.id == int(reference.group(1))
    words = [w.lower() for w in WORD_RE.findall(typed)][:MAX_WORDS]
    by_name = a.organization_id.in_(
        select(Organization.id).where(Organization.name.icontains(typed, autoescape=True))
    )
    if not words:
        return by_name if typed else false()
    return or_(a.current_revision_id.in_(_revisions_with_words(session, words)), by_name)


def _revisions_with_words(session: Session, words: list[str]) -> Any:
    """SELECT of the ids of revisions whose searchable text has every one of ``words``."""
    if is_postgres(session):
        # plainto_tsquery ANDs the words after stemming them; the vector is the index's own
        # expression, so PostgreSQL answers from the GIN index
        vector: Any = literal_column(PG_VECTOR)
        query = func.plainto_tsquery("english", bindparam("queue_search", " ".join(words)))
        return select(Revision.id).where(vector.bool_op("@@")(query))
    fts = table(FTS_TABLE, literal_column("rowid"))
    literal = fts5_literal(words, every=True)  # all of them must match
    return (
        select(literal_column("rowid"))
        .select_from(fts)
        .where(literal_column(FTS_TABLE).op("MATCH")(bindparam("queue_search", literal)))
    )
