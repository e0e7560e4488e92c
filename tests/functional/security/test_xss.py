"""Stored and reflected XSS: a payload in every user-written text (application fields, notes,
decisions, mitigation answers, appeals, Markdown policy text, templates, clarifications,
organization and user names, token names, webhook errors, rule names) and in every query
argument; then every GET page each role can reach, the emails sent, the CSV exports and the
admin pages must hold no executable markup: no script element running it, no event-handler
attribute, no javascript:/data:text/html URL (Markdown goes through nh3)."""

from __future__ import annotations

import csv
import io
from html.parser import HTMLParser
from typing import Any

import pytest

from tests.functional.security.world import ROLES, World, build_world

PAYLOAD = (
    "<script>alert(1)</script>\"'><img src=x onerror=alert(2)><svg onload=alert(3)>"
    '[md](javascript:alert(4)) <a href="javascript:alert(5)">a</a>'
)
FORMULA = '=HYPERLINK("https://evil.example","x")'
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "data", "poster"}
BAD_SCHEMES = ("javascript:", "vbscript:", "data:text/html")


class ExecutableMarkup(HTMLParser):
    """Collects markup that would run the payload (the parser sees what a browser sees)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self._script = True
        for name, value in attrs:
            text = "".join((value or "").split()).lower()
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=…>")
            if name in URL_ATTRIBUTES and text.startswith(BAD_SCHEMES):
                self.found.append(f"<{tag} {name}={text[:30]}>")
        if tag == "img" and dict(attrs).get("src") == "x":
            self.found.append("<img src=x>")
        if tag == "svg" and any(n == "onload" for n, _ in attrs):
            self.found.append("<svg onload>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = False

    def handle_data(self, data: str) -> None:
        if self._script and "alert(" in data:
            self.found.append(f"<script>{data[:40]}")


def executable(html: str) -> list[str]:
    finder = ExecutableMarkup()
    finder.feed(html)
    finder.close()
    return finder.found


def test_the_detector_finds_each_payload_form_unescaped() -> None:
    """The checker itself: each raw payload form is caught; the escaped page is clean."""
    from markupsafe import escape

    for raw in (
        "<script>alert(1)</script>",
        '"><img src=x onerror=alert(2)>',
        "<svg onload=alert(3)>",
        '<a href="javascript:alert(5)">a</a>',
        '<a href=" JaVa\tScript:alert(5)">a</a>',
        '<iframe src="data:text/html,x"></iframe>',
        "<b onclick=alert(1)>x</b>",
    ):
        assert executable(f"<p>{raw}</p>"), raw
    assert executable(f"<p>{escape(PAYLOAD)}</p><textarea>{escape(PAYLOAD)}</textarea>") == []
    assert executable(f'<input value="{escape(PAYLOAD)}">') == []


def _get_rules(app) -> list[str]:  # noqa: ANN001
    return sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if "GET" in rule.methods and not rule.rule.startswith(("/api/", "/static/", "/bootstrap/"))
    )


def _urls(app, world: World) -> list[str]:  # noqa: ANN001
    """Every GET route filled with the world's objects (each application state for
    <reference>, each chart for <chart>), plus the payload in common query arguments."""
    values = world.path_values()
    urls: list[str] = []
    for rule in _get_rules(app):
        variants: list[dict[str, Any]] = [values]
        if "<reference>" in rule:
            variants = [
                {**values, "reference": getattr(world, s).reference}
                for s in ("draft", "queued", "rejected", "appealed", "mitigations")
            ]
        if "<chart>" in rule:
            from reviewapp.metrics.charts import CHARTS

            variants = [{**values, "chart": key} for key in CHARTS]
        if "<name>" in rule:
            variants = [{**values, "name": "weapons_cbrn"}]
        if "/templates/<key>" in rule:
            variants = [{**values, "key": world.template_key}]
        elif "/requirements/<key>" in rule:
            variants = [{**values, "key": "age-assurance"}]
        elif "/rules/<key>" in rule:
            variants = [{**values, "key": world.rule_key}]
        if "<token>" in rule:
            variants = [{**values, "token": "x"}]
        if "<int:backtest_id>" in rule:
            continue  # no backtest in the world; the page shows numbers only
        for v in variants:
            path = rule
            for name, value in v.items():
                path = path.replace(f"<int:{name}>", str(value)).replace(f"<{name}>", str(value))
            assert "<" not in path, path
            urls.append(path)
    return urls


REFLECTED = {"q": PAYLOAD, "search": PAYLOAD, "section": PAYLOAD, "queue": PAYLOAD}
REFLECTED |= {"status": PAYLOAD, "tier": PAYLOAD, "version": PAYLOAD, "application": PAYLOAD}


@pytest.fixture()
def xss_world(app, db) -> World:  # noqa: ANN001
    world = build_world(app, db, PAYLOAD)
    world.users["senior_reviewer"].name = FORMULA + PAYLOAD  # decided: in metrics and CSVs
    db.flush()
    return world


@pytest.mark.parametrize("role", ROLES)
def test_no_page_runs_stored_or_reflected_text(app, db, login, xss_world, role: str) -> None:
    client = app.test_client() if role == "anonymous" else login(xss_world.users[role])
    seen = 0
    for url in _urls(app, xss_world):
        for query in (None, REFLECTED):
            response = client.get(url, query_string=query)
            if response.mimetype != "text/html":
                continue
            seen += response.status_code == 200
            found = executable(response.get_data(as_text=True))
            assert found == [], (role, url, query is not None, found)
    assert seen >= 5, "the crawl must reach pages"


def test_emails_are_plain_text(app, db, xss_world) -> None:  # noqa: ANN001
    """Every notification the world queued (decisions, appeal, clarification answer) is sent
    as text/plain only: no HTML part a mail client could run."""
    from sqlalchemy import select

    from reviewapp.audit.models import OutboxEvent
    from reviewapp.notifications.email import build_message

    events = db.scalars(select(OutboxEvent)).all()
    mails = [e for e in events if e.payload.get("to")]
    assert mails, "the world's decisions queue emails"
    assert any("alert(" in e.payload["body"] for e in mails), "user text reaches the emails"
    for event in mails:
        message = build_message(
            app,
            to=list(event.payload["to"]),
            subject=str(event.payload["subject"]),
            body=str(event.payload["body"]),
            event_id=f"evt-{event.id}",
        )
        types = [p.get_content_type() for p in message.walk() if not p.is_multipart()]
        assert types == ["text/plain"], (event.kind, types)
        assert "\n" not in str(message["Subject"]) and "\r" not in str(message["Subject"])


def test_csv_exports_neutralise_formulas(app, db, login, xss_world) -> None:  # noqa: ANN001
    from reviewapp.metrics.charts import CHARTS

    client = login(xss_world.users["admin"])
    for chart in CHARTS:
        response = client.get(f"/admin/metrics/{chart}.csv")
        assert response.status_code == 200 and response.mimetype == "text/csv"
        assert "attachment" in response.headers["Content-Disposition"]
        for row in csv.reader(io.StringIO(response.get_data(as_text=True))):
            for cell in row:
                risky = cell.startswith(("=", "+", "-", "@", "\t", "\r"))
                assert not risky or _is_number(cell), (chart, cell)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_long_names_do_not_break_the_metrics_charts(app, db, login, xss_world) -> None:  # noqa: ANN001
    """A 200-character reviewer name once made pygal loop forever (memory exhausted)."""
    xss_world.users["senior_reviewer"].name = "W" * 200
    db.flush()
    response = login(xss_world.users["admin"]).get("/admin/metrics")
    assert response.status_code == 200
    assert "W" * 200 in response.get_data(as_text=True)  # in full in the value table
