"""Rules lab forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional


class RuleForm(FlaskForm):
    """One rule of a draft ruleset."""

    key = StringField(
        "Key",
        validators=[DataRequired(), Length(max=100)],
        description="Stable across versions: letters, digits, - _ .",
    )
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    description = TextAreaField(
        "Why this rule exists (policy language)",
        validators=[Optional(), Length(max=5000)],
        render_kw={"rows": 3},
    )
    condition = TextAreaField(
        "Condition",
        validators=[DataRequired(), Length(max=4000)],
        render_kw={"rows": 3},
        description="rule-engine expression, e.g. 'health' in domains and human_review_of_outputs == false",
    )
    actions = TextAreaField(
        "Actions (one per line, type: value)",
        validators=[DataRequired(), Length(max=2000)],
        render_kw={"rows": 5},
        description="raise_tier: high · route_queue: high-risk · add_flag: minors · require_safety_requirement: age-assurance · suggest_policy_section: usage-2.12",
    )
    enabled = BooleanField("Enabled", default=True)
    examples = TextAreaField(
        "Examples (YAML)",
        validators=[Optional(), Length(max=20000)],
        render_kw={"rows": 12},
        description="must_fire: [ {domains: [health]} ] and must_not_fire: [ {domains: [general]} ]; they must behave before the rule is saved.",
    )


class KeywordListForm(FlaskForm):
    """A named keyword list: literal phrases, one per line."""

    name = StringField(
        "Name",
        validators=[DataRequired(), Length(max=60)],
        description="lower-case letters, digits and _; rules test it as 'name' in signals",
    )
    description = StringField("What it is for", validators=[Optional(), Length(max=300)])
    phrases = TextAreaField(
        "Phrases (one per line)",
        validators=[Optional(), Length(max=20000)],
        render_kw={"rows": 14},
        description="Matched case-insensitively on word boundaries; * at a word's end matches any ending; a space matches spaces or hyphens. Leave empty to delete the list.",
    )


class TryForm(FlaskForm):
    """Evaluate a ruleset version against an application or pasted JSON."""

    reference = StringField("Application reference", validators=[Optional(), Length(max=20)])
    content = TextAreaField("…or application JSON", validators=[Optional(), Length(max=50000)])
