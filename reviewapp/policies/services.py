"""Policy library services: seeding, lookups, Markdown rendering and response templates."""

from __future__ import annotations

import datetime as dt
import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import jinja2
import nh3
import yaml
from jinja2.sandbox import SandboxedEnvironment
from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from reviewapp.errors import ValidationFailed
from reviewapp.limits import LIMITS
from reviewapp.policies.models import (
    PolicySection,
    PolicySectionVersion,
    ResponseTemplate,
    SafetyRequirement,
)
from reviewapp.policies.sandbox import bounded_filters, check_template_language, render_bounded
from reviewapp.textfiles import (
    InputFileError,
    StrictLoader,
    load_yaml,
    load_yaml_file,
    read_utf8,
    yaml_problem,
)

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


#: a section key: lowercase letters, digits, dots and dashes (it is part of the page's URL)
SECTION_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9.-]*$")


@dataclass
class PolicyImport:
    """What :func:`import_policy_library` did."""

    seen: int  # sections read and valid
    changed: int  # of those, created or given a new version
    #: the sections skipped: (line in the file or None, "section #i (key): problem")
    problems: list[tuple[int | None, str]] = field(default_factory=list)


def is_web_url(url: str) -> bool:
    """Whether ``url`` is an absolute http(s) URL with a host and no whitespace or control
    characters: the only kind of link a policy section's source may have."""
    if not url or any(c.isspace() or unicodedata.category(c) == "Cc" for c in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. a malformed IPv6 host
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def _control_character(text: str, allowed: str = "") -> str | None:
    """The first control character (line breaks and tabs included unless ``allowed``) or lone
    surrogate in ``text``, described ("U+0000"), or None."""
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cs") and char not in allowed:
            return f"U+{ord(char):04X}"
    return None


def _section_record(
    raw: Any, sources: dict[str, Any], default_date: dt.date
) -> tuple[dict[str, Any] | None, str]:
    """One ``sections`` entry checked and turned into :func:`upsert_policy_section` arguments.

    Returns:
        (arguments, "") or (None, the problem, naming the field).
    """
    if not isinstance(raw, dict):
        return None, "is not a mapping"
    key = raw.get("key") or raw.get("id")
    if not key or not isinstance(raw.get("title"), str) or not raw["title"].strip():
        return None, "needs an id (or key) and a text title"
    key, title = str(key), raw["title"].strip()
    number = str(raw.get("number") or raw.get("ref") or "").strip()
    source = str(raw.get("source", "reviewapp"))
    url = str(raw.get("url") or "").strip()
    for name, value in (("id", key), ("title", title), ("number", number), ("source", source)):
        if (bad := _control_character(value)) is not None:
            return None, f"the {name} contains the control character {bad}"
    if not SECTION_KEY_RE.match(key):
        return None, f"the id {key!r} may hold only lowercase letters, digits, dots and dashes"
    for name, value, limit in (
        ("id", key, LIMITS["policy_section.key"]),
        ("title", title, LIMITS["policy_section.title"]),
        ("number", number, LIMITS["policy_section.number"]),
        ("source", source, 100),
        ("url", url, 500),
    ):
        if len(value) > limit:
            return None, f"the {name} is {len(value)} characters long; the limit is {limit}"
    if not number:
        return None, "needs a number (or ref)"
    body = str(raw.get("text") or raw.get("summary") or "")
    if not body.strip():
        return None, "needs a text (or summary)"
    if (bad := _control_character(body, allowed="\t\n\r")) is not None:
        return None, f"the text contains the control character {bad}"
    if url and not is_web_url(url):
        return None, f"the url {url[:80]!r} is not an http(s) address"
    try:
        effective_date = (
            _parse_date(raw["effective_date"]) if raw.get("effective_date") else default_date
        )
    except ValueError:
        return None, f"the effective_date {raw.get('effective_date')!r} is not a YYYY-MM-DD date"
    if "text" in raw:
        text = str(raw["text"])
    else:
        src = sources.get(source, {}) if isinstance(sources.get(source), dict) else {}
        text = (
            f"{body.strip()}\n\nSource: [{src.get('title', source)}]({url}), {raw.get('ref', '')}."
        )
    return {
        "key": key,
        "number": number,
        "title": title,
        "text": text,
        "effective_date": effective_date,
        "source": source,
        "review_use": str(raw.get("review_use") or ""),
        "url": url,
    }, ""


def _section_lines(text: str) -> list[int]:
    """The line (1-based) where each entry of the document's ``sections`` list starts."""
    root = yaml.compose(text, Loader=StrictLoader)
    if isinstance(root, yaml.MappingNode):
        for key_node, value_node in root.value:
            if key_node.value == "sections" and isinstance(value_node, yaml.SequenceNode):
                return [item.start_mark.line + 1 for item in value_node.value]
    return []


def import_policy_library(session: Session, path: str | Path) -> PolicyImport:
    """Load a policy library YAML: our own format (``sections`` with ``text``) or the public
    index in shared/data/policy_sections.yaml (``sources`` + ``sections`` with ``summary``).

    A section that is not valid (no id or title, a malformed id, a control character in its
    id, number or title, a url that is not http(s), a bad date, ...) is skipped and reported
    with its line; the others are imported.

    Returns:
        :class:`PolicyImport`: sections read, created or changed, and the problems.
    Raises:
        ValidationFailed: the file as a whole is unusable: bytes that are not UTF-8, invalid
            YAML or a duplicate key (with line and column), no ``sections`` list, or a bad
            document-wide date.
    """
    try:
        text = read_utf8(path)
        document = load_yaml(text)
    except InputFileError as exc:
        raise ValidationFailed(str(exc)) from None
    except yaml.YAMLError as exc:
        raise ValidationFailed(f"{path}: {yaml_problem(exc)}") from None
    if not isinstance(document, dict) or not isinstance(document.get("sections"), list):
        raise ValidationFailed(f"{path}: expected a mapping with a 'sections' list")
    raw_sources = document.get("sources")
    sources: dict[str, Any] = raw_sources if isinstance(raw_sources, dict) else {}
    try:
        default_date = _parse_date(
            document.get("effective_date") or document.get("generated") or "2026-01-01"
        )
    except ValueError:
        raise ValidationFailed(f"{path}: the effective_date is not a YYYY-MM-DD date") from None
    lines = _section_lines(text)
    result = PolicyImport(seen=0, changed=0)
    for i, raw in enumerate(document["sections"], start=1):
        arguments, problem = _section_record(raw, sources, default_date)
        if arguments is None:
            key = (raw.get("key") or raw.get("id")) if isinstance(raw, dict) else None
            named = f" ({str(key)[:60]!r})" if key else ""
            line = lines[i - 1] if i <= len(lines) else None
            result.problems.append((line, f"section #{i}{named} {problem}"))
            continue
        result.seen += 1
        _, did_change = upsert_policy_section(session, **arguments)
        result.changed += int(did_change)
    return result


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
