"""Ruleset commands for CI and policy teams: ``flask ruleset export|import`` and
``flask triage-eval``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select

from reviewapp.triage.engine import RuleValidationError

ruleset_cli = AppGroup("ruleset", help="Export and import triage rulesets as YAML.")


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@ruleset_cli.command("export")
@click.option(
    "--version",
    "number",
    type=int,
    default=None,
    help="Ruleset version number (default: the active one).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="File (default: stdout).",
)
@with_appcontext
def export_ruleset(number: int | None, output: str | None) -> None:
    """Write a ruleset version as YAML (re-importable unchanged)."""
    from reviewapp.errors import NotFound
    from reviewapp.extensions import db
    from reviewapp.triage.models import RulesetVersion
    from reviewapp.triage.ruleset_file import dump_ruleset_yaml
    from reviewapp.triage.services import active_ruleset, ruleset_document

    try:
        if number is None:
            version = active_ruleset(db.session)
        else:
            found = db.session.scalars(
                select(RulesetVersion).where(RulesetVersion.number == number)
            ).first()
            if found is None:
                raise NotFound(f"no ruleset version {number}")
            version = found
    except NotFound as exc:
        _fail(exc.message)
    text = dump_ruleset_yaml(ruleset_document(version))
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"ruleset v{version.number} written to {output}", err=True)
    else:
        click.echo(text, nl=False)


@ruleset_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def import_ruleset(path: str) -> None:
    """Store a YAML ruleset as a new draft version (validated first; publishing happens in the
    rules lab, where examples, backtest and a second admin's approval are checked)."""
    from reviewapp.extensions import db
    from reviewapp.triage.ruleset_file import load_ruleset_yaml
    from reviewapp.triage.services import create_ruleset_version

    try:
        version = create_ruleset_version(db.session, load_ruleset_yaml(path), actor=None)
    except RuleValidationError as exc:
        db.rollback()
        _fail(f"{path}: {exc}")
    db.commit()
    click.echo(f"imported as draft ruleset v{version.number} ({len(version.rules)} rules)")


@click.command("triage-eval")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--ruleset",
    "ruleset_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Score this YAML ruleset instead of the active one.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@with_appcontext
def triage_eval(path: str, ruleset_path: str | None, as_json: bool) -> None:
    """Score the active ruleset against a labelled CSV in the inventory's slim format:
    confusion matrix, per-tier precision/recall, and the rows that disagree."""
    from reviewapp.extensions import db
    from reviewapp.triage.evaluation import evaluate_rows, read_labelled_csv, summarise
    from reviewapp.triage.ruleset_file import load_ruleset_yaml
    from reviewapp.triage.services import (
        active_ruleset,
        compile_document,
        compiled_ruleset,
        tiers_in_order,
    )

    try:
        rows = read_labelled_csv(path)
        if ruleset_path:
            compiled = compile_document(db.session, load_ruleset_yaml(ruleset_path))
        else:
            compiled = compiled_ruleset(db.session, active_ruleset(db.session))
    except (ValueError, RuleValidationError) as exc:
        _fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - NotFound etc.: say it on stderr
        _fail(getattr(exc, "message", str(exc)))
    tiers = [t.name for t in tiers_in_order(db.session)]
    summary = summarise(evaluate_rows(compiled, rows, tiers=tiers), tiers)
    if as_json:
        click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
        return
    labels = summary["labels"]
    click.echo(f"{summary['rows']} rows; rows: predicted tier, columns: label")
    click.echo(f"{'':12}" + "".join(f"{lab:>12}" for lab in labels))
    for tier in tiers:
        click.echo(
            f"{tier:12}" + "".join(f"{summary['confusion'][tier][lab]:>12}" for lab in labels)
        )
    for tier, figures in summary["per_tier"].items():
        p, r = figures["precision"], figures["recall"]
        click.echo(
            f"{tier:12} precision {p if p is None else f'{p:.3f}'}  recall {r if r is None else f'{r:.3f}'}"
        )
    if summary["high_recall"] is not None:
        click.echo(f"recall of high (high or above): {summary['high_recall']:.3f}")
    if summary["low_raised_share"] is not None:
        click.echo(f"low rows raised to high or above: {summary['low_raised_share']:.3f}")
    click.echo(f"{len(summary['disagreements'])} rows disagree with their label (first 20):")
    for row in summary["disagreements"][:20]:
        click.echo(
            f"  {row['ref']:>14}  label {row['label']:<7} triage {row['tier']:<10} {row['title'][:60]}"
        )
