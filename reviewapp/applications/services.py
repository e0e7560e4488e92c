"""Application services: draft, edit, submit, withdraw, and who may see what."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.interfaces import ORMOption

from reviewapp.applications.lifecycle import Action, Actor, next_status
from reviewapp.applications.models import (
    APPLICANT_STATUSES,
    Application,
    Revision,
    Status,
    applicant_status,
    statuses_shown_as,
)
from reviewapp.applications.schema import clean_content, empty_content
from reviewapp.audit.services import record_event
from reviewapp.auth.models import Permission, User
from reviewapp.db import utcnow
from reviewapp.errors import NotFound, PermissionDenied, ValidationFailed
from reviewapp.triage.services import triage_revision

#: Loader options for the relations an application's page and API answer show, joined into
#: the statement that loads the application (one statement instead of two lazy loads).
ANSWER_RELATIONS: tuple[ORMOption, ...] = (
    joinedload(Application.organization, innerjoin=True),
    joinedload(Application.current_revision),
)


def snapshot(application: Application) -> dict[str, Any]:
    """The audited state of an application (status, placement, claim)."""
    return {
        "status": str(application.status),
        "risk_tier": application.risk_tier,
        "queue": application.queue,
        "claimed_by_id": application.claimed_by_id,
        "current_revision_id": application.current_revision_id,
    }


def can_view(user: User, application: Application) -> bool:
    """Developers see their organization's applications; the review team sees every submitted
    one (a draft stays private to its organization until it is submitted)."""
    if application.organization_id == user.organization_id and user.can(
        Permission.view_own_organization
    ):
        return True
    if user.can(Permission.view_all_applications):  # only what was ever submitted
        return application.status != Status.draft and application.current_revision_id is not None
    return (
        user.can(Permission.view_own_organization)
        and application.organization_id == user.organization_id
    )


def sees_internal_status(user: User) -> bool:
    """True for the review team, who see every status as it is; the applying organization sees
    :func:`~reviewapp.applications.models.applicant_status` instead."""
    return user.can(Permission.view_all_applications)


def status_seen_by(user: User, application: Application) -> Status:
    """The application's status as ``user`` is shown it (page badges, lists, the API):
    the real one for the review team, the applicant's view of it for everyone else."""
    if sees_internal_status(user):
        return Status(application.status)
    return applicant_status(application.status)


def statuses_seen_by(user: User) -> tuple[Status, ...]:
    """The statuses ``user`` may see and filter by, in life-cycle order."""
    return tuple(Status) if sees_internal_status(user) else APPLICANT_STATUSES


def can_edit(user: User, application: Application) -> bool:
    """Members of the applying organization may edit drafts and act as the applicant."""
    return (
        user.can(Permission.submit_applications)
        and application.organization_id == user.organization_id
    )


def get_application(
    session: Session, user: User, reference: str, *, for_update: bool = False
) -> Application:
    """Load an application by reference and check that ``user`` may see it.

    Raises:
        NotFound: unknown reference, or one the user may not see (no existence leak).
    """
    app_id = Application.id_from_reference(reference)
    # the organization and the current revision, which every page and answer shows, in the
    # same statement (not when locking: FOR UPDATE would lock the organization's row too)
    options = () if for_update else ANSWER_RELATIONS
    application = (
        session.get(Application, app_id, with_for_update=for_update, options=options)
        if app_id
        else None
    )
    if application is None or not can_view(user, application):
        raise NotFound(f"No application {reference!r} that you can see.")
    return application


def create_application(session: Session, actor: User, content: dict[str, Any]) -> Application:
    """Create a draft for the actor's organization from (partial) content.

    Raises:
        PermissionDenied: the actor cannot submit applications.
        ValidationFailed: bad fields (see schema.clean_content).
    """
    if not actor.can(Permission.submit_applications):
        raise PermissionDenied("Only developers file applications.")
    cleaned = clean_content(content, for_submit=False)
    application = Application(
        organization_id=actor.organization_id,
        submitter_id=actor.id,
        status=Status.draft,
        draft=cleaned,
    )
    session.add(application)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="application.create",
        subject_type="application",
        subject_id=application.reference,
        after={"status": Status.draft.value, "title": cleaned["title"]},
    )
    return application


def update_draft(
    session: Session,
    actor: User,
    application: Application,
    content: dict[str, Any],
    *,
    partial: bool = False,
) -> Application:
    """Replace (or, with ``partial``, patch) the draft content.

    Raises:
        PermissionDenied, InvalidTransition (not a draft or awaiting mitigations), ValidationFailed.
    """
    if not can_edit(actor, application):
        raise PermissionDenied("Only the applying organization may edit this application.")
    if application.status not in (Status.draft, Status.mitigations_requested):
        from reviewapp.errors import InvalidTransition

        raise InvalidTransition("Only drafts and applications awaiting mitigations can be edited.")
    cleaned = clean_content(content, for_submit=False, partial=partial)
    before = dict(application.draft)
    application.draft = {**(application.draft if partial else empty_content()), **cleaned}
    changed = sorted(k for k in application.draft if application.draft.get(k) != before.get(k))
    record_event(
        session,
        actor=actor,
        action="application.edit",
        subject_type="application",
        subject_id=application.reference,
        before={k: before.get(k) for k in changed},
        after={k: application.draft.get(k) for k in changed},
    )
    session.flush()
    return application


def submit_application(
    session: Session,
    actor: User,
    application: Application,
    *,
    require_complete: bool = True,
    notify: bool = True,
) -> Revision:
    """Submit (or resubmit) the draft: snapshot a revision, triage it and queue it.

    ``require_complete=False`` is for imports of records that do not state every field (the
    inventory has no request volumes); missing answers stay null and rules treat them as unknown.
    ``notify=False`` (imports) sends no "submitted" confirmation to the organization.

    Raises:
        PermissionDenied, InvalidTransition, ValidationFailed (incomplete content).
    """
    if not can_edit(actor, application):
        raise PermissionDenied("Only the applying organization may submit this application.")
    action = (
        Action.resubmit if application.status == Status.mitigations_requested else Action.submit
    )
    before = snapshot(application)
    submitted = next_status(application.status, action, Actor.developer)
    if action == Action.resubmit:
        from reviewapp.review.mitigations import unanswered

        missing = unanswered(session, application)
        if missing:
            raise ValidationFailed(
                "Answer every requested safety requirement before resubmitting: "
                + "; ".join(missing)
                + ".",
                fields={"answers": "unanswered: " + ", ".join(missing)},
            )
    content = clean_content(application.draft, for_submit=require_complete)
    # every revision becomes the current one when it is made, so an application without a
    # current revision has none yet
    number = 1
    if application.current_revision_id is not None:
        number += (
            session.scalar(
                select(func.max(Revision.number)).where(Revision.application_id == application.id)
            )
            or 0
        )
    revision = Revision(
        application_id=application.id, number=number, content=content, submitted_by_id=actor.id
    )
    session.add(revision)
    application.current_revision = revision
    session.flush()  # the revision's id, for its triage result
    triage_revision(session, application, revision)
    # set after triage's queries (which autoflush), so they go out with triage's changes as
    # one UPDATE of the application
    application.submitted_at = utcnow()
    application.claimed_by_id = None
    application.lease_expires_at = None
    application.status = next_status(submitted, Action.triage, Actor.system)
    session.flush()
    record_event(
        session,
        actor=actor,
        action=f"application.{action.value}",
        subject_type="application",
        subject_id=application.reference,
        before=before,
        after={**snapshot(application), "revision": number},
    )
    if action == Action.resubmit:
        _tell_preferred_reviewer(session, application, number)
    from reviewapp.review.fast_track import fast_track

    # an automatic approval sends its decision instead; a QA-sampled one waits for a person
    if fast_track(session, application) != "approved" and notify:
        _confirm_submission(session, application, number)
    return revision


def applicant_recipients(application: Application) -> list[str]:
    """Email addresses (sorted) of the applying organization's active developer accounts: who
    is told about submissions and decisions. Empty for an organization without one (imported
    agency applications), whose decisions notify nobody."""
    from reviewapp.auth.models import Role

    return sorted(
        {u.email for u in application.organization.users if u.active and u.role == Role.developer}
    )


def _confirm_submission(session: Session, application: Application, number: int) -> None:
    """Email the applying organization's developers that the revision is in the queue."""
    from reviewapp.audit.services import add_outbox_event

    recipients = applicant_recipients(application)
    due = (
        f" The review is due by {application.sla_due_at:%Y-%m-%d %H:%M} UTC."
        if application.sla_due_at
        else ""
    )
    add_outbox_event(
        session,
        "submitted",
        {
            "application": application.reference,
            "to": recipients,
            "subject": f"[{application.reference}] Received (revision {number}): {application.title}",
            "body": (
                f"We received revision {number} of {application.reference}, "
                f'"{application.title}". Our triage placed it in the {application.risk_tier} '
                f"risk tier and the {application.queue} queue.{due} You will hear from us when "
                "a reviewer decides."
            ),
        },
    )


def _tell_preferred_reviewer(session: Session, application: Application, number: int) -> None:
    """Email the reviewer who asked for mitigations that the resubmission is back (it is
    offered to them first by claim-next)."""
    from reviewapp.audit.services import add_outbox_event

    reviewer = application.preferred_reviewer
    if reviewer is None or not reviewer.active:
        return
    add_outbox_event(
        session,
        "resubmitted",
        {
            "application": application.reference,
            "to": [reviewer.email],
            "subject": f"[{application.reference}] Resubmitted (revision {number}): {application.title}",
            "body": (
                f"{application.organization.name} answered your mitigation request and "
                f"resubmitted {application.reference} as revision {number}. It is offered to you "
                "first when you claim the next application."
            ),
        },
    )


def check_may_withdraw(actor: User, application: Application) -> None:
    """Check that ``actor`` may withdraw ``application`` now: a member of the applying
    organization, and its status allows it (the life-cycle table). The browser asks before
    showing its confirmation page, so nobody confirms what would be refused.

    Raises:
        PermissionDenied: not the applying organization.
        InvalidTransition: decided, appealed or already withdrawn.
    """
    if not can_edit(actor, application):
        raise PermissionDenied("Only the applying organization may withdraw this application.")
    next_status(application.status, Action.withdraw, Actor.developer)


def withdraw_application(session: Session, actor: User, application: Application) -> None:
    """Withdraw an open application (the applicant's choice; it leaves every queue; final).

    Raises:
        PermissionDenied, InvalidTransition (see :func:`check_may_withdraw`).
    """
    check_may_withdraw(actor, application)
    from reviewapp.review.clock import pause_clock

    pause_clock(application, utcnow())
    unclaim(
        session,
        application,
        Action.withdraw,
        Actor.developer,
        actor=actor,
        audit_action="application.withdraw",
    )


def unclaim(
    session: Session,
    application: Application,
    action: Action,
    actor_kind: Actor,
    *,
    actor: User | None,
    audit_action: str,
) -> None:
    """Apply a life-cycle ``action`` that ends any claim (withdraw, release, lease expiry), in
    one flush with its audit event (before/after snapshots).

    Raises:
        InvalidTransition: the life-cycle table does not allow it.
    """
    before = snapshot(application)
    application.status = next_status(application.status, action, actor_kind)
    application.claimed_by_id = None
    application.lease_expires_at = None
    session.flush()
    record_event(
        session,
        actor=actor,
        action=audit_action,
        subject_type="application",
        subject_id=application.reference,
        before=before,
        after=snapshot(application),
    )


def list_organization_applications(
    session: Session, user: User, *, page: int = 1, per_page: int = 50, status: str | None = None
) -> tuple[list[Application], int]:
    """The user's organization's applications, newest first; returns (page items, total).

    ``status`` filters by the status as the user sees it (:func:`status_seen_by`): for a
    developer, "in_review" includes the applications awaiting a second approval.
    """
    stmt = select(Application).where(Application.organization_id == user.organization_id)
    if status:
        shown = (Status(status),) if sees_internal_status(user) else statuses_shown_as(status)
        stmt = stmt.where(Application.status.in_(shown))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    items = session.scalars(
        stmt.order_by(Application.created_at.desc(), Application.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return list(items), total
