"""Names (a person's display name, an organization name) are one line of visible text: a
control character, a line break or an invisible direction control is refused with a message next
to the field, at sign-up, on the CLI and in the services, never stored and never silently
removed. Organization names also refuse other invisible characters (look-alike names)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from reviewapp.auth.models import Organization, Role, User
from reviewapp.auth.services import create_user, get_or_create_organization
from reviewapp.errors import ValidationFailed
from tests.conftest import csrf_token
from tests.factories import OrganizationFactory


def _register(client, **values: str):  # noqa: ANN001, ANN201
    data = {
        "name": "Ada",
        "email": "ada@example.com",
        "password": "long-enough-pw",
        "confirm": "long-enough-pw",
        "organization": "Acme AI",
        "csrf_token": csrf_token(client, "/register"),
    }
    data.update(values)
    return client.post("/register", data=data)


def _field_error(page: str, field: str) -> str:
    match = re.search(
        rf'<div id="{field}-error" class="invalid-feedback d-block">([^<]*)</div>', page
    )
    assert match is not None, f"no error next to {field}"
    return match.group(1)


def _users(db) -> int:  # noqa: ANN001
    return db.scalar(select(func.count()).select_from(User).where(User.email == "ada@example.com"))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Ansi\x1b[31m\nName", "Your name contains the control character U+001B; remove it."),
        (
            "Two\nlines",
            "Your name contains the control character U+000A (a name is one line); remove it.",
        ),
        ("Bell\x07", "Your name contains the control character U+0007; remove it."),
        ("\u202eevil", "Your name contains the invisible direction control U+202E; remove it."),
    ],
)
def test_registration_refuses_a_control_character_in_the_name_next_to_the_field(
    client, db, name, message
) -> None:
    response = _register(client, name=name)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert _field_error(page, "name") == message
    assert 'value="ada@example.com"' in page  # what was typed is kept
    assert _users(db) == 0


@pytest.mark.parametrize(
    ("organization", "message"),
    [
        ("Acme\x1b[2J AI", "Organization contains the control character U+001B; remove it."),
        (
            "Acme\tAI",
            "Organization contains the control character U+0009 (a name is one line); remove it.",
        ),
        ("Acme\u200bAI", "Organization contains the invisible character U+200B; remove it."),
    ],
)
def test_registration_refuses_control_and_invisible_characters_in_the_organization(
    client, db, organization, message
) -> None:
    before = db.scalar(select(func.count()).select_from(Organization))
    response = _register(client, organization=organization)
    assert response.status_code == 422
    assert _field_error(response.get_data(as_text=True), "organization") == message
    assert db.scalar(select(func.count()).select_from(Organization)) == before
    assert _users(db) == 0


def test_a_plain_name_with_letters_of_any_script_is_stored_as_typed(client, db) -> None:
    response = _register(client, name="Zoë Ñandú 🚀 مريم", organization="Ærø Labs")
    assert response.status_code == 302
    user = db.scalars(select(User).where(User.email == "ada@example.com")).one()
    assert (user.name, user.organization.name) == ("Zoë Ñandú 🚀 مريم", "Ærø Labs")


def test_the_services_refuse_them_too(db) -> None:
    org = OrganizationFactory()
    with pytest.raises(ValidationFailed) as caught:
        create_user(
            db,
            email="svc@example.com",
            password="long-enough-pw",
            role=Role.developer,
            organization=org,
            name="A\x1bB",
        )
    assert caught.value.fields == {"name": "contains the control character U+001B; remove it"}
    with pytest.raises(ValidationFailed) as caught:
        get_or_create_organization(db, "Org\x00Name")
    assert caught.value.fields == {
        "organization": "contains the control character U+0000; remove it"
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "Ansi\x1b[31mName"], "--name contains the control character U+001B"),
        (["--org", "New\nOrg"], "--org contains the control character U+000A"),
        (["--org", "Zero\u200bWidth"], "--org contains the invisible character U+200B"),
    ],
)
def test_create_user_refuses_them_on_stderr(app, db, args, message) -> None:
    values = {"--org": "CLI Org", "--name": "", **dict(zip(args[::2], args[1::2], strict=True))}
    before = db.scalar(select(func.count()).select_from(User))
    result = app.test_cli_runner().invoke(
        args=[
            "create-user",
            "cli-name@example.com",
            "--org",
            values["--org"],
            "--name",
            values["--name"],
            "--password",
            "long-enough-pw",
        ]
    )
    assert result.exit_code == 1
    assert message in result.stderr
    assert db.scalar(select(func.count()).select_from(User)) == before
