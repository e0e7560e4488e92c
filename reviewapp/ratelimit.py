"""Rate limits on the JSON API (per token and per client address) and on log-in and password
change (per client address and per account), with Flask-Limiter.

Where the counts live: ``RATELIMIT_STORAGE_URI`` when set, else ``REDIS_URL`` (production and
CI: every web process shares one count), else process memory (the embedded default, one process).
The limits are config keys read on every request (``RATELIMIT_API``, ``RATELIMIT_API_IP``,
``RATELIMIT_LOGIN``, ``RATELIMIT_LOGIN_ACCOUNT``, see ``config/settings.py``), so a test may change
them on a running app. ``RATELIMIT_ENABLED = False`` turns every limit off.

A request over a limit gets 429 with a ``Retry-After`` header (whole seconds): the API's JSON error
``{"error": {"code": "rate_limited", "message", "fields": {}}}`` under /api/, the HTML error page
elsewhere, whose message says when to try again.

The client address is ``request.remote_addr``. Behind a reverse proxy the app must be wrapped in
``werkzeug.middleware.proxy_fix.ProxyFix`` (trusting exactly the proxies in front of it), or every
client shares the proxy's address and its limits.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from collections.abc import Callable
from typing import Any, cast

from flask import Flask, Response, current_app, make_response, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_login import current_user
from werkzeug.local import LocalProxy

log = logging.getLogger(__name__)

EXTENSION_KEY = "reviewapp_limiter"
LOGIN_ENDPOINT = "auth.login"
RESET_ENDPOINT = "auth.password_reset_request"
REGISTER_ENDPOINT = "auth.register"
PASSWORD_CHANGE_ENDPOINT = "auth.account_password"  # noqa: S105 - an endpoint name  # nosec B105
# ``Authorization: Bearer ra_<prefix>_<secret>``; the prefix is the token's public id (hex)
_BEARER_TOKEN = re.compile(r"Bearer ra_([0-9a-f]{1,16})_")
# Redis client options: a slow or absent Redis must not hang requests (seconds)
_REDIS_OPTIONS: dict[str, str | int] = {"socket_connect_timeout": 2, "socket_timeout": 2}


def current_limiter() -> Limiter:
    """The current app's limiter (see :func:`init_rate_limits`).

    Raises:
        KeyError: the app was built without :func:`init_rate_limits`.
    """
    return cast(Limiter, current_app.extensions[EXTENSION_KEY])


# Flask-Limiter keeps its storage on the Limiter object, not per app, so each app gets its own
# Limiter (several apps coexist in tests and workers); ``limiter`` is the current app's one, e.g.
# ``limiter.reset()`` inside an app context clears its counts.
limiter: Limiter = cast(Limiter, LocalProxy(current_limiter))


def client_ip() -> str:
    """The client address, the key of the per-address limits (``"unknown"`` when absent)."""
    return request.remote_addr or "unknown"


def api_client_key() -> str:
    """Key of the per-token API limit: ``token:<prefix>`` when the request carries a
    ``Bearer ra_<prefix>_…`` token (valid or not: a guessed prefix is counted too; the
    per-address limit bounds anyone who rotates them), else ``ip:<client address>``."""
    match = _BEARER_TOKEN.match(request.headers.get("Authorization", ""))
    return f"token:{match.group(1)}" if match else f"ip:{client_ip()}"


def login_account_key() -> str:
    """Key of the per-account log-in limit: a SHA-256 digest (32 hex digits) of the submitted
    email, lower-cased and trimmed as log-in compares it, so the counter store holds no address."""
    email = request.form.get("email", "").strip().lower()
    return "account:" + hashlib.sha256(email.encode()).hexdigest()[:32]


def signed_in_account_key() -> str:
    """Key of the per-account limit on a signed-in user's password change: ``user:<id>``
    (``user:anonymous`` before log-in, which the view refuses anyway)."""
    user_id = current_user.get_id() if current_user.is_authenticated else None
    return f"user:{str(user_id).split(':', 1)[0]}" if user_id else "user:anonymous"


def _signed_in() -> bool:
    # a signed-in user's POST /login is only redirected: it checks no password
    return bool(current_user.is_authenticated)


def _signed_in_or_no_email() -> bool:
    return _signed_in() or not request.form.get("email", "").strip()


def _api_client_message() -> str:
    if _BEARER_TOKEN.match(request.headers.get("Authorization", "")):
        return "Too many API requests with this token."
    return "Too many API requests from your address."


def _setting(key: str) -> Callable[[], str]:
    """A limit read from the current app's config on every request."""
    return lambda: str(current_app.config[key])


def storage_uri(app: Flask) -> str:
    """Where ``app`` counts requests: RATELIMIT_STORAGE_URI, else REDIS_URL, else ``memory://``."""
    return str(
        app.config.get("RATELIMIT_STORAGE_URI") or app.config.get("REDIS_URL") or "memory://"
    )


def init_rate_limits(app: Flask) -> Limiter:
    """Give ``app`` its limiter, limit the ``api`` blueprint and the ``auth.login`` view, and
    answer 429 with ``Retry-After``. Opens no connection (Redis is first used by a request).

    Call it after the blueprints are registered (it wraps the registered log-in view).

    Limits (config keys, Flask-Limiter strings):
        RATELIMIT_API: every /api/v1 request, per token (per address without a token).
        RATELIMIT_API_IP: every /api/v1 request, per client address.
        RATELIMIT_LOGIN: POST /login, per client address (right or wrong password alike).
        RATELIMIT_LOGIN_ACCOUNT: POST /login, per submitted email, from any address.
        RATELIMIT_LOGIN, RATELIMIT_PASSWORD_RESET_ACCOUNT: POST /password-reset, per address
            and per submitted email.
        RATELIMIT_REGISTER: POST /register, per client address.
        RATELIMIT_LOGIN, RATELIMIT_LOGIN_ACCOUNT: POST /account/password (it checks the
            current password, so it could be used to guess it from an open session), per
            address and per signed-in account.

    Returns:
        the app's :class:`~flask_limiter.Limiter` (also ``app.extensions["reviewapp_limiter"]``).

    Raises:
        RuntimeError: the ``auth`` blueprint is not registered yet.
    """
    from reviewapp.api.views import bp as api_bp

    if LOGIN_ENDPOINT not in app.view_functions:
        raise RuntimeError("init_rate_limits(app) must run after the blueprints are registered")

    uri = storage_uri(app)
    in_redis = not uri.startswith("memory://")
    if not in_redis and app.config.get("FORCE_HTTPS"):
        log.warning("rate limits are counted in process memory; set REDIS_URL in production")
    prefix = str(app.config["RATELIMIT_KEY_PREFIX"])
    app_limiter = Limiter(
        key_func=client_ip,
        storage_uri=uri,
        # the storage prefix scopes ``reset()`` to this app's counters in a shared Redis
        storage_options={"key_prefix": prefix, **_REDIS_OPTIONS} if in_redis else {},
        key_prefix=prefix,
        strategy="fixed-window",  # one atomic INCR per limit and request
        headers_enabled=False,  # Retry-After is set on 429 responses only, below
        # Redis down: keep limiting in process memory rather than failing every request
        in_memory_fallback_enabled=in_redis,
        enabled=bool(app.config.get("RATELIMIT_ENABLED", True)),
    )
    app_limiter.init_app(app)
    app.extensions[EXTENSION_KEY] = app_limiter

    # whole-API limits: shared scopes, so one count per key across every /api/v1 route
    app_limiter.shared_limit(
        _setting("RATELIMIT_API"),
        scope="api-client",
        key_func=api_client_key,
        error_message=_api_client_message,
    )(api_bp)
    app_limiter.shared_limit(
        _setting("RATELIMIT_API_IP"),
        scope="api-address",
        key_func=client_ip,
        error_message="Too many API requests from your address.",
    )(api_bp)

    # log-in: per address and per submitted account
    _limit_view(
        app,
        app_limiter,
        LOGIN_ENDPOINT,
        dict(
            limit_value=_setting("RATELIMIT_LOGIN"),
            scope="address",
            key_func=client_ip,
            exempt_when=_signed_in,
            error_message="Too many log-in attempts from your address.",
        ),
        dict(
            limit_value=_setting("RATELIMIT_LOGIN_ACCOUNT"),
            scope="account",
            key_func=login_account_key,
            exempt_when=_signed_in_or_no_email,
            error_message="Too many log-in attempts for this account.",
        ),
    )
    # password-reset requests send email: the same per-address limit as log-in, and a
    # per-account one so nobody floods an inbox with reset links
    _limit_view(
        app,
        app_limiter,
        RESET_ENDPOINT,
        dict(
            limit_value=_setting("RATELIMIT_LOGIN"),
            scope="reset-address",
            key_func=client_ip,
            error_message="Too many password-reset requests from your address.",
        ),
        dict(
            limit_value=_setting("RATELIMIT_PASSWORD_RESET_ACCOUNT"),
            scope="reset-account",
            key_func=login_account_key,
            exempt_when=lambda: not request.form.get("email", "").strip(),
            error_message="Too many password-reset requests for this account.",
        ),
    )
    # sign-up: it tells whether an email already has an account (the person needs to know to
    # log in instead) and creates organizations, so it is limited per address like log-in
    _limit_view(
        app,
        app_limiter,
        REGISTER_ENDPOINT,
        dict(
            limit_value=_setting("RATELIMIT_REGISTER"),
            scope="register-address",
            key_func=client_ip,
            error_message="Too many sign-up attempts from your address.",
        ),
    )
    # changing the password checks the current one: limited like log-in, so a session left
    # open cannot be used to guess the password (and then change it) at speed
    _limit_view(
        app,
        app_limiter,
        PASSWORD_CHANGE_ENDPOINT,
        dict(
            limit_value=_setting("RATELIMIT_LOGIN"),
            scope="password-change-address",
            key_func=client_ip,
            error_message="Too many password-change attempts from your address.",
        ),
        dict(
            limit_value=_setting("RATELIMIT_LOGIN_ACCOUNT"),
            scope="password-change-account",
            key_func=signed_in_account_key,
            exempt_when=lambda: not current_user.is_authenticated,
            error_message="Too many password-change attempts for this account.",
        ),
    )

    app.register_error_handler(RateLimitExceeded, too_many_requests)
    return app_limiter


def _limit_view(app: Flask, app_limiter: Limiter, endpoint: str, *limits: dict[str, Any]) -> None:
    """Wrap ``app``'s registered view ``endpoint`` (this app's copy only) in ``limits``, each
    the keyword arguments of :meth:`Limiter.limit`, applied in order and to POST only; nothing
    when the app has no such view."""
    view: Any = app.view_functions.get(endpoint)
    if view is None:
        return
    for limit in limits:
        view = app_limiter.limit(methods=["POST"], **limit)(view)
    app.view_functions[endpoint] = view


def retry_after_seconds(exc: RateLimitExceeded) -> int:
    """Whole seconds (at least 1) until the breached limit's window resets; the limit's full
    window when the counter store cannot say (e.g. it just became unreachable)."""
    try:
        breached = current_limiter().current_limit
        if breached is not None and breached.breached:
            # window[0]: when the window resets (epoch seconds, float; ``reset_at`` rounds up)
            return max(1, math.ceil(breached.window[0] - time.time()))
    except Exception:  # noqa: BLE001  (never turn a 429 into a 500)
        log.warning("could not read the rate-limit window", exc_info=True)
    return max(1, int(exc.limit.limit.get_expiry()))


def wait_text(seconds: int) -> str:
    """``"12 seconds"``, ``"1 second"``, or whole minutes (rounded up) from 2 minutes on."""
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{math.ceil(seconds / 60)} minutes"


def too_many_requests(exc: RateLimitExceeded) -> Response:
    """429 for a breached limit: JSON under /api/, the HTML error page elsewhere, both saying
    when to retry, with ``Retry-After: <seconds>``."""
    from reviewapp.web import error_response

    seconds = retry_after_seconds(exc)
    message = f"{exc.description} Try again in {wait_text(seconds)}."
    response: Any = make_response(error_response(429, "rate_limited", message))
    response.headers["Retry-After"] = str(seconds)
    return cast(Response, response)
