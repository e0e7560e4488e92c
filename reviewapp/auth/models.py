"""Organizations, users, roles, permissions and API tokens."""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask_login import UserMixin
from sqlalchemy import ForeignKey, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from reviewapp.db import Base, utcnow
from reviewapp.limits import LIMITS

_hasher = PasswordHasher()  # Argon2id with the library's RFC 9106 low-memory defaults


class Role(enum.StrEnum):
    """User roles (DESIGN.md §1)."""

    developer = "developer"
    reviewer = "reviewer"
    senior_reviewer = "senior_reviewer"
    admin = "admin"


class Permission(enum.StrEnum):
    """Every permission in the product; roles map to sets of these (ROLE_PERMISSIONS)."""

    submit_applications = "submit_applications"
    view_own_organization = "view_own_organization"
    view_queue = "view_queue"
    view_all_applications = "view_all_applications"
    claim = "claim"
    decide = "decide"
    decide_senior = "decide_senior"
    admin_console = "admin_console"
    manage_rulesets = "manage_rulesets"
    manage_policies = "manage_policies"
    manage_users = "manage_users"


_REVIEW = {
    Permission.view_queue,
    Permission.view_all_applications,
    Permission.claim,
    Permission.decide,
}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.developer: frozenset({Permission.submit_applications, Permission.view_own_organization}),
    Role.reviewer: frozenset(_REVIEW),
    Role.senior_reviewer: frozenset(_REVIEW | {Permission.decide_senior}),
    Role.admin: frozenset(
        _REVIEW
        | {
            Permission.decide_senior,
            Permission.admin_console,
            Permission.manage_rulesets,
            Permission.manage_policies,
            Permission.manage_users,
        }
    ),
}


class Organization(Base):
    """A developer organization (or the platform's own trust-and-safety team)."""

    __tablename__ = "organization"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(LIMITS["organization.name"]), unique=True)
    join_code: Mapped[str] = mapped_column(
        String(LIMITS["organization.join_code"]),
        default=lambda: secrets.token_urlsafe(12),
        unique=True,
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    users: Mapped[list[User]] = relationship(back_populates="organization")


class User(UserMixin, Base):
    """A person who logs in. Email is unique case-insensitively (stored lower-cased)."""

    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(LIMITS["user.email"]))
    name: Mapped[str] = mapped_column(String(LIMITS["user.name"]), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(String(32), default=Role.developer)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="RESTRICT"))
    active: Mapped[bool] = mapped_column(default=True)
    session_epoch: Mapped[int] = mapped_column(default=0)
    # IANA time zone in which the user reads times ("" = the team's reference zone)
    timezone: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    organization: Mapped[Organization] = relationship(back_populates="users")

    def set_password(self, password: str) -> None:
        """Hash ``password`` with Argon2id and store the hash."""
        self.password_hash = _hasher.hash(password)

    def check_password(self, password: str) -> bool:
        """True when ``password`` matches the stored hash."""
        try:
            return _hasher.verify(self.password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    @property
    def is_active(self) -> bool:  # Flask-Login reads this
        return self.active

    def get_id(self) -> str:
        """Flask-Login identity: id and session epoch, so bumping the epoch ends old sessions."""
        return f"{self.id}:{self.session_epoch}"

    def can(self, permission: Permission) -> bool:
        """True when the user's role grants ``permission``."""
        return permission in ROLE_PERMISSIONS[Role(self.role)]

    @property
    def is_reviewer(self) -> bool:
        return self.can(Permission.view_queue)

    @property
    def is_admin(self) -> bool:
        return self.can(Permission.admin_console)


Index("uq_user_account_email_lower", func.lower(User.email), unique=True)


def hash_token_secret(secret: str) -> str:
    """SHA-256 hex digest of an API token secret (secrets are 32 random bytes, so a fast hash
    is enough; the clear secret is never stored)."""
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiToken(Base):
    """A personal API token. The clear token is ``ra_<prefix>_<secret>``, shown once."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(LIMITS["token.name"]), default="")
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(100), default="read write")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]

    user: Mapped[User] = relationship()

    @classmethod
    def issue(
        cls, user: User, *, name: str = "", scopes: str = "read write"
    ) -> tuple[ApiToken, str]:
        """Create a token for ``user``; returns (token row, clear token string)."""
        prefix = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        row = cls(
            user=user,
            name=name,
            prefix=prefix,
            secret_hash=hash_token_secret(secret),
            scopes=scopes,
        )
        return row, f"ra_{prefix}_{secret}"
