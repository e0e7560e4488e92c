"""Triage speed benchmark: ``CompiledRuleset.evaluate`` against the same checks in plain Python.

Usage::

    .venv/bin/python bench/triage_speed.py [--csv PATH] [--apps 500] [--rounds 5] [--seed 7]
        [--json]

What it measures (all in one process, one run):

1. **200-rule ruleset** built by this script: 50 keyword lists (the 34 lists of
   ``config/ruleset.yaml`` plus 16 generated from words of the inventory text, 10-30 phrases
   each), 50 rules that test keyword-list signals (``'x' in signals``, combined with ``and`` /
   ``or`` / ``not in``) and 150 rules mixing domain / end-user set membership, category equality
   and ``in [...]`` lists, null-guarded numeric comparisons, booleans, ``.length``,
   ``.as_lower``, set intersection with ``.is_empty``, ``and`` / ``or`` / ``not``.
2. **The default ruleset**, ``config/ruleset.yaml`` (42 rules, 34 lists), compiled the way
   ``bench/triage_quality.py`` does it (tiers from ``config/tiers.yaml``).

Applications: ``--apps`` rows of ``/work/shared/data/fed_ai_inventory_2024_slim.csv`` mapped
with ``reviewapp.applications.importer.map_row``; to exercise every kind of check, a seeded
random generator varies the structured fields of some of them (extra domains and end users,
category, modalities, ``monthly_requests`` incl. null, ``human_review_of_outputs``). Without the
CSV, synthetic applications are generated from a word pool.

For each application the script times, interleaved and ``--rounds`` times:

* **engine**: ``CompiledRuleset.evaluate(content)`` (keyword matching, context, every rule,
  actions, explanations of fired rules);
* **plain**: the ceiling -- the same keyword matcher (``compiled.matcher.match``), the same
  ``rule_context`` and then each rule written by hand as a Python function on that context,
  collecting fired keys and the highest tier (no explanations).

It prints median and p95 per application in milliseconds for both and the ratio
engine / plain (1.0 would mean the rule language costs nothing over hand-written Python). It
also checks that engine and plain functions fire the same rules on every application and
reports any disagreement (a bug in this script's hand-written functions or in the engine).

Target: median of the 200-rule ruleset <= 2 ms per application.
The exit status is 0 unless the rules disagree (1) or the input is broken (2).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from reviewapp.applications.importer import map_row  # noqa: E402
from reviewapp.triage.engine import (  # noqa: E402
    CompiledRuleset,
    RulesetSpec,
    RuleSpec,
    rule_context,
)
from reviewapp.triage.ruleset_file import load_ruleset_yaml, parse_ruleset_document  # noqa: E402

DEFAULT_CSV = Path("/work/shared/data/fed_ai_inventory_2024_slim.csv")
RULESET_FILE = ROOT / "config" / "ruleset.yaml"
TIERS_FILE = ROOT / "config" / "tiers.yaml"
VOCABULARIES_FILE = ROOT / "config" / "vocabularies.yaml"

Check = Callable[[dict[str, Any]], bool]

# ----------------------------------------------------------------------------- inputs


def load_tiers() -> tuple[list[str], dict[str, str]]:
    document = yaml.safe_load(TIERS_FILE.read_text(encoding="utf-8"))
    return (
        [t["name"] for t in document["tiers"]],
        {t["name"]: t["default_queue"] for t in document["tiers"]},
    )


def load_vocabularies() -> dict[str, list[str]]:
    document = yaml.safe_load(VOCABULARIES_FILE.read_text(encoding="utf-8"))
    return {
        name: [e["key"] if isinstance(e, dict) else str(e) for e in entries]
        for name, entries in document.items()
    }


def load_contents(csv_path: Path, count: int, rng: random.Random) -> tuple[list[dict], str]:
    """Application contents (mapped CSV rows, structured fields varied) and where they came from."""
    vocab = load_vocabularies()
    contents: list[dict[str, Any]] = []
    source = f"{csv_path.name} (map_row)"
    if csv_path.exists():
        with csv_path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        rng.shuffle(rows)
        for row in rows:
            try:
                contents.append(map_row(row).content)
            except ValueError:
                continue
            if len(contents) >= count:
                break
    else:
        source = "synthetic text (CSV not found)"
        words = (
            "model assist citizen claim benefit review health record image detect fraud risk "
            "score school student patient loan credit border officer weapon chat summary data "
            "privacy survey forecast traffic energy grid emergency translate document search"
        ).split()
        for i in range(count):
            contents.append(
                {
                    "title": " ".join(rng.choices(words, k=4)).capitalize(),
                    "category": "other",
                    "description": " ".join(rng.choices(words, k=rng.randint(5, 120))),
                    "benefits": "",
                    "end_users": ["government"],
                    "domains": [],
                    "modalities": ["text"],
                    "monthly_requests": None,
                    "human_review_of_outputs": None,
                    "safety_measures": " ".join(rng.choices(words, k=rng.randint(0, 30))),
                    "product_url": "",
                    "_i": i,
                }
            )
            contents[-1].pop("_i")
    for content in contents:
        if rng.random() < 0.5:
            content["domains"] = sorted(
                set(content["domains"]) | set(rng.sample(vocab["domains"], rng.randint(0, 3)))
            )
        if rng.random() < 0.4:
            content["end_users"] = sorted(
                set(content["end_users"]) | set(rng.sample(vocab["end_users"], rng.randint(1, 2)))
            )
        if rng.random() < 0.4:
            content["category"] = rng.choice(vocab["categories"])
        if rng.random() < 0.3:
            content["modalities"] = rng.sample(vocab["modalities"], rng.randint(1, 3))
        content["monthly_requests"] = rng.choice(
            [None, None, 0, 1200, 50_000, 999_999.5, 1_000_000, 2_500_000, 40_000_000]
        )
        if rng.random() < 0.5:
            content["human_review_of_outputs"] = rng.choice([None, True, False])
    return contents, source


def corpus_words(contents: list[dict], rng: random.Random) -> list[str]:
    counts: dict[str, int] = {}
    for content in contents:
        for word in re.findall(r"[a-z]{6,}", str(content.get("description", "")).lower()):
            counts[word] = counts.get(word, 0) + 1
    # mid-frequency words: they match some applications, not all
    words = [w for w, n in counts.items() if 2 <= n <= max(3, len(contents) // 8)]
    words.sort()
    rng.shuffle(words)
    return words or ["placeholder"]


def keyword_lists(default_lists: dict, words: list[str], rng: random.Random) -> dict[str, Any]:
    """The 34 default lists plus 16 generated ones (10-30 phrases each): 50 lists."""
    lists: dict[str, Any] = dict(default_lists)
    pool = iter(words * 20)
    for i in range(50 - len(lists)):
        phrases = []
        for _ in range(rng.randint(10, 30)):
            word = next(pool)
            roll = rng.random()
            if roll < 0.3:
                phrases.append(word[: max(4, len(word) - 2)] + "*")
            elif roll < 0.5:
                phrases.append(f"{word} {next(pool)}")
            else:
                phrases.append(word)
        lists[f"generated_{i:02d}"] = {"phrases": phrases}
    return lists


# ----------------------------------------------------------------------------- 200 rules


def build_rules(
    lists: list[str], vocab: dict[str, list[str]], tiers: list[str], rng: random.Random
) -> tuple[list[RuleSpec], dict[str, Check]]:
    """50 signal rules and 150 structured-field rules, each with its plain-Python twin."""
    domains, users = vocab["domains"], vocab["end_users"]
    cats, mods = vocab["categories"], vocab["modalities"]
    rules: list[RuleSpec] = []
    checks: dict[str, Check] = {}

    def add(condition: str, check: Check, tier: str) -> None:
        key = f"r{len(rules):03d}"
        actions = [{"type": "raise_tier", "tier": tier}]
        if rng.random() < 0.3:
            actions.append({"type": "add_flag", "flag": f"flag-{key}"})
        rules.append(RuleSpec(key=key, name=f"Rule {key}", condition=condition, actions=actions))
        checks[key] = check

    def q(values: list[str]) -> str:
        return ", ".join(f"'{v}'" for v in values)

    for i in range(50):
        a, b = rng.sample(lists, 2)
        d = rng.choice(domains)
        kind = i % 4
        tier = rng.choice(tiers[1:])
        if kind == 0:
            add(f"'{a}' in signals", lambda c, a=a: a in c["signals"], tier)
        elif kind == 1:
            add(
                f"'{a}' in signals and '{d}' in domains",
                lambda c, a=a, d=d: a in c["signals"] and d in c["domains"],
                tier,
            )
        elif kind == 2:
            add(
                f"'{a}' in signals or '{b}' in signals",
                lambda c, a=a, b=b: a in c["signals"] or b in c["signals"],
                tier,
            )
        else:
            add(
                f"'{a}' in signals and '{b}' not in signals",
                lambda c, a=a, b=b: a in c["signals"] and b not in c["signals"],
                tier,
            )

    for i in range(150):
        d1, d2 = rng.sample(domains, 2)
        u = rng.choice(users)
        c1, c2, c3 = rng.sample(cats, 3)
        m = rng.choice(mods)
        n = rng.choice([1000, 100_000, 1_000_000, 5_000_000])
        short = rng.choice([20, 40, 80])
        ds = rng.sample(domains, 4)
        word = rng.choice(["system", "model", "data", "chat", "detect", "analysis", "tool"])
        tier = rng.choice(tiers[:3])
        kind = i % 13
        if kind == 0:
            add(f"'{d1}' in domains", lambda c, d1=d1: d1 in c["domains"], tier)
        elif kind == 1:
            add(
                f"'{d1}' in domains or '{d2}' in domains",
                lambda c, d1=d1, d2=d2: d1 in c["domains"] or d2 in c["domains"],
                tier,
            )
        elif kind == 2:
            add(f"category == '{c1}'", lambda c, c1=c1: c["category"] == c1, tier)
        elif kind == 3:
            add(
                f"category in [{q([c1, c2, c3])}] and '{u}' in end_users",
                lambda c, cs=(c1, c2, c3), u=u: c["category"] in cs and u in c["end_users"],
                tier,
            )
        elif kind == 4:
            add(
                f"'{u}' in end_users and category not in [{q([c1, c2])}]",
                lambda c, u=u, cs=(c1, c2): u in c["end_users"] and c["category"] not in cs,
                tier,
            )
        elif kind == 5:
            add(
                f"monthly_requests != null and monthly_requests > {n}",
                lambda c, n=n: c["monthly_requests"] is not None and c["monthly_requests"] > n,
                tier,
            )
        elif kind == 6:
            add(
                f"monthly_requests != null and monthly_requests <= {n} and '{d1}' in domains",
                lambda c, n=n, d1=d1: (
                    c["monthly_requests"] is not None
                    and c["monthly_requests"] <= n
                    and d1 in c["domains"]
                ),
                tier,
            )
        elif kind == 7:
            add(
                f"human_review_of_outputs == false and ('{d1}' in domains or '{u}' in end_users)",
                lambda c, d1=d1, u=u: (
                    c["human_review_of_outputs"] is False
                    and (d1 in c["domains"] or u in c["end_users"])
                ),
                tier,
            )
        elif kind == 8:
            add(
                f"human_review_of_outputs == null and not (domains & {{{q(ds)}}}).is_empty",
                lambda c, ds=frozenset(ds): (
                    c["human_review_of_outputs"] is None and not c["domains"].isdisjoint(ds)
                ),
                tier,
            )
        elif kind == 9:
            add(
                f"not ('{d1}' in domains) and '{m}' in modalities",
                lambda c, d1=d1, m=m: d1 not in c["domains"] and m in c["modalities"],
                tier,
            )
        elif kind == 10:
            if i % 2:
                add(
                    f"description.length < {short}",
                    lambda c, short=short: len(c["description"]) < short,
                    tier,
                )
            else:
                add(
                    f"safety_measures == '' and '{d1}' in domains",
                    lambda c, d1=d1: c["safety_measures"] == "" and d1 in c["domains"],
                    tier,
                )
        elif kind == 11:
            add(
                f"'{word}' in title.as_lower",
                lambda c, word=word: word in c["title"].lower(),
                tier,
            )
        else:
            add(
                f"human_review_of_outputs != true and category == '{c1}'",
                lambda c, c1=c1: c["human_review_of_outputs"] is not True and c["category"] == c1,
                tier,
            )
    return rules, checks


# ----------------------------------------------------------------------------- default ruleset

_PEOPLE_DOMAINS = frozenset(
    "health mental_health legal credit insurance employment education housing public_benefits "
    "law_enforcement immigration biometrics surveillance".split()
)
_PEOPLE_SIGNALS = frozenset(
    "health_care mental_health_care justice law_enforcement_use migration_border "
    "biometric_identification credit_insurance employment_decisions education_decisions "
    "essential_services people_risk_scoring minors_signals".split()
)


def _sig(name: str) -> Check:
    return lambda c: name in c["signals"]


def _dom_or_sig(domains: tuple[str, ...], signal: str) -> Check:
    return lambda c: any(d in c["domains"] for d in domains) or signal in c["signals"]


DEFAULT_CHECKS: dict[str, Check] = {
    "prohibited-weapons-cbrn": _dom_or_sig(("weapons",), "weapons_cbrn"),
    "prohibited-malicious-cyber": _sig("malicious_cyber"),
    "prohibited-child-sexual-abuse": _sig("child_sexual_abuse"),
    "prohibited-election-interference": _sig("election_interference"),
    "prohibited-fraud-impersonation": _sig("fraud_impersonation"),
    "prohibited-covert-surveillance": _sig("covert_surveillance"),
    "prohibited-manipulation": _sig("manipulation_exploitation"),
    "prohibited-social-scoring": _sig("social_scoring"),
    "prohibited-emotion-recognition-work-school": lambda c: (
        "emotion_recognition" in c["signals"]
        and (
            "employment" in c["domains"]
            or "education" in c["domains"]
            or "workplace_school" in c["signals"]
        )
    ),
    "prohibited-biometric-categorisation": _sig("biometric_categorisation"),
    "prohibited-face-scraping": _sig("face_scraping"),
    "prohibited-crime-prediction-profiling": _sig("crime_prediction_profiling"),
    "dual-use-security-topic": _sig("dual_use_security"),
    "child-safety-topic": _sig("child_safety_topics"),
    "high-health": _dom_or_sig(("health",), "health_care"),
    "high-mental-health": _dom_or_sig(("mental_health",), "mental_health_care"),
    "high-legal-justice": _dom_or_sig(("legal",), "justice"),
    "high-law-enforcement": _dom_or_sig(("law_enforcement",), "law_enforcement_use"),
    "high-migration-border": _dom_or_sig(("immigration",), "migration_border"),
    "high-biometric-identification": lambda c: (
        "biometrics" in c["domains"]
        or "emotion_recognition" in c["signals"]
        or ("biometric_identification" in c["signals"] and "device_unlock" not in c["signals"])
    ),
    "high-credit-insurance": _dom_or_sig(("credit", "insurance"), "credit_insurance"),
    "high-employment": _dom_or_sig(("employment",), "employment_decisions"),
    "high-education": _dom_or_sig(("education",), "education_decisions"),
    "high-public-benefits-essential-services": _dom_or_sig(
        ("public_benefits", "housing"), "essential_services"
    ),
    "high-critical-infrastructure-safety": _dom_or_sig(
        ("critical_infrastructure",), "critical_safety"
    ),
    "high-surveillance": _dom_or_sig(("surveillance",), "surveillance_of_people"),
    "high-people-risk-scoring": lambda c: (
        c["category"] == "classification_scoring" or "people_risk_scoring" in c["signals"]
    ),
    "high-elections-political": _dom_or_sig(("elections",), "political_news"),
    "high-minors": lambda c: "minors" in c["end_users"] or "minors_signals" in c["signals"],
    "high-automated-decisions-without-review": lambda c: (
        c["human_review_of_outputs"] is False
        and (
            "consumers" in c["end_users"]
            or "minors" in c["end_users"]
            or c["category"] in ("classification_scoring", "decision_support", "agentic_automation")
            or (
                bool(c["domains"])
                and not c["domains"].isdisjoint(_PEOPLE_DOMAINS | {"personal_data", "finance"})
            )
            or not c["signals"].isdisjoint(_PEOPLE_SIGNALS)
        )
    ),
    "medium-consumer-chatbot": lambda c: (
        "consumers" in c["end_users"]
        and (
            c["category"] in ("assistant_chatbot", "content_generation")
            or "chatbot_signals" in c["signals"]
        )
    ),
    "medium-synthetic-media": lambda c: (
        "synthetic_media" in c["signals"]
        or (
            c["category"] == "content_generation"
            and not c["modalities"].isdisjoint({"image", "audio", "video"})
        )
    ),
    "medium-media-domain": lambda c: "media" in c["domains"],
    "medium-personal-data": lambda c: "personal_data" in c["domains"],
    "medium-health-data": _sig("health_data"),
    "medium-finance": lambda c: "finance" in c["domains"],
    "medium-consumer-facing": lambda c: (
        "consumers" in c["end_users"]
        and c["category"]
        not in (
            "search_summarization",
            "writing_assistance",
            "transcription_translation",
            "data_extraction",
            "productivity_tool",
        )
    ),
    "medium-agentic-automation": lambda c: c["category"] == "agentic_automation",
    "medium-high-volume": lambda c: (
        c["monthly_requests"] is not None and c["monthly_requests"] > 1_000_000
    ),
    "medium-insufficient-information": lambda c: len(c["description"]) < 40,
    "flag-human-review-not-stated": lambda c: (
        c["human_review_of_outputs"] is None and not c["domains"].isdisjoint(_PEOPLE_DOMAINS)
    ),
    "flag-no-safety-measures": lambda c: c["safety_measures"] == "",
}


# ----------------------------------------------------------------------------- timing


def plain_evaluator(
    compiled: CompiledRuleset, checks: dict[str, Check]
) -> Callable[[dict], tuple[str, list[str]]]:
    """The ceiling: same matcher and context, each rule a hand-written Python function."""
    matcher = compiled.matcher
    tiers = list(compiled.spec.tiers)
    rank = compiled.tier_rank
    table = []
    for cr in compiled.rules:
        top = max(
            (rank[a["tier"]] for a in cr.spec.actions if a["type"] == "raise_tier"), default=0
        )
        table.append((cr.spec.key, checks[cr.spec.key], top))

    def evaluate(content: dict) -> tuple[str, list[str]]:
        matches = matcher.match(content)
        ctx = rule_context(content, {m.signal for m in matches})
        tier = 0
        fired = []
        for key, check, top in table:
            if check(ctx):
                fired.append(key)
                if top > tier:
                    tier = top
        return tiers[tier], fired

    return evaluate


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure(
    label: str,
    compiled: CompiledRuleset,
    checks: dict[str, Check],
    contents: list[dict],
    rounds: int,
) -> dict[str, Any]:
    plain = plain_evaluator(compiled, checks)
    disagreements = []
    for i, content in enumerate(contents):  # warm-up and agreement check
        outcome = compiled.evaluate(content)
        tier, fired = plain(content)
        engine_fired = [f.key for f in outcome.fired]
        if engine_fired != fired or outcome.errors or outcome.tier != tier:
            disagreements.append(
                {"app": i, "engine": engine_fired, "plain": fired, "errors": outcome.errors}
            )
    engine_t: list[float] = []
    plain_t: list[float] = []
    clock = time.perf_counter
    for _ in range(rounds):
        for content in contents:
            start = clock()
            compiled.evaluate(content)
            middle = clock()
            plain(content)
            end = clock()
            engine_t.append((middle - start) * 1000)
            plain_t.append((end - middle) * 1000)
    result = {
        "ruleset": label,
        "rules": len(compiled.rules),
        "keyword_lists": len(compiled.matcher.names),
        "applications": len(contents),
        "samples": len(engine_t),
        "engine_median_ms": statistics.median(engine_t),
        "engine_p95_ms": percentile(engine_t, 0.95),
        "plain_median_ms": statistics.median(plain_t),
        "plain_p95_ms": percentile(plain_t, 0.95),
        "disagreements": len(disagreements),
        "first_disagreements": disagreements[:3],
    }
    result["ratio_median"] = result["engine_median_ms"] / result["plain_median_ms"]
    result["ratio_p95"] = result["engine_p95_ms"] / result["plain_p95_ms"]
    return result


def print_result(r: dict[str, Any]) -> None:
    print(
        f"{r['ruleset']}: {r['rules']} rules, {r['keyword_lists']} keyword lists, "
        f"{r['applications']} applications x {r['samples'] // max(1, r['applications'])} rounds"
    )
    print(f"  engine  median {r['engine_median_ms']:7.3f} ms   p95 {r['engine_p95_ms']:7.3f} ms")
    print(f"  plain   median {r['plain_median_ms']:7.3f} ms   p95 {r['plain_p95_ms']:7.3f} ms")
    print(f"  ratio   median {r['ratio_median']:7.2f}x     p95 {r['ratio_p95']:7.2f}x")
    if r["disagreements"]:
        print(f"  !! engine and plain functions disagree on {r['disagreements']} applications:")
        for d in r["first_disagreements"]:
            print(f"     {d}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--apps", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    try:
        tiers, tier_queues = load_tiers()
        vocab = load_vocabularies()
        contents, source = load_contents(args.csv, args.apps, rng)
        document = load_ruleset_yaml(RULESET_FILE)
        lists = keyword_lists(document.get("keyword_lists") or {}, corpus_words(contents, rng), rng)
        rules, checks = build_rules(sorted(lists), vocab, tiers, rng)
        big = CompiledRuleset(
            RulesetSpec(tiers=tiers, tier_queues=tier_queues, rules=rules, keyword_lists=lists)
        )
        default = CompiledRuleset(
            parse_ruleset_document(document, tiers=tiers, tier_queues=tier_queues)
        )
    except Exception as exc:  # noqa: BLE001 - report any broken input and stop
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    results = [
        measure("generated 200-rule ruleset", big, checks, contents, args.rounds),
        measure("default config/ruleset.yaml", default, DEFAULT_CHECKS, contents, args.rounds),
    ]
    if args.json:
        print(json.dumps({"source": source, "results": results}, indent=2))
    else:
        print(f"applications: {source}")
        for r in results:
            print_result(r)
    return 1 if any(r["disagreements"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
