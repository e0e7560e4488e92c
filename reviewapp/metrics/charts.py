"""The dashboard's charts: which query feeds each one, its CSV columns and its SVG rendering.

Charts are drawn server-side by pygal as SVG with every value printed on the chart, titles and
axis labels, so they read without hovering. The page embeds them as ``<img>`` with a
``data:image/svg+xml`` URI: the Content-Security-Policy allows ``img-src data:``, and an SVG
shown as an image runs no script and keeps its own styles (inline ``<style>`` in the page itself
would be blocked by ``style-src 'self'``).
"""

from __future__ import annotations

import base64
import datetime as dt
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pygal
from pygal.etree import etree
from pygal.style import DefaultStyle
from sqlalchemy.orm import Session

from reviewapp.metrics import queries
from reviewapp.metrics.queries import Period, Row

# pygal appends a legacy sys.meta_path finder (for its map plugins, unused here) that lacks
# find_spec, so every later import that reaches it emits an ImportWarning; take it out again
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "PluginImportFixer"]

Fetch = Callable[[Session, Period, str | None, dt.datetime], list[Row]]
Render = Callable[[list[Row], str], Any]

#: series colours: a neutral blue first (pygal's default palette starts with red, which read as
#: "bad" on every single-series chart), then Bootstrap's other theme colours
PALETTE = ("#0d6efd", "#6f42c1", "#fd7e14", "#20c997", "#6c757d", "#d63384", "#0dcaf0")
#: the colours of the tier badges on every page (review.views.tier_badge: success, info,
#: warning, danger), so a tier has one colour everywhere
TIER_COLOURS = {"low": "#198754", "medium": "#0dcaf0", "high": "#ffc107", "prohibited": "#dc3545"}
OTHER_TIER_COLOUR = "#6c757d"
_STYLE_SETTINGS: dict[str, Any] = {
    "value_font_size": 13,
    "label_font_size": 12,
    "major_label_font_size": 12,
    "title_font_size": 16,
    "legend_font_size": 12,
    "font_family": "system-ui, sans-serif",
    "background": "#ffffff",
    "plot_background": "#ffffff",
}
STYLE = DefaultStyle(colors=PALETTE, **_STYLE_SETTINGS)


def tier_colour(tier: Any) -> str:
    """The colour of risk tier ``tier`` (its badge colour; grey for a tier added by an admin)."""
    return TIER_COLOURS.get(str(tier), OTHER_TIER_COLOUR)


@dataclass(frozen=True)
class Chart:
    """One chart: ``key`` names its CSV (``<key>.csv``); ``columns`` are the row keys in CSV
    order; ``fetch`` runs the query; ``draw`` returns a configured pygal chart."""

    key: str
    title: str
    description: str
    columns: tuple[str, ...]
    fetch: Fetch
    draw: Render

    def rows(
        self, session: Session, period: Period, tier: str | None, now: dt.datetime
    ) -> list[Row]:
        """The chart's rows (plain dicts keyed by ``columns``)."""
        return self.fetch(session, period, tier, now)

    def svg_data_uri(self, rows: list[Row]) -> str:
        """The chart as a ``data:image/svg+xml;base64,...`` URI."""
        svg = _svg_without_scripts(self.draw(rows, self.title))
        return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode("ascii")


def _svg_without_scripts(chart: Any) -> str:
    """Render ``chart`` as SVG text without pygal's configuration ``<script>``: an image never
    runs it, and the charts are meant to read without interaction."""
    tree = chart.render_tree()
    for parent in list(tree.iter()):
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.rpartition("}")[2] == "script":
                parent.remove(child)
    return str(etree.tostring(tree, encoding="unicode"))


LABEL_CHARS = 40  # longest axis label drawn; longer ones end in "…"


def _config(chart_class: Any, title: str, x_title: str, y_title: str, **extra: Any) -> Any:
    """A pygal chart with values printed on it. pygal puts ``x_title`` under the bottom axis
    and ``y_title`` beside the left one, also for horizontal charts (values at the bottom)."""
    return chart_class(
        title=title,
        x_title=x_title,
        y_title=y_title,
        style=STYLE,
        print_values=True,
        print_zeroes=False,
        js=[],  # no script: the chart must read without hovering
        width=900,
        height=420,
        legend_at_bottom=True,
        # labels are user text (reviewer names, section titles up to 300 characters): an
        # untruncated long one widens the margin past the chart width and pygal's title
        # splitter then loops forever, eating memory; the value table shows them in full
        truncate_label=LABEL_CHARS,
        truncate_legend=-1,
        no_data_text="No data for these filters",
        **extra,
    )


def _label(value: Any) -> str:
    """An axis label cut to LABEL_CHARS: pygal's own truncation does not cover every margin
    computation (a 200-character reviewer name made a horizontal chart loop forever)."""
    text = str(value)
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}%"


def _pct(share: float | None) -> float | None:
    return None if share is None else round(share * 100, 1)


def _draw_intake(rows: list[Row], title: str) -> Any:
    days = sorted({r["day"] for r in rows})
    chart = _config(
        pygal.StackedBar,
        title,
        "Day (UTC)",
        "Applications submitted",
        x_label_rotation=45,
        show_minor_x_labels=len(days) <= 31,
    )
    chart.x_labels = [d.isoformat() for d in days]
    if len(days) > 31:
        chart.x_labels_major = [d.isoformat() for d in days[:: max(1, len(days) // 15)]]
    tiers = list(dict.fromkeys(r["tier"] for r in rows))
    chart.config.style = DefaultStyle(
        colors=tuple(tier_colour(t) for t in tiers) or PALETTE, **_STYLE_SETTINGS
    )
    for tier in tiers:
        by_day = {r["day"]: r["applications"] for r in rows if r["tier"] == tier}
        chart.add(tier, [by_day.get(d, 0) or None for d in days])
    return chart


def _rate_bar(label_key: str, share_key: str, x_title: str, y_title: str) -> Render:
    def draw(rows: list[Row], title: str) -> Any:
        chart = _config(
            pygal.Bar,
            title,
            x_title,
            y_title,
            range=(0, 100),
            formatter=_percent,
            show_legend=False,
        )
        chart.x_labels = [_label(r[label_key]) for r in rows]
        values: list[Any] = [_pct(r[share_key]) for r in rows]
        if label_key == "tier":  # each tier's bar in its badge colour
            values = [
                {"value": v, "color": tier_colour(r["tier"])} if v is not None else None
                for v, r in zip(values, rows, strict=True)
            ]
        chart.add(y_title, values)
        return chart

    return draw


def _draw_time_to_decision(rows: list[Row], title: str) -> Any:
    chart = _config(
        pygal.Bar, title, "Risk tier", "Hours from submission", formatter=lambda v: f"{v:g} h"
    )
    chart.x_labels = [r["tier"] for r in rows]
    chart.add("median", [r["median_hours"] for r in rows])
    chart.add("p90", [r["p90_hours"] for r in rows])
    return chart


def _draw_decision_mix(rows: list[Row], title: str) -> Any:
    chart = _config(pygal.StackedBar, title, "Outcome", "Final decisions")
    chart.x_labels = [r["outcome"].replace("_", " ") for r in rows]
    chart.add("by a person", [r["human"] or None for r in rows])
    chart.add("automatic", [r["automatic"] or None for r in rows])
    return chart


def _draw_feedback(rows: list[Row], title: str) -> Any:
    chart = _config(pygal.HorizontalStackedBar, title, "Feedback entries", "Policy section")
    chart.x_labels = [_label(r["section"]) for r in rows]
    chart.add("edge case", [r["edge_case"] or None for r in rows])
    chart.add("unclear", [r["unclear"] or None for r in rows])
    return chart


def _draw_overturns(rows: list[Row], title: str) -> Any:
    chart = _config(
        pygal.HorizontalBar,
        title,
        "Appeals overturned (%)",
        "Policy section",
        range=(0, 100),
        show_legend=False,
    )
    chart.x_labels = [f"{_label(r['section'])} ({r['overturned']}/{r['appeals']})" for r in rows]
    chart.add("overturned", [_pct(r["overturn_rate"]) for r in rows], formatter=_percent)
    return chart


def _horizontal(label_key: str, value_key: str, label_title: str, value_title: str) -> Render:
    def draw(rows: list[Row], title: str) -> Any:
        chart = _config(pygal.HorizontalBar, title, value_title, label_title, show_legend=False)
        chart.x_labels = [_label(r[label_key]) for r in rows]
        chart.add(value_title, [r[value_key] for r in rows])
        return chart

    return draw


def _vertical(label_key: str, value_key: str, label_title: str, value_title: str) -> Render:
    def draw(rows: list[Row], title: str) -> Any:
        chart = _config(pygal.Bar, title, label_title, value_title, show_legend=False)
        chart.x_labels = [_label(r[label_key]) for r in rows]
        chart.add(value_title, [r[value_key] for r in rows])
        return chart

    return draw


def _period_query(function: Callable[[Session, Period, str | None], list[Row]]) -> Fetch:
    return lambda session, period, tier, now: function(session, period, tier)


def _snapshot_query(function: Callable[[Session, dt.datetime, str | None], list[Row]]) -> Fetch:
    return lambda session, period, tier, now: function(session, now, tier)


CHARTS: dict[str, Chart] = {
    c.key: c
    for c in (
        Chart(
            "intake",
            "Intake per day by tier",
            "Applications submitted each UTC day, stacked by risk tier.",
            ("day", "tier", "applications"),
            _period_query(queries.intake_per_day),
            _draw_intake,
        ),
        Chart(
            "queue-depth",
            "Queue depth now",
            "Applications open for review (queued, in review, awaiting second approval, "
            "appealed) per queue, now; the date range does not apply.",
            ("queue", "applications", "oldest_hours"),
            _snapshot_query(queries.queue_depth),
            _vertical("queue", "applications", "Queue", "Open applications"),
        ),
        Chart(
            "queue-age",
            "Age of open applications",
            "How long open applications have waited since entering the queue, now.",
            ("age", "applications"),
            _snapshot_query(queries.queue_age),
            _vertical("age", "applications", "Time since queued", "Open applications"),
        ),
        Chart(
            "sla",
            "SLA attainment per tier",
            "Share of applications decided in the range that used no more business time than "
            "their tier's SLA target (the business hours counted while the clock ran: waiting "
            "for the developer does not count).",
            ("tier", "decided", "attained", "attainment"),
            _period_query(queries.sla_attainment),
            _rate_bar("tier", "attainment", "Risk tier", "Within SLA (%)"),
        ),
        Chart(
            "time-to-decision",
            "Time to decision per tier",
            "Calendar hours from a revision's submission to its final decision (appeal "
            "resolutions excluded): median and 90th percentile (nearest rank).",
            ("tier", "decisions", "median_hours", "p90_hours"),
            _period_query(queries.time_to_decision),
            _draw_time_to_decision,
        ),
        Chart(
            "decision-mix",
            "Decision mix",
            "Final decisions in the range by outcome, by a person or automatic (fast track).",
            ("outcome", "human", "automatic", "total", "share"),
            _period_query(queries.decision_mix),
            _draw_decision_mix,
        ),
        Chart(
            "throughput",
            "Reviewer throughput",
            "Decisions each person made in the range, including first approvals and appeal "
            "resolutions.",
            ("reviewer", "email", "decisions", "final_decisions"),
            _period_query(queries.reviewer_throughput),
            _horizontal("reviewer", "decisions", "Reviewer", "Decisions"),
        ),
        Chart(
            "qa-agreement",
            "QA sample agreement",
            "Fast-track applications sampled for a person to decide (queue qa-sample), decided "
            "in the range: share the person approved, as the fast track would have.",
            ("tier", "decided", "approved", "agreement"),
            _period_query(queries.qa_agreement),
            _rate_bar("tier", "agreement", "Risk tier", "Approved by the reviewer (%)"),
        ),
        Chart(
            "appeal-overturns",
            "Appeal overturn rate per policy section",
            "Appeals decided in the range, per section the appealed decision cited "
            "(overturned / appeals).",
            ("section_key", "section", "appeals", "overturned", "overturn_rate"),
            _period_query(queries.appeal_overturns),
            _draw_overturns,
        ),
        Chart(
            "citations",
            "Most cited policy sections",
            "Citations in final decisions made in the range (top 15).",
            ("section_key", "section", "citations"),
            _period_query(queries.cited_sections),
            _horizontal("section", "citations", "Policy section", "Citations"),
        ),
        Chart(
            "policy-feedback",
            "Policy feedback per section",
            "Reviewers' flags on policy sections in the range, by kind.",
            ("section_key", "section", "edge_case", "unclear", "total"),
            _period_query(queries.policy_feedback),
            _draw_feedback,
        ),
    )
}
