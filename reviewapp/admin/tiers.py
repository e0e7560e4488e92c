"""Admin: risk tiers (SLA target, approvals required, fast track and QA sample rate, default
queue) and queues (title, order, the roles that may work them). Every change is audited.

A changed SLA target applies to clocks started or resumed afterwards; running clocks keep the
target they started with (an application's promise does not move under it).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import Session
from wtforms import (
    BooleanField,
    DecimalField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, NumberRange

from reviewapp.applications.forms import MultiCheckboxField, choices
from reviewapp.audit.services import record_event
from reviewapp.auth.models import Permission, Role, User
from reviewapp.errors import ValidationFailed
from reviewapp.extensions import db
from reviewapp.limits import max_length
from reviewapp.review.models import Queue, RiskTier
from reviewapp.review.tiers import tier_policy_problems
from reviewapp.web import permission_required, save_form

bp = Blueprint("admin_tiers", __name__, url_prefix="/admin/tiers")

MAX_SLA_HOURS = 2000  # business hours (50 weeks of 40 h)


class TierForm(FlaskForm):
    """One risk tier's review policy."""

    label = StringField("Label", validators=[DataRequired(), max_length("tier.label")])
    description = TextAreaField("Description", validators=[max_length("tier.description")])
    sla_hours = IntegerField(
        "SLA target (business hours)",
        validators=[NumberRange(min=1, max=MAX_SLA_HOURS, message="From 1 to 2000 hours.")],
    )
    approvals_required = SelectField(
        "Approvals required",
        choices=choices([("1", "1"), ("2", "2 (second by a senior reviewer)")]),
    )
    default_queue = SelectField("Default queue")
    auto_approve = BooleanField("Fast track: approve automatically (except the QA sample)")
    qa_sample_rate = DecimalField(
        "QA sample rate (0 to 1)",
        places=3,
        validators=[NumberRange(min=0, max=1, message="A share from 0 to 1, e.g. 0.1.")],
    )


class QueueForm(FlaskForm):
    """One queue: title, order on the page, the roles that may claim from it."""

    title = StringField("Title", validators=[DataRequired(), max_length("queue.title")])
    description = TextAreaField("Description", validators=[max_length("queue.description")])
    position = IntegerField("Order", validators=[NumberRange(min=0, max=1000)])
    roles = MultiCheckboxField(
        "Roles that may work it",
        choices=choices((r.value, r.value.replace("_", " ")) for r in Role if r != Role.developer),
    )


def update_tier(session: Session, actor: User, tier: RiskTier, data: dict[str, Any]) -> RiskTier:
    """Apply a validated TierForm's data; audited with before/after of the changed fields.

    Raises:
        ValidationFailed: the default queue does not exist, or the approvals / fast-track
            settings break :func:`~reviewapp.review.tiers.tier_policy_problems`'
            rules.
    """
    if session.scalars(select(Queue).where(Queue.key == data["default_queue"])).first() is None:
        raise ValidationFailed("Unknown queue.", fields={"default_queue": "unknown queue"})
    others = list(session.scalars(select(RiskTier).where(RiskTier.id != tier.id)))
    problems = tier_policy_problems(
        tier, others, int(data["approvals_required"]), bool(data["auto_approve"])
    )
    if problems:
        raise ValidationFailed(" ".join(problems.values()), fields=problems)
    fields = (
        "label",
        "description",
        "sla_hours",
        "approvals_required",
        "default_queue",
        "auto_approve",
        "qa_sample_rate",
    )
    before = {f: getattr(tier, f) for f in fields}
    tier.label = data["label"].strip()
    tier.description = (data["description"] or "").strip()
    tier.sla_hours = int(data["sla_hours"])
    tier.approvals_required = int(data["approvals_required"])
    tier.default_queue = data["default_queue"]
    tier.auto_approve = bool(data["auto_approve"])
    tier.qa_sample_rate = float(data["qa_sample_rate"])
    after = {f: getattr(tier, f) for f in fields}
    changed = [f for f in fields if before[f] != after[f]]
    session.flush()
    if changed:
        record_event(
            session,
            actor=actor,
            action="risk_tier.update",
            subject_type="risk_tier",
            subject_id=tier.name,
            before={f: before[f] for f in changed},
            after={f: after[f] for f in changed},
        )
    return tier


def update_queue(session: Session, actor: User, queue: Queue, data: dict[str, Any]) -> Queue:
    """Apply a validated QueueForm's data; audited.

    Raises:
        ValidationFailed: no role may work the queue.
    """
    roles = list(data["roles"] or [])
    if not roles:
        raise ValidationFailed(
            "At least one role must be able to work the queue.", fields={"roles": "choose one"}
        )
    fields = ("title", "description", "position", "roles")
    before = {f: getattr(queue, f) for f in fields}
    queue.title = data["title"].strip()
    queue.description = (data["description"] or "").strip()
    queue.position = int(data["position"])
    queue.roles = roles
    after = {f: getattr(queue, f) for f in fields}
    changed = [f for f in fields if before[f] != after[f]]
    session.flush()
    if changed:
        record_event(
            session,
            actor=actor,
            action="queue.update",
            subject_type="queue",
            subject_id=queue.key,
            before={f: before[f] for f in changed},
            after={f: after[f] for f in changed},
        )
    return queue


def _tier_form(tier: RiskTier, queues: list[Queue], formdata: bool) -> TierForm:
    """The tier's form: from the posted data (``formdata``) or from the stored tier."""
    if formdata:
        form = TierForm(prefix=f"tier-{tier.name}")
    else:
        form = TierForm(prefix=f"tier-{tier.name}", formdata=None, obj=tier)
        form.approvals_required.data = str(tier.approvals_required)
    form.default_queue.choices = choices((q.key, q.title) for q in queues)
    return form


def _page(
    tier_forms: dict[str, TierForm] | None = None,
    queue_forms: dict[str, QueueForm] | None = None,
    status: int = 200,
) -> Any:
    session = db.session
    tiers = list(session.scalars(select(RiskTier).order_by(RiskTier.rank)))
    queues = list(session.scalars(select(Queue).order_by(Queue.position, Queue.key)))
    tier_forms = tier_forms or {}
    queue_forms = queue_forms or {}
    for tier in tiers:
        tier_forms.setdefault(tier.name, _tier_form(tier, queues, formdata=False))
    for queue in queues:
        queue_forms.setdefault(
            queue.key, QueueForm(prefix=f"queue-{queue.key}", formdata=None, obj=queue)
        )
    return render_template(
        "admin/tiers.html",
        tiers=tiers,
        queues=queues,
        tier_forms=tier_forms,
        queue_forms=queue_forms,
    ), status


@bp.route("")
@permission_required(Permission.manage_policies)
def index() -> Any:
    """Every tier and queue with its form."""
    return _page()


@bp.route("/<name>", methods=["POST"])
@permission_required(Permission.manage_policies)
def save_tier(name: str) -> Any:
    """Save one tier; errors re-render the page with them next to the fields."""
    tier = db.session.scalars(select(RiskTier).where(RiskTier.name == name)).first()
    if tier is None:
        abort(404)
    queues = list(db.session.scalars(select(Queue).order_by(Queue.position, Queue.key)))
    form = _tier_form(tier, queues, formdata=True)
    sla_before = tier.sla_hours
    saved = save_form(form, lambda: update_tier(db.session, current_user, tier, form.data))
    if saved is None:
        flash(
            f"The {tier.label} tier was not saved: see the messages next to the fields.", "danger"
        )
        return _page(tier_forms={tier.name: form}, status=422)
    sla_note = (
        f" The new SLA target ({tier.sla_hours} business hours, was {sla_before}) applies to "
        "clocks that start or resume from now on."
        if tier.sla_hours != sla_before
        else ""
    )
    flash(f"{tier.label} tier saved.{sla_note}", "success")
    return redirect(url_for(".index") + f"#tier-{tier.name}")


@bp.route("/queues/<key>", methods=["POST"])
@permission_required(Permission.manage_policies)
def save_queue(key: str) -> Any:
    """Save one queue; errors re-render the page with them next to the fields."""
    queue = db.session.scalars(select(Queue).where(Queue.key == key)).first()
    if queue is None:
        abort(404)
    form = QueueForm(prefix=f"queue-{queue.key}")
    saved = save_form(form, lambda: update_queue(db.session, current_user, queue, form.data))
    if saved is None:
        flash(
            f"The {queue.title} queue was not saved: see the messages next to the fields.", "danger"
        )
        return _page(queue_forms={queue.key: form}, status=422)
    flash(f"{queue.title} queue saved.", "success")
    return redirect(url_for(".index") + f"#queue-{queue.key}")
