"""reviewapp: the review queue for go-live applications of AI use cases.

:func:`create_app` assembles the application as a list of named steps; it does no database I/O.
"""

from __future__ import annotations

import importlib.util
import logging
import secrets
import uuid
from pathlib import Path
from typing import Any

from flask import Flask, g, request

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "config"
TEMPLATE_DIR = ROOT / "templates"

log = logging.getLogger(__name__)


def create_app(config: str | None = None, **overrides: Any) -> Flask:
    """Build the Flask app.

    Args:
        config: settings class name from ``config/settings.py`` (default, development, testing,
            production); default: ``REVIEWAPP_CONFIG`` or "default".
        overrides: config keys applied last (tests use them).
    """
    app = Flask(__name__, template_folder=str(TEMPLATE_DIR), instance_path=str(ROOT / "instance"))
    configure_settings(app, config, overrides)
    configure_proxy(app)
    configure_request_bodies(app)
    configure_extensions(app)
    configure_request_ids(app)
    configure_logging(app)
    configure_templates(app)
    configure_blueprints(app)
    configure_rate_limits(app)
    configure_errors(app)
    configure_cli(app)
    return app


def _load_settings_module() -> Any:
    spec = importlib.util.spec_from_file_location("reviewapp_settings", CONFIG_DIR / "settings.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def configure_settings(app: Flask, config: str | None, overrides: dict[str, Any]) -> None:
    """Settings class, then REVIEWAPP_* environment variables, then ``overrides``."""
    import os

    settings = _load_settings_module()
    name = config or os.environ.get("REVIEWAPP_CONFIG", "default")
    if name not in settings.CONFIGS:
        raise ValueError(f"unknown config {name!r}; choose one of {', '.join(settings.CONFIGS)}")
    app.config.from_object(settings.CONFIGS[name])
    app.config.from_prefixed_env("REVIEWAPP")
    app.config.update(overrides)
    if not app.config.get("DATABASE_URL"):
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
        app.config["DATABASE_URL"] = f"sqlite:///{Path(app.instance_path) / 'reviewapp.sqlite3'}"
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret(app)
    if not app.config.get("SEED_DIR"):
        app.config["SEED_DIR"] = str(CONFIG_DIR)


def _instance_secret(app: Flask) -> str:
    """A random secret kept in ``instance/secret_key`` so sessions survive restarts locally.

    Production must set REVIEWAPP_SECRET_KEY; this only serves the embedded default.
    """
    if app.config.get("FORCE_HTTPS"):
        raise RuntimeError("REVIEWAPP_SECRET_KEY must be set in production")
    path = Path(app.instance_path) / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def configure_proxy(app: Flask) -> None:
    """Behind ``TRUSTED_PROXIES`` reverse proxies (load balancer, nginx), take the client address,
    scheme, host and port from their X-Forwarded-* headers (werkzeug's ProxyFix trusts exactly
    that many hops; with 0 the headers are ignored, as a client could forge them)."""
    hops = int(app.config.get("TRUSTED_PROXIES") or 0)
    if hops < 0:
        raise ValueError("TRUSTED_PROXIES must be 0 or a positive number of proxies")
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops
        )


def configure_request_bodies(app: Flask) -> None:
    """Refuse any request body over ``MAX_CONTENT_LENGTH`` with 413, chunked ones included
    (:class:`reviewapp.web.BodyLimitedRequest`)."""
    from reviewapp.web import BodyLimitedRequest

    app.request_class = BodyLimitedRequest


def configure_extensions(app: Flask) -> None:
    """Bind the unbound extensions of reviewapp.extensions."""
    from flask_talisman import Talisman

    from reviewapp.extensions import bootstrap, csrf, db, login_manager

    db.init_app(app)
    csrf.init_app(app)
    bootstrap.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to see this page."
    login_manager.login_message_category = "info"
    login_manager.session_protection = app.config["SESSION_PROTECTION"]
    # one Talisman per app: it keeps its options on the instance, so a shared one would carry
    # the last app's settings (production's force_https) into every other app in the process
    app.extensions["talisman"] = Talisman(
        app,
        force_https=app.config["FORCE_HTTPS"],
        session_cookie_secure=app.config["SESSION_COOKIE_SECURE"],
        content_security_policy={
            "default-src": "'self'",
            "img-src": "'self' data:",
            "style-src": "'self'",
            "script-src": "'self'",
            "object-src": "'none'",
            "base-uri": "'self'",
            "form-action": "'self'",
            "frame-ancestors": "'none'",
        },
        frame_options="DENY",
        referrer_policy="same-origin",
    )
    from reviewapp.auth import views as _auth_views  # noqa: F401  (registers the user loader)
    from reviewapp.jobs import init_jobs

    init_jobs(app)


def configure_request_ids(app: Flask) -> None:
    """Give every request an id (from X-Request-ID when sane), echoed in the response."""

    def _assign_request_id() -> None:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = (
            incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
        )

    # first of all before-request hooks, so requests refused by an earlier one (CSRF, the HTTPS
    # redirect, rate limits) still carry and echo their id
    app.before_request_funcs.setdefault(None, []).insert(0, _assign_request_id)

    @app.after_request
    def _echo_request_id(response: Any) -> Any:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        return response


def configure_logging(app: Flask) -> None:
    """JSON log lines when LOG_FORMAT is "json", and one log line per request (reviewapp.logs)."""
    from reviewapp.logs import configure_logging as _configure

    _configure(app)


def configure_templates(app: Flask) -> None:
    """Template globals and filters shared by every page."""
    from reviewapp import web

    web.init_templates(app)


def configure_blueprints(app: Flask) -> None:
    """Register the browser areas and the JSON API."""
    from reviewapp.admin.tiers import bp as admin_tiers_bp
    from reviewapp.admin.users import bp as admin_users_bp
    from reviewapp.admin.views import bp as admin_bp
    from reviewapp.api.openapi import bp as api_docs_bp
    from reviewapp.api.views import bp as api_bp
    from reviewapp.applications.views import bp as applications_bp
    from reviewapp.auth.tokens import bp as tokens_bp
    from reviewapp.auth.views import bp as auth_bp
    from reviewapp.metrics.views import bp as metrics_bp
    from reviewapp.policies.admin import bp as policy_admin_bp
    from reviewapp.policies.clarifications import bp as clarifications_bp
    from reviewapp.policies.editor import bp as policy_editor_bp
    from reviewapp.policies.views import bp as policies_bp
    from reviewapp.review.views import bp as review_bp
    from reviewapp.triage.views import bp as rules_bp
    from reviewapp.web import bp as web_bp

    for blueprint in (
        web_bp,
        auth_bp,
        tokens_bp,
        applications_bp,
        review_bp,
        policies_bp,
        admin_bp,
        admin_users_bp,
        metrics_bp,
        admin_tiers_bp,
        policy_admin_bp,
        policy_editor_bp,
        clarifications_bp,
        rules_bp,
        api_bp,
        api_docs_bp,
    ):
        app.register_blueprint(blueprint)
    from reviewapp.health import init_health
    from reviewapp.webhooks import init_app as init_webhooks

    init_health(app)  # /healthz and /readyz

    init_webhooks(app)  # blueprint "webhooks" and `flask webhooks dispatch|sweep`


def configure_rate_limits(app: Flask) -> None:
    """Rate limits on the API and on log-in (after the blueprints: it wraps the log-in view)."""
    from reviewapp.health import bp as health_bp
    from reviewapp.ratelimit import init_rate_limits

    init_rate_limits(app).exempt(health_bp)  # probes come every few seconds from every balancer


def configure_errors(app: Flask) -> None:
    """HTML error pages for the browser and JSON errors under /api/."""
    from reviewapp import web

    web.init_errors(app)


def configure_cli(app: Flask) -> None:
    """Register the ``flask`` commands."""
    from reviewapp.cli import register_cli

    register_cli(app)
