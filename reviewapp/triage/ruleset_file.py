"""Reading and writing rulesets as YAML (``config/ruleset.yaml`` and the ruleset CLI).

Format::

    description: text
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

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from reviewapp.triage.engine import RulesetSpec, RuleSpec, RuleValidationError

RULE_KEYS = {"key", "name", "description", "condition", "actions", "enabled", "examples"}
RULE_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MAX_EXAMPLES = 50


class _NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without anchors/aliases: an alias can expand a few bytes into gigabytes."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)


def safe_load_yaml(text: str) -> Any:
    """``yaml.safe_load`` without aliases. Raises yaml.YAMLError."""
    return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass  # nosec B506


def validate_examples(examples: Any, *, rule_key: str) -> dict[str, Any]:
    """Check a rule's examples: ``must_fire``/``must_not_fire`` lists of application content
    that passes the application schema (so an example can never crash evaluation).

    Raises:
        RuleValidationError: with the example and field at fault.
    """
    from reviewapp.applications.schema import clean_content
    from reviewapp.errors import ValidationFailed

    if not isinstance(examples, Mapping) or set(examples) - {"must_fire", "must_not_fire"}:
        raise RuleValidationError(
            "examples must be a mapping with must_fire and must_not_fire lists",
            rule_key=rule_key,
            where="examples",
        )
    cleaned: dict[str, Any] = {}
    for kind, items in examples.items():
        if not isinstance(items, list) or len(items) > MAX_EXAMPLES:
            raise RuleValidationError(
                f"{kind} must be a list of at most {MAX_EXAMPLES} applications",
                rule_key=rule_key,
                where="examples",
            )
        cleaned[kind] = []
        for n, item in enumerate(items, start=1):
            if not isinstance(item, Mapping):
                raise RuleValidationError(
                    f"{kind} example #{n} must be a mapping of application fields",
                    rule_key=rule_key,
                    where="examples",
                )
            try:
                cleaned[kind].append(clean_content(dict(item), for_submit=False, partial=True))
            except ValidationFailed as exc:
                detail = "; ".join(f"{k}: {v}" for k, v in exc.fields.items())
                raise RuleValidationError(
                    f"{kind} example #{n}: {detail}", rule_key=rule_key, where="examples"
                ) from None
    return cleaned


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
    unknown_top = set(document) - {"description", "keyword_lists", "rules"}
    if unknown_top:
        raise RuleValidationError(
            f"unknown top-level keys {sorted(unknown_top)}; use description, keyword_lists, rules"
        )
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
        for text_key in ("key", "name", "condition"):
            if not isinstance(raw[text_key], str) or not raw[text_key].strip():
                raise RuleValidationError(
                    f"rule #{i}: {text_key!r} must be non-empty text (quote it in YAML)"
                )
        if not RULE_KEY_RE.fullmatch(raw["key"]):
            raise RuleValidationError(
                f"rule #{i}: key {raw['key']!r} must start with a letter or digit and use only letters, digits, - _ ."
            )
        if not isinstance(raw.get("enabled", True), bool):
            raise RuleValidationError(f"rule #{i}: 'enabled' must be true or false (unquoted)")
        if not isinstance(raw.get("description") or "", str):
            raise RuleValidationError(f"rule #{i}: 'description' must be text")
        examples = validate_examples(raw.get("examples") or {}, rule_key=raw["key"])
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
                examples=examples,
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
        fail_closed_tier="medium",
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
        document = safe_load_yaml(Path(path).read_text(encoding="utf-8"))
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
