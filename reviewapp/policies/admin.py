"""Policy managers edit the catalogues: response templates and safety requirements.

Every route needs :attr:`Permission.manage_policies` (403 otherwise); an unknown key is a 404.
A template is saved only when it renders in the Jinja sandbox with every placeholder known
(``validate_template``); the error names the placeholder and sits next to the body, with the
text kept. The "Preview" button renders the unsaved text against a real application, with the
first policy section as an example citation and the template's typical safety requirements,
without JavaScript and without saving. Every save writes an audit event with before/after.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import yaml
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from wtforms import HiddenField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Optional

from reviewapp.applications.models import Application, Status
from reviewapp.audit.services import record_event
from reviewapp.auth.models import Permission, User
from reviewapp.errors import ConflictError, DomainError, ValidationFailed
from reviewapp.extensions import db
from reviewapp.limits import LIMITS, max_length
from reviewapp.policies.models import ResponseTemplate, SafetyRequirement
from reviewapp.policies.sandbox import ALLOWED_FILTERS
from reviewapp.policies.services import (
    TEMPLATE_VARIABLES,
    render_markdown,
    render_template_text,
    sections_in_order,
    validate_template,
)
from reviewapp.review.models import Decision, Outcome, RequiredSafetyRequirement
from reviewapp.textfiles import load_yaml, yaml_problem
from reviewapp.web import keeps_input_on_csrf_failure, permission_required, show_form_errors

bp = Blueprint("policy_admin", __name__, url_prefix="/admin/catalogue")

KEY_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
KEY_LIMIT = LIMITS["template.key"]
BODY_LIMIT = LIMITS["template.body"]  # code points
DESCRIPTION_LIMIT = LIMITS["requirement.description"]
PARAMETERS_LIMIT = LIMITS["requirement.parameters"]
TYPICAL_LIMIT = 3  # safety requirements shown in a preview
PREVIEW_NOTE = "This is where the reviewer's note appears."
PREVIEW_REASON = "Example reason given by the reviewer."
OUTCOME_CHOICES = [SelectChoice(o.value, o.label) for o in Outcome]


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


class TemplateForm(FlaskForm):
    """A response template; ``key`` is only used when creating one."""

    key = StringField(
        "Key",
        validators=[
            Optional(),
            max_length("template.key"),
        ],
        filters=[_strip],
        description="Lowercase letters, digits and dashes, e.g. approve-research. "
        "Reviewers pick templates by it; it cannot be changed later.",
    )
    title = StringField(
        "Title",
        validators=[
            DataRequired(message="Give the template a title."),
            max_length("template.title"),
        ],
        filters=[_strip],
    )
    outcome = SelectField(
        "Outcome",
        choices=OUTCOME_CHOICES,
        description="Reviewers can use the template only for decisions with this outcome.",
    )
    body = TextAreaField(
        "Message",
        validators=[
            DataRequired(message="Write the message text."),
            max_length("template.body"),
        ],
        description="Markdown with Jinja placeholders: " + ", ".join(TEMPLATE_VARIABLES) + ".",
        render_kw={"rows": 18, "spellcheck": "true"},
    )
    reference = StringField(
        "Preview with application",
        validators=[Optional(), max_length("application.reference")],
        filters=[_strip],
        description="The reference of a submitted application, e.g. APP-000123.",
    )
    fingerprint = HiddenField()


class RequirementForm(FlaskForm):
    """A safety requirement; parameters are YAML (a list of name/label/unit/min/max)."""

    title = StringField(
        "Title",
        validators=[
            DataRequired(message="Give the requirement a title."),
            max_length("requirement.title"),
        ],
        filters=[_strip],
    )
    description = TextAreaField(
        "Description",
        validators=[
            DataRequired(message="Describe what the developer must do and attest to."),
            max_length("requirement.description"),
        ],
        filters=[_strip],
        render_kw={"rows": 6},
    )
    parameters = TextAreaField(
        "Parameters (YAML)",
        validators=[max_length("requirement.parameters")],
        description="Values the reviewer sets when requiring it, one list item each: name "
        "(an identifier like minimum_user_age), label, unit, and whole numbers min <= max. "
        "Leave empty for none.",
        render_kw={"rows": 8, "spellcheck": "false"},
    )
    fingerprint = HiddenField()


# --- services ----------------------------------------------------------------------------------


def _template_snapshot(template: ResponseTemplate) -> dict[str, Any]:
    return {"title": template.title, "outcome": template.outcome, "body": template.body}


def _requirement_snapshot(requirement: SafetyRequirement) -> dict[str, Any]:
    return {
        "title": requirement.title,
        "description": requirement.description,
        "parameters": list(requirement.parameters or []),
    }


def fingerprint(snapshot: dict[str, Any]) -> str:
    """A short hash of an object's editable fields: a form carries the one it was opened with,
    so a save over someone else's newer save is refused instead of silently undoing it."""
    raw = json.dumps(snapshot, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def _check_fresh(snapshot: dict[str, Any], seen: str | None) -> None:
    if seen and seen != fingerprint(snapshot):
        raise ConflictError(
            "Someone else saved this entry after you opened it. Nothing was saved; your text is "
            "kept below. Open the entry again in another tab to see their version."
        )


def _checked_body(body: str) -> str:
    """``body`` when it renders in the sandbox with known placeholders only.

    Raises:
        ValidationFailed: naming the syntax error or the unknown placeholder (on field ``body``).
    """
    try:
        validate_template(body)
    except ValidationFailed as exc:
        raise ValidationFailed(exc.message, fields={"body": exc.message}) from None
    return body


def _changes(
    before: dict[str, Any], after: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    changed = [k for k in after if before.get(k) != after[k]]
    return {k: before.get(k) for k in changed}, {k: after[k] for k in changed}


def create_response_template(
    session: Session, actor: User, *, key: str, title: str, outcome: str, body: str
) -> ResponseTemplate:
    """Add a response template (audited as ``response_template.create``).

    Raises:
        ValidationFailed: bad or taken key, unknown outcome, or a body that does not render.
    """
    errors: dict[str, str] = {}
    if not key:
        errors["key"] = "Choose a key, e.g. approve-research."
    elif len(key) > KEY_LIMIT or not KEY_RE.match(key):
        errors["key"] = (
            "Use lowercase letters, digits and dashes only, starting with a letter or digit."
        )
    elif session.scalar(select(ResponseTemplate.id).where(ResponseTemplate.key == key)):
        errors["key"] = f"A template with the key {key!r} already exists; choose another key."
    if outcome not in {o.value for o in Outcome}:
        errors["outcome"] = "Choose approve, request mitigations or reject."
    if errors:
        raise ValidationFailed("The template was not saved.", fields=errors)
    template = ResponseTemplate(key=key, title=title, outcome=outcome, body=_checked_body(body))
    session.add(template)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="response_template.create",
        subject_type="response_template",
        subject_id=key,
        before=None,
        after=_template_snapshot(template),
    )
    return template


def update_response_template(
    session: Session,
    actor: User,
    template: ResponseTemplate,
    *,
    title: str,
    outcome: str,
    body: str,
    seen: str | None = None,
) -> bool:
    """Change a template's title, outcome and body (audited as ``response_template.update``
    with the changed fields before and after). ``seen``: the fingerprint the form was opened with.

    Returns:
        True when something changed.
    Raises:
        ValidationFailed: unknown outcome or a body that does not render; ConflictError: stale form.
    """
    before = _template_snapshot(template)
    _check_fresh(before, seen)
    if outcome not in {o.value for o in Outcome}:
        raise ValidationFailed(
            "The template was not saved.",
            fields={"outcome": "Choose approve, request mitigations or reject."},
        )
    template.title, template.outcome, template.body = title, outcome, _checked_body(body)
    old, new = _changes(before, _template_snapshot(template))
    if not new:
        return False
    session.flush()
    record_event(
        session,
        actor=actor,
        action="response_template.update",
        subject_type="response_template",
        subject_id=template.key,
        before=old,
        after=new,
    )
    return True


def parse_parameter_specs(text: str) -> list[dict[str, Any]]:
    """Read a requirement's parameter specs from YAML text.

    Shape: a list of ``{name, label, unit, min, max}``; ``name`` an identifier, unique;
    ``min`` and ``max`` whole numbers with min <= max. Empty text means no parameters.

    Raises:
        ValidationFailed: on field ``parameters``, naming the item and what is wrong.
    """

    def fail(message: str) -> ValidationFailed:
        return ValidationFailed(message, fields={"parameters": message})

    if not text.strip():
        return []
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        raise fail(f"The parameters are not valid YAML ({yaml_problem(exc)}).") from None
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise fail(
            "Write the parameters as a YAML list, one item per parameter starting with '- '."
        )
    specs: list[dict[str, Any]] = []
    for i, item in enumerate(raw, start=1):
        if not isinstance(item, dict):
            raise fail(f"Parameter #{i} is not a mapping with name, label, unit, min and max.")
        unknown = sorted(set(map(str, item)) - {"name", "label", "unit", "min", "max"})
        if unknown:
            raise fail(f"Parameter #{i} has unknown field(s): {', '.join(unknown)}.")
        name = item.get("name")
        if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
            raise fail(
                f"Parameter #{i}: the name must be an identifier such as minimum_user_age "
                "(letters, digits and underscores, not starting with a digit)."
            )
        if any(s["name"] == name for s in specs):
            raise fail(f"Parameter #{i}: the name {name!r} is used twice.")
        low, high = item.get("min"), item.get("max")
        # bool is an int subclass: "min: yes" must not pass as 1
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)):
            raise fail(f"Parameter {name!r}: min and max must both be whole numbers.")
        assert isinstance(low, int) and isinstance(high, int)
        if low > high:
            raise fail(f"Parameter {name!r}: min ({low}) must not be larger than max ({high}).")
        label, unit = item.get("label") or name, item.get("unit") or ""
        if not isinstance(label, str | int) or not isinstance(unit, str | int):
            raise fail(f"Parameter {name!r}: label and unit must be text.")
        for what, value, key in (
            ("label", str(label), "requirement.parameter_label"),
            ("unit", str(unit), "requirement.parameter_unit"),
        ):
            if len(value) > LIMITS[key]:
                raise fail(
                    f"Parameter {name!r}: the {what} is {len(value):,} characters long; "
                    f"the limit is {LIMITS[key]:,}."
                )
        specs.append(
            {
                "name": name,
                "label": str(label),
                "unit": str(unit),
                "min": low,
                "max": high,
            }
        )
    return specs


def format_parameter_specs(specs: list[dict[str, Any]]) -> str:
    """Parameter specs as the YAML the edit form shows ("" for none)."""
    if not specs:
        return ""
    return yaml.safe_dump(specs, sort_keys=False, allow_unicode=True)


def update_safety_requirement(
    session: Session,
    actor: User,
    requirement: SafetyRequirement,
    *,
    title: str,
    description: str,
    parameters_text: str,
    seen: str | None = None,
) -> bool:
    """Change a safety requirement (audited as ``safety_requirement.update`` with the changed
    fields before and after). Decisions already recorded keep their parameter values.

    Returns:
        True when something changed.
    Raises:
        ValidationFailed: bad parameter YAML or specs; ConflictError: stale form.
    """
    before = _requirement_snapshot(requirement)
    _check_fresh(before, seen)
    specs = parse_parameter_specs(parameters_text)
    requirement.title, requirement.description, requirement.parameters = title, description, specs
    old, new = _changes(before, _requirement_snapshot(requirement))
    if not new:
        return False
    session.flush()
    record_event(
        session,
        actor=actor,
        action="safety_requirement.update",
        subject_type="safety_requirement",
        subject_id=requirement.key,
        before=old,
        after=new,
    )
    return True


def typical_requirements(
    session: Session, template: ResponseTemplate | None, body: str
) -> list[SafetyRequirement]:
    """The safety requirements a preview of ``body`` lists: those most often required in
    decisions sent with ``template``, else the first catalogue entries; none when the body does
    not use ``safety_requirements``. At most TYPICAL_LIMIT."""
    if "safety_requirements" not in body:
        return []
    rows: list[SafetyRequirement] = []
    if template is not None and template.id is not None:
        rows = list(
            session.scalars(
                select(SafetyRequirement)
                .join(
                    RequiredSafetyRequirement,
                    RequiredSafetyRequirement.safety_requirement_id == SafetyRequirement.id,
                )
                .join(Decision, Decision.id == RequiredSafetyRequirement.decision_id)
                .where(Decision.template_id == template.id)
                .group_by(SafetyRequirement.id)
                .order_by(func.count().desc(), SafetyRequirement.key)
                .limit(TYPICAL_LIMIT)
            )
        )
    if not rows:
        rows = list(
            session.scalars(
                select(SafetyRequirement).order_by(SafetyRequirement.key).limit(TYPICAL_LIMIT)
            )
        )
    return rows


def submitted_application(session: Session, reference: str) -> Application:
    """The submitted (never draft) application with this reference.

    Raises:
        ValidationFailed: on field ``reference`` when there is none.
    """
    app_id = Application.id_from_reference(reference.upper())
    application = session.get(Application, app_id) if app_id is not None else None
    if application is None or application.status == Status.draft:
        message = f"No submitted application has the reference {reference!r}."
        raise ValidationFailed(message, fields={"reference": message})
    return application


def preview_message(
    session: Session, template: ResponseTemplate | None, body: str, reference: str
) -> Markup:
    """Render unsaved template text for an application as the developer would read it
    (sanitized Markdown), citing the first policy section and listing typical requirements.

    Raises:
        ValidationFailed: unknown reference (field ``reference``) or a body that does not render
            (field ``body``, naming the placeholder).
    """
    from reviewapp.review.services import template_context

    if not reference:
        message = "Enter the reference of a submitted application to preview with."
        raise ValidationFailed(message, fields={"reference": message})
    application = submitted_application(session, reference)
    sections = sections_in_order(session)
    in_force = sections[0].current if sections else None
    citations = [in_force] if in_force is not None else []
    requirements = [
        # transient rows, never added to the session: only their text is rendered
        RequiredSafetyRequirement(
            safety_requirement=row,
            reason=PREVIEW_REASON,
            parameters={spec["name"]: spec["min"] for spec in row.parameters or []},
        )
        for row in typical_requirements(session, template, body)
    ]
    context = template_context(application, citations, requirements, PREVIEW_NOTE)
    try:
        text = render_template_text(body, context)
    except ValidationFailed as exc:
        raise ValidationFailed(exc.message, fields={"body": exc.message}) from None
    return render_markdown(text)


# --- views -------------------------------------------------------------------------------------


def _template_or_404(key: str) -> ResponseTemplate:
    template = db.session.scalars(
        select(ResponseTemplate).where(ResponseTemplate.key == key)
    ).first()
    if template is None:
        abort(404)
    return template


def _requirement_or_404(key: str) -> SafetyRequirement:
    requirement = db.session.scalars(
        select(SafetyRequirement).where(SafetyRequirement.key == key)
    ).first()
    if requirement is None:
        abort(404)
    return requirement


def _latest_reference() -> str:
    application = db.session.scalars(
        select(Application)
        .where(Application.status != Status.draft)
        .order_by(Application.submitted_at.desc().nulls_last(), Application.id.desc())
        .limit(1)
    ).first()
    return application.reference if application is not None else ""


@bp.route("")
@permission_required(Permission.manage_policies)
def index() -> Any:
    """Response templates (by outcome) and safety requirements, each linking to its editor."""
    templates = db.session.scalars(
        select(ResponseTemplate).order_by(ResponseTemplate.outcome, ResponseTemplate.key)
    ).all()
    requirements = db.session.scalars(
        select(SafetyRequirement).order_by(SafetyRequirement.key)
    ).all()
    labels = {o.value: o.label for o in Outcome}
    return render_template(
        "policy_admin/index.html", templates=templates, requirements=requirements, labels=labels
    )


def _template_page(
    form: TemplateForm, template: ResponseTemplate | None, preview: Markup | None = None
) -> str:
    return render_template(
        "policy_admin/template_form.html",
        form=form,
        template=template,
        preview=preview,
        variables=TEMPLATE_VARIABLES,
        filters=", ".join(sorted(ALLOWED_FILTERS)),
    )


def _template_view(template: ResponseTemplate | None) -> Any:
    """GET: the form; POST with ``preview``: render without saving; other POST: save."""
    form = TemplateForm()
    if request.method == "GET":
        if template is not None:
            form.title.data, form.outcome.data = template.title, template.outcome
            form.body.data = template.body
            form.fingerprint.data = fingerprint(_template_snapshot(template))
        form.reference.data = _latest_reference()
        return _template_page(form, template)
    if "preview" in request.form:  # CSRF is checked for every POST by CSRFProtect
        try:
            preview = preview_message(
                db.session, template, form.body.data or "", form.reference.data or ""
            )
        except DomainError as exc:
            show_form_errors(form, exc, "No preview: ")
            return _template_page(form, template), 422
        return _template_page(form, template, preview)
    if not form.validate():
        return _template_page(form, template), 422
    try:
        if template is None:
            saved = create_response_template(
                db.session,
                current_user,
                key=form.key.data or "",
                title=form.title.data or "",
                outcome=form.outcome.data or "",
                body=form.body.data or "",
            )
            changed = True
        else:
            saved = template
            changed = update_response_template(
                db.session,
                current_user,
                template,
                title=form.title.data or "",
                outcome=form.outcome.data or "",
                body=form.body.data or "",
                seen=form.fingerprint.data,
            )
        db.commit()
    except DomainError as exc:
        db.rollback()
        show_form_errors(form, exc, "Not saved: ")
        return _template_page(form, template), exc.status
    flash(
        f"Template {saved.key} saved." if changed else f"Template {saved.key} had no changes.",
        "success" if changed else "info",
    )
    return redirect(url_for(".edit_template", key=saved.key))


@bp.route("/templates/new", methods=["GET", "POST"])
@keeps_input_on_csrf_failure
@permission_required(Permission.manage_policies)
def new_template() -> Any:
    """Create a response template (key, title, outcome, body), with preview."""
    return _template_view(None)


@bp.route("/templates/<key>", methods=["GET", "POST"])
@keeps_input_on_csrf_failure
@permission_required(Permission.manage_policies)
def edit_template(key: str) -> Any:
    """Edit a response template, with a preview against a chosen application."""
    return _template_view(_template_or_404(key))


@bp.route("/requirements/<key>", methods=["GET", "POST"])
@keeps_input_on_csrf_failure
@permission_required(Permission.manage_policies)
def edit_requirement(key: str) -> Any:
    """Edit a safety requirement's title, description and parameter specs (YAML)."""
    requirement = _requirement_or_404(key)
    form = RequirementForm()
    if request.method == "GET":
        form.title.data, form.description.data = requirement.title, requirement.description
        form.parameters.data = format_parameter_specs(list(requirement.parameters or []))
        form.fingerprint.data = fingerprint(_requirement_snapshot(requirement))

    def page(status: int = 200) -> Any:
        return render_template(
            "policy_admin/requirement_form.html", form=form, requirement=requirement
        ), status

    if request.method == "GET":
        return page()
    if not form.validate():
        return page(422)
    try:
        changed = update_safety_requirement(
            db.session,
            current_user,
            requirement,
            title=form.title.data or "",
            description=form.description.data or "",
            parameters_text=form.parameters.data or "",
            seen=form.fingerprint.data,
        )
        db.commit()
    except DomainError as exc:
        db.rollback()
        show_form_errors(form, exc, "Not saved: ")
        return page(exc.status)
    flash(
        f"Safety requirement {key} saved."
        if changed
        else f"Safety requirement {key} had no changes.",
        "success" if changed else "info",
    )
    return redirect(url_for(".edit_requirement", key=key))
