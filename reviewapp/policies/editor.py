"""Policy managers write policy sections in Markdown; every saved edit is a new version.

Every route needs :attr:`Permission.manage_policies` (403 otherwise); an unknown key is a 404.

- Text is Markdown, rendered by markdown-it and sanitized by nh3 (``render_markdown``), both
  in the "Preview" (which saves nothing) and on the public pages.
- Versions are immutable: saving an edit adds version n+1 with an effective date and a
  required change summary. Citations point at the version they cited, so they never move.
- Effective dates: today (UTC) or later, and not before the current version's date. A
  back-dated version would make past decisions look as if they cited a text that was not yet
  published; a future date announces a change ahead of time.
- A stale form (someone saved a version since it was opened) is refused with the text kept.
- Only the text is versioned; number and title are set when the section is created.
- Every save writes an audit event.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session
from wtforms import DateField, HiddenField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired

from reviewapp.audit.services import record_event
from reviewapp.auth.models import Permission, User
from reviewapp.errors import ConflictError, DomainError, ValidationFailed
from reviewapp.extensions import db
from reviewapp.limits import LIMITS, max_length
from reviewapp.policies.models import PolicyFeedback, PolicySection, PolicySectionVersion
from reviewapp.policies.services import (
    SECTION_KEY_RE,
    _sort_key,
    render_markdown,
    sections_in_order,
)
from reviewapp.web import keeps_input_on_csrf_failure, permission_required, show_form_errors

bp = Blueprint("policy_editor", __name__, url_prefix="/admin/policies")

KEY_RE = SECTION_KEY_RE
TEXT_LIMIT = LIMITS["policy_section.text"]
SUMMARY_LIMIT = LIMITS["policy_section.change_summary"]


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def today() -> dt.date:
    """Today's date in UTC (effective dates are calendar dates)."""
    return dt.datetime.now(dt.UTC).date()


class VersionForm(FlaskForm):
    """A new version of a section's text."""

    text = TextAreaField(
        "Text (Markdown)",
        validators=[
            DataRequired(message="Write the section's text."),
            max_length("policy_section.text"),
        ],
        render_kw={"rows": 16, "spellcheck": "true"},
        description="Markdown; raw HTML is not rendered. Use Preview to check it.",
    )
    effective_date = DateField(
        "Effective date",
        validators=[InputRequired(message="Give the date as YYYY-MM-DD, today or later.")],
        description="Today or later (UTC).",
    )
    change_summary = StringField(
        "Change summary",
        validators=[
            DataRequired(message="Say what changed; it is shown in the public changelog."),
            max_length("policy_section.change_summary"),
        ],
        filters=[_strip],
    )
    base_version = HiddenField()


class SectionForm(VersionForm):
    """A new section: key, number and title, then its first version."""

    key = StringField(
        "Key",
        validators=[
            DataRequired(message="Give the section a key, e.g. usage-4.2."),
            max_length("policy_section.key"),
        ],
        filters=[_strip],
        description="Lowercase letters, digits, dots and dashes. It is part of the public "
        "address and cannot be changed later.",
    )
    number = StringField(
        "Number",
        validators=[
            DataRequired(message="Give the number as displayed, e.g. §4.2."),
            max_length("policy_section.number"),
        ],
        filters=[_strip],
    )
    title = StringField(
        "Title",
        validators=[
            DataRequired(message="Give the section a title."),
            max_length("policy_section.title"),
        ],
        filters=[_strip],
    )


# --- services -----------------------------------------------------------------------------


def _check_effective_date(effective_date: dt.date, previous: PolicySectionVersion | None) -> None:
    if effective_date < today():
        raise ValidationFailed(
            f"The effective date cannot be in the past; use {today().isoformat()} or later.",
            fields={"effective_date": "in the past"},
        )
    if previous is not None and effective_date < previous.effective_date:
        raise ValidationFailed(
            "The effective date cannot be before the newest version's "
            f"({previous.effective_date.isoformat()}).",
            fields={"effective_date": "before the current version"},
        )


def _snapshot(version: PolicySectionVersion) -> dict[str, Any]:
    return {
        "version": version.version,
        "effective_date": version.effective_date.isoformat(),
        "change_summary": version.change_summary,
        "text": version.text,
    }


def create_policy_section(
    session: Session,
    actor: User,
    *,
    key: str,
    number: str,
    title: str,
    text: str,
    effective_date: dt.date,
    change_summary: str,
) -> PolicySection:
    """Create a section with its version 1 (flushes, audits ``policy_section.create``).

    Raises:
        ValidationFailed: a malformed key, a past effective date, or empty text.
        ConflictError: the key is taken.
    """
    if not KEY_RE.match(key):
        raise ValidationFailed(
            "Use lowercase letters, digits, dots and dashes for the key.", fields={"key": "format"}
        )
    if session.scalars(select(PolicySection.id).where(PolicySection.key == key)).first():
        raise ConflictError(f"A section with key {key} exists already.", fields={"key": "taken"})
    if not text.strip():
        raise ValidationFailed("Write the section's text.", fields={"text": "empty"})
    _check_effective_date(effective_date, None)
    section = PolicySection(key=key, number=number, title=title, sort_key=_sort_key(number))
    session.add(section)
    session.flush()
    version = PolicySectionVersion(
        section=section,
        version=1,
        text=text,
        effective_date=effective_date,
        change_summary=change_summary,
    )
    session.add(version)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="policy_section.create",
        subject_type="policy_section",
        subject_id=section.id,
        after={"key": key, "number": number, "title": title, **_snapshot(version)},
    )
    return section


def publish_policy_version(
    session: Session,
    actor: User,
    section: PolicySection,
    *,
    text: str,
    effective_date: dt.date,
    change_summary: str,
    base_version: int | None,
) -> PolicySectionVersion:
    """Add version n+1 of ``section`` (flushes, audits ``policy_section.new_version``).

    Older versions are untouched, so citations keep pointing at the version they cited.

    Raises:
        ValidationFailed: unchanged text, empty summary, or a bad effective date.
        ConflictError: someone published a version after ``base_version`` was read.
    """
    session.refresh(section, ["versions"])
    # the newest version, in force or upcoming: the new one follows it
    current = section.latest
    if base_version is not None and base_version != current.version:
        raise ConflictError(
            f"Someone published version {current.version} while you were editing. "
            "Your text is kept below; compare it with the current version (its page opens "
            "from the section list) and publish again to replace it.",
            fields={"text": f"Version {current.version} was published after you opened this form."},
        )
    if text.replace("\r\n", "\n").strip() == current.text.replace("\r\n", "\n").strip():
        raise ValidationFailed(
            "The text is the same as the current version; nothing to publish.",
            fields={"text": "unchanged"},
        )
    if not change_summary.strip():
        raise ValidationFailed("Say what changed.", fields={"change_summary": "empty"})
    _check_effective_date(effective_date, current)
    version = PolicySectionVersion(
        section=section,
        version=current.version + 1,
        text=text,
        effective_date=effective_date,
        change_summary=change_summary.strip(),
    )
    session.add(version)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="policy_section.new_version",
        subject_type="policy_section",
        subject_id=section.id,
        before=_snapshot(current),
        after=_snapshot(version),
    )
    return version


# --- views --------------------------------------------------------------------------------


def _section_or_404(key: str) -> PolicySection:
    section = db.session.scalars(select(PolicySection).where(PolicySection.key == key)).first()
    if section is None or not section.versions:
        abort(404)
    return section


@bp.route("")
@permission_required(Permission.manage_policies)
def index() -> Any:
    """Every section with its current version, and links to edit, history and requests."""
    return render_template("policy_editor/index.html", sections=sections_in_order(db.session))


@bp.route("/new", methods=["GET", "POST"])
@keeps_input_on_csrf_failure
@permission_required(Permission.manage_policies)
def new() -> Any:
    """Create a section (key, number, title, text, effective date), with preview."""
    form = SectionForm()
    if request.method == "GET":
        form.effective_date.data = today()
        form.change_summary.data = "Initial version"
    preview: Markup | None = None

    def page(status: int = 200) -> Any:
        return render_template(
            "policy_editor/form.html", form=form, section=None, preview=preview
        ), status

    if request.method == "GET":
        return page()
    if request.form.get("preview"):
        preview = render_markdown(form.text.data or "")
        return page()
    if not form.validate():
        return page(422)
    try:
        section = create_policy_section(
            db.session,
            current_user,
            key=form.key.data or "",
            number=form.number.data or "",
            title=form.title.data or "",
            text=form.text.data or "",
            effective_date=form.effective_date.data or today(),
            change_summary=form.change_summary.data or "",
        )
        db.commit()
    except DomainError as exc:
        db.rollback()
        show_form_errors(form, exc, "Not saved: ")
        return page(exc.status)
    flash(f"Section {section.number} created as version 1.", "success")
    return redirect(url_for("policy_editor.section", key=section.key))


@bp.route("/sections/<key>")
@permission_required(Permission.manage_policies)
def section(key: str) -> Any:
    """A section's versions, reviewers' feedback and developers' clarification requests."""
    from reviewapp.policies.clarifications import requests_for_section

    sec = _section_or_404(key)
    feedback = db.session.scalars(
        select(PolicyFeedback)
        .where(PolicyFeedback.policy_section_id == sec.id)
        .order_by(PolicyFeedback.id.desc())
        .limit(200)
    ).all()
    return render_template(
        "policy_editor/section.html",
        section=sec,
        feedback=feedback,
        requests=requests_for_section(db.session, sec.id),
    )


@bp.route("/sections/<key>/edit", methods=["GET", "POST"])
@keeps_input_on_csrf_failure
@permission_required(Permission.manage_policies)
def edit(key: str) -> Any:
    """Publish a new version of a section's text, with preview; old versions stay as cited."""
    sec = _section_or_404(key)
    form = VersionForm()
    if request.method == "GET":
        form.text.data = sec.latest.text
        form.effective_date.data = max(today(), sec.latest.effective_date)
        form.base_version.data = str(sec.latest.version)
    preview: Markup | None = None

    def page(status: int = 200) -> Any:
        return render_template(
            "policy_editor/form.html", form=form, section=sec, preview=preview
        ), status

    if request.method == "GET":
        return page()
    if request.form.get("preview"):
        preview = render_markdown(form.text.data or "")
        return page()
    if not form.validate():
        return page(422)
    raw_base = form.base_version.data or ""
    try:
        version = publish_policy_version(
            db.session,
            current_user,
            sec,
            text=form.text.data or "",
            effective_date=form.effective_date.data or today(),
            change_summary=form.change_summary.data or "",
            base_version=int(raw_base) if raw_base.isdigit() else None,
        )
        db.commit()
    except DomainError as exc:
        db.rollback()
        show_form_errors(form, exc, "Not saved: ")
        if isinstance(exc, ConflictError):
            # the author has now been told about the newer version: publishing again is an
            # informed decision, so the form now builds on it
            db.session.refresh(sec, ["versions"])
            form.base_version.data = str(sec.latest.version)
        return page(exc.status)
    flash(
        f"Version {version.version} of {sec.number} published, effective "
        f"{version.effective_date.isoformat()}.",
        "success",
    )
    return redirect(url_for("policy_editor.section", key=sec.key))
