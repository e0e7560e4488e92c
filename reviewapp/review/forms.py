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
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from reviewapp.applications.forms import MultiCheckboxField, choices
from reviewapp.review.models import Outcome


class DecisionForm(FlaskForm):
    """Approve / request mitigations / reject, with citations and a response template."""

    outcome = RadioField(
        "Decision",
        choices=choices((o.value, o.label) for o in Outcome),
        validators=[DataRequired(message="Choose a decision.")],
    )
    citations = SelectMultipleField(
        "Policy citations",
        description="Required to reject or request mitigations. Ctrl/⌘-click to pick several.",
    )
    safety_requirements = MultiCheckboxField("Safety requirements the developer must meet")
    template = SelectField(
        "Response template", validators=[DataRequired(message="Choose a response template.")]
    )
    reviewer_note = TextAreaField(
        "Note to the developer",
        validators=[Optional(), Length(max=5000)],
        description="Inserted into the message where the template shows the reviewer's note.",
    )
    rationale = TextAreaField(
        "Internal rationale",
        validators=[Optional(), Length(max=5000)],
        description="Reviewers only; never sent.",
    )
    version = HiddenField()

    def set_choices(
        self, sections: Sequence[Any], requirements: Sequence[Any], templates: Sequence[Any]
    ) -> None:
        """Fill the choices from the policy library."""
        self.citations.choices = choices((s.key, f"{s.number} {s.title}") for s in sections)
        self.safety_requirements.choices = choices((r.key, r.title) for r in requirements)
        self.template.choices = choices(
            [("", "— choose —")]
            + [(t.key, f"{t.title} ({t.outcome.replace('_', ' ')})") for t in templates]
        )


class QueueFilterForm(FlaskForm):
    """GET filters of the queue page (no CSRF: they change nothing)."""

    class Meta:
        csrf = False

    queue = SelectField("Queue", validators=[Optional()])
    tier = SelectField("Tier", validators=[Optional()])
    status = SelectField(
        "Status",
        validators=[Optional()],
        choices=choices(
            [("", "Open (queued or in review)"), ("queued", "Queued"), ("in_review", "In review")]
        ),
    )
    age_days = IntegerField(
        "Waiting at least (days)", validators=[Optional(), NumberRange(min=0, max=3650)]
    )
