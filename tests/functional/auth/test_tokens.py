"""Personal API tokens in the browser: create (shown once, stored hashed), scopes by role,
revoke, last use, ownership, CSRF; checked through the real JSON API."""

from __future__ import annotations

import hashlib
import re

import pytest
from sqlalchemy import select

from reviewapp.audit.models import AuditEvent
from reviewapp.auth.models import ApiToken
from reviewapp.auth.services import issue_token
from reviewapp.auth.tokens import MAX_ACTIVE_TOKENS, create_personal_token
from reviewapp.db import utcnow
from reviewapp.errors import PermissionDenied
from tests.conftest import post_form
from tests.factories import OrganizationFactory, UserFactory, content

PAGE = "/account/tokens"
CLEAR_TOKEN = re.compile(r"ra_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}")


def create(client, name: str = "CI script", scopes: tuple[str, ...] = ("read", "write")):  # noqa: ANN001, ANN201
    """POST the create form with a CSRF token read from the tokens page."""
    return post_form(client, PAGE, {"name": name, "scopes": list(scopes)}, token_from=PAGE)


def clear_token_of(response) -> str:  # noqa: ANN001
    found = CLEAR_TOKEN.findall(response.get_data(as_text=True))
    assert len(found) == 1, found
    return found[0]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tokens_of(db, user) -> list[ApiToken]:  # noqa: ANN001
    return list(db.scalars(select(ApiToken).where(ApiToken.user_id == user.id)).all())


def test_the_clear_token_is_shown_once_and_only_its_hash_is_stored(login, db) -> None:
    dev = UserFactory()
    client = login(dev)
    response = create(client, name="Nightly export", scopes=("read",))
    assert response.status_code == 201
    page = response.get_data(as_text=True)
    assert "Copy it now" in page and "only time it is shown" in page
    assert response.headers["Cache-Control"] == "no-store"
    clear = clear_token_of(response)
    _, prefix, secret = clear.split("_", 2)

    (row,) = tokens_of(db, dev)
    assert (row.name, row.scopes, row.prefix) == ("Nightly export", "read", prefix)
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    stored = [str(getattr(row, c.key)) for c in ApiToken.__table__.columns]
    assert not any(secret in value or clear in value for value in stored)

    # the next view of the page lists the token but never shows it again
    again = client.get(PAGE)
    text = again.get_data(as_text=True)
    assert again.status_code == 200 and "Nightly export" in text and f"ra_{prefix}_" in text
    assert secret not in text and not CLEAR_TOKEN.search(text) and "Copy it now" not in text

    # audited, without the secret
    event = db.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "api_token.create", AuditEvent.subject_id == str(row.id)
        )
    ).one()
    assert event.actor_id == dev.id and event.after == {"name": "Nightly export", "scopes": "read"}
    assert secret not in str(event.before) + str(event.after)


def test_a_read_only_token_cannot_write_through_the_api(app, login, db) -> None:
    dev = UserFactory()
    clear = clear_token_of(create(login(dev), scopes=("read",)))
    api = app.test_client()
    listed = api.get("/api/v1/applications", headers=bearer(clear))
    assert listed.status_code == 200
    refused = api.post("/api/v1/applications", json=content(), headers=bearer(clear))
    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "insufficient_scope"
    assert tokens_of(db, dev)[0].scopes == "read"


def test_a_review_token_works_the_queue_and_a_read_token_cannot(app, login, db) -> None:
    reviewer = UserFactory(reviewer=True, organization=OrganizationFactory(name="Staff"))
    client = login(reviewer)
    assert 'value="review"' in client.get(PAGE).get_data(as_text=True)
    review = clear_token_of(create(client, name="queue bot", scopes=("read", "review")))
    read_only = clear_token_of(create(client, name="reader", scopes=("read",)))
    api = app.test_client()
    assert api.get("/api/v1/queue", headers=bearer(review)).status_code == 200
    refused = api.get("/api/v1/queue", headers=bearer(read_only))
    assert refused.status_code == 403 and refused.json["error"]["code"] == "insufficient_scope"


def test_revoking_stops_the_token_at_once(app, login, db) -> None:
    dev = UserFactory()
    client = login(dev)
    clear = clear_token_of(create(client))
    api = app.test_client()
    assert api.get("/api/v1/applications", headers=bearer(clear)).status_code == 200
    (row,) = tokens_of(db, dev)

    response = post_form(client, f"{PAGE}/{row.id}/revoke", token_from=PAGE)
    assert response.status_code == 302 and response.location.endswith(PAGE)
    after = api.get("/api/v1/applications", headers=bearer(clear))
    assert after.status_code == 401 and after.json["error"]["code"] == "unauthorized"
    db.refresh(row)
    assert row.revoked_at is not None
    page = client.get(PAGE).get_data(as_text=True)
    assert "revoked: it no longer works" in page and "Revoked " in page
    assert f"{PAGE}/{row.id}/revoke" not in page  # no button for a revoked token
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "api_token.revoke")).one()
    assert event.subject_id == str(row.id) and event.actor_id == dev.id

    # revoking again changes nothing and writes no second event
    post_form(client, f"{PAGE}/{row.id}/revoke", token_from=PAGE)
    assert "was already revoked" in client.get(PAGE).get_data(as_text=True)
    events = db.scalars(select(AuditEvent).where(AuditEvent.action == "api_token.revoke")).all()
    assert len(events) == 1


def test_last_used_at_is_set_when_the_token_is_used(app, login, db) -> None:
    dev = UserFactory()
    client = login(dev)
    clear = clear_token_of(create(client))
    (row,) = tokens_of(db, dev)
    assert row.last_used_at is None
    assert "<td>never</td>" in client.get(PAGE).get_data(as_text=True)
    before = utcnow()
    assert app.test_client().get("/api/v1/applications", headers=bearer(clear)).status_code == 200
    db.refresh(row)
    assert row.last_used_at is not None and row.last_used_at >= before
    assert "<td>never</td>" not in client.get(PAGE).get_data(as_text=True)


def test_another_users_token_is_not_found(login, db) -> None:
    owner = UserFactory()
    issue_token(db, owner, name="owner's secret script")
    (theirs,) = tokens_of(db, owner)
    intruder = login(UserFactory(organization=owner.organization))  # even a colleague
    assert "owner's secret script" not in intruder.get(PAGE).get_data(as_text=True)
    response = post_form(intruder, f"{PAGE}/{theirs.id}/revoke", token_from=PAGE)
    assert response.status_code == 404
    db.refresh(theirs)
    assert theirs.revoked_at is None
    assert post_form(intruder, f"{PAGE}/999999/revoke", token_from=PAGE).status_code == 404


def test_a_developer_cannot_create_a_review_token(login, db) -> None:
    dev = UserFactory()
    client = login(dev)
    assert 'value="review"' not in client.get(PAGE).get_data(as_text=True)
    response = create(client, scopes=("read", "review"))
    assert response.status_code == 422
    assert "not a valid choice" in response.get_data(as_text=True)
    assert tokens_of(db, dev) == []
    # the service refuses it too, whatever the form offers
    with pytest.raises(PermissionDenied, match="review"):
        create_personal_token(db, dev, name="sneaky", scopes=["review"])
    assert tokens_of(db, dev) == []


def test_staff_are_not_offered_the_write_scope(login, db) -> None:
    staff = UserFactory(reviewer=True, organization=OrganizationFactory(name="T&S"))
    client = login(staff)
    page = client.get(PAGE).get_data(as_text=True)
    assert 'value="write"' not in page and 'value="review"' in page
    response = create(client, scopes=("read", "write"))
    assert response.status_code == 422
    assert tokens_of(db, staff) == []
    with pytest.raises(PermissionDenied, match="write"):
        create_personal_token(db, staff, name="sneaky", scopes=["write"])
    assert create(client, scopes=("read", "review")).status_code == 201


def test_csrf_is_required_to_create_and_revoke(login, db) -> None:
    dev = UserFactory()
    client = login(dev)
    response = client.post(PAGE, data={"name": "no csrf", "scopes": ["read"]})
    assert response.status_code == 400 and tokens_of(db, dev) == []
    issue_token(db, dev, name="kept")
    (row,) = tokens_of(db, dev)
    assert client.post(f"{PAGE}/{row.id}/revoke").status_code == 400
    db.refresh(row)
    assert row.revoked_at is None


@pytest.mark.parametrize(
    ("name", "scopes", "message"),
    [
        ("", ("read",), "Give the token a name"),
        ("   ", ("read",), "Give the token a name"),
        ("x" * 101, ("read",), "Name is 101 characters long; the limit is 100."),
        ("no scope", (), "Choose at least one scope"),
        ("CI\x1b[31m job", ("read",), "Name contains the control character U+001B; remove it."),
    ],
)
def test_bad_input_is_refused_and_what_was_typed_is_kept(
    login, db, name: str, scopes: tuple[str, ...], message: str
) -> None:
    dev = UserFactory()
    response = create(login(dev), name=name, scopes=scopes)
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and message in page
    if name.strip():
        assert f'value="{name}"' in page
    assert tokens_of(db, dev) == []


def test_a_name_of_exactly_100_characters_is_fine(login, db) -> None:
    dev = UserFactory()
    assert create(login(dev), name="n" * 100).status_code == 201


def test_at_most_20_active_tokens(login, db) -> None:
    dev = UserFactory()
    for n in range(MAX_ACTIVE_TOKENS):
        issue_token(db, dev, name=f"t{n}")
    client = login(dev)
    response = create(client, name="one too many")
    assert response.status_code == 409
    assert "already have 20 active tokens" in response.get_data(as_text=True)
    assert len(tokens_of(db, dev)) == MAX_ACTIVE_TOKENS
    # a revoked token no longer counts
    tokens_of(db, dev)[0].revoked_at = utcnow()
    db.flush()
    assert create(client, name="now it fits").status_code == 201


def test_anonymous_users_are_sent_to_log_in(client) -> None:
    response = client.get(PAGE)
    assert response.status_code == 302 and "/login" in response.location


def test_the_settings_page_links_to_the_tokens(login, db) -> None:
    page = login(UserFactory()).get("/account").get_data(as_text=True)
    assert f'href="{PAGE}"' in page and "API tokens" in page


def test_reloading_the_page_that_shows_a_token_creates_no_second_one(login, db) -> None:
    import re

    from sqlalchemy import func, select

    from reviewapp.auth.models import ApiToken
    from tests.conftest import post_form
    from tests.factories import UserFactory

    user = UserFactory()
    client = login(user)
    page = client.get("/account/tokens").get_data(as_text=True)
    once = re.search(r'name="once" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    data = {"name": "release pipeline", "scopes": ["read"], "once": once}
    assert (
        post_form(client, "/account/tokens", data, token_from="/account/tokens").status_code == 201
    )
    again = post_form(client, "/account/tokens", data, token_from="/account/tokens")
    assert again.status_code == 303
    count = select(func.count()).where(ApiToken.user_id == user.id)
    assert db.scalar(count) == 1


def test_last_use_is_recorded_to_the_minute(app, login, db) -> None:
    """A busy client does not rewrite its token row on every request: the recorded last use
    moves on only once it is a minute old."""
    import datetime as dt

    import time_machine

    dev = UserFactory()
    clear = clear_token_of(create(login(dev)))
    (row,) = tokens_of(db, dev)
    api = app.test_client()
    start = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False):
        assert api.get("/api/v1/applications", headers=bearer(clear)).status_code == 200
    with time_machine.travel(start + dt.timedelta(seconds=59), tick=False):
        assert api.get("/api/v1/applications", headers=bearer(clear)).status_code == 200
    db.refresh(row)
    assert row.last_used_at == start
    with time_machine.travel(start + dt.timedelta(seconds=61), tick=False):
        assert api.get("/api/v1/applications", headers=bearer(clear)).status_code == 200
    db.refresh(row)
    assert row.last_used_at == start + dt.timedelta(seconds=61)
