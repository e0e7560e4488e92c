"""The queue page's search box: by reference, by words of the application (every word must
match), by organization name; on PostgreSQL (the suite's database) and on SQLite (the embedded
default); user text is never query syntax."""

from __future__ import annotations

from flask import Flask

from reviewapp.extensions import db as database
from reviewapp.review.services import QueueFilters, list_queue_rows
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory, content
from tests.functional.reviewer.test_precedents import sqlite_app  # noqa: F401 - fixture


def _three_applications() -> tuple:
    homework = ApplicationFactory(
        submitted=True,
        draft=content(
            title="Homework helper for schools",
            description="Explains maths exercises to pupils step by step.",
        ),
        submitter=UserFactory(organization=OrganizationFactory(name="Acme Learning")),
    )
    loans = ApplicationFactory(
        submitted=True,
        draft=content(
            title="Loan pre-screening assistant",
            description="Summarizes loan files for credit officers.",
        ),
        submitter=UserFactory(organization=OrganizationFactory(name="Prairie Credit Union")),
    )
    notes = ApplicationFactory(submitted=True)  # "Meeting notes summarizer"
    return homework, loans, notes


def _listed(page: str, *applications) -> set[str]:  # noqa: ANN002
    return {a.reference for a in applications if a.reference in page}


def test_search_by_reference_words_and_organization(login, db) -> None:
    homework, loans, notes = _three_applications()
    everyone = (homework, loans, notes)
    client = login(UserFactory(reviewer=True, organization=OrganizationFactory(name="T&S")))

    def search(q: str) -> set[str]:
        response = client.get("/queue", query_string={"q": q})
        assert response.status_code == 200
        return _listed(response.get_data(as_text=True), *everyone)

    assert search("homework") == {homework.reference}
    assert search("school") == {homework.reference}  # English stemming: "schools"
    assert search("LOAN officers") == {loans.reference}  # every word, any case
    assert search("loan homework") == set()  # all words must match
    assert search("credit union") == {loans.reference}  # the organization's name
    assert search(notes.reference.lower()) == {notes.reference}
    assert search(f"app{notes.id}") == {notes.reference}  # dash and zeros optional
    assert search('NEAR("x" OR *) -:^') == set()  # query syntax is plain text, no error
    assert search("") == {a.reference for a in everyone}
    page = client.get("/queue", query_string={"q": "homework"}).get_data(as_text=True)
    assert 'value="homework"' in page  # the box keeps what was typed
    too_long = client.get("/queue", query_string={"q": "x" * 201}).get_data(as_text=True)
    assert "Search is 201 characters long; the limit is 200. The search was ignored." in too_long
    assert _listed(too_long, *everyone) == {a.reference for a in everyone}


def test_search_combines_with_the_other_filters(login, db) -> None:
    homework, loans, notes = _three_applications()
    high = ApplicationFactory(submitted=True, high_tier=True)  # "Symptom checker"
    client = login(UserFactory(reviewer=True, organization=OrganizationFactory(name="T&S")))
    page = client.get("/queue", query_string={"q": "checker", "tier": "high"}).get_data(
        as_text=True
    )
    assert _listed(page, homework, loans, notes, high) == {high.reference}
    page = client.get("/queue", query_string={"q": "checker", "tier": "low"}).get_data(as_text=True)
    assert _listed(page, homework, loans, notes, high) == set()


def test_search_on_sqlite(sqlite_app: Flask) -> None:  # noqa: F811 - the imported fixture
    session = database.session
    homework, loans, notes = _three_applications()
    reviewer = UserFactory(reviewer=True, organization=OrganizationFactory(name="T&S"))
    session.flush()

    def search(q: str) -> set[int]:
        rows, _ = list_queue_rows(session, reviewer, QueueFilters(search=q))
        return {r.id for r in rows}

    assert search("homework") == {homework.id}
    assert search("loan officers") == {loans.id}
    assert search("loan homework") == set()
    assert search("credit union") == {loans.id}
    assert search(notes.reference) == {notes.id}
    assert search('NEAR("x" OR *) -:^') == set()
