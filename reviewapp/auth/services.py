"""User, organization and token services."""

from __future__ import annotations

import hmac
import unicodedata

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from reviewapp.audit.services import record_event
from reviewapp.auth.models import ApiToken, Organization, Role, User, hash_token_secret
from reviewapp.db import utcnow
from reviewapp.errors import ConflictError, PermissionDenied, ValidationFailed
from reviewapp.limits import LIMITS

_TOO_SHORT = "too short"  # the field message (a constant: bandit read the literal as a password)


def find_user_by_email(session: Session, email: str) -> User | None:
    """Case-insensitive lookup."""
    return session.scalars(
        select(User).where(func.lower(User.email) == email.strip().lower())
    ).first()


def name_problem(text: str, *, strict: bool = False) -> str | None:
    """Why ``text`` cannot be a name (a person's display name, an organization name), or None.

    Names are one line of visible text, shown in pages, emails and the audit trail. Refused, as
    application titles refuse them (reviewapp.applications.schema): control characters (line
    breaks, tabs, ESC and NUL included) and lone surrogates, found by
    :func:`~reviewapp.applications.schema.unstorable_character`, and the invisible direction
    controls U+202A-U+202E, U+2066-U+2069. With ``strict`` (organization names, which identify
    an organization, so look-alikes must not exist) also every other invisible format character
    (zero-width spaces and joiners, soft hyphen, byte-order mark), private-use and unassigned
    code points.

    Returns:
        e.g. "contains the control character U+001B; remove it", or None.
    """
    from reviewapp.applications.schema import BIDI_CONTROLS, unstorable_character

    bad = unstorable_character(text)
    if bad is None:
        for char in text:
            code = ord(char)
            category = unicodedata.category(char)
            if char in "\t\n\r":
                bad = f"the control character U+{code:04X} (a name is one line)"
            elif char in "\u2028\u2029":
                bad = f"the line separator U+{code:04X} (a name is one line)"
            elif char in BIDI_CONTROLS:
                bad = f"the invisible direction control U+{code:04X}"
            elif strict and category == "Cf":
                bad = f"the invisible character U+{code:04X}"
            elif strict and category == "Co":
                bad = f"the private-use character U+{code:04X}"
            elif strict and category == "Cn":
                bad = f"the unassigned code point U+{code:04X}"
            if bad is not None:
                break
    return None if bad is None else f"contains {bad}; remove it"


def check_display_name(name: str) -> str:
    """A person's display name as stored: stripped of surrounding white space.

    Raises:
        ValidationFailed: the name holds a character :func:`name_problem` refuses (field
            ``name``).
    """
    problem = name_problem(name)
    if problem is not None:
        raise ValidationFailed(f"The name {problem}.", fields={"name": problem})
    return name.strip()


def normalise_name(name: str) -> str:
    """An organization name as stored: NFKC-normalised and white space collapsed, so two names
    that look the same are the same (the comparison also ignores case).

    Invisible and control characters are refused rather than removed (see
    :func:`name_problem` with ``strict``): removing them silently stored a name other than the
    one typed.

    Raises:
        ValidationFailed: a refused character, or nothing visible is left (field
            ``organization``).
    """
    problem = name_problem(name, strict=True)
    if problem is not None:
        raise ValidationFailed(
            f"The organization name {problem}.", fields={"organization": problem}
        )
    text = " ".join(unicodedata.normalize("NFKC", name).split())
    if not text:
        raise ValidationFailed(
            "The organization name is empty.", fields={"organization": "enter a name"}
        )
    return text


def get_or_create_organization(session: Session, name: str) -> tuple[Organization, bool]:
    """Return (organization, created); names compare after :func:`normalise_name`, ignoring case."""
    name = normalise_name(name)
    org = session.scalars(
        select(Organization).where(func.lower(Organization.name) == name.lower())
    ).first()
    if org is not None:
        return org, False
    org = Organization(name=name)
    session.add(org)
    session.flush()
    return org, True


def create_user(
    session: Session,
    *,
    email: str,
    password: str,
    role: Role,
    organization: Organization,
    name: str = "",
    actor: User | None = None,
) -> User:
    """Create a user.

    Raises:
        ConflictError: the email is taken.
        ValidationFailed: the password is shorter than 10 characters; the name holds a control
            or invisible direction character (see :func:`check_display_name`).
    """
    try:
        email = validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValidationFailed(
            f"Not a valid email address: {exc}", fields={"email": str(exc)}
        ) from None
    if find_user_by_email(session, email) is not None:
        raise ConflictError(
            "An account with this email already exists.", fields={"email": "already registered"}
        )
    if len(password) < 10:
        raise ValidationFailed(
            "Passwords need at least 10 characters.",
            fields={"password": _TOO_SHORT},
        )
    name = check_display_name(name)
    user = User(email=email.strip().lower(), name=name, role=role, organization=organization)
    user.set_password(password)
    session.add(user)
    session.flush()
    record_event(
        session,
        actor=actor or user,
        action="user.create",
        subject_type="user",
        subject_id=user.id,
        after={"email": user.email, "role": str(role), "organization": organization.name},
    )
    return user


def register_developer(
    session: Session,
    *,
    name: str,
    email: str,
    password: str,
    organization_name: str,
    join_code: str,
) -> User:
    """Self-service sign-up: creates the organization, or joins it with its join code.

    Raises:
        ConflictError (email taken), PermissionDenied (existing organization, wrong join code).
    """
    org, created = get_or_create_organization(session, organization_name)
    if not created and not hmac.compare_digest(org.join_code.encode(), join_code.strip().encode()):
        raise PermissionDenied(
            "That organization already exists. Ask a member for its join code to join it.",
            fields={"join_code": "ask a member of the organization for the join code"},
        )
    return create_user(
        session, email=email, password=password, role=Role.developer, organization=org, name=name
    )


def rename_user(session: Session, user: User, name: str) -> User:
    """Change ``user``'s display name (white space around it removed, as at sign-up), audited
    as ``user.rename`` with the old and new names; an unchanged name writes nothing. Flushes.

    Raises:
        ValidationFailed: the name is empty or longer than ``LIMITS["user.name"]`` code points
            (field ``name``).
    """
    name = name.strip()
    if not name:
        raise ValidationFailed("Enter your name.", fields={"name": "Enter your name."})
    if len(name) > LIMITS["user.name"]:
        limit = LIMITS["user.name"]
        raise ValidationFailed(
            f"Names are at most {limit} characters.",
            fields={"name": f"Use at most {limit} characters."},
        )
    if name == user.name:
        return user
    before = user.name
    user.name = name
    session.flush()
    record_event(
        session,
        actor=user,
        action="user.rename",
        subject_type="user",
        subject_id=user.id,
        before={"name": before},
        after={"name": name},
    )
    return user


_DUMMY: list[User] = []


def _dummy_user() -> User:
    if not _DUMMY:
        dummy = User()
        dummy.set_password("not-a-real-password")
        _DUMMY.append(dummy)
    return _DUMMY[0]


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The active user with this email and password, else None (same answer for every failure)."""
    user = find_user_by_email(session, email)
    if user is None:
        # spend the same time as a real check so the response time does not reveal accounts
        _dummy_user().check_password(password)
        return None
    if not user.check_password(password) or not user.active:
        return None
    return user


#: seconds; how stale a token's recorded last use may be (see :func:`user_for_token`)
TOKEN_LAST_USED_RESOLUTION_SECONDS = 60


def user_for_token(session: Session, token: str) -> tuple[User, ApiToken] | None:
    """Resolve ``ra_<prefix>_<secret>`` to its active user; None if invalid.

    Records the last use to the minute: ``last_used_at`` is written only when it is unset or
    older than :data:`TOKEN_LAST_USED_RESOLUTION_SECONDS`, so a busy client does not write the
    token row (and take its row lock) on every request.
    """
    parts = token.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != "ra":
        return None
    row = session.scalars(
        # the user in the same statement: every API request needs both
        select(ApiToken)
        .options(joinedload(ApiToken.user, innerjoin=True))
        .where(ApiToken.prefix == parts[1])
    ).first()
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.secret_hash, hash_token_secret(parts[2])):
        return None
    if not row.user.active:
        return None
    now = utcnow()
    last = row.last_used_at
    if last is None or (now - last).total_seconds() >= TOKEN_LAST_USED_RESOLUTION_SECONDS:
        row.last_used_at = now
    return row.user, row


def issue_token(
    session: Session, user: User, *, name: str = "cli", scopes: str = "read write"
) -> str:
    """Create an API token for ``user``; returns the clear token (shown once)."""
    row, clear = ApiToken.issue(user, name=name, scopes=scopes)
    session.add(row)
    session.flush()
    record_event(
        session,
        actor=user,
        action="api_token.create",
        subject_type="api_token",
        subject_id=row.id,
        after={"name": name, "scopes": scopes},
    )
    return clear
