"""The go-live application form (fields, limits and vocabularies from applications.schema)."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from reviewapp.applications.schema import (
    FIELD_LABELS,
    MAX_MONTHLY_REQUESTS,
    load_vocabularies,
)
from reviewapp.limits import MaxLength, max_length


def choices(pairs: Any) -> list[SelectChoice]:
    """WTForms choices from (value, label) pairs (tuples are deprecated in WTForms 3.3)."""
    return [SelectChoice(str(value), str(label)) for value, label in pairs]


class MultiCheckboxField(SelectMultipleField):
    """A list of checkboxes."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def _len(name: str) -> MaxLength:
    # application content is stripped by the service (applications/schema.py): count it so
    return max_length(f"application.{name}", stripped=True)


class ApplicationForm(FlaskForm):
    """Draft editing and submission. A draft may be incomplete; submitting checks completeness."""

    title = StringField(FIELD_LABELS["title"], validators=[_len("title")])
    category = SelectField(FIELD_LABELS["category"], validators=[Optional()])
    description = TextAreaField(
        FIELD_LABELS["description"],
        validators=[_len("description")],
        description="What the deployment does, for whom, and what the model's outputs are used for.",
    )
    benefits = TextAreaField(FIELD_LABELS["benefits"], validators=[_len("benefits")])
    end_users = MultiCheckboxField(FIELD_LABELS["end_users"])
    domains = MultiCheckboxField(FIELD_LABELS["domains"])
    modalities = MultiCheckboxField(FIELD_LABELS["modalities"])
    monthly_requests = IntegerField(
        FIELD_LABELS["monthly_requests"],
        validators=[Optional(), NumberRange(min=0, max=MAX_MONTHLY_REQUESTS)],
    )
    human_review_of_outputs = RadioField(
        FIELD_LABELS["human_review_of_outputs"],
        choices=choices(
            [("yes", "Yes, a person reviews outputs before they reach end users"), ("no", "No")]
        ),
        validators=[Optional()],
    )
    safety_measures = TextAreaField(
        FIELD_LABELS["safety_measures"],
        validators=[_len("safety_measures")],
        description="Moderation, rate limits, disclosure, age checks, human oversight… whatever is already in place.",
    )
    product_url = StringField(FIELD_LABELS["product_url"], validators=[_len("product_url")])
    save = SubmitField("Save draft")
    submit_application = SubmitField("Submit for review")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        vocab = load_vocabularies()
        self.category.choices = choices([("", "— choose —"), *vocab.categories.items()])
        self.end_users.choices = choices(vocab.end_users.items())
        self.domains.choices = choices(vocab.domains.items())
        self.modalities.choices = choices(vocab.modalities.items())

    def content(self) -> dict[str, Any]:
        """The form's data in application-content shape."""
        hr = self.human_review_of_outputs.data
        return {
            "title": self.title.data or "",
            "category": self.category.data or None,
            "description": self.description.data or "",
            "benefits": self.benefits.data or "",
            "end_users": list(self.end_users.data or []),
            "domains": list(self.domains.data or []),
            "modalities": list(self.modalities.data or []),
            "monthly_requests": self.monthly_requests.data,
            "human_review_of_outputs": True if hr == "yes" else False if hr == "no" else None,
            "safety_measures": self.safety_measures.data or "",
            "product_url": self.product_url.data or "",
        }

    def fill(self, content: dict[str, Any]) -> None:
        """Populate from application content (GET of the edit page)."""
        for name in (
            "title",
            "description",
            "benefits",
            "safety_measures",
            "product_url",
            "end_users",
            "domains",
            "modalities",
            "monthly_requests",
        ):
            getattr(self, name).data = content.get(name)
        self.category.data = content.get("category") or ""
        hr = content.get("human_review_of_outputs")
        self.human_review_of_outputs.data = "yes" if hr is True else "no" if hr is False else None


class ConfirmForm(FlaskForm):
    """An empty form carrying only the CSRF token (withdraw, claim, release…)."""


class WithdrawForm(FlaskForm):
    """Confirm a withdrawal: it cannot be undone."""

    confirm = BooleanField(
        "I understand that a withdrawn application cannot be reopened",
        validators=[
            DataRequired(
                message="Tick the box to confirm: a withdrawn application cannot be edited, "
                "resubmitted or appealed."
            )
        ],
    )


class AppealForm(FlaskForm):
    """A developer's appeal against a rejection."""

    statement = TextAreaField(
        "Why should the decision change?",
        validators=[max_length("appeal.statement")],
        description="At least 20 characters. Point to facts the reviewer may have missed. "
        "An application can be appealed once per revision; someone other than the original "
        "reviewer decides.",
        render_kw={"rows": 5},
    )
