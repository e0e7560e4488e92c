"""Admin console (overview; editing screens arrive with the rules-lab and admin issues)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from reviewapp.applications.models import Application
from reviewapp.audit.models import AuditEvent, OutboxEvent
from reviewapp.auth.models import Organization, Permission, User
from reviewapp.extensions import db
from reviewapp.review.services import tier_labels
from reviewapp.triage.models import RulesetVersion
from reviewapp.triage.services import active_ruleset
from reviewapp.web import act, is_safe_next, permission_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.route("")
@permission_required(Permission.admin_console)
def index() -> Any:
    """Counts by status and tier, the active ruleset, recent audit events, users."""
    session = db.session
    by_status = dict(
        session.execute(select(Application.status, func.count()).group_by(Application.status)).all()
    )
    by_tier = dict(
        session.execute(
            select(Application.risk_tier, func.count())
            .where(Application.risk_tier.is_not(None))
            .group_by(Application.risk_tier)
        ).all()
    )
    by_reference = dict(
        session.execute(
            select(Application.reference_tier, func.count())
            .where(Application.reference_tier.is_not(None))
            .group_by(Application.reference_tier)
        ).all()
    )
    try:
        ruleset = active_ruleset(session)
    except Exception:  # noqa: BLE001 - an empty database still shows the console
        ruleset = None
    events = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(25)).all()
    users = session.scalars(select(User).order_by(User.role, User.email).limit(200)).all()
    return render_template(
        "admin/index.html",
        by_status=by_status,
        by_tier=by_tier,
        by_reference=by_reference,
        tiers=tier_labels(session),
        ruleset=ruleset,
        versions=session.scalars(
            select(RulesetVersion).order_by(RulesetVersion.number.desc())
        ).all(),
        events=events,
        actor_emails={u.id: u.email for u in users}
        | {
            u.id: u.email
            for u in session.scalars(
                select(User).where(User.id.in_({e.actor_id for e in events if e.actor_id}))
            )
        },
        users=users,
        organizations=session.scalar(select(func.count()).select_from(Organization)),
        pending_outbox=session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.delivered_at.is_(None))
        ),
    )


@bp.route("/policy-feedback")
@permission_required(Permission.admin_console)
def policy_feedback() -> Any:
    """Reviewers' policy feedback: counts per section, then the newest entries."""
    from reviewapp.policies.models import PolicyFeedback, PolicySection

    session = db.session
    counts = session.execute(
        select(PolicySection, func.count(PolicyFeedback.id))
        .join(PolicyFeedback, PolicyFeedback.policy_section_id == PolicySection.id)
        .group_by(PolicySection.id)
        .order_by(func.count(PolicyFeedback.id).desc())
    ).all()
    entries = session.scalars(
        select(PolicyFeedback).order_by(PolicyFeedback.id.desc()).limit(200)
    ).all()
    authors = {
        u.id: u.email
        for u in session.scalars(select(User).where(User.id.in_({e.author_id for e in entries})))
    }
    return render_template(
        "admin/policy_feedback.html", counts=counts, entries=entries, authors=authors
    )


@bp.route("/claims")
@permission_required(Permission.manage_users)
def claims() -> Any:
    """Who holds what: every claim with its lease, and a form to reassign each."""
    from reviewapp.auth.models import ROLE_PERMISSIONS
    from reviewapp.review.services import current_claims

    session = db.session
    reviewer_roles = [str(r) for r, perms in ROLE_PERMISSIONS.items() if Permission.claim in perms]
    reviewers = session.scalars(
        select(User)
        .where(User.active.is_(True), User.role.in_(reviewer_roles))
        .order_by(User.email)
    ).all()
    held = current_claims(session)
    return render_template(
        "admin/claims.html",
        held=held,
        reviewers=reviewers,
        per_reviewer=Counter(a.claimed_by_id for a in held),
    )


@bp.route("/claims/<reference>/reassign", methods=["POST"])
@permission_required(Permission.manage_users)
def reassign_view(reference: str) -> Any:
    """Give an open application to another reviewer (fresh lease, audited, emailed)."""
    from reviewapp.applications.services import get_application
    from reviewapp.review.services import reassign

    application = get_application(db.session, current_user, reference)
    try:
        reviewer_id = int(request.form.get("reviewer_id", ""))
    except ValueError:
        reviewer_id = 0
    reviewer = db.session.get(User, reviewer_id)
    if reviewer is None:
        flash("Choose the reviewer to give it to.", "danger")
    else:
        act(
            lambda: reassign(db.session, current_user, application, reviewer),
            f"{reference} is now with {reviewer.email}.",
        )
    back = request.form.get("return_to") or ""
    return redirect(back if is_safe_next(back) else url_for(".claims"))


@bp.route("/audit")
@permission_required(Permission.admin_console)
def audit() -> Any:
    """The audit trail, newest first: filter by actor (email), application or other subject,
    action (prefix) and date range (UTC days); each event shows before/after."""
    import datetime as dt
    import json

    from reviewapp.web import page_arg

    session = db.session
    args = {
        k: (request.args.get(k) or "").strip()
        for k in ("actor", "subject", "action", "since", "until")
    }
    stmt = select(AuditEvent)
    problems: dict[str, str] = {}
    if args["actor"]:
        ids = select(User.id).where(User.email.ilike(f"%{args['actor']}%"))
        stmt = stmt.where(AuditEvent.actor_id.in_(ids))
    if args["subject"]:
        subject = args["subject"]
        stmt = stmt.where(
            AuditEvent.subject_id
            == (subject.upper() if subject.upper().startswith("APP-") else subject)
        )
    if args["action"]:
        stmt = stmt.where(AuditEvent.action.startswith(args["action"], autoescape=True))
    reversed_range = bool(args["since"] and args["until"] and args["since"] > args["until"])
    if reversed_range:  # ISO dates compare as text; a bad date is reported below anyway
        problems["until"] = "This day is before the “from” day."
    for key, op in (("since", "ge"), ("until", "lt")):
        if args[key] and not (key == "until" and reversed_range):
            try:
                day = dt.datetime.combine(dt.date.fromisoformat(args[key]), dt.time(), dt.UTC)
                if day.year > 9000:  # the day after must exist (date.max is 9999-12-31)
                    raise ValueError(day)
            except ValueError:
                problems[key] = "Use a date like 2026-11-30 (years up to 9000)."
                continue
            if op == "ge":
                stmt = stmt.where(AuditEvent.created_at >= day)
            else:
                stmt = stmt.where(AuditEvent.created_at < day + dt.timedelta(days=1))

    page = page_arg()
    per_page = 50
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    events = session.scalars(
        stmt.order_by(AuditEvent.id.desc()).offset((page - 1) * per_page).limit(per_page)
    ).all()
    actors = {
        u.id: u.email
        for u in session.scalars(select(User).where(User.id.in_({e.actor_id for e in events})))
    }

    def pretty(value: Any) -> str:
        return (
            "" if value is None else json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False)
        )

    return render_template(
        "admin/audit.html",
        events=events,
        actors=actors,
        args=args,
        problems=problems,
        page=page,
        per_page=per_page,
        total=total,
        pretty=pretty,
        link_args={k: v for k, v in args.items() if v},
    )
