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
from flask_login.config import COOKIE_NAME
from sqlalchemy.orm import joinedload

from reviewapp.audit.services import add_outbox_event, record_event
from reviewapp.auth.admin_services import (
    DEFAULT_RESET_MAX_AGE,
    change_password,
    make_reset_token,
    reset_password_with_token,
    user_for_reset_token,
)
from reviewapp.auth.forms import (
    AccountForm,
    ChangePasswordForm,
    LoginForm,
    NameForm,
    PasswordResetForm,
    PasswordResetRequestForm,
    RegisterForm,
)
from reviewapp.auth.models import User
from reviewapp.auth.services import (
    authenticate,
    find_user_by_email,
    register_developer,
    rename_user,
)
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


def _settings_form(*, submitted: bool = False) -> AccountForm:
    from zoneinfo import available_timezones

    from reviewapp.review.clock import business_calendar

    team_zone = business_calendar().tz.key
    # formdata=None unless this form was submitted: another form's POST must not fill it
    form = (
        AccountForm(data={"timezone": current_user.timezone})
        if submitted
        else AccountForm(formdata=None, data={"timezone": current_user.timezone})
    )
    form.timezone.choices = [("", f"The team's zone ({team_zone})")] + [
        (z, z.replace("_", " ")) for z in sorted(available_timezones()) if "/" in z
    ]
    return form


def _account_page(
    form: AccountForm | None = None,
    password_form: ChangePasswordForm | None = None,
    name_form: NameForm | None = None,
) -> Any:
    """The account page with its three forms; the one just submitted (with its errors) is
    passed in, the others are fresh. 422 when the submitted one has errors."""
    form = form or _settings_form()
    password_form = password_form or ChangePasswordForm(formdata=None)
    name_form = name_form or NameForm(formdata=None, data={"name": current_user.name})
    failed = any(f.errors for f in (form, password_form, name_form))
    return render_template(
        "auth/account.html", form=form, password_form=password_form, name_form=name_form
    ), (422 if failed else 200)


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account() -> Any:
    """The user's account: display name, password, the time zone in which times are shown,
    and a link to their API tokens. POST saves the time zone."""
    form = _settings_form(submitted=True)
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
    return _account_page(form=form)


@bp.route("/account/name", methods=["POST"])
@login_required
def account_name() -> Any:
    """Change the signed-in user's display name (the sign-up rules: required, at most
    ``LIMITS["user.name"]`` characters); audited as ``user.rename``."""
    name_form = NameForm()
    user = current_user._get_current_object()
    if save_form(name_form, lambda: rename_user(db.session, user, name_form.name.data or "")):
        flash("Your name is saved.", "success")
        return redirect(url_for(".account"))
    return _account_page(name_form=name_form)


@bp.route("/account/password", methods=["POST"])
@login_required
def account_password() -> Any:
    """Change the signed-in user's password: the current one, the new one twice (the sign-up
    rules). Wrong current password: 422 with the error next to the field (rate limited per
    address and per account, like log-in). Success: every other session of the account ends,
    this one continues in a fresh session, API tokens keep working (the page says so), an
    email tells the account's address; audited as ``user.change_password``."""
    password_form = ChangePasswordForm()
    user = current_user._get_current_object()
    saved = save_form(
        password_form,
        lambda: change_password(
            db.session,
            user,
            password_form.current_password.data or "",
            password_form.password.data or "",
        ),
        "Your password was not changed: ",
    )
    if saved is None:
        return _account_page(password_form=password_form)
    _, tokens = saved
    # a new session for the new epoch (no fixation); keep "keep me logged in" if it was on,
    # with a new cookie: the old one names the old epoch and no longer works
    remember = current_app.config.get("REMEMBER_COOKIE_NAME", COOKIE_NAME) in request.cookies
    session.clear()
    login_user(user, remember=remember)
    kept = (
        f" Your {tokens} API token{'s' if tokens != 1 else ''} still "
        f"work{'s' if tokens == 1 else ''}; revoke any you do not recognise under "
        "Account → API tokens."
        if tokens
        else ""
    )
    flash(
        "Your password is changed. Every other session of your account was logged out, and "
        f"an email about the change is on its way to {user.email}.{kept}",
        "success",
    )
    return redirect(url_for(".account"))


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
