"""Idempotency keys for API calls that create things (create application, submit).

A client sends ``Idempotency-Key: <1–200 printable ASCII characters>``. The first request with
a key stores its response; a retry with the same key and the same request replays that response
(header ``Idempotent-Replayed: true``) instead of acting twice; the same key with a different
request is refused (422 ``idempotency_key_reused``). Keys are per user and kept
IDEMPOTENCY_TTL_SECONDS (default 24 h). Two concurrent requests with one key: the unique
constraint makes the second wait for the first and then replay it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from reviewapp.db import Base, utcnow
from reviewapp.errors import ValidationFailed

KEY_MAX = 200


class IdempotencyRecord(Base):
    """The stored response of the first request made with an idempotency key."""

    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("user_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(KEY_MAX))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None]
    response_body: Mapped[dict[str, Any] | None]
    location: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """SHA-256 of the method, path and canonical JSON body (hex)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def check_key(key: str) -> str:
    """Validate an Idempotency-Key header value.

    Raises:
        ValidationFailed: empty, too long or not printable ASCII.
    """
    if not key or len(key) > KEY_MAX or not all(32 < ord(c) < 127 for c in key):
        raise ValidationFailed(
            f"Idempotency-Key must be 1–{KEY_MAX} printable ASCII characters without spaces.",
            fields={"Idempotency-Key": "invalid"},
        )
    return key


def begin(
    session: Session, user_id: int, key: str, fingerprint: str, ttl_seconds: int
) -> IdempotencyRecord:
    """Reserve ``key`` for this request, or return the earlier record for a retry.

    Returns:
        A record: ``status_code`` None means this request is the first and must run;
        otherwise it holds the response to replay.

    Raises:
        ValidationFailed: the key was used for a different request.
    """
    cutoff = utcnow() - dt.timedelta(seconds=ttl_seconds)
    session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.user_id == user_id,
            IdempotencyRecord.key == key,
            IdempotencyRecord.created_at < cutoff,
        )
    )
    existing = _find(session, user_id, key)
    if existing is None:
        record = IdempotencyRecord(user_id=user_id, key=key, request_hash=fingerprint)
        try:
            with session.begin_nested():
                session.add(record)
            return record
        except IntegrityError:  # a concurrent request holds the key: it has committed now
            existing = _find(session, user_id, key)
            assert existing is not None
    if existing.request_hash != fingerprint:
        raise ValidationFailed(
            "This Idempotency-Key was already used for a different request.",
            fields={"Idempotency-Key": "reused with another request"},
        )
    return existing


def _find(session: Session, user_id: int, key: str) -> IdempotencyRecord | None:
    return session.scalars(
        select(IdempotencyRecord).where(
            IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key
        )
    ).first()
