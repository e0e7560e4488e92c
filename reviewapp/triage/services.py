"""Triage services: loading the active ruleset, triaging revisions, creating ruleset versions."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, joinedload

from reviewapp.applications.models import Application, Revision
from reviewapp.auth.models import User
from reviewapp.db import utcnow
from reviewapp.errors import NotFound
from reviewapp.policies.models import PolicySection, SafetyRequirement
from reviewapp.review.models import Queue, RiskTier
from reviewapp.review.tiers import tier_named
from reviewapp.triage.engine import CompiledRuleset, TriageOutcome, canonical_hash
from reviewapp.triage.models import Rule, RulesetStatus, RulesetVersion, TriageResult
from reviewapp.triage.ruleset_file import parse_ruleset_document

_cache_lock = threading.Lock()
_compiled_cache: dict[tuple[int, str], CompiledRuleset] = {}
NO_PUBLISHED_RULESET = "No triage ruleset is published; run `flask --app wsgi seed`."


def tiers_in_order(session: Session) -> list[RiskTier]:
    """Risk tiers from lowest to highest rank."""
    return list(session.scalars(select(RiskTier).order_by(RiskTier.rank)))


def ruleset_document(version: RulesetVersion) -> dict[str, Any]:
    """The plain document of a stored ruleset version (the YAML export shape)."""
    return {
        "description": version.description,
        "keyword_lists": version.keyword_lists,
        "rules": [
            {
                "key": r.key,
                "name": r.name,
                "description": r.description,
                "condition": r.condition,
                "actions": r.actions,
                "enabled": r.enabled,
                "examples": r.examples,
            }
            for r in version.rules
        ],
    }


def compile_document(session: Session, document: dict[str, Any]) -> CompiledRuleset:
    """Validate and compile a ruleset document against this database's tiers and catalogues.

    Raises:
        RuleValidationError: what is wrong, naming the rule.
    """
    tiers = tiers_in_order(session)
    spec = parse_ruleset_document(
        document,
        tiers=[t.name for t in tiers],
        tier_queues={t.name: t.default_queue for t in tiers},
        known_queues=session.scalars(select(Queue.key)).all(),
        known_safety_requirements=session.scalars(select(SafetyRequirement.key)).all(),
        known_policy_sections=session.scalars(select(PolicySection.key)).all(),
    )
    return CompiledRuleset(spec)


def active_ruleset(session: Session) -> RulesetVersion:
    """The published ruleset version.

    Raises:
        NotFound: when no ruleset has been published (run ``flask seed``).
    """
    version = session.scalars(
        select(RulesetVersion).where(RulesetVersion.status == RulesetStatus.published)
    ).first()
    if version is None:
        raise NotFound(NO_PUBLISHED_RULESET)
    return version


def compiled_ruleset(session: Session, version: RulesetVersion) -> CompiledRuleset:
    """Compile ``version`` once per process (cached by id and content hash)."""
    key = (version.id, version.content_hash or "")
    with _cache_lock:
        cached = _compiled_cache.get(key) if version.content_hash else None
    if cached is not None:
        return cached
    compiled = compile_document(session, ruleset_document(version))
    with _cache_lock:
        _compiled_cache[key] = compiled
    return compiled


def create_ruleset_version(
    session: Session, document: dict[str, Any], *, actor: User | None, publish: bool = False
) -> RulesetVersion:
    """Store ``document`` as a new ruleset version (validated first); optionally publish it.

    Raises:
        RuleValidationError: when the document does not compile.
    """
    spec = compile_document(session, document).spec  # validated and normalised values
    number = (session.scalar(select(func.max(RulesetVersion.number))) or 0) + 1
    version = RulesetVersion(
        number=number,
        description=str(document.get("description") or ""),
        keyword_lists=dict(spec.keyword_lists),
        created_by_id=actor.id if actor else None,
        content_hash=canonical_hash(document),
    )
    for position, rule in enumerate(spec.rules):
        version.rules.append(
            Rule(
                key=rule.key,
                position=position,
                name=rule.name,
                description=rule.description,
                condition=rule.condition,
                actions=[dict(a) for a in rule.actions],
                enabled=rule.enabled,
                examples=dict(rule.examples),
            )
        )
    session.add(version)
    session.flush()
    version.content_hash = canonical_hash(ruleset_document(version))
    if publish:
        for old in session.scalars(
            select(RulesetVersion).where(RulesetVersion.status == RulesetStatus.published)
        ):
            old.status = RulesetStatus.retired
        session.flush()
        version.status = RulesetStatus.published
        version.published_at = utcnow()
        version.published_by_id = actor.id if actor else None
        session.flush()
    return version


def triage_revision(
    session: Session,
    application: Application,
    revision: Revision,
    *,
    now: dt.datetime | None = None,
    version: RulesetVersion | None = None,
    keep_queued_at: bool = False,
) -> TriageResult:
    """Run the active ruleset (or ``version``) on ``revision``, store the result and place the
    application: tier, queue, flags, ``queued_at`` (now, unless ``keep_queued_at``) and
    the SLA clock (the tier's business-hours target, counted from ``queued_at``; a resubmission
    resumes the clock with the time already used). The caller changes the status.

    A draft running in shadow mode is evaluated too and recorded as a shadow result; it changes
    nothing else.
    """
    # the published version and a shadow draft in one statement (a submission's hot path)
    versions = session.scalars(
        select(RulesetVersion).where(
            or_(RulesetVersion.status == RulesetStatus.published, RulesetVersion.shadow.is_(True))
        )
    ).all()
    shadow = next((v for v in versions if v.shadow), None)
    if version is None:
        version = next((v for v in versions if v.status == RulesetStatus.published), None)
        if version is None:
            raise NotFound(NO_PUBLISHED_RULESET)
    compiled = compiled_ruleset(session, version)
    outcome = compiled.evaluate(revision.content)
    result = store_triage_result(session, revision, version, outcome)
    tier = tier_named(session, outcome.tier)
    if tier is None:  # the compiler checks tier names against the table; a tier deleted since
        raise LookupError(f"The ruleset names an unknown risk tier {outcome.tier!r}.")
    now = now or utcnow()
    application.risk_tier = tier.name
    application.tier_rank = tier.rank
    application.queue = outcome.queue
    application.flags = list(outcome.flags)
    if not keep_queued_at or application.queued_at is None:
        application.queued_at = now
    from reviewapp.review.clock import run_clock

    # the business-hours SLA clock starts on entering the queue and resumes on resubmission
    run_clock(application, tier.sla_hours, application.queued_at)
    if shadow is not None and shadow.id != version.id:
        record_shadow_result(session, revision, shadow)
    return result


def record_shadow_result(
    session: Session, revision: Revision, version: RulesetVersion
) -> TriageResult | None:
    """Evaluate ``version`` on ``revision`` and store it as a shadow result (no other effect).

    A broken shadow draft never disturbs real triage: compile errors are swallowed (a draft
    cannot be saved in a broken state anyway) and evaluation errors fail closed in the result.
    """
    from reviewapp.triage.engine import RuleValidationError

    try:
        compiled = compiled_ruleset(session, version)
    except RuleValidationError:
        return None
    existing = session.scalars(
        select(TriageResult).where(
            TriageResult.revision_id == revision.id,
            TriageResult.ruleset_version_id == version.id,
            TriageResult.shadow.is_(True),
        )
    ).first()
    if existing is not None:
        session.delete(existing)
        session.flush()
    outcome = compiled.evaluate(revision.content)
    return store_triage_result(session, revision, version, outcome, shadow=True)


def store_triage_result(
    session: Session,
    revision: Revision,
    version: RulesetVersion,
    outcome: TriageOutcome,
    *,
    shadow: bool = False,
) -> TriageResult:
    """Persist one engine outcome for ``revision`` under ``version``."""
    result = TriageResult(
        revision_id=revision.id,
        ruleset_version_id=version.id,
        tier=outcome.tier,
        queue=outcome.queue,
        fired=[f.as_dict() for f in outcome.fired],
        flags=list(outcome.flags),
        required_safety_requirements=list(outcome.safety_requirements),
        suggested_policy_sections=list(outcome.policy_sections),
        errors=list(outcome.errors),
        shadow=shadow,
    )
    session.add(result)
    return result


def latest_triage_result(session: Session, revision_id: int) -> TriageResult | None:
    """The newest non-shadow triage result of a revision (its ruleset version loaded with it)."""
    return session.scalars(
        select(TriageResult)
        .options(joinedload(TriageResult.ruleset_version, innerjoin=True))
        .where(TriageResult.revision_id == revision_id, TriageResult.shadow.is_(False))
        .order_by(TriageResult.id.desc())
        .limit(1)
    ).first()
