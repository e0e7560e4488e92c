"""Webhooks as a developer sees them: endpoints, signed deliveries to a real local HTTP receiver,
retries with backoff, the 24 h limit, the delivery log, redelivery and who may do what."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from flask_login import FlaskLoginClient
from sqlalchemy import select

from reviewapp import create_app
from reviewapp.applications.models import Status
from reviewapp.audit.models import AuditEvent
from reviewapp.audit.services import add_outbox_event
from reviewapp.db import utcnow
from reviewapp.errors import ValidationFailed
from reviewapp.extensions import db as database
from reviewapp.webhooks import init_app
from reviewapp.webhooks.jobs import dispatch_due_deliveries, post_webhook
from reviewapp.webhooks.models import WebhookDelivery, WebhookEndpoint
from reviewapp.webhooks.services import (
    backoff_seconds,
    create_endpoint,
    is_forbidden_address,
    sign,
    validate_url,
    verify_signature,
)
from tests.conftest import post_form
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

SECRET_RE = re.compile(r'id="secret" type="text" readonly value="(whsec_[A-Za-z0-9_-]+)"')


# --- a real HTTP receiver on 127.0.0.1 ------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """Records every POST and answers with ``statuses`` in order, then ``default_status``.
    With ``hold_first`` the first request waits (up to 60 s) for ``release`` before answering."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.statuses: list[int] = []
        self.default_status = 200
        self.hold_first = False
        self.release = threading.Event()
        self.arrived = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    number = len(receiver.received)
                    status = (
                        receiver.statuses.pop(0) if receiver.statuses else receiver.default_status
                    )
                receiver.arrived.set()
                if receiver.hold_first and number == 1:
                    receiver.release.wait(60)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "7")
                    self.end_headers()
                    self.wfile.write(b"thanks!" if status < 300 else b"broken!")
                except OSError:
                    pass  # the sender is gone (killed worker)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hooks/reviewapp"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def webhooks_app(base: Flask, database_url: str) -> Iterator[Flask]:
    """Yield ``base`` if create_app already registers webhooks, else an app that does (the
    session app has served requests, so blueprints can no longer be added to it)."""
    if "webhooks" in base.blueprints:
        yield base
        return
    application = create_app("testing", DATABASE_URL=database_url, REDIS_URL=None)
    init_app(application)
    application.test_client_class = FlaskLoginClient
    yield application
    # close pooled connections now: left to the garbage collector they warn (errors here)
    database.state(application).engine.dispose()
    database.state(base).engine.dispose()


@pytest.fixture(scope="module")
def app(app: Flask, database_url: str) -> Iterator[Flask]:
    yield from webhooks_app(app, database_url)


def developer_org() -> tuple[Any, Any]:
    org = OrganizationFactory()
    return org, UserFactory(organization=org)


def decision_payload(reference: str, outcome: str = "approve") -> dict[str, Any]:
    return {
        "application": reference,
        "outcome": outcome,
        "to": ["secret-recipient@example.com"],
        "subject": "internal subject",
        "body": "internal body",
    }


# --- signing and URL rules -----------------------------------------------------------------


def test_signature_verifies_and_tampered_body_or_old_timestamp_does_not() -> None:
    secret = "whsec_test"
    body = b'{"id":"evt-1","type":"decision"}'
    now = 1_800_000_000
    header = sign(secret, body, now)
    assert re.fullmatch(r"t=1800000000,v1=[0-9a-f]{64}", header)
    assert verify_signature(secret, header, body, now=now)
    assert verify_signature(secret, header, body.decode(), now=now + 299)
    assert verify_signature(secret, header, body, now=dt.datetime.fromtimestamp(now, dt.UTC))
    assert not verify_signature(secret, header, body + b" ", now=now)  # tampered body
    assert not verify_signature(secret, header, body.replace(b"1", b"2"), now=now)
    assert not verify_signature("whsec_other", header, body, now=now)  # wrong secret
    assert not verify_signature(secret, header, body, now=now + 301)  # too old: replay
    assert not verify_signature(secret, header, body, now=now - 301)  # from the future
    assert verify_signature(secret, header, body, tolerance_seconds=3600, now=now + 3000)
    forged = header.replace(f"t={now}", f"t={now + 100}")  # fresh time, old signature
    assert not verify_signature(secret, forged, body, now=now + 100)
    for bad in (None, "", "garbage", "t=abc,v1=00", f"t={now}", "v1=00", f"t={now},v1"):
        assert not verify_signature(secret, bad, body, now=now)
    # several v1 signatures (e.g. during a secret change): one match is enough
    assert verify_signature(secret, f"{header},v1={'0' * 64}", body, now=now)


def test_endpoint_urls_must_be_https_on_public_addresses() -> None:
    assert validate_url(" https://example.com/hooks ", allow_http_localhost=False) == (
        "https://example.com/hooks"
    )
    refused = [
        ("", "Enter the URL"),
        ("http://example.com/hooks", "Use https://"),
        ("ftp://example.com/x", "Use an https:// URL"),
        ("https://user:pw@example.com/x", "Remove the user name"),
        ("https://example.com/x#frag", "Remove the #fragment"),
        ("https://10.1.2.3/x", "private, local"),
        ("https://169.254.169.254/latest", "private, local"),
        ("https://[fd00::1]/x", "private, local"),
        # legacy IPv4 spellings the resolver also reads: loopback and private in disguise
        ("https://2130706433/x", "private, local"),
        ("https://0x7f000001/x", "private, local"),
        ("https://017700000001/x", "private, local"),
        ("https://127.1/x", "private, local"),
        ("https://10.258/x", "private, local"),
        ("https://localhost/x", "this server's own machine"),
        ("http://127.0.0.1:8000/x", "Use https://"),
        ("https://exa mple.com/", "spaces"),
        ("https://example.com:99999/", "not a valid URL"),
        ("https://" + "a" * 2000 + ".com", "the limit is 2000"),
    ]
    for url, message in refused:
        with pytest.raises(ValidationFailed) as caught:
            validate_url(url, allow_http_localhost=False)
        assert message in caught.value.fields["url"], (url, caught.value.fields)
    # the testing setting lets local receivers in, and only those
    assert validate_url("http://127.0.0.1:8000/x", allow_http_localhost=True)
    assert validate_url("http://localhost/x", allow_http_localhost=True)
    with pytest.raises(ValidationFailed):
        validate_url("http://example.com/x", allow_http_localhost=True)
    with pytest.raises(ValidationFailed):
        validate_url("https://192.168.0.10/x", allow_http_localhost=True)
    assert is_forbidden_address("127.0.0.1") and not is_forbidden_address(
        "127.0.0.1", allow_loopback=True
    )
    assert is_forbidden_address("::ffff:10.0.0.1") and is_forbidden_address("224.0.0.1")
    assert not is_forbidden_address("93.184.216.34")


def test_sending_refuses_private_addresses_resolved_at_send_time() -> None:
    # checked again when sending (DNS may point a public name at an internal address)
    code, error = post_webhook("http://10.0.0.1/x", b"{}", {}, timeout=1, allow_loopback=True)
    assert code is None and error is not None and "private or local address" in error
    code, error = post_webhook("http://127.0.0.1:9/x", b"{}", {}, timeout=1, allow_loopback=False)
    assert code is None and error is not None and "private or local address" in error


def test_endpoint_hosts_must_be_valid_dns_names() -> None:
    """Hosts that are not DNS names were accepted, then failed every attempt for 24 h
    (UnicodeError when sending); now refused at registration, saying what is wrong."""
    refused = [
        ("https://a..b/", "empty"),
        ("https://xn--/", "not valid"),
        ("https://xn--zz.com/", "not valid"),
        ("https://-a.com/", "hyphen"),
        ("https://exa_mple.com/", "not valid"),
        ("https://\u2603.com/", "not valid"),
        ("https://" + "a" * 64 + ".com/", "not valid"),
        ("https://1.2.3.999/", "all digits"),
        ("https://[v1.fe]/", "not a valid IPv6 address"),
    ]
    for url, message in refused:
        with pytest.raises(ValidationFailed) as caught:
            validate_url(url, allow_http_localhost=False)
        assert message in caught.value.fields["url"], (url, caught.value.fields)
    for url in (
        "https://b\u00fccher.de/x",
        "https://xn--bcher-kva.de/x",
        "https://example.com./x",
        "https://Hooks.Example.co.uk:8443/p?q=1",
        "https://" + "a" * 63 + ".com/",
    ):
        assert validate_url(url, allow_http_localhost=False) == url


def test_ipv6_addresses_embedding_a_private_ipv4_are_refused() -> None:
    """IPv4-compatible, NAT64, 6to4 and Teredo addresses carrying a loopback or private IPv4
    address were taken for global ones; refused when registering and when sending. The same
    forms carrying a public address stay allowed."""
    local = [
        "::127.0.0.1",
        "::10.0.0.1",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254 (cloud metadata)
        "64:ff9b:1::808:808",  # the local-use NAT64 prefix
        "2002:7f00:1::",
        "2002:c0a8:1::",  # 6to4 of 192.168.0.1
        "2001:0:7f00:1::",  # Teredo with a loopback server
    ]
    for address in local:
        assert is_forbidden_address(address), address
        assert is_forbidden_address(address, allow_loopback=True), address
        with pytest.raises(ValidationFailed) as caught:
            validate_url(f"https://[{address}]/x", allow_http_localhost=False)
        assert "private, local" in caught.value.fields["url"], address
    for address in ("64:ff9b::808:808", "2002:808:808::", "2001:4860:4860::8888"):
        assert not is_forbidden_address(address), address
        assert validate_url(f"https://[{address}]/x", allow_http_localhost=False)
    assert not is_forbidden_address("::1", allow_loopback=True)
    # checked again when sending: refused before any connection is made
    for address in ("::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::"):
        code, error = post_webhook(
            f"http://[{address}]:9/x", b"{}", {}, timeout=1, allow_loopback=True
        )
        assert code is None and error is not None and "private or local address" in error


def test_an_invalid_host_is_refused_on_the_registration_form(app, db, login) -> None:
    _, developer = developer_org()
    client = login(developer)
    response = post_form(
        client,
        "/webhooks/new",
        {"url": "https://a..b/hook", "event_types": ["decision"]},
        token_from="/webhooks/new",
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "is not valid: it has an empty part" in page
    assert 'value="https://a..b/hook"' in page
    assert db.scalars(select(WebhookEndpoint)).all() == []


def test_testing_config_allows_local_receivers_and_default_does_not(app) -> None:
    assert app.config["WEBHOOK_ALLOW_HTTP_LOCALHOST"] is True
    assert (
        create_app("default", DATABASE_URL="sqlite://", SECRET_KEY="x").config[
            "WEBHOOK_ALLOW_HTTP_LOCALHOST"
        ]
        is False
    )


# --- endpoints through the developer pages -------------------------------------------------


def test_developer_registers_endpoint_sees_secret_once_and_rotates_it(app, db, login) -> None:
    _, developer = developer_org()
    client = login(developer)
    assert client.get("/webhooks").status_code == 200
    # a refused URL: nothing saved, the form keeps what was typed and says what to fix
    response = post_form(
        client,
        "/webhooks/new",
        {"url": "http://example.com/hook", "event_types": ["decision"]},
        token_from="/webhooks/new",
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "Use https://" in page
    assert 'value="http://example.com/hook"' in page
    assert db.scalars(select(WebhookEndpoint)).all() == []

    response = post_form(
        client,
        "/webhooks/new",
        {"url": "https://example.com/hooks/reviewapp", "event_types": ["decision", "submitted"]},
        token_from="/webhooks/new",
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200, page[:2000]
    assert response.headers["Cache-Control"] == "no-store"
    secret = SECRET_RE.search(page).group(1)  # type: ignore[union-attr]
    # reloading the secret page re-sends the form: no second endpoint
    form_page = client.get("/webhooks/new").get_data(as_text=True)
    once = re.search(r'name="once" value="([^"]+)"', form_page).group(1)  # type: ignore[union-attr]
    data = {"url": "https://example.com/hooks/other", "event_types": ["decision"], "once": once}
    assert post_form(client, "/webhooks/new", data, token_from="/webhooks").status_code == 200
    assert post_form(client, "/webhooks/new", data, token_from="/webhooks").status_code == 303
    extra = db.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.url == "https://example.com/hooks/other")
    ).one()
    db.delete(extra)
    db.flush()
    endpoint = db.scalars(select(WebhookEndpoint)).one()
    assert endpoint.secret == secret and endpoint.event_types == ["decision", "submitted"]
    assert endpoint.organization_id == developer.organization_id and endpoint.active
    # never again: not on the list, not on the endpoint page, not in the audit log
    listing = client.get("/webhooks").get_data(as_text=True)
    detail = client.get(f"/webhooks/{endpoint.id}").get_data(as_text=True)
    assert "https://example.com/hooks/reviewapp" in listing and secret not in listing
    assert secret not in detail and "No deliveries yet" in detail
    audit = db.scalars(
        select(AuditEvent).where(
            AuditEvent.subject_type == "webhook_endpoint",
            AuditEvent.subject_id == str(endpoint.id),
        )
    ).all()
    assert [a.action for a in audit] == ["webhook_endpoint.create"]
    assert audit[0].actor_id == developer.id and secret not in json.dumps(audit[0].after)

    detail_page = client.get(f"/webhooks/{endpoint.id}").get_data(as_text=True)
    once = re.search(r'name="once" value="([^"]+)"', detail_page).group(1)  # type: ignore[union-attr]
    response = post_form(
        client, f"/webhooks/{endpoint.id}/rotate", {"once": once}, token_from="/webhooks"
    )
    page = response.get_data(as_text=True)
    new_secret = SECRET_RE.search(page).group(1)  # type: ignore[union-attr]
    assert response.status_code == 200 and new_secret != secret
    # reloading the page re-sends the same form: refused, the secret is not rotated again
    reloaded = post_form(
        client, f"/webhooks/{endpoint.id}/rotate", {"once": once}, token_from="/webhooks"
    )
    assert reloaded.status_code == 303
    db.expire_all()
    assert endpoint.secret == new_secret and endpoint.secret_rotated_at is not None
    rotated = db.scalars(
        select(AuditEvent).where(AuditEvent.action == "webhook_endpoint.rotate_secret")
    ).one()
    assert new_secret not in json.dumps(rotated.after)
    # without a CSRF token nothing changes
    assert client.post(f"/webhooks/{endpoint.id}/rotate").status_code == 400
    db.expire_all()
    assert endpoint.secret == new_secret


def test_decision_reaches_each_subscribed_endpoint_once_signed(app, db, login, receiver) -> None:
    org, developer = developer_org()
    with app.app_context():
        application = ApplicationFactory(submitted=True, submitter=developer)
        endpoints = {
            kind: create_endpoint(
                db, developer, url=receiver.url + f"?e={kind}", event_types=[kind]
            )[0]
            for kind in ("*", "decision", "submitted", "resubmitted")
        }
        inactive, _ = create_endpoint(db, developer, url=receiver.url, event_types=["*"])
        inactive.active = False
        _, stranger = developer_org()
        create_endpoint(db, stranger, url=receiver.url + "?stranger", event_types=["*"])
        db.flush()
    reviewer = UserFactory(reviewer=True, organization=OrganizationFactory(name="Trust & Safety"))
    client = login(reviewer)
    response = post_form(client, "/queue/claim-next", token_from="/queue")
    assert response.status_code == 302 and response.location.endswith(application.reference)
    db.expire_all()
    response = post_form(
        client,
        f"/review/{application.reference}/decide",
        {
            "outcome": "reject",
            "citations": ["usage-1.5"],
            "template": "reject-prohibited",
            "reviewer_note": "Impersonation risk.",
            "rationale": "internal only: never sent",
            "version": str(application.version),
        },
        token_from=f"/review/{application.reference}",
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    db.expire_all()
    assert application.status == Status.rejected

    # exactly one request for each endpoint that subscribes to decisions
    assert sorted(r.path.split("?e=")[-1] for r in receiver.received) == ["*", "decision"]
    secrets = {f"/hooks/reviewapp?e={k}": e.secret for k, e in endpoints.items()}
    event_ids = set()
    for request in receiver.received:
        assert request.headers["content-type"] == "application/json"
        assert verify_signature(
            secrets[request.path], request.headers["x-reviewapp-signature"], request.body
        )
        document = request.json()
        event_ids.add(document["id"])
        assert request.headers["x-reviewapp-event-id"] == document["id"]
        assert re.fullmatch(r"evt-\d+", document["id"])
        assert document["type"] == "decision"
        assert document["created_at"].endswith("Z")
        assert document["data"] == {
            "application": application.reference,
            "outcome": "reject",
            "status": "rejected",
            "path": f"/applications/{application.reference}",
        }
        for internal in ("secret-recipient", "internal only", "Impersonation", "@example.com"):
            assert internal not in request.body.decode()
    assert len(event_ids) == 1  # one event, the same id at every endpoint
    assert login(developer).get(document["data"]["path"]).status_code == 200
    deliveries = db.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()
    assert [(d.endpoint_id, d.status, d.attempts, d.last_status_code) for d in deliveries] == [
        (endpoints["*"].id, "delivered", 1, 200),
        (endpoints["decision"].id, "delivered", 1, 200),
    ]
    assert all(d.event_id in event_ids and d.delivered_at for d in deliveries)


def test_internal_events_and_events_without_application_send_nothing(app, db, receiver) -> None:
    _, developer = developer_org()
    with app.app_context():
        application = ApplicationFactory(submitter=developer)
        create_endpoint(db, developer, url=receiver.url, event_types=["*"])
        add_outbox_event(db, "assigned", {"application": application.reference, "to": ["r@x"]})
        add_outbox_event(db, "sla_breach", {"to": ["lead@x"], "subject": "s", "body": "b"})
        add_outbox_event(db, "decision", {"application": "APP-999999", "outcome": "approve"})
        add_outbox_event(db, "decision", {"application": "not a reference"})
        db.flush()
    assert db.scalars(select(WebhookDelivery)).all() == []


def test_services_outside_an_app_context_leave_deliveries_pending(db) -> None:
    # a plain script (no app context, nothing enqueued): the rows wait for the dispatcher
    _, developer = developer_org()
    endpoint = WebhookEndpoint(
        organization_id=developer.organization_id,
        url="https://example.com/hooks",
        secret="whsec_x",
        event_types=["submitted"],
        created_by_id=developer.id,
    )
    db.add(endpoint)
    db.flush()
    application = ApplicationFactory(submitted=True, submitter=developer)
    delivery = db.scalars(select(WebhookDelivery)).one()
    assert (delivery.endpoint_id, delivery.event_type, delivery.status) == (
        endpoint.id,
        "submitted",
        "pending",
    )
    assert delivery.payload["data"]["application"] == application.reference
    assert delivery.payload["data"]["status"] == application.status
    assert delivery.retry_until - delivery.created_at == dt.timedelta(hours=24)


# --- failures, backoff, the 24 h limit, redelivery -----------------------------------------


def _log_row(page: str, delivery_id: int) -> str:
    start = page.index(f'id="delivery-{delivery_id}"')
    return page[start : page.index("</tr>", start)]


def test_failures_back_off_exponentially_then_fail_after_24_h_and_log_shows_it(
    app, db, login, receiver
) -> None:
    receiver.default_status = 500
    _, developer = developer_org()
    with app.app_context():
        application = ApplicationFactory(submitter=developer)
        endpoint, secret = create_endpoint(db, developer, url=receiver.url, event_types=["*"])
        db.flush()
        add_outbox_event(database.session, "decision", decision_payload(application.reference))
        database.commit()  # the first attempt runs inline right after the commit
    delivery = db.scalars(select(WebhookDelivery)).one()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert delivery.last_error == "HTTP 500: broken!"
    window_end = delivery.created_at + dt.timedelta(hours=24)
    assert delivery.retry_until == window_end

    delays: list[float] = []
    last_attempt_at = delivery.updated_at
    with app.app_context():
        # not due yet: nothing is sent
        early = delivery.next_attempt_at - dt.timedelta(seconds=1)
        assert dispatch_due_deliveries(now=early) == 0
        assert len(receiver.received) == 1
        while delivery.status == "pending":
            delays.append((delivery.next_attempt_at - last_attempt_at).total_seconds())
            last_attempt_at = delivery.next_attempt_at
            assert dispatch_due_deliveries(now=delivery.next_attempt_at) == 1
            db.expire_all()
            assert len(delays) < 100
    expected = [backoff_seconds(n, base=30, cap=3600) for n in range(1, len(delays) + 1)]
    assert delays == expected
    assert delays[:8] == [30, 60, 120, 240, 480, 960, 1920, 3600]  # doubling, then capped at 1 h
    assert delivery.status == "failed" and delivery.attempts == len(delays) + 1
    # the last try came within the window; one more hour would have passed its end
    assert last_attempt_at <= window_end < last_attempt_at + dt.timedelta(hours=1)
    assert len(receiver.received) == delivery.attempts
    # every retry carries the same event id and a valid signature (fresh timestamp each time)
    assert {r.headers["x-reviewapp-event-id"] for r in receiver.received} == {delivery.event_id}
    stamps = []
    for request in receiver.received:
        header = request.headers["x-reviewapp-signature"]
        stamps.append(int(header.split(",")[0][2:]))
        assert verify_signature(secret, header, request.body, now=stamps[-1])
    assert stamps == sorted(stamps) and stamps[-1] - stamps[0] >= 23 * 3600
    # with nothing due, the dispatcher sends nothing more
    with app.app_context():
        assert dispatch_due_deliveries(now=window_end + dt.timedelta(days=2)) == 0

    page = login(developer).get(f"/webhooks/{endpoint.id}").get_data(as_text=True)
    row = _log_row(page, delivery.id)
    assert ">failed<" in row and ">500<" in row and "HTTP 500: broken!" in row
    assert f">{delivery.attempts}<" in row and "Redeliver" in row
    assert "failed" in login(developer).get("/webhooks").get_data(as_text=True)


def test_redeliver_resends_the_same_event_and_is_audited(app, db, login, receiver) -> None:
    receiver.statuses = [503, 500]  # then 200
    _, developer = developer_org()
    with app.app_context():
        application = ApplicationFactory(submitter=developer)
        endpoint, secret = create_endpoint(db, developer, url=receiver.url, event_types=["*"])
        db.flush()
        add_outbox_event(database.session, "decision", decision_payload(application.reference))
        database.commit()
        delivery = db.scalars(select(WebhookDelivery)).one()
        # the next try comes after the retry window: the delivery fails for good
        dispatch_due_deliveries(now=delivery.retry_until + dt.timedelta(minutes=1))
    db.expire_all()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 2, 500)

    client = login(developer)
    response = post_form(
        client,
        f"/webhooks/deliveries/{delivery.id}/redeliver",
        token_from=f"/webhooks/{endpoint.id}",
        follow_redirects=True,
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and f"{delivery.event_id} redelivered: HTTP 200." in page
    db.expire_all()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 3, 200)
    assert delivery.last_error is None and delivery.delivered_at is not None
    assert len(receiver.received) == 3
    assert len({r.body for r in receiver.received}) == 1  # the same JSON every time
    assert {r.headers["x-reviewapp-event-id"] for r in receiver.received} == {delivery.event_id}
    last = receiver.received[-1]
    assert verify_signature(secret, last.headers["x-reviewapp-signature"], last.body)
    audit = db.scalars(
        select(AuditEvent).where(AuditEvent.action == "webhook_delivery.redeliver")
    ).one()
    assert audit.actor_id == developer.id and audit.subject_id == str(delivery.id)
    assert audit.before == {"status": "failed", "attempts": 2}
    # a delivered one can be sent again too (the receiver deduplicates on the event id)
    post_form(client, f"/webhooks/deliveries/{delivery.id}/redeliver", token_from="/webhooks")
    db.expire_all()
    assert delivery.attempts == 4 and len(receiver.received) == 4


def test_deactivate_stops_sending_activate_resumes_delete_removes(app, db, login, receiver) -> None:
    receiver.default_status = 500
    _, developer = developer_org()
    with app.app_context():
        application = ApplicationFactory(submitter=developer)
        endpoint, _ = create_endpoint(db, developer, url=receiver.url, event_types=["decision"])
        db.flush()
        add_outbox_event(database.session, "decision", decision_payload(application.reference))
        database.commit()
    pending = db.scalars(select(WebhookDelivery)).one()
    assert pending.status == "pending"
    client = login(developer)
    response = post_form(
        client, f"/webhooks/{endpoint.id}/deactivate", token_from="/webhooks", follow_redirects=True
    )
    assert "1 pending deliveries were marked failed" in response.get_data(as_text=True)
    db.expire_all()
    assert not endpoint.active and pending.status == "failed"
    assert pending.last_error == "Not sent: the endpoint was deactivated."
    # a redelivery is refused while deactivated; new events make no delivery
    response = post_form(
        client,
        f"/webhooks/deliveries/{pending.id}/redeliver",
        token_from="/webhooks",
        follow_redirects=True,
    )
    assert "activate it before redelivering" in response.get_data(as_text=True)
    with app.app_context():
        add_outbox_event(database.session, "decision", decision_payload(application.reference))
        database.commit()
    assert len(db.scalars(select(WebhookDelivery)).all()) == 1
    assert len(receiver.received) == 1

    post_form(client, f"/webhooks/{endpoint.id}/activate", token_from="/webhooks")
    db.expire_all()
    assert endpoint.active
    endpoint_id = endpoint.id
    response = post_form(client, f"/webhooks/{endpoint_id}/delete", token_from="/webhooks")
    assert response.status_code == 302 and response.location.endswith("/webhooks")
    db.expire_all()
    assert db.scalars(select(WebhookEndpoint)).all() == []
    assert db.scalars(select(WebhookDelivery)).all() == []
    actions = db.scalars(
        select(AuditEvent.action)
        .where(AuditEvent.subject_type == "webhook_endpoint")
        .order_by(AuditEvent.id)
    ).all()
    assert actions == [
        "webhook_endpoint.create",
        "webhook_endpoint.deactivate",
        "webhook_endpoint.activate",
        "webhook_endpoint.delete",
    ]
    assert client.get(f"/webhooks/{endpoint_id}").status_code == 404


# --- access --------------------------------------------------------------------------------


def test_only_developers_of_the_owning_organization_reach_an_endpoint(
    app, db, login, client
) -> None:
    _, developer = developer_org()
    with app.app_context():
        endpoint, secret = create_endpoint(
            db, developer, url="https://example.com/hooks/x", event_types=["*"]
        )
        application = ApplicationFactory(submitter=developer)
        delivery = WebhookDelivery(
            endpoint_id=endpoint.id,
            event_id="evt-1",
            event_type="decision",
            payload={"id": "evt-1", "data": {"application": application.reference}},
            status="failed",
            attempts=3,
            retry_until=utcnow(),
        )
        db.add(delivery)
        db.flush()
    _, other = developer_org()
    staff = OrganizationFactory(name="Staff")
    outsider = login(other)
    paths = [
        ("GET", f"/webhooks/{endpoint.id}"),
        ("POST", f"/webhooks/{endpoint.id}/rotate"),
        ("POST", f"/webhooks/{endpoint.id}/deactivate"),
        ("POST", f"/webhooks/{endpoint.id}/activate"),
        ("POST", f"/webhooks/{endpoint.id}/delete"),
        ("POST", f"/webhooks/deliveries/{delivery.id}/redeliver"),
    ]
    for method, path in paths:
        if method == "GET":
            assert outsider.get(path).status_code == 404, path
        else:
            assert post_form(outsider, path, token_from="/webhooks").status_code == 404, path
    # the same answer as for ids that do not exist: no existence leak
    assert outsider.get("/webhooks/999999").status_code == 404
    assert "example.com/hooks/x" not in outsider.get("/webhooks").get_data(as_text=True)
    for user in (
        UserFactory(reviewer=True, organization=staff),
        UserFactory(senior=True, organization=staff),
        UserFactory(admin=True, organization=staff),
    ):
        staff_client = login(user)
        assert staff_client.get("/webhooks").status_code == 403
        assert staff_client.get("/webhooks/new").status_code == 403
        assert staff_client.get(f"/webhooks/{endpoint.id}").status_code == 403
        assert post_form(staff_client, f"/webhooks/{endpoint.id}/rotate").status_code == 403
    anonymous = client.get(f"/webhooks/{endpoint.id}")
    assert anonymous.status_code == 302 and "/login" in anonymous.location
    db.expire_all()
    assert endpoint.active and endpoint.secret == secret and delivery.attempts == 3
    # a colleague in the same organization manages it
    colleague = login(UserFactory(organization=developer.organization))
    assert colleague.get(f"/webhooks/{endpoint.id}").status_code == 200
