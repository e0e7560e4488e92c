"""The sandbox response templates render in.

First, a template must stay inside the response-template language
(:func:`check_template_language`, checked when it is saved and before every rendering):
placeholders and their attributes, ``if``, ``for`` over a placeholder's list, comparisons,
``~`` and a few filters with constant arguments; no ``set``, calls, arithmetic or indexing.
Its work then grows only with the application it is about. Then, as defence in depth, it
renders in Jinja's SandboxedEnvironment (no attribute or method that could reach Python
internals) with a bound on the work one rendering may do:

Jinja's sandbox stops unsafe *access*, not unbounded *work*: loops nested in loops multiply
(three loops over a 100,000-letter string are 10**15 steps), ``"x" * 10**9`` allocates a
gigabyte, ``10 ** 10**8`` computes for minutes, and filters such as ``center(10**9)`` build
huge strings. A template is written by a policy manager, but it renders inside every decision
that uses it, in a web worker. So each rendering gets:

* a step budget: at most :data:`STEP_BUDGET` executed lines of template code (every loop
  iteration is at least one), counted by a trace function on the template's own frames only;
* a shared ``range()`` budget of :data:`RANGE_BUDGET` items over all its loops;
* ``*`` repetition of strings and lists up to :data:`REPEAT_LIMIT` items, ``**`` on integers
  up to a result of :data:`POWER_BITS_LIMIT` bits;
* integer arguments of filters and callables up to :data:`REPEAT_LIMIT`, and format widths
  (``"{:>9999999}"``, ``"%9999999s"|format``) under a million;
* an output of at most :data:`OUTPUT_LIMIT` characters.

Going over any of them raises :class:`jinja2.exceptions.SecurityError`, which the caller
reports as "the template does something templates may not do".
"""

from __future__ import annotations

import contextvars
import functools
import re
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

STEP_BUDGET = 200_000  # executed template lines per rendering (a normal template: a few hundred)
RANGE_BUDGET = 10_000  # range() items per rendering, all loops together
REPEAT_LIMIT = 100_000  # items of a repeated string or list; integer arguments of filters
POWER_BITS_LIMIT = 65_536  # bits of an integer power's result
OUTPUT_LIMIT = 100_000  # characters of one rendering
_HUGE_WIDTH = re.compile(r"\d{7,}")  # a width or precision of a million or more in a format

_range_used: contextvars.ContextVar[int] = contextvars.ContextVar("template_range_used", default=0)


class _StepsExhausted(SecurityError):
    """Raised from the trace function when a rendering runs past STEP_BUDGET lines."""


def _budgeted_range(*args: int) -> range:
    numbers = range(*args)
    used = _range_used.get() + len(numbers)
    if used > RANGE_BUDGET:
        raise SecurityError(f"loops may produce at most {RANGE_BUDGET:,} range() items in all")
    _range_used.set(used)
    return numbers


def _check_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > REPEAT_LIMIT:
            raise SecurityError(f"numbers passed to filters may be at most {REPEAT_LIMIT:,}")
        if isinstance(value, str) and "%" in value and _HUGE_WIDTH.search(value):
            raise SecurityError("format widths may be at most 999,999")


def _check_replace(text: Any, old: Any, new: Any) -> None:
    # replacing "" inserts the new text between every two characters: len(text) × len(new)
    if isinstance(text, str) and isinstance(new, str) and old == "":
        if (len(text) + 1) * len(new) > REPEAT_LIMIT:
            raise SecurityError(f"a replaced text may hold at most {REPEAT_LIMIT:,} characters")


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    skip = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(function)  # keeps jinja_pass_arg (pass_context / pass_environment)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _check_arguments(args, kwargs)
        if name == "replace":
            values = args[skip:]  # after the context / environment Jinja passes first
            if len(values) >= 3:
                _check_replace(*values[:3])
        result = function(*args, **kwargs)
        if isinstance(result, str | list) and len(result) > OUTPUT_LIMIT:
            raise SecurityError(f"a filter's result may hold at most {OUTPUT_LIMIT:,} items")
        return result

    return bounded


class TemplateSandbox(SandboxedEnvironment):
    """Jinja's sandbox with the arithmetic, calls and filters of a template bounded (see the
    module docstring); :func:`render_bounded` adds the step, range and output budgets."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        self.globals.pop("lipsum", None)  # placeholder text has no place in a decision
        self.globals["range"] = _budgeted_range

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """``*`` and ``**`` with their results' size checked before they are computed."""
        if operator == "**":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and right > 1
                and max(left.bit_length(), 1) * right > POWER_BITS_LIMIT
            ):
                raise SecurityError(f"powers may have at most {POWER_BITS_LIMIT:,} bits")
            return left**right
        for sequence, count in ((left, right), (right, left)):
            if isinstance(sequence, str | list | tuple) and isinstance(count, int):
                if len(sequence) * count > REPEAT_LIMIT:
                    raise SecurityError(
                        f"a repeated text or list may hold at most {REPEAT_LIMIT:,} items"
                    )
        return left * right

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        """A call from template code (``x.format(...)``, ``cycler(...)``), arguments checked;
        a ``str.format`` whose pattern asks for a width of a million or more is refused."""
        _check_arguments(args, kwargs)
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str) and getattr(__obj, "__name__", "") == "replace" and args:
            _check_replace(owner, args[0], args[1] if len(args) > 1 else None)
        if (
            isinstance(owner, str)
            and getattr(__obj, "__name__", "") in ("format", "format_map")
            and _HUGE_WIDTH.search(owner)
        ):
            raise SecurityError("format widths may be at most 999,999")
        return super().call(__context, __obj, *args, **kwargs)


def render_bounded(template: jinja2.Template, context: dict[str, Any]) -> str:
    """Render ``template`` within the budgets of this module.

    Raises:
        jinja2.exceptions.SecurityError: a budget ran out (and whatever rendering raises).
    """
    steps = 0

    def count_lines(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal steps
        if event == "line":
            steps += 1
            if steps > STEP_BUDGET:
                raise _StepsExhausted(
                    f"the template ran more than {STEP_BUDGET:,} steps (loops in loops?)"
                )
        return count_lines

    def on_call(frame: FrameType, event: str, arg: Any) -> Any:
        # only the template's own code is counted (Jinja compiles it to "<template>")
        return count_lines if frame.f_code.co_filename == "<template>" else None

    range_budget = _range_used.set(0)
    previous = sys.gettrace()
    sys.settrace(on_call)
    try:
        text = template.render(**context)
    finally:
        sys.settrace(previous)
        _range_used.reset(range_budget)
    if len(text) > OUTPUT_LIMIT:
        raise SecurityError(f"the text may be at most {OUTPUT_LIMIT:,} characters long")
    return text


# --- the template language: what a response template may contain ------------------------------

#: filters a response template may use (each with constant arguments only)
ALLOWED_FILTERS = frozenset(
    {
        "capitalize",
        "count",
        "d",
        "default",
        "e",
        "escape",
        "first",
        "join",
        "last",
        "length",
        "lower",
        "replace",
        "striptags",
        "title",
        "trim",
        "truncate",
        "upper",
        "wordcount",
    }
)
#: tests a response template may use (``{% if x is defined %}``)
ALLOWED_TESTS = frozenset({"defined", "undefined", "none", "string", "number", "true", "false"})
MAX_LOOP_DEPTH = 3  # citations × safety requirements × parameters
MAX_CONSTANT_TEXT = 200  # characters of a text constant in an expression
MAX_CONSTANT_NUMBER = 1_000
_COMPARISONS = frozenset({"eq", "ne", "lt", "gt", "lteq", "gteq", "in", "notin"})
# what the refusal calls a construct (Jinja's node class names otherwise)
_CONSTRUCT_NAMES = {
    "Assign": "{% set %}",
    "AssignBlock": "{% set %}",
    "Call": "a call",
    "Macro": "{% macro %}",
    "CallBlock": "{% call %}",
    "FilterBlock": "{% filter %}",
    "With": "{% with %}",
    "Include": "{% include %}",
    "Import": "{% import %}",
    "FromImport": "{% from … import %}",
    "Extends": "{% extends %}",
    "Block": "{% block %}",
    "Getitem": "indexing with [ ]",
    "Slice": "slicing with [ : ]",
    "List": "a list",
    "Tuple": "a tuple",
    "Dict": "a dict",
    **{
        name: "arithmetic"
        for name in ("Add", "Sub", "Mul", "Div", "FloorDiv", "Mod", "Pow", "Neg", "Pos")
    },
}
# node types that need no check of their own beyond their children
_PLAIN = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.If,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.CondExpr,
    nodes.Concat,
    nodes.Compare,
    nodes.Keyword,
)


def check_template_language(template: nodes.Template) -> None:
    """Refuse any construct outside the response-template language: placeholders and their
    attributes, ``if``/``elif``/``else``, ``for`` over a placeholder's list (at most
    MAX_LOOP_DEPTH deep), comparisons, ``and``/``or``/``not``, ``~``, and the ALLOWED_FILTERS and
    ALLOWED_TESTS with constant arguments. No ``set``, macros, calls, arithmetic, indexing,
    includes or imports: then a rendering's work grows only with the size of the application it
    is about, never with what the template computes.

    Raises:
        jinja2.exceptions.SecurityError: naming the first construct outside the language and
        its line.
    """
    _check_node(template, loop_depth=0)


def _refuse(node: nodes.Node, what: str) -> None:
    raise SecurityError(f"{what} (line {node.lineno}) is not part of the template language")


def _check_node(node: nodes.Node, loop_depth: int) -> None:
    if isinstance(node, nodes.For):
        if node.recursive or node.test is not None:
            _refuse(node, "a recursive or filtered loop")
        if loop_depth >= MAX_LOOP_DEPTH:
            _refuse(node, f"a loop nested more than {MAX_LOOP_DEPTH} deep")
        if not isinstance(node.target, nodes.Name):
            _refuse(node, "unpacking in a loop")
        if not isinstance(node.iter, nodes.Name | nodes.Getattr):
            _refuse(node, "a loop over anything but a placeholder's list")
        _check_node(node.iter, loop_depth)
        for child in (*node.body, *node.else_):
            _check_node(child, loop_depth + 1)
        return
    if isinstance(node, nodes.Name):
        if node.name.startswith("_"):
            _refuse(node, f"the name {node.name!r}")
        return
    if isinstance(node, nodes.Getattr):
        if node.attr.startswith("_"):
            _refuse(node, f"the attribute {node.attr!r}")
    elif isinstance(node, nodes.Const):
        value = node.value
        if isinstance(value, str) and len(value) > MAX_CONSTANT_TEXT:
            _refuse(node, f"a text constant over {MAX_CONSTANT_TEXT} characters")
        if isinstance(value, int | float) and not isinstance(value, bool):
            if abs(value) > MAX_CONSTANT_NUMBER:
                _refuse(node, f"a number over {MAX_CONSTANT_NUMBER}")
        elif not isinstance(value, str | bool | type(None)):
            _refuse(node, "that constant")
        return
    elif isinstance(node, nodes.Filter | nodes.Test):
        allowed = ALLOWED_FILTERS if isinstance(node, nodes.Filter) else ALLOWED_TESTS
        if node.name not in allowed:
            _refuse(
                node, f"the {node.name!r} {'filter' if isinstance(node, nodes.Filter) else 'test'}"
            )
        if node.dyn_args is not None or node.dyn_kwargs is not None:
            _refuse(node, "*args or **kwargs")
        arguments = [*node.args, *(k.value for k in node.kwargs)]
        if not all(isinstance(a, nodes.Const) for a in arguments):
            _refuse(node, f"a non-constant argument of {node.name!r}")
        if node.name == "replace" and arguments and arguments[0].as_const() == "":  # type: ignore[attr-defined]
            _refuse(node, "replacing the empty text")
    elif isinstance(node, nodes.Operand):
        if node.op not in _COMPARISONS:
            _refuse(node, f"the {node.op!r} comparison")
    elif not isinstance(node, _PLAIN):
        _refuse(node, _CONSTRUCT_NAMES.get(type(node).__name__, type(node).__name__))
    for child in node.iter_child_nodes():
        _check_node(child, loop_depth)
