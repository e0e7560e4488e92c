"""``flask webhooks dispatch`` and ``flask webhooks sweep`` (run the sweep every minute)."""

from __future__ import annotations

import click
from flask.cli import AppGroup

webhooks_cli = AppGroup(
    "webhooks", help="Webhook deliveries: dispatch due ones, recover stuck ones."
)


@webhooks_cli.command("dispatch")
@click.option("--limit", type=click.IntRange(1, 100_000), default=500, show_default=True)
def dispatch(limit: int) -> None:
    """Send (or enqueue, with Redis) every webhook delivery that is due."""
    from reviewapp.webhooks.jobs import dispatch_due_deliveries

    click.echo(f"{dispatch_due_deliveries(limit=limit)} due webhook deliveries handled")


@webhooks_cli.command("sweep")
@click.option(
    "--older-than",
    "older_than",
    type=click.IntRange(0, None),
    default=None,
    help="Seconds a delivery may stay 'sending' before it counts as stuck "
    "(default: WEBHOOK_SENDING_LEASE_SECONDS).",
)
@click.option("--limit", type=click.IntRange(1, 100_000), default=500, show_default=True)
def sweep(older_than: int | None, limit: int) -> None:
    """Recover deliveries whose worker died mid-attempt, then dispatch every due one."""
    from reviewapp.extensions import db
    from reviewapp.webhooks.jobs import dispatch_due_deliveries
    from reviewapp.webhooks.services import recover_stuck_deliveries

    requeued, failed = recover_stuck_deliveries(db.session, older_than_seconds=older_than)
    db.commit()
    handled = dispatch_due_deliveries(limit=limit)
    click.echo(
        f"{requeued} interrupted webhook deliveries requeued, {failed} failed "
        f"(retry window over); {handled} due deliveries handled"
    )
