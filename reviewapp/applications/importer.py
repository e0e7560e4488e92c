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
triage reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LABEL_COLUMNS = ("impact_type_raw", "impact_label", "suggested_tier")
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


def map_row(row: Mapping[str, Any]) -> InventoryRecord:
    """Map one slim-CSV row (column name -> text) to an :class:`InventoryRecord`.

    Raises:
        ValueError: when the row has no ``row_id``, agency or use case name.
    """
    row_id = _clean(row.get("row_id"))
    if not row_id.isdigit():
        raise ValueError(f"row_id {row.get('row_id')!r} is not a positive whole number")
    agency = _clean(row.get("agency"))
    if not agency:
        raise ValueError("agency is empty")
    title = _clean(row.get("use_case_name"))
    if not title:
        raise ValueError("use_case_name is empty")
    purpose = str(row.get("purpose_benefits") or "").strip()
    outputs = str(row.get("outputs") or "").strip()
    description = purpose
    if outputs:
        description = (
            f"{purpose}\n\nSystem outputs: {outputs}" if purpose else f"System outputs: {outputs}"
        )
    measures = []
    if _clean(row.get("key_risks")):
        measures.append(f"Key risks identified: {str(row['key_risks']).strip()}")
    if _clean(row.get("appeal_process")):
        measures.append(f"Appeal process for affected people: {_clean(row['appeal_process'])}")
    end_users = ["government"]
    if _clean(row.get("public_facing_hisp")).lower() == "yes":
        end_users.insert(0, "consumers")
    content = {
        "title": title[:200],
        "category": map_category(str(row.get("commercial_ai_category") or "")),
        "description": description[:10_000],
        "benefits": "",
        "end_users": end_users,
        "domains": map_domains(
            str(row.get("topic_area") or ""), str(row.get("contains_pii") or "")
        ),
        "modalities": ["text"],
        "monthly_requests": None,
        "human_review_of_outputs": map_human_review(str(row.get("autonomous_decision") or "")),
        "safety_measures": "\n".join(measures)[:5_000],
        "product_url": "",
    }
    return InventoryRecord(
        external_ref=f"fed2024-{row_id}",
        organization=agency[:200],
        content=content,
        reference_label=_clean(row.get("impact_label")) or None,
        reference_tier=_clean(row.get("suggested_tier")) or None,
        source_metadata={
            "agency_abbr": _clean(row.get("agency_abbr")),
            "bureau": _clean(row.get("bureau")),
            "topic_area": _clean(row.get("topic_area")),
            "commercial_ai_category": _clean(row.get("commercial_ai_category")),
            "stage": _clean(row.get("stage")),
        },
    )
