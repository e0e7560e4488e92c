"""Reviewer forms: queue filters and the decision form."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    HiddenField,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    DataRequired,
    NumberRange,
    Optional,
    Regexp,
    StopValidation,
)

from reviewapp.applications.forms import MultiCheckboxField, choices
from reviewapp.limits import max_length
from reviewapp.review.models import Outcome
from reviewapp.review.services import QUEUE_MAX_AGE_DAYS, QUEUE_STATUSES


class DecisionForm(FlaskForm):
    """Approve / request mitigations / reject, with citations and a response template."""

    # outcome and template are checked by review.services.decide, together with every other
    # rule, so that one submission shows every problem at once
    outcome = RadioField(
        "Outcome",
        choices=choices((o.value, o.label) for o in Outcome),
        validators=[Optional()],
        validate_choice=False,
    )
    citations = MultiCheckboxField(
        "Policy citations",
        description=(
            "Required to reject or request mitigations, and to approve a high-risk or "
            "prohibited-tier application. Sections the triage suggested come first."
        ),
    )
    safety_requirements = MultiCheckboxField(
        "Safety requirements the developer must meet",
        description="Asked for with “request mitigations” (and listed as conditions of an approval); ignored on reject.",
    )
    template = SelectField("Response template", validators=[Optional()], validate_choice=False)
    reviewer_note = TextAreaField(
        "Note to the developer",
        validators=[Optional(), max_length("decision.reviewer_note")],
        description="Inserted into the message where the template shows the reviewer's note.",
    )
    rationale = TextAreaField(
        "Internal rationale",
        validators=[Optional(), max_length("decision.rationale")],
        description="Reviewers only; never sent.",
    )
    feedback_kind = SelectField(
        "Flag a cited section (optional)",
        choices=choices(
            [
                ("", "— no flag —"),
                ("edge_case", "Edge case"),
                ("unclear", "Policy unclear or hard to enforce"),
            ]
        ),
        validators=[Optional()],
        description="Goes to the policy team, not to the developer.",
    )
    feedback_section = SelectField("Which cited section", validators=[Optional()])
    feedback_comment = TextAreaField(
        "What the policy team should know",
        validators=[Optional(), max_length("decision.feedback_comment")],
        render_kw={"rows": 2},
    )
    # the application's version when the page was rendered: the decision is refused (409) when
    # it changed since; a value that is not a version is refused too, never ignored
    version = HiddenField(
        validators=[
            Optional(),
            Regexp(
                r"^[0-9]{1,18}$", message="The page's version mark is damaged; reload the page."
            ),
        ]
    )

    def set_choices(
        self,
        sections: Sequence[Any],
        requirements: Sequence[Any],
        templates: Sequence[Any],
        suggested_sections: Sequence[str] = (),
        suggested_requirements: Sequence[str] = (),
    ) -> None:
        """Fill the choices from the policy library; the triage's suggestions come first."""
        first = {key: i for i, key in enumerate(suggested_sections)}
        ordered = sorted(sections, key=lambda s: (0, first[s.key]) if s.key in first else (1, 0))
        self.feedback_section.choices = choices(
            [("", "—")] + [(s.key, f"{s.number} {s.title}") for s in sections]
        )
        self.citations.choices = [
            SelectChoice(
                s.key, f"{s.number} {s.title}" + (" · suggested" if s.key in first else "")
            )
            for s in ordered
        ]
        wanted = set(suggested_requirements)
        self.safety_requirements.choices = [
            SelectChoice(r.key, r.title + (" · suggested" if r.key in wanted else ""))
            for r in requirements
        ]
        groups = {
            "approve": "Approve",
            "request_mitigations": "Request mitigations",
            "reject": "Reject",
        }
        self.template.choices = [SelectChoice("", "— choose —")] + [
            SelectChoice(t.key, t.title, optgroup=groups.get(t.outcome, t.outcome))
            for t in templates
        ]


def ascii_whole_number(form: Any, field: Any) -> None:
    """WTForms validator: the typed text is a whole number in the digits 0-9 and nothing else.

    Python's ``int()`` also reads other scripts' digits and surrounding spaces ("٣", " 5 "),
    which a browser's number input cannot show: the filter would apply while its box looks
    empty. Raises StopValidation with the message shown next to the field.
    """
    if field.process_errors:  # not a number at all: WTForms already says so
        raise StopValidation()
    raw = (field.raw_data or [""])[0]
    digits = raw[1:] if raw.startswith("-") else raw  # a minus: the range check answers it
    if not (raw.isascii() and digits.isdigit()):
        raise StopValidation("Type a whole number with the digits 0-9.")


class QueueFilterForm(FlaskForm):
    """GET filters of the queue page (no CSRF: they change nothing)."""

    class Meta:
        csrf = False

    q = StringField(
        "Search",
        validators=[Optional(), max_length("queue.search")],
        description="A reference (APP-000123), words of the application, or an organization.",
    )
    queue = SelectField("Queue", validators=[Optional()])
    tier = SelectField("Tier", validators=[Optional()])
    status = SelectField(
        "Status",
        validators=[Optional()],
        choices=choices([("", "All open")] + list(QUEUE_STATUSES.items())),
    )
    age_days = IntegerField(
        "Waiting at least (days)",
        validators=[Optional(), ascii_whole_number, NumberRange(min=0, max=QUEUE_MAX_AGE_DAYS)],
    )


class NoteForm(FlaskForm):
    """An internal note (reviewers only)."""

    body = TextAreaField(
        "Add an internal note",
        validators=[DataRequired(message="Write something first."), max_length("note.body")],
        description="Reviewers only; never shown to the developer. Notes cannot be edited.",
        render_kw={"rows": 3},
    )


class ReasonForm(FlaskForm):
    """Escalate or hand back, with a reason."""

    reason = TextAreaField("Reason", validators=[max_length("reason.text")], render_kw={"rows": 2})


class BulkDecisionForm(FlaskForm):
    """Approve or reject the selected queue rows with one template and one set of citations."""

    outcome = SelectField(
        "Outcome",
        choices=choices([("", "— choose —"), ("approve", "Approve"), ("reject", "Reject")]),
        validators=[DataRequired(message="Choose approve or reject.")],
    )
    citations = SelectMultipleField(
        "Policy citations", description="Required to reject, and to approve high-risk tiers."
    )
    template = SelectField(
        "Response template", validators=[DataRequired(message="Choose a response template.")]
    )
    reviewer_note = TextAreaField(
        "Note to each developer",
        validators=[Optional(), max_length("decision.reviewer_note")],
        render_kw={"rows": 2},
    )
