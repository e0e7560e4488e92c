"""Length limits of every text input, defined once.

Browser forms (WTForms), the JSON API (marshmallow schemas and ``applications.schema``), the
services behind both, the CLI commands and importers, and the database column lengths all read
their limits from :data:`LIMITS`; ``docs/limits.md`` lists the same table and a test keeps the
two equal.

How a length is counted: the number of Unicode code points, i.e. Python ``len(str)``, of the
value after the form's normalisation:

* line breaks: a CR LF pair (what browsers send from a ``<textarea>``) is stored as LF and
  counts as one code point;
* fields with a strip filter (names, titles, keys, summaries, application content) are counted
  after removing surrounding white space;
* nothing else is changed: no NFC/NFKC normalisation, so ``e`` + U+0301 is two code points and
  an emoji ZWJ sequence such as 👩‍💻 is three.

At the limit a value is accepted; one code point over is refused with a message naming the field
and the limit. No input is ever shortened silently.

Forms do not get an HTML ``maxlength`` attribute: browsers count UTF-16 code units there (an
emoji counts two) and silently cut pasted text, which would contradict both rules above.
"""

from __future__ import annotations

from typing import Any

from wtforms.validators import ValidationError

# key -> maximum length in Unicode code points. Keys are "<thing>.<field>".
LIMITS: dict[str, int] = {
    # application content (browser form, API, CSV import)
    "application.title": 200,
    "application.description": 10_000,
    "application.benefits": 5_000,
    "application.safety_measures": 5_000,
    "application.product_url": 500,
    "application.reference": 40,
    "vocabulary.key": 100,  # a category / end user / domain / modality key (API)  # a typed reference, e.g. APP-000123 (lookups only)
    # developers
    "appeal.statement": 5_000,
    "mitigation.details": 5_000,
    "mitigation.link": 500,
    "clarification.message": 5_000,
    # reviewers
    "decision.reviewer_note": 5_000,
    "decision.rationale": 5_000,
    "decision.feedback_comment": 2_000,
    "note.body": 5_000,
    "reason.text": 2_000,  # escalate / hand back / mitigation request reason
    "queue.search": 200,  # the queue page's search box
    # accounts
    "user.email": 254,
    "user.name": 200,
    "user.password": 1_000,
    "organization.name": 200,
    "organization.join_code": 64,
    "token.name": 100,
    "webhook.url": 2_000,
    # admin: tiers and queues
    "tier.label": 100,
    "tier.description": 2_000,
    "queue.title": 200,
    "queue.description": 2_000,
    # admin: policy library
    "policy_section.key": 100,
    "policy_section.number": 50,
    "policy_section.title": 300,
    "policy_section.text": 50_000,
    "policy_section.change_summary": 500,
    "clarification.answer": 5_000,
    "template.key": 100,
    "template.title": 200,
    "template.body": 20_000,
    "requirement.title": 200,
    "requirement.description": 5_000,
    "requirement.parameters": 5_000,
    "requirement.key": 100,  # a safety requirement id named in a decision (API)
    "requirement.parameter_label": 200,
    "requirement.parameter_unit": 50,
    # admin: triage rules lab
    "ruleset.description": 500,
    "rule.key": 100,
    "rule.name": 200,
    "rule.description": 5_000,
    "rule.condition": 4_000,
    "rule.actions": 2_000,
    "rule.examples": 20_000,
    "keyword_list.name": 60,
    "keyword_list.description": 300,
    "keyword_list.phrases": 20_000,
    "triage_try.content": 50_000,
}


def limit(key: str) -> int:
    """The maximum length (code points) of input ``key``; KeyError for an unknown key."""
    return LIMITS[key]


def normalise_newlines(value: str) -> str:
    """``value`` with CR LF and lone CR line breaks turned into LF (how lengths are counted)."""
    return value.replace("\r\n", "\n").replace("\r", "\n")


def too_long_message(label: str, length: int, maximum: int) -> str:
    """The one wording of a too-long error, e.g. "Title is 201 characters long; the limit is
    200." (``label`` is the field's label as the user sees it)."""
    return f"{label} is {length:,} characters long; the limit is {maximum:,}."


class MaxLength:
    """WTForms validator: refuse a value longer than ``LIMITS[key]`` code points.

    Before counting it turns CR LF line breaks into LF in ``field.data`` (so the stored text and
    the count agree with what the user saw). The error names the field's label and the limit;
    the form re-renders with the typed text. No ``maxlength`` attribute is set (see module doc).
    """

    field_flags: dict[str, Any] = {}

    def __init__(self, key: str, *, stripped: bool = False) -> None:
        self.key = key
        self.max = LIMITS[key]
        self.stripped = stripped

    def __call__(self, form: Any, field: Any) -> None:
        if not isinstance(field.data, str):
            return
        if "\r" in field.data:
            field.data = normalise_newlines(field.data)
        # a field whose service strips surrounding white space is counted as it will be stored
        length = len(field.data.strip() if self.stripped else field.data)
        if length > self.max:
            label = field.label.text if field.label is not None else field.name
            raise ValidationError(too_long_message(label, length, self.max))


def max_length(key: str, *, stripped: bool = False) -> MaxLength:
    """A :class:`MaxLength` validator for input ``key`` (for ``validators=[...]``); with
    ``stripped``, surrounding white space (which the service strips) is not counted."""
    return MaxLength(key, stripped=stripped)


def api_length(key: str) -> Any:
    """A marshmallow ``Length`` validator for input ``key`` whose error states the limit."""
    from marshmallow import validate

    maximum = LIMITS[key]
    return validate.Length(
        max=maximum,
        error=f"is too long; the limit is {maximum:,} characters (Unicode code points).",
    )
