"""Triage quality benchmark: the default ruleset against the US Federal AI Use Case Inventory.

Usage::

    .venv/bin/python bench/triage_quality.py [CSV] [--ruleset config/ruleset.yaml]
        [--tiers config/tiers.yaml] [--json] [--show-rows TIER:LABEL]

What it does:

1. Loads the tier table from ``config/tiers.yaml`` (tier order, default queues, queue keys).
2. Parses and compiles the ruleset YAML with ``parse_ruleset_document`` and
   ``CompiledRuleset``, checking queue, safety-requirement and policy-section keys against
   ``config/safety_requirements.yaml`` and ``config/policy_sections.yaml`` (or the built-in
   lists when those files are absent), and runs ``CompiledRuleset.check_examples()``. Any misbehaving example is
   fatal (exit status 2): a ruleset whose own examples fail is not worth measuring.
3. Maps every CSV row with ``reviewapp.applications.importer.map_row``. The label columns
   (``suggested_tier`` etc.) are the answer key: ``map_row`` keeps them out of the content, so
   the engine never sees them; this script only compares against them afterwards.
4. Evaluates every application and reports a confusion matrix (predicted tier x suggested tier),
   recall of the ``high`` label (rows labelled high that land in high or above), the share of
   ``low``-labelled rows raised to high or above, precision/recall per tier, the rows predicted
   prohibited, and the mean/median evaluation time per application in microseconds.

Targets for the default ruleset: high recall >= 0.90 and at most 35 % of low rows raised to high+.
The exit status is 0 whatever the figures are (it is a measurement, not a test), 2 on a broken
ruleset or input.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from reviewapp.triage.engine import CompiledRuleset, RuleValidationError  # noqa: E402
from reviewapp.triage.evaluation import evaluate_rows, summarise  # noqa: E402
from reviewapp.triage.ruleset_file import load_ruleset_yaml, parse_ruleset_document  # noqa: E402

DEFAULT_CSV = Path("/work/shared/data/fed_ai_inventory_2024_slim.csv")
DEFAULT_RULESET = ROOT / "config" / "ruleset.yaml"
DEFAULT_TIERS = ROOT / "config" / "tiers.yaml"
SAFETY_REQUIREMENTS_FILE = ROOT / "config" / "safety_requirements.yaml"
POLICY_SECTIONS_FILE = ROOT / "config" / "policy_sections.yaml"

# Fallback catalogues, used when the config/*.yaml catalogue files are absent.
SAFETY_REQUIREMENTS = (
    "human-review-of-outputs",
    "age-assurance",
    "rate-limits",
    "input-output-moderation",
    "ai-disclosure",
    "impact-assessment",
    "real-world-testing",
    "bias-and-disparity-testing",
    "appeal-and-human-alternative",
    "ongoing-monitoring",
    "data-protection",
    "security-controls",
    "content-provenance",
    "professional-oversight",
    "incident-reporting",
)
POLICY_SECTIONS = tuple(
    [f"usage-1.{i}" for i in range(1, 11)]
    + [f"usage-2.{i}" for i in range(1, 14)]
    + [f"usage-3.{i}" for i in range(1, 4)]
    + [f"usage-4.{i}" for i in range(1, 5)]
)
HIGH_TARGET_RECALL = 0.90
LOW_RAISED_LIMIT = 0.35


def load_tiers(path: Path) -> tuple[list[str], dict[str, str], list[str]]:
    """Read the tier table: (tier names lowest first, tier -> default queue, queue keys)."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    tiers = [t["name"] for t in document["tiers"]]
    tier_queues = {t["name"]: t["default_queue"] for t in document["tiers"]}
    queues = [q["key"] for q in document.get("queues", [])]
    return tiers, tier_queues, queues


def catalogue_keys(path: Path, section: str, fallback: tuple[str, ...]) -> list[str]:
    """Keys of a catalogue file (``section`` list of mappings with ``key``), or ``fallback``."""
    if not path.exists():
        return list(fallback)
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return [str(entry["key"]) for entry in document.get(section) or []]


def compile_ruleset(ruleset_path: Path, tiers_path: Path) -> tuple[CompiledRuleset, dict[str, Any]]:
    """Parse, compile and self-check the ruleset.

    Returns:
        The compiled ruleset and the raw YAML document.
    Raises:
        RuleValidationError: when the ruleset is invalid or one of its examples misbehaves.
    """
    tiers, tier_queues, queues = load_tiers(tiers_path)
    document = load_ruleset_yaml(ruleset_path)
    spec = parse_ruleset_document(
        document,
        tiers=tiers,
        tier_queues=tier_queues,
        known_queues=queues,
        known_safety_requirements=catalogue_keys(
            SAFETY_REQUIREMENTS_FILE, "safety_requirements", SAFETY_REQUIREMENTS
        ),
        known_policy_sections=catalogue_keys(POLICY_SECTIONS_FILE, "sections", POLICY_SECTIONS),
    )
    for rule in spec.rules:
        examples = rule.examples or {}
        if not examples.get("must_fire") or not examples.get("must_not_fire"):
            raise RuleValidationError(
                "needs must_fire and must_not_fire examples", rule_key=rule.key
            )
    ruleset = CompiledRuleset(spec)
    failures = ruleset.check_examples()
    if failures:
        raise RuleValidationError("examples misbehave:\n  " + "\n  ".join(failures))
    return ruleset, document


def read_rows(csv_path: Path) -> list[dict[str, str]]:
    """Read the slim inventory CSV as a list of column -> text dicts."""
    with csv_path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _fmt(value: float | None) -> str:
    """Format a ratio for the text report."""
    return "  n/a" if value is None else f"{value:.3f}"


def print_report(summary: dict[str, Any], ruleset_info: dict[str, int]) -> None:
    """Print the human-readable report."""
    tiers, labels = summary["tiers"], summary["labels"]
    print(
        f"ruleset: {ruleset_info['rules']} rules, {ruleset_info['keyword_lists']} keyword lists; examples OK"
    )
    print(f"rows evaluated: {summary['rows']}\n")
    print("confusion matrix (rows: predicted tier, columns: suggested_tier)")
    print(f"{'':>12}" + "".join(f"{lab:>12}" for lab in labels) + f"{'total':>10}")
    for tier in tiers:
        counts = [summary["confusion"][tier][lab] for lab in labels]
        print(f"{tier:>12}" + "".join(f"{c:>12}" for c in counts) + f"{sum(counts):>10}")
    totals = [sum(summary["confusion"][t][lab] for t in tiers) for lab in labels]
    print(f"{'total':>12}" + "".join(f"{c:>12}" for c in totals) + f"{sum(totals):>10}\n")
    recall, raised = summary["high_recall"], summary["low_raised_share"]
    ok_recall = recall is not None and recall >= HIGH_TARGET_RECALL
    ok_raised = raised is not None and raised <= LOW_RAISED_LIMIT
    print(
        f"recall of high (high+prohibited):  {_fmt(recall)}  (target >= {HIGH_TARGET_RECALL:.2f}: {'met' if ok_recall else 'NOT met'})"
    )
    print(
        f"low rows raised to high or above:  {_fmt(raised)}  (target <= {LOW_RAISED_LIMIT:.2f}: {'met' if ok_raised else 'NOT met'})\n"
    )
    print(f"{'tier':>12}{'predicted':>11}{'labelled':>10}{'precision':>11}{'recall':>9}")
    for tier in tiers:
        p = summary["per_tier"][tier]
        print(
            f"{tier:>12}{p['predicted']:>11}{p['labelled']:>10}{_fmt(p['precision']):>11}{_fmt(p['recall']):>9}"
        )
    print(f"\nrows predicted prohibited: {len(summary['prohibited'])}")
    for row in summary["prohibited"]:
        print(f"  {row['ref']}: {row['title']}  [{', '.join(row['fired'])}]")
    if summary["errors"]:
        print(f"\nrows with evaluation errors (failed closed): {len(summary['errors'])}")
        for row in summary["errors"][:10]:
            print(f"  {row['ref']}: {row['errors']}")
    print("\nrules fired (rows):")
    for key, count in summary["rule_fire_counts"].items():
        print(f"  {count:>5}  {key}")
    print(
        f"\nevaluation time per application: mean {summary['eval_us_mean']:.0f} µs, "
        f"median {summary['eval_us_median']:.0f} µs"
    )


def show_rows(results: list[dict[str, Any]], selector: str) -> None:
    """Print the rows with a given predicted tier and label (``TIER:LABEL``, ``*`` = any)."""
    tier, _, label = selector.partition(":")
    for r in results:
        if tier in ("*", r["tier"]) and label in ("*", "", r["label"]):
            print(
                f"{r['ref']:>14} {r['tier']:>10} {r['label']:>7}  {r['title'][:80]}  [{', '.join(r['fired'])}]"
            )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="?", type=Path, default=DEFAULT_CSV, help="slim inventory CSV")
    parser.add_argument("--ruleset", type=Path, default=DEFAULT_RULESET, help="ruleset YAML")
    parser.add_argument("--tiers", type=Path, default=DEFAULT_TIERS, help="tier table YAML")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--show-rows", metavar="TIER:LABEL", help="list rows with this predicted tier and label"
    )
    args = parser.parse_args(argv)
    try:
        ruleset, document = compile_ruleset(args.ruleset, args.tiers)
        rows = read_rows(args.csv)
        results = evaluate_rows(ruleset, rows)
    except (RuleValidationError, OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    info = {
        "rules": len(document.get("rules") or []),
        "keyword_lists": len(document.get("keyword_lists") or {}),
    }
    summary = summarise(results, list(ruleset.spec.tiers))
    if args.show_rows:
        show_rows(results, args.show_rows)
    elif args.json:
        print(json.dumps({**info, **summary}, indent=2, ensure_ascii=False))
    else:
        print_report(summary, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
