"""Personal API tokens in the browser (``/account/tokens``): list, create, revoke.

A new token's clear value (``ra_<prefix>_<secret>``) appears once, in the response to the create
form; only a SHA-256 hash of the secret is stored, so no page can show it again. A revoked token
stops authenticating at the next request (:func:`reviewapp.auth.services.user_for_token`).

The rules live in :func:`create_personal_token` and :func:`revoke_token` (services: session and
actor passed in, flush only, domain errors), the views only load, authorize and act.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, make_response, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reviewapp.applications.forms import choices
from reviewapp.audit.services import record_event
from reviewapp.auth.forms import TokenForm
from reviewapp.auth.models import ApiToken, Permission, User
from reviewapp.auth.services import issue_token
from reviewapp.db import utcnow
from reviewapp.errors import (
    ConflictError,
    DomainError,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from reviewapp.extensions import db
from reviewapp.limits import LIMITS
from reviewapp.web import act, consume_form_once, show_form_errors

bp = Blueprint("tokens", __name__, url_prefix="/account/tokens")

MAX_ACTIVE_TOKENS = 20
MAX_NAME_LENGTH = LIMITS["token.name"]

# every scope the API checks (token_required), in display order, with what it allows
SCOPES: dict[str, str] = {
    "read": "read: look up applications, their revisions and lists",
    "write": "write: create, edit, submit, resubmit, withdraw and appeal applications",
    "review": "review: work the review queue (claim, release, decide)",
}


def scopes_for(user: User) -> tuple[str, ...]:
    """The scopes ``user`` may give a token: read for everyone; write for the roles that file
    applications (developers); review for the roles that work the queue (reviewer, senior
    reviewer, admin). A scope the role could never use is not offered."""
    scopes = ["read"]
    if user.can(Permission.submit_applications):
        scopes.append("write")
    if user.can(Permission.view_queue):
        scopes.append("review")
    return tuple(scopes)


def active_token_count(session: Session, user: User) -> int:
    """How many of ``user``'s tokens are not revoked."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(ApiToken)
            .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        )
        or 0
    )


def create_personal_token(
    session: Session, user: User, *, name: str, scopes: list[str] | tuple[str, ...]
) -> str:
    """Issue a personal API token for ``user`` (audited as ``api_token.create``, without the
    secret).

    Args:
        name: 1–100 characters after trimming.
        scopes: a non-empty subset of :func:`scopes_for` ``(user)``; stored space-separated in
            the order of :data:`SCOPES`.

    Returns:
        the clear token ``ra_<prefix>_<secret>``; show it once, it cannot be recovered.

    Raises:
        ValidationFailed: bad name or no scope (``fields`` name the field).
        PermissionDenied: a scope the user's role may not grant (e.g. ``review`` for a developer).
        ConflictError: the user already has :data:`MAX_ACTIVE_TOKENS` active tokens.
    """
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise ValidationFailed(
            f"Give the token a name of 1 to {MAX_NAME_LENGTH} characters.",
            fields={"name": f"use 1 to {MAX_NAME_LENGTH} characters"},
        )
    wanted = set(scopes)
    if not wanted:
        raise ValidationFailed("Choose at least one scope.", fields={"scopes": "choose one"})
    allowed = scopes_for(user)
    refused = sorted(wanted - set(allowed))
    if refused:
        raise PermissionDenied(
            f"Your role cannot give a token the {', '.join(refused)} scope. "
            f"Choose among: {', '.join(allowed)}.",
            fields={"scopes": f"choose among {', '.join(allowed)}"},
        )
    # lock the user's row so two simultaneous creations cannot both pass the count below
    session.execute(select(User.id).where(User.id == user.id).with_for_update())
    if active_token_count(session, user) >= MAX_ACTIVE_TOKENS:
        raise ConflictError(
            f"You already have {MAX_ACTIVE_TOKENS} active tokens, the most allowed. "
            "Revoke one you no longer use, then create the new one."
        )
    scope_text = " ".join(s for s in SCOPES if s in wanted)
    return issue_token(session, user, name=name, scopes=scope_text)


def revoke_token(session: Session, user: User, token_id: int) -> bool:
    """Revoke ``user``'s token ``token_id`` now (audited as ``api_token.revoke``).

    Returns:
        True when revoked now, False when it was already revoked (nothing changes).

    Raises:
        NotFound (via :func:`own_token`): no such token, or it belongs to someone else.
    """
    token = own_token(session, user, token_id, lock=True)
    if token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    record_event(
        session,
        actor=user,
        action="api_token.revoke",
        subject_type="api_token",
        subject_id=token.id,
        before={"revoked_at": None},
        after={"name": token.name, "revoked_at": token.revoked_at.isoformat()},
    )
    session.flush()
    return True


def own_token(session: Session, user: User, token_id: int, *, lock: bool = False) -> ApiToken:
    """``user``'s token ``token_id`` (``lock``: FOR UPDATE).

    Raises:
        NotFound: no such token, or another user's (the same answer, so ids reveal nothing).
    """
    query = select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user.id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    token = session.scalars(query).first()
    if token is None:
        raise NotFound("There is no such token among yours.")
    return token


def _form(*, blank: bool = False) -> TokenForm:
    # ``blank``: ignore the submitted values (the form starts empty again after a creation)
    form = TokenForm(formdata=None) if blank else TokenForm()
    form.scopes.choices = choices((s, SCOPES[s]) for s in scopes_for(current_user))
    return form


def _page(form: TokenForm, status: int = 200, new_token: str | None = None) -> Any:
    tokens = db.session.scalars(
        select(ApiToken)
        .where(ApiToken.user_id == current_user.id)
        .order_by(ApiToken.revoked_at.is_not(None), ApiToken.created_at.desc(), ApiToken.id.desc())
    ).all()
    response = make_response(
        render_template(
            "auth/tokens.html",
            form=form,
            tokens=tokens,
            new_token=new_token,
            active_count=sum(1 for t in tokens if t.revoked_at is None),
            max_active=MAX_ACTIVE_TOKENS,
        ),
        status,
    )
    # the create response carries a secret: keep every version of this page out of caches
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("", methods=["GET"])
@login_required
def index() -> Any:
    """The signed-in user's tokens (newest active first, then revoked) and the create form."""
    return _page(_form())


@bp.route("", methods=["POST"])
@login_required
def create() -> Any:
    """Create a token; 201 with the clear token shown once, 422 (bad input), 403 (scope the
    role may not grant), 409 (too many active tokens) re-render the form with what was typed."""
    form = _form()
    if form.validate_on_submit() and not consume_form_once("api-token"):
        flash(
            "That form was already sent (the page was reloaded): no second token was created.",
            "warning",
        )
        return redirect(url_for(".index"), 303)
    if not form.validate_on_submit():
        return _page(form, 422)
    try:
        clear = create_personal_token(
            db.session, current_user, name=form.name.data or "", scopes=form.scopes.data or []
        )
        db.commit()
    except DomainError as exc:
        db.rollback()
        show_form_errors(form, exc)
        return _page(form, exc.status)
    return _page(_form(blank=True), 201, new_token=clear)


@bp.route("/<int:token_id>/revoke", methods=["POST"])
@login_required
def revoke(token_id: int) -> Any:
    """Revoke one of the user's tokens (POST with CSRF); another user's token id is 404."""
    try:
        token = own_token(db.session, current_user, token_id)
    except NotFound:
        abort(404)
    name = token.name
    act(
        lambda: revoke_token(db.session, current_user, token_id),
        lambda revoked: (
            f"Token “{name}” revoked: it no longer works."
            if revoked
            else f"Token “{name}” was already revoked."
        ),
        "success",
    )
    return redirect(url_for(".index"))
