"""Log in, log out, register."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy.orm import joinedload

from reviewapp.audit.services import add_outbox_event, record_event
from reviewapp.auth.admin_services import (
    DEFAULT_RESET_MAX_AGE,
    make_reset_token,
    reset_password_with_token,
    user_for_reset_token,
)
from reviewapp.auth.forms import (
    AccountForm,
    LoginForm,
    PasswordResetForm,
    PasswordResetRequestForm,
    RegisterForm,
)
from reviewapp.auth.models import User
from reviewapp.auth.services import authenticate, find_user_by_email, register_developer
from reviewapp.errors import DomainError
from reviewapp.extensions import db, login_manager
from reviewapp.web import external_url, is_safe_next, save_form

bp = Blueprint("auth", __name__)


@login_manager.user_loader
def load_user(identity: str) -> User | None:
    """Flask-Login loader: ``<id>:<session epoch>``; a bumped epoch ends old sessions."""
    try:
        user_id, epoch = (int(x) for x in identity.split(":", 1))
    except ValueError:
        return None
    # one primary-key query: every page's layout shows the user's organization
    user = db.session.get(User, user_id, options=[joinedload(User.organization)])
    if user is None or user.session_epoch != epoch or not user.active:
        return None
    return user


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account() -> Any:
    """The user's settings: the time zone in which times are shown."""
    from zoneinfo import available_timezones

    from reviewapp.review.clock import business_calendar

    team_zone = business_calendar().tz.key
    form = AccountForm(data={"timezone": current_user.timezone})
    form.timezone.choices = [("", f"The team's zone ({team_zone})")] + [
        (z, z.replace("_", " ")) for z in sorted(available_timezones()) if "/" in z
    ]
    if form.validate_on_submit():
        before = current_user.timezone
        current_user.timezone = form.timezone.data or ""
        record_event(
            db.session,
            actor=current_user,
            action="user.settings",
            subject_type="user",
            subject_id=str(current_user.id),
            before={"timezone": before},
            after={"timezone": current_user.timezone},
        )
        db.commit()
        flash("Settings saved.", "success")
        return redirect(url_for(".account"))
    return render_template("auth/account.html", form=form), 422 if form.errors else 200


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Email + password log-in. ``next`` is followed only to paths on this site."""
    if current_user.is_authenticated:
        return redirect(url_for("web.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(db.session, form.email.data or "", form.password.data or "")
        if user is None:
            form.password.errors.append("Email or password is wrong.")
        else:
            session.clear()  # a fresh session on log-in (no fixation)
            login_user(user, remember=bool(form.remember.data))
            record_event(
                db.session, actor=user, action="user.login", subject_type="user", subject_id=user.id
            )
            db.commit()
            target = request.args.get("next") or ""
            return redirect(target if is_safe_next(target) else url_for("web.index"))
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Any:
    """Log out (POST with CSRF only): clears the session and the remember-me cookie, and bumps
    the user's session epoch so a copied session cookie stops working too."""
    user = db.session.get(User, current_user.id)
    if user is not None:
        user.session_epoch += 1
        record_event(
            db.session, actor=user, action="user.logout", subject_type="user", subject_id=user.id
        )
        db.commit()
    # clear first: logout_user() leaves the flag that makes Flask-Login delete the remember-me
    # cookie after the request (clearing afterwards dropped it and the cookie stayed)
    session.clear()
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/register", methods=["GET", "POST"])
def register() -> Any:
    """Developer sign-up: creates an organization, or joins one with its join code."""
    if current_user.is_authenticated:
        return redirect(url_for("web.index"))
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            user = register_developer(
                db.session,
                name=form.name.data or "",
                email=form.email.data or "",
                password=form.password.data or "",
                organization_name=form.organization.data or "",
                join_code=form.join_code.data or "",
            )
        except DomainError as exc:
            db.rollback()
            for field, message in (exc.fields or {}).items():
                getattr(form, field).errors.append(message)
            flash(exc.message, "danger")
        else:
            db.commit()
            session.clear()
            login_user(user)
            flash(
                f"Welcome, {user.name}. Your organization is {user.organization.name}.", "success"
            )
            return redirect(url_for("applications.index"))
    return render_template("auth/register.html", form=form), (422 if form.errors else 200)


RESET_SENT_MESSAGE = (
    "If an account uses that email, a password-reset link is on its way to it. "
    "The link works once and expires in {minutes} minutes."
)


def _reset_max_age() -> int:
    return int(current_app.config.get("PASSWORD_RESET_MAX_AGE_SECONDS", DEFAULT_RESET_MAX_AGE))


@bp.route("/password-reset", methods=["GET", "POST"])
def password_reset_request() -> Any:
    """Ask for a reset link. The answer is the same whether or not the email has an account
    (no user enumeration); only an active account gets an email."""
    if current_user.is_authenticated:
        return redirect(url_for("web.index"))
    form = PasswordResetRequestForm()
    if form.validate_on_submit():
        user = find_user_by_email(db.session, form.email.data or "")
        if user is not None and user.active:
            token = make_reset_token(user, str(current_app.config["SECRET_KEY"]))
            link = external_url("auth.password_reset", token=token)
            add_outbox_event(
                db.session,
                "password_reset",
                {
                    "to": [user.email],
                    "subject": "Reset your review app password",
                    "body": "Someone (hopefully you) asked to reset the password of this "
                    "account. Choose a new one here; the link works once and expires in "
                    f"{_reset_max_age() // 60} minutes:\n\n{link}\n\n"
                    "If it was not you, ignore this email: your password stays as it is.\n",
                },
            )
            record_event(
                db.session,
                actor=user,
                action="user.password_reset_requested",
                subject_type="user",
                subject_id=user.id,
            )
            db.commit()
        flash(RESET_SENT_MESSAGE.format(minutes=_reset_max_age() // 60), "info")
        return redirect(url_for("auth.login"))
    return render_template("auth/password_reset_request.html", form=form), (
        422 if form.errors else 200
    )


@bp.route("/password-reset/<token>", methods=["GET", "POST"])
def password_reset(token: str) -> Any:
    """Choose a new password from an emailed link: a bad or used link is 404, an expired
    one 410. Setting it ends every other session of the account."""
    secret = str(current_app.config["SECRET_KEY"])
    try:
        user = user_for_reset_token(db.session, token, secret, max_age=_reset_max_age())
    except DomainError as exc:
        return render_template("error.html", code=exc.status, message=exc.message), exc.status
    form = PasswordResetForm()
    saved = save_form(
        form,
        lambda: reset_password_with_token(
            db.session, token, form.password.data or "", secret, max_age=_reset_max_age()
        ),
        "Your password was not changed: ",
    )
    if saved is not None:
        _, revoked = saved
        session.clear()
        logout_user()  # after clear(): it flags the remember-me cookie for deletion
        tokens = (
            f" Your {revoked} API token{'s were' if revoked != 1 else ' was'} revoked; create "
            "new ones under Account → API tokens."
            if revoked
            else ""
        )
        flash(f"Your password is changed. Log in with the new one.{tokens}", "success")
        return redirect(url_for("auth.login"))
    return render_template("auth/password_reset.html", form=form, user=user), (
        422 if form.errors else 200
    )
