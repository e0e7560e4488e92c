"""Jobs that send webhook deliveries, and the dispatcher that finds due ones.

Each attempt commits twice: once to mark the row ``sending`` (before any network I/O, so a worker
killed during the HTTP call leaves evidence the sweeper can act on) and once with the outcome.
Failures are recorded on the row, not raised: the database row, not RQ, decides about retries.
"""

from __future__ import annotations

import datetime as dt
import http.client
import logging
import socket
import ssl
import time
from urllib.parse import urlsplit

from reviewapp.db import utcnow
from reviewapp.jobs import job_app, run_in_app_context
from reviewapp.webhooks.services import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    Claim,
    claim_delivery,
    due_delivery_ids,
    is_forbidden_address,
    record_attempt,
    sign,
)

log = logging.getLogger(__name__)

USER_AGENT = "reviewapp-webhooks/1"
RESPONSE_SNIPPET_BYTES = 300


class RefusedAddress(Exception):
    """The endpoint's host resolves to an address deliveries must not reach."""


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Plain HTTP to an address checked beforehand (no second DNS lookup to rebind)."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to an address checked beforehand; the certificate is verified for the host name."""

    def __init__(
        self, host: str, port: int, *, address: str, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


def _resolve(host: str, port: int, *, allow_loopback: bool) -> str:
    """One address of ``host`` to connect to, after checking every address it resolves to.

    Raises:
        RefusedAddress: any address is private, loopback (unless allowed), link-local, ...
        OSError: the name does not resolve.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [str(info[4][0]) for info in infos]
    for address in addresses:
        if is_forbidden_address(address, allow_loopback=allow_loopback):
            raise RefusedAddress(
                f"Not sent: {host} resolves to {address}, a private or local address."
            )
    return addresses[0]


def post_webhook(
    url: str, body: bytes, headers: dict[str, str], *, timeout: float, allow_loopback: bool
) -> tuple[int | None, str | None]:
    """POST ``body`` to ``url`` once; redirects are not followed.

    Args:
        timeout: seconds for connecting and for each read.
        allow_loopback: permit 127.0.0.1/::1 (local test receivers; settings-controlled).

    Returns:
        (status code or None, error text or None): (2xx, None) on success; (code, "HTTP code:
        start of the response") for any other status; (None, reason) when no response came.
        Never raises: anything unexpected is reported as the error text.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    is_https = parts.scheme == "https"
    port = parts.port or (443 if is_https else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection | None = None
    try:
        address = _resolve(host, port, allow_loopback=allow_loopback)
        if is_https:
            conn = _PinnedHTTPSConnection(
                host, port, address=address, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            conn = _PinnedHTTPConnection(host, port, address=address, timeout=timeout)
        conn.request("POST", target, body=body, headers=headers)
        response = conn.getresponse()
        snippet = response.read(RESPONSE_SNIPPET_BYTES).decode("utf-8", "replace").strip()
        code = response.status
    except RefusedAddress as exc:
        return None, str(exc)
    except TimeoutError:
        return None, f"Timed out after {timeout:g} s without a complete response."
    except ssl.SSLError as exc:
        return None, f"TLS error: {exc}"
    except OSError as exc:
        return None, f"Connection failed: {type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - any failure is this attempt's outcome, not a crash
        return None, f"{type(exc).__name__}: {exc}"
    finally:
        if conn is not None:
            conn.close()
    if 200 <= code < 300:
        return code, None
    hint = " (redirects are not followed: register the final URL)" if 300 <= code < 400 else ""
    return code, f"HTTP {code}{hint}" + (f": {snippet}" if snippet else "")


def attempt_delivery(delivery_id: int, *, now: dt.datetime | None = None) -> str | None:
    """Make one attempt at a due delivery, committing before and after the HTTP call.

    Args:
        now: the clock for this attempt (tests drive time with it); default: the real time.

    Returns:
        "delivered", "pending" (retry scheduled), "failed", or None when there was nothing to
        do (not due, already taken by another worker, or superseded while sending).
    """
    from reviewapp.extensions import db

    app = job_app()
    session = db.session
    started = now or utcnow()
    claim = claim_delivery(session, delivery_id, now=started)
    db.commit()  # "sending" is durable before any byte leaves
    if claim is None:
        return None
    status_code, error = post_webhook(
        claim.url,
        claim.body,
        _headers(claim, int(started.timestamp()) if now is not None else int(time.time())),
        timeout=float(app.config["WEBHOOK_TIMEOUT_SECONDS"]),
        allow_loopback=bool(app.config["WEBHOOK_ALLOW_HTTP_LOCALHOST"]),
    )
    outcome = record_attempt(
        session, claim, status_code=status_code, error=error, now=now or utcnow()
    )
    db.commit()
    if outcome != "delivered":
        log.info("webhook delivery %s attempt %s: %s", delivery_id, claim.attempt, error)
    return outcome


def _headers(claim: Claim, timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_ID_HEADER: claim.event_id,
        "X-Reviewapp-Event-Type": claim.event_type,
        SIGNATURE_HEADER: sign(claim.secret, claim.body, timestamp),
    }


@run_in_app_context
def deliver_webhook(delivery_id: int) -> str | None:
    """RQ / inline job: one attempt at delivery ``delivery_id`` (see :func:`attempt_delivery`)."""
    return attempt_delivery(delivery_id)


@run_in_app_context
def dispatch_due_deliveries(limit: int = 500, now: dt.datetime | None = None) -> int:
    """Send every due ``pending`` delivery: enqueue one job each with Redis, else attempt them
    inline one after another. Returns how many were handed on.

    Run it every minute (``flask webhooks sweep``): retries and deliveries whose enqueue failed
    (Redis down at commit) are found here. A duplicate job is harmless (the claim is
    conditional).

    Raises:
        redis.exceptions.ConnectionError: REDIS_URL is set but Redis cannot be reached (rows stay
        pending for the next run).
    """
    from reviewapp.extensions import db
    from reviewapp.jobs import rq_queue

    app = job_app()
    ids = due_delivery_ids(db.session, now=now or utcnow(), limit=limit)
    db.commit()
    for delivery_id in ids:
        if app.config.get("REDIS_URL"):
            rq_queue(app=app).enqueue(
                deliver_webhook,
                delivery_id,
                job_timeout=int(app.config["WEBHOOK_SENDING_LEASE_SECONDS"]),
                result_ttl=3600,
            )
        else:
            try:
                attempt_delivery(delivery_id, now=now)
            except Exception:  # noqa: BLE001 - keep going; the sweeper recovers that row
                log.exception("webhook delivery %s failed unexpectedly", delivery_id)
                db.rollback()
    return len(ids)
