"""Managing users as an admin: invite, set-password links, role changes, deactivation.

Every change writes an audit event in the caller's transaction; services flush, never commit.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from reviewapp.audit.services import record_event
from reviewapp.auth.models import ApiToken, Organization, Permission, Role, User
from reviewapp.auth.services import create_user, get_or_create_organization, normalise_name
from reviewapp.db import is_postgres, utcnow
from reviewapp.errors import ConflictError, NotFound, PermissionDenied, ValidationFailed

INVITE_SALT = "reviewapp.invite"
DEFAULT_INVITE_MAX_AGE = 7 * 24 * 3600  # seconds; setting INVITE_MAX_AGE_SECONDS overrides
MIN_PASSWORD_LENGTH = 10


# --- listing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserFilters:
    """The user list's filters; empty values mean "any"."""

    email: str = ""
    role: str = ""
    organization_id: int | None = None
    active: bool | None = None


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_users(
    session: Session, filters: UserFilters, *, page: int = 1, per_page: int = 50
) -> tuple[list[User], int]:
    """Users matching ``filters`` (email substring, case-insensitive), by email.

    Returns:
        (users on ``page`` with their organization loaded, total matching).
    """
    stmt = select(User)
    if filters.email.strip():
        pattern = f"%{_like_escape(filters.email.strip().lower())}%"
        stmt = stmt.where(func.lower(User.email).like(pattern, escape="\\"))
    if filters.role:
        stmt = stmt.where(User.role == filters.role)
    if filters.organization_id is not None:
        stmt = stmt.where(User.organization_id == filters.organization_id)
    if filters.active is not None:
        stmt = stmt.where(User.active.is_(filters.active))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    users = session.scalars(
        stmt.options(joinedload(User.organization))
        .order_by(User.email, User.id)
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return list(users), total


# --- set-password links ----------------------------------------------------------------------


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=INVITE_SALT)


def _hash_fingerprint(user: User) -> str:
    # the token is signed, not encrypted: carry a digest of the password hash, never the hash
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:32]


def make_password_token(user: User, secret_key: str) -> str:
    """A signed, URL-safe token that lets ``user`` choose a password once.

    It names the user and a digest of their current password hash, so it stops working as soon
    as the password changes (i.e. once used); its age is checked by :func:`user_for_password_token`.
    """
    return _serializer(secret_key).dumps({"u": user.id, "h": _hash_fingerprint(user)})


class LinkExpired(ConflictError):
    """A set-password link older than its maximum age."""

    code = "link_expired"
    status = 410


def user_for_password_token(
    session: Session, token: str, secret_key: str, *, max_age: int = DEFAULT_INVITE_MAX_AGE
) -> User:
    """The active user a set-password token was issued for.

    Args:
        max_age: seconds the link stays valid after it was issued.

    Raises:
        LinkExpired: the link is older than ``max_age`` (status 410).
        NotFound: the token is forged or malformed, was already used (the password changed
            since), or its user is gone or deactivated.
    """
    serializer = _serializer(secret_key)
    try:
        data: Any = serializer.loads(token, max_age=max_age)
    except SignatureExpired:
        raise LinkExpired(
            "This set-password link has expired. Ask an admin for a new one."
        ) from None
    except BadSignature:
        raise NotFound("This set-password link is not valid or was already used.") from None
    user_id = data.get("u") if isinstance(data, dict) else None
    user = session.get(User, user_id) if isinstance(user_id, int) else None
    if user is None or not user.active or data.get("h") != _hash_fingerprint(user):
        raise NotFound("This set-password link is not valid or was already used.")
    return user


def set_password_with_token(
    session: Session,
    token: str,
    password: str,
    secret_key: str,
    *,
    max_age: int = DEFAULT_INVITE_MAX_AGE,
) -> User:
    """Set the password of the token's user (Argon2id via :meth:`User.set_password`). The new
    hash invalidates the token; the user's other sessions end (session epoch bumped) and their
    API tokens are revoked, as on a password reset: a link an admin sends to an existing
    account replaces its password for the same reason (an invited account has no tokens).

    Raises:
        LinkExpired, NotFound: see :func:`user_for_password_token`.
        ValidationFailed: the password is shorter than 10 characters (field ``password``).
    """
    user = user_for_password_token(session, token, secret_key, max_age=max_age)
    _replace_password(session, user, password, "user.set_password")
    revoke_all_tokens(session, user, user, "password set from an admin's link")
    return user


def issue_password_link(session: Session, actor: User, user: User, secret_key: str) -> str:
    """A fresh set-password token for ``user`` (e.g. the invite link expired), audited.

    Raises:
        ConflictError: the user is deactivated.
    """
    if not user.active:
        raise ConflictError(f"{user.email} is deactivated; reactivate the account first.")
    record_event(
        session,
        actor=actor,
        action="user.password_link",
        subject_type="user",
        subject_id=user.id,
    )
    return make_password_token(user, secret_key)


# --- invitations -----------------------------------------------------------------------------


def invite_user(
    session: Session,
    actor: User,
    *,
    email: str,
    name: str,
    role: Role,
    organization_id: int | None,
    new_organization: str = "",
) -> User:
    """Create an account with an unusable random password (the invitee sets one through the
    link from :func:`make_password_token`). The organization is an existing one
    (``organization_id``) or, when that is None, ``new_organization`` (found or created by name).

    Raises:
        ValidationFailed: bad email (field ``email``); no organization chosen or named
            (``new_organization``); unknown ``organization_id`` (``organization``).
        ConflictError: the email is already registered (field ``email``).
    """
    if organization_id is not None:
        organization = session.get(Organization, organization_id)
        if organization is None:
            raise ValidationFailed(
                "That organization does not exist.",
                fields={"organization": "choose an organization from the list"},
            )
    else:
        if not new_organization.strip():
            raise ValidationFailed(
                "Choose an organization or name a new one.",
                fields={"new_organization": "name the new organization, or choose one above"},
            )
        try:
            normalise_name(new_organization)
        except ValidationFailed as exc:  # the form's field for the name is new_organization
            raise ValidationFailed(
                exc.message, fields={"new_organization": exc.fields["organization"]}
            ) from None
        organization, created = get_or_create_organization(session, new_organization)
        if created:
            record_event(
                session,
                actor=actor,
                action="organization.create",
                subject_type="organization",
                subject_id=organization.id,
                after={"name": organization.name},
            )
    # nobody knows this password: the account is usable only after the link is followed
    return create_user(
        session,
        email=email,
        password=secrets.token_urlsafe(48),
        role=role,
        organization=organization,
        name=name,
        actor=actor,
    )


# --- role, deactivation ----------------------------------------------------------------------


def _lock_active_admins(session: Session) -> list[int]:
    """Ids of the active admins, in id order; on PostgreSQL their rows are locked (FOR UPDATE)
    until the transaction ends.

    Every admin row is locked, the one being changed included, and always in the same order:
    locking only the *other* admins let two admins demoting each other lock disjoint rows, so
    both checks passed (or the pair deadlocked). With one order the second transaction waits
    for the first to commit and then re-reads the rows it waited for, no longer counting the
    admin the first one demoted."""
    stmt = select(User.id).where(User.role == Role.admin, User.active.is_(True)).order_by(User.id)
    if is_postgres(session):
        stmt = stmt.with_for_update()
    return list(session.scalars(stmt).all())


def _last_admin_error(user: User, what: str) -> ConflictError:
    return ConflictError(
        f"{user.email} is the last active admin; make someone else an admin before {what}.",
        fields={"role": "the last active admin keeps this role"},
    )


def _ensure_not_last_admin(session: Session, user: User, what: str) -> None:
    """Refuse (ConflictError) to take away ``user``'s admin role or activity when nobody else
    would be left an active admin. Call before the change; call
    :func:`_ensure_an_admin_remains` after it is flushed."""
    if not (user.role == Role.admin and user.active):
        return
    if not [i for i in _lock_active_admins(session) if i != user.id]:
        raise _last_admin_error(user, what)


def _ensure_an_admin_remains(session: Session, user: User, what: str) -> None:
    """After the change is flushed, within the same transaction: at least one active admin is
    left, or ConflictError (the caller rolls back). The check before the change locks rows on
    PostgreSQL only; this one also covers SQLite, where writers are serialized but a check
    could read before another transaction's write was committed."""
    if not _lock_active_admins(session):
        raise _last_admin_error(user, what)


def release_claims(session: Session, actor: User, user: User) -> list[str]:
    """Give every application ``user`` holds back to its queue, one audit event each
    (``application.release``). Returns the references released."""
    from reviewapp.applications.lifecycle import Action, Actor
    from reviewapp.applications.models import Application
    from reviewapp.applications.services import unclaim

    stmt = select(Application).where(Application.claimed_by_id == user.id).order_by(Application.id)
    if is_postgres(session):
        stmt = stmt.with_for_update()
    released = []
    for application in session.scalars(stmt).all():
        unclaim(
            session,
            application,
            Action.release,
            Actor.reviewer,
            actor=actor,
            audit_action="application.release",
        )
        released.append(application.reference)
    return released


def change_role(session: Session, actor: User, user: User, role: Role) -> list[str]:
    """Give ``user`` a new role, audited with before/after. A role that cannot claim releases
    the user's claims. Returns the references released.

    Raises:
        PermissionDenied: ``actor`` is ``user`` (field ``role``).
        ConflictError: ``user`` is the last active admin (field ``role``); the role is unchanged.
    """
    if actor.id == user.id:
        raise PermissionDenied(
            "You cannot change your own role; ask another admin.",
            fields={"role": "ask another admin to change your role"},
        )
    before = Role(user.role)
    if before == role:
        raise ConflictError(
            f"{user.email} is already {role.replace('_', ' ')}.",
            fields={"role": "choose a different role"},
        )
    if before == Role.admin:
        _ensure_not_last_admin(session, user, "changing this role")
    user.role = role
    session.flush()
    if before == Role.admin:
        _ensure_an_admin_remains(session, user, "changing this role")
    record_event(
        session,
        actor=actor,
        action="user.role",
        subject_type="user",
        subject_id=user.id,
        before={"role": str(before)},
        after={"role": str(role)},
    )
    if not user.can(Permission.claim):
        return release_claims(session, actor, user)
    return []


@dataclass(frozen=True)
class Deactivation:
    """What deactivating a user undid."""

    released: list[str]  # application references given back to their queues
    tokens_revoked: int


def check_may_deactivate(actor: User, user: User) -> None:
    """Check the refusals that need no lock (the last-admin rule is checked when deactivating):
    the browser asks before showing its confirmation page.

    Raises:
        PermissionDenied: ``actor`` is ``user``.
        ConflictError: already deactivated.
    """
    if actor.id == user.id:
        raise PermissionDenied("You cannot deactivate your own account; ask another admin.")
    if not user.active:
        raise ConflictError(f"{user.email} is already deactivated.")


def deactivate_user(session: Session, actor: User, user: User) -> Deactivation:
    """Deactivate ``user``: log-in refused, sessions ended (session epoch bumped), API tokens
    revoked and every claim released, each audited.

    Raises:
        PermissionDenied: ``actor`` is ``user``.
        ConflictError: already deactivated, or the last active admin.
    """
    check_may_deactivate(actor, user)
    was_admin = user.role == Role.admin
    _ensure_not_last_admin(session, user, "deactivating this account")
    user.active = False
    user.session_epoch += 1
    if was_admin:
        session.flush()
        _ensure_an_admin_remains(session, user, "deactivating this account")
    tokens_revoked = revoke_all_tokens(session, user, actor, "user deactivated")
    released = release_claims(session, actor, user)
    record_event(
        session,
        actor=actor,
        action="user.deactivate",
        subject_type="user",
        subject_id=user.id,
        before={"active": True},
        after={"active": False, "tokens_revoked": tokens_revoked, "claims_released": released},
    )
    return Deactivation(released=released, tokens_revoked=tokens_revoked)


def reactivate_user(session: Session, actor: User, user: User) -> User:
    """Let a deactivated user log in again (revoked API tokens stay revoked), audited.

    Raises:
        PermissionDenied: ``actor`` is ``user``.
        ConflictError: the user is already active.
    """
    if actor.id == user.id:
        raise PermissionDenied("You cannot reactivate your own account.")
    if user.active:
        raise ConflictError(f"{user.email} is already active.")
    user.active = True
    session.flush()
    record_event(
        session,
        actor=actor,
        action="user.reactivate",
        subject_type="user",
        subject_id=user.id,
        before={"active": False},
        after={"active": True},
    )
    return user


# --- self-service password reset --------------------------------------------------------------

RESET_SALT = "reviewapp.password-reset"
DEFAULT_RESET_MAX_AGE = 3600  # seconds; setting PASSWORD_RESET_MAX_AGE_SECONDS overrides


def _reset_serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=RESET_SALT)


def make_reset_token(user: User, secret_key: str) -> str:
    """A signed, URL-safe password-reset token for ``user``.

    Like the set-password link it carries a digest of the current password hash, so it works
    once (setting the password changes the hash) and stops working if the password changes
    another way; a different salt keeps reset and invite tokens apart. The age is checked by
    :func:`user_for_reset_token`.
    """
    return _reset_serializer(secret_key).dumps({"u": user.id, "h": _hash_fingerprint(user)})


def user_for_reset_token(
    session: Session, token: str, secret_key: str, *, max_age: int = DEFAULT_RESET_MAX_AGE
) -> User:
    """The active user a password-reset token was issued for.

    Raises:
        LinkExpired: older than ``max_age`` seconds (status 410).
        NotFound: forged, malformed, already used, or the user is gone or deactivated.
    """
    try:
        data: Any = _reset_serializer(secret_key).loads(token, max_age=max_age)
    except SignatureExpired:
        raise LinkExpired(
            "This password-reset link has expired. Ask for a new one on the log-in page."
        ) from None
    except BadSignature:
        raise NotFound("This password-reset link is not valid or was already used.") from None
    user_id = data.get("u") if isinstance(data, dict) else None
    user = session.get(User, user_id) if isinstance(user_id, int) else None
    if user is None or not user.active or data.get("h") != _hash_fingerprint(user):
        raise NotFound("This password-reset link is not valid or was already used.")
    return user


def revoke_all_tokens(session: Session, user: User, actor: User | None, reason: str) -> int:
    """Revoke every active API token of ``user``, each audited (``api_token.revoke``) with
    ``reason``; returns how many were revoked. Flushes, never commits."""
    now = utcnow()
    tokens = session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ).all()
    for token in tokens:
        token.revoked_at = now
    session.flush()
    for token in tokens:
        record_event(
            session,
            actor=actor,
            action="api_token.revoke",
            subject_type="api_token",
            subject_id=token.id,
            after={"user": user.email, "reason": reason},
        )
    return len(tokens)


def _replace_password(session: Session, user: User, password: str, action: str) -> User:
    """Give ``user`` a new password (Argon2id), end their other sessions, audit ``action``.

    Raises:
        ValidationFailed: the password is shorter than MIN_PASSWORD_LENGTH (field ``password``).
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"Passwords need at least {MIN_PASSWORD_LENGTH} characters.",
            fields={"password": f"use at least {MIN_PASSWORD_LENGTH} characters"},
        )
    user.set_password(password)
    user.session_epoch += 1
    session.flush()
    record_event(session, actor=user, action=action, subject_type="user", subject_id=user.id)
    return user


def reset_password_with_token(
    session: Session,
    token: str,
    password: str,
    secret_key: str,
    *,
    max_age: int = DEFAULT_RESET_MAX_AGE,
) -> tuple[User, int]:
    """Set a new password from a reset token; the token is used up, other sessions end and the
    account's API tokens are revoked (a reset is how someone who lost control of an account
    takes it back: a token made by whoever had it must stop working too).

    Returns:
        (the user, how many API tokens were revoked).

    Raises:
        LinkExpired, NotFound: see :func:`user_for_reset_token`.
        ValidationFailed: the password is shorter than 10 characters (field ``password``).
    """
    user = user_for_reset_token(session, token, secret_key, max_age=max_age)
    _replace_password(session, user, password, "user.reset_password")
    return user, revoke_all_tokens(session, user, user, "password reset")


# --- self-service password change (signed in) ---------------------------------------------------


def change_password(
    session: Session, user: User, current_password: str, new_password: str
) -> tuple[User, int]:
    """A signed-in user replaces their password, proving it with the current one.

    Like a reset, the new hash (Argon2id via :func:`_replace_password`) ends every other
    session of the account (the session epoch is bumped; the caller logs the current one in
    again) and makes any pending reset or set-password link unusable. Unlike a reset, API
    tokens are kept: the person knew the password and is still in control, and revoking
    would silently break their scripts; the email and the page say how many still work and
    where to revoke them. Audited as ``user.change_password``; a "your password was changed"
    email goes to the account's address through the outbox, in the same transaction.

    Returns:
        (the user, how many active API tokens the account still has).

    Raises:
        ValidationFailed: the current password is wrong (field ``current_password``), the new
            one is shorter than MIN_PASSWORD_LENGTH or equals the current one (field
            ``password``).
    """
    from reviewapp.audit.services import add_outbox_event
    from reviewapp.web import external_url

    if not user.check_password(current_password):
        raise ValidationFailed(
            "the current password you entered is wrong.",
            # a message next to the field, not a password
            fields={"current_password": "This is not your current password."},  # nosec B105
        )
    if new_password == current_password:
        raise ValidationFailed(
            "The new password is the same as the current one.",
            # a message next to the field, not a password
            fields={"password": "Choose a password different from the current one."},  # nosec B105
        )
    _replace_password(session, user, new_password, "user.change_password")
    tokens = (
        session.scalar(
            select(func.count())
            .select_from(ApiToken)
            .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        )
        or 0
    )
    token_text = (
        f"Your {tokens} API token{'s' if tokens != 1 else ''} still work{'s' if tokens == 1 else ''}"
        f"; revoke any you did not create here: {external_url('tokens.index')}\n\n"
        if tokens
        else ""
    )
    add_outbox_event(
        session,
        "password_changed",
        {
            "to": [user.email],
            "subject": "Your review app password was changed",
            "body": "The password of this account was changed from its account page, and "
            "every other session of the account was logged out.\n\n"
            f"{token_text}"
            "If it was not you, reset your password now (a reset also revokes every API "
            f"token of the account) and tell your admin:\n\n"
            f"{external_url('auth.password_reset_request')}\n",
        },
    )
    return user, tokens
