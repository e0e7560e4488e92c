"""The rules lab (admins): versions, draft editing, try, backtest, approve, publish, rollback."""

from __future__ import annotations

import json
from typing import Any

import yaml
from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm.exc import StaleDataError

from reviewapp.applications.forms import ConfirmForm
from reviewapp.applications.models import Application
from reviewapp.applications.schema import clean_content
from reviewapp.applications.services import get_application
from reviewapp.auth.models import Permission, User
from reviewapp.errors import ConflictError, DomainError, ValidationFailed
from reviewapp.extensions import db
from reviewapp.triage import lab
from reviewapp.triage.engine import RULE_FIELDS, RuleValidationError, rule_context
from reviewapp.triage.forms import KeywordListForm, RollbackForm, RuleForm, TryForm
from reviewapp.triage.models import Backtest, RulesetStatus, TriageResult
from reviewapp.triage.services import active_ruleset, compile_document, ruleset_document
from reviewapp.web import act, keeps_input_on_csrf_failure, permission_required, show_form_errors

bp = Blueprint("rules", __name__, url_prefix="/admin/rulesets")


def _confirm() -> None:
    if not ConfirmForm().validate_on_submit():
        abort(400)


def _user_names(ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    return {u.id: u.email for u in db.session.scalars(select(User).where(User.id.in_(wanted)))}


@bp.route("")
@permission_required(Permission.manage_rulesets)
def index() -> Any:
    """Every version, newest first, with who made and published it."""
    items = lab.versions(db.session)
    names = _user_names(
        {u for v in items for u in (v.created_by_id, v.published_by_id, v.reactivated_by_id)}
    )
    return render_template("rules/index.html", versions=items, names=names, confirm=ConfirmForm())


@bp.route("/<int:number>")
@permission_required(Permission.manage_rulesets)
def version(number: int) -> Any:
    """One version: rules, keyword lists, field reference, publish checklist, shadow results."""
    ver = lab.get_version(db.session, number)
    active = active_ruleset(db.session)
    checks = lab.publish_checks(db.session, ver) if ver.status == RulesetStatus.draft else None
    backtests = db.session.scalars(
        select(Backtest)
        .where(Backtest.ruleset_version_id == ver.id)
        .order_by(Backtest.id.desc())
        .limit(5)
    ).all()
    shadow_count = db.session.scalar(
        select(func.count())
        .select_from(TriageResult)
        .where(TriageResult.ruleset_version_id == ver.id, TriageResult.shadow.is_(True))
    )
    names = _user_names(
        {ver.approved_by_id, ver.created_by_id, ver.published_by_id, ver.reactivated_by_id}
    )
    retriage = None
    if ver.status == RulesetStatus.published:
        from reviewapp.triage.retriage import retriage_progress

        retriage = retriage_progress(db.session, ver)
    return render_template(
        "rules/version.html",
        version=ver,
        active=active,
        checks=checks,
        backtests=backtests,
        names=names,
        fields=RULE_FIELDS,
        confirm=ConfirmForm(),
        try_form=TryForm(),
        shadow_count=shadow_count,
        retriage=retriage,
        actions_text={r.key: lab.format_actions(r.actions) for r in ver.rules},
    )


@bp.route("/<int:number>/draft", methods=["POST"])
@permission_required(Permission.manage_rulesets)
def start_draft(number: int) -> Any:
    """Start a new draft copying version ``number``."""
    _confirm()
    draft = lab.start_draft(db.session, current_user, lab.get_version(db.session, number))
    db.commit()
    flash(f"Draft v{draft.number} started from v{number}.", "success")
    return redirect(url_for(".version", number=draft.number))


def _rule_form_data(form: RuleForm) -> dict[str, Any]:
    return {
        "key": form.key.data,
        "name": form.name.data,
        "description": form.description.data,
        "condition": form.condition.data,
        "actions": lab.parse_actions(form.actions.data or ""),
        "enabled": bool(form.enabled.data),
        "examples": lab.parse_examples(form.examples.data or ""),
    }


@bp.route("/<int:number>/rules/new", methods=["GET", "POST"])
@bp.route("/<int:number>/rules/<key>/edit", methods=["GET", "POST"])
@keeps_input_on_csrf_failure
@permission_required(Permission.manage_rulesets)
def edit_rule(number: int, key: str | None = None) -> Any:
    """Add or edit a rule; the whole draft is validated on save and errors sit by the field."""
    ver = lab.get_version(db.session, number)
    if ver.status != RulesetStatus.draft:
        flash(f"v{number} is {ver.status}: start a draft to change rules.", "warning")
        return redirect(url_for(".version", number=number))
    rule = next((r for r in ver.rules if r.key == key), None) if key else None
    if key and rule is None:
        abort(404)
    form = RuleForm()
    if request.method == "GET" and rule is not None:
        form.key.data, form.name.data, form.description.data = rule.key, rule.name, rule.description
        form.condition.data, form.enabled.data = rule.condition, rule.enabled
        form.actions.data = lab.format_actions(rule.actions)
        form.examples.data = (
            yaml.safe_dump(rule.examples, sort_keys=False, allow_unicode=True)
            if rule.examples
            else ""
        )
        form.fingerprint.data = lab.rule_edit_fingerprint(rule)
    if form.validate_on_submit():
        try:
            try:
                saved = lab.save_rule(
                    db.session,
                    current_user,
                    ver,
                    original_key=key,
                    data=_rule_form_data(form),
                    seen=form.fingerprint.data,
                )
                db.commit()
            except StaleDataError:
                # another save of this draft committed between our read and our write (the
                # draft's lock_version); the fingerprint check tells a save of the same rule
                raise ConflictError(
                    "Someone else saved a change to this draft at the same moment. Nothing was "
                    "saved; your text is kept below. Save again to apply it to their version."
                ) from None
        except DomainError as exc:
            db.rollback()
            show_form_errors(form, exc, "Not saved: ")
            return render_template(
                "rules/rule_form.html", form=form, version=ver, rule=rule, fields=RULE_FIELDS
            ), (exc.status if isinstance(exc, ConflictError) else 422)
        flash(f"Rule {saved.key} saved in draft v{number}.", "success")
        return redirect(url_for(".version", number=number) + f"#rule-{saved.key}")
    return render_template(
        "rules/rule_form.html", form=form, version=ver, rule=rule, fields=RULE_FIELDS
    )


@bp.route("/<int:number>/rules/<key>/delete", methods=["POST"])
@permission_required(Permission.manage_rulesets)
def delete_rule(number: int, key: str) -> Any:
    """Remove a rule from a draft."""
    version = lab.get_version(db.session, number)
    act(
        lambda: lab.delete_rule(db.session, current_user, version, key),
        f"Rule {key} removed from draft v{number}.",
        "info",
    )
    return redirect(url_for(".version", number=number))


@bp.route("/<int:number>/rules/<key>/move", methods=["POST"])
@permission_required(Permission.manage_rulesets)
def move_rule(number: int, key: str) -> Any:
    """Move a rule up or down (``direction`` = up|down)."""
    offset = -1 if request.form.get("direction") == "up" else 1
    version = lab.get_version(db.session, number)
    act(
        lambda: lab.move_rule(db.session, current_user, version, key, offset),
        f"Rule {key} moved.",
        "info",
    )
    return redirect(url_for(".version", number=number) + f"#rule-{key}")


@bp.route("/<int:number>/keyword-lists/new", methods=["GET", "POST"])
@bp.route("/<int:number>/keyword-lists/<name>", methods=["GET", "POST"])
@permission_required(Permission.manage_rulesets)
def edit_keyword_list(number: int, name: str | None = None) -> Any:
    """Create, edit or (empty phrases) delete a keyword list of a draft."""
    ver = lab.get_version(db.session, number)
    form = KeywordListForm()
    current = ver.keyword_lists.get(name) if name else None
    if name and current is None:
        abort(404)
    if request.method == "GET" and current is not None:
        form.name.data = name
        form.description.data = current.get("description", "") if isinstance(current, dict) else ""
        phrases = current["phrases"] if isinstance(current, dict) else current
        form.phrases.data = "\n".join(phrases)
    if ver.status != RulesetStatus.draft:
        if request.method == "POST":
            flash(f"v{number} is {ver.status}: start a draft to change keyword lists.", "warning")
            return redirect(url_for(".version", number=number))
    elif form.validate_on_submit():
        phrases = [p.strip() for p in (form.phrases.data or "").splitlines() if p.strip()]
        try:
            lab.save_keyword_list(
                db.session,
                current_user,
                ver,
                form.name.data or "",
                phrases,
                form.description.data or "",
            )
        except DomainError as exc:
            db.rollback()
            show_form_errors(form, exc, "Not saved: ")
            return render_template(
                "rules/keyword_list_form.html", form=form, version=ver, name=name
            ), 422
        db.commit()
        flash(
            f"Keyword list {form.name.data} saved in draft v{number}."
            if phrases
            else f"Keyword list {form.name.data} deleted.",
            "success",
        )
        return redirect(url_for(".version", number=number) + "#keyword-lists")
    return render_template("rules/keyword_list_form.html", form=form, version=ver, name=name)


@bp.route("/<int:number>/try", methods=["POST"])
@permission_required(Permission.manage_rulesets)
def try_ruleset(number: int) -> Any:
    """Evaluate this version against one application (by reference) or pasted JSON: every rule,
    fired or not, with the values it read ("why not?")."""
    ver = lab.get_version(db.session, number)
    form = TryForm()
    if not form.validate_on_submit():
        abort(400)
    content: dict[str, Any] | None = None
    application = None
    try:
        if form.reference.data:
            application = get_application(db.session, current_user, form.reference.data)
            if application.current_revision is None:
                raise ValidationFailed(
                    "That application has not been submitted yet.",
                    fields={"reference": "no revision"},
                )
            content = application.current_revision.content
        elif form.content.data:
            try:
                raw = json.loads(form.content.data)
            except RecursionError:
                raise ValidationFailed(
                    "The JSON is nested too deeply.", fields={"content": "nested too deeply"}
                ) from None
            except json.JSONDecodeError as exc:
                raise ValidationFailed(
                    f"Not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
                    fields={"content": f"line {exc.lineno}, column {exc.colno}: {exc.msg}"},
                ) from None
            if not isinstance(raw, dict):
                raise ValidationFailed(
                    "Paste a JSON object with the application's fields.",
                    fields={"content": "expected an object"},
                )
            content = clean_content(raw, for_submit=False, partial=True)
        else:
            raise ValidationFailed(
                "Give an application reference or paste JSON.", fields={"reference": "required"}
            )
    except DomainError as exc:
        db.rollback()
        show_form_errors(form, exc, "Nothing was tried: ")  # trying saves nothing
        return render_template("rules/try.html", form=form, version=ver, outcome=None, rows=[]), 422
    try:
        compiled = compile_document(db.session, ruleset_document(ver))
    except RuleValidationError as exc:
        # stored before a check was tightened (e.g. a condition the checker once misread)
        flash(f"v{number} does not compile: {exc}. Fix or remove that rule first.", "danger")
        return render_template("rules/try.html", form=form, version=ver, outcome=None, rows=[]), 422
    outcome = compiled.evaluate(content)
    fired = {f.key: f for f in outcome.fired}
    matches = compiled.matcher.match(content)
    ctx = rule_context(content, outcome.signals)
    rows = []
    for cr in compiled.rules:
        tested = sorted(cr.signal_literals & set(compiled.matcher.names))
        rows.append(
            {
                "key": cr.spec.key,
                "name": cr.spec.name,
                "condition": cr.spec.condition,
                "fired": cr.spec.key in fired,
                "explanation": fired[cr.spec.key].explanation if cr.spec.key in fired else None,
                "fields_read": {
                    f: sorted(ctx[f]) if isinstance(ctx[f], set) else ctx[f] for f in cr.fields
                },
                "signals": {s: [m.text for m in matches if m.signal == s][:5] for s in tested},
                "error": next(
                    (e["error"] for e in outcome.errors if e["rule"] == cr.spec.key), None
                ),
            }
        )
    return render_template(
        "rules/try.html",
        form=form,
        version=ver,
        outcome=outcome,
        rows=rows,
        application=application,
    )


@bp.route("/<int:number>/approve", methods=["POST"])
@permission_required(Permission.manage_rulesets)
def approve(number: int) -> Any:
    """Approve the draft's current content (a different admin must then publish it)."""
    version = lab.get_version(db.session, number)
    act(
        lambda: lab.approve(db.session, current_user, version),
        f"You approved draft v{number} as it stands. Another admin can now publish it.",
    )
    return redirect(url_for(".version", number=number))


def _expected_active() -> int | None:
    try:
        return int(request.form.get("active_id", ""))
    except ValueError:
        return None


@bp.route("/<int:number>/publish", methods=["POST"])
@permission_required(Permission.manage_rulesets)
def publish(number: int) -> Any:
    """Publish the draft (checks: examples, backtest, second admin's approval)."""
    version = lab.get_version(db.session, number)
    act(
        lambda: lab.publish(
            db.session, current_user, version, expected_active_id=_expected_active()
        ),
        lambda previous: (
            f"v{number} is now the active ruleset (v{previous.number} retired). "
            "Unclaimed queued applications are being re-triaged."
        ),
    )
    return redirect(url_for(".version", number=number))


@bp.route("/<int:number>/rollback", methods=["GET", "POST"])
@permission_required(Permission.manage_rulesets)
def rollback(number: int) -> Any:
    """Re-activate an earlier published version, after a confirmation page that says what
    will happen (how many applications get re-triaged)."""
    version = lab.get_version(db.session, number)
    if version.status != RulesetStatus.retired or version.published_at is None:
        flash("Only a version that was published before can be rolled back to.", "warning")
        return redirect(url_for(".version", number=number))
    active = active_ruleset(db.session)
    form = RollbackForm()
    if request.method == "GET":
        form.active_id.data = str(active.id)
    if form.validate_on_submit():
        act(
            lambda: lab.rollback(
                db.session, current_user, version, expected_active_id=_expected_active()
            ),
            lambda previous: (
                f"Rolled back: v{number} is active again (v{previous.number} retired). "
                "Unclaimed queued applications are being re-triaged."
            ),
        )
        return redirect(url_for(".version", number=number))
    from reviewapp.triage.retriage import retriage_progress

    return render_template(
        "rules/rollback.html",
        version=version,
        active=active,
        form=form,
        to_retriage=retriage_progress(db.session, active)["total"],
    ), (422 if form.errors else 200)


@bp.route("/<int:number>/shadow", methods=["POST"])
@permission_required(Permission.manage_rulesets)
def shadow(number: int) -> Any:
    """Turn shadow mode on or off for a draft (``enabled`` = 1|0)."""
    enabled = request.form.get("enabled") == "1"
    version = lab.get_version(db.session, number)
    act(
        lambda: lab.set_shadow(db.session, current_user, version, enabled),
        f"Shadow mode {'on' if enabled else 'off'} for v{number}.",
        "info",
    )
    return redirect(url_for(".version", number=number))


@bp.route("/<int:number>/shadow-results")
@permission_required(Permission.manage_rulesets)
def shadow_results(number: int) -> Any:
    """Where the draft's shadow results disagree with the tier the application got."""
    ver = lab.get_version(db.session, number)
    rows = db.session.execute(
        select(TriageResult, Application)
        .join(Application, Application.current_revision_id == TriageResult.revision_id)
        .where(TriageResult.ruleset_version_id == ver.id, TriageResult.shadow.is_(True))
        .order_by(TriageResult.id.desc())
        .limit(500)
    ).all()
    return render_template("rules/shadow.html", version=ver, rows=rows)


@bp.route("/<int:number>/backtests", methods=["POST"])
@permission_required(Permission.manage_rulesets)
def start_backtest(number: int) -> Any:
    """Start a backtest of this version against the active ruleset (a background job)."""
    _confirm()
    from reviewapp.triage.backtest import start_backtest as start

    filters = {k: v for k in ("tier", "status") if (v := request.form.get(k))}
    try:
        backtest = start(
            db.session, current_user, lab.get_version(db.session, number), filters=filters
        )
        db.commit()
    except DomainError as exc:
        db.rollback()
        flash(exc.message, "danger")
        return redirect(url_for(".version", number=number))
    return redirect(url_for(".backtest", backtest_id=backtest.id))


def _backtest(backtest_id: int) -> Backtest:
    row = db.session.get(Backtest, backtest_id)
    if row is None:
        abort(404)
    return row


@bp.route("/backtests/<int:backtest_id>")
@permission_required(Permission.manage_rulesets)
def backtest(backtest_id: int) -> Any:
    """Backtest progress (live) and, when done, its results."""
    row = _backtest(backtest_id)
    from reviewapp.triage.backtest import backtest_progress

    return render_template("rules/backtest.html", backtest=row, progress=backtest_progress(row))


@bp.route("/backtests/<int:backtest_id>/progress")
@permission_required(Permission.manage_rulesets)
def backtest_progress_json(backtest_id: int) -> Any:
    """JSON progress for the live progress bar."""
    from reviewapp.triage.backtest import backtest_progress

    return jsonify(backtest_progress(_backtest(backtest_id)))
