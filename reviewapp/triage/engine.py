"""The triage engine: pure code, plain data in, (tier, queue, fired rules, explanations) out.

No Flask and no SQLAlchemy here. A ruleset is compiled once (:class:`CompiledRuleset`) and then
evaluated against application content many times.

Rule conditions are written in the `rule-engine` expression language
(https://zerosteiner.github.io/rule-engine/), type-checked against :data:`RULE_FIELDS` when the
rule is compiled: a typo in a field name, a syntax error or a type mismatch is a
:class:`RuleValidationError` naming the rule and the problem. The language has no path to Python
objects, files or imports, and evaluation is linear in the size of the expression and the text: regular expressions,
comprehensions, ``$`` built-ins, bit shifts and attributes other than ``as_lower``, ``as_upper``,
``length``, ``is_empty``, ``starts_with`` and ``ends_with`` are refused when a rule is compiled,
as are conditions nested more than :data:`MAX_CONDITION_DEPTH` levels deep. The refusals are
checked on rule-engine's own tokens and parsed tree, never on a pattern over the raw text.

Free text is never matched by admin-written regular expressions. Admins keep named keyword lists
(literal phrases; ``*`` at the end of a word matches any ending, a space matches any run of spaces
or hyphens); the engine matches every list once per application with RE2, a linear-time matcher,
and exposes the names of the lists that matched as the set ``signals``. Explanations carry the
matched phrase, field and character span.

Evaluation errors fail closed: the tier is raised to at least ``fail_closed_tier`` and the flag
``triage_error`` is added, so a broken rule sends applications to a human, never to a lower tier.
"""

from __future__ import annotations

import codecs
import decimal
import functools
import hashlib
import json
import re as stdlib_re
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import re2
import rule_engine
import rule_engine.ast as rule_ast
from rule_engine import DataType

ACTION_TYPES = (
    "raise_tier",
    "route_queue",
    "add_flag",
    "require_safety_requirement",
    "suggest_policy_section",
)
_ACTION_ARG = {
    "raise_tier": "tier",
    "route_queue": "queue",
    "add_flag": "flag",
    "require_safety_requirement": "safety_requirement",
    "suggest_policy_section": "policy_section",
}

TEXT_FIELDS = ("title", "description", "benefits", "safety_measures")


@dataclass(frozen=True)
class FieldInfo:
    """A name a rule condition may use: its rule-language type, meaning and an example."""

    name: str
    type_name: str
    description: str
    example: str


RULE_FIELDS: tuple[FieldInfo, ...] = (
    FieldInfo("title", "STRING", "Application title", "'chat' in title.as_lower"),
    FieldInfo(
        "category",
        "STRING",
        "Use-case category key (vocabulary)",
        "category == 'assistant_chatbot'",
    ),
    FieldInfo("description", "STRING", "What the deployment does", "description != ''"),
    FieldInfo("benefits", "STRING", "Intended benefits", "benefits == ''"),
    FieldInfo(
        "safety_measures", "STRING", "Safety measures already in place", "safety_measures == ''"
    ),
    FieldInfo("product_url", "STRING", "Product URL", "product_url == ''"),
    FieldInfo(
        "end_users",
        "SET(STRING)",
        "Who uses the outputs (vocabulary keys)",
        "'minors' in end_users",
    ),
    FieldInfo("domains", "SET(STRING)", "Domains (vocabulary keys)", "'health' in domains"),
    FieldInfo("modalities", "SET(STRING)", "Input/output modalities", "'image' in modalities"),
    FieldInfo(
        "monthly_requests",
        "FLOAT or null",
        "Expected requests per month",
        "monthly_requests != null and monthly_requests > 1e6",
    ),
    FieldInfo(
        "human_review_of_outputs",
        "BOOLEAN or null",
        "A human reviews outputs before they reach end users (null: not stated)",
        "human_review_of_outputs == false",
    ),
    FieldInfo(
        "signals",
        "SET(STRING)",
        "Names of keyword lists that matched the text",
        "'weapons' in signals",
    ),
)

_TYPES: dict[str, Any] = {
    "title": DataType.STRING,
    "category": DataType.STRING,
    "description": DataType.STRING,
    "benefits": DataType.STRING,
    "safety_measures": DataType.STRING,
    "product_url": DataType.STRING,
    "end_users": DataType.SET(DataType.STRING),
    "domains": DataType.SET(DataType.STRING),
    "modalities": DataType.SET(DataType.STRING),
    "monthly_requests": DataType.FLOAT,
    "human_review_of_outputs": DataType.BOOLEAN,
    "signals": DataType.SET(DataType.STRING),
}
_CONTEXT = rule_engine.Context(type_resolver=rule_engine.type_resolver_from_dict(_TYPES))
#: attributes a condition may use (cheap, linear); everything else (to_ary, to_set, …) is refused
ALLOWED_ATTRIBUTES = frozenset(
    {"as_lower", "as_upper", "length", "is_empty", "starts_with", "ends_with"}
)
#: the deepest expression tree a condition may have (``not not … x``, ``a or b or …`` and
#: ``- - … 1`` each add a level, parentheses do not). rule-engine builds and evaluates the tree
#: recursively, so without a limit a deep condition exhausts the Python stack.
MAX_CONDITION_DEPTH = 100
MAX_CONDITION_LENGTH = 4000


class RuleValidationError(ValueError):
    """A rule or ruleset is invalid. ``rule_key`` names the rule (None: the ruleset itself)."""

    def __init__(
        self, message: str, *, rule_key: str | None = None, where: str = "condition"
    ) -> None:
        prefix = f"rule {rule_key!r}, {where}: " if rule_key else ""
        super().__init__(prefix + message)
        self.rule_key = rule_key
        self.where = where
        self.detail = message


@dataclass(frozen=True)
class RuleSpec:
    """One rule as plain data (stored in the database or in YAML)."""

    key: str
    name: str
    condition: str
    actions: Sequence[Mapping[str, str]]
    description: str = ""
    enabled: bool = True
    examples: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RulesetSpec:
    """A whole ruleset as plain data.

    ``tiers`` are ordered from lowest to highest risk; ``tier_queues`` maps a tier to the queue
    an application of that tier goes to when no fired rule routes it elsewhere.
    """

    tiers: Sequence[str]
    tier_queues: Mapping[str, str]
    rules: Sequence[RuleSpec]
    keyword_lists: Mapping[str, Any] = field(default_factory=dict)
    fail_closed_tier: str = "medium"
    known_queues: Iterable[str] | None = None
    known_safety_requirements: Iterable[str] | None = None
    known_policy_sections: Iterable[str] | None = None


@dataclass(frozen=True)
class KeywordMatch:
    """One keyword-list hit: list name, phrase text as found, field, [start, end) code points."""

    signal: str
    text: str
    field: str
    start: int
    end: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "text": self.text,
            "field": self.field,
            "span": [self.start, self.end],
        }


@dataclass
class FiredRule:
    """A rule that matched, its actions and why (field values and keyword matches it read)."""

    key: str
    name: str
    actions: list[dict[str, str]]
    explanation: str
    values: dict[str, Any]
    matches: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "actions": self.actions,
            "explanation": self.explanation,
            "values": self.values,
            "matches": self.matches,
        }


@dataclass
class TriageOutcome:
    """Result of evaluating a ruleset against one application's content."""

    tier: str
    queue: str
    fired: list[FiredRule]
    flags: list[str]
    safety_requirements: list[str]
    policy_sections: list[str]
    errors: list[dict[str, str]]
    signals: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "queue": self.queue,
            "fired": [f.as_dict() for f in self.fired],
            "flags": self.flags,
            "safety_requirements": self.safety_requirements,
            "policy_sections": self.policy_sections,
            "errors": self.errors,
            "signals": self.signals,
        }


def phrase_pattern(phrase: str) -> str:
    """Translate one keyword phrase into an RE2 pattern fragment (see module docstring).

    Raises:
        RuleValidationError: for an empty phrase.
    """
    text = phrase.strip()
    words = text.lower().split()
    if not words:
        raise RuleValidationError("empty phrase in keyword list")
    if len(text) > MAX_PHRASE_LENGTH:
        raise RuleValidationError(
            f"phrase {text[:30]!r}… is longer than {MAX_PHRASE_LENGTH} characters"
        )
    if any(
        ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or unicodedata.category(c) in ("Cf", "Cs")
        for c in text
    ):
        raise RuleValidationError(
            f"phrase {text[:30]!r} contains control or invisible formatting characters"
        )
    parts = []
    for word in words:
        wildcard = word.endswith("*")
        stem = word.rstrip("*")
        if "*" in stem:
            raise RuleValidationError(f"phrase {text!r}: '*' may only end a word")
        if wildcard and len(stem) < (3 if len(words) == 1 else 1):
            raise RuleValidationError(
                f"phrase {text!r}: a one-word wildcard needs at least 3 letters before '*'"
            )
        parts.append(re2.escape(stem) + (r"\w*" if wildcard else ""))
    body = r"[\s\-]+".join(parts)
    # word boundaries only next to word characters, so "c++", ".net" and "🤖 robot" can match
    start = r"\b" if _is_word_char(words[0][0]) else ""
    end = r"\b" if _is_word_char(words[-1].rstrip("*")[-1:] or "x") else ""
    return start + body + end


MAX_PHRASE_LENGTH = 200
MAX_PHRASES_PER_LIST = 2000


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


class KeywordMatcher:
    """Matches named keyword lists against text fields with RE2 (linear time, no backtracking)."""

    def __init__(self, keyword_lists: Mapping[str, Any]) -> None:
        self._patterns: list[tuple[str, Any]] = []
        self._sources: list[str] = []
        self._samples: list[str] = []
        for name, spec in keyword_lists.items():
            phrases = spec["phrases"] if isinstance(spec, Mapping) else spec
            if not stdlib_re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise RuleValidationError(
                    f"keyword list name {name!r} must be lower-case letters, digits and _"
                )
            if not phrases:
                raise RuleValidationError(f"keyword list {name!r} has no phrases")
            if len(phrases) > MAX_PHRASES_PER_LIST:
                raise RuleValidationError(
                    f"keyword list {name!r} has {len(phrases)} phrases; the limit is {MAX_PHRASES_PER_LIST}"
                )
            self._samples += [str(p).replace("*", "") for p in phrases[:3]]
            try:
                body = "|".join(phrase_pattern(str(p)) for p in phrases)
            except RuleValidationError as exc:
                raise RuleValidationError(f"keyword list {name!r}: {exc.detail}") from None
            options = re2.Options()
            options.case_sensitive = False
            options.max_mem = 64 << 20
            self._patterns.append((name, re2.compile(f"(?:{body})", options)))
            self._sources.append(f"(?:{body})")
        self._prefilter = self._build_prefilter()

    def _build_prefilter(self) -> Any:
        """One RE2 set of all list patterns: which lists can match at all, in one linear scan.

        ``re2.Set`` runs every list's own pattern (same options) over the text at once and reports
        the indices of the lists that match somewhere; :meth:`match` then runs only those lists'
        patterns for the exact spans. Returns None (scan every list) if the set cannot be built
        or fails a self-check.
        """
        if not self._patterns:
            return None
        options = re2.Options()
        options.case_sensitive = False
        options.max_mem = 64 << 20
        try:
            prefilter = re2.Set.SearchSet(options)
            for source in self._sources:
                prefilter.Add(source)
            prefilter.Compile()
            # self-check: on a text made of phrases of every list, the set and the lists agree
            sample = " ; ".join(self._samples)
            expected = [
                i for i, (_, pattern) in enumerate(self._patterns) if pattern.search(sample)
            ]
            if sorted(prefilter.Match(sample) or ()) != expected:
                return None
        except re2.error:
            return None
        return prefilter

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self._patterns]

    def match(self, content: Mapping[str, Any]) -> list[KeywordMatch]:
        """All matches in TEXT_FIELDS of ``content``, grouped by list, in text order."""
        found: list[KeywordMatch] = []
        patterns = self._patterns
        texts = [content.get(f) or "" for f in TEXT_FIELDS]
        if self._prefilter is not None and all(type(t) is str for t in texts):
            # "\n" keeps every field's word boundaries; a phrase spanning two fields can only
            # add a candidate list, which the per-field scan below then does not confirm
            hits = self._prefilter.Match("\n".join(texts))
            if not hits:
                return found
            patterns = [self._patterns[i] for i in sorted(hits)]
        for name, pattern in patterns:
            for field_name in TEXT_FIELDS:
                text = content.get(field_name) or ""
                if not text:
                    continue
                for m in pattern.finditer(text):
                    found.append(KeywordMatch(name, m.group(0), field_name, m.start(), m.end()))
        return found


def rule_context(content: Mapping[str, Any], signals: Iterable[str]) -> dict[str, Any]:
    """Build the typed values a rule condition sees from application content."""
    monthly = content.get("monthly_requests")
    return {
        "title": content.get("title") or "",
        "category": content.get("category") or "",
        "description": content.get("description") or "",
        "benefits": content.get("benefits") or "",
        "safety_measures": content.get("safety_measures") or "",
        "product_url": content.get("product_url") or "",
        "end_users": set(content.get("end_users") or ()),
        "domains": set(content.get("domains") or ()),
        "modalities": set(content.get("modalities") or ()),
        "monthly_requests": float(monthly) if monthly is not None else None,
        "human_review_of_outputs": content.get("human_review_of_outputs"),
        "signals": set(signals),
    }


@dataclass
class _CompiledRule:
    spec: RuleSpec
    rule: Any
    fields: tuple[str, ...]
    signal_literals: frozenset[str]
    fast: Callable[[dict[str, Any]], Any] | None = None
    fingerprint: str = ""


class CompiledRuleset:
    """A validated, compiled ruleset, ready to evaluate many applications.

    Raises:
        RuleValidationError: on the first invalid rule, action or keyword list.
    """

    def __init__(self, spec: RulesetSpec) -> None:
        if not spec.tiers:
            raise RuleValidationError("a ruleset needs at least one tier")
        self.spec = spec
        self.tier_rank = {t: i for i, t in enumerate(spec.tiers)}
        for tier in spec.tiers:
            if tier not in spec.tier_queues:
                raise RuleValidationError(f"tier {tier!r} has no default queue")
        if spec.fail_closed_tier not in self.tier_rank:
            raise RuleValidationError(f"fail-closed tier {spec.fail_closed_tier!r} is not a tier")
        self.matcher = KeywordMatcher(spec.keyword_lists)
        keys: set[str] = set()
        self.rules: list[_CompiledRule] = []
        for rs in spec.rules:
            if rs.key in keys:
                raise RuleValidationError("duplicate rule key", rule_key=rs.key, where="key")
            keys.add(rs.key)
            self._check_actions(rs)
            compiled = compile_condition(rs.condition, rule_key=rs.key)
            self._check_signal_names(rs)
            if rs.enabled:
                literals = _string_literals(rs.condition)
                names_read = _fields_read(rs.condition)
                fields_used = tuple(
                    f.name for f in RULE_FIELDS if f.name != "signals" and f.name in names_read
                )
                self.rules.append(
                    _CompiledRule(
                        rs,
                        compiled,
                        fields_used,
                        frozenset(literals),
                        translate_condition(compiled),
                        rule_fingerprint(rs, spec.keyword_lists),
                    )
                )

    def _check_actions(self, rs: RuleSpec) -> None:
        if not rs.actions:
            raise RuleValidationError(
                "a rule needs at least one action", rule_key=rs.key, where="actions"
            )
        known = {
            "route_queue": set(self.spec.known_queues)
            if self.spec.known_queues is not None
            else None,
            "require_safety_requirement": set(self.spec.known_safety_requirements)
            if self.spec.known_safety_requirements is not None
            else None,
            "suggest_policy_section": set(self.spec.known_policy_sections)
            if self.spec.known_policy_sections is not None
            else None,
            "raise_tier": set(self.spec.tiers),
        }
        for action in rs.actions:
            kind = action.get("type")
            if kind not in ACTION_TYPES:
                raise RuleValidationError(
                    f"unknown action type {kind!r}; use one of {', '.join(ACTION_TYPES)}",
                    rule_key=rs.key,
                    where="actions",
                )
            arg = _ACTION_ARG[kind]
            value = action.get(arg)
            if not value or not isinstance(value, str):
                raise RuleValidationError(
                    f"action {kind} needs {arg!r}", rule_key=rs.key, where="actions"
                )
            allowed = known.get(kind)
            if allowed is not None and value not in allowed:
                raise RuleValidationError(
                    f"action {kind}: unknown {arg} {value!r}", rule_key=rs.key, where="actions"
                )

    def _check_signal_names(self, rs: RuleSpec) -> None:
        """Refuse ``'name' in signals`` naming no keyword list: most likely a typo."""
        names = set(self.matcher.names)
        for literal in _signal_tests(rs.condition):
            if literal not in names and stdlib_re.fullmatch(r"[a-z][a-z0-9_]*", literal):
                raise RuleValidationError(
                    f"unknown keyword list {literal!r}; known lists: {', '.join(sorted(names)) or 'none'}",
                    rule_key=rs.key,
                )

    @property
    def fingerprints(self) -> dict[str, str]:
        """Rule key -> :func:`rule_fingerprint` of every enabled rule."""
        return {cr.spec.key: cr.fingerprint for cr in self.rules}

    def evaluate(
        self, content: Mapping[str, Any], known: Mapping[str, bool] | None = None
    ) -> TriageOutcome:
        """Evaluate every enabled rule against ``content`` (application content dict).

        ``known`` maps rule keys to an already known result (fired or not) for this same
        content, e.g. from a stored triage result of a rule with the same fingerprint; those
        rules are not evaluated again (backtests use it). Explanations of known-fired rules are
        still built from the content.
        """
        matches = self.matcher.match(content)
        signals = sorted({m.signal for m in matches})
        ctx = rule_context(content, signals)
        fast_ctx = fast_context(ctx)
        tier_index = 0
        queue: str | None = None
        fired: list[FiredRule] = []
        flags: list[str] = []
        requirements: list[str] = []
        sections: list[str] = []
        errors: list[dict[str, str]] = []
        for cr in self.rules:
            hit = known.get(cr.spec.key) if known else None
            if hit is None and cr.fast is not None and fast_ctx is not None:
                try:
                    hit = bool(cr.fast(fast_ctx))
                except Exception:  # noqa: BLE001 - rule-engine decides (result or error)
                    hit = None
            if hit is None:
                try:
                    hit = bool(cr.rule.matches(ctx))
                except Exception as exc:  # noqa: BLE001 - any failure of one rule fails closed
                    errors.append({"rule": cr.spec.key, "error": f"{type(exc).__name__}: {exc}"})
                    continue
            if not hit:
                continue
            for action in cr.spec.actions:
                kind = action["type"]
                value = action[_ACTION_ARG[kind]]
                if kind == "raise_tier":
                    tier_index = max(tier_index, self.tier_rank[value])
                elif kind == "route_queue":
                    queue = queue or value
                elif kind == "add_flag":
                    _append_unique(flags, value)
                elif kind == "require_safety_requirement":
                    _append_unique(requirements, value)
                else:
                    _append_unique(sections, value)
            fired.append(self._explain(cr, ctx, matches))
        if errors:
            tier_index = max(tier_index, self.tier_rank[self.spec.fail_closed_tier])
            _append_unique(flags, "triage_error")
        tier = self.spec.tiers[tier_index]
        return TriageOutcome(
            tier=tier,
            queue=queue or self.spec.tier_queues[tier],
            fired=fired,
            flags=flags,
            safety_requirements=requirements,
            policy_sections=sections,
            errors=errors,
            signals=signals,
        )

    def _explain(
        self, cr: _CompiledRule, ctx: Mapping[str, Any], matches: list[KeywordMatch]
    ) -> FiredRule:
        values: dict[str, Any] = {}
        for name in cr.fields:
            value = ctx[name]
            if isinstance(value, set):
                value = sorted(value)
            elif isinstance(value, str) and len(value) > 120:
                value = value[:117] + "…"
            values[name] = value
        used = [m for m in matches if m.signal in cr.signal_literals]
        parts = [f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in values.items()]
        seen: dict[str, list[str]] = {}
        for m in used:
            seen.setdefault(m.signal, [])
            label = f"“{m.text}” in {m.field}"
            if label not in seen[m.signal] and len(seen[m.signal]) < 5:
                seen[m.signal].append(label)
        parts += [f"signal {sig}: {', '.join(labels)}" for sig, labels in seen.items()]
        return FiredRule(
            key=cr.spec.key,
            name=cr.spec.name,
            actions=[dict(a) for a in cr.spec.actions],
            explanation="; ".join(parts) or "condition is always true",
            values=values,
            matches=[m.as_dict() for m in used[:20]],
        )

    def check_examples(self) -> list[str]:
        """Run each rule's ``examples`` (``must_fire``/``must_not_fire`` lists of content dicts).

        Returns:
            Human-readable failures; empty when every example behaves.
        """
        failures: list[str] = []
        for cr in self.rules:
            for expect, key in ((True, "must_fire"), (False, "must_not_fire")):
                for i, example in enumerate(cr.spec.examples.get(key) or []):
                    try:
                        fired = {f.key for f in self.evaluate(example).fired}
                    except Exception as exc:  # noqa: BLE001 - a broken example is a failure, not a crash
                        failures.append(
                            f"rule {cr.spec.key!r}: {key} example #{i + 1} cannot be evaluated ({exc})"
                        )
                        continue
                    if (cr.spec.key in fired) != expect:
                        failures.append(
                            f"rule {cr.spec.key!r}: {key} example #{i + 1} did not behave"
                        )
        return failures


def compile_condition(condition: str, *, rule_key: str | None = None) -> Any:
    """Compile and type-check one condition, refusing costly or clock-dependent constructs.

    The refusals (regular-expression operators, comprehensions, ``$`` built-ins, bit shifts,
    attributes outside :data:`ALLOWED_ATTRIBUTES`) are checked twice on what rule-engine itself
    reads: first on the tokens of rule-engine's own lexer, *before* parsing (the parser already
    evaluates constant sub-expressions, so ``'aaaa…' =~ '(a|a)*c'`` would run while parsing),
    then on the parsed expression tree, which must also be at most :data:`MAX_CONDITION_DEPTH`
    levels deep.

    Args:
        condition: the rule-language text, at most :data:`MAX_CONDITION_LENGTH` characters.
        rule_key: named in error messages.
    Returns:
        A ``rule_engine.Rule``.
    Raises:
        RuleValidationError: with what is wrong (syntax error position, unknown field and the
        closest known name, type mismatch, a refused construct, or nesting too deep).
    """
    if not condition or not condition.strip():
        raise RuleValidationError("the condition is empty", rule_key=rule_key)
    if len(condition) > MAX_CONDITION_LENGTH:
        raise RuleValidationError(
            f"the condition is longer than {MAX_CONDITION_LENGTH} characters", rule_key=rule_key
        )
    try:
        tokens = _scan(condition)
        _refuse_costly_tokens(tokens)
        rule = rule_engine.Rule(condition, context=_CONTEXT)
        _check_tree(rule.statement.expression)
    except _Refused as exc:
        raise RuleValidationError(str(exc), rule_key=rule_key) from None
    except RecursionError:
        # rule-engine builds the tree recursively: the stack ran out before the tree was complete
        raise RuleValidationError(_too_deep(), rule_key=rule_key) from None
    except rule_engine.errors.RuleSyntaxError as exc:
        token = getattr(exc, "token", None)
        where = (
            f" at {token.value!r} (position {token.lexpos})" if token is not None else " at the end"
        )
        raise RuleValidationError(f"syntax error{where}", rule_key=rule_key) from None
    except rule_engine.errors.SymbolResolutionError as exc:
        hint = f"; did you mean {exc.suggestion!r}?" if getattr(exc, "suggestion", None) else ""
        raise RuleValidationError(
            f"unknown field {exc.symbol_name!r}{hint}", rule_key=rule_key
        ) from None
    except rule_engine.errors.EngineError as exc:
        raise RuleValidationError(
            f"{type(exc).__name__}: {exc.message}", rule_key=rule_key
        ) from None
    return rule


# ----------------------------------------------------------------------------- checking
#
# The checks read the condition exactly as rule-engine does: its own lexer (cloned per call, as
# the parser's state is not ours) splits the text into tokens, so a quote escaped inside a
# string literal, a raw string, a bytes, datetime or timedelta literal or a comment can never
# make the checker see a string where rule-engine sees an operator, or the reverse.

_LEXER = rule_engine.Rule.parser._lexer

_REGEX_MESSAGE = (
    "regular-expression operators (=~, =~~, !~, !~~) are not allowed: they can backtrack "
    "without bound; put the words in a keyword list and test 'name' in signals"
)
_BUILTIN_MESSAGE = (
    "built-in functions and symbols ($…) are not allowed: "
    "triage must depend only on the application"
)
_COMPREHENSION_MESSAGE = (
    "comprehensions (… for … in …) are not allowed: their cost grows with the square of the text"
)
_SHIFT_MESSAGE = (
    "bit shifts (<<, >>) are not allowed: a shift by a large count builds a huge number"
)
_FORBIDDEN_TOKENS = {
    "EQ_FZM": _REGEX_MESSAGE,
    "EQ_FZS": _REGEX_MESSAGE,
    "NE_FZM": _REGEX_MESSAGE,
    "NE_FZS": _REGEX_MESSAGE,
    "FOR": _COMPREHENSION_MESSAGE,
    "BWLSH": _SHIFT_MESSAGE,
    "BWRSH": _SHIFT_MESSAGE,
}
_FORBIDDEN_NODES = {
    rule_ast.FuzzyComparisonExpression: _REGEX_MESSAGE,
    rule_ast.ComprehensionExpression: _COMPREHENSION_MESSAGE,
    rule_ast.BitwiseShiftExpression: _SHIFT_MESSAGE,
}


class _Refused(Exception):
    """A construct :func:`compile_condition` refuses; the message says which and why."""


@dataclass(frozen=True)
class _Token:
    """One token of rule-engine's lexer: its type (``STRING``, ``SYMBOL``, ``ATTR``, …), its
    text as the lexer returns it, and its position (code points from the start)."""

    type: str
    value: str
    position: int


@functools.lru_cache(maxsize=4096)
def _scan(condition: str) -> tuple[_Token, ...]:
    """The tokens rule-engine's lexer reads in ``condition`` (cached: conditions are few).

    Raises:
        rule_engine.errors.RuleSyntaxError: an illegal character (the lexer's own error).
    """
    lexer = _LEXER.clone()
    lexer.input(condition)
    return tuple(_Token(t.type, t.value, t.lexpos) for t in iter(lexer.token, None))


def _scan_leniently(condition: str) -> tuple[_Token, ...]:
    """:func:`_scan`, or no tokens for text that does not lex (it never compiles either)."""
    try:
        return _scan(condition)
    except rule_engine.errors.RuleSyntaxError:
        return ()


def _too_deep() -> str:
    return (
        f"the condition is nested more than {MAX_CONDITION_DEPTH} levels deep; split it into "
        "several rules, or test many values at once with a set ({'a', 'b'} & domains) or a "
        "keyword list"
    )


def _refuse_costly_tokens(tokens: Sequence[_Token]) -> None:
    """Raise :class:`_Refused` for the first refused construct among ``tokens``."""
    for index, token in enumerate(tokens):
        message = _FORBIDDEN_TOKENS.get(token.type)
        if message is not None:
            raise _Refused(message)
        if token.type == "SYMBOL" and token.value.startswith("$"):
            raise _Refused(_BUILTIN_MESSAGE)
        if token.type in ("ATTR", "ATTR_SAFE"):
            name = tokens[index + 1] if index + 1 < len(tokens) else None
            if name is None or name.type != "SYMBOL" or name.value not in ALLOWED_ATTRIBUTES:
                raise _Refused(_attribute_message(name.value if name is not None else ""))


def _attribute_message(name: str) -> str:
    return f"attribute .{name} is not allowed; use one of {', '.join(sorted(ALLOWED_ATTRIBUTES))}"


def _children(node: Any) -> list[Any]:
    """The sub-expressions of an expression node (members of collections and mappings too)."""
    names: set[str] = set(getattr(node, "__dict__", {}))
    for klass in type(node).__mro__:
        slots = getattr(klass, "__slots__", ())
        names.update((slots,) if isinstance(slots, str) else slots)
    names.discard("context")
    found: list[Any] = []
    pending: list[Any] = [getattr(node, name, None) for name in sorted(names)]
    while pending:
        value = pending.pop()
        if isinstance(value, rule_ast.ASTNodeBase):
            found.append(value)
        elif isinstance(value, (tuple, list)):
            pending.extend(value)
    return found


def _check_tree(expression: Any) -> None:
    """Walk the parsed tree (iteratively): refuse forbidden node types, built-in symbols and
    attributes outside :data:`ALLOWED_ATTRIBUTES`, and trees deeper than
    :data:`MAX_CONDITION_DEPTH`. Raises :class:`_Refused`."""
    stack = [(expression, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_CONDITION_DEPTH:
            raise _Refused(_too_deep())
        message = _FORBIDDEN_NODES.get(type(node))
        if message is not None:
            raise _Refused(message)
        if isinstance(node, rule_ast.SymbolExpression) and node.scope is not None:
            raise _Refused(_BUILTIN_MESSAGE)
        if isinstance(node, rule_ast.GetAttributeExpression) and (
            node.name not in ALLOWED_ATTRIBUTES
        ):
            raise _Refused(_attribute_message(node.name))
        stack.extend((child, depth + 1) for child in _children(node))


def rule_fingerprint(spec: RuleSpec, keyword_lists: Mapping[str, Any]) -> str:
    """A hash of everything that decides whether a rule fires and what it does: condition,
    actions, enabled, and the phrases of the keyword lists its condition names. Two rules with
    the same fingerprint give the same result on the same content."""
    literals = set(_string_literals(spec.condition))
    lists = {}
    for name in sorted(literals & set(keyword_lists)):
        raw = keyword_lists[name]
        lists[name] = list(raw["phrases"] if isinstance(raw, Mapping) else raw)
    return canonical_hash(
        {
            "condition": spec.condition,
            "actions": [dict(a) for a in spec.actions],
            "enabled": spec.enabled,
            "lists": lists,
        }
    )


def evaluate_timed(
    ruleset: CompiledRuleset, content: Mapping[str, Any]
) -> tuple[TriageOutcome, float]:
    """Evaluate and return (outcome, elapsed seconds)."""
    start = time.perf_counter()
    outcome = ruleset.evaluate(content)
    return outcome, time.perf_counter() - start


def canonical_hash(document: Mapping[str, Any]) -> str:
    """SHA-256 hex digest of a JSON document in canonical form (sorted keys, no spaces)."""
    data = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(data.encode()).hexdigest()


def _string_value(text: str) -> str | None:
    """The value of a ``STRING`` token as rule-engine's parser computes it (``r`` prefix: raw,
    otherwise backslash escapes), or None when the parser would refuse it."""
    prefix = text[0] if text[0] in ("r", "s") else None
    body = (text[1:] if prefix else text)[1:-1]
    if prefix == "r":
        return body
    try:
        escaped = codecs.encode(body, "unicode-escape").decode().replace("\\\\", "\\")
        return codecs.decode(escaped, "unicode-escape")
    except UnicodeError:
        return None


def _string_literals(condition: str) -> list[str]:
    """The values of the string literals of ``condition``, in order."""
    values = (_string_value(t.value) for t in _scan_leniently(condition) if t.type == "STRING")
    return [v for v in values if v is not None]


def _fields_read(condition: str) -> set[str]:
    """The names ``condition`` reads (symbols, not attribute names after ``.``)."""
    tokens = _scan_leniently(condition)
    return {
        t.value
        for i, t in enumerate(tokens)
        if t.type == "SYMBOL" and (i == 0 or tokens[i - 1].type not in ("ATTR", "ATTR_SAFE"))
    }


def _signal_tests(condition: str) -> list[str]:
    """The string literals tested with ``'…' in signals``, in order."""
    tokens = _scan_leniently(condition)
    found = []
    for i, token in enumerate(tokens[:-2]):
        follows = tokens[i + 1 : i + 3]
        if (
            token.type == "STRING"
            and [t.type for t in follows] == ["IN", "SYMBOL"]
            and follows[1].value == "signals"
            and (value := _string_value(token.value)) is not None
        ):
            found.append(value)
    return found


def _append_unique(items: list[str], value: str) -> None:
    if value not in items:
        items.append(value)


# ----------------------------------------------------------------------------- fast path
#
# rule-engine stays the language and the validator: every condition is parsed and type-checked
# by ``rule_engine.Rule`` (``compile_condition``). Its evaluator, though, spends most of its time
# on dynamic type handling. After a condition has been compiled, ``translate_condition`` turns
# its type-checked AST into a tree of small closures that compute the same value on a prepared
# context (``fast_context``). No source text is generated and nothing is passed to eval/exec.
#
# Safety rules, so that the fast path can never change an outcome:
# * only the node types and attributes listed below are translated; a condition containing
#   anything else is evaluated by rule-engine;
# * values are represented exactly as rule-engine represents them (numbers as
#   ``decimal.Decimal`` built like ``rule_engine.types.coerce_value`` does, sets as Python sets,
#   arrays as tuples), and each operator applies rule-engine's own rule (``==`` false across
#   types, ordered comparisons only between equal types, ``in`` on a string needs a string);
# * whenever a closure meets a situation rule-engine would reject or handle specially (null in
#   an ordered comparison, a type mismatch, any Python exception), it raises and the rule is
#   evaluated again by rule-engine, which produces the authoritative result or error;
# * ``fast_context`` accepts only contexts whose every value has the exact type its field is
#   declared with (or null where rule-engine allows it); otherwise every rule of that
#   application goes to rule-engine.

_Fast = Callable[[dict[str, Any]], Any]


class _Untranslatable(Exception):
    """A node the fast path does not translate: the whole rule uses rule-engine."""


class _Defer(Exception):
    """Raised during fast evaluation: let rule-engine evaluate this rule."""


def _defer() -> None:
    raise _Defer


_STRING_SYMBOLS = frozenset(n for n, t in _TYPES.items() if t == DataType.STRING)
_SET_SYMBOLS = frozenset(n for n, t in _TYPES.items() if DataType.is_type(t, DataType.SET))
_FLOAT_SYMBOLS = frozenset(n for n, t in _TYPES.items() if t == DataType.FLOAT)
_BOOLEAN_SYMBOLS = frozenset(n for n, t in _TYPES.items() if t == DataType.BOOLEAN)
_ORDERED_TYPES = (decimal.Decimal, str, bool)
_LITERAL_TYPES = (
    rule_ast.StringExpression,
    rule_ast.FloatExpression,
    rule_ast.BooleanExpression,
    rule_ast.NullExpression,
)
_COLLECTION_TYPES = {rule_ast.SetExpression: set, rule_ast.ArrayExpression: tuple}


def fast_context(ctx: Mapping[str, Any]) -> dict[str, Any] | None:
    """The values of a :func:`rule_context` dict as rule-engine sees them, or None.

    None means some value is not of the exact type the fast path handles (for example a
    non-string in ``domains``); the caller then evaluates every rule with rule-engine.
    """
    out = dict(ctx)
    for name in _STRING_SYMBOLS:
        if type(out.get(name)) is not str:
            return None
    for name in _SET_SYMBOLS:
        value = out.get(name)
        if type(value) is not set:
            return None
        for member in value:
            if type(member) is not str:
                return None
    for name in _FLOAT_SYMBOLS:
        value = out.get(name)
        if type(value) is float:
            out[name] = decimal.Decimal(repr(value))  # as rule_engine.types.coerce_value
        elif type(value) is int:
            out[name] = decimal.Decimal(value)
        elif value is not None:
            return None
    for name in _BOOLEAN_SYMBOLS:
        value = out.get(name)
        if value is not None and type(value) is not bool:
            return None
    return out


def translate_condition(rule: Any) -> _Fast | None:
    """Closures computing ``rule.matches`` on a :func:`fast_context`, or None if not covered.

    Covered: literals (string, float, boolean, null, set and array), the context's symbols,
    ``and``/``or``, ``not``, ``==``/``!=``, ``<``/``<=``/``>``/``>=``, ``in``/``not in``, the set
    operators ``&``/``|``/``^``, the ternary ``? :``, and the attributes ``as_lower``,
    ``as_upper``, ``length`` and ``is_empty``.
    """
    try:
        expression = _translate(rule.statement.expression)
    except _Untranslatable:
        return None
    return expression


def _translate(node: Any) -> _Fast:
    kind = type(node)
    handler = _TRANSLATORS.get(kind)
    if handler is None:
        if kind in _LITERAL_TYPES:
            value = node.value
            return lambda c: value
        raise _Untranslatable(kind.__name__)
    return handler(node)


def _const(node: Any) -> tuple[bool, Any]:
    """(True, value) when ``node`` is a literal whose value is known at compile time."""
    if type(node) in _LITERAL_TYPES:
        return True, node.value
    if type(node) in _COLLECTION_TYPES and node.is_reduced:
        return True, node.evaluate(None)
    return False, None


def _symbol_name(node: Any) -> str | None:
    if type(node) is rule_ast.SymbolExpression and node.scope is None and node.name in _TYPES:
        return node.name
    return None


def _t_collection(node: Any) -> _Fast:
    is_const, value = _const(node)
    if is_const:
        return lambda c: value
    make = _COLLECTION_TYPES[type(node)]
    members = tuple(_translate(m) for m in node.value)
    return lambda c: make(m(c) for m in members)


def _t_symbol(node: Any) -> _Fast:
    name = _symbol_name(node)
    if name is None:
        raise _Untranslatable("symbol")
    return lambda c: c[name]


def _t_logic(node: Any) -> _Fast:
    left, right = _translate(node.left), _translate(node.right)
    if node.type == "and":
        return lambda c: bool(left(c) and right(c))
    if node.type == "or":
        return lambda c: bool(left(c) or right(c))
    raise _Untranslatable(node.type)


def _t_unary(node: Any) -> _Fast:
    if node.type != "not":
        raise _Untranslatable(node.type)
    right = _translate(node.right)
    return lambda c: not right(c)


def _t_comparison(node: Any) -> _Fast:
    if node.type not in ("eq", "ne"):
        raise _Untranslatable(node.type)
    equal = node.type == "eq"
    name = _symbol_name(node.left)
    is_const, value = _const(node.right)
    if name is not None and is_const:
        value_type = type(value)
        if equal:
            return lambda c: type(v := c[name]) is value_type and v == value
        return lambda c: type(v := c[name]) is not value_type or v != value
    left, right = _translate(node.left), _translate(node.right)

    def compare(c: dict[str, Any]) -> bool:
        lv = left(c)
        rv = right(c)
        if type(lv) is not type(rv):
            return not equal
        return bool(lv == rv) if equal else bool(lv != rv)

    return compare


_ORDERED_OPS = {
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
}


def _t_ordered(node: Any) -> _Fast:
    op = _ORDERED_OPS.get(node.type)
    if op is None:
        raise _Untranslatable(node.type)
    left, right = _translate(node.left), _translate(node.right)

    def compare(c: dict[str, Any]) -> bool:
        lv = left(c)
        rv = right(c)
        # null, arrays and mismatched types follow special rules (or raise): rule-engine decides
        if type(lv) is not type(rv) or type(lv) not in _ORDERED_TYPES:
            _defer()
        if type(lv) is decimal.Decimal and (lv.is_nan() or rv.is_nan()):
            _defer()
        return op(lv, rv)

    return compare


def _t_contains(node: Any) -> _Fast:
    member_const, member_value = _const(node.member)
    name = _symbol_name(node.container)
    if name is not None and member_const:
        if name in _SET_SYMBOLS and type(member_value) is str:
            return lambda c: member_value in c[name]
        if name in _STRING_SYMBOLS and type(member_value) is str:
            return lambda c: member_value in c[name]
    container_const, container_value = _const(node.container)
    if container_const and type(container_value) in (set, tuple):
        if all(type(v) is str for v in container_value):
            strings = frozenset(container_value)
            member = _translate(node.member)

            def in_strings(c: dict[str, Any]) -> bool:
                mv = member(c)
                if type(mv) is not str:
                    _defer()
                return mv in strings

            return in_strings
    container, member = _translate(node.container), _translate(node.member)

    def contains(c: dict[str, Any]) -> bool:
        cv = container(c)
        mv = member(c)
        kind = type(cv)
        if kind is str:
            if type(mv) is not str:
                _defer()
        elif kind is not set and kind is not tuple:
            _defer()
        return mv in cv

    return contains


_SET_OPS = {
    "bwand": lambda a, b: a & b,
    "bwor": lambda a, b: a | b,
    "bwxor": lambda a, b: a ^ b,
}


def _t_bitwise(node: Any) -> _Fast:
    op = _SET_OPS.get(node.type)
    if op is None:
        raise _Untranslatable(node.type)
    left, right = _translate(node.left), _translate(node.right)

    def on_sets(c: dict[str, Any]) -> Any:
        lv = left(c)
        rv = right(c)
        if type(lv) is not set or type(rv) is not set:
            _defer()  # numbers (bitwise on integers) and anything else: rule-engine
        return op(lv, rv)

    return on_sets


def _lower(v: Any) -> str:
    if type(v) is not str:
        _defer()
    return v.lower()


def _upper(v: Any) -> str:
    if type(v) is not str:
        _defer()
    return v.upper()


def _length(v: Any) -> decimal.Decimal:
    if type(v) is not str and type(v) is not set and type(v) is not tuple:
        _defer()
    return decimal.Decimal(len(v))


def _is_empty(v: Any) -> bool:
    if type(v) is not str and type(v) is not set and type(v) is not tuple:
        _defer()
    return len(v) == 0


_ATTRIBUTES = {"as_lower": _lower, "as_upper": _upper, "length": _length, "is_empty": _is_empty}


def _t_attribute(node: Any) -> _Fast:
    function = _ATTRIBUTES.get(node.name)
    if function is None or node.safe or node._object_type is not None:
        raise _Untranslatable(f"attribute {node.name}")
    target = _translate(node.object)
    return lambda c: function(target(c))


def _t_ternary(node: Any) -> _Fast:
    condition = _translate(node.condition)
    case_true, case_false = _translate(node.case_true), _translate(node.case_false)
    return lambda c: case_true(c) if condition(c) else case_false(c)


_TRANSLATORS: dict[type, Callable[[Any], _Fast]] = {
    rule_ast.SetExpression: _t_collection,
    rule_ast.ArrayExpression: _t_collection,
    rule_ast.SymbolExpression: _t_symbol,
    rule_ast.LogicExpression: _t_logic,
    rule_ast.UnaryExpression: _t_unary,
    rule_ast.ComparisonExpression: _t_comparison,
    rule_ast.ArithmeticComparisonExpression: _t_ordered,
    rule_ast.ContainsExpression: _t_contains,
    rule_ast.BitwiseExpression: _t_bitwise,
    rule_ast.GetAttributeExpression: _t_attribute,
    rule_ast.TernaryExpression: _t_ternary,
}
