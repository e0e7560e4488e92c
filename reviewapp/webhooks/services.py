"""Webhooks: endpoints of developer organizations, signed event deliveries, retries.

How a delivery moves (all times UTC, durations in seconds from the ``WEBHOOK_*`` settings):

- :func:`create_deliveries_for_event` writes one ``pending`` row per subscribed active endpoint
  in the transaction that writes the outbox row; the job is enqueued after commit.
- :func:`claim_delivery` turns a due ``pending`` row into ``sending`` (conditional UPDATE, so two
  workers never both send one attempt) and the job commits before the HTTP call.
- :func:`record_attempt` stores the outcome: ``delivered`` on 2xx, otherwise ``pending`` again
  with exponential backoff, or ``failed`` once the next try would fall after ``retry_until``.
  It only writes if the row is still in the attempt it claimed (``attempts`` is the fence).
- :func:`recover_stuck_deliveries` puts rows whose worker died mid-attempt back to ``pending``
  (or ``failed`` after the retry window); :func:`due_delivery_ids` feeds the dispatcher.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from flask import current_app, has_app_context
from sqlalchemy import CursorResult, Result, delete, func, select, update
from sqlalchemy.orm import Session

from reviewapp.audit.models import OutboxEvent
from reviewapp.audit.services import record_event
from reviewapp.auth.models import Organization, Permission, User
from reviewapp.db import is_postgres, utcnow
from reviewapp.errors import ConflictError, NotFound, PermissionDenied, ValidationFailed
from reviewapp.limits import LIMITS
from reviewapp.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint

#: event kinds an endpoint may subscribe to, with the label the developer sees. Outbox kinds
#: not listed here (``assigned``: an admin handing work to a reviewer) are internal to the
#: review team and never leave the platform.
EVENT_TYPES: dict[str, str] = {
    "submitted": "Submissions received and queued (each submitted or resubmitted revision)",
    "resubmitted": "Resubmissions after a mitigation request, for the reviewer who asked",
    "decision": "Decisions: approved, mitigations requested, rejected, appeal outcomes",
}
ALL_EVENTS = "*"
SIGNATURE_HEADER = "X-Reviewapp-Signature"
EVENT_ID_HEADER = "X-Reviewapp-Event-Id"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
MAX_URL_LENGTH = LIMITS["webhook.url"]
MAX_ENDPOINTS_PER_ORGANIZATION = 20


#: used when services run outside an application context (a plain script); the app's
#: settings (config/settings.py) win whenever there is one
DEFAULT_SETTINGS: dict[str, Any] = {
    "WEBHOOK_RETRY_WINDOW_SECONDS": 24 * 3600,
    "WEBHOOK_BACKOFF_BASE_SECONDS": 30,
    "WEBHOOK_BACKOFF_MAX_SECONDS": 3600,
    "WEBHOOK_SENDING_LEASE_SECONDS": 120,
    "WEBHOOK_ALLOW_HTTP_LOCALHOST": False,
}


def _setting(name: str) -> Any:
    if has_app_context():
        return current_app.config.get(name, DEFAULT_SETTINGS[name])
    return DEFAULT_SETTINGS[name]


def _rowcount(result: Result[Any]) -> int:
    """Rows matched by an UPDATE/DELETE (the conditional writes below depend on it)."""
    return int(cast(CursorResult[Any], result).rowcount)


# --- signing -------------------------------------------------------------------------------


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` + 43 URL-safe characters (32 random bytes)."""
    return "whsec_" + secrets.token_urlsafe(32)


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes | str, timestamp: int) -> str:
    """The ``X-Reviewapp-Signature`` value: ``t=<unix seconds>,v1=<hex HMAC-SHA256>`` where the
    HMAC key is ``secret`` and the message is ``f"{timestamp}.{body}"`` (body as sent, UTF-8)."""
    return f"t={timestamp},v1={_digest(secret, timestamp, _as_bytes(body))}"


def verify_signature(
    secret: str,
    header: str | None,
    body: bytes | str,
    tolerance_seconds: int = 300,
    now: float | dt.datetime | None = None,
) -> bool:
    """Check a received ``X-Reviewapp-Signature`` header (for receivers and tests).

    Args:
        secret: the endpoint's signing secret.
        header: the header value ``t=<unix seconds>,v1=<hex>`` (several ``v1`` entries allowed;
            one matching is enough).
        body: the raw request body exactly as received.
        tolerance_seconds: how far the signed time may be from ``now`` (replay window).
        now: the receiver's clock (unix seconds or an aware datetime); default: the current time.

    Returns:
        True when a ``v1`` signature matches (constant-time compare) and the timestamp is within
        the tolerance; False for anything else, including a malformed header. Never raises.
    """
    if not header:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            if not value.isdigit() or len(value) > 12:
                return False
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if now is None:
        current = time.time()
    elif isinstance(now, dt.datetime):
        current = now.timestamp()
    else:
        current = float(now)
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = _digest(secret, timestamp, _as_bytes(body))
    return any(hmac.compare_digest(expected, c) for c in candidates)


def encode_body(document: dict[str, Any]) -> bytes:
    """The JSON body sent for ``document`` (compact, keys sorted: the same bytes every attempt)."""
    return json.dumps(document, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode(
        "utf-8"
    )


# --- endpoint URLs -------------------------------------------------------------------------


#: NAT64 prefixes (RFC 6052, RFC 8215): a DNS64 resolver answers 64:ff9b::a.b.c.d for an
#: IPv4-only name, and the gateway forwards to a.b.c.d, so the embedded address is checked.
#: The local-use prefix is private to a network and refused whole (its layout varies).
NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated ::a.b.c.d (RFC 4291 2.5.5.1)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries and that a transition mechanism may deliver
    to: IPv4-compatible ``::a.b.c.d``, NAT64 ``64:ff9b::a.b.c.d``, 6to4 ``2002:AABB:CCDD::``
    and both Teredo addresses (server, client). ``::`` and ``::1`` carry none."""
    found: list[ipaddress.IPv4Address] = []
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in IPV4_COMPATIBLE and int(ip) > 1:
        found.append(low32)
    if ip in NAT64_WELL_KNOWN:
        found.append(low32)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    return found


def is_forbidden_address(address: str, *, allow_loopback: bool = False) -> bool:
    """True when deliveries must not go to IP ``address``: anything but a public unicast
    address (private, loopback, link-local such as cloud metadata, multicast, reserved),
    including an IPv6 address that embeds such an IPv4 one (IPv4-compatible, NAT64, 6to4,
    Teredo: Python's ``is_global`` calls several of those global) and the NAT64 local-use
    prefix. ``allow_loopback`` lets 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104 through (local
    test receivers); a loopback address embedded any other way stays refused."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if allow_loopback and ip.is_loopback:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in NAT64_LOCAL_USE:
            return True
        if any(not v4.is_global or v4.is_multicast for v4 in _embedded_ipv4(ip)):
            return True
    return not ip.is_global or ip.is_multicast


#: one label of a host name in ASCII: letters, digits, hyphens inside (RFC 1123 2.1)
_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def _idna_encode(name: str) -> str:
    """``name`` in ASCII (A-labels), by the ``idna`` package (IDNA 2008 with UTS 46 mapping)
    when installed, else Python's IDNA 2003 codec. Raises ValueError saying why not."""
    try:
        import idna
    except ImportError:  # pragma: no cover - idna is installed wherever requests is
        try:
            return name.encode("idna").decode("ascii").lower()
        except UnicodeError as exc:
            raise ValueError(str(exc.__cause__ or exc)) from None
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValueError(str(exc)) from None


def host_name_problem(host: str) -> str | None:
    """Why ``host`` (a host name, not an IP address) is not a valid DNS name, or None.

    Checked: IDNA encoding; each label 1-63 characters of letters, digits and inner hyphens;
    an ``xn--`` label decodes as Punycode; at most 253 characters; the last label is not all
    digits (a mistyped IP address). A trailing dot (fully qualified) is allowed."""
    name = host[:-1] if host.endswith(".") else host
    if not name:
        return "the host name is empty"
    if "" in name.split("."):
        return "it has an empty part (two dots in a row, or a leading dot)"
    try:
        ascii_name = _idna_encode(name)
    except ValueError as exc:
        return f"it cannot be encoded as a DNS name ({exc})"
    if len(ascii_name) > 253:
        return f"it is {len(ascii_name)} characters long in DNS form; the limit is 253"
    labels = ascii_name.lower().split(".")
    for label in labels:
        if not label:
            return "it has an empty part (two dots in a row, or a leading dot)"
        if not _LDH_LABEL.fullmatch(label):
            return (
                f"the part {label!r} is not 1 to 63 letters, digits and hyphens (not at either end)"
            )
        if label.startswith("xn--"):
            try:
                decoded = label[4:].encode("ascii").decode("punycode")
            except UnicodeError:
                decoded = ""
            if not decoded:
                return f"the part {label!r} is not valid Punycode"
    if labels[-1].isdigit():
        return "its last part is all digits (is it a mistyped IP address?)"
    return None


def _literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address ``host`` spells, or None for a host name.

    Besides the standard forms this reads the legacy IPv4 spellings the system resolver also
    accepts (``2130706433``, ``0x7f000001``, ``017700000001``, ``127.1``), so none of them slips
    a loopback or private address past the check (inet_aton, POSIX).
    """
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_ntoa(socket.inet_aton(host)))
    except OSError:
        return None


def validate_url(url: str, *, allow_http_localhost: bool) -> str:
    """Normalise and check an endpoint URL; returns it stripped.

    Rules: ``https://`` with a host name or public IP, no user:password, no fragment, at most
    2,000 characters. With ``allow_http_localhost`` (testing), ``http://`` and https to
    localhost / 127.0.0.1 / [::1] are accepted too.

    Raises:
        ValidationFailed: with ``fields={"url": message}`` saying what to change.
    """
    url = (url or "").strip()

    def bad(message: str) -> ValidationFailed:
        return ValidationFailed(message, fields={"url": message})

    if not url:
        raise bad("Enter the URL that should receive the events.")
    if len(url) > MAX_URL_LENGTH:
        raise bad(f"The URL is {len(url)} characters long; the limit is {MAX_URL_LENGTH}.")
    if any(ord(c) < 33 for c in url):
        raise bad("The URL must not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise bad("This is not a valid URL, e.g. https://example.com/hooks/reviewapp.") from None
    host = (parts.hostname or "").lower()
    is_local = host in LOCAL_HOSTS
    if parts.scheme not in ("https", "http") or not host:
        raise bad("Use an https:// URL with a host name, e.g. https://example.com/hooks.")
    if parts.scheme == "http" and not (allow_http_localhost and is_local):
        if is_local:
            raise bad(
                "Use https:// so events are encrypted in transit. For a test receiver on this "
                "machine, the operator can set REVIEWAPP_WEBHOOK_ALLOW_HTTP_LOCALHOST=true."
            )
        raise bad("Use https:// so events are encrypted in transit.")
    if parts.username is not None or parts.password is not None:
        raise bad("Remove the user name and password from the URL; verify the signature instead.")
    if parts.fragment:
        raise bad("Remove the #fragment from the URL.")
    if port == 0:
        raise bad("The port must be between 1 and 65535.")
    if is_local and not allow_http_localhost:
        raise bad("Use a public address: events cannot be sent to this server's own machine.")
    literal = _literal_address(host)
    if literal is not None and is_forbidden_address(str(literal), allow_loopback=is_local):
        raise bad("Use a public address: private, local and link-local addresses are refused.")
    if literal is None and parts.netloc.rpartition("@")[2].startswith("["):
        raise bad(f"[{host}] is not a valid IPv6 address; write a host name or an IP address.")
    if literal is None:
        problem = host_name_problem(host)
        if problem is not None:
            raise bad(f"The host name {host!r} is not valid: {problem}.")
    return url


def clean_event_types(values: list[str] | tuple[str, ...]) -> list[str]:
    """The subscribed kinds, validated: ``["*"]`` when all are chosen, else the sorted kinds.

    Raises:
        ValidationFailed: ``fields={"event_types": ...}`` for none or an unknown kind.
    """
    chosen = {v.strip() for v in values if v and v.strip()}
    if not chosen:
        message = "Choose at least one event type (or all events)."
        raise ValidationFailed(message, fields={"event_types": message})
    if ALL_EVENTS in chosen:
        return [ALL_EVENTS]
    unknown = sorted(chosen - set(EVENT_TYPES))
    if unknown:
        message = f"Unknown event type(s): {', '.join(unknown)}."
        raise ValidationFailed(message, fields={"event_types": message})
    return sorted(chosen)


# --- who may see what ----------------------------------------------------------------------


def can_manage(user: User, endpoint: WebhookEndpoint) -> bool:
    """Developers of the owning organization manage its endpoints (nobody else, admins
    included: the secret and the receiving systems belong to the organization)."""
    return (
        user.can(Permission.submit_applications)
        and endpoint.organization_id == user.organization_id
    )


def get_endpoint(session: Session, user: User, endpoint_id: int) -> WebhookEndpoint:
    """Load an endpoint ``user`` may manage.

    Raises:
        NotFound: unknown id or another organization's endpoint (no existence leak).
    """
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or not can_manage(user, endpoint):
        raise NotFound("There is no such webhook endpoint.")
    return endpoint


def get_delivery(session: Session, user: User, delivery_id: int) -> WebhookDelivery:
    """Load a delivery of an endpoint ``user`` may manage.

    Raises:
        NotFound: unknown id or another organization's delivery (no existence leak).
    """
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or not can_manage(user, delivery.endpoint):
        raise NotFound("There is no such webhook delivery.")
    return delivery


def list_endpoints(session: Session, user: User) -> list[WebhookEndpoint]:
    """The user's organization's endpoints, newest first."""
    return list(
        session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.organization_id == user.organization_id)
            .order_by(WebhookEndpoint.created_at.desc(), WebhookEndpoint.id.desc())
        )
    )


def recent_deliveries(
    session: Session, endpoint_ids: list[int], per_endpoint: int = 5
) -> dict[int, list[WebhookDelivery]]:
    """Up to ``per_endpoint`` newest deliveries of each endpoint, keyed by endpoint id."""
    result: dict[int, list[WebhookDelivery]] = {i: [] for i in endpoint_ids}
    if not endpoint_ids:
        return result
    ranked = (
        select(
            WebhookDelivery.id,
            func.row_number()
            .over(
                partition_by=WebhookDelivery.endpoint_id,
                order_by=(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()),
            )
            .label("n"),
        )
        .where(WebhookDelivery.endpoint_id.in_(endpoint_ids))
        .subquery()
    )
    rows = session.scalars(
        select(WebhookDelivery)
        .join(ranked, ranked.c.id == WebhookDelivery.id)
        .where(ranked.c.n <= per_endpoint)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
    )
    for row in rows:
        result[row.endpoint_id].append(row)
    return result


def list_deliveries(
    session: Session, endpoint: WebhookEndpoint, *, page: int = 1, per_page: int = 50
) -> tuple[list[WebhookDelivery], int]:
    """One page of the endpoint's delivery log, newest first; returns (rows, total)."""
    base = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    rows = session.scalars(
        base.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    return list(rows), int(total)


# --- managing endpoints --------------------------------------------------------------------


def _endpoint_snapshot(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """Audited fields (never the secret)."""
    return {
        "url": endpoint.url,
        "event_types": list(endpoint.event_types),
        "active": endpoint.active,
        "organization_id": endpoint.organization_id,
    }


def create_endpoint(
    session: Session, actor: User, *, url: str, event_types: list[str]
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint for the actor's organization; returns (endpoint, clear secret).

    Raises:
        PermissionDenied: the actor is not a developer.
        ValidationFailed: bad URL or event types (per-field messages), or too many endpoints.
    """
    if not actor.can(Permission.submit_applications):
        raise PermissionDenied("Only developers of an organization register webhook endpoints.")
    clean_url = validate_url(
        url, allow_http_localhost=bool(_setting("WEBHOOK_ALLOW_HTTP_LOCALHOST"))
    )
    kinds = clean_event_types(event_types)
    # lock the organization's row so parallel registrations count one at a time; without it
    # twelve simultaneous ones each saw 13 endpoints and the organization ended with 23.
    # (SQLite ignores FOR UPDATE; it runs one writer at a time.)
    session.execute(
        select(Organization.id).where(Organization.id == actor.organization_id).with_for_update()
    )
    count = session.scalar(
        select(func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.organization_id == actor.organization_id)
    )
    if (count or 0) >= MAX_ENDPOINTS_PER_ORGANIZATION:
        raise ValidationFailed(
            f"Your organization already has {MAX_ENDPOINTS_PER_ORGANIZATION} endpoints; "
            "delete one you no longer use first."
        )
    secret = new_secret()
    endpoint = WebhookEndpoint(
        organization_id=actor.organization_id,
        url=clean_url,
        secret=secret,
        event_types=kinds,
        active=True,
        created_by_id=actor.id,
    )
    session.add(endpoint)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="webhook_endpoint.create",
        subject_type="webhook_endpoint",
        subject_id=endpoint.id,
        after=_endpoint_snapshot(endpoint),
    )
    return endpoint, secret


def rotate_secret(session: Session, actor: User, endpoint: WebhookEndpoint) -> str:
    """Replace the signing secret; returns the new clear secret (the old one stops working at
    once: attempts from now on, retries included, are signed with the new one).

    Raises:
        PermissionDenied: the actor does not manage the endpoint.
    """
    _check(actor, endpoint)
    endpoint.secret = new_secret()
    endpoint.secret_rotated_at = utcnow()
    session.flush()
    record_event(
        session,
        actor=actor,
        action="webhook_endpoint.rotate_secret",
        subject_type="webhook_endpoint",
        subject_id=endpoint.id,
        after={"secret_rotated_at": endpoint.secret_rotated_at.isoformat()},
    )
    return endpoint.secret


def deactivate_endpoint(
    session: Session, actor: User, endpoint: WebhookEndpoint, *, now: dt.datetime | None = None
) -> int:
    """Stop sending to the endpoint. Its pending deliveries become ``failed`` (shown in the
    log; they can be redelivered after reactivation). Returns how many were ended.

    Raises:
        PermissionDenied: the actor does not manage the endpoint.
    """
    _check(actor, endpoint)
    now = now or utcnow()
    before = _endpoint_snapshot(endpoint)
    endpoint.active = False
    ended = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint.id,
            WebhookDelivery.status == DeliveryStatus.pending,
        )
        .values(
            status=DeliveryStatus.failed,
            next_attempt_at=None,
            last_error="Not sent: the endpoint was deactivated.",
            updated_at=now,
        )
        .execution_options(synchronize_session="fetch")
    )
    session.flush()
    record_event(
        session,
        actor=actor,
        action="webhook_endpoint.deactivate",
        subject_type="webhook_endpoint",
        subject_id=endpoint.id,
        before=before,
        after=_endpoint_snapshot(endpoint),
    )
    return _rowcount(ended)


def activate_endpoint(session: Session, actor: User, endpoint: WebhookEndpoint) -> None:
    """Resume sending new events to a deactivated endpoint.

    Raises:
        PermissionDenied: the actor does not manage the endpoint.
    """
    _check(actor, endpoint)
    before = _endpoint_snapshot(endpoint)
    endpoint.active = True
    session.flush()
    record_event(
        session,
        actor=actor,
        action="webhook_endpoint.activate",
        subject_type="webhook_endpoint",
        subject_id=endpoint.id,
        before=before,
        after=_endpoint_snapshot(endpoint),
    )


def delete_endpoint(session: Session, actor: User, endpoint: WebhookEndpoint) -> None:
    """Delete the endpoint and its delivery log (the audit log keeps the record).

    Raises:
        PermissionDenied: the actor does not manage the endpoint.
    """
    _check(actor, endpoint)
    before = _endpoint_snapshot(endpoint)
    endpoint_id = endpoint.id
    session.execute(
        delete(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .execution_options(synchronize_session="fetch")
    )
    session.delete(endpoint)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="webhook_endpoint.delete",
        subject_type="webhook_endpoint",
        subject_id=endpoint_id,
        before=before,
    )


def redeliver(
    session: Session, actor: User, delivery: WebhookDelivery, *, now: dt.datetime | None = None
) -> WebhookDelivery:
    """Send a delivery again: the same row (same event id, attempt count continues) goes back
    to ``pending``, due now, with a fresh retry window; the attempt is enqueued after commit.

    Raises:
        PermissionDenied: the actor does not manage the endpoint.
        ConflictError: an attempt is in flight, or the endpoint is deactivated.
    """
    from reviewapp.jobs import enqueue_after_commit
    from reviewapp.webhooks.jobs import deliver_webhook

    _check(actor, delivery.endpoint)
    if not delivery.endpoint.active:
        raise ConflictError("The endpoint is deactivated; activate it before redelivering.")
    now = now or utcnow()
    before = {"status": delivery.status, "attempts": delivery.attempts}
    changed = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery.id,
            WebhookDelivery.status != DeliveryStatus.sending,
        )
        .values(
            status=DeliveryStatus.pending,
            next_attempt_at=now,
            retry_until=now + dt.timedelta(seconds=int(_setting("WEBHOOK_RETRY_WINDOW_SECONDS"))),
            updated_at=now,
        )
        .execution_options(synchronize_session="fetch")
    )
    if _rowcount(changed) == 0:
        raise ConflictError("This delivery is being sent right now; wait for the attempt to end.")
    session.flush()
    session.refresh(delivery)
    record_event(
        session,
        actor=actor,
        action="webhook_delivery.redeliver",
        subject_type="webhook_delivery",
        subject_id=delivery.id,
        before=before,
        after={"status": delivery.status, "event_id": delivery.event_id},
    )
    enqueue_after_commit(deliver_webhook, delivery.id)
    return delivery


def _check(actor: User, endpoint: WebhookEndpoint) -> None:
    if not can_manage(actor, endpoint):
        raise PermissionDenied("Only developers of the owning organization manage this endpoint.")


# --- events -> deliveries ------------------------------------------------------------------


def event_id_for(event: OutboxEvent) -> str:
    """The stable id receivers deduplicate on (also the email header): ``evt-<outbox id>``."""
    return f"evt-{event.id}"


def event_document(session: Session, event: OutboxEvent) -> tuple[int, dict[str, Any]] | None:
    """(organization id, JSON document) for an outbox event, or None when it is not about an
    application or its kind is not offered to webhooks.

    Document: ``{"id", "type", "created_at" (ISO 8601 UTC), "data": {"application",
    "status", "outcome" (when the event has one), "path"}}``; ``path`` is the application's
    page on this site. Internal fields of the email (recipients, subject, body) are never
    included. Needs no application context (services may run from a plain script).
    """
    from reviewapp.applications.models import Application, applicant_status

    if event.kind not in EVENT_TYPES:
        return None
    reference = event.payload.get("application")
    if not isinstance(reference, str):
        return None
    application_id = Application.id_from_reference(reference)
    application = session.get(Application, application_id) if application_id else None
    if application is None:
        return None
    data: dict[str, Any] = {
        "application": application.reference,
        # the organization's view of the status: never an internal one (README: the
        # developer sees only the final outcome)
        "status": applicant_status(application.status).value,
        "path": f"/applications/{application.reference}",  # the developer's application page
    }
    if event.payload.get("outcome") is not None:
        data["outcome"] = str(event.payload["outcome"])
    created = event.created_at or utcnow()
    document = {
        "id": event_id_for(event),
        "type": event.kind,
        "created_at": created.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "data": data,
    }
    return application.organization_id, document


def create_deliveries_for_event(session: Session, event: OutboxEvent) -> list[int]:
    """Write one ``pending`` delivery (due now) per active endpoint of the application's
    organization that subscribes to the event's kind, in the caller's transaction.

    Returns:
        The new delivery ids (the caller enqueues their attempts after commit).
    """
    found = event_document(session, event)
    if found is None:
        return []
    organization_id, document = found
    endpoints = session.scalars(
        select(WebhookEndpoint)
        .where(
            WebhookEndpoint.organization_id == organization_id,
            WebhookEndpoint.active.is_(True),
        )
        .order_by(WebhookEndpoint.id)
    ).all()
    now = utcnow()
    window = dt.timedelta(seconds=int(_setting("WEBHOOK_RETRY_WINDOW_SECONDS")))
    rows = [
        WebhookDelivery(
            endpoint_id=endpoint.id,
            event_id=document["id"],
            event_type=event.kind,
            payload=document,
            status=DeliveryStatus.pending,
            attempts=0,
            next_attempt_at=now,
            retry_until=now + window,
            created_at=now,
            updated_at=now,
        )
        for endpoint in endpoints
        if endpoint.subscribes_to(event.kind)
    ]
    session.add_all(rows)
    session.flush()
    return [row.id for row in rows]


# --- attempts ------------------------------------------------------------------------------


def backoff_seconds(attempt: int, *, base: int, cap: int) -> int:
    """Delay before the try that follows failed attempt number ``attempt`` (1-based):
    ``base × 2^(attempt-1)`` seconds, at most ``cap``."""
    return int(min(cap, base * 2 ** max(0, min(attempt - 1, 30))))


@dataclass(frozen=True)
class Claim:
    """What one attempt needs, read when the row was claimed (the job holds no ORM objects
    across the HTTP call)."""

    delivery_id: int
    attempt: int
    url: str
    secret: str
    event_id: str
    event_type: str
    body: bytes


def claim_delivery(session: Session, delivery_id: int, *, now: dt.datetime) -> Claim | None:
    """Mark a due ``pending`` delivery ``sending`` (attempts + 1, start time = ``now``).

    Returns None, changing nothing, when the row is gone, not pending or not due yet (another
    worker took it, or a duplicate job). A delivery of a deactivated endpoint is marked
    ``failed`` instead. The caller commits before making the HTTP call.
    """
    row = session.execute(
        select(WebhookDelivery.status, WebhookEndpoint.active)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.id == delivery_id)
    ).first()
    if row is None or row.status != DeliveryStatus.pending:
        return None
    due = (
        WebhookDelivery.id == delivery_id,
        WebhookDelivery.status == DeliveryStatus.pending,
        WebhookDelivery.next_attempt_at <= now,
    )
    if not row.active:
        session.execute(
            update(WebhookDelivery)
            .where(*due)
            .values(
                status=DeliveryStatus.failed,
                next_attempt_at=None,
                last_error="Not sent: the endpoint was deactivated.",
                updated_at=now,
            )
            .execution_options(synchronize_session="fetch")
        )
        return None
    claimed = session.execute(
        update(WebhookDelivery)
        .where(*due)
        .values(
            status=DeliveryStatus.sending,
            attempts=WebhookDelivery.attempts + 1,
            sending_started_at=now,
            next_attempt_at=None,
            updated_at=now,
        )
        .execution_options(synchronize_session="fetch")
    )
    if _rowcount(claimed) != 1:
        return None
    delivery = session.get(WebhookDelivery, delivery_id, populate_existing=True)
    assert delivery is not None
    return Claim(
        delivery_id=delivery.id,
        attempt=delivery.attempts,
        url=delivery.endpoint.url,
        secret=delivery.endpoint.secret,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        body=encode_body(delivery.payload),
    )


def record_attempt(
    session: Session,
    claim: Claim,
    *,
    status_code: int | None,
    error: str | None,
    now: dt.datetime,
) -> str | None:
    """Store the outcome of the attempt ``claim`` made.

    Args:
        status_code: the HTTP status received, or None when no response came.
        error: what went wrong (None on a 2xx).
        now: when the attempt ended (UTC).

    Returns:
        The new status ("delivered", "pending" or "failed"), or None when the row is no longer
        in this attempt (the sweeper recovered it, a newer attempt runs, or it was deleted);
        then nothing is written.
    """
    delivered = status_code is not None and 200 <= status_code < 300
    values: dict[str, Any] = {
        "last_status_code": status_code,
        "sending_started_at": None,
        "updated_at": now,
    }
    if delivered:
        values.update(status=DeliveryStatus.delivered, delivered_at=now, last_error=None)
    else:
        values["last_error"] = (error or f"HTTP {status_code}")[:1000]
        row = session.execute(
            select(WebhookDelivery.retry_until, WebhookEndpoint.active)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.id == claim.delivery_id)
        ).first()
        if row is None:
            return None
        delay = backoff_seconds(
            claim.attempt,
            base=int(_setting("WEBHOOK_BACKOFF_BASE_SECONDS")),
            cap=int(_setting("WEBHOOK_BACKOFF_MAX_SECONDS")),
        )
        next_at = now + dt.timedelta(seconds=delay)
        if not row.active:
            values.update(status=DeliveryStatus.failed, next_attempt_at=None)
            values["last_error"] = (values["last_error"] + " (endpoint deactivated)")[:1000]
        elif next_at > row.retry_until:
            values.update(status=DeliveryStatus.failed, next_attempt_at=None)
        else:
            values.update(status=DeliveryStatus.pending, next_attempt_at=next_at)
    written = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == claim.delivery_id,
            WebhookDelivery.status == DeliveryStatus.sending,
            WebhookDelivery.attempts == claim.attempt,
        )
        .values(**values)
        .execution_options(synchronize_session="fetch")
    )
    if _rowcount(written) != 1:
        return None
    return str(values["status"])


def recover_stuck_deliveries(
    session: Session,
    *,
    older_than_seconds: int | None = None,
    now: dt.datetime | None = None,
    limit: int = 1000,
) -> tuple[int, int]:
    """The sweeper: deliveries ``sending`` for longer than ``older_than_seconds`` (default
    ``WEBHOOK_SENDING_LEASE_SECONDS``) lost their worker (killed, crashed, timed out). They go
    back to ``pending``, due now, or to ``failed`` when the retry window has passed. The
    interrupted attempt keeps its count; the receiver may have got it (at-least-once).

    Returns:
        (back to pending, failed). The caller commits.
    """
    now = now or utcnow()
    lease = int(
        _setting("WEBHOOK_SENDING_LEASE_SECONDS")
        if older_than_seconds is None
        else older_than_seconds
    )
    cutoff = now - dt.timedelta(seconds=lease)
    stmt = (
        select(WebhookDelivery.id, WebhookDelivery.attempts, WebhookDelivery.retry_until)
        .where(
            WebhookDelivery.status == DeliveryStatus.sending,
            WebhookDelivery.sending_started_at <= cutoff,
        )
        .order_by(WebhookDelivery.sending_started_at)
        .limit(limit)
    )
    if is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True)
    requeued = failed = 0
    for delivery_id, attempts, retry_until in session.execute(stmt).all():
        expired = now >= retry_until
        message = f"Attempt {attempts} was interrupted (the worker stopped before it finished)"
        values: dict[str, Any] = {
            "sending_started_at": None,
            "updated_at": now,
            "last_status_code": None,
        }
        if expired:
            values.update(
                status=DeliveryStatus.failed,
                next_attempt_at=None,
                last_error=message + "; the retry window is over.",
            )
        else:
            values.update(
                status=DeliveryStatus.pending,
                next_attempt_at=now,
                last_error=message + "; it will be retried.",
            )
        written = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.status == DeliveryStatus.sending,
                WebhookDelivery.attempts == attempts,
            )
            .values(**values)
            .execution_options(synchronize_session="fetch")
        )
        if _rowcount(written) == 1:
            if expired:
                failed += 1
            else:
                requeued += 1
    session.flush()
    return requeued, failed


def due_delivery_ids(session: Session, *, now: dt.datetime, limit: int = 500) -> list[int]:
    """Ids of ``pending`` deliveries due at ``now`` (oldest due first) on active endpoints.

    On PostgreSQL rows locked by a concurrent claim are skipped (``FOR UPDATE SKIP LOCKED``);
    correctness does not depend on it: :func:`claim_delivery` is conditional.
    """
    stmt = (
        select(WebhookDelivery.id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookDelivery.status == DeliveryStatus.pending,
            WebhookDelivery.next_attempt_at <= now,
            WebhookEndpoint.active.is_(True),
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    )
    if is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True, of=WebhookDelivery)
    return list(session.scalars(stmt))
