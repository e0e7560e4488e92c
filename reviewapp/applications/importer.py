"""Mapping of the US Federal AI Use Case Inventory (slim CSV) onto application content.

Source: ``shared/data/fed_ai_inventory_2024_slim.csv`` (see shared/data/README.md). Each row is
one agency use case; we file it as one application of the agency's organization.

Field mapping (documented in README.md, "Demo data"):

=========================  ==========================================================
application field          from the inventory row
=========================  ==========================================================
title                      ``use_case_name``
category                   ``commercial_ai_category`` when it names a stock commercial
                           use (e.g. "Searching for information using AI." ->
                           ``search_summarization``), otherwise ``other``
description                ``purpose_benefits``, then "System outputs: " + ``outputs``
benefits                   empty: the inventory has one purpose-and-benefits answer,
                           already in the description
end_users                  ``government`` always (agency staff use the outputs);
                           ``consumers`` when ``public_facing_hisp`` is "Yes"
domains                    from ``topic_area`` (e.g. "Health & Medical" -> health;
                           "Law & Justice" -> legal, law_enforcement), plus
                           ``personal_data`` when ``contains_pii`` is "Yes"
modalities                 ``text`` (the inventory does not record modalities)
monthly_requests           null (not recorded)
human_review_of_outputs    true for "No - Some individual decisions ... require direct
                           human oversight", false for "Yes - All individual decisions
                           ... are automated", null otherwise
safety_measures            ``key_risks`` and ``appeal_process`` answers, labelled
product_url                empty
=========================  ==========================================================

The label columns (``impact_type_raw``, ``impact_label``, ``suggested_tier``) are the answer
key: they are returned separately as the reference label and never enter the content that
triage reads. ``impact_label`` must be one of :data:`IMPACT_LABELS` (the values the data set's
README documents) and ``suggested_tier`` one of the risk tiers the caller names (the database's
tiers); any other value is left out (the row is kept without it) and reported, because a stray
value would become a bogus tier in every backtest's confusion matrix.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reviewapp.limits import LIMITS

LABEL_COLUMNS = ("impact_type_raw", "impact_label", "suggested_tier")
#: the derived ``impact_label`` values (shared/data/README.md, "Risk label -> tier mapping")
IMPACT_LABELS = ("both", "rights", "safety", "neither", "unassessed")
#: code points; the longest field the importer reads. Far above every stored limit (the longest,
#: a description, is 10,000): a larger field is a broken file, refused with its column and line.
MAX_FIELD_CHARS = 131_072
REQUIRED_COLUMNS = (
    "row_id",
    "agency",
    "use_case_name",
    "topic_area",
    "commercial_ai_category",
    "purpose_benefits",
    "outputs",
    "contains_pii",
    "public_facing_hisp",
    "key_risks",
    "autonomous_decision",
    "appeal_process",
)

_COMMERCIAL_CATEGORY = {
    "searching for information": "search_summarization",
    "summarizing the key points": "search_summarization",
    "curating news articles": "search_summarization",
    "improving the quality of written communications": "writing_assistance",
    "collaborating in real-time": "writing_assistance",
    "scheduling and managing social media posts": "content_generation",
    "creating visual representations": "analytics_forecasting",
    "creating visually appealing presentations": "content_generation",
    "identifying unusual patterns in system logs": "analytics_forecasting",
    "transcribing and summarizing": "transcription_translation",
    "inputting large amounts of data": "data_extraction",
    "digitizing text from scanned documents": "data_extraction",
    "prioritizing and categorizing incoming emails": "productivity_tool",
    "logging and analyzing time spent": "productivity_tool",
    "scheduling meetings": "productivity_tool",
    "planning travel routes": "productivity_tool",
    "finding and booking travel": "productivity_tool",
    "unlocking smartphones": "computer_vision",
    "generative ai-assisted legal research": "search_summarization",
}

_TOPIC_DOMAINS = {
    "health & medical": ["health"],
    "law & justice": ["legal", "law_enforcement"],
    "government services (includes benefits and service delivery)": ["public_benefits"],
    "education & workforce": ["education", "employment"],
    "energy & the environment": ["environment"],
    "ai used in transportation operations": ["transportation"],
    "transportation": ["transportation"],
    "emergency management": ["critical_infrastructure"],
    "science & space": ["science_research"],
    "internal dot research project": ["science_research"],
    "dot sponsored external research": ["science_research"],
}


@dataclass(frozen=True)
class InventoryRecord:
    """One inventory row mapped: application content, organization, external ref, answer key."""

    external_ref: str
    organization: str
    content: dict[str, Any]
    reference_label: str | None
    reference_tier: str | None
    source_metadata: dict[str, Any]
    notices: tuple[str, ...] = field(default=())
    #: values left out of the record because they are not valid (e.g. an unknown tier); the
    #: row is still imported, and the importer reports each one as a problem
    dropped: tuple[str, ...] = field(default=())


class CsvFileError(ValueError):
    """The file as a whole cannot be imported (unreadable header, missing columns)."""


def _bad_bytes(lines: Sequence[str], first: int, last: int) -> str | None:
    """Where the first undecodable byte sits in physical lines ``first..last`` (1-based), as
    "line L, column C: byte 0xNN", or None. Bytes were decoded with ``surrogateescape``."""
    for number in range(first, min(last, len(lines)) + 1):
        for column, char in enumerate(lines[number - 1], start=1):
            if 0xDC80 <= ord(char) <= 0xDCFF:
                return f"line {number}, column {column}: byte {ord(char) - 0xDC00:#04x}"
    return None


def read_csv_records(
    path: str | Path, required_columns: Sequence[str]
) -> Iterator[tuple[int, dict[str, str] | None, str | None]]:
    """Read a UTF-8 CSV file (a leading BOM is ignored) record by record.

    Yields:
        ``(line, row, problem)``: ``line`` is the physical line (1-based; the header is line 1)
        where the record starts; ``row`` maps column name -> text, or is None when ``problem``
        says why the record was unreadable (broken quoting, a field count that differs from the
        header's, bytes that are not UTF-8, with line and column, a field longer than
        :data:`MAX_FIELD_CHARS` code points, with its column). Blank lines are skipped.
    Raises:
        CsvFileError: the header is empty, unreadable, repeats a column, or lacks one of
            ``required_columns``.
    """
    text = Path(path).read_bytes().decode("utf-8", errors="surrogateescape")
    text = text.removeprefix("\ufeff")
    lines = re.split(r"\r\n|\r|\n", text)  # as csv counts lines (not str.splitlines)
    # The csv module's own field limit (a process-wide 131,072 by default) stops mid-record
    # and resumes parsing inside the over-long field, so the rest of that record came out as
    # bogus records and the real problem was reported as "broken quoting". The file is in
    # memory already: let the parser read any field whole, then refuse over-long fields here,
    # naming the column. The previous limit is restored when the reading ends.
    previous_limit = csv.field_size_limit()
    csv.field_size_limit(max(previous_limit, len(text) + 1))
    try:
        yield from _records(path, text, lines, required_columns)
    finally:
        csv.field_size_limit(previous_limit)


def _records(
    path: str | Path, text: str, lines: list[str], required_columns: Sequence[str]
) -> Iterator[tuple[int, dict[str, str] | None, str | None]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise CsvFileError(f"{path}: line 1: unreadable header ({exc})") from None
    if not header:
        raise CsvFileError(f"{path}: the file is empty (expected a header row)")
    bad = _bad_bytes(lines, 1, reader.line_num)
    if bad:
        raise CsvFileError(f"{path}: not UTF-8 text at {bad}; save the file as UTF-8")
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise CsvFileError(f"{path}: line 1: column(s) {', '.join(duplicated)} appear twice")
    missing = [c for c in required_columns if c not in header]
    if missing:
        raise CsvFileError(
            f"{path}: line 1: missing column(s) {', '.join(missing)} "
            "(expected the slim inventory format)"
        )
    while True:
        line = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield line, None, f"broken quoting: {exc} (record starting at line {line})"
            continue
        if not record:
            continue
        bad = _bad_bytes(lines, line, reader.line_num)
        if bad:
            yield line, None, f"not UTF-8 text at {bad}; save the file as UTF-8"
            continue
        if len(record) != len(header):
            yield (
                line,
                None,
                f"has {len(record)} fields but the header has {len(header)} "
                "(check the commas and quotes)",
            )
            continue
        oversized = next(
            (
                (name, value)
                for name, value in zip(header, record, strict=True)
                if len(value) > MAX_FIELD_CHARS
            ),
            None,
        )
        if oversized is not None:
            name, value = oversized
            yield (
                line,
                None,
                f"the {name} field is too large: {len(value):,} characters; the importer reads "
                f"at most {MAX_FIELD_CHARS:,} characters per field",
            )
            continue
        yield line, dict(zip(header, record, strict=True)), None


def _check_length(name: str, value: str, key: str, source: str) -> None:
    limit = LIMITS[key]
    if len(value) > limit:
        raise ValueError(
            f"{name} ({source}) is {len(value):,} characters long; the limit is {limit:,}"
        )


def _shorten(text: str, limit: int) -> str:
    """``text`` cut at the last word boundary that leaves room for "…" within ``limit``."""
    cut = text[: limit - 1]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip() + "…"


def _clean(value: Any) -> str:
    return " ".join(str(value or "").replace("\u00a0", " ").split()) if value is not None else ""


def map_category(commercial: str) -> str:
    """Vocabulary category for an inventory ``commercial_ai_category`` answer."""
    text = _clean(commercial).lower()
    for prefix, category in _COMMERCIAL_CATEGORY.items():
        if text.startswith(prefix):
            return category
    return "other"


def map_domains(topic_area: str, contains_pii: str) -> list[str]:
    """Vocabulary domains for an inventory topic area (several separated by ';')."""
    domains: list[str] = []
    for part in _clean(topic_area).lower().split(";"):
        for d in _TOPIC_DOMAINS.get(part.strip(), []):
            if d not in domains:
                domains.append(d)
    if _clean(contains_pii).lower() == "yes":
        domains.append("personal_data")
    return domains or ["general"]


def map_human_review(autonomous_decision: str) -> bool | None:
    """True/False/None from the inventory's autonomy answer (see module docstring)."""
    text = _clean(autonomous_decision).lower()
    if text.startswith("no - some individual decisions"):
        return True
    if text.startswith("yes - all individual decisions"):
        return False
    return None


def _label(
    row: Mapping[str, Any], column: str, allowed: Collection[str] | None
) -> tuple[str | None, str | None]:
    """``(value, problem)`` of a label column: the value lower-cased, or None when it is empty
    or not in ``allowed`` (None: any value); ``problem`` says why a given value was left out."""
    value = _clean(row.get(column)).lower() or None
    if value is None or allowed is None or value in allowed:
        return value, None
    shown = _clean(row.get(column))
    if len(shown) > 40:
        shown = shown[:39] + "…"
    return None, (
        f"{column} {shown!r} is not one of {', '.join(allowed)}; "
        "it is left empty (the rest of the row is imported)"
    )


def map_row(row: Mapping[str, Any], *, tiers: Collection[str] | None = None) -> InventoryRecord:
    """Map one slim-CSV row (column name -> text) to an :class:`InventoryRecord`.

    Nothing is cut silently: a use-case name longer than the title limit is shortened with
    "…" and kept in full at the start of the description (``notices`` says so); any other value
    over its limit (see reviewapp.limits) is an error.

    Args:
        row: column name -> cell text.
        tiers: the risk tier names ``suggested_tier`` may take (the database's tiers); None
            accepts any value. ``impact_label`` must be one of :data:`IMPACT_LABELS`. A value
            outside these is left out of the record (reference label/tier None) and described
            in ``dropped``; the row itself is still valid.

    Raises:
        ValueError: when the row has no ``row_id``, agency or use case name, or a value is
            longer than its limit.
    """
    row_id = _clean(row.get("row_id"))
    if not (row_id.isascii() and row_id.isdigit() and int(row_id) > 0):
        raise ValueError(f"row_id {row.get('row_id')!r} is not a positive whole number")
    row_id = str(int(row_id))  # "0901" is row 901: one source row, one external_ref
    agency = _clean(row.get("agency"))
    if not agency:
        raise ValueError("agency is empty")
    title = _clean(row.get("use_case_name"))
    if not title:
        raise ValueError("use_case_name is empty")
    _check_length("organization", agency, "organization.name", "agency")
    notices: list[str] = []
    purpose = str(row.get("purpose_benefits") or "").strip()
    outputs = str(row.get("outputs") or "").strip()
    description = purpose
    if outputs:
        description = (
            f"{purpose}\n\nSystem outputs: {outputs}" if purpose else f"System outputs: {outputs}"
        )
    title_limit = LIMITS["application.title"]
    if len(title) > title_limit:
        # visible, not silent: the full name opens the description and the import says so
        notices.append(
            f"use_case_name is {len(title):,} characters long (the title limit is "
            f"{title_limit:,}); the title was shortened and the full name opens the description"
        )
        description = f"Full use-case name: {title}\n\n{description}".rstrip()
        title = _shorten(title, title_limit)
    _check_length(
        "description", description, "application.description", "purpose_benefits + outputs"
    )
    measures = []
    if _clean(row.get("key_risks")):
        measures.append(f"Key risks identified: {str(row['key_risks']).strip()}")
    if _clean(row.get("appeal_process")):
        measures.append(f"Appeal process for affected people: {_clean(row['appeal_process'])}")
    safety_measures = "\n".join(measures)
    _check_length(
        "safety_measures",
        safety_measures,
        "application.safety_measures",
        "key_risks + appeal_process",
    )
    end_users = ["government"]
    if _clean(row.get("public_facing_hisp")).lower() == "yes":
        end_users.insert(0, "consumers")
    content = {
        "title": title,
        "category": map_category(str(row.get("commercial_ai_category") or "")),
        "description": description,
        "benefits": "",
        "end_users": end_users,
        "domains": map_domains(
            str(row.get("topic_area") or ""), str(row.get("contains_pii") or "")
        ),
        "modalities": ["text"],
        "monthly_requests": None,
        "human_review_of_outputs": map_human_review(str(row.get("autonomous_decision") or "")),
        "safety_measures": safety_measures,
        "product_url": "",
    }
    label, label_problem = _label(row, "impact_label", IMPACT_LABELS)
    tier, tier_problem = _label(row, "suggested_tier", tiers)
    return InventoryRecord(
        external_ref=f"fed2024-{row_id}",
        organization=agency,
        content=content,
        reference_label=label,
        reference_tier=tier,
        source_metadata={
            "agency_abbr": _clean(row.get("agency_abbr")),
            "bureau": _clean(row.get("bureau")),
            "topic_area": _clean(row.get("topic_area")),
            "commercial_ai_category": _clean(row.get("commercial_ai_category")),
            "stage": _clean(row.get("stage")),
        },
        notices=tuple(notices),
        dropped=tuple(p for p in (label_problem, tier_problem) if p),
    )
