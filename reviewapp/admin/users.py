"""Admin pages for users: list, invite, change role, deactivate/reactivate; and the invitee's
set-password page.

The blueprint has no URL prefix because ``/invite/<token>`` sits outside ``/admin``; every admin
route needs :attr:`Permission.manage_users` (403 otherwise), and an unknown user id is a 404.
"""

from __future__ import annotations

from typing import Any

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
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import BooleanField, EmailField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, Optional

from reviewapp.audit.models import AuditEvent
from reviewapp.audit.services import add_outbox_event
from reviewapp.auth.admin_services import (
    DEFAULT_INVITE_MAX_AGE,
    UserFilters,
    change_role,
    check_may_deactivate,
    deactivate_user,
    invite_user,
    issue_password_link,
    list_users,
    make_password_token,
    reactivate_user,
    set_password_with_token,
    user_for_password_token,
)
from reviewapp.auth.forms import SetPasswordForm, name_characters
from reviewapp.auth.models import ApiToken, Organization, Permission, Role, User
from reviewapp.errors import DomainError
from reviewapp.extensions import db
from reviewapp.limits import max_length
from reviewapp.web import act, external_url, page_arg, permission_required, save_form

bp = Blueprint("admin_users", __name__)

PER_PAGE = 50
ROLE_CHOICES = [SelectChoice(str(r), str(r).replace("_", " ")) for r in Role]


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


class InviteForm(FlaskForm):
    """A new account; ``organization.choices`` are set per request ("" = a new organization)."""

    email = EmailField(
        "Email",
        validators=[
            DataRequired(message="Enter the invitee's email address."),
            Email(message="Enter an email address like name@example.com."),
            max_length("user.email"),
        ],
        filters=[_strip],
    )
    name = StringField("Name", validators=[Optional(), max_length("user.name"), name_characters()])
    role = SelectField("Role", choices=ROLE_CHOICES, default=str(Role.developer))
    organization = SelectField(
        "Organization", description="Choose an existing organization, or “New organization”."
    )
    new_organization = StringField(
        "New organization",
        validators=[
            Optional(),
            max_length("organization.name"),
            name_characters(organization=True),
        ],
        filters=[_strip],
        description="Only when “New organization” is chosen above; "
        "an existing organization with this name is used instead of a duplicate.",
    )
    send_email = BooleanField("Also email the set-password link to the invitee")


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=ROLE_CHOICES)


class DeactivateForm(FlaskForm):
    """Confirm a deactivation: revoked API tokens and released claims do not come back."""

    confirm = BooleanField(
        "I understand that this logs the user out and revokes their API tokens for good",
        validators=[
            DataRequired(
                message="Tick the box to confirm: deactivating ends the user's sessions, "
                "revokes their API tokens and releases their claims at once."
            )
        ],
    )


def _max_age() -> int:
    return int(current_app.config.get("INVITE_MAX_AGE_SECONDS", DEFAULT_INVITE_MAX_AGE))


def _secret() -> str:
    return str(current_app.config["SECRET_KEY"])


def _load_user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return user


def _organizations() -> list[Organization]:
    return list(db.session.scalars(select(Organization).order_by(Organization.name)).all())


def _link(token: str) -> str:
    return external_url("admin_users.set_password", token=token)


# --- list ------------------------------------------------------------------------------------


@bp.route("/admin/users")
@permission_required(Permission.manage_users)
def index() -> Any:
    """Users with role and organization; query args ``q`` (email contains), ``role``,
    ``organization`` (id), ``active`` ("yes"/"no"), ``page``."""
    args = {
        "q": request.args.get("q", ""),  # not cut: a longer text simply matches no email
        "role": request.args.get("role", ""),
        "organization": request.args.get("organization", ""),
        "active": request.args.get("active", ""),
    }
    if args["role"] not in {str(r) for r in Role}:
        args["role"] = ""
    if not args["organization"].isdigit() or len(args["organization"]) > 12:
        args["organization"] = ""
    if args["active"] not in ("yes", "no"):
        args["active"] = ""
    filters = UserFilters(
        email=args["q"],
        role=args["role"],
        organization_id=int(args["organization"]) if args["organization"] else None,
        active={"yes": True, "no": False}.get(args["active"]),
    )
    page = page_arg()
    users, total = list_users(db.session, filters, page=page, per_page=PER_PAGE)
    return render_template(
        "admin/users.html",
        users=users,
        total=total,
        page=page,
        per_page=PER_PAGE,
        args={k: v for k, v in args.items() if v},
        filters=args,
        organizations=_organizations(),
        roles=[(c.value, c.label) for c in ROLE_CHOICES],
    )


# --- invite ----------------------------------------------------------------------------------


@bp.route("/admin/users/invite", methods=["GET", "POST"])
@permission_required(Permission.manage_users)
def invite() -> Any:
    """Invite form; on success the one-time set-password link is shown on the response page
    (reloading it re-posts, which is refused as a duplicate email)."""
    form = InviteForm()
    form.organization.choices = [SelectChoice("", "New organization")] + [
        SelectChoice(str(o.id), o.name) for o in _organizations()
    ]

    def _invite() -> tuple[User, str]:
        org = form.organization.data or ""
        user = invite_user(
            db.session,
            current_user,
            email=form.email.data or "",
            name=form.name.data or "",
            role=Role(form.role.data),
            organization_id=int(org) if org.isdigit() else None,
            new_organization=form.new_organization.data or "",
        )
        token = make_password_token(user, _secret())
        if form.send_email.data:
            add_outbox_event(
                db.session,
                "invite",
                {
                    "to": [user.email],
                    "subject": "You are invited to the review app",
                    "body": f"Hello {user.name or user.email},\n\nan account was created for "
                    f"you. Choose your password here (the link works once and expires in "
                    f"{_max_age() // 3600} hours):\n\n{_link(token)}\n",
                },
            )
        return user, token

    result = save_form(form, _invite, "Nobody was invited: ")
    if result is not None:
        user, token = result
        flash(f"{user.email} is invited.", "success")
        return render_template(
            "admin/users_link.html",
            user=user,
            link=_link(token),
            hours=_max_age() // 3600,
            emailed=bool(form.send_email.data),
        )
    return render_template("admin/invite.html", form=form), 422 if form.errors else 200


# --- one user --------------------------------------------------------------------------------


def _render_user(user: User, form: RoleForm, status: int = 200) -> Any:
    from reviewapp.applications.models import Application

    session = db.session
    claims = session.scalars(
        select(Application).where(Application.claimed_by_id == user.id).order_by(Application.id)
    ).all()
    tokens = session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())
    ).all()
    events = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.subject_type == "user", AuditEvent.subject_id == str(user.id))
        .order_by(AuditEvent.id.desc())
        .limit(50)
    ).all()
    actors = {
        u.id: u.email
        for u in session.scalars(select(User).where(User.id.in_({e.actor_id for e in events})))
    }
    return render_template(
        "admin/user.html",
        user=user,
        form=form,
        claims=claims,
        tokens=tokens,
        events=events,
        actors=actors,
        is_self=user.id == current_user.id,
    ), status


@bp.route("/admin/users/<int:user_id>")
@permission_required(Permission.manage_users)
def detail(user_id: int) -> Any:
    """One user: role form, activation buttons, claims held, API tokens, audit history."""
    user = _load_user(user_id)
    return _render_user(user, RoleForm(data={"role": str(user.role)}))


@bp.route("/admin/users/<int:user_id>/role", methods=["POST"])
@permission_required(Permission.manage_users)
def role(user_id: int) -> Any:
    """Change the role (not your own; the last active admin stays admin). Errors re-render the
    user page with the message next to the role field (422)."""
    user = _load_user(user_id)
    form = RoleForm()
    released = save_form(
        form,
        lambda: change_role(db.session, current_user, user, Role(form.role.data)),
        "The role was not changed: ",
    )
    if released is None:
        db.session.refresh(user)
        return _render_user(user, form, 422)
    message = f"{user.email} is now {str(user.role).replace('_', ' ')}."
    if released:
        message += f" Released: {', '.join(released)}."
    flash(message, "success")
    return redirect(url_for(".detail", user_id=user.id))


@bp.route("/admin/users/<int:user_id>/deactivate", methods=["GET", "POST"])
@permission_required(Permission.manage_users)
def deactivate(user_id: int) -> Any:
    """Deactivate (not yourself): sessions end, API tokens revoked, claims released; after a
    page that says so (how many tokens, which applications), the POST refused (422) unless
    its box is ticked. Yourself or an inactive user: back to the user's page with the reason."""
    user = _load_user(user_id)
    try:
        check_may_deactivate(current_user, user)
    except DomainError as exc:
        flash(exc.message, "warning")
        return redirect(url_for(".detail", user_id=user_id))
    form = DeactivateForm()
    if not form.validate_on_submit():
        from reviewapp.applications.models import Application

        claims = db.session.scalars(
            select(Application).where(Application.claimed_by_id == user.id).order_by(Application.id)
        ).all()
        tokens = db.session.scalar(
            select(func.count())
            .select_from(ApiToken)
            .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        )
        return render_template(
            "admin/deactivate.html", user=user, form=form, claims=claims, tokens=tokens or 0
        ), (422 if form.errors else 200)
    act(
        lambda: deactivate_user(db.session, current_user, user),
        lambda done: (
            f"{user.email} is deactivated; {done.tokens_revoked} API token(s) revoked"
            + (f"; released {', '.join(done.released)}." if done.released else ".")
        ),
    )
    return redirect(url_for(".detail", user_id=user_id))


@bp.route("/admin/users/<int:user_id>/reactivate", methods=["POST"])
@permission_required(Permission.manage_users)
def reactivate(user_id: int) -> Any:
    """Let a deactivated user log in again."""
    user = _load_user(user_id)
    act(
        lambda: reactivate_user(db.session, current_user, user),
        f"{user.email} can log in again. Their old API tokens stay revoked.",
    )
    return redirect(url_for(".detail", user_id=user_id))


@bp.route("/admin/users/<int:user_id>/password-link", methods=["POST"])
@permission_required(Permission.manage_users)
def password_link(user_id: int) -> Any:
    """A new one-time set-password link (e.g. the invite expired), shown once."""
    user = _load_user(user_id)
    token: str | None = None

    def _issue() -> str:
        nonlocal token
        token = issue_password_link(db.session, current_user, user, _secret())
        return token

    if not act(_issue, f"A new set-password link for {user.email} is below.") or token is None:
        return redirect(url_for(".detail", user_id=user_id))
    return render_template(
        "admin/users_link.html", user=user, link=_link(token), hours=_max_age() // 3600
    )


# --- the invitee -----------------------------------------------------------------------------


@bp.route("/invite/<token>", methods=["GET", "POST"])
def set_password(token: str) -> Any:
    """The invitee chooses a password. A bad or used link is 404, an expired one 410."""
    session = db.session
    try:
        user = user_for_password_token(session, token, _secret(), max_age=_max_age())
    except DomainError as exc:
        return render_template("error.html", code=exc.status, message=exc.message), exc.status
    form = SetPasswordForm()
    saved = save_form(
        form,
        lambda: set_password_with_token(
            session, token, form.password.data or "", _secret(), max_age=_max_age()
        ),
        "Your password was not saved: ",
    )
    if saved is not None:
        flash("Your password is set. Log in with your email and the new password.", "success")
        return redirect(url_for("auth.login"))
    return render_template("admin/users_set_password.html", form=form, user=user), (
        422 if form.errors else 200
    )
