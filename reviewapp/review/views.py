"""Reviewer pages: the queue, claim-next, the review page and the decision form."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice

from reviewapp.applications.diff import diff_contents
from reviewapp.applications.forms import ConfirmForm, choices
from reviewapp.applications.models import Application, Revision, Status
from reviewapp.applications.services import get_application
from reviewapp.auth.models import Permission
from reviewapp.db import concurrent_writes_as_conflicts, utcnow
from reviewapp.errors import ConflictError, DomainError
from reviewapp.extensions import db
from reviewapp.policies.models import ResponseTemplate, SafetyRequirement
from reviewapp.policies.services import sections_in_order
from reviewapp.review.bulk import BULK_OUTCOMES, bulk_decide
from reviewapp.review.fast_track import AUTO_TEMPLATE
from reviewapp.review.forms import (
    BulkDecisionForm,
    DecisionForm,
    NoteForm,
    QueueFilterForm,
    ReasonForm,
)
from reviewapp.review.mitigations import (
    RequirementInput,
    mitigation_request,
    parameter_field,
    reason_field,
)
from reviewapp.review.models import Decision, Outcome
from reviewapp.review.precedents import find_precedents
from reviewapp.review.reference import QueueInfo, ReferenceData, reference_data
from reviewapp.review.services import (
    QUEUE_COUNT_LIMIT,
    QUEUE_VIEWS,
    DecisionInput,
    QueueFilters,
    QueueRow,
    add_note,
    appeals_for,
    check_queue_filters,
    claim,
    claim_next,
    decide,
    escalate,
    hand_back,
    list_queue_rows,
    notes_for,
    queues_for,
    release,
    renew_lease,
    tier_labels,
)
from reviewapp.review.sla import describe, format_local, resolve_zone
from reviewapp.triage.services import latest_triage_result
from reviewapp.web import (
    act,
    is_safe_next,
    keeps_input_on_csrf_failure,
    local_text,
    page_arg,
    permission_required,
    save_form,
    show_form_errors,
    viewer_timezone,
)

bp = Blueprint("review", __name__)


@bp.route("/queue")
@permission_required(Permission.view_queue)
def queue() -> Any:
    """The queue: search, filters (queue, tier, status, age), SLA order, pagination."""
    user = current_user._get_current_object()
    ref = reference_data(db.session)
    queues = ref.queues_for_role(str(user.role))
    filters, filter_form = _filter_form(
        ref,
        str(user.role),
        queues,
        # view=mine is the API's spelling of the page's mine=1; both work here
        mine=request.args.get("mine") == "1" or request.args.get("view") == "mine",
        view=request.args.get("view") if request.args.get("view") in QUEUE_VIEWS else None,
    )
    page = page_arg()
    per_page = 50
    rows, total = list_queue_rows(
        db.session,
        user,
        filters,
        page=page,
        per_page=per_page,
        count_limit=QUEUE_COUNT_LIMIT,
        queues=queues,
    )
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    can_decide = user.can(Permission.decide)
    return render_template(
        "review/queue.html",
        filter_form=filter_form,
        items=_queue_items(rows, user.id, viewer_timezone(), ref),
        total=total,
        page=page,
        per_page=per_page,
        count_limit=QUEUE_COUNT_LIMIT,
        args=args,
        filters=filters,
        views=QUEUE_VIEWS,
        can_decide=can_decide,
        bulk_fields=_bulk_fields_html(ref) if can_decide else None,
    )


#: the raw query arguments the filter form reads (view and mine are links, not fields)
_FILTER_ARGS = ("q", "queue", "tier", "status", "age_days")
_FILTER_FORMS_KEY = "reviewapp.queue_filter_forms"
_FILTER_FORMS_SIZE = 256  # distinct filter choices kept per process
_FILTER_ARG_MAX = 64  # longer raw values are not kept (no valid choice is that long)
_filter_forms_lock = threading.Lock()


def _filter_form(
    ref: ReferenceData, role: str, queues: list[QueueInfo], *, mine: bool, view: str | None
) -> tuple[QueueFilters, Markup]:
    """The filters of ``request.args`` as the query applies them, and the filter form's HTML.

    Invalid values are shown as errors next to their field and ignored; the valid ones apply.
    Both results depend only on the raw arguments, the viewer's role (which queues it may
    filter on) and the reference data, so they are kept per process under
    (fingerprint, role, arguments), the newest :data:`_FILTER_FORMS_SIZE` of them: a
    reviewer paging through a filtered queue does not build, validate and render the form
    on every page. Changed queues or tiers change the fingerprint, so nothing stale is shown.
    """
    raw = tuple(request.args.get(k, "") for k in _FILTER_ARGS)
    key = (ref.fingerprint, role, raw, mine, view)
    cacheable = all(len(v) <= _FILTER_ARG_MAX for v in raw)
    cache: OrderedDict[Any, tuple[QueueFilters, Markup]] = current_app.extensions.setdefault(
        _FILTER_FORMS_KEY, OrderedDict()
    )
    if cacheable:
        with _filter_forms_lock:
            found = cache.get(key)
            if found is not None:
                cache.move_to_end(key)
                return found
    form = QueueFilterForm(request.args)
    form.queue.choices = choices([("", "All my queues")] + [(q.key, q.title) for q in queues])
    form.tier.choices = choices([("", "All tiers")] + [(t.name, t.label) for t in ref.tiers])
    form.validate()  # errors are shown next to each filter; the valid filters still apply

    def valid(field: Any) -> Any:
        return None if field.errors else (field.data or None)

    filters = QueueFilters(
        search=valid(form.q),
        queue=valid(form.queue),
        tier=valid(form.tier),
        status=valid(form.status),
        age_days=None if form.age_days.errors else form.age_days.data,
        mine=mine,
        view=view,
    )
    # the template is autoescaped: its output is HTML already
    html = Markup(render_template("review/_queue_filters.html", form=form, filters=filters))  # noqa: S704  # nosec B704
    if cacheable:
        with _filter_forms_lock:
            cache[key] = (filters, html)
            while len(cache) > _FILTER_FORMS_SIZE:
                cache.popitem(last=False)
    return filters, html


class QueueItem(NamedTuple):
    """One queue row as the page prints it (every text computed here, in one pass)."""

    reference: str
    url: str
    title: str
    external_ref: str | None
    organization: str
    risk_tier: str | None
    tier_label: str  # as the admin named it ("High"); the name when the tier is gone
    tier_colour: str
    queue: str | None
    queue_title: str  # as the admin named it ("Standard review"); the key when it is gone
    status_label: str
    status_colour: str
    due: str  # "due in 3 h" / "overdue by 2 d 1 h"; "" without an SLA due time
    is_overdue: bool
    due_local: str  # the due time in the viewer's zone
    claimant: str | None  # e-mail of the holder of an unexpired claim
    lease_expired: bool  # claimed, but the lease ran out
    back_to_you: bool  # a resubmission held for this reviewer


def _queue_items(
    rows: list[QueueRow], viewer_id: int, tz_name: str, ref: ReferenceData
) -> list[QueueItem]:
    """The page's rows: one clock read for every "due in" text and lease, the viewer's time
    zone resolved once, the review page's URL built once (references are URL-safe), tiers and
    queues by their display names from the cached reference data."""
    tier_labels = {t.name: t.label for t in ref.tiers}
    queue_titles = {q.key: q.title for q in ref.queues}
    now = utcnow()
    zone = resolve_zone(tz_name)
    sample = "APP-000000"
    sample_url = url_for(".application", reference=sample)
    prefix = sample_url[: -len(sample)] if sample_url.endswith(sample) else None
    items = []
    for r in rows:
        reference = r.reference
        due = describe(r.sla_due_at, now) if r.sla_due_at is not None else ""
        lease_active = r.lease_expires_at is not None and r.lease_expires_at > now
        items.append(
            QueueItem(
                reference=reference,
                url=prefix + reference
                if prefix is not None
                else url_for(".application", reference=reference),
                title=r.title,
                external_ref=r.external_ref,
                organization=r.organization,
                risk_tier=r.risk_tier,
                tier_label=tier_labels.get(r.risk_tier or "", r.risk_tier or ""),
                tier_colour=tier_badge(r.risk_tier),
                queue=r.queue,
                queue_title=queue_titles.get(r.queue or "", r.queue or ""),
                status_label=str(r.status).replace("_", " "),
                status_colour=status_badge(r.status),
                due=due,
                is_overdue=due.startswith("overdue"),
                due_local=format_local(r.sla_due_at, zone) if r.sla_due_at is not None else "",
                claimant=r.claimant if r.claimed_by_id and lease_active else None,
                lease_expired=bool(r.claimed_by_id) and not lease_active,
                back_to_you=r.preferred_reviewer_id == viewer_id,
            )
        )
    return items


def _bulk_form() -> BulkDecisionForm:
    form = BulkDecisionForm()
    _set_bulk_choices(form, reference_data(db.session))
    return form


def _set_bulk_choices(form: BulkDecisionForm, ref: ReferenceData) -> None:
    form.citations.choices = [(key, f"{number} {title}") for key, number, title in ref.sections]
    groups = {"approve": "Approve", "reject": "Reject"}
    form.template.choices = [SelectChoice("", "— choose —")] + [
        SelectChoice(key, title, optgroup=groups[outcome])
        for key, title, outcome in ref.templates
        if outcome in BULK_OUTCOMES and key != AUTO_TEMPLATE
    ]


def _bulk_fields_html(ref: ReferenceData) -> Markup:
    """The bulk-decision form's fields as the queue page shows them (never filled in on a
    GET: errors come back as a flash after a redirect). They depend only on the policy
    sections and response templates, so the HTML is kept per process with the reference
    data's fingerprint and rendered again when that changes."""
    cached = current_app.extensions.get(_BULK_FIELDS_KEY)
    if cached is not None and cached[0] == ref.fingerprint:
        return cached[1]  # type: ignore[no-any-return]
    form = BulkDecisionForm(meta={"csrf": False})
    _set_bulk_choices(form, ref)
    # the template is autoescaped: its output is HTML already
    html = Markup(render_template("review/_bulk_fields.html", bulk=form))  # noqa: S704  # nosec B704
    current_app.extensions[_BULK_FIELDS_KEY] = (ref.fingerprint, html)
    return html


_BULK_FIELDS_KEY = "reviewapp.queue_bulk_fields"


@bp.route("/queue/bulk", methods=["POST"])
@permission_required(Permission.decide)
def bulk_view() -> Any:
    """Approve or reject the selected applications; show what happened to each."""
    form = _bulk_form()
    references = request.form.getlist("reference")
    if not form.validate_on_submit():
        flash(
            "Nothing was decided: "
            + " ".join(f"{form[k].label.text}: {' '.join(v)}" for k, v in form.errors.items()),
            "danger",
        )
        back = request.form.get("return_to") or ""
        return redirect(back if is_safe_next(back) else url_for(".queue"))
    data = DecisionInput(
        outcome=form.outcome.data or "",
        citations=list(form.citations.data or []),
        template_key=form.template.data or "",
        safety_requirements=[],
        reviewer_note=form.reviewer_note.data or "",
    )
    try:
        results = bulk_decide(db.session, current_user, references, data)
        db.commit()
    except DomainError as exc:
        db.rollback()
        flash("Nothing was decided: " + exc.message, "danger")
        return redirect(url_for(".queue"))
    done = sum(r.ok for r in results)
    flash(
        f"{done} of {len(results)} applications decided.",
        "success" if done == len(results) else "warning",
    )
    return render_template("review/bulk_result.html", results=results, outcome=data.outcome)


@bp.route("/queue/claim-next", methods=["POST"])
@permission_required(Permission.claim)
def claim_next_view() -> Any:
    """Claim the next application in queue order and open it."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    # the queue page's filters (queue, tier, status, age, view) narrow what is claimed; a
    # failed claim goes back to the same filtered page
    back = request.form.get("return_to") or ""
    back = back if is_safe_next(back) else url_for(".queue")
    try:
        filters = check_queue_filters(
            db.session,
            current_user,
            request.form,
            ("queue", "tier", "status", "age_days", "view"),
            claiming=True,
            other=("csrf_token", "return_to"),
        )
        application = claim_next(db.session, current_user, filters=filters)
    except DomainError as exc:
        db.rollback()
        flash(exc.message, "warning")
        return redirect(back)
    if application is None:
        db.rollback()
        flash(
            "Nothing to claim: no unclaimed application matches (queue empty, or every one "
            "claimed).",
            "info",
        )
        return redirect(back)
    db.commit()
    flash(
        f"You claimed {application.reference}. Your lease runs until {local_text(application.lease_expires_at)}.",
        "success",
    )
    return redirect(url_for(".application", reference=application.reference))


def _decision_form(application: Application) -> DecisionForm:
    form = DecisionForm()
    triage = (
        latest_triage_result(db.session, application.current_revision_id)
        if application.current_revision_id
        else None
    )
    form.set_choices(
        sections_in_order(db.session),
        db.session.scalars(select(SafetyRequirement).order_by(SafetyRequirement.title)).all(),
        db.session.scalars(
            select(ResponseTemplate)
            .where(ResponseTemplate.key != AUTO_TEMPLATE)  # the fast track's own message
            .order_by(ResponseTemplate.outcome, ResponseTemplate.title)
        ).all(),
        suggested_sections=triage.suggested_policy_sections if triage else (),
        suggested_requirements=triage.required_safety_requirements if triage else (),
    )
    return form


def _claim_refusal(application: Application) -> str | None:
    """Why the current user may not claim this application (None when they may)."""
    from reviewapp.errors import PermissionDenied
    from reviewapp.review.services import check_second_person_rules

    try:
        check_second_person_rules(db.session, current_user, application)
    except (PermissionDenied, ConflictError) as exc:
        return exc.message
    return None


def _active_ruleset_note(application: Application) -> Any:
    """The active ruleset's shadow result for this revision when it differs from the tier the
    application kept (it was claimed or decided when that ruleset was published)."""
    from reviewapp.triage.models import TriageResult
    from reviewapp.triage.services import active_ruleset

    if application.current_revision_id is None:
        return None
    active = active_ruleset(db.session)
    note = db.session.scalars(
        select(TriageResult).where(
            TriageResult.revision_id == application.current_revision_id,
            TriageResult.ruleset_version_id == active.id,
            TriageResult.shadow.is_(True),
        )
    ).first()
    return note if note is not None and note.tier != application.risk_tier else None


def _render_review(
    application: Application,
    form: DecisionForm,
    status: int = 200,
    note_form: NoteForm | None = None,
    requirement_errors: dict[str, str] | None = None,
    reason_form: ReasonForm | None = None,
) -> Any:
    triage = (
        latest_triage_result(db.session, application.current_revision_id)
        if application.current_revision_id
        else None
    )
    decisions = db.session.scalars(
        select(Decision)
        .where(Decision.application_id == application.id)
        .order_by(Decision.decided_at.desc())
    ).all()
    if request.method == "GET":
        form.version.data = str(application.version)
    own_org = application.organization_id == current_user.organization_id
    requirement_catalogue = {
        r.key: r
        for r in db.session.scalars(select(SafetyRequirement).order_by(SafetyRequirement.title))
    }
    # a resubmission: the revision the last decision judged, and the developer's answers
    answered_request = mitigation_request(db.session, application)
    judged = (
        db.session.get(Revision, answered_request.revision_id)
        if answered_request is not None
        and answered_request.revision_id != application.current_revision_id
        else None
    )
    return render_template(
        "review/application.html",
        application=application,
        triage=triage,
        decisions=decisions,
        form=form,
        confirm=ConfirmForm(),
        holds_claim=application.is_claimed_by(current_user),
        can_work_queue=application.queue in {q.key for q in queues_for(db.session, current_user)},
        claim_refusal=_claim_refusal(application),
        own_org=own_org,
        tiers=tier_labels(db.session),
        notes=notes_for(db.session, application),
        active_differs=_active_ruleset_note(application),
        open_appeal_row=next(
            (a for a in appeals_for(db.session, application) if a.outcome is None), None
        ),
        note_form=note_form or NoteForm(formdata=None),
        reason_form=reason_form or ReasonForm(formdata=None),
        section_names={s.key: f"{s.number} {s.title}" for s in sections_in_order(db.session)},
        requirement_names={r.key: r.title for r in requirement_catalogue.values()},
        requirement_rows=requirement_catalogue,
        requirement_errors=requirement_errors or {},
        requirement_error_keys={
            k.split("-", 1)[1].rsplit("-", 1)[0] if k.startswith("param-") else k.split("-", 1)[1]
            for k in (requirement_errors or {})
        },
        posted=request.form if request.method == "POST" else {},
        judged=judged,
        changes=diff_contents(judged.content, application.current_revision.content)
        if judged is not None and application.current_revision is not None
        else [],
        answered_request=answered_request,
        precedents=find_precedents(db.session, current_user, application),
    ), status


@bp.route("/review/<reference>")
@permission_required(Permission.view_all_applications)
def application(reference: str) -> Any:
    """The review page: revision, triage explanation, history, decision form."""
    app_row = get_application(db.session, current_user, reference)
    return _render_review(app_row, _decision_form(app_row))


@bp.route("/review/<reference>/claim", methods=["POST"])
@permission_required(Permission.claim)
def claim_view(reference: str) -> Any:
    """Claim this application."""
    app_row = get_application(db.session, current_user, reference)
    act(lambda: claim(db.session, current_user, app_row), f"You claimed {reference}.")
    return redirect(url_for(".application", reference=reference))


def _move_queue(reference: str, move: Callable[..., None], done: str) -> Any:
    """Escalate or hand back with the posted reason; to the queue on success, else back."""
    app_row = get_application(db.session, current_user, reference)
    reason_form = ReasonForm()
    if not reason_form.validate():
        # over-long reason (or an expired form): the page again, with the text and the error
        return _render_review(app_row, _decision_form(app_row), 400, reason_form=reason_form)
    reason = reason_form.reason.data or ""
    if act(lambda: move(db.session, current_user, app_row, reason), f"{reference} {done}.", "info"):
        return redirect(url_for(".queue"))
    return redirect(url_for(".application", reference=reference))


@bp.route("/review/<reference>/escalate", methods=["POST"])
@permission_required(Permission.claim)
def escalate_view(reference: str) -> Any:
    """Send the claimed application to the senior reviewers, with a reason."""
    return _move_queue(reference, escalate, "escalated to senior reviewers")


@bp.route("/review/<reference>/hand-back", methods=["POST"])
@permission_required(Permission.decide_senior)
def hand_back_view(reference: str) -> Any:
    """Return an escalated application to its tier's queue, with a reason."""
    return _move_queue(reference, hand_back, "handed back to its queue")


@bp.route("/review/<reference>/renew", methods=["POST"])
@permission_required(Permission.claim)
def renew_view(reference: str) -> Any:
    """Extend the lease on an application the reviewer holds."""
    app_row = get_application(db.session, current_user, reference)
    act(
        lambda: renew_lease(db.session, current_user, app_row),
        lambda until: f"Lease renewed until {local_text(until)}.",
        "info",
    )
    return redirect(url_for(".application", reference=reference))


@bp.route("/review/<reference>/release", methods=["POST"])
@permission_required(Permission.claim)
def release_view(reference: str) -> Any:
    """Give the application back to its queue."""
    app_row = get_application(db.session, current_user, reference)
    act(
        lambda: release(db.session, current_user, app_row),
        f"{reference} is back in the queue.",
        "info",
    )
    back = request.form.get("return_to") or ""
    return redirect(back if is_safe_next(back) else url_for(".queue"))


@bp.route("/review/<reference>/notes", methods=["POST"])
@keeps_input_on_csrf_failure
@permission_required(Permission.view_queue)
def add_note_view(reference: str) -> Any:
    """Append an internal note; on a problem re-render the page with the text kept."""
    app_row = get_application(db.session, current_user, reference)
    form = NoteForm()
    note = save_form(
        form,
        lambda: add_note(db.session, current_user, app_row, form.body.data or ""),
        "The note was not saved: ",
    )
    if note is not None:
        flash("Note added.", "success")
        return redirect(url_for(".application", reference=reference) + "#notes")
    return _render_review(app_row, _decision_form(app_row), 422, note_form=form)


@bp.route("/review/<reference>/decide", methods=["POST"])
@keeps_input_on_csrf_failure
@permission_required(Permission.decide)
def decide_view(reference: str) -> Any:
    """Record a decision; on any problem re-render the form with what was typed."""
    app_row = get_application(db.session, current_user, reference)
    form = _decision_form(app_row)
    if not form.validate_on_submit():
        # a hidden field has no place on the page to show its message: it goes in the banner
        hidden = " ".join(form.version.errors)
        flash(
            f"The decision was not saved: {hidden or 'see the messages next to the fields.'}",
            "danger",
        )
        return _render_review(app_row, form, 422)
    expected = int(form.version.data) if form.version.data else None  # digits: see the form
    requirements = {
        key: RequirementInput(
            reason=request.form.get(reason_field(key), ""),
            parameters={
                k[len(parameter_field(key, "")) :]: v
                for k, v in request.form.items()
                if k.startswith(parameter_field(key, ""))
            },
        )
        for key in form.safety_requirements.data or []
    }
    data = DecisionInput(
        outcome=form.outcome.data or "",
        citations=list(form.citations.data or []),
        template_key=form.template.data or "",
        safety_requirements=list(form.safety_requirements.data or []),
        reviewer_note=form.reviewer_note.data or "",
        rationale=form.rationale.data or "",
        expected_version=expected,
        feedback_kind=form.feedback_kind.data or "",
        feedback_section=form.feedback_section.data or "",
        feedback_comment=form.feedback_comment.data or "",
        requirements=requirements,
    )
    try:
        with concurrent_writes_as_conflicts():
            decision = decide(db.session, current_user, app_row, data)
            db.commit()
    except DomainError as exc:
        db.rollback()
        show_form_errors(form, exc, "The decision was not saved: ")
        if isinstance(exc, ConflictError):
            flash("Your text is kept below; the page shows the application as it is now.", "info")
        db.session.refresh(app_row)
        return _render_review(
            app_row,
            form,
            409 if isinstance(exc, ConflictError) else 422,
            requirement_errors={
                k: v for k, v in exc.fields.items() if k.startswith(("reason-", "param-"))
            },
        )
    if decision.final:
        message = f"Decision recorded for {reference}: {Outcome(decision.outcome).past_label.lower()}. The developer has been notified."
    else:
        message = f"First approval recorded for {reference}. A senior reviewer who is not you must give the second approval; the developer is told only then."
    flash(message, "success")
    return redirect(url_for(".queue"))


@bp.app_template_global()
def status_badge(status: str) -> str:
    """Bootstrap colour of a status badge."""
    return {
        Status.draft: "secondary",
        Status.submitted: "info",
        Status.queued: "primary",
        Status.in_review: "warning",
        Status.approved: "success",
        Status.rejected: "danger",
        Status.mitigations_requested: "warning",
        Status.withdrawn: "secondary",
        Status.appealed: "info",
        Status.awaiting_second_approval: "info",
    }.get(Status(status), "secondary")


@bp.app_template_global()
def tier_badge(tier: str | None) -> str:
    """Bootstrap colour of a risk-tier badge."""
    return {"low": "success", "medium": "info", "high": "warning", "prohibited": "danger"}.get(
        tier or "", "secondary"
    )
