"""Metrics dashboard for admins: charts with date range and tier filters, each chart as CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, abort, render_template, request
from flask_wtf import FlaskForm
from wtforms import DateField, SelectField
from wtforms.validators import Optional

from reviewapp.applications.forms import choices
from reviewapp.auth.models import Permission
from reviewapp.db import utcnow
from reviewapp.extensions import db
from reviewapp.metrics.charts import CHARTS
from reviewapp.metrics.queries import Period
from reviewapp.review.services import tier_labels
from reviewapp.web import permission_required

bp = Blueprint("metrics", __name__, url_prefix="/admin/metrics")

DEFAULT_DAYS = 30
MAX_DAYS = 366
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class MetricsFilterForm(FlaskForm):
    """GET filters of the dashboard (no CSRF: they change nothing)."""

    class Meta:
        csrf = False

    start = DateField("From (UTC date)", name="from", validators=[Optional()])
    end = DateField("To (UTC date, inclusive)", name="to", validators=[Optional()])
    tier = SelectField("Tier", validators=[Optional()])


@dataclass(frozen=True)
class Filters:
    """The filters in force: the period, the tier (None: all) and the form with its errors."""

    period: Period
    tier: str | None
    form: MetricsFilterForm

    @property
    def is_valid(self) -> bool:
        return not any(f.errors for f in self.form)

    def query_args(self) -> dict[str, str]:
        """The filters as query arguments (for the CSV links)."""
        args = {"from": self.period.start.isoformat(), "to": self.period.end.isoformat()}
        if self.tier:
            args["tier"] = self.tier
        return args


#: latest year a filter date may have (date.max is 9999-12-31; periods need the day after)
MAX_YEAR = 9000


def read_filters(today: dt.date) -> Filters:
    """Validate ``from``, ``to`` and ``tier`` from the query string.

    Defaults: the last 30 days up to ``today`` and all tiers. An invalid field gets an error
    message and its default, so the page still shows something sensible.
    """
    form = MetricsFilterForm(formdata=request.args)
    tiers = tier_labels(db.session)
    form.tier.choices = choices([("", "All tiers")] + [(t.name, t.label) for t in tiers.values()])
    form.validate()
    for field in (form.start, form.end):
        if field.data and field.data.year > MAX_YEAR and not field.errors:
            field.errors = [f"Choose a year up to {MAX_YEAR}."]  # the day after must exist
        if field.errors and field.raw_data and field.raw_data[0]:
            field.errors = [
                f"Enter a date as YYYY-MM-DD, e.g. 2026-01-31 (years up to {MAX_YEAR})."
            ]
    end = form.end.data if form.end.data and not form.end.errors else today
    start = form.start.data if form.start.data and not form.start.errors else None
    if start is None:
        start = end - dt.timedelta(days=DEFAULT_DAYS - 1)
    elif start > end:
        form.start.errors = [*form.start.errors, "Choose a start on or before the end date."]
        start = end - dt.timedelta(days=DEFAULT_DAYS - 1)
    elif (end - start).days + 1 > MAX_DAYS:
        form.start.errors = [
            *form.start.errors,
            f"Choose a range of at most {MAX_DAYS} days (this one has {(end - start).days + 1}).",
        ]
        start = end - dt.timedelta(days=MAX_DAYS - 1)
    tier = None if form.tier.errors else (form.tier.data or None)
    if form.tier.errors:
        form.tier.errors = ["Choose one of the listed tiers."]
    form.start.data, form.end.data = start, end
    return Filters(Period(start, end), tier, form)


@bp.route("")
@permission_required(Permission.admin_console)
def dashboard() -> Any:
    """Every chart for the filters, each with its numbers as a table and a CSV link."""
    now = utcnow()
    filters = read_filters(now.date())
    panels = []
    for chart in CHARTS.values():
        rows = chart.rows(db.session, filters.period, filters.tier, now)
        panels.append({"chart": chart, "rows": rows, "image": chart.svg_data_uri(rows)})
    return render_template(
        "metrics/dashboard.html",
        form=filters.form,
        filters=filters,
        panels=panels,
        now=now,
    )


def _cell(value: Any) -> Any:
    """A CSV cell; text that a spreadsheet would run as a formula is prefixed with ``'``."""
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


@bp.route("/<chart>.csv")
@permission_required(Permission.admin_console)
def chart_csv(chart: str) -> Any:
    """One chart's rows as CSV (same filters as the dashboard); 400 on invalid filters."""
    spec = CHARTS.get(chart)
    if spec is None:
        abort(404)
    now = utcnow()
    filters = read_filters(now.date())
    if not filters.is_valid:
        messages = "; ".join(f"{f.name}: {' '.join(f.errors)}" for f in filters.form if f.errors)
        return Response(f"Invalid filters. {messages}\n", status=400, mimetype="text/plain")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(spec.columns)
    for row in spec.rows(db.session, filters.period, filters.tier, now):
        writer.writerow([_cell(row[c]) for c in spec.columns])
    name = f"metrics-{spec.key}-{filters.period.start}-{filters.period.end}"
    if filters.tier:
        name += f"-{filters.tier}"
    return Response(
        buffer.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )
