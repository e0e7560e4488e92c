"""Policy clarification requests: developers ask, the policy team answers.

A developer (:attr:`Permission.submit_applications`) asks for a clarification of, or a change
to, a policy section from its public page, or from a decision that cited it (the form then
carries the application's reference, which must belong to the developer's organization). The
request pins the section version the developer was reading, like a citation does.

Developers see their organization's requests and the answers at ``/clarifications``; another
organization's request is a 404. Policy managers (:attr:`Permission.manage_policies`) list
them per section beside the reviewers' policy feedback under ``/admin/policies/clarifications``
and answer or decline each open one with a message. Every ask, answer and decline is audited.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import CheckConstraint, ForeignKey, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship
from wtforms import HiddenField, RadioField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length

from reviewapp.applications.models import Application
from reviewapp.audit.services import record_event
from reviewapp.auth.models import Permission, User
from reviewapp.db import Base, utcnow
from reviewapp.errors import ConflictError, DomainError, ValidationFailed
from reviewapp.extensions import db
from reviewapp.limits import LIMITS, max_length
from reviewapp.policies.models import PolicyFeedback, PolicySection, PolicySectionVersion
from reviewapp.web import keeps_input_on_csrf_failure, permission_required, show_form_errors

MESSAGE_MIN = 20
MESSAGE_MAX = LIMITS["clarification.message"]
ANSWER_MAX = LIMITS["clarification.answer"]
KINDS = {"clarification": "Clarification", "change": "Change request"}
STATUSES = ("open", "answered", "declined")


class ClarificationRequest(Base):
    """A developer's question about (or proposed change to) one pinned policy section version.

    ``status`` moves once: ``open`` -> ``answered`` | ``declined``; the database keeps the
    answer, who gave it and when consistent with the status.
    """

    __tablename__ = "clarification_request"
    __table_args__ = (
        CheckConstraint("kind IN ('clarification', 'change')", name="kind_known"),
        CheckConstraint("status IN ('open', 'answered', 'declined')", name="status_known"),
        CheckConstraint(
            f"length(message) BETWEEN {MESSAGE_MIN} AND {MESSAGE_MAX}", name="message_length"
        ),
        CheckConstraint(
            "(status = 'open' AND answer IS NULL AND answered_by_id IS NULL "
            "AND answered_at IS NULL) OR (status <> 'open' AND answer IS NOT NULL "
            "AND answered_by_id IS NOT NULL AND answered_at IS NOT NULL)",
            name="answer_matches_status",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    policy_section_id: Mapped[int] = mapped_column(
        ForeignKey("policy_section.id", ondelete="CASCADE"), index=True
    )
    policy_section_version_id: Mapped[int] = mapped_column(
        ForeignKey("policy_section_version.id", ondelete="RESTRICT")
    )
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organization.id", ondelete="RESTRICT"), index=True
    )
    requester_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="RESTRICT"))
    application_id: Mapped[int | None] = mapped_column(
        ForeignKey("application.id", ondelete="SET NULL")
    )
    kind: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="open")
    answer: Mapped[str | None] = mapped_column(Text)
    answered_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="RESTRICT")
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[dt.datetime | None]

    section: Mapped[PolicySection] = relationship()
    version: Mapped[PolicySectionVersion] = relationship()
    requester: Mapped[User] = relationship(foreign_keys=[requester_id])
    answered_by: Mapped[User | None] = relationship(foreign_keys=[answered_by_id])

    @property
    def kind_label(self) -> str:
        """The kind as shown: "Clarification" or "Change request"."""
        return KINDS.get(self.kind, self.kind)

    @property
    def application_reference(self) -> str:
        """``APP-000123`` of the decision it was asked from, or ""."""
        return f"APP-{self.application_id:06d}" if self.application_id else ""

    def can_be_seen_by(self, user: User) -> bool:
        """Policy managers see every request; developers only their organization's."""
        if user.can(Permission.manage_policies):
            return True
        return user.organization_id == self.organization_id


# --- services -----------------------------------------------------------------------------


def request_clarification(
    session: Session,
    *,
    actor: User,
    section: PolicySection,
    version: PolicySectionVersion,
    kind: str,
    message: str,
    application_reference: str = "",
) -> ClarificationRequest:
    """Record a developer's request about ``version`` of ``section`` (flushes, audits).

    Raises:
        ValidationFailed: unknown kind, message outside 20–5000 characters, a version of
            another section, or an application reference that is not the actor's organization's
            (the message does not reveal whether it exists).
    """
    message = (message or "").strip()
    if kind not in KINDS:
        raise ValidationFailed("Choose clarification or change.", fields={"kind": "unknown kind"})
    if not MESSAGE_MIN <= len(message) <= MESSAGE_MAX:
        raise ValidationFailed(
            f"Write between {MESSAGE_MIN} and {MESSAGE_MAX} characters (you wrote {len(message)}).",
            fields={"message": "length"},
        )
    if version.section_id != section.id:
        raise ValidationFailed("That version belongs to another section.")
    application_id = None
    if application_reference.strip():
        application_id = Application.id_from_reference(application_reference)
        app_row = session.get(Application, application_id) if application_id else None
        if app_row is None or app_row.organization_id != actor.organization_id:
            raise ValidationFailed(
                "That application is not one of your organization's.",
                fields={"application": "unknown application"},
            )
    row = ClarificationRequest(
        policy_section_id=section.id,
        policy_section_version_id=version.id,
        organization_id=actor.organization_id,
        requester_id=actor.id,
        application_id=application_id,
        kind=kind,
        message=message,
        status="open",
    )
    session.add(row)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="policy_clarification.ask",
        subject_type="clarification_request",
        subject_id=row.id,
        after={
            "section": section.key,
            "version": version.version,
            "kind": kind,
            "application_id": application_id,
        },
    )
    return row


def respond_to_clarification(
    session: Session, *, actor: User, request_id: int, status: str, answer: str
) -> ClarificationRequest:
    """Answer or decline an open request with ``answer`` (1–5000 characters); audited.

    Raises:
        ValidationFailed: ``status`` not answered/declined, or an empty/too long answer.
        ConflictError: the request was already answered or declined (by someone else).
    """
    answer = (answer or "").strip()
    if status not in ("answered", "declined"):
        raise ValidationFailed("Choose answer or decline.", fields={"decision": "unknown"})
    if not answer or len(answer) > ANSWER_MAX:
        raise ValidationFailed(
            f"Write an answer of at most {ANSWER_MAX} characters; the developer reads it.",
            fields={"answer": "length"},
        )
    row = session.scalars(
        select(ClarificationRequest).where(ClarificationRequest.id == request_id).with_for_update()
    ).one()
    if row.status != "open":
        raise ConflictError(f"This request was already {row.status}; nothing was changed.")
    row.status, row.answer, row.answered_by_id, row.answered_at = (
        status,
        answer,
        actor.id,
        utcnow(),
    )
    session.flush()
    record_event(
        session,
        actor=actor,
        action=f"policy_clarification.{'answer' if status == 'answered' else 'decline'}",
        subject_type="clarification_request",
        subject_id=row.id,
        before={"status": "open"},
        after={"status": status, "answer": answer},
    )
    return row


def requests_for_section(
    session: Session, section_id: int, status: str = ""
) -> list[ClarificationRequest]:
    """A section's requests, newest first, optionally of one status."""
    query = select(ClarificationRequest).where(ClarificationRequest.policy_section_id == section_id)
    if status in STATUSES:
        query = query.where(ClarificationRequest.status == status)
    return list(session.scalars(query.order_by(ClarificationRequest.id.desc())))


# --- forms --------------------------------------------------------------------------------


class AskForm(FlaskForm):
    """A developer's request; ``application`` is set when asked from a decision."""

    kind = RadioField(
        "What do you need?",
        choices=[
            SelectChoice("clarification", "A clarification of what this section means"),
            SelectChoice("change", "A change to this section"),
        ],
        default="clarification",
        validators=[InputRequired(message="Choose clarification or change.")],
    )
    message = TextAreaField(
        "Your question",
        validators=[
            DataRequired(message="Write your question."),
            Length(
                min=MESSAGE_MIN,
                message=f"Write between {MESSAGE_MIN} and {MESSAGE_MAX} characters.",
            ),
            max_length("clarification.message"),
        ],
        filters=[lambda v: v.strip() if isinstance(v, str) else v],
        description="Describe your use case; the policy team answers here and on "
        "your clarifications page.",
    )
    version = HiddenField()
    application = HiddenField()


class RespondForm(FlaskForm):
    """A policy manager's answer or refusal."""

    decision = RadioField(
        "Response",
        choices=[SelectChoice("answered", "Answer"), SelectChoice("declined", "Decline")],
        default="answered",
        validators=[InputRequired(message="Choose answer or decline.")],
    )
    answer = TextAreaField(
        "Message to the developer",
        validators=[
            DataRequired(message="Write the message the developer will read."),
            max_length("clarification.answer"),
        ],
        filters=[lambda v: v.strip() if isinstance(v, str) else v],
        description="Markdown. Shown to the developer's organization.",
    )


# --- views --------------------------------------------------------------------------------

bp = Blueprint("clarifications", __name__)


def _section_or_404(key: str) -> PolicySection:
    section = db.session.scalars(select(PolicySection).where(PolicySection.key == key)).first()
    if section is None or not section.versions:
        abort(404)
    return section


def _pinned_version(section: PolicySection, raw: str | None) -> PolicySectionVersion:
    """The version number posted by the form, else the one in force (else the newest)."""
    if raw and raw.isdigit():
        for version in section.versions:
            if version.version == int(raw):
                return version
    return section.current or section.latest


@bp.route("/policies/<key>/clarifications", methods=["GET", "POST"])
@keeps_input_on_csrf_failure
@permission_required(Permission.submit_applications)
def ask(key: str) -> Any:
    """A developer asks about a section; GET shows the form, a bad POST re-renders it (422)."""
    section = _section_or_404(key)
    form = AskForm()
    if request.method == "GET":
        form.version.data = request.args.get("version", "")
        form.application.data = request.args.get("application", "")
    version = _pinned_version(section, form.version.data)
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                row = request_clarification(
                    db.session,
                    actor=current_user,
                    section=section,
                    version=version,
                    kind=form.kind.data,
                    message=form.message.data,
                    application_reference=form.application.data or "",
                )
                db.commit()
            except DomainError as exc:
                db.rollback()
                show_form_errors(form, exc, "Not sent: ")
            else:
                flash("Sent to the policy team. Their answer will appear here.", "success")
                return redirect(url_for("clarifications.mine_detail", request_id=row.id))
        return render_template(
            "clarifications/ask.html", form=form, section=section, version=version
        ), 422
    return render_template("clarifications/ask.html", form=form, section=section, version=version)


@bp.route("/clarifications")
@login_required
def mine() -> Any:
    """The signed-in user's organization's requests, newest first, with their answers."""
    rows = db.session.scalars(
        select(ClarificationRequest)
        .where(ClarificationRequest.organization_id == current_user.organization_id)
        .order_by(ClarificationRequest.id.desc())
        .limit(200)
    ).all()
    return render_template("clarifications/mine.html", rows=rows)


@bp.route("/clarifications/<int:request_id>")
@login_required
def mine_detail(request_id: int) -> Any:
    """One request with its answer; another organization's request is a 404."""
    row = db.session.get(ClarificationRequest, request_id)
    if row is None or not row.can_be_seen_by(current_user):
        abort(404)
    return render_template("clarifications/detail.html", row=row)


@bp.route("/admin/policies/clarifications")
@permission_required(Permission.manage_policies)
def admin_index() -> Any:
    """Requests per section beside reviewers' feedback; ``?status=`` and ``?section=`` filter."""
    status = request.args.get("status", "open")
    status = status if status in (*STATUSES, "all") else "open"
    section_key = request.args.get("section", "")
    session = db.session
    query = select(ClarificationRequest).join(ClarificationRequest.section)
    if status != "all":
        query = query.where(ClarificationRequest.status == status)
    if section_key:
        query = query.where(PolicySection.key == section_key)
    rows = session.scalars(
        query.order_by(PolicySection.sort_key, ClarificationRequest.id.desc()).limit(500)
    ).all()
    feedback_query = select(PolicyFeedback).join(PolicyFeedback.section)
    if section_key:
        feedback_query = feedback_query.where(PolicySection.key == section_key)
    feedback = session.scalars(feedback_query.order_by(PolicyFeedback.id.desc()).limit(500)).all()
    open_counts = dict(
        session.execute(
            select(ClarificationRequest.policy_section_id, func.count())
            .where(ClarificationRequest.status == "open")
            .group_by(ClarificationRequest.policy_section_id)
        ).all()
    )
    groups: dict[int, dict[str, Any]] = {}
    for row in rows:
        group = groups.setdefault(
            row.policy_section_id, {"section": row.section, "requests": [], "feedback": []}
        )
        group["requests"].append(row)
    for entry in feedback:
        group = groups.setdefault(
            entry.policy_section_id, {"section": entry.section, "requests": [], "feedback": []}
        )
        group["feedback"].append(entry)
    ordered = sorted(groups.values(), key=lambda g: g["section"].sort_key)
    return render_template(
        "clarifications/admin_index.html",
        groups=ordered,
        status=status,
        section_key=section_key,
        statuses=STATUSES,
        open_counts=open_counts,
        form=RespondForm(formdata=None),
    )


@bp.route("/admin/policies/clarifications/<int:request_id>", methods=["GET", "POST"])
@keeps_input_on_csrf_failure
@permission_required(Permission.manage_policies)
def admin_respond(request_id: int) -> Any:
    """Answer or decline one request; a bad POST re-renders with the text kept (422)."""
    row = db.session.get(ClarificationRequest, request_id)
    if row is None:
        abort(404)
    form = RespondForm()
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                respond_to_clarification(
                    db.session,
                    actor=current_user,
                    request_id=row.id,
                    status=form.decision.data,
                    answer=form.answer.data,
                )
                db.commit()
            except DomainError as exc:
                db.rollback()
                show_form_errors(form, exc, "Not saved: ")
                status = 409 if isinstance(exc, ConflictError) else 422
                row = db.session.get(ClarificationRequest, request_id)
                return render_template("clarifications/respond.html", row=row, form=form), status
            flash(f"Request {form.decision.data}; the developer can read your message.", "success")
            return redirect(url_for("clarifications.admin_index", section=row.section.key))
        return render_template("clarifications/respond.html", row=row, form=form), 422
    return render_template("clarifications/respond.html", row=row, form=form)
