"""Malformed import files: every import path says where (line, and column when known) and what
is wrong; row-based imports keep the good rows; nothing already stored changes; the CLI
writes errors on stderr and exits non-zero."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import pytest
from sqlalchemy import func, select

from reviewapp.applications.importer import REQUIRED_COLUMNS
from reviewapp.applications.models import Application
from reviewapp.cli import import_inventory
from reviewapp.errors import ValidationFailed
from reviewapp.limits import LIMITS
from reviewapp.policies.admin import parse_parameter_specs
from reviewapp.policies.models import PolicySection
from reviewapp.review.sla import load_calendar
from reviewapp.textfiles import InputFileError, load_yaml_file
from reviewapp.triage.models import RulesetVersion

HEADER = ",".join(REQUIRED_COLUMNS)


def _row(row_id: int, **values: str) -> str:
    """One CSV record (no line end) of a valid inventory row, with ``values`` replaced."""
    fields = {c: "" for c in REQUIRED_COLUMNS}
    fields.update(
        row_id=str(row_id),
        agency="Agency Ä",
        use_case_name=f"Use case {row_id} 🚀",
        purpose_benefits="Helps staff.",
    )
    fields.update(values)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([fields[c] for c in REQUIRED_COLUMNS])
    return buffer.getvalue()


def _write(tmp_path: Path, *records: str | bytes, name: str = "in.csv") -> Path:
    path = tmp_path / name
    parts = [HEADER.encode()] + [r if isinstance(r, bytes) else r.encode() for r in records]
    path.write_bytes(b"\n".join(parts) + b"\n")
    return path


def _import(app, db, path: Path) -> dict:
    with app.app_context():
        return import_inventory(db, path, commit=db.flush, progress=False)


def _refs(db) -> set[str]:
    return set(
        db.scalars(select(Application.external_ref).where(Application.external_ref.is_not(None)))
    )


# --- CSV: applications import -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_record", "message"),
    [
        pytest.param('901,"Agency "quoted" wrongly,x,,,,,,,,,', "broken quoting", id="quoting"),
        pytest.param(
            _row(901) + ",extra,fields", "has 14 fields but the header has 12", id="too-many"
        ),
        pytest.param("901,Agency,Name", "has 3 fields but the header has 12", id="too-few"),
        pytest.param(
            _row(901, agency="Agency X").encode().replace(b"Agency X", b"Agency \xff"),
            "not UTF-8 text at line 3, column 12: byte 0xff",
            id="encoding",
        ),
        pytest.param(_row(901).replace("901", "nine", 1), "row_id 'nine' is not", id="type"),
        pytest.param(
            _row(901, purpose_benefits="p" * (LIMITS["application.description"] + 1)),
            "description (purpose_benefits + outputs) is 10,001 characters long; "
            "the limit is 10,000",
            id="too-long",
        ),
    ],
)
def test_a_bad_record_is_reported_with_its_line_and_the_others_are_imported(
    app, db, tmp_path, bad_record, message
) -> None:
    path = _write(tmp_path, _row(900), bad_record, _row(902))
    result = _import(app, db, path)
    assert result["created"] == 2
    assert _refs(db) == {"fed2024-900", "fed2024-902"}
    assert len(result["errors"]) == 1
    line, problem = result["errors"][0]
    assert line == 3 and message in problem


@pytest.mark.parametrize(
    "quoted", [pytest.param(False, id="plain"), pytest.param(True, id="quoted-multi-line")]
)
def test_an_over_large_field_is_reported_as_too_large_not_as_broken_quoting(
    app, db, tmp_path, quoted
) -> None:
    big = "x" * 140_000
    record = _row(901, purpose_benefits=big)
    if quoted:  # a quoted field over three physical lines (_row's writer does not quote "\n")
        record = record.replace(big, f'"{big}\nsecond, line\nthird"')
    path = _write(tmp_path, _row(900), record, _row(902))
    result = _import(app, db, path)
    assert _refs(db) == {"fed2024-900", "fed2024-902"}
    assert result["created"] == 2 and result["read"] == 3
    (line, problem) = result["errors"][0]
    assert len(result["errors"]) == 1  # the rest of the big record is not read as more records
    assert line == 3
    assert "purpose_benefits field is too large" in problem
    assert "131,072 characters per field" in problem
    assert "quoting" not in problem


def test_the_summary_counts_every_row_once_in_one_category(app, db, tmp_path) -> None:
    assert _import(app, db, _write(tmp_path, _row(900), _row(901), name="one.csv"))["created"]
    path = _write(
        tmp_path,
        _row(900),  # already present, same content
        _row(901, use_case_name="Renamed"),  # already present, different content
        _row(902),  # new
        b"903,\xff,x",  # unreadable
        _row(904, agency=""),  # invalid
        name="two.csv",
    )
    result = app.test_cli_runner().invoke(args=["import-applications", str(path)])
    assert result.exit_code == 1
    assert result.stdout.startswith(
        "read 5 rows: created 1, already present 1, "
        "already present with different content (not changed) 1, bad 2 ("
    )
    single = _write(tmp_path, b"905,\xff,x", name="three.csv")
    result = app.test_cli_runner().invoke(args=["import-applications", str(single)])
    assert result.stdout.startswith(
        "read 1 row: created 0, already present 0, "
        "already present with different content (not changed) 0, bad 1 ("
    )


def test_a_repeated_row_id_with_different_content_is_reported_and_changes_nothing(
    app, db, tmp_path
) -> None:
    assert _import(app, db, _write(tmp_path, _row(900), name="one.csv"))["created"] == 1
    stored = db.scalars(select(Application).where(Application.external_ref == "fed2024-900")).one()
    before = (stored.title, dict(stored.draft), stored.version, stored.reference_tier)
    path = _write(
        tmp_path,
        _row(900, use_case_name="A new name", purpose_benefits="Other text."),
        _row(901),
        _row(901, key_risks="A risk"),  # the same id twice in one file
        _row(901),  # ... and once more unchanged
        name="two.csv",
    )
    result = app.test_cli_runner().invoke(args=["import-applications", str(path)])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("line ")]
    assert lines[0] == (
        f"line 2: row_id 900 was already imported as {stored.reference} with different content "
        "(use_case_name, purpose_benefits/outputs differ); not changed"
    )
    assert lines[1].startswith("line 4: row_id 901 was already imported as APP-")
    assert lines[1].endswith(
        " from line 3 of this file with different content (key_risks/appeal_process differs); "
        "not changed"
    )
    assert len(lines) == 2
    assert "created 1, already present 1, already present with different content " in (
        result.stdout
    )
    db.refresh(stored)
    assert (stored.title, dict(stored.draft), stored.version, stored.reference_tier) == before
    other = db.scalars(select(Application).where(Application.external_ref == "fed2024-901")).one()
    assert "A risk" not in other.draft["safety_measures"]  # the first row of the file counts


def test_an_agency_with_a_control_character_is_a_bad_row_not_a_silently_changed_name(
    app, db, tmp_path
) -> None:
    path = _write(tmp_path, _row(900), _row(901, agency="Agency\x1b[31m X"), _row(902))
    result = _import(app, db, path)
    assert result["created"] == 2 and _refs(db) == {"fed2024-900", "fed2024-902"}
    assert len(result["errors"]) == 1
    line, problem = result["errors"][0]
    assert line == 3
    assert "The organization name contains the control character U+001B; remove it." in problem


def test_a_row_id_with_leading_zeros_is_the_same_row(app, db, tmp_path) -> None:
    result = _import(app, db, _write(tmp_path, _row(900), _row(900).replace("900", "0900", 1)))
    assert result["created"] == 1 and result["skipped"] == 1
    assert _refs(db) == {"fed2024-900"}


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (
            "suggested_tier",
            "x",
            "suggested_tier 'x' is not one of low, medium, high, prohibited; it is left empty",
        ),
        (
            "impact_label",
            "maybe",
            "impact_label 'maybe' is not one of both, rights, safety, neither, unassessed; "
            "it is left empty",
        ),
    ],
)
def test_a_label_outside_the_vocabulary_is_reported_and_left_empty(
    app, db, tmp_path, column, value, message
) -> None:
    path = tmp_path / "labels.csv"
    columns = [*REQUIRED_COLUMNS, "impact_label", "suggested_tier"]
    path.write_text(
        ",".join(columns)
        + "\n"
        + _row(900)
        + ",both,high\n"
        + _row(901)
        + (",both," + value if column == "suggested_tier" else f",{value},high")
        + "\n",
        encoding="utf-8",
    )
    result = app.test_cli_runner().invoke(args=["import-applications", str(path)])
    assert result.exit_code == 1
    assert f"line 3: {message}" in result.stderr
    assert "created 2" in result.stdout and "1 invalid label value left empty" in result.stdout
    kept = db.scalars(select(Application).where(Application.external_ref == "fed2024-901")).one()
    assert (kept.reference_label, kept.reference_tier) == (
        ("both", None) if column == "suggested_tier" else (None, "high")
    )
    good = db.scalars(select(Application).where(Application.external_ref == "fed2024-900")).one()
    assert (good.reference_label, good.reference_tier) == ("both", "high")


def test_unterminated_quote_reports_the_line_where_the_record_starts(app, db, tmp_path) -> None:
    path = _write(tmp_path, _row(900), '901,"Agency never closed,x,,,,,,,,,', _row(902))
    result = _import(app, db, path)
    assert result["created"] == 1 and _refs(db) == {"fed2024-900"}
    assert result["errors"] == [
        (3, "broken quoting: unexpected end of data (record starting at line 3)")
    ]


def test_a_bad_record_never_changes_an_application_already_stored(app, db, tmp_path) -> None:
    first = _import(app, db, _write(tmp_path, _row(900), name="one.csv"))
    assert first["created"] == 1
    stored = db.scalars(select(Application).where(Application.external_ref == "fed2024-900")).one()
    before = (stored.title, dict(stored.draft), stored.version, len(stored.revisions))
    again = _write(
        tmp_path,
        _row(900, agency="Other", use_case_name="Changed") + ",extra",
        _row(900, use_case_name="Changed"),
        name="two.csv",
    )
    result = _import(app, db, again)
    assert result["created"] == 0 and result["skipped"] == 0 and len(result["errors"]) == 1
    assert len(result["conflicts"]) == 1  # same row_id, new content: reported, not applied
    db.refresh(stored)
    assert (stored.title, dict(stored.draft), stored.version, len(stored.revisions)) == before


def test_an_over_long_use_case_name_is_shortened_visibly_not_silently(app, db, tmp_path) -> None:
    name = "Long name " + "word " * 60  # 310 code points
    result = _import(app, db, _write(tmp_path, _row(900, use_case_name=name)))
    assert result["created"] == 1
    (line, note) = result["notices"][0]
    assert line == 2 and "the title was shortened" in note
    application = db.scalars(select(Application)).one()
    assert len(application.title) <= LIMITS["application.title"]
    assert application.title.endswith("…")
    assert f"Full use-case name: {name.strip()}" in application.draft["description"]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("row_id,agency", "missing column(s) use_case_name"),
        (HEADER + ",agency", "column(s) agency appear twice"),
        ("", "the file is empty"),
    ],
)
def test_a_bad_header_stops_the_cli_import_with_exit_2(app, db, tmp_path, header, message) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(header + "\n" + ("1,2\n" if header else ""), encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["import-applications", str(path)])
    assert result.exit_code == 2
    assert message in result.stderr
    assert db.scalar(select(func.count()).select_from(Application)) == 0


def test_cli_lists_bad_lines_on_stderr_keeps_good_rows_and_exits_1(app, db, tmp_path) -> None:
    path = _write(tmp_path, _row(900), b"901,\xff\xfe,x", _row(902))
    result = app.test_cli_runner().invoke(args=["import-applications", str(path)])
    assert result.exit_code == 1
    assert "line 3: not UTF-8 text at line 3, column 5: byte 0xff" in result.stderr
    assert "created 2" in result.stdout and "bad 1" in result.stdout
    assert _refs(db) == {"fed2024-900", "fed2024-902"}


def test_a_utf8_bom_and_crlf_line_ends_are_accepted(app, db, tmp_path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (HEADER + "\r\n" + _row(900) + "\r\n").encode())
    result = _import(app, db, path)
    assert result["errors"] == [] and result["created"] == 1


def test_triage_eval_refuses_a_file_with_unreadable_records(app, db, tmp_path) -> None:
    path = tmp_path / "labelled.csv"
    path.write_bytes(
        (HEADER + ",suggested_tier\n" + _row(900) + ",low\n").encode() + b'901,"open\n'
    )
    result = app.test_cli_runner().invoke(args=["triage-eval", str(path)])
    assert result.exit_code == 1
    assert "line 3: broken quoting" in result.stderr


# --- YAML: ruleset import ---------------------------------------------------------------------

RULE = """rules:
  - key: r1
    name: Rule one
    condition: "'health' in domains"
    actions: [{type: raise_tier, tier: high}]
"""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"rules: [\n  - {key: x\n", "invalid YAML at line 2, column 3", id="syntax"),
        pytest.param(
            RULE.replace("    name: Rule one\n", "    name: Rule one\n    name: Again\n").encode(),
            "duplicate key 'name' (first at line 3)",
            id="duplicate-key",
        ),
        pytest.param(
            RULE.encode().replace(b"Rule one", b"Rule \xe9one"),
            "not UTF-8 text at line 3, column 16 (byte 0xe9)",
            id="encoding",
        ),
        pytest.param(
            (RULE + "    enabled: 'yes'\n").encode(),
            "rule #1: 'enabled' must be true or false",
            id="wrong-type",
        ),
        pytest.param(
            RULE.replace("    condition: \"'health' in domains\"\n", "").encode(),
            "rule #1: missing 'condition'",
            id="missing-key",
        ),
        pytest.param(b"rules: {a: 1}\n", "'rules' must be a list", id="rules-not-a-list"),
        pytest.param(
            RULE.replace("Rule one", "n" * 201).encode(),
            "rule #1: 'name' is 201 characters long; the limit is 200",
            id="too-long",
        ),
        pytest.param(
            ("description: " + "d" * 501 + "\n" + RULE).encode(),
            "'description' is 501 characters long; the limit is 500",
            id="description-too-long",
        ),
        pytest.param(b"a: &x [1]\nb: *x\n", "aliases (*name) are not allowed", id="alias"),
    ],
)
def test_ruleset_import_reports_the_problem_and_stores_nothing(
    app, db, tmp_path, content, message
) -> None:
    before = db.scalar(select(func.count()).select_from(RulesetVersion))
    path = tmp_path / "ruleset.yaml"
    path.write_bytes(content)
    result = app.test_cli_runner().invoke(args=["ruleset", "import", str(path)])
    assert result.exit_code == 1
    assert message in result.stderr, result.stderr
    assert db.scalar(select(func.count()).select_from(RulesetVersion)) == before


# --- YAML: policy library import, seed files, business hours, admin form YAML ------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"sections:\n  - id: a\n    id: b\n", "duplicate key 'id' (first at line 2)"),
        (b"sections:\n  - id: a\n    title: \xff\n", "not UTF-8 text at line 3, column 12"),
        (b"sections: [\n", "invalid YAML at line 2, column 1"),
        (b"sections:\n  - just text\n", "section #1 is not a mapping"),
        (b"sections: 3\n", "expected a mapping with a 'sections' list"),
    ],
)
def test_policy_import_reports_the_problem_and_changes_nothing(
    app, db, tmp_path, content, message
) -> None:
    before = db.scalar(select(func.count()).select_from(PolicySection))
    path = tmp_path / "policies.yaml"
    path.write_bytes(content)
    result = app.test_cli_runner().invoke(args=["import-policies", str(path)])
    assert result.exit_code == 1
    assert message in result.stderr
    assert db.scalar(select(func.count()).select_from(PolicySection)) == before


def test_business_hours_file_with_a_duplicate_key_is_refused(tmp_path) -> None:
    path = tmp_path / "hours.yaml"
    path.write_text("timezone: UTC\ntimezone: Europe/Paris\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"duplicate key 'timezone' \(first at line 1\)"):
        load_calendar(path)


def test_seed_files_go_through_the_strict_reader(tmp_path) -> None:
    path = tmp_path / "tiers.yaml"
    path.write_bytes(b"tiers: []\nqueues: []\ntiers: [x]\n")
    with pytest.raises(InputFileError, match="line 3, column 1: duplicate key 'tiers'"):
        load_yaml_file(path)


def test_requirement_parameters_yaml_reports_duplicate_keys_with_the_line() -> None:
    text = "- name: minimum_age\n  min: 13\n  min: 16\n  max: 21\n"
    with pytest.raises(ValidationFailed) as caught:
        parse_parameter_specs(text)
    assert "line 3" in caught.value.fields["parameters"]
    assert "duplicate key 'min'" in caught.value.fields["parameters"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["a" * 250 + "@example.com", "--org", "O"],
            "EMAIL is 262 characters long; the limit is 254.",
        ),
        (["x@example.com", "--org", "O" * 201], "--org is 201 characters long; the limit is 200."),
        (["x@example.com", "--org", "O", "--name", "n" * 201], "--name is 201 characters long"),
    ],
)
def test_create_user_refuses_over_long_values_on_stderr(app, db, args, message) -> None:
    from reviewapp.auth.models import User

    before = db.scalar(select(func.count()).select_from(User))
    result = app.test_cli_runner().invoke(
        args=["create-user", *args, "--password", "long-enough-pw"]
    )
    assert result.exit_code == 1 and message in result.stderr
    assert db.scalar(select(func.count()).select_from(User)) == before


def test_line_numbers_ignore_unicode_line_separators_inside_fields(app, db, tmp_path) -> None:
    # U+2028 and U+2029 are not line ends for CSV; the bad byte is on physical line 3
    path = _write(tmp_path, _row(900, purpose_benefits="a\u2028b\u2029c"), b"901,\xff,x")
    result = _import(app, db, path)
    assert result["created"] == 1
    assert result["errors"] == [
        (3, "not UTF-8 text at line 3, column 5: byte 0xff; save the file as UTF-8")
    ]


POLICIES_WITH_BAD_SECTIONS = """\
sections:
  - id: import-good-1
    number: "§91"
    title: A good section
    text: Fine.
  - id: import-bad-js
    number: "§92"
    title: A script for a source
    url: "javascript:alert(document.cookie)"
    text: x
  - id: "import-a\\x00b"
    number: "§93"
    title: A NUL in the id
    text: x
  - id: import-bad-title
    number: "§94"
    title: "A tab\\there"
    text: x
  - id: import-good-2
    number: "§95"
    title: Another good section
    url: https://example.com/policy
    text: Also fine.
  - id: import-bad-date
    number: "§96"
    title: A bad date
    effective_date: "next week"
    text: x
"""


def test_policy_import_skips_bad_sections_with_their_line_and_keeps_the_good(
    app, db, client, tmp_path
) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text(POLICIES_WITH_BAD_SECTIONS, encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["import-policies", str(path)])
    assert result.exit_code == 1
    assert "2 policy sections read, 2 created or given a new version, 4 skipped" in result.stdout
    problems = result.stderr.splitlines()
    assert problems == [
        f"{path}: line 6: section #2 ('import-bad-js') the url "
        "'javascript:alert(document.cookie)' is not an http(s) address",
        f"{path}: line 11: section #3 ('import-a\\x00b') the id contains the control "
        "character U+0000",
        f"{path}: line 15: section #4 ('import-bad-title') the title contains the control "
        "character U+0009",
        f"{path}: line 24: section #6 ('import-bad-date') the effective_date 'next week' is "
        "not a YYYY-MM-DD date",
    ]
    keys = set(db.scalars(select(PolicySection.key).where(PolicySection.key.like("import-%"))))
    assert keys == {"import-good-1", "import-good-2"}
    page = client.get("/policies/import-good-2").get_data(as_text=True)
    assert 'Source: <a href="https://example.com/policy"' in page


def test_policy_import_refuses_an_impossible_date_with_its_line(app, db, tmp_path) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text("effective_date: 2026-13-01\nsections: []\n", encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["import-policies", str(path)])
    assert result.exit_code == 1
    assert "invalid YAML at line 1, column 17: '2026-13-01' is not a valid date" in result.stderr


def test_a_stored_non_web_source_url_is_never_a_link(db, client) -> None:
    from reviewapp.policies.services import upsert_policy_section

    upsert_policy_section(
        db,
        key="stored-js",
        number="§97",
        title="Stored before imports checked URLs",
        text="Text.",
        effective_date=dt.date(2026, 1, 1),
        url="javascript:alert(document.cookie)",
    )
    page = client.get("/policies/stored-js").get_data(as_text=True)
    assert 'href="javascript:' not in page
    assert "Source: javascript:alert(document.cookie)" in page  # shown as text only
