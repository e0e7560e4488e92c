"""JSON API ``/api/v1`` (personal API tokens; the same services as the browser)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request
from sqlalchemy import func, or_, select

from reviewapp.applications.models import Application, Status
from reviewapp.applications.schema import load_vocabularies
from reviewapp.applications.services import create_application, get_application, submit_application
from reviewapp.auth.models import Permission, User
from reviewapp.auth.services import user_for_token
from reviewapp.errors import BadRequest, DomainError, PermissionDenied, ValidationFailed
from reviewapp.extensions import csrf, db
from reviewapp.review.models import Decision
from reviewapp.review.services import tier_labels
from reviewapp.triage.services import latest_triage_result
from reviewapp.web import json_error

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # token-authenticated; browsers' cookies are not accepted here


def token_required(scope: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: a valid ``Authorization: Bearer ra_…`` token with ``scope``; sets g.api_user."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer "):
                return json_error(
                    401,
                    "unauthorized",
                    "Send a personal API token as 'Authorization: Bearer <token>'.",
                )
            found = user_for_token(db.session, header[7:])
            if found is None:
                return json_error(
                    401,
                    "unauthorized",
                    "The API token is invalid, revoked or belongs to a deactivated user.",
                )
            user, token = found
            if scope not in token.scopes.split():
                return json_error(
                    403, "insufficient_scope", f"This token lacks the {scope!r} scope."
                )
            g.api_user = user
            db.commit()  # last_used_at
            return view(*args, **kwargs)

        return wrapper

    return decorator


def _user() -> User:
    return g.api_user  # type: ignore[no-any-return]


def serialize_summary(application: Application) -> dict[str, Any]:
    """List item shape."""
    return {
        "reference": application.reference,
        "external_ref": application.external_ref,
        "title": application.title,
        "organization": application.organization.name,
        "status": application.status,
        "risk_tier": application.risk_tier,
        "queue": application.queue,
        "submitted_at": application.submitted_at.isoformat() if application.submitted_at else None,
    }


def serialize_application(application: Application) -> dict[str, Any]:
    """Full application shape (content of the current revision, triage, decision)."""
    revision = application.current_revision
    triage = latest_triage_result(db.session, revision.id) if revision is not None else None
    decision = (
        db.session.get(Decision, application.last_decision_id)
        if application.last_decision_id
        else None
    )
    content = (
        revision.content
        if revision is not None and application.status != Status.draft
        else application.draft
    )
    return {
        **serialize_summary(application),
        "content": content,
        "draft": application.draft
        if application.status in (Status.draft, Status.mitigations_requested)
        else None,
        "revision": revision.number if revision is not None else None,
        "flags": application.flags,
        "sla_due_at": application.sla_due_at.isoformat() if application.sla_due_at else None,
        "created_at": application.created_at.isoformat(),
        "triage": None
        if triage is None
        else {
            "ruleset_version": triage.ruleset_version.number,
            "tier": triage.tier,
            "queue": triage.queue,
            "fired_rules": [
                {
                    "key": f["key"],
                    "name": f["name"],
                    "actions": f["actions"],
                    "explanation": f["explanation"],
                }
                for f in triage.fired
            ],
            "flags": triage.flags,
            "errors": triage.errors,
        },
        "decision": None
        if decision is None
        else {
            "outcome": decision.outcome,
            "message": decision.message,
            "decided_at": decision.decided_at.isoformat(),
            "revision": next(
                (r.number for r in application.revisions if r.id == decision.revision_id), None
            ),
            "citations": [
                {
                    "id": c.policy_section_version.section.key,
                    "number": c.policy_section_version.section.number,
                    "title": c.policy_section_version.section.title,
                    "version": c.policy_section_version.version,
                }
                for c in decision.citations
            ],
            # request_mitigations: what to meet and answer; approve: the conditions of approval
            "safety_requirements": [
                {
                    "id": r.safety_requirement.key,
                    "title": r.safety_requirement.title,
                    "reason": r.reason,
                    "parameters": dict(r.parameters or {}),
                    "attested": bool((r.answer or {}).get("attested")),
                }
                for r in decision.required_safety_requirements
            ],
            "conditional": decision.outcome == "approve"
            and bool(decision.required_safety_requirements),
        },
    }


@bp.route("/vocabularies")
def vocabularies() -> Any:
    """Allowed values of category, end_users, domains, modalities, and the tiers in order."""
    vocab = load_vocabularies()
    return jsonify(
        {
            "category": list(vocab.categories),
            "end_users": list(vocab.end_users),
            "domains": list(vocab.domains),
            "modalities": list(vocab.modalities),
            "tiers": list(tier_labels(db.session)),
            "labels": {
                "category": vocab.categories,
                "end_users": vocab.end_users,
                "domains": vocab.domains,
                "modalities": vocab.modalities,
            },
        }
    )


def _json_body() -> dict[str, Any]:
    """The request's JSON object. Raises BadRequest (400) for anything else."""
    if not request.is_json:
        raise BadRequest("Send a JSON object with Content-Type: application/json.")
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # absurdly deep nesting
        body = None
    if not isinstance(body, dict):
        raise BadRequest("The body is not a JSON object (malformed JSON, or another JSON type).")
    return body


@bp.route("/applications", methods=["POST"])
@token_required("write")
def create() -> Any:
    """Create a draft from the JSON body; ``"submit": true`` submits it at once (201)."""
    body = _json_body()
    submit = body.pop("submit", False)
    if not isinstance(submit, bool):
        raise ValidationFailed(
            "'submit' must be true or false.", fields={"submit": "must be a boolean"}
        )
    try:
        application = create_application(db.session, _user(), body)
        if submit:
            submit_application(db.session, _user(), application)
    except DomainError:
        db.rollback()
        raise
    db.commit()
    response = jsonify(serialize_application(application))
    response.status_code = 201
    response.headers["Location"] = f"/api/v1/applications/{application.reference}"
    return response


@bp.route("/applications/<reference>")
@token_required("read")
def read(reference: str) -> Any:
    """One application the token's user may see (404 otherwise)."""
    return jsonify(serialize_application(get_application(db.session, _user(), reference)))


@bp.route("/applications")
@token_required("read")
def index() -> Any:
    """Applications the user may see: reviewers all, developers their organization's."""
    user = _user()
    try:
        page = int(request.args.get("page", 1))
        per_page = int(request.args.get("per_page", 25))
    except ValueError:
        raise ValidationFailed(
            "page and per_page must be whole numbers.",
            fields={"page": "integer", "per_page": "integer"},
        ) from None
    max_per_page = current_app.config["API_MAX_PER_PAGE"]
    if not 1 <= page <= 100_000 or not 1 <= per_page <= max_per_page:
        raise ValidationFailed(
            f"page must be ≥ 1 and per_page between 1 and {max_per_page}.",
            fields={"per_page": f"between 1 and {max_per_page}"},
        )
    stmt = select(Application)
    if user.can(Permission.view_all_applications):
        # the review team sees submitted applications; drafts stay with their organization
        stmt = stmt.where(
            or_(
                Application.status != Status.draft,
                Application.organization_id == user.organization_id,
            )
        )
    else:
        if not user.can(Permission.view_own_organization):
            raise PermissionDenied("This account cannot list applications.")
        stmt = stmt.where(Application.organization_id == user.organization_id)
    status, tier = request.args.get("status"), request.args.get("tier")
    if status:
        if status not in Status.__members__:
            raise ValidationFailed(
                f"Unknown status {status!r}.", fields={"status": "unknown value"}
            )
        stmt = stmt.where(Application.status == status)
    if tier:
        if tier not in tier_labels(db.session):
            raise ValidationFailed(f"Unknown tier {tier!r}.", fields={"tier": "unknown value"})
        stmt = stmt.where(Application.risk_tier == tier)
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    items = db.session.scalars(
        stmt.order_by(Application.id.desc()).offset((page - 1) * per_page).limit(per_page)
    ).all()
    return jsonify(
        {
            "items": [serialize_summary(a) for a in items],
            "page": page,
            "per_page": per_page,
            "total": total,
        }
    )
