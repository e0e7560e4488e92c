"""Response templates render in a sandbox; unfilled or unknown placeholders block sending."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from reviewapp.errors import ValidationFailed
from reviewapp.policies.services import (
    markdown_source_as_text,
    render_markdown,
    render_template_text,
    sample_context,
    validate_template,
)


def test_unknown_placeholder_is_named() -> None:
    with pytest.raises(ValidationFailed, match="'applicant_name' is undefined"):
        validate_template("Dear {{ applicant_name }}")


def test_sandbox_refuses_python_internals() -> None:
    with pytest.raises(ValidationFailed, match="may not do"):
        render_template_text(
            "{{ application.__class__.__mro__[1].__subclasses__() }}", sample_context()
        )


def test_syntax_error_has_a_line() -> None:
    with pytest.raises(ValidationFailed, match="line 2"):
        validate_template("ok\n{% if %}")


def test_every_seeded_template_renders() -> None:
    doc = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "config" / "response_templates.yaml").read_text()
    )
    for template in doc["response_templates"]:
        validate_template(template["body"])
        text = render_template_text(template["body"], sample_context())
        assert "APP-000000" in text


def test_markdown_is_sanitized() -> None:
    html = str(
        render_markdown(
            "**bold** <script>alert(1)</script> [x](javascript:alert(1)) <img src=x onerror=alert(1)>"
        )
    )
    assert "<strong>bold</strong>" in html
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html
    assert "&lt;script&gt;" in html  # shown as text, not dropped silently


def test_a_runaway_range_is_refused_not_a_server_error() -> None:
    with pytest.raises(ValidationFailed, match="may not do"):
        validate_template("{% for i in range(999999999) %}x{% endfor %}")


def test_an_integer_too_big_to_print_is_refused_not_a_server_error() -> None:
    with pytest.raises(ValidationFailed, match="may not do"):
        validate_template("{{ 10 ** 5000 }}")


@pytest.mark.parametrize(
    "body",
    [
        # each loop alone is small; nested they would run 10**10 times
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        "{% for i in range(200) %}{% for j in range(200) %}{{ j }}{% endfor %}{% endfor %}",
        "{{ 'x' * 1000000000 }}",
        "{{ ['x'] * 200000 }}",
        "{{ 2 ** 100000000 }}",
        # found by a break-it trial: loops over text, chained powers, filters and formats
        '{% set s = "x" * 100000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}',
        "{{ (((10 ** 64) ** 64) ** 64) ** 64 > 0 }}",
        '{{ "x"|center(20000000) }}',
        '{{ "{:>20000000}".format("x") }}',
        '{{ "%20000000s"|format("x") }}',
        '{{ ("x" * 1000)|replace("", "y" * 1000)|length }}',
        '{{ ("x" * 100000)|replace("", "y" * 100000)|length }}',  # 10**10: refused before
        '{{ ("x" * 100000).replace("", "y" * 100000)|length }}',
        '{% for i in range(50) %}{{ "x" * 100000 }}{% endfor %}',
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    ],
)
def test_a_template_that_would_hold_the_server_is_refused(body: str) -> None:
    with pytest.raises(ValidationFailed, match="may not do"):
        validate_template(body)


def test_the_template_language_covers_what_decision_messages_need() -> None:
    body = (
        "{{ application.reference }} for {{ organization|upper }}:"
        "{% for c in citations %} {{ loop.index }}. {{ c.number ~ ' ' ~ c.title }}"
        "{% if not loop.last %};{% endif %}{% endfor %}"
        "{% for r in safety_requirements %}{% for p in r.parameters %}"
        " [{{ p|replace(':', ' =')|truncate(50) }}]{% endfor %}{% endfor %}"
        "{% if reviewer_note is defined and reviewer_note %} Note: {{ reviewer_note|trim }}"
        "{% else %} No note.{% endif %}"
    )
    text = render_template_text(body, sample_context())
    assert text == (
        "APP-000000 for SAMPLE ORGANIZATION: 1. §0.0 Sample section "
        "[Sample limit = 10 units] Note: Sample note"
    )


@pytest.mark.parametrize(
    "body",
    [
        # found by a third trial: memory and CPU through operations the first budget missed,
        # and errors that were not reported as template errors
        "{% set ns = namespace(s='x') %}{{ ns.s }}",
        "{% set l = ['x'] %}{{ l.extend(l) }}",
        "{{ ('%900000000s' % 'x')|length }}",
        "{{ '{:>{}}'.format('x', '900000000') }}",
        "{{ ('\\t' * 10).expandtabs(90000) }}",
        "{{ 'x'.encode() }}",
        "{{ ('x').join('y') }}",
        "{{ application.title|indent(8000) }}",
        "{{ application.title|wordwrap(1) }}",
        "{{ application.title|center(100) }}",
        "{{ citations|tojson }}",
        "{{ citations|map(attribute='title')|list }}",
        "{{ (citations|sum(start=[]))|length }}",
        "{{ 1 + 1 }}",
        "{{ 1 / 0 }}",
        "{% if organization != 'Sample organization' %}{{ 1 / 0 }}{% endif %}Hello",
        "{{ organization() }}",
        "{{ cycler().next() }}",
        "{% include 'x.html' %}",
        "{% macro f() %}x{% endmacro %}{{ f() }}",
        "{{ application.__class__ }}",
        "{{ citations[0] }}",
        "{% for c in citations recursive %}{{ loop(citations) }}{% endfor %}",
        "{% for a in citations %}{% for b in citations %}{% for c in citations %}"
        "{% for d in citations %}x{% endfor %}{% endfor %}{% endfor %}{% endfor %}",
        "{{ application.title|replace('', 'y') }}",
        "{{ application.title ~ '" + "x" * 201 + "' }}",
    ],
)
def test_anything_outside_the_template_language_is_refused_at_save(body: str) -> None:
    with pytest.raises(ValidationFailed, match="may not do"):
        validate_template(body)


def test_placeholder_text_is_not_available_to_templates() -> None:
    with pytest.raises(ValidationFailed, match="may not do"):
        validate_template("{{ lipsum(100000) }}")


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ("{% set x = 1 %}", "{% set %} (line 1)"),
        ("line\n{{ 1 + 1 }}", "arithmetic (line 2)"),
        ("{{ organization() }}", "a call (line 1)"),
        ("{{ citations[0] }}", "indexing with [ ] (line 1)"),
        ("{{ organization|center(9) }}", "the 'center' filter (line 1)"),
    ],
)
def test_a_refusal_names_the_construct_and_its_line(body: str, named: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        validate_template(body)
    assert f"{named} is not part of the template language" in refused.value.message


# found by a fourth trial: constant-argument replace/join chained grow the text exponentially
# inside one line of template code (80 million characters from a 666-character template)
A200 = "a" * 200


@pytest.mark.parametrize(
    "body",
    [
        f'{{{{ "{A200}"|replace("a","{A200}")|replace("a","{A200}")|replace("a","aaaaaaaaaa") }}}}',
        f'{{{{ "{A200}"|replace("a","{A200}")|replace("a","{A200}")|replace("a","aaaaaaaaaa")'
        '|replace("a","aa")|replace("a","aa") }}',
        f'{{{{ "{A200}"|join("{A200}")|join("{A200}") }}}}',
        f'{{{{ ("{A200}"|join("{A200}")|join("{A200}"))|length }}}}',
        # each result under the limit, but the rendering as a whole handles too much text
        # (over a placeholder: Jinja computes a filter of constants once, when compiling)
        "{% for c in citations %}{% for r in safety_requirements %}{% for p in r.parameters %}"
        f'{{% if ((p ~ "{A200}")|replace("a","{A200[:100]}")|length) > 1 %}}{{% endif %}}'
        "{% endfor %}{% endfor %}{% endfor %}",
    ],
)
def test_text_growing_filters_are_refused_before_building_the_text(body: str) -> None:
    context = sample_context()
    # enough list items that the last body's loop passes the work limit
    context["citations"] = context["citations"] * 30
    context["safety_requirements"] = context["safety_requirements"] * 30
    started = time.perf_counter()
    with pytest.raises(ValidationFailed, match="may not do"):
        render_template_text(body, context)
    assert time.perf_counter() - started < 1


def test_replace_and_join_still_work_within_the_limits() -> None:
    body = (
        '{{ organization|replace("Sample", "Acme")|replace("a", "A", 1) }};'
        ' {{ application.title|join("-")|upper }};'
        '{% for r in safety_requirements %} {{ r.parameters|join("; ") }}'
        ' {{ safety_requirements|join(", ", attribute="title") }}{% endfor %};'
        ' {{ "x"|replace("x", "' + "y" * 200 + '")|length }}'
    )
    text = render_template_text(body, sample_context())
    assert text == (
        "Acme orgAnization; S-A-M-P-L-E- -A-P-P-L-I-C-A-T-I-O-N;"
        " Sample limit: 10 units Sample requirement; 200"
    )


def test_a_long_text_is_stopped_at_the_output_limit() -> None:
    context = sample_context()
    context["citations"] = context["citations"] * 2000
    body = f'{{% for c in citations %}}{{{{ "{A200}" }}}}{{% endfor %}}'
    with pytest.raises(ValidationFailed, match="at most 100,000 characters"):
        render_template_text(body, context)


def test_placeholder_values_are_literal_but_the_templates_markdown_renders() -> None:
    context = sample_context()
    context["organization"] = "Evil [org](https://evil.example) <b>x</b> & *co*"
    context["application"].title = "# 1. ![x](https://evil.example/p.png)\n- **APPROVED**"
    body = (
        "Hello **{{ organization }}**, see [our policy](https://example.invalid/policy).\n\n"
        "{{ application.title }} ({{ application.reference }}), version {{ 3 }}"
    )
    text = render_template_text(body, context)
    html = str(render_markdown(text))
    assert (
        "<strong>Evil [org](https://evil.example) &lt;b&gt;x&lt;/b&gt; &amp; *co*</strong>" in html
    )
    assert (
        '<a href="https://example.invalid/policy" rel="noopener noreferrer">our policy</a>' in html
    )
    assert "evil.example" in html and 'href="https://evil.example' not in html
    assert "<img" not in html and "<h1" not in html and "<ul" not in html and "<li" not in html
    assert "# 1. ![x](https://evil.example/p.png)\n- **APPROVED** (APP-000000), version 3" in html
    # a plain-text reader (the email) gets the values back as typed
    assert markdown_source_as_text(text) == (
        f"Hello **{context['organization']}**, see [our policy](https://example.invalid/policy)."
        f"\n\n{context['application'].title} (APP-000000), version 3"
    )


def test_joining_many_pieces_with_tilde_is_refused() -> None:
    # ~ is no filter: its size is bounded by the number of pieces, not by WORK_LIMIT
    twenty = " ~ ".join(["reviewer_note"] * 20)
    assert render_template_text("{{ " + twenty + " }}", sample_context()) == "Sample note" * 20
    nested = "(" + twenty + ") ~ reviewer_note"
    with pytest.raises(ValidationFailed) as refused:
        validate_template("{{ " + nested + " }}")
    assert "joining more than 20 pieces with ~ (21) (line 1)" in refused.value.message
