"""Reading and writing rulesets as YAML (``config/ruleset.yaml`` and the ruleset CLI).

Format::

    description: text
    fail_closed_tier: medium
    keyword_lists:
      weapons:
        description: what the list is for
        phrases: [firearm*, nerve agent, ...]
    rules:
      - key: stable-key
        name: Human name
        description: why the rule exists (policy language)
        condition: "'weapons' in signals"
        actions:
          - {type: raise_tier, tier: prohibited}
        enabled: true
        examples:
          must_fire: [{...application content...}]
          must_not_fire: [{...}]

Tiers and their default queues are not part of a ruleset; they come from the tier table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from reviewapp.triage.engine import RulesetSpec, RuleSpec, RuleValidationError

RULE_KEYS = {"key", "name", "description", "condition", "actions", "enabled", "examples"}


def parse_ruleset_document(
    document: Mapping[str, Any],
    *,
    tiers: list[str],
    tier_queues: Mapping[str, str],
    known_queues: Iterable[str] | None = None,
    known_safety_requirements: Iterable[str] | None = None,
    known_policy_sections: Iterable[str] | None = None,
) -> RulesetSpec:
    """Turn a parsed ruleset document into a :class:`RulesetSpec` (not yet compiled).

    Raises:
        RuleValidationError: when the document's shape is wrong (missing keys, wrong types).
    """
    if not isinstance(document, Mapping):
        raise RuleValidationError("a ruleset document must be a mapping")
    rules_raw = document.get("rules")
    if not isinstance(rules_raw, list):
        raise RuleValidationError("'rules' must be a list")
    rules = []
    for i, raw in enumerate(rules_raw, start=1):
        if not isinstance(raw, Mapping):
            raise RuleValidationError(f"rule #{i} must be a mapping")
        unknown = set(raw) - RULE_KEYS
        if unknown:
            raise RuleValidationError(f"rule #{i}: unknown keys {sorted(unknown)}")
        for needed in ("key", "name", "condition", "actions"):
            if needed not in raw:
                raise RuleValidationError(f"rule #{i}: missing {needed!r}")
        actions = raw["actions"]
        if not isinstance(actions, list) or not all(isinstance(a, Mapping) for a in actions):
            raise RuleValidationError(
                "actions must be a list of mappings", rule_key=str(raw["key"]), where="actions"
            )
        rules.append(
            RuleSpec(
                key=str(raw["key"]),
                name=str(raw["name"]),
                condition=str(raw["condition"]),
                actions=[{str(k): str(v) for k, v in a.items()} for a in actions],
                description=str(raw.get("description") or ""),
                enabled=bool(raw.get("enabled", True)),
                examples=dict(raw.get("examples") or {}),
            )
        )
    keyword_lists = document.get("keyword_lists") or {}
    if not isinstance(keyword_lists, Mapping):
        raise RuleValidationError("'keyword_lists' must be a mapping")
    return RulesetSpec(
        tiers=tiers,
        tier_queues=tier_queues,
        rules=rules,
        keyword_lists=dict(keyword_lists),
        fail_closed_tier=str(document.get("fail_closed_tier") or "medium"),
        known_queues=known_queues,
        known_safety_requirements=known_safety_requirements,
        known_policy_sections=known_policy_sections,
    )


def load_ruleset_yaml(path: str | Path) -> dict[str, Any]:
    """Read a ruleset YAML file into a plain document.

    Raises:
        RuleValidationError: when the file is not valid YAML (with line and column).
    """
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RuleValidationError(f"invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(document, dict):
        raise RuleValidationError("the file does not contain a ruleset mapping")
    return document


def dump_ruleset_yaml(document: Mapping[str, Any]) -> str:
    """Serialise a ruleset document as YAML (keys in a stable, readable order)."""
    return yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True, width=100)
