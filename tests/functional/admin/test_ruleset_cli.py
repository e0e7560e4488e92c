"""``flask ruleset export|import`` round-trips; ``flask triage-eval`` scores labelled CSVs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from sqlalchemy import select

from reviewapp.triage.models import RulesetStatus, RulesetVersion

SLIM = Path(__file__).resolve().parents[4] / "shared" / "data" / "fed_ai_inventory_2024_slim.csv"


def test_export_import_round_trips_as_a_new_draft(app, db, tmp_path) -> None:
    runner = app.test_cli_runner()
    first = tmp_path / "v1.yaml"
    result = runner.invoke(args=["ruleset", "export", "-o", str(first)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["ruleset", "import", str(first)])
    assert result.exit_code == 0, result.output
    assert "imported as draft ruleset v2" in result.output
    draft = db.scalars(select(RulesetVersion).where(RulesetVersion.number == 2)).one()
    active = db.scalars(select(RulesetVersion).where(RulesetVersion.number == 1)).one()
    assert draft.status == RulesetStatus.draft and active.status == RulesetStatus.published
    assert draft.content_hash == active.content_hash  # same canonical content
    second = runner.invoke(args=["ruleset", "export", "--version", "2"])
    assert second.output == first.read_text(encoding="utf-8")


def test_import_of_an_invalid_ruleset_names_the_rule_and_stores_nothing(app, db, tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "rules:\n  - key: typo\n    name: Typo\n    condition: \"'health' in domian\"\n    actions: [{type: raise_tier, tier: high}]\n",
        encoding="utf-8",
    )
    result = app.test_cli_runner().invoke(args=["ruleset", "import", str(bad)])
    assert result.exit_code == 1
    assert (
        "rule 'typo', condition: unknown field 'domian'; did you mean 'domains'?" in result.output
    )
    assert db.scalars(select(RulesetVersion).where(RulesetVersion.number == 2)).first() is None
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [\n", encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["ruleset", "import", str(broken)])
    assert result.exit_code == 1 and "invalid YAML at line" in result.output


def test_triage_eval_reports_confusion_and_disagreements(app, db, tmp_path) -> None:
    with SLIM.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [next(reader) for _ in range(60)]
        fields = reader.fieldnames
    sample = tmp_path / "sample.csv"
    with sample.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    result = app.test_cli_runner().invoke(args=["triage-eval", str(sample), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["rows"] == 60
    assert sum(sum(col.values()) for col in report["confusion"].values()) == 60
    labelled_high = sum(1 for r in rows if r["suggested_tier"] == "high")
    assert sum(report["confusion"][t].get("high", 0) for t in report["tiers"]) == labelled_high
    for row in report["disagreements"]:
        assert (row["label"] == "high") != (row["tier"] in ("high", "prohibited"))
    text = app.test_cli_runner().invoke(args=["triage-eval", str(sample)])
    assert "recall of high" in text.output and "rows disagree" in text.output
    missing = tmp_path / "nolabel.csv"
    missing.write_text("a,b\n1,2\n", encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["triage-eval", str(missing)])
    assert result.exit_code == 1 and "missing column" in result.output


def _rule_yaml(**overrides: str) -> str:
    fields = {
        "key": "r1",
        "name": "R",
        "condition": "\"'health' in domains\"",
        "enabled": "true",
        "examples": "{must_fire: [{domains: [health]}], must_not_fire: [{domains: [general]}]}",
    }
    fields.update(overrides)
    body = "".join(f"    {k}: {v}\n" for k, v in fields.items())
    return "rules:\n  - actions: [{type: raise_tier, tier: high}]\n" + body


def test_cli_import_refuses_what_would_break_later(app, db, tmp_path) -> None:
    cases = {
        "alias": (
            "rules:\n  - &r {key: r1, name: R, condition: \"'health' in domains\", actions: [{type: raise_tier, tier: high}]}\n  - *r\n",
            "aliases",
        ),
        "typed example": (
            _rule_yaml(examples="{must_fire: [{monthly_requests: abc}]}"),
            "must_fire example #1: monthly_requests",
        ),
        "date example": (
            _rule_yaml(examples="{must_fire: [{title: 2024-01-01}]}"),
            "must_fire example #1: title",
        ),
        "bad key": (_rule_yaml(key="'a/b c'"), "key 'a/b c' must start"),
        "dot key": (_rule_yaml(key="'.'"), "must start with a letter or digit"),
        "quoted enabled": (_rule_yaml(enabled="'false'"), "'enabled' must be true or false"),
        "null name": (_rule_yaml(name="null"), "'name' must be non-empty text"),
        "bool key": (_rule_yaml(key="off"), "'key' must be non-empty text"),
        "unknown top": ("fail_closed_tier: high\n" + _rule_yaml(), "unknown top-level keys"),
        "examples list": (_rule_yaml(examples="[1, 2]"), "examples must be a mapping"),
    }
    runner = app.test_cli_runner()
    for name, (text, message) in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.yaml"
        path.write_text(text, encoding="utf-8")
        result = runner.invoke(args=["ruleset", "import", str(path)])
        assert result.exit_code == 1, (name, result.output)
        assert message in result.output, (name, result.output)
    assert db.scalars(select(RulesetVersion).where(RulesetVersion.number == 2)).first() is None


def test_cli_import_of_deep_or_hidden_conditions_is_a_one_line_error(app, db, tmp_path) -> None:
    cases = {
        "not": ('"' + "not " * 999 + 'true"', "nested more than 100 levels deep"),
        "minus": ('"' + "-" * 3990 + '1.0 > 0"', "nested more than 100 levels deep"),
        "regex": (r"""'title != "x\\" and title =~ "(a|a)*c"'""", "regular-expression operators"),
    }
    for name, (condition, message) in cases.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(_rule_yaml(key=f"deep-{name}", condition=condition), encoding="utf-8")
        result = app.test_cli_runner().invoke(args=["ruleset", "import", str(path)])
        assert result.exit_code == 1, (name, result.output)
        assert isinstance(result.exception, SystemExit)  # _fail's exit, no traceback
        lines = result.stderr.splitlines()
        assert len(lines) == 1, (name, result.stderr)
        assert lines[0].startswith("error: ") and f"rule 'deep-{name}', condition: " in lines[0]
        assert message in lines[0]
    assert db.scalars(select(RulesetVersion).where(RulesetVersion.number == 2)).first() is None


def test_triage_eval_counts_an_unknown_tier_label_as_unlabelled_not_as_a_tier(
    app, db, tmp_path
) -> None:
    with SLIM.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [next(reader) for _ in range(3)]
        fields = reader.fieldnames
    rows[1]["suggested_tier"] = "x"
    sample = tmp_path / "sample.csv"
    with sample.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    result = app.test_cli_runner().invoke(args=["triage-eval", str(sample), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    labels = {label for column in report["confusion"].values() for label in column}
    assert "x" not in labels and "unlabelled" in labels
