"""Webhook endpoints of developer organizations and the deliveries made to them."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from reviewapp.auth.models import Organization, User
from reviewapp.db import Base, utcnow
from reviewapp.limits import LIMITS


class DeliveryStatus(enum.StrEnum):
    """Where a delivery is. ``sending`` is held only during one HTTP attempt (with a start
    time the sweeper checks); ``delivered`` and ``failed`` end it until a redelivery."""

    pending = "pending"
    sending = "sending"
    delivered = "delivered"
    failed = "failed"


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class WebhookEndpoint(Base):
    """An HTTPS URL an organization registered to receive events.

    ``secret`` is kept in clear on purpose: every delivery is signed with it (HMAC-SHA256), so
    it cannot be stored as a one-way hash the way API tokens are. It is shown to the developer
    only when created or rotated and never written to the audit log.
    ``event_types`` lists subscribed event kinds; ``["*"]`` means every kind.
    """

    __tablename__ = "webhook_endpoint"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(LIMITS["webhook.url"]))
    secret: Mapped[str] = mapped_column(String(100))
    event_types: Mapped[list[Any]] = mapped_column(default=list)
    active: Mapped[bool] = mapped_column(default=True)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="RESTRICT"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    secret_rotated_at: Mapped[dt.datetime | None]

    organization: Mapped[Organization] = relationship()
    created_by: Mapped[User] = relationship()

    def subscribes_to(self, event_type: str) -> bool:
        """True when this endpoint wants events of ``event_type``."""
        return "*" in self.event_types or event_type in self.event_types


class WebhookDelivery(Base):
    """One event for one endpoint, with its attempts. At-least-once: ``event_id`` stays the same
    across retries and redeliveries so the receiver can deduplicate.

    Times are UTC. ``retry_until``: after a failed attempt no retry is scheduled past it (the row
    becomes ``failed``). ``sending_started_at``: set while an attempt is in flight.
    """

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        CheckConstraint(f"status IN ({_in(tuple(DeliveryStatus))})", name="status_known"),
        CheckConstraint(
            "(status = 'sending') = (sending_started_at IS NOT NULL)", name="sending_has_start"
        ),
        CheckConstraint(
            "status <> 'pending' OR next_attempt_at IS NOT NULL", name="pending_is_due"
        ),
        CheckConstraint("status <> 'delivered' OR delivered_at IS NOT NULL", name="delivered_at"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        # the dispatcher and the sweeper scan by status and time
        Index("ix_webhook_delivery_status_next", "status", "next_attempt_at"),
        Index("ix_webhook_delivery_endpoint_created", "endpoint_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoint.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(80))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.pending)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime | None]
    sending_started_at: Mapped[dt.datetime | None]
    retry_until: Mapped[dt.datetime]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    endpoint: Mapped[WebhookEndpoint] = relationship()
