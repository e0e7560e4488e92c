"""The real reviewapp plus one authenticated no-op API route: the floor of any API request.

``POST /api/v1/bench/floor`` goes through everything every ``/api/v1`` request goes through
(gunicorn, Flask, the app's request hooks and security headers, the two shared API rate limits
counted in Redis, the session's pool checkout with its pre-ping, the bearer-token lookup in
PostgreSQL and the scope check) and then does nothing: it answers ``{"user": <id>}``. What a
real endpoint such as claim-next costs is what it costs above this floor.

The route is added to the API blueprint before ``create_app`` registers it, so it gets the
blueprint's rate limits and error handlers; it exists only in this benchmark module. Run by
bench/claim_next_http.py: ``gunicorn --chdir bench floor_app:app``.
"""

from __future__ import annotations

import gc
from typing import Any

from flask import jsonify

from reviewapp.api.views import _user, bp, token_required


def floor() -> Any:
    """An authenticated no-op: the caller's user id."""
    return jsonify({"user": _user().id})


bp.add_url_rule("/bench/floor", "bench_floor", token_required("review")(floor), methods=["POST"])

from reviewapp import create_app  # noqa: E402 - after the route is on the blueprint

app = create_app()

# as wsgi.py does
gc.collect()
gc.freeze()
