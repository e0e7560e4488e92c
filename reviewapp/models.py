"""Imports every domain's models so ``Base.metadata`` knows all tables (Alembic, tests)."""

from reviewapp.api.idempotency import IdempotencyRecord
from reviewapp.applications.models import Application, Revision
from reviewapp.audit.models import AuditEvent, OutboxEvent
from reviewapp.auth.models import ApiToken, Organization, User
from reviewapp.db import Base
from reviewapp.policies.clarifications import ClarificationRequest  # noqa: F401
from reviewapp.policies.models import (
    PolicyFeedback,
    PolicySection,
    PolicySectionVersion,
    ResponseTemplate,
    SafetyRequirement,
)
from reviewapp.review.models import (
    Appeal,
    Citation,
    Decision,
    Note,
    Queue,
    RequiredSafetyRequirement,
    RiskTier,
)
from reviewapp.triage.models import Backtest, BacktestItem, Rule, RulesetVersion, TriageResult
from reviewapp.webhooks.models import WebhookDelivery, WebhookEndpoint  # noqa: F401

__all__ = [
    "ApiToken",
    "Appeal",
    "Backtest",
    "BacktestItem",
    "Application",
    "AuditEvent",
    "Base",
    "Citation",
    "Decision",
    "IdempotencyRecord",
    "Note",
    "Organization",
    "OutboxEvent",
    "PolicyFeedback",
    "PolicySection",
    "PolicySectionVersion",
    "Queue",
    "RequiredSafetyRequirement",
    "ResponseTemplate",
    "RiskTier",
    "Revision",
    "Rule",
    "RulesetVersion",
    "SafetyRequirement",
    "TriageResult",
    "User",
]
