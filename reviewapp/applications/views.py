"""Developer pages: my applications, new/edit draft, submit, application detail, withdraw."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from reviewapp.applications.diff import diff_contents
from reviewapp.applications.forms import AppealForm, ApplicationForm, ConfirmForm, WithdrawForm
from reviewapp.applications.models import Application, Status
from reviewapp.applications.services import (
    can_edit,
    check_may_withdraw,
    create_application,
    get_application,
    list_organization_applications,
    status_seen_by,
    statuses_seen_by,
    submit_application,
    update_draft,
    withdraw_application,
)
from reviewapp.auth.models import Permission
from reviewapp.errors import DomainError
from reviewapp.extensions import db
from reviewapp.review.mitigations import (
    AnswerInput,
    answer_requirements,
    answers_changed,
    mitigation_request,
)
from reviewapp.review.models import Decision
from reviewapp.review.services import appeals_for, file_appeal
from reviewapp.triage.services import latest_triage_result
from reviewapp.web import (
    act,
    csrf_failed,
    keeps_input_on_csrf_failure,
    page_arg,
    permission_required,
    save_form,
)

bp = Blueprint("applications", __name__, url_prefix="/applications")


@bp.route("")
@permission_required(Permission.view_own_organization)
def index() -> Any:
    """The organization's applications with status, tier and decision."""
    statuses = statuses_seen_by(current_user)
    status = request.args.get("status") or None
    if status not in statuses:
        status = None
    page = page_arg()
    items, total = list_organization_applications(
        db.session, current_user, page=page, per_page=25, status=status
    )
    return render_template(
        "applications/index.html",
        items=items,
        total=total,
        page=page,
        per_page=25,
        status=status,
        statuses=list(statuses),
    )


@bp.app_template_global()
def shown_status(application: Application) -> str:
    """The application's status as the signed-in user is shown it (see status_seen_by)."""
    return status_seen_by(current_user, application).value


@bp.route("/new", methods=["GET", "POST"])
@keeps_input_on_csrf_failure
@permission_required(Permission.submit_applications)
def new() -> Any:
    """Create a draft; "Submit for review" also submits it."""
    form = ApplicationForm()
    application = save_form(
        form,
        lambda: _save_and_maybe_submit(
            form, create_application(db.session, current_user, form.content())
        ),
    )
    if application is not None:
        flash(_saved_message(application), "success")
        return redirect(url_for(".detail", reference=application.reference))
    return render_template("applications/form.html", form=form, application=None), (
        422 if form.errors else 200
    )


def _save_and_maybe_submit(form: ApplicationForm, application: Application) -> Application:
    """Submit the saved draft too when the user pressed "Submit for review"."""
    if form.submit_application.data:
        submit_application(db.session, current_user, application)
    return application


def _saved_message(application: Application) -> str:
    if application.status == Status.draft:
        return f"Draft {application.reference} saved."
    if application.status == Status.mitigations_requested:
        return f"Changes to {application.reference} saved. Answer each requested safety requirement and resubmit when ready."
    if application.status == Status.approved:  # the tier's fast track approved it on submit
        return (
            f"{application.reference} submitted and approved automatically: "
            f"{application.risk_tier} risk applications are on the fast track, so no reviewer "
            "needed to look at it. You can take this use case live."
        )
    return f"{application.reference} submitted: triaged as {application.risk_tier} risk and placed in the {application.queue} queue."


@bp.route("/<reference>/edit", methods=["GET", "POST"])
@keeps_input_on_csrf_failure
@login_required
def edit(reference: str) -> Any:
    """Edit a draft (or an application awaiting mitigations), optionally submitting it.

    While mitigations are requested the page also carries the answers to the requested safety
    requirements, so "Save and resubmit" saves the edits and the answers and resubmits in one
    transaction; "Save draft" saves the answers too when they were changed. Any error saves
    nothing and re-renders everything as typed, answer errors next to the answer fields (422).
    """
    application = get_application(db.session, current_user, reference)
    if not can_edit(current_user, application):
        abort(403)
    if application.status not in (Status.draft, Status.mitigations_requested):
        flash("Only drafts and applications awaiting mitigations can be edited.", "warning")
        return redirect(url_for(".detail", reference=reference))
    mitigations = (
        mitigation_request(db.session, application)
        if application.status == Status.mitigations_requested
        else None
    )
    form = ApplicationForm()
    if request.method == "GET":
        form.fill(application.draft)
    answer_errors: dict[str, str] = {}

    def save() -> Application:
        update_draft(db.session, current_user, application, form.content())
        given = posted_answers()
        if mitigations is not None and (
            form.submit_application.data or answers_changed(mitigations, given)
        ):
            try:
                answer_requirements(db.session, current_user, application, given)
            except DomainError as exc:
                answer_errors.update(exc.fields)
                raise
        return _save_and_maybe_submit(form, application)

    saved = save_form(form, save, "Nothing was saved: ")
    if saved is not None:
        flash(_saved_message(saved), "success")
        return redirect(url_for(".detail", reference=reference))
    if answer_errors:
        db.session.refresh(application)  # the rolled-back answers are not shown as saved
    return render_template(
        "applications/form.html",
        form=form,
        application=application,
        mitigations=mitigations,
        answer_errors=answer_errors,
        posted=request.form if request.method == "POST" else None,
    ), (422 if form.errors or answer_errors else 200)


def posted_answers() -> dict[str, AnswerInput]:
    """The answers to a mitigation request in the posted form: requirement key -> answer, from
    the fields ``attested-<key>`` ("yes" when ticked), ``details-<key>`` and ``link-<key>``
    (one entry per ``details-<key>`` field present)."""
    return {
        key[len("details-") :]: AnswerInput(
            attested=request.form.get("attested-" + key[len("details-") :]) == "yes",
            details=request.form.get(key, ""),
            link=request.form.get("link-" + key[len("details-") :], ""),
        )
        for key in request.form
        if key.startswith("details-")
    }


@bp.route("/<reference>")
@login_required
def detail(reference: str) -> Any:
    """The application as its viewer may see it: status, tier, decision with citations.

    Reviewers get the review page (triage explanation, decision form) instead.
    """
    application = get_application(db.session, current_user, reference)
    if current_user.can(Permission.view_queue):
        return redirect(url_for("review.application", reference=reference))
    return _render_detail(application)


def _render_detail(
    application: Application,
    appeal_form: AppealForm | None = None,
    status: int = 200,
    answer_errors: dict[str, str] | None = None,
) -> Any:
    """The developer's application page (decision, appeals, content)."""
    decision = (
        db.session.get(Decision, application.last_decision_id)
        if application.last_decision_id
        else None
    )
    decisions = db.session.scalars(
        select(Decision)
        .where(Decision.application_id == application.id, Decision.final.is_(True))
        .order_by(Decision.decided_at.desc())
    ).all()
    triage = (
        latest_triage_result(db.session, application.current_revision_id)
        if application.current_revision_id
        else None
    )
    return render_template(
        "applications/detail.html",
        application=application,
        decision=decision,
        decisions=decisions,
        triage=triage,
        confirm=ConfirmForm(),
        can_edit=can_edit(current_user, application),
        appeals=appeals_for(db.session, application),
        appeal_form=appeal_form or AppealForm(formdata=None),
        mitigations=mitigation_request(db.session, application)
        if application.status == Status.mitigations_requested
        else None,
        answer_errors=answer_errors or {},
        posted=request.form if request.method == "POST" else None,
    ), status


@bp.route("/<reference>/submit", methods=["POST"])
@login_required
def submit(reference: str) -> Any:
    """Submit the saved draft."""
    application = get_application(db.session, current_user, reference)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        submit_application(db.session, current_user, application)
    except DomainError as exc:
        db.rollback()
        flash(
            exc.message
            + (" " + "; ".join(f"{k}: {v}" for k, v in exc.fields.items()) if exc.fields else ""),
            "danger",
        )
        return redirect(url_for(".edit", reference=reference))
    db.commit()
    flash(_saved_message(application), "success")
    return redirect(url_for(".detail", reference=reference))


@bp.route("/<reference>/appeal", methods=["POST"])
@keeps_input_on_csrf_failure
@login_required
def appeal(reference: str) -> Any:
    """File an appeal against the rejection; errors re-render the page with the text kept."""
    application = get_application(db.session, current_user, reference)
    form = AppealForm()
    filed = save_form(
        form,
        lambda: file_appeal(db.session, current_user, application, form.statement.data or ""),
        "The appeal was not filed: ",
    )
    if filed is not None:
        flash(
            "Your appeal is filed. A senior reviewer who was not involved in the decision will "
            "consider it.",
            "success",
        )
        return redirect(url_for(".detail", reference=reference))
    return _render_detail(application, appeal_form=form, status=422)


@bp.route("/<reference>/answers", methods=["POST"])
@keeps_input_on_csrf_failure
@login_required
def answers(reference: str) -> Any:
    """Save the answers to a mitigation request (attestation, details, link per requirement);
    with "Save and resubmit" also resubmit. Errors re-render the page with the text kept."""
    application = get_application(db.session, current_user, reference)
    if not can_edit(current_user, application):
        abort(403)
    if csrf_failed():
        return _render_detail(application, status=400)  # the answers as typed, nothing saved
    if not ConfirmForm().validate_on_submit():
        abort(400)
    given = posted_answers()
    resubmit = "resubmit" in request.form
    try:
        answer_requirements(db.session, current_user, application, given)
        if resubmit:
            submit_application(db.session, current_user, application)
        db.commit()
    except DomainError as exc:
        db.rollback()
        flash("The answers were not saved: " + exc.message, "danger")
        db.session.refresh(application)
        return _render_detail(application, status=422, answer_errors=exc.fields)
    if resubmit:
        flash(_saved_message(application), "success")
    else:
        flash("Answers saved. Resubmit when the application is ready.", "success")
    return redirect(url_for(".detail", reference=reference))


@bp.route("/<reference>/revisions/<int:number>/diff")
@login_required
def revision_diff(reference: str, number: int) -> Any:
    """Field-by-field differences of revision ``number`` against revision ``against`` (query
    argument; default: the revision before it)."""
    application = get_application(db.session, current_user, reference)
    against = request.args.get("against", type=int) or number - 1
    by_number = {r.number: r for r in application.revisions}
    if number not in by_number or against not in by_number:
        abort(404)
    return render_template(
        "applications/diff.html",
        application=application,
        new=by_number[number],
        old=by_number[against],
        changes=diff_contents(by_number[against].content, by_number[number].content),
        numbers=sorted(by_number),
    )


@bp.route("/<reference>/withdraw", methods=["GET", "POST"])
@login_required
def withdraw(reference: str) -> Any:
    """Withdraw an open application, after a page that says it cannot be undone: the POST is
    refused (422, the page again with the message at the box) unless its box is ticked. One
    click used to withdraw at once. Someone who may not withdraw it (another role, or a
    status that does not allow it) is sent back to the application with the reason."""
    application = get_application(db.session, current_user, reference)
    try:
        check_may_withdraw(current_user, application)
    except DomainError as exc:
        flash(exc.message, "warning")
        return redirect(url_for(".detail", reference=reference))
    form = WithdrawForm()
    if form.validate_on_submit():
        act(
            lambda: withdraw_application(db.session, current_user, application),
            f"{reference} withdrawn.",
            "info",
        )
        return redirect(url_for(".detail", reference=reference))
    return render_template("applications/withdraw.html", application=application, form=form), (
        422 if form.errors else 200
    )
