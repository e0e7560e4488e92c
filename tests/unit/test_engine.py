"""The triage engine: a table of inputs -> tier, queue and fired rules; validation errors."""

from __future__ import annotations

import pytest

from reviewapp.triage.engine import (
    CompiledRuleset,
    KeywordMatcher,
    RulesetSpec,
    RuleSpec,
    RuleValidationError,
    canonical_hash,
    compile_condition,
)

TIERS = ["low", "medium", "high", "prohibited"]
QUEUES = {
    "low": "standard",
    "medium": "standard",
    "high": "high-risk",
    "prohibited": "policy-violations",
}


def ruleset(*rules: RuleSpec, keyword_lists: dict | None = None, **kw: object) -> CompiledRuleset:
    return CompiledRuleset(
        RulesetSpec(
            tiers=TIERS,
            tier_queues=QUEUES,
            rules=list(rules),
            keyword_lists=keyword_lists or {},
            **kw,
        )
    )  # type: ignore[arg-type]


RULES = [
    RuleSpec(
        "weapons",
        "Weapons",
        "'weapons' in signals or 'weapons' in domains",
        [
            {"type": "raise_tier", "tier": "prohibited"},
            {"type": "suggest_policy_section", "policy_section": "usage-1.1"},
        ],
    ),
    RuleSpec(
        "health",
        "Health",
        "'health' in domains",
        [
            {"type": "raise_tier", "tier": "high"},
            {"type": "require_safety_requirement", "safety_requirement": "professional-oversight"},
        ],
    ),
    RuleSpec(
        "minors",
        "Minors",
        "'minors' in end_users",
        [
            {"type": "raise_tier", "tier": "high"},
            {"type": "add_flag", "flag": "minors"},
            {"type": "route_queue", "queue": "high-risk"},
        ],
    ),
    RuleSpec(
        "consumer-chat",
        "Consumer chatbot",
        "category == 'assistant_chatbot' and 'consumers' in end_users",
        [{"type": "raise_tier", "tier": "medium"}],
    ),
    RuleSpec(
        "automated",
        "Automated decisions",
        "human_review_of_outputs == false and 'credit' in domains",
        [{"type": "raise_tier", "tier": "high"}, {"type": "add_flag", "flag": "automated"}],
    ),
    RuleSpec(
        "volume",
        "High volume",
        "monthly_requests != null and monthly_requests > 1000000",
        [{"type": "add_flag", "flag": "high_volume"}],
    ),
]
LISTS = {"weapons": {"phrases": ["nerve agent", "bioweapon*", "3d printed gun"]}}


@pytest.mark.parametrize(
    ("content", "tier", "queue", "fired"),
    [
        ({"title": "Notes", "domains": ["general"]}, "low", "standard", []),
        (
            {"title": "Chat", "category": "assistant_chatbot", "end_users": ["consumers"]},
            "medium",
            "standard",
            ["consumer-chat"],
        ),
        ({"domains": ["health"]}, "high", "high-risk", ["health"]),
        (
            {"end_users": ["minors"], "category": "assistant_chatbot"},
            "high",
            "high-risk",
            ["minors"],
        ),
        (
            {"description": "Synthesis routes for a Nerve-Agent"},
            "prohibited",
            "policy-violations",
            ["weapons"],
        ),
        ({"description": "our bioweapons lab"}, "prohibited", "policy-violations", ["weapons"]),
        (
            {"description": "agentive nerve agents"},
            "low",
            "standard",
            [],
        ),  # no wildcard: plural does not match
        ({"description": "a nervous agent"}, "low", "standard", []),
        (
            {"domains": ["credit"], "human_review_of_outputs": False},
            "high",
            "high-risk",
            ["automated"],
        ),
        ({"domains": ["credit"], "human_review_of_outputs": None}, "low", "standard", []),
        ({"monthly_requests": 5_000_000}, "low", "standard", ["volume"]),
        ({"monthly_requests": None}, "low", "standard", []),
        (
            {"domains": ["health", "weapons"], "end_users": ["minors"]},
            "prohibited",
            "high-risk",
            ["weapons", "health", "minors"],
        ),
    ],
)
def test_engine_table(content: dict, tier: str, queue: str, fired: list[str]) -> None:
    outcome = ruleset(*RULES, keyword_lists=LISTS).evaluate(content)
    assert outcome.tier == tier
    assert outcome.queue == queue
    assert [f.key for f in outcome.fired] == fired
    assert outcome.errors == []


def test_actions_are_collected_and_explained() -> None:
    outcome = ruleset(*RULES, keyword_lists=LISTS).evaluate(
        {
            "title": "Kids' tutor",
            "description": "Mentions a nerve agent",
            "domains": ["health"],
            "end_users": ["minors"],
        }
    )
    assert outcome.flags == ["minors"]
    assert outcome.safety_requirements == ["professional-oversight"]
    assert outcome.policy_sections == ["usage-1.1"]
    weapons = outcome.fired[0]
    assert weapons.matches == [
        {"signal": "weapons", "text": "nerve agent", "field": "description", "span": [11, 22]}
    ]
    assert "“nerve agent” in description" in weapons.explanation
    assert 'end_users = ["minors"]' in outcome.fired[2].explanation


def test_keyword_spans_are_code_points_with_non_ascii_text() -> None:
    matches = KeywordMatcher({"w": ["nerve agent"]}).match(
        {"description": "Ünïcödé — nerve agent 🚀"}
    )
    assert [(m.start, m.end) for m in matches] == [(10, 21)]


def test_evaluation_error_fails_closed() -> None:
    bad = RuleSpec(
        "bad", "Unguarded", "monthly_requests > 5", [{"type": "raise_tier", "tier": "low"}]
    )
    outcome = ruleset(bad).evaluate({"monthly_requests": None})
    assert outcome.tier == "medium"
    assert "triage_error" in outcome.flags
    assert outcome.errors and outcome.errors[0]["rule"] == "bad"


def test_disabled_rule_does_not_fire() -> None:
    rule = RuleSpec(
        "h",
        "Health",
        "'health' in domains",
        [{"type": "raise_tier", "tier": "high"}],
        enabled=False,
    )
    assert ruleset(rule).evaluate({"domains": ["health"]}).tier == "low"


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("'health' in domian", "unknown field 'domian'; did you mean 'domains'?"),
        ("monthly_requests >", "syntax error"),
        ("title + 1", "mismatch"),
        ("title =~ '(a+)+$'", "regular-expression operators"),
        ("", "the condition is empty"),
    ],
)
def test_condition_validation(condition: str, message: str) -> None:
    with pytest.raises(RuleValidationError) as info:
        compile_condition(condition, rule_key="r1")
    assert message in str(info.value)
    assert "rule 'r1'" in str(info.value)


@pytest.mark.parametrize(
    ("rule", "lists", "message"),
    [
        (
            RuleSpec("r", "R", "'weapon' in signals", [{"type": "add_flag", "flag": "x"}]),
            {"weapons": ["gun"]},
            "unknown keyword list 'weapon'",
        ),
        (RuleSpec("r", "R", "true", [{"type": "explode"}]), {}, "unknown action type 'explode'"),
        (
            RuleSpec("r", "R", "true", [{"type": "raise_tier", "tier": "extreme"}]),
            {},
            "unknown tier 'extreme'",
        ),
        (
            RuleSpec("r", "R", "true", [{"type": "route_queue", "queue": "nowhere"}]),
            {},
            "unknown queue 'nowhere'",
        ),
        (RuleSpec("r", "R", "true", []), {}, "at least one action"),
        (
            RuleSpec("r", "R", "true", [{"type": "add_flag", "flag": "x"}]),
            {"Bad Name": ["x"]},
            "keyword list name",
        ),
        (
            RuleSpec("r", "R", "true", [{"type": "add_flag", "flag": "x"}]),
            {"empty": []},
            "has no phrases",
        ),
    ],
)
def test_ruleset_validation(rule: RuleSpec, lists: dict, message: str) -> None:
    with pytest.raises(RuleValidationError, match=message):
        ruleset(
            rule, keyword_lists=lists, known_queues=["standard", "high-risk", "policy-violations"]
        )


def test_duplicate_rule_keys_are_refused() -> None:
    rule = RuleSpec("same", "A", "true", [{"type": "add_flag", "flag": "x"}])
    with pytest.raises(RuleValidationError, match="duplicate rule key"):
        ruleset(rule, rule)


def test_examples_are_checked() -> None:
    good = RuleSpec(
        "h",
        "Health",
        "'health' in domains",
        [{"type": "raise_tier", "tier": "high"}],
        examples={
            "must_fire": [{"domains": ["health"]}],
            "must_not_fire": [{"domains": ["general"]}],
        },
    )
    bad = RuleSpec(
        "b",
        "Broken",
        "'credit' in domains",
        [{"type": "raise_tier", "tier": "high"}],
        examples={"must_fire": [{"domains": ["health"]}]},
    )
    assert ruleset(good).check_examples() == []
    assert ruleset(good, bad).check_examples() == ["rule 'b': must_fire example #1 did not behave"]


def test_canonical_hash_ignores_key_order() -> None:
    assert canonical_hash({"a": 1, "b": [1, 2]}) == canonical_hash({"b": [1, 2], "a": 1})
    assert canonical_hash({"a": 1}) != canonical_hash({"a": 2})


def test_default_ruleset_examples_pass(tmp_path: object) -> None:
    """Every rule of config/ruleset.yaml behaves on its own examples."""
    from pathlib import Path

    import yaml

    from reviewapp.triage.ruleset_file import load_ruleset_yaml, parse_ruleset_document

    root = Path(__file__).resolve().parents[2] / "config"
    tiers = yaml.safe_load((root / "tiers.yaml").read_text())["tiers"]
    spec = parse_ruleset_document(
        load_ruleset_yaml(root / "ruleset.yaml"),
        tiers=[t["name"] for t in tiers],
        tier_queues={t["name"]: t["default_queue"] for t in tiers},
    )
    compiled = CompiledRuleset(spec)
    assert compiled.check_examples() == []
    assert all(r.examples.get("must_fire") and r.examples.get("must_not_fire") for r in spec.rules)


def test_known_results_are_used_instead_of_evaluating() -> None:
    compiled = ruleset(*RULES, keyword_lists=LISTS)
    content = {"domains": ["health"], "end_users": ["minors"]}
    full = compiled.evaluate(content)
    known = {r.spec.key: r.spec.key in {f.key for f in full.fired} for r in compiled.rules}
    assert compiled.evaluate(content, known).as_dict() == full.as_dict()
    # a known result wins over the condition: the rule is not evaluated
    assert compiled.evaluate({"domains": ["general"]}, {"health": True}).tier == "high"


def test_rule_fingerprint_tracks_condition_actions_and_the_lists_it_reads() -> None:
    from reviewapp.triage.engine import rule_fingerprint

    rule = RULES[0]
    base = rule_fingerprint(rule, LISTS)
    assert rule_fingerprint(rule, {**LISTS, "other": ["x"]}) == base  # a list it does not read
    assert rule_fingerprint(rule, {"weapons": {"phrases": ["nerve agent"]}}) != base
    changed = RuleSpec(
        rule.key, rule.name, rule.condition, [{"type": "raise_tier", "tier": "high"}]
    )
    assert rule_fingerprint(changed, LISTS) != base


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (
            "[[a for a in description.to_ary] for b in description.to_ary].length > 0",
            "comprehensions",
        ),
        ("$now > 1", "built-in functions"),
        ("title.to_ary.length > 1", "attribute .to_ary is not allowed"),
        ("title.as_lower.to_set == domains", "attribute .to_set is not allowed"),
    ],
)
def test_costly_or_clock_dependent_conditions_are_refused(condition: str, message: str) -> None:
    with pytest.raises(RuleValidationError, match=message):
        compile_condition(condition)


def test_allowed_attributes_and_dotted_literals_still_compile() -> None:
    for condition in (
        "title.as_lower == 'x'",
        "'x.to_ary' in title",
        "monthly_requests != null and monthly_requests > 1.5e6",
        "domains.length > 2",
    ):
        compile_condition(condition)


def test_phrase_boundaries_follow_the_phrase() -> None:
    matcher = KeywordMatcher({"tech": ["c++", ".net", "🤖 robot", "firearm*"]})
    found = [
        m.text
        for m in matcher.match(
            {"title": "C++ and .NET, 🤖 robot, firearms, but not cplusplus or dotnet"}
        )
    ]
    assert found == ["C++", ".NET", "🤖 robot", "firearms"]
    assert KeywordMatcher({"x": ["gun"]}).match({"title": "shotgun begun gunnery"}) == []


@pytest.mark.parametrize(
    ("phrases", "message"),
    [
        (["*"], "at least 3 letters"),
        (["ab*"], "at least 3 letters"),
        (["x*y"], "may only end a word"),
        (["a" * 201], "longer than 200"),
        (["bad\u202ephrase"], "invisible"),
        (["p"] * 2001, "the limit is 2000"),
    ],
)
def test_phrase_limits(phrases: list[str], message: str) -> None:
    with pytest.raises(RuleValidationError, match=message):
        KeywordMatcher({"x": phrases})


# The checker reads the condition as rule-engine does: an escaped backslash or quote inside a
# string literal must not make it see a string where the language sees an operator. Each of
# these hides a refused construct between two literals that end in an escaped backslash.
@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (r"title != 'x\\' and title =~ '(a|a)*c'", "regular-expression operators"),
        (r'title != "x\\" and title =~ "(a|a)*c"', "regular-expression operators"),
        (r"title != 'x\\' and title !~~ '(a|a)*c' and '\\' == ''", "regular-expression operators"),
        (r"title != 'it\'s' and title =~ '(a|a)*c' and '\'' == ''", "regular-expression operators"),
        (r"title != r'x\\' and title =~ '(a|a)*c'", "regular-expression operators"),
        (r"title != s'x\\' and title =~ '(a|a)*c'", "regular-expression operators"),
        (
            r"title != '\\' and [[c for c in description.to_ary] for d in description.to_ary]"
            r".length > 0 and '\\' == ''",
            "comprehensions",
        ),
        (
            r'title != "\\" and [[c for c in description] for d in domains].length > 0 '
            r'and "\\" == ""',
            "comprehensions",
        ),
        (r"title != '\\' and $now > 1 and '\\' == ''", "built-in functions"),
        (r'title != "\\" and $now > 1 and "\\" == ""', "built-in functions"),
        (r"title != '\\' and description.to_ary.length > 0 and '\\' == ''", "attribute .to_ary"),
        (r'title != "\\" and description&.to_set == domains and "\\" == ""', "attribute .to_set"),
        ("title.length << 100000000 > 0", "bit shifts"),
        ("title.length >> 2 > 0", "bit shifts"),
    ],
)
def test_refused_constructs_cannot_hide_behind_escaped_quotes(condition: str, message: str) -> None:
    with pytest.raises(RuleValidationError, match=message):
        compile_condition(condition, rule_key="r1")


def test_forbidden_words_inside_literals_and_comments_still_compile() -> None:
    for condition in (
        r"title != 'a =~ b, $now, x for y in z, .to_ary' and title != '\\'",
        r'title != "it\"s =~ ok" and title != "\\"',
        r"title != 'it\'s $5' and title.starts_with('for')",
        "'health' in domains  # not a regex: =~ $now for .to_ary",
    ):
        compile_condition(condition)


def test_the_parsed_tree_is_checked_as_well(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second, independent check on rule-engine's parsed tree refuses the same constructs."""
    from reviewapp.triage import engine

    monkeypatch.setattr(engine, "_refuse_costly_tokens", lambda tokens: None)
    for condition, message in (
        ("title =~ 'x'", "regular-expression operators"),
        ("$now != null", "built-in functions"),
        ("title.to_ary.length > 0", "attribute .to_ary"),
        ("title.length << 3 > 0", "bit shifts"),
    ):
        with pytest.raises(RuleValidationError, match=message):
            compile_condition(condition)


@pytest.mark.parametrize(
    "condition",
    [
        "not " * 999 + "true",
        "-" * 3990 + "1.0 > 0",
        " or ".join(["'health' in domains"] * 150),
        "not " * 100 + "title == ''",
    ],
    ids=["not-999", "minus-3990", "or-150", "not-100"],
)
def test_deeply_nested_conditions_are_refused_with_a_message(condition: str) -> None:
    with pytest.raises(RuleValidationError, match="nested more than 100 levels deep") as info:
        compile_condition(condition, rule_key="deep")
    assert "rule 'deep'" in str(info.value)


def test_conditions_up_to_the_depth_limit_compile_and_evaluate() -> None:
    rule = RuleSpec(
        "many",
        "Many domains",
        " or ".join(["'general' in domains"] * 98 + ["'health' in domains"]),
        [{"type": "raise_tier", "tier": "high"}],
    )
    assert ruleset(rule).evaluate({"domains": ["health"]}).tier == "high"
    compile_condition("not " * 98 + "title == ''")


def test_keyword_list_typos_are_found_next_to_escaped_quotes() -> None:
    rule = RuleSpec(
        "r",
        "R",
        r"title != 'x\\' and 'weapon' in signals",
        [{"type": "add_flag", "flag": "x"}],
    )
    with pytest.raises(RuleValidationError, match="unknown keyword list 'weapon'"):
        ruleset(rule, keyword_lists={"weapons": ["gun"]})


def test_explanations_name_the_fields_the_condition_reads() -> None:
    rule = RuleSpec(
        "r",
        "R",
        r"title != 'description \' and domains' and 'health' in domains",
        [{"type": "add_flag", "flag": "x"}],
    )
    fired = ruleset(rule).evaluate({"title": "T", "domains": ["health"]}).fired
    assert fired[0].values == {"title": "T", "domains": ["health"]}
