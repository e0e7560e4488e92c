"""Fast track: tiers with ``auto_approve`` are approved without a reviewer, except a QA sample
that goes to the ``qa-sample`` queue for a person to decide (config/tiers.yaml)."""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from reviewapp.applications.lifecycle import Action, Actor, next_status
from reviewapp.applications.models import Application, Status
from reviewapp.audit.services import record_event
from reviewapp.db import utcnow
from reviewapp.policies.models import ResponseTemplate
from reviewapp.policies.services import render_template_text
from reviewapp.review.clock import pause_clock
from reviewapp.review.models import Decision, Outcome
from reviewapp.review.tiers import tier_named

QA_QUEUE = "qa-sample"
AUTO_TEMPLATE = "approve-automatic"


def in_qa_sample(reference: str, revision_number: int, rate: float) -> bool:
    """True when this revision falls in the QA sample of share ``rate`` (0..1).

    Deterministic (the first 8 bytes of SHA-256 of ``"<reference>:<revision>"`` read as a
    fraction of 2**64), so the choice can be reproduced and audited; over many applications the
    sampled share converges to ``rate``.
    """
    digest = hashlib.sha256(f"{reference}:{revision_number}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def fast_track(session: Session, application: Application) -> str | None:
    """After triage: approve a queued application of an ``auto_approve`` tier automatically, or
    move it to the QA sample queue. Other tiers are left alone.

    Returns:
        ``"approved"``, ``"qa-sample"`` or None (not fast-tracked).
    """
    from reviewapp.applications.services import snapshot
    from reviewapp.review.services import notify_decision, template_context

    if application.status != Status.queued or application.current_revision is None:
        return None
    tier = tier_named(session, application.risk_tier)
    if tier is None or not tier.auto_approve:
        return None
    number = application.current_revision.number
    before = snapshot(application)
    if in_qa_sample(application.reference, number, tier.qa_sample_rate):
        application.queue = QA_QUEUE
        session.flush()
        record_event(
            session,
            actor=None,
            action="application.qa_sample",
            subject_type="application",
            subject_id=application.reference,
            before=before,
            after={**snapshot(application), "qa_sample_rate": tier.qa_sample_rate},
        )
        return QA_QUEUE
    template = session.scalars(
        select(ResponseTemplate).where(ResponseTemplate.key == AUTO_TEMPLATE)
    ).first()
    if template is None:  # no fast-track message configured: a person reviews it
        return None
    message = render_template_text(template.body, template_context(application, [], [], ""))
    decision = Decision(
        application_id=application.id,
        revision_id=application.current_revision.id,
        outcome=Outcome.approve.value,
        reviewer_id=None,
        template_id=template.id,
        message=message,
        rationale=f"Fast track: tier {tier.name} is approved automatically.",
    )
    session.add(decision)
    session.flush()
    application.status = next_status(application.status, Action.auto_approve, Actor.system)
    application.last_decision_id = decision.id
    pause_clock(application, utcnow())
    session.flush()
    record_event(
        session,
        actor=None,
        action="decision.auto_approve",
        subject_type="application",
        subject_id=application.reference,
        before=before,
        after={**snapshot(application), "decision_id": decision.id},
    )
    notify_decision(session, application, Outcome.approve, message)
    return "approved"
