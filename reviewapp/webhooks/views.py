"""Developer pages: the organization's webhook endpoints, their secrets and delivery logs.

Only developers of the owning organization reach an endpoint; any other id answers 404, the
same as an id that does not exist.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, make_response, redirect, render_template, url_for
from flask_login import current_user

from reviewapp.auth.models import Permission
from reviewapp.extensions import db
from reviewapp.web import act, consume_form_once, page_arg, permission_required, save_form
from reviewapp.webhooks.forms import EndpointForm
from reviewapp.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from reviewapp.webhooks.services import (
    ALL_EVENTS,
    EVENT_TYPES,
    SIGNATURE_HEADER,
    activate_endpoint,
    create_endpoint,
    deactivate_endpoint,
    delete_endpoint,
    get_delivery,
    get_endpoint,
    list_deliveries,
    list_endpoints,
    recent_deliveries,
    redeliver,
    rotate_secret,
)

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

PER_PAGE = 50


@bp.app_template_global("webhook_event_label")
def webhook_event_label(kind: str) -> str:
    """How a subscribed kind reads on the pages."""
    return "all events" if kind == ALL_EVENTS else kind


@bp.route("")
@permission_required(Permission.submit_applications)
def index() -> Any:
    """The organization's endpoints with their newest deliveries."""
    endpoints = list_endpoints(db.session, current_user)
    recent = recent_deliveries(db.session, [e.id for e in endpoints])
    return render_template("webhooks/index.html", endpoints=endpoints, recent=recent)


@bp.route("/new", methods=["GET", "POST"])
@permission_required(Permission.submit_applications)
def new() -> Any:
    """Register an endpoint; the response shows its signing secret, once."""
    form = EndpointForm()
    if form.validate_on_submit() and not consume_form_once("webhook-endpoint"):
        flash(
            "That form was already sent (the page was reloaded): no second endpoint was created.",
            "warning",
        )
        return redirect(url_for(".index"), 303)
    created = save_form(
        form,
        lambda: create_endpoint(
            db.session,
            current_user,
            url=form.url.data or "",
            event_types=list(form.event_types.data or []),
        ),
    )
    if created is not None:
        endpoint, secret = created
        return _secret_page(endpoint, secret, created=True)
    return render_template("webhooks/new.html", form=form, event_types=EVENT_TYPES)


@bp.route("/<int:endpoint_id>")
@permission_required(Permission.submit_applications)
def endpoint(endpoint_id: int) -> Any:
    """The endpoint's settings and delivery log (newest first, paged)."""
    found = get_endpoint(db.session, current_user, endpoint_id)
    page = page_arg()
    items, total = list_deliveries(db.session, found, page=page, per_page=PER_PAGE)
    return render_template(
        "webhooks/endpoint.html",
        endpoint=found,
        deliveries=items,
        total=total,
        page=page,
        per_page=PER_PAGE,
        signature_header=SIGNATURE_HEADER,
    )


@bp.route("/<int:endpoint_id>/rotate", methods=["POST"])
@permission_required(Permission.submit_applications)
def rotate(endpoint_id: int) -> Any:
    """Replace the signing secret and show the new one, once."""
    from reviewapp.applications.forms import ConfirmForm

    found = get_endpoint(db.session, current_user, endpoint_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if not consume_form_once("webhook-rotate"):
        flash(
            "That form was already sent (the page was reloaded): the secret was not rotated again.",
            "warning",
        )
        return redirect(url_for(".endpoint", endpoint_id=found.id), 303)
    secret = rotate_secret(db.session, current_user, found)
    db.commit()
    return _secret_page(found, secret, created=False)


@bp.route("/<int:endpoint_id>/deactivate", methods=["POST"])
@permission_required(Permission.submit_applications)
def deactivate(endpoint_id: int) -> Any:
    """Stop sending events to the endpoint (pending deliveries are marked failed)."""
    found = get_endpoint(db.session, current_user, endpoint_id)
    act(
        lambda: deactivate_endpoint(db.session, current_user, found),
        lambda ended: (
            "Endpoint deactivated: no events are sent to it."
            + (f" {ended} pending deliveries were marked failed." if ended else "")
        ),
    )
    return redirect(url_for(".endpoint", endpoint_id=endpoint_id))


@bp.route("/<int:endpoint_id>/activate", methods=["POST"])
@permission_required(Permission.submit_applications)
def activate(endpoint_id: int) -> Any:
    """Send new events to the endpoint again."""
    found = get_endpoint(db.session, current_user, endpoint_id)
    act(
        lambda: activate_endpoint(db.session, current_user, found),
        "Endpoint active: new events are sent to it.",
    )
    return redirect(url_for(".endpoint", endpoint_id=endpoint_id))


@bp.route("/<int:endpoint_id>/delete", methods=["POST"])
@permission_required(Permission.submit_applications)
def delete(endpoint_id: int) -> Any:
    """Delete the endpoint and its delivery log."""
    found = get_endpoint(db.session, current_user, endpoint_id)
    url = found.url
    if act(lambda: delete_endpoint(db.session, current_user, found), f"Endpoint {url} deleted."):
        return redirect(url_for(".index"))
    return redirect(url_for(".endpoint", endpoint_id=endpoint_id))


@bp.route("/deliveries/<int:delivery_id>/redeliver", methods=["POST"])
@permission_required(Permission.submit_applications)
def redeliver_delivery(delivery_id: int) -> Any:
    """Send a delivery again (same event id; the attempt count continues)."""
    delivery = get_delivery(db.session, current_user, delivery_id)
    endpoint_id = delivery.endpoint_id
    attempts_before = delivery.attempts
    act(
        lambda: redeliver(db.session, current_user, delivery),
        lambda d: _redeliver_message(d, attempts_before),
    )
    return redirect(url_for(".endpoint", endpoint_id=endpoint_id))


def _redeliver_message(delivery: WebhookDelivery, attempts_before: int) -> str:
    """Said after the commit: without Redis the attempt has already run inline by then."""
    db.session.refresh(delivery)
    if delivery.attempts == attempts_before:
        return f"{delivery.event_id} queued for redelivery; reload this page to see the result."
    if delivery.status == DeliveryStatus.delivered:
        return f"{delivery.event_id} redelivered: HTTP {delivery.last_status_code}."
    if delivery.status == DeliveryStatus.failed:
        return f"{delivery.event_id} was sent again and failed: {delivery.last_error}"
    return (
        f"{delivery.event_id} was sent again and failed ({delivery.last_error}); "
        "it will be retried."
    )


def _secret_page(endpoint: WebhookEndpoint, secret: str, *, created: bool) -> Any:
    """The only page that shows a secret; never cached, never put in the session or a flash."""
    if created:
        flash("Endpoint registered. Copy the signing secret now: it is not shown again.", "success")
    else:
        flash("New signing secret made. Copy it now: it is not shown again.", "success")
    response = make_response(
        render_template(
            "webhooks/secret.html",
            endpoint=endpoint,
            secret=secret,
            created=created,
            signature_header=SIGNATURE_HEADER,
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response
