"""Login, registration, account settings and API token forms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField
from wtforms.validators import (
    DataRequired,
    Email,
    EqualTo,
    Length,
    Optional,
    StopValidation,
    ValidationError,
)

from reviewapp.applications.forms import MultiCheckboxField
from reviewapp.auth.services import name_problem
from reviewapp.limits import max_length


def name_characters(*, organization: bool = False) -> Callable[[Any, Any], None]:
    """Validator for name fields (a person's name; with ``organization``, an organization
    name): refuses the characters :func:`reviewapp.auth.services.name_problem` refuses, with
    "*Label* contains the control character U+001B; remove it." next to the field. The
    services check again (the CLI and invitations reach them without a form)."""

    def _check(form: Any, field: Any) -> None:
        if isinstance(field.data, str):
            problem = name_problem(field.data, strict=organization)
            if problem is not None:
                raise ValidationError(f"{field.label.text} {problem}.")

    return _check


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Email(), max_length("user.email")])
    password = PasswordField("Password", validators=[DataRequired(), max_length("user.password")])
    remember = BooleanField("Keep me logged in")


def _display_name_field() -> StringField:
    """The display name, with the same rules at sign-up and on the account page."""
    return StringField(
        "Your name",
        validators=[
            DataRequired(message="Enter your name."),
            max_length("user.name"),
            name_characters(),
        ],
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
        render_kw={"autocomplete": "name"},
    )


class RegisterForm(FlaskForm):
    name = _display_name_field()
    email = EmailField("Email", validators=[DataRequired(), Email(), max_length("user.email")])
    password = PasswordField(
        "Password",
        validators=[
            DataRequired(),
            Length(min=10, message="Use at least 10 characters."),
            max_length("user.password"),
        ],
    )
    confirm = PasswordField(
        "Repeat password",
        validators=[
            DataRequired(),
            EqualTo("password", message="The passwords differ."),
            max_length("user.password"),
        ],
    )
    organization = StringField(
        "Organization",
        validators=[
            DataRequired(),
            max_length("organization.name"),
            name_characters(organization=True),
        ],
        description="A new organization is created unless it already exists.",
    )
    join_code = StringField(
        "Join code",
        validators=[Optional(), max_length("organization.join_code")],
        description="Needed only to join an existing organization; a member finds it on their applications page.",
    )


class AccountForm(FlaskForm):
    """The signed-in user's own settings."""

    timezone = SelectField(
        "Your time zone",
        description="Due times and deadlines are shown in this zone. "
        "Leave it on the team's zone if you work its hours.",
    )


def _at_least_one(form: Any, field: Any) -> None:
    # not DataRequired: it would mark every checkbox ``required`` (each one must be ticked)
    if not field.data:
        raise StopValidation("Choose at least one scope.")


class TokenForm(FlaskForm):
    """A new personal API token. ``scopes.choices`` are set per request from the user's role."""

    name = StringField(
        "Name",
        validators=[
            DataRequired(message="Give the token a name, e.g. the script or machine using it."),
            max_length("token.name"),
            name_characters(),
        ],
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
        description="Where you will use it, e.g. “CI deploy check” (1–100 characters).",
    )
    scopes = MultiCheckboxField(
        "Scopes",
        validators=[_at_least_one],
        description="Give the token only what the script needs.",
    )


class PasswordResetRequestForm(FlaskForm):
    """Ask for a password-reset link by email."""

    email = EmailField(
        "Email",
        validators=[
            DataRequired(message="Enter the email you log in with."),
            Email(message="Enter an email address like name@example.com."),
            max_length("user.email"),
        ],
    )


class SetPasswordForm(FlaskForm):
    """Choose a new password (invitation and reset links)."""

    password = PasswordField(
        "New password",
        validators=[
            DataRequired(message="Choose a password."),
            Length(min=10, message="Use at least 10 characters."),
            max_length("user.password"),
        ],
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(
        "Repeat password",
        render_kw={"autocomplete": "new-password"},
        validators=[
            DataRequired(message="Repeat the password."),
            EqualTo("password", message="The passwords differ."),
            max_length("user.password"),
        ],
    )


class ChangePasswordForm(SetPasswordForm):
    """A signed-in user's new password: the current one proves it is them (a session left open
    on a shared computer is not enough to take the account over)."""

    current_password = PasswordField(
        "Current password",
        validators=[
            DataRequired(message="Enter your current password."),
            max_length("user.password"),
        ],
        render_kw={"autocomplete": "current-password"},
    )


class NameForm(FlaskForm):
    """The signed-in user's display name (shown to reviewers and in the audit trail)."""

    name = _display_name_field()


#: the reset link's form is the invitation's (same fields, limits and messages)
PasswordResetForm = SetPasswordForm
