"""The engine's fast path computes exactly what rule-engine computes.

Property-style: every rule of ``config/ruleset.yaml`` and a set of hand-written tricky
conditions are evaluated by rule-engine (``Rule.matches``) and by the translated closures
(``translate_condition`` on ``fast_context``) over many contexts from a seeded random generator
(realistic values plus nulls, empty sets, unicode, case variants, NaN/inf and malformed values).
Whenever the fast path returns a result it must be rule-engine's result, and rule-engine must not
have raised; when rule-engine raises, the fast path must raise too (the engine then re-evaluates
with rule-engine, so errors and the fail-closed behaviour are unchanged).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from reviewapp.triage.engine import (
    CompiledRuleset,
    KeywordMatcher,
    RulesetSpec,
    RuleSpec,
    compile_condition,
    fast_context,
    rule_context,
    translate_condition,
)

ROOT = Path(__file__).resolve().parents[2]
SEED = 20240611
N_CONTEXTS = 300

DOMAINS = ["health", "legal", "credit", "education", "weapons", "general", "Health", "santé"]
USERS = ["consumers", "minors", "government", "businesses", ""]
CATEGORIES = ["assistant_chatbot", "other", "classification_scoring", "", "Other", "agentic"]
MODALITIES = ["text", "image", "audio", "video"]
SIGNALS = ["x", "y", "weapons_cbrn", "health_care", "device_unlock", "biometric_identification"]
TEXTS = [
    "",
    " ",
    "Chat",
    "chat bot for citizens",
    "CHAT",
    "Ünïcödé — nerve agent 🚀",
    "a" * 39,
    "a" * 40,
    "M",
    "Zebra",
    "other",
    "assistant_chatbot",
]
NUMBERS = [None, None, 0, 1, 0.1, 5, -3, 1_000_000, 1_000_000.5, 40_000_000, 1e30]
ODD_NUMBERS = [float("nan"), float("inf"), float("-inf")]

TRICKY = [
    "monthly_requests > 5",
    "monthly_requests >= 1000000",
    "monthly_requests == 1000000",
    "monthly_requests == 0.1",
    "monthly_requests != 0.1",
    "monthly_requests == null",
    "monthly_requests != null and monthly_requests < 1000000.5",
    "monthly_requests != null and monthly_requests > 1000000 and monthly_requests <= 40000000",
    "monthly_requests in [1000000, 5, 0.1]",
    "monthly_requests > 5 or true",
    "true or monthly_requests > 5",
    "false and monthly_requests > 5",
    "human_review_of_outputs == false",
    "human_review_of_outputs != true",
    "human_review_of_outputs",
    "not human_review_of_outputs",
    "human_review_of_outputs > false",
    "human_review_of_outputs == null and not (domains & {'health', 'legal'}).is_empty",
    "'chat' in title",
    "'chat' in title.as_lower",
    "'CHAT' in title.as_upper",
    "'' in description",
    "title in category",
    "category in [title, description]",
    "title == 'Chat'",
    "title != 'Chat'",
    "title < 'M'",
    "title >= description",
    "category in ['assistant_chatbot', 'other']",
    "category not in ['assistant_chatbot']",
    "'health' in domains",
    "'health' not in domains",
    "domains == {'health'}",
    "domains != {'health', 'legal'}",
    "(domains & {'health', 'legal'}) == {'health'}",
    "(domains | end_users).length > 2",
    "(domains ^ {'health'}).is_empty",
    "domains.is_empty or end_users.is_empty",
    "not domains.is_empty and not (domains & {'health', 'credit'}).is_empty",
    "signals.length >= 2",
    "description.length < 40",
    "title.length == description.length",
    "title.is_empty",
    "'health' in domains ? monthly_requests != null : human_review_of_outputs == true",
    "('x' in signals ? title : category) == 'Chat'",
    "('x' in signals) == ('y' in signals)",
    "not ('health' in domains and 'minors' in end_users) or category == ''",
    "product_url == '' and safety_measures != ''",
    "['a', title] == ['a', 'Chat']",
    "{title, category}.length == 1",
    "'x' in signals and 'device_unlock' not in signals",
    "modalities == {'text'} or 'image' in modalities",
    "benefits.as_lower == benefits",
    # mixed types through a ternary: only runtime checks can tell (true == 1 in Python)
    "('x' in signals ? human_review_of_outputs : monthly_requests) > 0",
    "('x' in signals ? monthly_requests : human_review_of_outputs) == true",
    "('x' in signals ? monthly_requests : human_review_of_outputs) != true",
]
# translated, but the closures leave many contexts to rule-engine (mismatched types, arrays)
OFTEN_DEFERRED = [
    "('x' in signals ? title : monthly_requests) in description",
    "('x' in signals ? ['a'] : ['b', title]) < ['b', 'C']",
    "human_review_of_outputs >= human_review_of_outputs",
]

# conditions rule-engine accepts but the fast path leaves to rule-engine
NOT_TRANSLATED = [
    "description.length * 2 > 80",
    "title[0] == 'C'",
    "title.starts_with('Ch')",
    "description.length + 1 > 40",
]


def default_conditions() -> list[str]:
    document = yaml.safe_load((ROOT / "config" / "ruleset.yaml").read_text(encoding="utf-8"))
    return [str(rule["condition"]) for rule in document["rules"]]


def random_content(rng: random.Random) -> dict[str, Any]:
    return {
        "title": rng.choice(TEXTS + [None]),
        "category": rng.choice(CATEGORIES + [None]),
        "description": rng.choice(TEXTS),
        "benefits": rng.choice(TEXTS),
        "safety_measures": rng.choice(TEXTS),
        "product_url": rng.choice(["", "https://example.org"]),
        "end_users": rng.sample(USERS, rng.randint(0, 3)),
        "domains": rng.sample(DOMAINS, rng.randint(0, 3)),
        "modalities": rng.sample(MODALITIES, rng.randint(0, 2)),
        "monthly_requests": rng.choice(NUMBERS + (ODD_NUMBERS if rng.random() < 0.1 else [])),
        "human_review_of_outputs": rng.choice([None, True, False]),
    }


def odd_context(rng: random.Random, base: dict[str, Any]) -> dict[str, Any]:
    """A context with one malformed value rule-engine must reject (or treat as null)."""
    ctx = dict(base)
    name, value = rng.choice(
        [
            ("title", None),
            ("title", 5),
            ("domains", {"health", None}),
            ("domains", {1, "health"}),
            ("domains", None),
            ("end_users", ["minors"]),
            ("monthly_requests", "5"),
            ("monthly_requests", True),
            ("monthly_requests", 7),
            ("human_review_of_outputs", "yes"),
            ("human_review_of_outputs", 0),
            ("signals", frozenset({"x"})),
        ]
    )
    ctx[name] = value
    return ctx


def contexts() -> list[dict[str, Any]]:
    rng = random.Random(SEED)
    out = []
    for i in range(N_CONTEXTS):
        content = random_content(rng)
        ctx = rule_context(content, rng.sample(SIGNALS, rng.randint(0, 3)))
        out.append(odd_context(rng, ctx) if i % 10 == 9 else ctx)
    return out


CONTEXTS = contexts()


def slow_outcome(rule: Any, ctx: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "ok", bool(rule.matches(ctx))
    except Exception as exc:  # noqa: BLE001
        return "error", type(exc)


def fast_outcome(fast: Any, ctx: dict[str, Any]) -> tuple[str, Any]:
    prepared = fast_context(ctx)
    if prepared is None:
        return "rejected", None
    try:
        return "ok", bool(fast(prepared))
    except Exception as exc:  # noqa: BLE001
        return "deferred", type(exc)


@pytest.mark.parametrize("condition", default_conditions() + TRICKY + OFTEN_DEFERRED)
def test_fast_path_agrees_with_rule_engine(condition: str) -> None:
    rule = compile_condition(condition)
    fast = translate_condition(rule)
    assert fast is not None, f"not translated: {condition}"
    agreed = 0
    for ctx in CONTEXTS:
        slow = slow_outcome(rule, ctx)
        quick = fast_outcome(fast, ctx)
        if quick[0] == "ok":
            assert slow == quick, (condition, ctx, slow, quick)
            agreed += 1
        if slow[0] == "error":
            assert quick[0] != "ok", (condition, ctx, slow, quick)
    # the fast path must actually be used, not defer everything to rule-engine
    if condition not in OFTEN_DEFERRED:
        assert agreed > N_CONTEXTS // 3, condition


@pytest.mark.parametrize("condition", default_conditions())
def test_default_rules_never_defer_on_well_formed_contexts(condition: str) -> None:
    rule = compile_condition(condition)
    fast = translate_condition(rule)
    for ctx in CONTEXTS:
        if slow_outcome(rule, ctx)[0] == "ok" and fast_context(ctx) is not None:
            assert fast_outcome(fast, ctx)[0] == "ok", (condition, ctx)


@pytest.mark.parametrize("condition", NOT_TRANSLATED)
def test_uncovered_conditions_are_left_to_rule_engine(condition: str) -> None:
    assert translate_condition(compile_condition(condition)) is None


def test_null_in_ordered_comparison_still_fails_closed() -> None:
    rule = compile_condition("monthly_requests > 5")
    fast = translate_condition(rule)
    assert fast is not None
    ctx = rule_context({"monthly_requests": None}, [])
    with pytest.raises(Exception):  # noqa: B017 - any exception defers to rule-engine
        fast(fast_context(ctx))


def test_fast_context_rejects_malformed_values() -> None:
    base = rule_context({}, ["x"])
    assert fast_context(base) is not None
    assert fast_context({**base, "domains": {"a", None}}) is None
    assert fast_context({**base, "title": None}) is None
    assert fast_context({**base, "human_review_of_outputs": "yes"}) is None
    assert fast_context({**base, "monthly_requests": True}) is None


def _ruleset(conditions: list[str], lists: dict[str, Any] | None = None) -> CompiledRuleset:
    rules = [
        RuleSpec(
            f"r{i}",
            f"Rule {i}",
            condition,
            [{"type": "raise_tier", "tier": "high"}, {"type": "add_flag", "flag": f"f{i}"}],
        )
        for i, condition in enumerate(conditions)
    ]
    return CompiledRuleset(
        RulesetSpec(
            tiers=["low", "medium", "high", "prohibited"],
            tier_queues={
                "low": "standard",
                "medium": "standard",
                "high": "high-risk",
                "prohibited": "policy-violations",
            },
            rules=rules,
            keyword_lists=lists or {},
        )
    )


def test_evaluate_outcomes_identical_with_and_without_fast_path() -> None:
    """Whole outcomes (tier, queue, fired, flags, errors with messages) are unchanged."""
    lists = {"x": ["chat"], "y": ["nerve agent", "bio*"]}
    conditions = default_conditions() + TRICKY + OFTEN_DEFERRED + NOT_TRANSLATED
    conditions = [c for c in conditions if "signals" not in c or "'x'" in c or "'y'" in c]
    fast = _ruleset(conditions, lists)
    slow = _ruleset(conditions, lists)
    for cr in slow.rules:
        cr.fast = None
    translated = sum(cr.fast is not None for cr in fast.rules)
    assert translated == len(conditions) - len(NOT_TRANSLATED)
    rng = random.Random(SEED + 1)
    for i in range(200):
        content = random_content(rng)
        if i % 8 == 7:  # malformed content: fast_context refuses it, rule-engine decides
            content[rng.choice(["domains", "human_review_of_outputs"])] = rng.choice(
                [["health", None], "yes", [1, "health"]]
            )
        assert _outcome(fast, content) == _outcome(slow, content), content


def _outcome(ruleset: CompiledRuleset, content: dict[str, Any]) -> Any:
    try:
        return ruleset.evaluate(content).as_dict()
    except Exception as exc:  # noqa: BLE001 - e.g. explaining a set of mixed types
        return type(exc), str(exc)


# ----------------------------------------------------------------------------- keyword prefilter

PHRASE_LISTS = {
    "weapons": ["nerve agent*", "bioweapon*", "3d printed gun"],
    "chat": ["chat*", "chat bot", "assistant"],
    "agent": ["agent", "agents"],
    "unicode": ["santé", "über*", "naïve bayes"],
    "hyphen": ["face recognition", "e-mail"],
}
WORDS = [
    "nerve",
    "agent",
    "agents",
    "Nerve-Agent",
    "bioweapons",
    "3D",
    "printed",
    "gun",
    "chatbot",
    "CHAT",
    "bot",
    "assistant",
    "santé",
    "Über",
    "überwachung",
    "naïve",
    "bayes",
    "face",
    "recognition",
    "e-mail",
    "-",
    "—",
    "🚀",
    "\n",
    "  ",
]


def test_prefilter_gives_the_same_matches_as_scanning_every_list() -> None:
    matcher = KeywordMatcher(PHRASE_LISTS)
    assert matcher._prefilter is not None
    plain = KeywordMatcher(PHRASE_LISTS)
    plain._prefilter = None
    rng = random.Random(SEED + 2)
    for _ in range(400):
        content = {
            field: " ".join(rng.choices(WORDS, k=rng.randint(0, 12)))
            for field in ("title", "description", "benefits", "safety_measures")
        }
        if rng.random() < 0.1:
            content["benefits"] = None
        assert matcher.match(content) == plain.match(content), content


def test_phrase_across_two_fields_does_not_match() -> None:
    matcher = KeywordMatcher(PHRASE_LISTS)
    assert matcher.match({"title": "nerve", "description": "agent"}) == [
        m for m in matcher.match({"description": "agent"})
    ]
