"""Rules lab forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, StringField, TextAreaField
from wtforms.validators import DataRequired, Optional

from reviewapp.limits import max_length


class RuleForm(FlaskForm):
    """One rule of a draft ruleset."""

    key = StringField(
        "Key",
        validators=[DataRequired(), max_length("rule.key")],
        description="Stable across versions: letters, digits, - _ .",
    )
    name = StringField("Name", validators=[DataRequired(), max_length("rule.name")])
    description = TextAreaField(
        "Why this rule exists (policy language)",
        validators=[Optional(), max_length("rule.description")],
        render_kw={"rows": 3},
    )
    condition = TextAreaField(
        "Condition",
        validators=[DataRequired(), max_length("rule.condition")],
        render_kw={"rows": 3},
        description="rule-engine expression, e.g. 'health' in domains and human_review_of_outputs == false",
    )
    actions = TextAreaField(
        "Actions (one per line, type: value)",
        validators=[DataRequired(), max_length("rule.actions")],
        render_kw={"rows": 5},
        description="raise_tier: high · route_queue: high-risk · add_flag: minors · require_safety_requirement: age-assurance · suggest_policy_section: usage-2.12",
    )
    enabled = BooleanField("Enabled", default=True)
    examples = TextAreaField(
        "Examples (YAML)",
        validators=[Optional(), max_length("rule.examples")],
        render_kw={"rows": 12},
        description="must_fire: [ {domains: [health]} ] and must_not_fire: [ {domains: [general]} ]; they must behave before the rule is saved.",
    )
    # the rule as it was when the form was opened (lab.rule_edit_fingerprint): a save over
    # another admin's newer save of the same rule is refused instead of silently undoing it
    fingerprint = HiddenField()


class KeywordListForm(FlaskForm):
    """A named keyword list: literal phrases, one per line."""

    name = StringField(
        "Name",
        validators=[DataRequired(), max_length("keyword_list.name")],
        description="lower-case letters, digits and _; rules test it as 'name' in signals",
    )
    description = StringField(
        "What it is for", validators=[Optional(), max_length("keyword_list.description")]
    )
    phrases = TextAreaField(
        "Phrases (one per line)",
        validators=[Optional(), max_length("keyword_list.phrases")],
        render_kw={"rows": 14},
        description="Matched case-insensitively on word boundaries; * at a word's end matches any ending; a space matches spaces or hyphens. Leave empty to delete the list.",
    )


class TryForm(FlaskForm):
    """Evaluate a ruleset version against an application or pasted JSON."""

    reference = StringField(
        "Application reference", validators=[Optional(), max_length("application.reference")]
    )
    content = TextAreaField(
        "…or application JSON", validators=[Optional(), max_length("triage_try.content")]
    )


class RollbackForm(FlaskForm):
    """Confirm a rollback: it re-activates an old version and re-triages the open queue."""

    active_id = HiddenField()  # the active version the admin saw (a stale page is refused)
    confirm = BooleanField(
        "I understand that this re-triages every unclaimed queued application",
        validators=[
            DataRequired(
                message="Tick the box to confirm: the rollback re-triages unclaimed queued "
                "applications as soon as it is done."
            )
        ],
    )
