"""Login and registration forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length, Optional


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1000)])
    remember = BooleanField("Keep me logged in")


class RegisterForm(FlaskForm):
    name = StringField("Your name", validators=[DataRequired(), Length(max=200)])
    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=254)])
    password = PasswordField(
        "Password",
        validators=[
            DataRequired(),
            Length(min=10, max=1000, message="Use at least 10 characters."),
        ],
    )
    confirm = PasswordField(
        "Repeat password",
        validators=[DataRequired(), EqualTo("password", message="The passwords differ.")],
    )
    organization = StringField(
        "Organization",
        validators=[DataRequired(), Length(max=200)],
        description="A new organization is created unless it already exists.",
    )
    join_code = StringField(
        "Join code",
        validators=[Optional(), Length(max=64)],
        description="Needed only to join an existing organization; a member finds it on their applications page.",
    )


class AccountForm(FlaskForm):
    """The signed-in user's own settings."""

    timezone = SelectField(
        "Your time zone",
        description="Due times and deadlines are shown in this zone. "
        "Leave it on the team's zone if you work its hours.",
    )
