"""Scoring a ruleset against labelled data (the inventory's slim CSV format).

Used by ``flask triage-eval`` and ``bench/triage_quality.py``. The label is the data set's
``suggested_tier`` (derived from the agencies' own rights-/safety-impacting answer, see
shared/data/README.md). It is the answer key: it is read here, after triage, and never given to
the engine.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from reviewapp.applications.importer import map_row, read_csv_records
from reviewapp.triage.engine import CompiledRuleset


def read_labelled_csv(path: str | Path) -> list[dict[str, str]]:
    """Rows of a slim-format CSV as column -> text dicts.

    Raises:
        ValueError: when the file lacks ``row_id`` or ``suggested_tier`` columns, or has
            unreadable records (each listed with its line: broken quoting, wrong field count,
            bytes that are not UTF-8). Scores over a partly read file would mislead.
    """
    rows: list[dict[str, str]] = []
    problems: list[str] = []
    for line, row, problem in read_csv_records(path, ("row_id", "suggested_tier")):
        if row is None:
            problems.append(f"line {line}: {problem}")
        else:
            rows.append(row)
    if problems:
        shown = "\n".join(problems[:20]) + (
            f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
        )
        raise ValueError(f"{path}: {len(problems)} unreadable record(s):\n{shown}")
    return rows


def evaluate_rows(
    ruleset: CompiledRuleset,
    rows: Iterable[Mapping[str, str]],
    *,
    tiers: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """Map and evaluate every row: one dict per row (ref, title, label, tier, fired, errors,
    seconds). Rows that cannot be mapped get ``tier`` None and an ``errors`` entry. With
    ``tiers`` (the risk tier names), a ``suggested_tier`` outside them counts as unlabelled
    rather than as a tier of its own (see importer.map_row)."""
    results: list[dict[str, Any]] = []
    for row in rows:
        try:
            record = map_row(row, tiers=tiers)
        except ValueError as exc:
            results.append(
                {
                    "ref": f"row {row.get('row_id')}",
                    "title": "",
                    "label": "unlabelled",
                    "tier": None,
                    "fired": [],
                    "errors": [{"rule": "-", "error": str(exc)}],
                    "seconds": 0.0,
                }
            )
            continue
        start = time.perf_counter()
        outcome = ruleset.evaluate(record.content)
        elapsed = time.perf_counter() - start
        results.append(
            {
                "ref": record.external_ref,
                "title": record.content["title"],
                "label": record.reference_tier or "unlabelled",
                "tier": outcome.tier,
                "fired": [f.key for f in outcome.fired],
                "errors": outcome.errors,
                "seconds": elapsed,
            }
        )
    return results


def summarise(results: list[dict[str, Any]], tiers: list[str]) -> dict[str, Any]:
    """Confusion matrix (predicted tier × label), per-tier precision/recall, recall of the
    ``high`` label (landing in high or above), share of ``low`` rows raised to high or above,
    and the rows that disagree in that sense, for a person to read."""
    scored = [r for r in results if r["tier"] is not None]
    confusion = Counter((r["tier"], r["label"]) for r in scored)
    labels = sorted(
        {r["label"] for r in scored}, key=lambda t: tiers.index(t) if t in tiers else 99
    )
    at_least_high = set(tiers[tiers.index("high") :]) if "high" in tiers else set()
    high_rows = [r for r in scored if r["label"] == "high"]
    low_rows = [r for r in scored if r["label"] == "low"]
    per_tier = {}
    for tier in tiers:
        predicted = sum(1 for r in scored if r["tier"] == tier)
        actual = sum(1 for r in scored if r["label"] == tier)
        both = confusion[(tier, tier)]
        per_tier[tier] = {
            "predicted": predicted,
            "labelled": actual,
            "precision": both / predicted if predicted else None,
            "recall": both / actual if actual else None,
        }
    micros = [r["seconds"] * 1e6 for r in scored]
    disagreements = [
        {
            "ref": r["ref"],
            "title": r["title"],
            "label": r["label"],
            "tier": r["tier"],
            "fired": r["fired"],
        }
        for r in scored
        if (r["label"] == "high" and r["tier"] not in at_least_high)
        or (r["label"] == "low" and r["tier"] in at_least_high)
    ]
    return {
        "rows": len(results),
        "tiers": tiers,
        "labels": labels,
        "confusion": {t: {lab: confusion[(t, lab)] for lab in labels} for t in tiers},
        "high_recall": sum(r["tier"] in at_least_high for r in high_rows) / len(high_rows)
        if high_rows
        else None,
        "low_raised_share": sum(r["tier"] in at_least_high for r in low_rows) / len(low_rows)
        if low_rows
        else None,
        "per_tier": per_tier,
        "prohibited": [
            {"ref": r["ref"], "title": r["title"], "fired": r["fired"]}
            for r in scored
            if r["tier"] == "prohibited"
        ],
        "errors": [{"ref": r["ref"], "errors": r["errors"]} for r in results if r["errors"]],
        "disagreements": disagreements,
        "rule_fire_counts": dict(Counter(key for r in scored for key in r["fired"]).most_common()),
        "eval_us_mean": statistics.fmean(micros) if micros else None,
        "eval_us_median": statistics.median(micros) if micros else None,
    }
