"""Public policy pages: the list of sections and each version's text."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template
from sqlalchemy import select

from reviewapp.extensions import db
from reviewapp.policies.models import PolicySection, PolicySectionVersion
from reviewapp.policies.services import sections_in_order

bp = Blueprint("policies", __name__, url_prefix="/policies")


@bp.route("")
def index() -> Any:
    """Every published policy section by number, with its effective date."""
    return render_template("policies/index.html", sections=sections_in_order(db.session))


def _section(key: str) -> PolicySection:
    section = db.session.scalars(select(PolicySection).where(PolicySection.key == key)).first()
    if section is None or not section.versions:
        abort(404)
    return section


@bp.route("/<key>")
def section(key: str) -> Any:
    """The version of a section in force today (UTC), with its changelog; a section whose
    first version takes effect later shows that one, marked upcoming."""
    sec = _section(key)
    return render_template("policies/section.html", section=sec, version=sec.current or sec.latest)


@bp.route("/<key>/v<int:version>")
def section_version(key: str, version: int) -> Any:
    """One pinned version of a section (decision messages link here)."""
    sec = _section(key)
    row = db.session.scalars(
        select(PolicySectionVersion).where(
            PolicySectionVersion.section_id == sec.id, PolicySectionVersion.version == version
        )
    ).first()
    if row is None:
        abort(404)
    return render_template("policies/section.html", section=sec, version=row)
