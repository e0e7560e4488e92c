"""Every text input has one documented length limit (reviewapp/limits.py = docs/limits.md),
counted in Unicode code points: at the limit it is accepted, one over it is refused with a
message naming the field and the limit, in browser forms and in the JSON API."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
from flask_wtf import FlaskForm
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import select
from wtforms import HiddenField, StringField

import reviewapp
from reviewapp.api.schemas import INPUT_SCHEMAS
from reviewapp.limits import LIMITS, MaxLength, too_long_message
from tests.conftest import post_form
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

ROOT = Path(__file__).resolve().parents[2]
WIDE = "𝔘"  # one code point, four UTF-8 bytes, two UTF-16 code units


def _all_form_classes() -> list[type[FlaskForm]]:
    # the app's own import order first: pygal installs an import hook that makes a later first
    # import of linkify_it (via markdown_it) raise an ImportWarning
    reviewapp.create_app  # noqa: B018
    importlib.import_module("reviewapp.policies.services")
    package = Path(reviewapp.__file__).parent  # some subpackages have no __init__.py
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        importlib.import_module(".".join(p for p in parts if p != "__init__"))
    found: list[type[FlaskForm]] = []
    todo = list(FlaskForm.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("reviewapp.") and cls not in found:
            found.append(cls)
    return sorted(found, key=lambda c: (c.__module__, c.__name__))


FORMS = _all_form_classes()


def _text_fields(app: Any) -> list[tuple[type[FlaskForm], str, str]]:
    """(form class, field name, limit key) of every text field of every form. Hidden fields
    are excluded: they carry ids/versions/fingerprints that the views parse strictly."""
    out = []
    with app.test_request_context():
        for cls in FORMS:
            form = cls(meta={"csrf": False})
            for field in form:
                if isinstance(field, StringField) and not isinstance(field, HiddenField):
                    keys = [v.key for v in field.validators if isinstance(v, MaxLength)]
                    out.append((cls, field.name, keys[0] if len(keys) == 1 else ""))
    return out


def test_form_discovery_finds_the_forms() -> None:
    names = {cls.__name__ for cls in FORMS}
    assert {"ApplicationForm", "NoteForm", "DecisionForm", "RuleForm", "InviteForm"} <= names


def test_every_text_field_of_every_form_has_exactly_one_documented_limit(app) -> None:
    missing = [f"{c.__name__}.{name}" for c, name, key in _text_fields(app) if not key]
    assert missing == [], "text fields without a single max_length(...) validator"


def _form_cases() -> list[Any]:
    # collected at import time without an app: instantiate forms lazily in the test instead
    return [pytest.param(cls, id=cls.__name__) for cls in FORMS]


def _form(form_class: type[FlaskForm]) -> FlaskForm:
    """The form bound to the current request and validated (choices set per request by the
    views are left empty here)."""
    form = form_class(meta={"csrf": False})
    for field in form:
        if getattr(field, "choices", ()) is None:
            field.choices = []
    form.validate()
    return form


@pytest.mark.parametrize("form_class", _form_cases())
def test_each_text_field_accepts_the_limit_and_refuses_one_more(app, form_class) -> None:
    fields_ = [(name, key) for c, name, key in _text_fields(app) if c is form_class]
    for name, key in fields_:
        limit = LIMITS[key]
        with app.test_request_context(method="POST", data={name: WIDE * limit}):
            form = _form(form_class)
            field = form[name]
            assert not any("the limit is" in e for e in field.errors), (name, field.errors)
            assert field.data == WIDE * limit  # kept as typed
        with app.test_request_context(method="POST", data={name: WIDE * (limit + 1)}):
            form = _form(form_class)
            field = form[name]
            assert too_long_message(field.label.text, limit + 1, limit) in field.errors, name
            assert field.data == WIDE * (limit + 1)  # not truncated


def test_crlf_from_a_textarea_is_stored_as_lf_and_counted_once(app) -> None:
    from reviewapp.review.forms import NoteForm

    limit = LIMITS["note.body"]
    text = ("a" * 99 + "\r\n") * (limit // 100)  # exactly `limit` code points once LF
    with app.test_request_context(method="POST", data={"body": text}):
        form = NoteForm(meta={"csrf": False})
        assert form.validate()
        assert form.body.data == text.replace("\r\n", "\n") and len(form.body.data) == limit


def test_no_maxlength_attribute_is_rendered(app) -> None:
    # browsers count UTF-16 code units in maxlength and silently cut pasted text
    from reviewapp.applications.forms import ApplicationForm

    with app.test_request_context():
        assert "maxlength" not in ApplicationForm(meta={"csrf": False}).title()


# --- docs/limits.md is the same table ----------------------------------------------------------

_ROW = re.compile(r"^\|\s*`([a-z_]+\.[a-z_]+)`\s*\|\s*([\d,]+)\s*\|", re.MULTILINE)


def test_docs_table_matches_the_constants() -> None:
    text = (ROOT / "docs" / "limits.md").read_text(encoding="utf-8")
    documented = {key: int(value.replace(",", "")) for key, value in _ROW.findall(text)}
    assert documented == LIMITS


def test_database_columns_are_as_long_as_the_limits() -> None:
    from reviewapp.auth.models import ApiToken, Organization, User
    from reviewapp.policies.models import (
        PolicySection,
        PolicySectionVersion,
        ResponseTemplate,
        SafetyRequirement,
    )
    from reviewapp.review.models import Queue, RiskTier
    from reviewapp.triage.models import Rule, RulesetVersion
    from reviewapp.webhooks.models import WebhookEndpoint

    pairs = [
        (Organization.name, "organization.name"),
        (Organization.join_code, "organization.join_code"),
        (User.email, "user.email"),
        (User.name, "user.name"),
        (ApiToken.name, "token.name"),
        (RiskTier.label, "tier.label"),
        (Queue.title, "queue.title"),
        (PolicySection.key, "policy_section.key"),
        (PolicySection.number, "policy_section.number"),
        (PolicySection.title, "policy_section.title"),
        (PolicySectionVersion.change_summary, "policy_section.change_summary"),
        (SafetyRequirement.key, "requirement.key"),
        (SafetyRequirement.title, "requirement.title"),
        (ResponseTemplate.key, "template.key"),
        (ResponseTemplate.title, "template.title"),
        (RulesetVersion.description, "ruleset.description"),
        (Rule.key, "rule.key"),
        (Rule.name, "rule.name"),
        (WebhookEndpoint.url, "webhook.url"),
    ]
    assert [(str(c), c.type.length) for c, _ in pairs] == [(str(c), LIMITS[k]) for c, k in pairs]


# --- API schemas -------------------------------------------------------------------------------


def _string_paths(schema: Schema) -> list[tuple[str, fields.Field]]:
    """(path, field) of every text field in a request schema (list items as ``name.0``)."""
    out: list[tuple[str, fields.Field]] = []
    for name, field in schema.fields.items():
        if any(isinstance(v, validate.OneOf) for v in field.validators):
            continue  # one of a few fixed values
        if isinstance(field, fields.String):
            out.append((name, field))
        elif isinstance(field, fields.List) and isinstance(field.inner, fields.String):
            out.append((f"{name}.0", field.inner))
    return out


_API_CASES = [
    pytest.param(cls, path, id=f"{cls.__name__}.{path}")
    for cls in INPUT_SCHEMAS
    for path, _ in _string_paths(cls())
]


def _limit_of(field: fields.Field) -> int | None:
    maxima = [v.max for v in field.validators if isinstance(v, validate.Length)]
    return maxima[0] if len(maxima) == 1 else None


@pytest.mark.parametrize(("schema_class", "path"), _API_CASES)
def test_api_text_field_accepts_the_limit_and_refuses_one_more(schema_class, path) -> None:
    schema = schema_class()
    field = dict(_string_paths(schema))[path]
    limit = _limit_of(field)
    assert limit is not None and limit in LIMITS.values(), f"{path} has no documented limit"
    name, _, index = path.partition(".")

    def body(n: int) -> dict[str, Any]:
        value = WIDE * n
        return {name: [value] if index else value}

    def errors(n: int) -> dict[str, Any]:
        try:
            schema.load(body(n), partial=True)
        except ValidationError as exc:
            return exc.normalized_messages()
        return {}

    at_limit = errors(limit).get(name)
    assert at_limit is None, at_limit
    over = errors(limit + 1)[name]
    message = over[0] if index else over  # list items: {0: [...]}
    message = message[0] if isinstance(message, list) else message
    assert f"the limit is {limit:,} characters" in str(message)


def test_api_names_the_field_path_and_limit(client, db) -> None:
    from tests.functional.api.test_api import token_for

    headers = token_for(db, UserFactory())
    response = client.post("/api/v1/applications", json={"title": WIDE * 201}, headers=headers)
    assert response.status_code == 422
    assert response.json["error"]["fields"]["title"] == (
        "is 201 characters long; the limit is 200."
    )
    ok = client.post("/api/v1/applications", json={"title": WIDE * 200}, headers=headers)
    assert ok.status_code == 201 and ok.json["content"]["title"] == WIDE * 200


def test_browser_note_over_the_limit_keeps_the_text_and_names_the_field(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    client = login(UserFactory(reviewer=True))
    page = f"/review/{application.reference}"
    text = WIDE * (LIMITS["note.body"] + 1)
    response = post_form(client, f"{page}/notes", {"body": text}, token_from=page)
    body = response.get_data(as_text=True)
    assert "Add an internal note is 5,001 characters long; the limit is 5,000." in body
    assert text in body


# --- inline (hand-written) forms: mitigation answers -------------------------------------------


def test_inline_mitigation_answer_counts_like_the_forms(login, db) -> None:
    from reviewapp.review.models import RequiredSafetyRequirement
    from tests.functional.reviewer.test_mitigations import answer, mitigations_requested

    application, _ = mitigations_requested(login, db, OrganizationFactory())
    dev = login(application.submitter)
    limit = LIMITS["mitigation.details"]
    over = WIDE * (limit + 1)
    response = answer(dev, application, **{"details-age-assurance": over})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert f"The description is {limit + 1} characters long; the limit is {limit}." in page
    assert over in page  # kept as typed
    at_limit = (WIDE * 99 + "\r\n") * (limit // 100)  # `limit` code points once CR LF -> LF
    assert answer(dev, application, **{"details-age-assurance": at_limit}).status_code == 302
    db.expire_all()
    stored = [r.answer for r in db.scalars(select(RequiredSafetyRequirement)) if r.answer]
    assert at_limit.replace("\r\n", "\n").strip() in [a["details"] for a in stored]


def test_application_form_counts_a_title_without_its_surrounding_spaces(login, db) -> None:
    """The service strips application content before storing it, so the form counts the
    title the same way: the limit plus surrounding spaces is accepted (and stored stripped),
    one more letter is refused."""
    from reviewapp.applications.models import Application
    from reviewapp.limits import LIMITS
    from tests.conftest import post_form
    from tests.factories import UserFactory
    from tests.functional.developer.test_developer import FORM

    limit = LIMITS["application.title"]
    developer = UserFactory()
    client = login(developer)
    padded = "  " + "t" * limit + "  "
    saved = post_form(
        client,
        "/applications/new",
        {**FORM, "title": padded, "save": "1"},
        token_from="/applications/new",
    )
    assert saved.status_code == 302
    stored = db.scalars(select(Application).where(Application.submitter_id == developer.id))
    assert [a.title for a in stored] == ["t" * limit]
    over = post_form(
        client,
        "/applications/new",
        {**FORM, "title": " " + "u" * (limit + 1), "save": "1"},
        token_from="/applications/new",
    )
    assert over.status_code in (200, 422)
    assert f"is {limit + 1} characters long; the limit is {limit}" in over.get_data(as_text=True)
