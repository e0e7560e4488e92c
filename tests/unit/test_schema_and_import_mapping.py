"""Application content validation and the inventory field mapping."""

from __future__ import annotations

import pytest

from reviewapp.applications.importer import map_category, map_domains, map_human_review, map_row
from reviewapp.applications.schema import TEXT_LIMITS, clean_content
from reviewapp.errors import ValidationFailed
from reviewapp.web import is_safe_next


def test_limits_are_inclusive_and_one_over_is_refused_with_the_limit() -> None:
    at_limit = "é" * TEXT_LIMITS["title"]
    assert clean_content({"title": at_limit}, for_submit=False)["title"] == at_limit
    with pytest.raises(ValidationFailed) as info:
        clean_content({"title": at_limit + "x"}, for_submit=False)
    assert (
        info.value.fields["title"]
        == f"is {TEXT_LIMITS['title'] + 1} characters long; the limit is {TEXT_LIMITS['title']}."
    )


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ({"domains": ["health", "astrology"]}, "domains", "unknown value(s) 'astrology'"),
        ({"category": "nonsense"}, "category", "unknown value 'nonsense'"),
        ({"monthly_requests": "12"}, "monthly_requests", "whole number"),
        ({"monthly_requests": True}, "monthly_requests", "whole number"),
        ({"monthly_requests": -1}, "monthly_requests", "between 0"),
        ({"human_review_of_outputs": "yes"}, "human_review_of_outputs", "true or false"),
        ({"product_url": "javascript:alert(1)"}, "product_url", "http"),
        ({"colour": "blue"}, "colour", "unknown field"),
        ({"end_users": "consumers"}, "end_users", "list of strings"),
    ],
)
def test_bad_values_name_the_field(raw: dict, field: str, message: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        clean_content(raw, for_submit=False)
    assert message in info.value.fields[field]


def test_submit_requires_the_checklist_fields() -> None:
    with pytest.raises(ValidationFailed) as info:
        clean_content({"title": "x"}, for_submit=True)
    assert set(info.value.fields) == {
        "category",
        "description",
        "benefits",
        "end_users",
        "domains",
        "modalities",
        "monthly_requests",
        "human_review_of_outputs",
    }


def test_lists_are_deduplicated_in_vocabulary_order_and_unicode_kept() -> None:
    cleaned = clean_content(
        {"domains": ["weapons", "health", "health"], "title": "  日本語 🚀 مرحبا  "},
        for_submit=False,
    )
    assert cleaned["domains"] == ["health", "weapons"]
    assert cleaned["title"] == "日本語 🚀 مرحبا"


def test_inventory_mapping() -> None:
    assert map_category("Searching for information using AI.") == "search_summarization"
    assert map_category(" Searching for information using AI.") == "search_summarization"
    assert map_category("None of the above.") == "other"
    assert map_domains("Law & Justice", "Yes") == ["legal", "law_enforcement", "personal_data"]
    assert map_domains(" Mission-Enabling (internal agency support)", "") == ["general"]
    assert map_domains("Diplomacy & Trade; Health & Medical", "No") == ["health"]
    assert (
        map_human_review(
            "No - Some individual decisions or actions require direct human oversight."
        )
        is True
    )
    assert (
        map_human_review(
            "Yes - All individual decisions or actions are automated and may be rendered without direct human interaction."
        )
        is False
    )
    assert map_human_review("N/A") is None


def test_map_row_keeps_the_answer_key_out_of_the_content() -> None:
    record = map_row(
        {
            "row_id": "7",
            "agency": "Department of Examples",
            "use_case_name": "Claims triage",
            "topic_area": "Health & Medical",
            "commercial_ai_category": "None of the above.",
            "purpose_benefits": "Sorts claims.",
            "outputs": "A score.",
            "contains_pii": "Yes",
            "public_facing_hisp": "Yes",
            "key_risks": "Bias",
            "autonomous_decision": "",
            "appeal_process": "Yes",
            "impact_type_raw": "Both",
            "impact_label": "both",
            "suggested_tier": "high",
        }
    )
    assert record.external_ref == "fed2024-7"
    assert record.reference_tier == "high" and record.reference_label == "both"
    flat = repr(record.content)
    assert "Both" not in flat and "high" not in flat
    assert record.content["description"] == "Sorts claims.\n\nSystem outputs: A score."
    assert record.content["end_users"] == ["consumers", "government"]
    clean_content(record.content, for_submit=False)  # valid content


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "https://evil.example/",
        "/\\evil.example",
        "http:/evil",
        "javascript:alert(1)",
        " //evil",
        "/ok\n/evil",
        "",
    ],
)
def test_unsafe_next_targets(target: str) -> None:
    assert not is_safe_next(target)


@pytest.mark.parametrize("target", ["/queue", "/applications/APP-000001?x=1"])
def test_safe_next_targets(target: str) -> None:
    assert is_safe_next(target)
