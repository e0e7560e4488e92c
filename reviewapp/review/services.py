"""Review services: the queue, claims with leases, and decisions with citations."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Literal, overload

from flask import current_app
from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.orm import Session, defer, joinedload

from reviewapp.applications.lifecycle import Action, Actor, next_status
from reviewapp.applications.models import OPEN_FOR_REVIEW, Application, Revision, Status
from reviewapp.applications.services import ANSWER_RELATIONS, snapshot, unclaim
from reviewapp.audit.services import add_outbox_event, record_event
from reviewapp.auth.models import Organization, Permission, Role, User
from reviewapp.db import is_postgres, utcnow
from reviewapp.errors import ConflictError, InvalidTransition, PermissionDenied, ValidationFailed
from reviewapp.limits import LIMITS
from reviewapp.policies.models import PolicyFeedback, ResponseTemplate
from reviewapp.policies.services import (
    current_versions,
    markdown_source_as_text,
    render_template_text,
)
from reviewapp.review.clock import business_calendar, pause_clock, run_clock
from reviewapp.review.fast_track import AUTO_TEMPLATE
from reviewapp.review.mitigations import (
    RequirementInput,
    carried_conditions,
    clean_requirement_inputs,
    describe_parameters,
    requirement_rows,
)
from reviewapp.review.models import (
    Appeal,
    Citation,
    Decision,
    Note,
    Outcome,
    RequiredSafetyRequirement,
    RiskTier,
)
from reviewapp.review.reference import QueueInfo, reference_data
from reviewapp.review.sla import add_business_seconds
from reviewapp.review.tiers import tier_named

CLAIMABLE = (Status.queued, Status.in_review, Status.awaiting_second_approval, Status.appealed)
APPEAL_STATEMENT_LIMITS = (20, LIMITS["appeal.statement"])  # code points


#: queue counts (the queue page's total, the API's queue_position) stop at this many: past it
#: they say "more than" instead of reading every index entry of a long queue
QUEUE_COUNT_LIMIT = 1_000


def _approvals_required(session: Session, application: Application) -> int:
    """Approvals the application's tier requires (config/tiers.yaml; default high: 2)."""
    tier = tier_named(session, application.risk_tier)
    return tier.approvals_required if tier is not None else 1


def _is_high_risk(session: Session, application: Application) -> bool:
    """True when the application's tier ranks at or above the tier named ``high`` (or is the
    top tier when no tier has that name)."""
    ranks = {t.name: t.rank for t in session.scalars(select(RiskTier))}
    threshold = ranks.get("high", max(ranks.values(), default=0))
    return (application.tier_rank or 0) >= threshold


def queues_for(session: Session, user: User) -> list[QueueInfo]:
    """Queues ``user``'s role may work, in display order (from the reference cache, checked
    against the database on every call: see :mod:`reviewapp.review.reference`)."""
    return reference_data(session).queues_for_role(str(user.role))


@dataclass
class QueueFilters:
    """Queue page filters. ``age_days``: only applications queued at least that many days ago."""

    queue: str | None = None
    tier: str | None = None
    status: str | None = None
    age_days: int | None = None
    mine: bool = False
    #: one of QUEUE_VIEWS: due_soon (due within the calendar's due_soon_hours of business time),
    #: overdue, unclaimed (no unexpired lease)
    view: str | None = None
    #: the search box (review/search.py): a reference, words of the application, or an
    #: organization's name
    search: str | None = None


#: statuses the queue can be filtered on (all of them: the open ones), with their labels
QUEUE_STATUSES = {
    Status.queued.value: "Queued",
    Status.in_review.value: "In review",
    Status.awaiting_second_approval.value: "Awaiting second approval",
    Status.appealed.value: "Appealed",
}
#: the "waiting at least N days" filter accepts 0..QUEUE_MAX_AGE_DAYS
QUEUE_MAX_AGE_DAYS = 3650

#: queue views besides "mine" (QueueFilters.mine), with their labels
QUEUE_VIEWS = {"due_soon": "Due soon", "overdue": "Overdue", "unclaimed": "Unclaimed"}


def check_queue_filters(
    session: Session,
    user: User,
    given: Mapping[str, str],
    accepted: tuple[str, ...],
    *,
    claiming: bool = False,
    other: tuple[str, ...] = (),
) -> QueueFilters:
    """The queue filters among ``accepted`` in ``given`` (query arguments or form fields),
    each checked as the queue page's form checks it: ``queue`` one the user's role may work,
    ``tier`` a risk tier, ``status`` one of QUEUE_STATUSES, ``age_days`` a whole number in
    ASCII digits from 0 to QUEUE_MAX_AGE_DAYS, ``view`` one of QUEUE_VIEWS or (when not
    ``claiming``) ``mine``. Names in neither ``accepted`` nor ``other`` are refused too (a typo
    such as ``teir`` must not silently widen a claim). Empty values mean "no filter".

    Raises:
        ValidationFailed: naming every bad or unknown name and what it accepts.
    """
    allowed: dict[str, list[str]] = {
        "status": list(QUEUE_STATUSES),
        "view": [*QUEUE_VIEWS] if claiming else [*QUEUE_VIEWS, "mine"],
    }
    if given.get("queue") or given.get("tier"):
        # the reference tables (a fingerprint statement) only when there is something to check
        ref = reference_data(session)
        allowed["queue"] = [q.key for q in ref.queues_for_role(str(user.role))]
        allowed["tier"] = [t.name for t in ref.tiers]
    known = {*accepted, *other}
    problems = {
        name: "unknown argument; known: " + ", ".join(sorted(known))
        for name in given
        if name not in known
    }
    values: dict[str, Any] = {}
    for name in accepted:
        raw = given.get(name) or None
        if raw is None:
            continue
        if name == "age_days":
            if raw.isascii() and raw.isdigit() and int(raw) <= QUEUE_MAX_AGE_DAYS:
                values[name] = int(raw)
            else:
                problems[name] = f"a whole number from 0 to {QUEUE_MAX_AGE_DAYS}"
        elif raw in allowed[name]:
            values[name] = raw
        else:
            problems[name] = "one of: " + ", ".join(allowed[name])
    if problems:
        raise ValidationFailed(
            "Unknown or invalid filter: " + ", ".join(f"{k}={given[k]!r}" for k in problems),
            fields=problems,
        )
    view = values.pop("view", None)
    return QueueFilters(**values, view=view if view != "mine" else None, mine=view == "mine")


def queue_statement(
    session: Session,
    user: User,
    filters: QueueFilters,
    now: dt.datetime | None = None,
    *,
    queues: Sequence[QueueInfo] | None = None,
) -> Select[Any]:
    """SELECT of the applications ``user`` may see in the queue, filtered and in queue order:
    SLA due time, then tier (highest first), then age (oldest first). ``queues``: the result of
    ``queues_for(session, user)`` when the caller already has it."""
    return (
        select(Application)
        .where(*_queue_conditions(session, user, filters, now, queues))
        .order_by(*_queue_order())
    )


def _queue_conditions(
    session: Session,
    user: User,
    filters: QueueFilters,
    now: dt.datetime | None,
    queues: Sequence[QueueInfo] | None,
) -> list[Any]:
    """WHERE conditions of :func:`queue_statement`, on the table's columns (no ORM attributes:
    the queue page runs them as plain Core statements, which skip the ORM's per-statement
    work)."""
    a = Application.__table__.c
    if queues is None:
        queues = queues_for(session, user)
    conditions = [
        a.queue.in_([q.key for q in queues]),
        a.organization_id != user.organization_id,  # conflict of interest
    ]
    if filters.queue:
        conditions.append(a.queue == filters.queue)
    if filters.tier:
        conditions.append(a.risk_tier == filters.tier)
    if filters.status:
        conditions.append(a.status == filters.status)
    else:
        conditions.append(a.status.in_(OPEN_FOR_REVIEW))
    if filters.age_days:
        cutoff = (now or utcnow()) - dt.timedelta(days=filters.age_days)
        conditions.append(a.queued_at <= cutoff)
    if filters.mine:
        conditions.append(a.claimed_by_id == user.id)
    if filters.search:
        from reviewapp.review.search import search_condition

        conditions.append(search_condition(session, filters.search))
    if filters.view in QUEUE_VIEWS:
        now = now or utcnow()
        if filters.view == "overdue":
            conditions.append(a.sla_due_at < now)
        elif filters.view == "due_soon":
            cal = business_calendar()
            horizon = add_business_seconds(cal, now, int(cal.due_soon_hours * 3600))
            conditions += [a.sla_due_at >= now, a.sla_due_at <= horizon]
        else:
            conditions.append(or_(a.claimed_by_id.is_(None), a.lease_expires_at < now))
    return conditions


@functools.cache
def _queue_order() -> tuple[Any, ...]:
    a = Application.__table__.c
    return (a.sla_due_at.asc(), a.tier_rank.desc(), a.queued_at.asc(), a.id.asc())


def list_queue(
    session: Session,
    user: User,
    filters: QueueFilters,
    *,
    page: int = 1,
    per_page: int = 50,
    count_limit: int | None = None,
) -> tuple[list[Application], int]:
    """One page of the queue and the number of applications matching the filters.

    ``count_limit``: count at most this many plus one, so a result above ``count_limit`` means
    "more than count_limit". An exact count of a queue of hundreds of thousands of open
    applications reads the whole partial index on every page view (about 100 ms at 1M
    applications); a bounded one reads at most ``count_limit + 1`` index entries. None: exact.
    """
    if not user.can(Permission.view_queue):
        raise PermissionDenied("Only reviewers see the queue.")
    stmt = queue_statement(session, user, filters)
    matching = stmt.order_by(None).with_only_columns(Application.id)
    if count_limit is not None:
        matching = matching.limit(count_limit + 1)
    total = session.scalar(select(func.count()).select_from(matching.subquery())) or 0
    items = session.scalars(
        stmt.options(
            # the queue page never shows the editable draft (only the submitted revision)
            defer(Application.draft),
            defer(Application.source_metadata),
            joinedload(Application.organization),
            joinedload(Application.current_revision),
            joinedload(Application.claimed_by),
        )
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return list(items), total


@dataclass(frozen=True)
class QueueRow:
    """What the queue page shows of one application (no ORM object: a page is 50 of them).

    ``title``: of the submitted revision; ``organization``: its name; ``claimant``: e-mail of
    the user holding (or who last held) the claim, None when unclaimed.
    """

    id: int
    external_ref: str | None
    status: str
    risk_tier: str | None
    queue: str | None
    sla_due_at: dt.datetime | None
    claimed_by_id: int | None
    lease_expires_at: dt.datetime | None
    preferred_reviewer_id: int | None
    title: str
    organization: str
    claimant: str | None

    @property
    def reference(self) -> str:
        """Public reference, e.g. ``APP-000123`` (as :attr:`Application.reference`)."""
        return f"APP-{self.id:06d}"


@functools.cache
def _queue_rows_select() -> Select[Any]:
    """The columns and joins of :class:`QueueRow`, on tables (a Core statement), built once."""
    a = Application.__table__.c
    revision = Revision.__table__
    organization = Organization.__table__
    claimant = User.__table__.alias("claimant")
    # Application.title: the submitted revision's title, the draft's while a draft
    title = case(
        (
            and_(a.current_revision_id.is_not(None), a.status != Status.draft),
            revision.c.content["title"].as_string(),
        ),
        else_=a.draft["title"].as_string(),
    )
    return (
        select(
            a.id,
            a.external_ref,
            a.status,
            a.risk_tier,
            a.queue,
            a.sla_due_at,
            a.claimed_by_id,
            a.lease_expires_at,
            a.preferred_reviewer_id,
            title,
            organization.c.name,
            claimant.c.email,
        )
        .select_from(Application.__table__)
        .join(organization, organization.c.id == a.organization_id)
        .outerjoin(revision, revision.c.id == a.current_revision_id)
        .outerjoin(claimant, claimant.c.id == a.claimed_by_id)
    )


def list_queue_rows(
    session: Session,
    user: User,
    filters: QueueFilters,
    *,
    page: int = 1,
    per_page: int = 50,
    count_limit: int | None = None,
    queues: Sequence[QueueInfo] | None = None,
) -> tuple[list[QueueRow], int]:
    """As :func:`list_queue`, but the page as :class:`QueueRow` tuples read by one statement
    (the queue page's columns only), and ``queues`` as in :func:`queue_statement`.

    Raises:
        PermissionDenied: ``user`` may not see the queue.
    """
    if not user.can(Permission.view_queue):
        raise PermissionDenied("Only reviewers see the queue.")
    conditions = _queue_conditions(session, user, filters, None, queues)
    matching = select(Application.__table__.c.id).where(*conditions)
    if count_limit is not None:
        matching = matching.limit(count_limit + 1)
    count = select(func.count()).select_from(matching.subquery())
    # the count rides along with the page (an uncorrelated subquery, evaluated once): one
    # statement per view; a page past the end has no row to carry it and counts on its own
    rows = session.execute(
        _queue_rows_select()
        .add_columns(count.correlate(None).scalar_subquery())
        .where(*conditions)
        .order_by(*_queue_order())
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    total = rows[0][12] if rows else (session.scalar(count) or 0)
    return [
        QueueRow(
            id=r[0],
            external_ref=r[1],
            status=r[2],
            risk_tier=r[3],
            queue=r[4],
            sla_due_at=r[5],
            claimed_by_id=r[6],
            lease_expires_at=r[7],
            preferred_reviewer_id=r[8],
            title=str(r[9] or ""),
            organization=r[10],
            claimant=r[11],
        )
        for r in rows
    ], total


def _lease_seconds() -> int:
    return int(current_app.config["LEASE_SECONDS"])


def _check_reviewer(user: User, application: Application) -> None:
    if not user.can(Permission.claim):
        raise PermissionDenied("Only reviewers claim applications.")
    if application.organization_id == user.organization_id:
        raise PermissionDenied("You cannot review an application from your own organization.")


def _check_claim_budget(session: Session, user: User, now: dt.datetime) -> None:
    """Refuse a new claim when ``user`` already holds MAX_CLAIMS_PER_REVIEWER unexpired ones
    (one reviewer cannot hoard the queue). Raises ConflictError.

    On PostgreSQL the reviewer's own row is locked first (until the claim commits), so the same
    reviewer's parallel claims are counted one after the other and cannot pass the limit
    together; other reviewers are not held up. SQLite runs one writer at a time anyway.
    """
    limit = int(current_app.config["MAX_CLAIMS_PER_REVIEWER"])
    if is_postgres(session):
        session.execute(select(User.id).where(User.id == user.id).with_for_update())
    held = session.scalar(
        select(func.count())
        .select_from(Application)
        .where(Application.claimed_by_id == user.id, Application.lease_expires_at > now)
    )
    if (held or 0) >= limit:
        raise ConflictError(
            f"You already hold {held} applications (the limit is {limit}); decide or release "
            "some before claiming more."
        )


def _take(session: Session, user: User, application: Application, now: dt.datetime) -> None:
    before = snapshot(application)
    application.status = next_status(application.status, Action.claim, Actor.reviewer)
    application.claimed_by_id = user.id
    application.lease_expires_at = now + dt.timedelta(seconds=_lease_seconds())
    session.flush()
    record_event(
        session,
        actor=user,
        action="application.claim",
        subject_type="application",
        subject_id=application.reference,
        before=before,
        after={
            **snapshot(application),
            "lease_expires_at": application.lease_expires_at.isoformat(),
        },
    )


def claim_next(
    session: Session,
    user: User,
    *,
    filters: QueueFilters | None = None,
    now: dt.datetime | None = None,
) -> Application | None:
    """Claim the first claimable application in queue order, or None when there is none;
    ``filters`` (see :func:`check_queue_filters`) narrow it as they narrow the queue page.

    Claimable: queued, or in review with an expired lease; in a queue the user may work; not
    from the user's own organization. On PostgreSQL the row is locked ``FOR UPDATE SKIP LOCKED``
    so concurrent reviewers never get the same application; elsewhere the version counter
    refuses the second writer and the next candidate is tried.
    """
    if not user.can(Permission.claim):
        raise PermissionDenied("Only reviewers claim applications.")
    now = now or utcnow()
    _check_claim_budget(session, user, now)
    claimable = [
        Application.status == Status.queued,
        and_(Application.status == Status.in_review, Application.lease_expires_at < now),
    ]
    # an open appeal is never offered to the reviewer who made the appealed decision
    made_appealed_decision = (
        select(Appeal.id)
        .join(Decision, Decision.id == Appeal.decision_id)
        .where(
            Appeal.application_id == Application.id,
            Appeal.outcome.is_(None),
            Decision.reviewer_id == user.id,
        )
        .exists()
    )
    if user.can(Permission.decide_senior):
        # second approvals: never offered to the person who gave the first one
        gave_first = (
            select(Decision.id)
            .where(
                Decision.application_id == Application.id,
                Decision.revision_id == Application.current_revision_id,
                Decision.reviewer_id == user.id,
                Decision.final.is_(False),
            )
            .exists()
        )
        claimable.append(
            and_(
                Application.status == Status.awaiting_second_approval,
                or_(Application.claimed_by_id.is_(None), Application.lease_expires_at < now),
                ~gave_first,
                ~made_appealed_decision,
            )
        )
    claimable.append(
        and_(
            Application.status == Status.appealed,
            or_(Application.claimed_by_id.is_(None), Application.lease_expires_at < now),
            ~made_appealed_decision,
        )
    )
    # a resubmission is offered first to the reviewer who asked for its mitigations, and to
    # nobody else until PREFERRED_REVIEWER_HOLD_SECONDS after it was queued
    hold_until = now - dt.timedelta(
        seconds=int(current_app.config["PREFERRED_REVIEWER_HOLD_SECONDS"])
    )
    stmt = (
        queue_statement(session, user, filters or QueueFilters(), now)
        .where(or_(*claimable))
        .where(
            or_(
                Application.preferred_reviewer_id.is_(None),
                Application.preferred_reviewer_id == user.id,
                Application.queued_at < hold_until,
            )
        )
    )
    for candidates in (stmt.where(Application.preferred_reviewer_id == user.id), stmt):
        taken = _take_first(session, user, candidates, now)
        if taken is not None:
            return taken
    return None


def _take_first(
    session: Session, user: User, stmt: Select[Any], now: dt.datetime
) -> Application | None:
    """Claim the first application of ``stmt`` that nobody else takes at the same moment."""
    if is_postgres(session):
        candidate = session.scalars(
            stmt.options(*ANSWER_RELATIONS)
            .limit(1)
            .with_for_update(skip_locked=True, of=Application)
        ).first()
        if candidate is None:
            return None
        _take(session, user, candidate, now)
        return candidate
    from sqlalchemy.orm.exc import StaleDataError

    for candidate in session.scalars(stmt.limit(20)).all():
        try:
            with session.begin_nested():
                _take(session, user, candidate, now)
            return candidate
        except StaleDataError:  # someone else took it first
            session.expire(candidate)
    return None


def claim(
    session: Session, user: User, application: Application, *, now: dt.datetime | None = None
) -> None:
    """Claim one specific application (from the queue page).

    Raises:
        PermissionDenied, ConflictError (someone else holds an unexpired lease), InvalidTransition.
    """
    now = now or utcnow()
    check_may_take(session, user, application)
    if application.claimed_by_id is not None and application.is_lease_active(now):
        if application.claimed_by_id == user.id:
            return
        raise ConflictError(
            f"{application.reference} is already claimed by {application.claimed_by.email if application.claimed_by else 'someone else'}."
        )
    _check_claim_budget(session, user, now)
    _take(session, user, application, now)


def check_may_take(session: Session, user: User, application: Application) -> None:
    """Check that ``user`` may hold this application: a reviewer, not from its organization,
    allowed to work its queue; for a second approval a senior who did not give the first; for
    an appeal not the reviewer who made the appealed decision.

    Raises:
        PermissionDenied: naming the rule that forbids it.
    """
    _check_reviewer(user, application)
    check_second_person_rules(session, user, application)
    if application.queue not in {q.key for q in queues_for(session, user)}:
        raise PermissionDenied(f"{user.email}'s role may not work the {application.queue} queue.")


def check_second_person_rules(session: Session, user: User, application: Application) -> None:
    """The rules of the second pair of eyes for ``user`` taking ``application``: a pending
    second approval is not for the first approver (and needs a senior); an appeal, including
    an overturn waiting for its second approval, is not for the reviewer who made the
    appealed decision.

    Raises:
        PermissionDenied: naming the rule; ConflictError: the appeal vanished meanwhile.
    """
    status = application.status
    if status == Status.awaiting_second_approval:
        _check_second_approver(session, user, application)
    if status in (Status.appealed, Status.awaiting_second_approval):
        appeal = (
            open_appeal(session, application)
            if status == Status.appealed
            else open_appeal(session, application, required=False)
        )
        if appeal is not None:
            _check_appeal_decider(user, appeal)


def reassign(
    session: Session,
    admin: User,
    application: Application,
    reviewer: User,
    *,
    now: dt.datetime | None = None,
) -> None:
    """An admin gives an open application (claimed or not) to ``reviewer`` with a fresh lease.
    The previous holder's notes stay; the change is audited with both names.

    Raises:
        PermissionDenied (not an admin, or ``reviewer`` may not take it: see check_may_take),
        InvalidTransition (the application is not open for review), ConflictError (``reviewer``
        already holds it).
    """
    if not admin.can(Permission.manage_users):
        raise PermissionDenied("Only admins reassign work.")
    if application.status not in CLAIMABLE:
        raise InvalidTransition(
            f"{application.reference} is {Status(application.status).label.lower()}; only open applications can be assigned."
        )
    now = now or utcnow()
    if not reviewer.active:
        raise PermissionDenied(f"{reviewer.email} is deactivated.")
    try:
        check_may_take(session, reviewer, application)
    except PermissionDenied as exc:
        raise PermissionDenied(f"{reviewer.email} cannot take it: {exc.message}") from None
    if application.is_claimed_by(reviewer, now):
        raise ConflictError(f"{reviewer.email} already holds {application.reference}.")
    before = snapshot(application)
    application.status = next_status(application.status, Action.claim, Actor.reviewer)
    application.claimed_by_id = reviewer.id
    application.lease_expires_at = now + dt.timedelta(seconds=_lease_seconds())
    session.flush()
    record_event(
        session,
        actor=admin,
        action="application.reassign",
        subject_type="application",
        subject_id=application.reference,
        before=before,
        after={**snapshot(application), "reviewer": reviewer.email},
    )
    add_outbox_event(
        session,
        "assigned",
        {
            "application": application.reference,
            "to": [reviewer.email],
            "subject": f"[{application.reference}] Assigned to you: {application.title}",
            "body": f"{admin.email} assigned {application.reference} to you. Your lease runs "
            f"until {application.lease_expires_at:%Y-%m-%d %H:%M} UTC; renew it from the "
            "application page if you need longer.",
        },
    )


def current_claims(session: Session) -> list[Application]:
    """Every application someone holds (including expired leases the sweeper has not yet
    returned), by reviewer then lease expiry."""
    return list(
        session.scalars(
            select(Application)
            .where(Application.claimed_by_id.is_not(None))
            .options(joinedload(Application.claimed_by), joinedload(Application.organization))
            .order_by(Application.claimed_by_id, Application.lease_expires_at)
            .limit(1000)
        )
    )


def first_approval(session: Session, application: Application) -> Decision | None:
    """The pending (not final) first approval of the application's current revision, if any."""
    return session.scalars(
        select(Decision)
        .where(
            Decision.application_id == application.id,
            Decision.revision_id == application.current_revision_id,
            Decision.final.is_(False),
        )
        .order_by(Decision.id.desc())
        .limit(1)
    ).first()


def _check_second_approver(session: Session, user: User, application: Application) -> None:
    """Only a senior reviewer who did not give the first approval acts on a pending approval."""
    if not user.can(Permission.decide_senior):
        raise PermissionDenied("A second approval needs a senior reviewer.")
    first = first_approval(session, application)
    if first is not None and first.reviewer_id == user.id:
        raise PermissionDenied(
            "You gave the first approval; another senior reviewer must give the second."
        )


def renew_lease(
    session: Session, user: User, application: Application, *, now: dt.datetime | None = None
) -> dt.datetime:
    """Extend the caller's unexpired lease by LEASE_SECONDS from now; returns the new expiry (UTC).

    Raises:
        ConflictError: the caller does not hold an unexpired lease (it expired or was taken).
    """
    now = now or utcnow()
    if not application.is_claimed_by(user, now):
        raise ConflictError("Your lease has already ended; claim the application again.")
    application.lease_expires_at = now + dt.timedelta(seconds=_lease_seconds())
    session.flush()
    record_event(
        session,
        actor=user,
        action="application.renew_lease",
        subject_type="application",
        subject_id=application.reference,
        after={"lease_expires_at": application.lease_expires_at.isoformat()},
    )
    return application.lease_expires_at


def expire_leases(session: Session, *, now: dt.datetime | None = None, limit: int = 1000) -> int:
    """Return applications whose lease ran out to their queue (the sweeper). Notes and drafts
    of the reviewer are kept; the application keeps its status if it awaits a second approval.
    Returns how many leases ended."""
    now = now or utcnow()
    expired = session.scalars(
        select(Application)
        .where(Application.claimed_by_id.is_not(None), Application.lease_expires_at < now)
        .order_by(Application.lease_expires_at)
        .limit(limit)
    ).all()
    for application in expired:
        unclaim(
            session,
            application,
            Action.expire_lease,
            Actor.system,
            actor=None,
            audit_action="application.lease_expired",
        )
    return len(expired)


def notify_sla_breaches(
    session: Session, *, now: dt.datetime | None = None, limit: int = 200
) -> int:
    """Tell the review leads (active senior reviewers and admins) in one digest email about
    applications waiting in a queue past their SLA due time. Each missed due time is reported
    once (``sla_breach_notified_at``); a new due time (resubmission, re-triage) can be reported
    again. Returns how many applications the digest lists (0: nothing sent)."""
    now = now or utcnow()
    overdue = session.scalars(
        select(Application)
        .where(
            Application.status.in_(OPEN_FOR_REVIEW),
            Application.sla_due_at < now,
            Application.sla_breach_notified_at.is_(None),
        )
        .order_by(Application.sla_due_at)
        .limit(limit)
    ).all()
    if not overdue:
        return 0
    leads = sorted(
        session.scalars(
            select(User.email).where(
                User.active.is_(True), User.role.in_([Role.senior_reviewer, Role.admin])
            )
        )
    )
    lines = [
        f"- {a.reference} ({a.risk_tier}, {a.queue} queue): due {a.sla_due_at:%Y-%m-%d %H:%M} UTC, "
        f"{'claimed by ' + a.claimed_by.email if a.claimed_by_id and a.claimed_by else 'unclaimed'}"
        for a in overdue
        if a.sla_due_at is not None
    ]
    for application in overdue:
        application.sla_breach_notified_at = now
    session.flush()
    if leads:
        add_outbox_event(
            session,
            "sla_breach",
            {
                "to": leads,
                "subject": f"SLA missed: {len(overdue)} application(s) overdue",
                "body": "These applications are waiting past their review target:\n\n"
                + "\n".join(lines),
            },
        )
    record_event(
        session,
        actor=None,
        action="sla.breach_notified",
        subject_type="application",
        subject_id=f"{len(overdue)} overdue",
        after={"applications": [a.reference for a in overdue], "leads": len(leads)},
    )
    return len(overdue)


def release(session: Session, user: User, application: Application) -> None:
    """Give a claimed application back to its queue.

    Raises:
        PermissionDenied (not the claimant), InvalidTransition.
    """
    if application.claimed_by_id is None:
        raise ConflictError(f"{application.reference} is not claimed by anyone.")
    if application.claimed_by_id != user.id and not user.is_admin:
        raise PermissionDenied("Only the reviewer holding the claim can release it.")
    unclaim(
        session,
        application,
        Action.release,
        Actor.reviewer,
        actor=user,
        audit_action="application.release",
    )


def template_context(
    application: Application,
    citations: list[Any],
    requirements: list[RequiredSafetyRequirement],
    reviewer_note: str,
) -> dict[str, Any]:
    """The placeholders a response template may use (see policies.services.TEMPLATE_VARIABLES)."""

    def version_url(v: Any) -> str:
        from reviewapp.web import external_url

        # the configured public address, never the request's Host header (emails carry it)
        return external_url("policies.section_version", key=v.section.key, version=v.version)

    return {
        "application": SimpleNamespace(reference=application.reference, title=application.title),
        "organization": application.organization.name,
        "citations": [
            SimpleNamespace(
                number=v.section.number,
                title=v.section.title,
                version=v.version,
                url=version_url(v),
            )
            for v in citations
        ],
        "safety_requirements": [
            SimpleNamespace(
                title=r.safety_requirement.title,
                description=r.safety_requirement.description,
                reason=r.reason or "",
                parameters=describe_parameters(r),
            )
            for r in requirements
        ],
        "reviewer_note": reviewer_note,
    }


@dataclass
class DecisionInput:
    """What a reviewer submits. ``expected_version``: the application version the page showed."""

    outcome: str
    citations: list[str]
    template_key: str
    safety_requirements: list[str]
    reviewer_note: str = ""
    rationale: str = ""
    expected_version: int | None = None
    feedback_kind: str = ""
    feedback_section: str = ""
    feedback_comment: str = ""
    #: safety requirement key -> reason and parameters the reviewer set
    requirements: dict[str, RequirementInput] = field(default_factory=dict)


def decide(session: Session, user: User, application: Application, data: DecisionInput) -> Decision:
    """Record a decision on the application's current revision, notify the developer.

    Rules: the reviewer holds an unexpired claim; reject and request_mitigations cite at least
    one policy section; request_mitigations names at least one safety requirement; the template
    renders with every placeholder filled. The claim is released; the decision, its audit event
    and the outbox notification are written in one transaction.

    Raises:
        PermissionDenied, ConflictError (stale page or lost claim), InvalidTransition, ValidationFailed.
    """
    if not user.can(Permission.decide):
        raise PermissionDenied("Only reviewers decide.")
    _check_reviewer(user, application)
    if not application.is_claimed_by(user):
        if application.status not in CLAIMABLE:
            why = f"it is now {Status(application.status).label.lower()} (someone else acted on it)"
        elif application.claimed_by_id not in (None, user.id) and application.is_lease_active():
            why = "another reviewer holds it"
        elif application.claimed_by_id == user.id:
            why = "your lease expired"
        else:
            why = "you have not claimed it"
        raise ConflictError(
            f"You do not hold a claim on this application: {why}. Nothing was saved."
        )
    if data.expected_version is not None and data.expected_version != application.version:
        raise ConflictError(
            "This application changed since you read it (someone else acted on it). Nothing "
            "was saved; read it again to see its current state."
        )
    errors: dict[str, str] = {}
    try:
        outcome: Outcome | None = Outcome(data.outcome)
    except ValueError:
        outcome = None
        errors["outcome"] = "Choose approve, request mitigations or reject."
    if outcome in (Outcome.reject, Outcome.request_mitigations) and not data.citations:
        errors["citations"] = "Cite at least one policy section for this outcome."
    elif outcome == Outcome.approve and not data.citations and _is_high_risk(session, application):
        errors["citations"] = (
            "Approving a high-risk or prohibited-tier application needs at least one citation."
        )
    if outcome == Outcome.request_mitigations and not data.safety_requirements:
        errors["safety_requirements"] = (
            "Pick at least one safety requirement the developer must meet."
        )
    template = session.scalars(
        select(ResponseTemplate).where(ResponseTemplate.key == data.template_key)
    ).first()
    if template is None:
        errors["template"] = "Choose a response template."
    elif template.key == AUTO_TEMPLATE:
        errors["template"] = (
            f"{template.title!r} is the fast track's own message (it says no person reviewed "
            "the application); choose another template."
        )
    elif outcome is not None and template.outcome != outcome.value:
        errors["template"] = (
            f"Template {template.title!r} is for {template.outcome.replace('_', ' ')}, not {outcome.label.lower()}."
        )
    if data.feedback_kind or data.feedback_section or data.feedback_comment.strip():
        if data.feedback_kind not in ("edge_case", "unclear"):
            errors["feedback_kind"] = "Choose edge case or policy unclear."
        if data.feedback_section not in data.citations:
            errors["feedback_section"] = "Flag one of the sections you cite."
        if not data.feedback_comment.strip():
            errors["feedback_comment"] = "Tell the policy team what is unclear."
    if outcome == Outcome.reject:
        data.safety_requirements = []  # a rejection asks nothing of the developer
    reqs = requirement_rows(session, list(data.safety_requirements))
    req_inputs, req_errors = clean_requirement_inputs(
        reqs, data.requirements, reason_required=outcome == Outcome.request_mitigations
    )
    errors.update(req_errors)
    carried = carried_conditions(session, application) if outcome == Outcome.approve else []
    if (
        template is not None
        and "safety_requirements" in template.body
        and not reqs
        and not carried
        and "safety_requirements" not in errors
    ):
        errors["safety_requirements"] = (
            f"The template “{template.title}” lists safety requirements: choose at least one, "
            "or pick a template without them."
        )
    if errors:
        raise ValidationFailed("The decision is incomplete.", fields=errors)
    assert template is not None and outcome is not None
    versions = current_versions(session, data.citations)
    chosen = {r.id for r in reqs}
    listed = [
        RequiredSafetyRequirement(
            safety_requirement=r,
            reason=req_inputs[r.key].reason,
            parameters=req_inputs[r.key].parameters,
        )
        for r in reqs
    ] + [  # an approval of a resubmission keeps the attested requirements as its conditions
        RequiredSafetyRequirement(
            safety_requirement=c.safety_requirement,
            reason=c.reason,
            parameters=dict(c.parameters or {}),
            answer=dict(c.answer or {}),
        )
        for c in carried
        if c.safety_requirement_id not in chosen
    ]
    message = render_template_text(
        template.body, template_context(application, versions, listed, data.reviewer_note.strip())
    )
    action = {
        Outcome.approve: Action.approve,
        Outcome.request_mitigations: Action.request_mitigations,
        Outcome.reject: Action.reject,
    }[outcome]
    step, final = 1, True
    appeal = None
    if application.status == Status.awaiting_second_approval:
        _check_second_approver(session, user, application)
        step = 2
        # a first approval that overturns an appeal: the second person closes the appeal too
        appeal = open_appeal(session, application, required=False)
    elif application.status == Status.appealed:
        appeal = open_appeal(session, application)
    if appeal is not None:
        _check_appeal_decider(user, appeal)
        if outcome == Outcome.request_mitigations:
            raise ValidationFailed(
                "An appeal ends with approve (overturn the rejection) or reject (uphold it).",
                fields={"outcome": "approve to overturn, reject to uphold"},
            )
    if step == 1 and outcome == Outcome.approve and _approvals_required(session, application) >= 2:
        # waits for a second person; an overturned appeal too: overturning approves the
        # application, and its tier's two-person rule holds however the approval comes
        action, final = Action.first_approve, False
    before = snapshot(application)
    new_status = next_status(application.status, action, Actor.reviewer)
    assert application.current_revision_id is not None
    decision = Decision(
        application_id=application.id,
        revision_id=application.current_revision_id,
        outcome=outcome.value,
        reviewer_id=user.id,
        template_id=template.id,
        message=message,
        rationale=data.rationale.strip(),
        approval_step=step,
        final=final,
    )
    decision.citations = [Citation(policy_section_version_id=v.id) for v in versions]
    decision.required_safety_requirements = listed
    session.add(decision)
    session.flush()
    application.status = new_status
    if final:
        application.last_decision_id = decision.id
    if appeal is not None and final:
        appeal.outcome = "overturned" if outcome == Outcome.approve else "upheld"
        appeal.resolution_id = decision.id
        appeal.decided_by_id = user.id
        appeal.decided_at = utcnow()
    application.claimed_by_id = None
    application.lease_expires_at = None
    if final:  # the developer's turn (mitigations) or the end: the SLA clock stops counting
        pause_clock(application, utcnow())
    if final:  # a resubmission after mitigations comes back to whoever asked for them
        application.preferred_reviewer_id = (
            user.id if new_status == Status.mitigations_requested else None
        )
    if new_status == Status.mitigations_requested:
        application.draft = (
            dict(application.current_revision.content)
            if application.current_revision
            else application.draft
        )
    if data.feedback_kind:
        section = next(v.section for v in versions if v.section.key == data.feedback_section)
        session.add(
            PolicyFeedback(
                policy_section_id=section.id,
                application_id=application.id,
                decision_id=decision.id,
                author_id=user.id,
                kind=data.feedback_kind,
                comment=data.feedback_comment.strip(),
            )
        )
    session.flush()  # the version counter refuses a concurrent writer here (StaleDataError)
    record_event(
        session,
        actor=user,
        action="decision.first_approval"
        if not final
        else (f"appeal.{appeal.outcome}" if appeal is not None else f"decision.{outcome.value}"),
        subject_type="application",
        subject_id=application.reference,
        before=before,
        after={
            **snapshot(application),
            "decision_id": decision.id,
            "citations": [f"{v.section.key}@v{v.version}" for v in versions],
        },
    )
    if not final:
        return decision  # the developer hears nothing until the outcome is final
    notify_decision(session, application, outcome, message)
    return decision


def notify_decision(
    session: Session, application: Application, outcome: Outcome, message: str
) -> None:
    """Queue the decision email to the applying organization's active developers (outbox;
    see :func:`~reviewapp.applications.services.applicant_recipients`)."""
    from reviewapp.applications.services import applicant_recipients

    recipients = applicant_recipients(application)
    add_outbox_event(
        session,
        "decision",
        {
            "application": application.reference,
            "outcome": outcome.value,
            "to": recipients,
            "subject": f"[{application.reference}] {outcome.past_label}: {application.title}",
            # plain text: the developer's own words as typed, not Markdown-escaped
            "body": markdown_source_as_text(message),
        },
    )


def tier_labels(session: Session) -> dict[str, RiskTier]:
    """Tier name -> tier row."""
    return {t.name: t for t in session.scalars(select(RiskTier).order_by(RiskTier.rank))}


NOTE_LIMIT = LIMITS["note.body"]  # code points


def add_note(session: Session, user: User, application: Application, body: str) -> Note:
    """Append an internal note (reviewers only; notes are never edited or deleted, so two
    reviewers writing at once both keep their note).

    Raises:
        PermissionDenied, ValidationFailed (empty, too long, or unstorable characters).
    """
    from reviewapp.applications.schema import unstorable_character

    if not user.can(Permission.view_queue):
        raise PermissionDenied("Only reviewers write internal notes.")
    text = (body or "").strip()
    problem = None
    if not text:
        problem = "Write something first."
    elif len(text) > NOTE_LIMIT:
        problem = f"The note is {len(text)} characters long; the limit is {NOTE_LIMIT}."
    elif (bad := unstorable_character(text)) is not None:
        problem = f"The note contains {bad}, which cannot be stored."
    if problem:
        raise ValidationFailed(problem, fields={"body": problem})
    note = Note(application_id=application.id, author_id=user.id, body=text)
    session.add(note)
    session.flush()
    record_event(
        session,
        actor=user,
        action="note.add",
        subject_type="application",
        subject_id=application.reference,
        after={"note_id": note.id},
    )
    return note


def notes_for(session: Session, application: Application) -> list[Note]:
    """The application's internal notes, oldest first."""
    return list(
        session.scalars(select(Note).where(Note.application_id == application.id).order_by(Note.id))
    )


@overload
def open_appeal(
    session: Session, application: Application, *, required: Literal[True] = True
) -> Appeal: ...


@overload
def open_appeal(
    session: Session, application: Application, *, required: Literal[False]
) -> Appeal | None: ...


def open_appeal(
    session: Session, application: Application, *, required: bool = True
) -> Appeal | None:
    """The undecided appeal of an appealed application (or of one whose overturn awaits its
    second approval); with ``required=False`` None when there is none.

    Raises:
        ConflictError: ``required`` and there is none (the data changed under the caller).
    """
    appeal = session.scalars(
        select(Appeal)
        .where(Appeal.application_id == application.id, Appeal.outcome.is_(None))
        .order_by(Appeal.id.desc())
    ).first()
    if appeal is None and required:
        raise ConflictError("This application has no open appeal.")
    return appeal


def _check_appeal_decider(user: User, appeal: Appeal) -> None:
    if appeal.decision.reviewer_id == user.id:
        raise PermissionDenied(
            "You made the decision under appeal; another reviewer must decide the appeal."
        )


def file_appeal(session: Session, actor: User, application: Application, statement: str) -> Appeal:
    """The applicant contests a rejection, once per revision, with a statement (20–5000 code
    points). The application goes to the ``appeals`` queue.

    Raises:
        PermissionDenied (not the applying organization), InvalidTransition (not rejected),
        ConflictError (already appealed for this revision), ValidationFailed (statement).
    """
    from reviewapp.applications.schema import unstorable_character
    from reviewapp.applications.services import can_edit

    if not can_edit(actor, application):
        raise PermissionDenied("Only the applying organization may appeal.")
    if application.status != Status.rejected or application.last_decision_id is None:
        raise InvalidTransition("Only a rejected application can be appealed.")
    decision = session.get(Decision, application.last_decision_id)
    assert decision is not None
    already = session.scalars(
        select(Appeal).where(
            Appeal.application_id == application.id, Appeal.revision_id == decision.revision_id
        )
    ).first()
    if already is not None:
        raise ConflictError(
            "This rejection was already appealed; an application can be appealed once per revision."
        )
    text = (statement or "").strip()
    low, high = APPEAL_STATEMENT_LIMITS
    problem = None
    if len(text) < low:
        problem = f"Explain in at least {low} characters why the decision should change."
    elif len(text) > high:
        problem = f"The statement is {len(text)} characters long; the limit is {high}."
    elif (bad := unstorable_character(text)) is not None:
        problem = f"The statement contains {bad}, which cannot be stored."
    if problem:
        raise ValidationFailed(problem, fields={"statement": problem})
    before = snapshot(application)
    application.status = next_status(application.status, Action.appeal, Actor.developer)
    appeal = Appeal(
        application_id=application.id,
        revision_id=decision.revision_id,
        decision_id=decision.id,
        statement=text,
        created_by_id=actor.id,
    )
    session.add(appeal)
    now = utcnow()
    application.queue = APPEALS_QUEUE
    application.queued_at = now
    tier = tier_named(session, application.risk_tier)
    run_clock(application, tier.sla_hours if tier else 72, now, fresh=True)  # a new review task
    session.flush()
    record_event(
        session,
        actor=actor,
        action="appeal.file",
        subject_type="application",
        subject_id=application.reference,
        before=before,
        after={**snapshot(application), "appeal_id": appeal.id},
    )
    return appeal


def appeals_for(session: Session, application: Application) -> list[Appeal]:
    """The application's appeals, oldest first."""
    return list(
        session.scalars(
            select(Appeal).where(Appeal.application_id == application.id).order_by(Appeal.id)
        )
    )


ESCALATION_QUEUE = "escalations"
APPEALS_QUEUE = "appeals"


def escalate(session: Session, user: User, application: Application, reason: str) -> None:
    """Hand a claimed application to the senior reviewers' ``escalations`` queue with a reason
    (kept as an internal note).

    Raises:
        ConflictError (no claim), ValidationFailed (no reason), InvalidTransition.
    """
    if not application.is_claimed_by(user):
        raise ConflictError("Claim the application before escalating it.")
    _move_with_note(
        session, user, application, Action.escalate, ESCALATION_QUEUE, "Escalated", reason
    )


def hand_back(session: Session, user: User, application: Application, reason: str) -> None:
    """A senior reviewer returns an escalated application to its tier's queue, with a reason.

    Raises:
        PermissionDenied (not senior), ConflictError (no claim), ValidationFailed, InvalidTransition.
    """
    if not user.can(Permission.decide_senior):
        raise PermissionDenied("Only senior reviewers hand escalations back.")
    if not application.is_claimed_by(user):
        raise ConflictError("Claim the application before handing it back.")
    tier = tier_named(session, application.risk_tier)
    _move_with_note(
        session,
        user,
        application,
        Action.hand_back,
        tier.default_queue if tier else "standard",
        "Handed back",
        reason,
    )


def _move_with_note(
    session: Session,
    user: User,
    application: Application,
    action: Action,
    queue: str,
    label: str,
    reason: str,
) -> None:
    text = (reason or "").strip()
    if not text:
        raise ValidationFailed(
            "Say why, so the next reviewer knows.", fields={"reason": "give a reason"}
        )
    add_note(session, user, application, f"{label}: {text}")
    before_queue = application.queue
    unclaim(
        session,
        application,
        action,
        Actor.reviewer,
        actor=user,
        audit_action=f"application.{action.value}",
    )
    application.queue = queue
    session.flush()
    record_event(
        session,
        actor=user,
        action="application.queue_change",
        subject_type="application",
        subject_id=application.reference,
        before={"queue": before_queue},
        after={"queue": queue},
    )
