"""JSON API ``/api/v1`` (personal API tokens; the same services as the browser).

Every operation is described in the OpenAPI 3.1 document at ``/api/v1/openapi.json``, which
apispec builds from the YAML block at the end of each view's docstring and the marshmallow
schemas in reviewapp/api/schemas.py.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request, url_for
from marshmallow import Schema
from marshmallow import ValidationError as MarshmallowValidationError
from sqlalchemy import and_, func, literal, or_, select, tuple_

from reviewapp.api import schemas
from reviewapp.api.idempotency import begin, check_key, request_fingerprint
from reviewapp.applications.diff import diff_contents
from reviewapp.applications.models import Application, Status, statuses_shown_as
from reviewapp.applications.schema import load_vocabularies
from reviewapp.applications.services import (
    create_application,
    get_application,
    sees_internal_status,
    status_seen_by,
    statuses_seen_by,
    submit_application,
    update_draft,
    withdraw_application,
)
from reviewapp.auth.models import Permission, User
from reviewapp.auth.services import user_for_token
from reviewapp.db import UTCDateTime
from reviewapp.errors import (
    BadRequest,
    DomainError,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    ValidationFailed,
)
from reviewapp.extensions import csrf, db
from reviewapp.policies.models import PolicySection
from reviewapp.policies.services import sections_in_order
from reviewapp.review.mitigations import AnswerInput, RequirementInput, answer_requirements
from reviewapp.review.models import Decision
from reviewapp.review.services import (
    QUEUE_COUNT_LIMIT,
    DecisionInput,
    QueueFilters,
    check_queue_filters,
    claim,
    claim_next,
    decide,
    file_appeal,
    list_queue,
    release,
    renew_lease,
    tier_labels,
)
from reviewapp.triage.services import latest_triage_result
from reviewapp.web import json_error

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # token-authenticated; browsers' cookies are not accepted here


def token_required(scope: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: a valid ``Authorization: Bearer ra_…`` token with ``scope``; sets g.api_user."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not credentials.strip():  # RFC 7235: any case
                return _unauthorized(
                    "Send a personal API token as 'Authorization: Bearer <token>'."
                )
            found = user_for_token(db.session, credentials.strip())
            if found is None:
                return _unauthorized(
                    "The API token is invalid, revoked or belongs to a deactivated user."
                )
            user, token = found
            if scope not in token.scopes.split():
                return json_error(
                    403, "insufficient_scope", f"This token lacks the {scope!r} scope."
                )
            g.api_user = user
            if db.session.dirty:
                db.commit()  # last_used_at (written at most once a minute)
            return view(*args, **kwargs)

        wrapper.required_scope = scope  # type: ignore[attr-defined]  # read by api/openapi.py
        return wrapper

    return decorator


def _unauthorized(message: str) -> Any:
    response = json_error(401, "unauthorized", message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="reviewapp"'
    return response


def _user() -> User:
    return g.api_user  # type: ignore[no-any-return]


def serialize_summary(application: Application) -> dict[str, Any]:
    """List item shape, as the token's user sees it: ``status`` is the real status for the
    review team and the applicant's view of it (``in_review`` while a second approval is
    awaited) for the applying organization (see ``status_seen_by``)."""
    return {
        "reference": application.reference,
        "external_ref": application.external_ref,
        "title": application.title,
        "organization": application.organization.name,
        "status": status_seen_by(_user(), application).value,
        "risk_tier": application.risk_tier,
        "queue": application.queue,
        "submitted_at": application.submitted_at.isoformat() if application.submitted_at else None,
        "sla_due_at": application.sla_due_at.isoformat() if application.sla_due_at else None,
    }


def serialize_application(application: Application) -> dict[str, Any]:
    """Full application shape (content of the current revision, triage, decision, and the
    end of the token user's own lease when they hold it)."""
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
        "queue_position": queue_position(application),
        "version": application.version,
        # only the caller's own lease: who else holds it is none of a token's business
        "lease_expires_at": application.lease_expires_at.isoformat()
        if application.lease_expires_at is not None and application.is_claimed_by(_user())
        else None,
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
    """Allowed values of category, end_users, domains, modalities, and the tiers in order.
    ---
    get:
      summary: Allowed values of the content fields
      tags: [Applications]
      security: []
      responses:
        200: {description: Vocabularies, content: {application/json: {schema: Vocabularies}}}
    """
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


def queue_position(application: Application) -> int | None:
    """1-based place of a waiting application in its queue, in the queue's own order (SLA due
    time, then higher tier, then longer wait, then id; what claim-next follows), among the
    applications still waiting for a reviewer (claimed ones ahead are being reviewed and do
    not count); None when it is not waiting, or when :data:`QUEUE_COUNT_LIMIT` or more are
    ahead of it (the count stops there, like the queue page's: an exact count deep in a queue
    of 100,000 reads that many index entries, ~30 ms at 1M applications)."""
    if application.status != Status.queued or application.sla_due_at is None:
        return None
    a = Application
    due = literal(application.sla_due_at, UTCDateTime())
    queued_at = literal(application.queued_at, UTCDateTime())
    rank = literal(application.tier_rank)
    ahead_rows = (
        select(a.id)
        .where(
            a.queue == application.queue,
            a.status == Status.queued,  # ix_application_queue_position's predicate
            a.sla_due_at <= due,  # the index range; ties are sorted out below
            or_(
                a.sla_due_at < due,
                a.tier_rank > rank,
                and_(
                    a.tier_rank == rank,
                    tuple_(a.queued_at, a.id) < tuple_(queued_at, literal(application.id)),
                ),
            ),
        )
        .limit(QUEUE_COUNT_LIMIT)
        .subquery()
    )
    ahead = int(db.session.scalar(select(func.count()).select_from(ahead_rows)) or 0)
    return None if ahead >= QUEUE_COUNT_LIMIT else ahead + 1


def etag_of(application: Application) -> str:
    """The application's entity tag: its reference and version counter."""
    return f"{application.reference}-v{application.version}"


def _check_if_match(application: Application) -> None:
    """Refuse an update whose ``If-Match`` names an older version (412)."""
    if request.if_match and not request.if_match.contains(etag_of(application)):
        raise PreconditionFailed(
            f"{application.reference} changed since you read it (its ETag is now "
            f'"{etag_of(application)}"); read it again and retry.'
        )


def _application_response(application: Application, status: int = 200) -> Any:
    """The application as JSON with its ETag. Flushes first, so the answer shows the version
    this request writes; a caller that commits builds the answer before committing, while the
    relations loaded on the way are still current (a commit expires them)."""
    db.session.flush()
    response = jsonify(serialize_application(application))
    response.status_code = status
    # no 304 for If-None-Match: the ETag is the version (what If-Match checks), and the answer
    # also holds the queue position, which moves without a new version
    response.set_etag(etag_of(application))
    return response


def _load(schema: Schema, body: dict[str, Any]) -> dict[str, Any]:
    """Validate ``body`` with a marshmallow schema. Raises ValidationFailed (422) naming
    each bad field."""
    try:
        return dict(schema.load(body))
    except MarshmallowValidationError as exc:
        raise ValidationFailed(
            "Some fields are invalid.", fields=_flatten(exc.normalized_messages())
        ) from None


def _flatten(messages: Any, prefix: str = "") -> dict[str, str]:
    """Marshmallow's nested messages as ``{"a.0.b": "problem"}`` (JSON paths, dotted)."""
    if isinstance(messages, dict):
        out: dict[str, str] = {}
        for key, value in messages.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return {prefix or "body": " ".join(messages)}
    return {prefix or "body": str(messages)}


def _form_field_to_json_path(name: str) -> str:
    """``reason-<id>`` / ``param-<id>-<name>`` (form field names shared with the browser) as
    the JSON paths of the decision body."""
    if name.startswith("reason-"):
        return f"safety_requirements.{name[len('reason-') :]}.reason"
    if name.startswith("param-"):
        key, _, param = name[len("param-") :].rpartition("-")
        return f"safety_requirements.{key}.parameters.{param}"
    return name


def _idempotent(run: Callable[[], tuple[dict[str, Any], int, str | None]]) -> Any:
    """Run a creating action at most once per ``Idempotency-Key`` (see api/idempotency.py).

    ``run`` returns (JSON body, status, Location or None); the caller commits nothing.
    """
    key = request.headers.get("Idempotency-Key")
    record = None
    if key is not None:
        fingerprint = request_fingerprint(
            request.method, request.path, request.get_json(silent=True)
        )
        record = begin(
            db.session,
            _user().id,
            check_key(key),
            fingerprint,
            int(current_app.config["IDEMPOTENCY_TTL_SECONDS"]),
        )
        if record.status_code is not None:
            db.commit()
            response = jsonify(record.response_body)
            response.status_code = record.status_code
            response.headers["Idempotent-Replayed"] = "true"
            body = record.response_body or {}
            if "version" in body and "reference" in body:
                response.set_etag(f"{body['reference']}-v{body['version']}")
            if record.location:
                response.headers["Location"] = record.location
            return response
    try:
        body, status, location = run()
        if record is not None:
            record.status_code, record.response_body, record.location = status, body, location
        db.commit()
    except DomainError:
        db.rollback()
        raise
    response = jsonify(body)
    response.status_code = status
    if location:
        response.headers["Location"] = location
    if "version" in body and "reference" in body:
        response.set_etag(f"{body['reference']}-v{body['version']}")
    return response


def _act(reference: str, action: Callable[[Application], Any], *, if_match: bool = True) -> Any:
    """Load the application, check If-Match, run a service, commit, return the application."""
    application = get_application(db.session, _user(), reference)
    if if_match:
        _check_if_match(application)
    try:
        action(application)
        response = _application_response(application)
        db.commit()
    except DomainError:
        db.rollback()
        raise
    return response


@bp.route("/applications", methods=["POST"])
@token_required("write")
def create() -> Any:
    """Create a draft; ``"submit": true`` submits it at once. Idempotency-Key supported.
    ---
    post:
      summary: Create an application (and optionally submit it)
      tags: [Applications]
      parameters: [IdempotencyKey]
      requestBody:
        required: true
        content: {application/json: {schema: CreateApplication}}
      responses:
        201: {description: Created, content: {application/json: {schema: ApplicationOut}}}
        400: Error
        401: Error
        403: Error
        422: Error
    """
    body = _json_body()
    submit = body.pop("submit", False)
    if not isinstance(submit, bool):
        raise ValidationFailed(
            "'submit' must be true or false.", fields={"submit": "must be a boolean"}
        )

    def run() -> tuple[dict[str, Any], int, str | None]:
        application = create_application(db.session, _user(), body)
        if submit:
            submit_application(db.session, _user(), application)
        db.session.flush()
        return (
            serialize_application(application),
            201,
            f"/api/v1/applications/{application.reference}",
        )

    return _idempotent(run)


@bp.route("/applications/<reference>")
@token_required("read")
def read(reference: str) -> Any:
    """One application the token's user may see (404 otherwise), with its ETag.
    ---
    get:
      summary: Read an application (status, tier, queue position, SLA estimate, decision)
      tags: [Applications]
      parameters: [Reference]
      responses:
        200:
          description: The application; the ETag header is its version
          content: {application/json: {schema: ApplicationOut}}
        401: Error
        403: Error
        404: Error
    """
    return _application_response(get_application(db.session, _user(), reference))


@bp.route("/applications/<reference>", methods=["PATCH"])
@token_required("write")
def patch(reference: str) -> Any:
    """Edit the draft (partial content) and/or answer the requested safety requirements.
    ---
    patch:
      summary: Edit a draft, or answer a mitigation request
      tags: [Applications]
      parameters:
        - Reference
        - IfMatch
      requestBody:
        required: true
        content: {application/json: {schema: PatchApplication}}
      responses:
        200: {description: Updated, content: {application/json: {schema: ApplicationOut}}}
        400: Error
        401: Error
        403: Error
        404: Error
        409: Error
        412: Error
        422: Error
    """
    body = _json_body()
    answers = body.pop("answers", None)
    if answers is not None and not isinstance(answers, dict):
        raise ValidationFailed("'answers' must be an object.", fields={"answers": "object"})

    def run(application: Application) -> None:
        if "title" in body and not str(body.get("title") or "").strip():
            raise ValidationFailed(
                "An application needs a title.", fields={"title": "must not be empty"}
            )
        if body:
            update_draft(db.session, _user(), application, body, partial=True)
        if answers is not None:
            given = {}
            for key, raw in answers.items():
                if not isinstance(raw, dict):
                    raise ValidationFailed(
                        f"The answer to {key!r} must be an object.",
                        fields={f"answers.{key}": "object"},
                    )
                try:
                    loaded = schemas.Answer().load(raw)
                except MarshmallowValidationError as exc:
                    raise ValidationFailed(
                        f"The answer to {key!r} is invalid.",
                        fields=_flatten(exc.normalized_messages(), f"answers.{key}"),
                    ) from None
                given[str(key)] = AnswerInput(
                    attested=loaded["attested"],
                    details=loaded["details"],
                    link=loaded.get("link", ""),
                )
            answer_requirements(db.session, _user(), application, given)
        if not body and answers is None:
            raise ValidationFailed("Nothing to change: send content fields or answers.")

    return _act(reference, run)


@bp.route("/applications/<reference>/submit", methods=["POST"])
@token_required("write")
def submit(reference: str) -> Any:
    """Submit a draft for review (triage and queue). Idempotency-Key supported.
    ---
    post:
      summary: Submit a draft
      tags: [Applications]
      parameters:
        - Reference
        - IfMatch
        - IdempotencyKey
      responses:
        200: {description: Submitted, content: {application/json: {schema: ApplicationOut}}}
        401: Error
        403: Error
        404: Error
        409: Error
        412: Error
        422: Error
    """
    return _transition(reference, Status.draft, "submit")


@bp.route("/applications/<reference>/resubmit", methods=["POST"])
@token_required("write")
def resubmit(reference: str) -> Any:
    """Resubmit after answering every requested safety requirement (a new revision).
    ---
    post:
      summary: Resubmit after mitigations
      tags: [Applications]
      parameters:
        - Reference
        - IfMatch
        - IdempotencyKey
      responses:
        200: {description: Resubmitted, content: {application/json: {schema: ApplicationOut}}}
        401: Error
        403: Error
        404: Error
        409: Error
        412: Error
        422: Error
    """
    return _transition(reference, Status.mitigations_requested, "resubmit")


def _transition(reference: str, expected: Status, verb: str) -> Any:
    application = get_application(db.session, _user(), reference)

    def run() -> tuple[dict[str, Any], int, str | None]:
        # inside run: a retry with the same Idempotency-Key is replayed before this check
        _check_if_match(application)
        if application.status != expected:
            raise InvalidTransition(
                f"Only an application that is {expected.label.lower()} can be {verb}ted; "
                f"{application.reference} is {status_seen_by(_user(), application).label.lower()}."
            )
        submit_application(db.session, _user(), application)
        db.session.flush()
        return serialize_application(application), 200, None

    return _idempotent(run)


@bp.route("/applications/<reference>/withdraw", methods=["POST"])
@token_required("write")
def withdraw(reference: str) -> Any:
    """Withdraw an open application.
    ---
    post:
      summary: Withdraw
      tags: [Applications]
      parameters:
        - Reference
        - IfMatch
      responses:
        200: {description: Withdrawn, content: {application/json: {schema: ApplicationOut}}}
        401: Error
        403: Error
        404: Error
        409: Error
        412: Error
    """
    return _act(reference, lambda a: withdraw_application(db.session, _user(), a))


@bp.route("/applications/<reference>/appeal", methods=["POST"])
@token_required("write")
def appeal(reference: str) -> Any:
    """Appeal a rejection, once per revision, with a statement.
    ---
    post:
      summary: Appeal a rejection
      tags: [Applications]
      parameters:
        - Reference
        - IfMatch
      requestBody:
        required: true
        content: {application/json: {schema: AppealIn}}
      responses:
        200: {description: Appealed, content: {application/json: {schema: ApplicationOut}}}
        400: Error
        401: Error
        403: Error
        404: Error
        409: Error
        412: Error
        422: Error
    """
    data = _load(schemas.AppealIn(), _json_body())
    return _act(reference, lambda a: file_appeal(db.session, _user(), a, data["statement"]))


@bp.route("/applications/<reference>/revisions")
@token_required("read")
def revisions(reference: str) -> Any:
    """Every submitted revision, oldest first.
    ---
    get:
      summary: List revisions
      tags: [Applications]
      parameters: [Reference]
      responses:
        200: {description: Revisions, content: {application/json: {schema: RevisionList}}}
        401: Error
        403: Error
        404: Error
    """
    application = get_application(db.session, _user(), reference)
    return jsonify(
        {
            "items": [
                {
                    "number": r.number,
                    "submitted_at": r.submitted_at.isoformat(),
                    "content": r.content,
                }
                for r in application.revisions
            ]
        }
    )


@bp.route("/applications/<reference>/revisions/<int:number>/diff")
@token_required("read")
def revision_diff(reference: str, number: int) -> Any:
    """Field-by-field changes of revision ``number`` against ``against`` (default: previous).
    ---
    get:
      summary: Diff two revisions
      tags: [Applications]
      parameters:
        - Reference
        - {in: path, name: number, required: true, schema: {type: integer, minimum: 1}}
        - {in: query, name: against, schema: {type: integer, minimum: 1}, description: "Default: number - 1."}
      responses:
        200: {description: Changes, content: {application/json: {schema: DiffOut}}}
        401: Error
        403: Error
        404: Error
        422: Error
    """
    application = get_application(db.session, _user(), reference)
    raw = request.args.get("against")
    try:
        against = int(raw) if raw is not None else number - 1
    except ValueError:
        raise ValidationFailed(
            "'against' must be a revision number.", fields={"against": "integer"}
        ) from None
    by_number = {r.number: r for r in application.revisions}
    if number not in by_number or against not in by_number:
        raise NotFound(
            f"{application.reference} has no revision {number if number not in by_number else against}."
        )
    changes = diff_contents(by_number[against].content, by_number[number].content)
    return jsonify(
        {
            "revision": number,
            "against": against,
            "changes": [
                {
                    "field": c.name,
                    "label": c.label,
                    "kind": c.kind,
                    "before": c.before,
                    "after": c.after,
                    "added": c.added,
                    "removed": c.removed,
                    "segments": [list(s) for s in c.segments],
                }
                for c in changes
            ],
        }
    )


@bp.route("/queue")
@token_required("review")
def queue() -> Any:
    """The reviewer's queue in queue order (SLA due, tier, age), filtered like the browser's.
    ---
    get:
      summary: List the review queue
      tags: [Review]
      parameters:
        - Page
        - PerPage
        - {in: query, name: queue, schema: {type: string}, description: "a queue your role works"}
        - {in: query, name: tier, schema: {type: string}, description: "a risk tier's name"}
        - {in: query, name: status, schema: {type: string, enum: [queued, in_review, awaiting_second_approval, appealed]}}
        - {in: query, name: age_days, schema: {type: integer, minimum: 0, maximum: 3650}, description: "queued at least this many days ago"}
        - {in: query, name: view, schema: {type: string, enum: [due_soon, overdue, unclaimed, mine]}}
      responses:
        200: {description: One page, content: {application/json: {schema: QueuePage}}}
        401: Error
        403: Error
        422: Error
    """
    filters = _queue_filters(("queue", "tier", "status", "age_days", "view"))
    page, per_page = _paging()
    # counted up to QUEUE_COUNT_LIMIT: an exact count of a queue of 200,000 took ~100 ms
    items, total = list_queue(
        db.session,
        _user(),
        filters,
        page=page,
        per_page=per_page,
        count_limit=QUEUE_COUNT_LIMIT,
    )
    return jsonify(
        {
            "items": [serialize_summary(a) for a in items],
            "page": page,
            "per_page": per_page,
            "total": min(total, QUEUE_COUNT_LIMIT),
            "total_capped": total > QUEUE_COUNT_LIMIT,
        }
    )


@bp.route("/queue/claim-next", methods=["POST"])
@token_required("review")
def claim_next_api() -> Any:
    """Claim the next application in queue order, within the queue filters given (as
    ``GET /queue`` takes them); 204 when nothing is claimable. The filters go in the query
    string only: a request body other than none or ``{}`` is refused (422) rather than ignored,
    so that ``{"tier": "low"}`` sent as JSON cannot silently claim from every tier.
    ---
    post:
      summary: Claim the next application
      tags: [Review]
      parameters:
        - {in: query, name: queue, schema: {type: string}, description: "a queue your role works"}
        - {in: query, name: tier, schema: {type: string}, description: "a risk tier's name"}
        - {in: query, name: status, schema: {type: string, enum: [queued, in_review, awaiting_second_approval, appealed]}}
        - {in: query, name: age_days, schema: {type: integer, minimum: 0, maximum: 3650}, description: "queued at least this many days ago"}
        - {in: query, name: view, schema: {type: string, enum: [due_soon, overdue, unclaimed]}}
      responses:
        200: {description: Claimed, content: {application/json: {schema: ApplicationOut}}}
        204: {description: Nothing to claim}
        401: Error
        403: Error
        409: Error
        422: Error
    """
    _refuse_claim_body()
    filters = _queue_filters(("queue", "tier", "status", "age_days", "view"), claiming=True)
    application = claim_next(db.session, _user(), filters=filters)
    if application is None:
        db.rollback()
        return "", 204
    response = _application_response(application)
    db.commit()
    return response


@bp.route("/applications/<reference>/claim", methods=["POST"])
@token_required("review")
def claim_api(reference: str) -> Any:
    """Claim this application (one picked from ``GET /queue``), under the same rules as the
    browser's Claim button: a reviewer allowed to work its queue, not from its organization,
    within the claim limit; a second approval or an appeal is not for the reviewer who gave
    the first approval or made the appealed decision. Claiming one you already hold answers
    200 and leaves the lease as it is (renew extends it). The answer's ``lease_expires_at``
    says until when it is yours.
    ---
    post:
      summary: Claim an application
      tags: [Review]
      parameters: [Reference]
      responses:
        200: {description: Claimed, content: {application/json: {schema: ApplicationOut}}}
        401: Error
        403: Error
        404: Error
        409: Error
    """
    return _act(reference, lambda a: claim(db.session, _user(), a), if_match=False)


@bp.route("/applications/<reference>/renew", methods=["POST"])
@token_required("review")
def renew_api(reference: str) -> Any:
    """Extend your unexpired lease on an application you hold by the lease length, from now;
    409 when the lease already ended (claim it again).
    ---
    post:
      summary: Renew a claim's lease
      tags: [Review]
      parameters: [Reference]
      responses:
        200: {description: Renewed, content: {application/json: {schema: ApplicationOut}}}
        401: Error
        403: Error
        404: Error
        409: Error
    """
    return _act(reference, lambda a: renew_lease(db.session, _user(), a), if_match=False)


@bp.route("/applications/<reference>/release", methods=["POST"])
@token_required("review")
def release_api(reference: str) -> Any:
    """Give a claimed application back to its queue.
    ---
    post:
      summary: Release a claim
      tags: [Review]
      parameters: [Reference]
      responses:
        200: {description: Released, content: {application/json: {schema: ApplicationOut}}}
        401: Error
        403: Error
        404: Error
        409: Error
    """
    return _act(reference, lambda a: release(db.session, _user(), a), if_match=False)


@bp.route("/applications/<reference>/decisions", methods=["POST"])
@token_required("review")
def decide_api(reference: str) -> Any:
    """Decide the claimed application: approve, request mitigations or reject.
    ---
    post:
      summary: Record a decision
      tags: [Review]
      parameters:
        - Reference
        - IfMatch
      requestBody:
        required: true
        content: {application/json: {schema: DecisionIn}}
      responses:
        201: {description: Decided, content: {application/json: {schema: DecisionCreated}}}
        400: Error
        401: Error
        403: Error
        404: Error
        409: Error
        412: Error
        422: Error
    """
    data = _load(schemas.DecisionIn(), _json_body())
    application = get_application(db.session, _user(), reference)
    _check_if_match(application)
    keys: list[str] = []
    details: dict[str, RequirementInput] = {}
    for item in data.get("safety_requirements") or []:
        if isinstance(item, str):
            keys.append(item)
        elif isinstance(item, dict) and isinstance(item.get("id"), str):
            keys.append(item["id"])
            params = item.get("parameters") or {}
            reason = item.get("reason") or ""
            if isinstance(params, dict) and any(
                not isinstance(v, int) or isinstance(v, bool) for v in params.values()
            ):
                raise ValidationFailed(
                    "Safety requirement parameters are whole numbers.",
                    fields={f"safety_requirements.{item['id']}.parameters": "integers only"},
                )
            if not isinstance(params, dict) or not isinstance(reason, str):
                raise ValidationFailed(
                    "A safety requirement is an id or {id, reason, parameters}.",
                    fields={"safety_requirements": "bad item"},
                )
            details[item["id"]] = RequirementInput(reason=reason, parameters=dict(params))
        else:
            raise ValidationFailed(
                "A safety requirement is an id or {id, reason, parameters}.",
                fields={"safety_requirements": "bad item"},
            )
    decision_input = DecisionInput(
        outcome=data["outcome"],
        citations=list(data.get("citations") or []),
        template_key=data["template"],
        safety_requirements=keys,
        reviewer_note=data.get("message", ""),
        rationale=data.get("rationale", ""),
        expected_version=data.get("version"),
        requirements=details,
    )
    try:
        decision = decide(db.session, _user(), application, decision_input)
        db.commit()
    except ValidationFailed as exc:
        db.rollback()
        raise ValidationFailed(
            exc.message, fields={_form_field_to_json_path(k): v for k, v in exc.fields.items()}
        ) from None
    except DomainError:
        db.rollback()
        raise
    db.session.refresh(application)
    response = jsonify(
        {
            "id": decision.id,
            "outcome": decision.outcome,
            "final": decision.final,
            "application": serialize_application(application),
        }
    )
    response.status_code = 201
    response.set_etag(etag_of(application))  # the application's new version, for If-Match
    return response


@bp.route("/catalogue")
@token_required("read")
def catalogue() -> Any:
    """Outcomes, response templates, safety requirements (with parameters), statuses, tiers.
    ---
    get:
      summary: What a decision may name
      tags: [Review]
      responses:
        200: {description: The catalogue, content: {application/json: {schema: Catalogue}}}
        401: Error
    """
    from reviewapp.policies.models import ResponseTemplate, SafetyRequirement
    from reviewapp.review.models import Outcome

    templates = db.session.scalars(
        select(ResponseTemplate).order_by(ResponseTemplate.outcome, ResponseTemplate.key)
    )
    requirements = db.session.scalars(select(SafetyRequirement).order_by(SafetyRequirement.key))
    return jsonify(
        {
            "outcomes": [o.value for o in Outcome],
            "statuses": [s.value for s in statuses_seen_by(_user())],
            "tiers": list(tier_labels(db.session)),
            "response_templates": [
                {"key": t.key, "title": t.title, "outcome": t.outcome} for t in templates
            ],
            "safety_requirements": [
                {
                    "id": r.key,
                    "title": r.title,
                    "description": r.description,
                    "parameters": list(r.parameters or []),
                }
                for r in requirements
            ],
        }
    )


@bp.route("/policies")
def policies() -> Any:
    """Published policy sections by number (public).
    ---
    get:
      summary: List policy sections
      tags: [Policies]
      security: []
      responses:
        200: {description: Sections, content: {application/json: {schema: PolicyList}}}
    """
    return jsonify(
        {"items": [_policy_summary(s) for s in sections_in_order(db.session) if s.versions]}
    )


@bp.route("/policies/<key>")
def policy(key: str) -> Any:
    """One policy section with every version (public).
    ---
    get:
      summary: Read a policy section and its versions
      tags: [Policies]
      security: []
      parameters: [{in: path, name: key, required: true, schema: {type: string}}]
      responses:
        200: {description: Section, content: {application/json: {schema: PolicyOut}}}
        404: Error
    """
    section = db.session.scalars(select(PolicySection).where(PolicySection.key == key)).first()
    if section is None or not section.versions:
        raise NotFound(f"No policy section {key!r}.")
    return jsonify(
        {
            **_policy_summary(section),
            "versions": [
                {
                    "version": v.version,
                    "effective_date": v.effective_date.isoformat(),
                    "change_summary": v.change_summary,
                    "text": v.text,
                    "upcoming": v.is_upcoming,
                    "url": url_for(
                        "policies.section_version",
                        key=section.key,
                        version=v.version,
                        _external=True,
                    ),
                }
                for v in section.versions
            ],
        }
    )


def _policy_summary(section: PolicySection) -> dict[str, Any]:
    current = section.current  # in force today; None before the first version's date
    return {
        "id": section.key,
        "number": section.number,
        "title": section.title,
        "source": section.source,
        "current_version": current.version if current else None,
        "effective_date": current.effective_date.isoformat() if current else None,
    }


def _refuse_repeated(names: Any) -> None:
    """Refuse a query argument given more than once among ``names`` (422 naming each): which
    of ``tier=high&tier=low`` was meant cannot be guessed, and taking the first silently
    widens or narrows a listing or a claim."""
    repeated = sorted({name for name in names if len(request.args.getlist(name)) > 1})
    if repeated:
        raise ValidationFailed(
            "Give each argument once: " + ", ".join(repeated) + " given more than once.",
            fields={name: "given more than once; give it once" for name in repeated},
        )


def _refuse_claim_body() -> None:
    """claim-next reads its filters from the query string; a body with anything in it is
    refused (422) instead of being ignored. No body, whitespace, or the JSON object ``{}``
    (what many clients send by default) is fine. An oversized body is still a 413."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return
    body: Any = None
    if request.is_json:
        try:
            body = request.get_json(silent=True)
        except RecursionError:  # absurdly deep nesting
            body = None
    if isinstance(body, dict) and not body:
        return
    fields = (
        {str(name): "not read from the body; send it in the query string" for name in body}
        if isinstance(body, dict)
        else {"body": "claim-next takes no body"}
    )
    raise ValidationFailed(
        "claim-next takes no request body: send the queue filters in the query string, "
        "e.g. POST /api/v1/queue/claim-next?tier=high&queue=standard.",
        fields=fields,
    )


def _queue_filters(accepted: tuple[str, ...], *, claiming: bool = False) -> QueueFilters:
    """The queue filters among ``accepted`` from the query string, checked by
    :func:`reviewapp.review.services.check_queue_filters`; a listing also takes ``page`` and
    ``per_page``. Raises ValidationFailed (422) naming every bad or unknown argument, and
    every argument given more than once."""
    _refuse_repeated(request.args.keys())
    return check_queue_filters(
        db.session,
        _user(),
        request.args,
        accepted,
        claiming=claiming,
        other=() if claiming else ("page", "per_page"),
    )


def _paging() -> tuple[int, int]:
    """``page`` and ``per_page`` query arguments. Raises ValidationFailed (422), also when
    one is given more than once."""
    _refuse_repeated(("page", "per_page"))
    max_per_page = int(current_app.config["API_MAX_PER_PAGE"])
    values: dict[str, int] = {}
    problems: dict[str, str] = {}
    for name, default, most in (("page", "1", 100_000), ("per_page", "25", max_per_page)):
        raw = request.args.get(name, default)
        if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= most:
            values[name] = int(raw)
        else:
            problems[name] = f"a whole number from 1 to {most}"
    if problems:
        raise ValidationFailed(
            "; ".join(f"{name} must be {rule}" for name, rule in problems.items()) + ".",
            fields=problems,
        )
    return values["page"], values["per_page"]


@bp.route("/applications")
@token_required("read")
def index() -> Any:
    """Applications the user may see: reviewers all, developers their organization's.
    ---
    get:
      summary: List applications
      tags: [Applications]
      parameters:
        - Page
        - PerPage
        - {in: query, name: status, schema: {type: string}}
        - {in: query, name: tier, schema: {type: string}}
      responses:
        200: {description: One page, content: {application/json: {schema: ApplicationPage}}}
        401: Error
        403: Error
        422: Error
    """
    user = _user()
    page, per_page = _paging()
    stmt = select(Application)
    if user.can(Permission.view_all_applications):
        # the review team sees submitted applications; drafts stay with their organization
        stmt = stmt.where(
            or_(
                (Application.status != Status.draft) & Application.current_revision_id.is_not(None),
                Application.organization_id == user.organization_id,
            )
        )
    else:
        if not user.can(Permission.view_own_organization):
            raise PermissionDenied("This account cannot list applications.")
        stmt = stmt.where(Application.organization_id == user.organization_id)
    _refuse_repeated(("status", "tier"))
    status, tier = request.args.get("status"), request.args.get("tier")
    if status:
        if status not in statuses_seen_by(user):
            raise ValidationFailed(
                f"Unknown status {status!r}.", fields={"status": "unknown value"}
            )
        # as the user sees it: a developer's in_review includes awaiting_second_approval
        shown = (Status(status),) if sees_internal_status(user) else statuses_shown_as(status)
        stmt = stmt.where(Application.status.in_(shown))
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
