"""Unicode comes back exactly as sent (no NFC/NFKC, nothing dropped or replaced) through the
browser forms, the API, precedent search (PostgreSQL FTS and SQLite FTS5), emails and the CSV
downloads. The only documented change is CR LF -> LF in text areas (docs/limits.md)."""

from __future__ import annotations

import csv
import email
import email.policy
import io
import unicodedata

import pytest
from sqlalchemy import select

from reviewapp.applications.models import Application
from reviewapp.extensions import db as database
from reviewapp.notifications.email import OUTBOX_MEMORY
from reviewapp.policies.models import PolicySection
from reviewapp.review.models import Citation, Decision, Note
from reviewapp.review.precedents import find_precedents
from tests.conftest import post_form
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory
from tests.functional.api.test_api import token_for
from tests.functional.developer.test_developer import FORM
from tests.functional.reviewer.test_precedents import _case, sqlite_app  # noqa: F401

# emoji, precomposed é and e + combining acute (both kept as sent), Hebrew and Arabic (right to
# left), 4-byte mathematical letters, and a zero-width-joiner sequence (woman + ZWJ + laptop)
TEXT = "Launch 🚀 café cafe\u0301 שלום مرحبا 𝔘𝔫𝔦 👩\u200d💻"
PIECES = ["🚀", "e\u0301", "שלום", "مرحبا", "𝔘𝔫𝔦", "👩\u200d💻"]


def test_the_sample_is_not_normalised_already() -> None:
    # guards the test itself: NFC or NFKC would change it, so a normalising path would fail
    assert unicodedata.normalize("NFC", TEXT) != TEXT
    assert unicodedata.normalize("NFKC", TEXT) != TEXT
    assert all(piece in TEXT for piece in PIECES)


def _parsed(message) -> email.message.EmailMessage:  # noqa: ANN001
    """The message as a receiver sees it: serialised to bytes and parsed again."""
    return email.message_from_bytes(bytes(message), policy=email.policy.default)


def test_application_form_stores_shows_and_emails_the_text_unchanged(login, db) -> None:
    developer = UserFactory()
    client = login(developer)
    description = f"{TEXT}\r\nSecond line {TEXT}"
    response = post_form(
        client,
        "/applications/new",
        {**FORM, "title": TEXT, "description": description, "submit_application": "1"},
        token_from="/applications/new",
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:1000]
    application = db.scalars(select(Application).where(Application.submitter == developer)).one()
    assert application.draft["title"] == TEXT
    assert application.draft["description"] == description.replace("\r\n", "\n")
    page = client.get(f"/applications/{application.reference}").get_data(as_text=True)
    assert TEXT in page
    (received,) = [m for m in OUTBOX_MEMORY if "Received" in m["Subject"]]
    parsed = _parsed(received)
    assert parsed["Subject"] == f"[{application.reference}] Received (revision 1): {TEXT}"
    assert parsed.get_content_charset() == "utf-8"


def test_a_too_long_form_value_is_shown_again_unchanged(login, db) -> None:
    client = login(UserFactory())
    title = TEXT * 20  # over 200 code points
    response = post_form(
        client,
        "/applications/new",
        {**FORM, "title": title, "save": "1"},
        token_from="/applications/new",
    )
    assert response.status_code == 422
    assert f'value="{title}"' in response.get_data(as_text=True)


def test_notes_and_decisions_keep_the_text_and_the_email_carries_it(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    reviewer = UserFactory(reviewer=True)
    client = login(reviewer)
    post_form(client, "/queue/claim-next", token_from="/queue")
    page = f"/review/{application.reference}"
    response = post_form(client, f"{page}/notes", {"body": TEXT}, token_from=page)
    assert response.status_code == 302
    assert db.scalars(select(Note.body)).one() == TEXT
    assert TEXT in client.get(page).get_data(as_text=True)

    db.expire_all()
    response = post_form(
        client,
        f"{page}/decide",
        {
            "outcome": "reject",
            "citations": ["usage-1.5"],
            "template": "reject-prohibited",
            "reviewer_note": TEXT,
            "rationale": TEXT,
            "version": str(application.version),
        },
        token_from=page,
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    decision = db.scalars(select(Decision)).one()
    assert decision.rationale == TEXT and TEXT in decision.message
    (sent,) = [m for m in OUTBOX_MEMORY if m["To"] == application.submitter.email]
    parsed = _parsed(sent)
    assert parsed["Subject"].endswith(f": {application.title}")
    assert TEXT in parsed.get_content()


def test_api_submit_and_read_back(client, db) -> None:
    headers = token_for(db, UserFactory())
    body = {**{k: v for k, v in FORM.items() if k != "monthly_requests"}, "title": TEXT}
    body.update(description=TEXT, benefits=TEXT, safety_measures=TEXT, monthly_requests=5)
    body["human_review_of_outputs"] = False
    created = client.post("/api/v1/applications", json={**body, "submit": True}, headers=headers)
    assert created.status_code == 201, created.json
    read = client.get(f"/api/v1/applications/{created.json['reference']}", headers=headers)
    assert read.mimetype == "application/json"
    assert read.json["title"] == TEXT
    for name in ("title", "description", "benefits", "safety_measures"):
        assert read.json["content"][name] == TEXT


SEARCHABLE = {
    "title": f"Assistant שלום مرحبا 𝔘𝔫𝔦 {TEXT}",
    "description": "Greets people in Hebrew and Arabic: שלום, مرحبا; signs 𝔘𝔫𝔦 🚀.",
    "benefits": "Friendly greetings 👩\u200d💻.",
    "safety_measures": "Moderation of greetings.",
}


def _precedent_round_trip(session) -> None:  # noqa: ANN001
    reviewer = UserFactory(reviewer=True, organization=OrganizationFactory(name="Trust team"))
    earlier = _case(session, OrganizationFactory(), SEARCHABLE, outcome="reject")
    source = _case(
        session,
        OrganizationFactory(),
        {**SEARCHABLE, "title": "New שלום مرحبا 𝔘𝔫𝔦 assistant", "benefits": "Greetings."},
        outcome=None,
    )
    found = find_precedents(session, reviewer, source)
    assert [p.reference for p in found] == [earlier.reference]
    assert found[0].title == SEARCHABLE["title"]


def test_precedent_search_on_the_test_database_finds_and_returns_unicode(app, db) -> None:
    # PostgreSQL full-text search under CI (the suite fails there without PostgreSQL)
    with app.app_context():
        _precedent_round_trip(db)


def test_precedent_search_on_sqlite_fts5_finds_and_returns_unicode(sqlite_app) -> None:  # noqa: F811
    _precedent_round_trip(database.session)


@pytest.mark.parametrize("chart", ["throughput", "citations"])
def test_csv_downloads_are_utf8_without_bom_and_keep_the_text(login, db, chart) -> None:
    # the CSV downloads that carry user text: reviewer names and policy section titles
    reviewer = UserFactory(reviewer=True, name=TEXT)
    application = ApplicationFactory(submitted=True)
    decision = Decision(
        application_id=application.id,
        revision_id=application.current_revision_id,
        outcome="reject",
        message="ok",
        reviewer_id=reviewer.id,
        final=True,
    )
    db.add(decision)
    section = db.scalars(select(PolicySection).where(PolicySection.key == "usage-1.5")).one()
    section.title = TEXT
    db.flush()
    db.add(Citation(decision_id=decision.id, policy_section_version_id=section.versions[-1].id))
    db.flush()
    response = login(UserFactory(admin=True)).get(f"/admin/metrics/{chart}.csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    raw = response.get_data()
    assert not raw.startswith(b"\xef\xbb\xbf")  # no BOM (documented in docs/limits.md)
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
    assert any(cell.endswith(TEXT) for row in rows for cell in row)  # "§1.5 <title>" too


def test_a_title_with_a_line_break_is_refused_not_mangled(client, db) -> None:
    headers = token_for(db, UserFactory())
    for title in ("two\nlines", "two\r\nlines", "two\u2028lines"):
        response = client.post("/api/v1/applications", json={"title": title}, headers=headers)
        assert response.status_code == 422
        assert response.json["error"]["fields"]["title"] == (
            "must be a single line; remove the line breaks"
        )


@pytest.mark.parametrize("control", ["\u202e", "\u202d", "\u2066", "\u2069", "\u202b"])
def test_a_title_with_a_direction_control_is_refused_naming_it(client, login, db, control) -> None:
    """A bidirectional override or isolate in a title could make the queue and the email
    subject read differently from what was filed ("Trojan Source"); it is refused with the
    code point named, in the API and the browser form (text kept). Right-to-left letters need
    no control and are accepted as they are."""
    from tests.factories import content

    dev = UserFactory()
    title = f"Homework helper {control}rekcah"
    api = client.post("/api/v1/applications", json=content(title=title), headers=token_for(db, dev))
    assert api.status_code == 422
    assert f"U+{ord(control):04X}" in api.json["error"]["fields"]["title"]
    browser = login(dev)
    page = post_form(
        browser,
        "/applications/new",
        {**FORM, "title": title, "save": "1"},
        token_from="/applications/new",
    )
    text = page.get_data(as_text=True)
    assert page.status_code in (200, 422) and f"U+{ord(control):04X}" in text
    assert f'value="{title}"' in text  # what was typed is kept
    assert db.scalar(select(Application).where(Application.submitter_id == dev.id)) is None
    hebrew = client.post(
        "/api/v1/applications", json=content(title="שלום helper"), headers=token_for(db, dev)
    )
    assert hebrew.status_code == 201 and hebrew.json["title"] == "שלום helper"
