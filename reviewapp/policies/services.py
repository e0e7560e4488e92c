"""Policy library services: seeding, lookups, Markdown rendering and response templates."""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2
import nh3
from jinja2.sandbox import SandboxedEnvironment
from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from reviewapp.errors import ValidationFailed
from reviewapp.policies.models import (
    PolicySection,
    PolicySectionVersion,
    ResponseTemplate,
    SafetyRequirement,
)
from reviewapp.policies.sandbox import bounded_filters, check_template_language, render_bounded
from reviewapp.textfiles import InputFileError, load_yaml_file

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")

# Markdown's inline syntax characters, escaped wherever they stand in a placeholder's value
_MARKDOWN_INLINE = re.compile(r"([\\`*_{}\[\]()<>|~&])")
# characters that start a block (heading, list, quote, setext underline, table) at a line start
_MARKDOWN_LINE_START = re.compile(r"(?m)^([ \t]*)([#+\-=])")
_MARKDOWN_ORDERED_ITEM = re.compile(r"(?m)^([ \t]*\d{1,9})([.)])")
# a backslash escape, as CommonMark reads one: a backslash before ASCII punctuation
_MARKDOWN_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


def escape_markdown(text: str) -> str:
    """``text`` with a backslash before every character Markdown would read as syntax, so it
    renders as the very characters typed: no link, image, emphasis, code, raw HTML or
    autolink (``<``), entity (``&``), heading, list, quote or table.

    Args:
        text: any text, e.g. a developer's application title (may hold line breaks).
    Returns:
        Markdown source that renders as ``text``; :func:`markdown_source_as_text` undoes it.
    """
    text = _MARKDOWN_INLINE.sub(r"\\\1", text)
    text = _MARKDOWN_LINE_START.sub(r"\1\\\2", text)
    return _MARKDOWN_ORDERED_ITEM.sub(r"\1\\\2", text)


def markdown_source_as_text(text: str) -> str:
    """Markdown source for a plain-text reader (the decision email): backslash escapes
    resolved, so a developer's ``[x](y)`` escaped by :func:`escape_markdown` reads as typed.
    The template's own Markdown (``**bold**``, ``[text](url)``) stays as written.

    Args:
        text: Markdown, e.g. a decision message.
    Returns:
        ``text`` with every ``\\`` + ASCII punctuation replaced by the punctuation.
    """
    return _MARKDOWN_ESCAPE.sub(r"\1", text)


def _placeholder_as_markdown(value: Any) -> Any:
    """Jinja ``finalize`` for response templates: what a ``{{ … }}`` prints is text someone
    else typed (a developer's title, an organization's name), never Markdown the template
    author wrote, so it is escaped; numbers print as they are."""
    if isinstance(value, int | float):
        return value
    return escape_markdown(str(value))  # a StrictUndefined raises here, naming the placeholder


_template_env = SandboxedEnvironment(
    undefined=jinja2.StrictUndefined, autoescape=False, finalize=_placeholder_as_markdown
)
_template_env.filters.update(bounded_filters())

TEMPLATE_VARIABLES = (
    "application",
    "organization",
    "citations",
    "safety_requirements",
    "reviewer_note",
)


def render_markdown(text: str) -> Markup:
    """Render Markdown to HTML with markdown-it, then sanitize it with nh3 (ammonia).

    Raw HTML in the source is not rendered; links get ``rel="noopener noreferrer"``.
    """
    html = _markdown.render(text or "")
    return Markup(nh3.clean(html, link_rel="noopener noreferrer"))  # noqa: S704 - sanitized by nh3  # nosec


def _sort_key(number: str) -> str:
    parts = []
    for chunk in number.replace("§", "").replace("(", ".").replace(")", "").split("."):
        chunk = chunk.strip()
        parts.append(chunk.zfill(4) if chunk.isdigit() else chunk)
    return ".".join(parts)


def upsert_policy_section(
    session: Session,
    *,
    key: str,
    number: str,
    title: str,
    text: str,
    effective_date: dt.date,
    source: str = "reviewapp",
    review_use: str = "",
    url: str = "",
    change_summary: str = "Initial version",
) -> tuple[PolicySection, bool]:
    """Create a section, or add a new version when its text changed. Returns (section, changed)."""
    section = session.scalars(select(PolicySection).where(PolicySection.key == key)).first()
    if section is None:
        section = PolicySection(
            key=key,
            number=number,
            title=title,
            source=source,
            review_use=review_use,
            url=url,
            sort_key=_sort_key(number),
        )
        session.add(section)
        session.flush()
    else:
        section.number, section.title, section.review_use, section.url = (
            number,
            title,
            review_use,
            url,
        )
    if section.versions and section.latest.text == text:
        return section, False
    version = PolicySectionVersion(
        section=section,
        version=len(section.versions) + 1,
        text=text,
        effective_date=effective_date,
        change_summary=change_summary
        if not section.versions
        else "Text updated from the policy library",
    )
    session.add(version)
    session.flush()
    return section, True


def import_policy_library(session: Session, path: str | Path) -> tuple[int, int]:
    """Load a policy library YAML: our own format (``sections`` with ``text``) or the public
    index in shared/data/policy_sections.yaml (``sources`` + ``sections`` with ``summary``).

    Returns:
        (sections seen, sections created or given a new version).
    Raises:
        ValidationFailed: bytes that are not UTF-8, invalid YAML or a duplicate key (with line
            and column), or a section without id/title (with its position).
    """
    try:
        document = load_yaml_file(path)
    except InputFileError as exc:
        raise ValidationFailed(str(exc)) from None
    if not isinstance(document, dict) or not isinstance(document.get("sections"), list):
        raise ValidationFailed(f"{path}: expected a mapping with a 'sections' list")
    sources = document.get("sources") or {}
    default_date = _parse_date(
        document.get("effective_date") or document.get("generated") or "2026-01-01"
    )
    seen = changed = 0
    for i, raw in enumerate(document["sections"], start=1):
        if not isinstance(raw, dict):
            raise ValidationFailed(f"{path}: section #{i} is not a mapping")
        key = raw.get("key") or raw.get("id")
        if not key or not isinstance(raw.get("title"), str) or not raw["title"].strip():
            raise ValidationFailed(f"{path}: section #{i} needs an id (or key) and a text title")
        if not (raw.get("number") or raw.get("ref")):
            raise ValidationFailed(f"{path}: section #{i} ({key}) needs a number (or ref)")
        if not str(raw.get("text") or raw.get("summary") or "").strip():
            raise ValidationFailed(f"{path}: section #{i} ({key}) needs a text (or summary)")
        seen += 1
        source = raw.get("source", "reviewapp")
        if "text" in raw:
            text = str(raw["text"])
        else:
            src = sources.get(source, {})
            text = f"{raw.get('summary', '').strip()}\n\nSource: [{src.get('title', source)}]({raw.get('url', '')}), {raw.get('ref', '')}."
        _, did_change = upsert_policy_section(
            session,
            key=str(key),
            number=str(raw.get("number") or raw.get("ref") or key),
            title=str(raw["title"]),
            text=text,
            effective_date=_parse_date(raw.get("effective_date"))
            if raw.get("effective_date")
            else default_date,
            source=str(source),
            review_use=str(raw.get("review_use") or ""),
            url=str(raw.get("url") or ""),
        )
        changed += int(did_change)
    return seen, changed


def _parse_date(value: Any) -> dt.date:
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def seed_catalogues(session: Session, seed_dir: Path) -> None:
    """Load safety requirements and response templates from ``seed_dir`` (upsert by key)."""
    reqs = load_yaml_file(seed_dir / "safety_requirements.yaml")
    for raw in reqs["safety_requirements"]:
        row = session.scalars(
            select(SafetyRequirement).where(SafetyRequirement.key == raw["key"])
        ).first()
        if row is None:
            row = SafetyRequirement(key=raw["key"])
            session.add(row)
        row.title, row.description = raw["title"], raw.get("description", "").strip()
        row.parameters = _parameter_specs(raw["key"], raw.get("parameters") or [])
    templates = load_yaml_file(seed_dir / "response_templates.yaml")
    for raw in templates["response_templates"]:
        validate_template(raw["body"])
        tpl = session.scalars(
            select(ResponseTemplate).where(ResponseTemplate.key == raw["key"])
        ).first()
        if tpl is None:
            tpl = ResponseTemplate(key=raw["key"])
            session.add(tpl)
        tpl.title, tpl.outcome, tpl.body = raw["title"], raw["outcome"], raw["body"]
    session.flush()


def _parameter_specs(key: str, raw: list[Any]) -> list[dict[str, Any]]:
    """Validate a safety requirement's parameter specs from the catalogue.

    Each spec: ``name`` (identifier), ``label``, ``unit``, integer ``min`` <= ``max``.

    Raises:
        ValueError: naming the requirement and the bad spec.
    """
    specs = []
    for spec in raw:
        name = str(spec.get("name", ""))
        if not name.isidentifier() or not isinstance(spec.get("min"), int):
            raise ValueError(f"safety requirement {key!r}: bad parameter spec {spec!r}")
        low, high = spec["min"], spec.get("max")
        if not isinstance(high, int) or high < low:
            raise ValueError(f"safety requirement {key!r}: parameter {name!r} needs min <= max")
        specs.append(
            {
                "name": name,
                "label": str(spec.get("label") or name),
                "unit": str(spec.get("unit") or ""),
                "min": low,
                "max": high,
            }
        )
    return specs


#: the display order of policy sections: source, then number
SECTION_ORDER = (PolicySection.source.desc(), PolicySection.sort_key)


def sections_in_order(session: Session) -> list[PolicySection]:
    """Every policy section, ordered by source then number."""
    return list(session.scalars(select(PolicySection).order_by(*SECTION_ORDER)))


def current_versions(session: Session, keys: Iterable[str]) -> list[PolicySectionVersion]:
    """The version in force today (UTC) of each named section, in the order given: what a
    decision cites (a version published for a later date is not cited before that date).

    Raises:
        ValidationFailed: naming unknown section keys, or sections with no version in force yet.
    """
    keys = list(dict.fromkeys(keys))
    sections = {
        s.key: s for s in session.scalars(select(PolicySection).where(PolicySection.key.in_(keys)))
    }
    unknown = [k for k in keys if k not in sections]
    if unknown:
        raise ValidationFailed(
            f"Unknown policy section(s): {', '.join(unknown)}",
            fields={"citations": "unknown section"},
        )
    in_force = {k: sections[k].current for k in keys}
    not_yet = [sections[k] for k in keys if in_force[k] is None]
    if not_yet:
        named = ", ".join(
            f"{s.number} (effective {s.versions[0].effective_date.isoformat()})" for s in not_yet
        )
        raise ValidationFailed(
            f"Not in force yet, so it cannot be cited: {named}.",
            fields={"citations": "not in force yet"},
        )
    return [v for v in in_force.values() if v is not None]


def sample_context() -> dict[str, Any]:
    """Placeholder values used to check that a template renders before it is saved."""
    return {
        "application": SimpleNamespace(reference="APP-000000", title="Sample application"),
        "organization": "Sample organization",
        "citations": [
            SimpleNamespace(
                number="§0.0", title="Sample section", version=1, url="https://example.invalid/"
            )
        ],
        "safety_requirements": [
            SimpleNamespace(
                title="Sample requirement",
                description="Do the thing.",
                reason="Sample reason",
                parameters=["Sample limit: 10 units"],
            )
        ],
        "reviewer_note": "Sample note",
    }


def validate_template(body: str) -> None:
    """Check a template compiles and uses only the known placeholders.

    Raises:
        ValidationFailed: with the syntax error or the unknown placeholder's name.
    """
    render_template_text(body, sample_context())
    render_template_text(
        body, {**sample_context(), "reviewer_note": "", "citations": [], "safety_requirements": []}
    )


def render_template_text(body: str, context: dict[str, Any]) -> str:
    """Render a response template in the Jinja sandbox with StrictUndefined.

    Raises:
        ValidationFailed: on a syntax error, an unfilled/unknown placeholder, or an unsafe access.
    """
    try:
        return render_bounded(_compiled_template(body), context).strip()
    except jinja2.TemplateSyntaxError as exc:
        raise ValidationFailed(
            f"Template syntax error on line {exc.lineno}: {exc.message}",
            fields={"template": "syntax"},
        ) from None
    except jinja2.UndefinedError as exc:
        raise ValidationFailed(
            f"The template has a placeholder that cannot be filled: {exc.message}",
            fields={"template": "placeholder"},
        ) from None
    except jinja2.exceptions.SecurityError as exc:
        raise ValidationFailed(
            f"The template does something templates may not do: {exc}",
            fields={"template": "unsafe"},
        ) from None
    # e.g. range() past its cap, or an integer too big to print (10**5000: ValueError)
    except (OverflowError, RecursionError, MemoryError, ValueError) as exc:
        raise ValidationFailed(
            f"The template does something templates may not do: {exc}",
            fields={"template": "unsafe"},
        ) from None
    except Exception as exc:  # noqa: BLE001 - any other failure of the admin's template
        raise ValidationFailed(
            f"The template could not be rendered: {type(exc).__name__}: {exc}",
            fields={"template": "failed"},
        ) from None


@functools.lru_cache(maxsize=128)
def _compiled_template(body: str) -> jinja2.Template:
    """``body`` parsed, checked against the template language and compiled, kept per process
    (a decision renders its template on every view of the form's preview and on each save).

    Raises:
        jinja2.TemplateSyntaxError, jinja2.exceptions.SecurityError (not cached).
    """
    tree = _template_env.parse(body)
    check_template_language(tree)
    return _template_env.from_string(tree)
