"""Ceiling apps of the HTTP benchmarks, served by the same gunicorn configuration as reviewapp.

* ``hello_app``: a Flask hello-world (the most a gunicorn worker can serve here);
* ``queue_app``: a bare Flask + SQLAlchemy Core queue page. It reads the same signed session
  cookie as reviewapp (user id from Flask-Login's ``_user_id``), loads the user, and renders the
  same 50 rows as ``GET /queue``: open applications in the queues the user's role may work, not
  of the user's organization, optionally one tier, ordered by SLA due time, tier (highest first),
  age and id, with reference, title, organization, tier, queue, status, SLA due time and
  claimant. No ORM objects, no forms, no layout, no total count.

Run by bench/queue_page_http.py and bench/claim_next_http.py: ``gunicorn --chdir bench
ceiling_apps:queue_app`` with ``BENCH_DATABASE_URL`` set.
"""

from __future__ import annotations

import gc
import os
from typing import Any

from flask import Flask, abort, render_template_string, request, session
from sqlalchemy import bindparam, create_engine, text

hello_app = Flask("hello")


@hello_app.route("/hello")
def hello() -> str:
    return "Hello, world!"


queue_app = Flask("queue_ceiling")
queue_app.config["SECRET_KEY"] = os.environ.get("REVIEWAPP_SECRET_KEY", "")
_engine = None

OPEN = ("queued", "in_review", "awaiting_second_approval", "appealed")
QUEUE_SQL = """
SELECT a.id, a.status, a.risk_tier, a.queue, a.sla_due_at, a.lease_expires_at,
       r.content ->> 'title' AS title, o.name AS organization, u.email AS claimant
FROM application a
JOIN organization o ON o.id = a.organization_id
LEFT JOIN revision r ON r.id = a.current_revision_id
LEFT JOIN user_account u ON u.id = a.claimed_by_id
WHERE a.status IN :open AND a.queue IN :queues AND a.organization_id != :org {tier}
ORDER BY a.sla_due_at, a.tier_rank DESC, a.queued_at, a.id
LIMIT 50
"""
PAGE = """<!doctype html><title>Queue</title><table>
{% for r in rows %}<tr><td><a href="/review/APP-{{ '%06d' % r.id }}">APP-{{ '%06d' % r.id }}</a></td>
<td>{{ r.title }}</td><td>{{ r.organization }}</td><td>{{ r.risk_tier }}</td><td>{{ r.queue }}</td>
<td>{{ r.status }}</td><td>{{ r.sla_due_at.strftime('%Y-%m-%d %H:%M') if r.sla_due_at else '' }}</td>
<td>{{ r.claimant or '—' }}</td></tr>{% endfor %}</table>"""


def engine() -> Any:
    global _engine
    if _engine is None:
        _engine = create_engine(os.environ["BENCH_DATABASE_URL"], pool_size=5)
    return _engine


@queue_app.route("/queue")
def queue() -> str:
    user_id = str(session.get("_user_id", "")).split(":", 1)[0]
    if not user_id.isdigit():
        abort(401)
    tier = request.args.get("tier") or None
    with engine().connect() as conn:
        user = conn.execute(
            text("SELECT id, role, organization_id FROM user_account WHERE id = :id"),
            {"id": int(user_id)},
        ).one()
        queues = [
            k
            for k, roles in conn.execute(text("SELECT key, roles FROM review_queue"))
            if user.role in roles
        ]
        stmt = text(QUEUE_SQL.format(tier="AND a.risk_tier = :tier" if tier else "")).bindparams(
            bindparam("open", expanding=True), bindparam("queues", expanding=True)
        )
        params: dict[str, Any] = {"open": list(OPEN), "queues": queues, "org": user.organization_id}
        if tier:
            params["tier"] = tier
        rows = conn.execute(stmt, params).all()
    return render_template_string(PAGE, rows=rows)


# as reviewapp's wsgi.py does, so both sides of the comparison run with the same collector setup
gc.collect()
gc.freeze()
