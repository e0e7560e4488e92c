"""The application content schema: fields, types, length limits and vocabularies.

One definition serves the browser form, the JSON API, the importer and the triage engine, so a
field means the same thing everywhere. Text lengths are counted in Unicode code points
(``len(str)``), after stripping surrounding white space.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from reviewapp.errors import ValidationFailed
from reviewapp.limits import LIMITS

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


@dataclass(frozen=True)
class Vocabularies:
    """Allowed values (key -> label) of the list fields, in display order."""

    categories: dict[str, str]
    end_users: dict[str, str]
    domains: dict[str, str]
    modalities: dict[str, str]


@functools.cache
def load_vocabularies(path: str | None = None) -> Vocabularies:
    """Read ``config/vocabularies.yaml`` (or ``path``); cached per path."""
    data = yaml.safe_load(
        Path(path or CONFIG_DIR / "vocabularies.yaml").read_text(encoding="utf-8")
    )
    return Vocabularies(
        categories=dict(data["categories"]),
        end_users=dict(data["end_users"]),
        domains=dict(data["domains"]),
        modalities=dict(data["modalities"]),
    )


# name -> maximum length in code points (defined in reviewapp.limits)
TEXT_LIMITS: dict[str, int] = {
    name: LIMITS[f"application.{name}"]
    for name in ("title", "description", "benefits", "safety_measures", "product_url")
}
#: Unicode bidirectional embedding, override and isolate controls (UAX #9): refused in one-line
#: fields, where they could reorder how a title reads
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: text fields that must be one line (the title is an email subject; the URL is a URL)
ONE_LINE_FIELDS = ("title", "product_url")
LINE_BREAKS = ("\n", "\r", "\u2028", "\u2029")
LIST_FIELDS = ("end_users", "domains", "modalities")
MAX_MONTHLY_REQUESTS = 10**12
CONTENT_FIELDS = (
    "title",
    "category",
    "description",
    "benefits",
    "end_users",
    "domains",
    "modalities",
    "monthly_requests",
    "human_review_of_outputs",
    "safety_measures",
    "product_url",
)
# Fields a developer must fill before submitting (a draft may be incomplete).
REQUIRED_FOR_SUBMIT = (
    "title",
    "category",
    "description",
    "benefits",
    "end_users",
    "domains",
    "modalities",
    "monthly_requests",
    "human_review_of_outputs",
)
FIELD_LABELS = {
    "title": "Title",
    "category": "Use-case category",
    "description": "Description",
    "benefits": "Intended benefits",
    "end_users": "End users",
    "domains": "Domains",
    "modalities": "Modalities",
    "monthly_requests": "Expected monthly requests",
    "human_review_of_outputs": "Human review of outputs",
    "safety_measures": "Safety measures in place",
    "product_url": "Product URL",
}


def empty_content() -> dict[str, Any]:
    """A blank application content dict with every field present."""
    return {
        "title": "",
        "category": None,
        "description": "",
        "benefits": "",
        "end_users": [],
        "domains": [],
        "modalities": [],
        "monthly_requests": None,
        "human_review_of_outputs": None,
        "safety_measures": "",
        "product_url": "",
    }


def clean_content(
    raw: dict[str, Any], *, for_submit: bool, partial: bool = False
) -> dict[str, Any]:
    """Validate and normalise application content.

    Args:
        raw: field name -> value as received (JSON types). Unknown keys are refused.
        for_submit: also require every field of REQUIRED_FOR_SUBMIT.
        partial: only the keys present are validated and returned (draft edits).
    Returns:
        A new dict with stripped strings, de-duplicated lists in vocabulary order.
    Raises:
        ValidationFailed: with ``fields`` naming each bad field and what is wrong.
    """
    vocab = load_vocabularies()
    errors: dict[str, str] = {}
    unknown = sorted(set(raw) - set(CONTENT_FIELDS))
    for key in unknown:
        errors[key] = "unknown field"
    out: dict[str, Any] = {} if partial else empty_content()
    for name in CONTENT_FIELDS:
        if partial and name not in raw:
            continue
        value = raw.get(name)
        try:
            out[name] = _clean_field(name, value, vocab)
        except ValueError as exc:
            errors[name] = str(exc)
    if not partial and "title" not in errors and not out.get("title"):
        errors["title"] = "Give the application a title (drafts need one too)."
    if for_submit:
        for name in REQUIRED_FOR_SUBMIT:
            if name not in errors and out.get(name) in (None, "", []):
                errors[name] = f"{FIELD_LABELS[name]} is required to submit."
    if errors:
        raise ValidationFailed("The application has invalid fields.", fields=errors)
    return out


def unstorable_character(text: str) -> str | None:
    """A description of the first character we refuse to store, or None.

    Refused: lone UTF-16 surrogates (not valid Unicode; PostgreSQL and JSON tools choke on them)
    and control characters other than tab, line feed and carriage return (NUL included).
    """
    for char in text:
        code = ord(char)
        if 0xD800 <= code <= 0xDFFF:
            return f"a lone surrogate U+{code:04X}"
        if (code < 32 and char not in "\t\n\r") or 0x7F <= code < 0xA0:
            return f"the control character U+{code:04X}"
    return None


def _clean_field(name: str, value: Any, vocab: Vocabularies) -> Any:
    if name in TEXT_LIMITS:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ValueError("must be a string")
        unstorable = unstorable_character(value)
        if unstorable:
            raise ValueError(f"contains {unstorable}, which cannot be stored; remove it")
        value = value.strip()
        if name in ONE_LINE_FIELDS and any(c in value for c in LINE_BREAKS):
            # a title goes into email subjects, where a line break cannot be
            raise ValueError("must be a single line; remove the line breaks")
        if name in ONE_LINE_FIELDS:
            control = next((c for c in value if c in BIDI_CONTROLS), None)
            if control is not None:
                # an override or isolate makes a title display as other text than it is (in
                # the queue, in email subjects): "Trojan Source", CVE-2021-42574
                raise ValueError(
                    f"contains the invisible direction control U+{ord(control):04X}, which can "
                    "make it display as something else; remove it (right-to-left letters need "
                    "no control characters)"
                )
        limit = TEXT_LIMITS[name]
        if len(value) > limit:
            raise ValueError(f"is {len(value)} characters long; the limit is {limit}.")
        if name == "product_url" and value:
            parsed = urlparse(value)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ValueError("must be an http:// or https:// URL")
        return value
    if name == "category":
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise ValueError("must be a string; see GET /api/v1/vocabularies")
        if value not in vocab.categories:
            raise ValueError(f"unknown value {value!r}; see GET /api/v1/vocabularies")
        return value
    if name in LIST_FIELDS:
        allowed: dict[str, str] = getattr(vocab, name)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("must be a list of strings")
        bad = [v for v in value if v not in allowed]
        if bad:
            raise ValueError(
                f"unknown value(s) {', '.join(map(repr, bad))}; see GET /api/v1/vocabularies"
            )
        chosen = set(value)
        return [k for k in allowed if k in chosen]
    if name == "monthly_requests":
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be a whole number")
        if value < 0 or value > MAX_MONTHLY_REQUESTS:
            raise ValueError(f"must be between 0 and {MAX_MONTHLY_REQUESTS}")
        return value
    if name == "human_review_of_outputs":
        if value is None:
            return None
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    raise AssertionError(name)  # pragma: no cover - CONTENT_FIELDS and branches agree
