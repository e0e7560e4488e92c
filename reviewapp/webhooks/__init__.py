"""Webhooks: developer organizations register HTTPS endpoints; every event about their
applications is POSTed as signed JSON, retried with backoff for 24 h, and logged.

Kept import-light: :func:`reviewapp.audit.services.add_outbox_event` imports the services module.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the developer pages (blueprint ``webhooks`` at ``/webhooks``) and the
    ``flask webhooks dispatch|sweep`` commands on ``app``. No database I/O; safe to call twice."""
    from reviewapp.webhooks.cli import webhooks_cli
    from reviewapp.webhooks.views import bp

    if bp.name not in app.blueprints:
        app.register_blueprint(bp)
    if webhooks_cli.name not in app.cli.commands:
        app.cli.add_command(webhooks_cli)
