"""How response templates are kept from doing harm.

A template is written by a policy manager, but it renders inside every decision that uses it,
in a web worker. Jinja's SandboxedEnvironment stops unsafe *access* (no attribute or method
that reaches Python internals), not unbounded *work*: loops nested in loops multiply,
``"x" * 10**9`` allocates a gigabyte, filters such as ``center(10**9)`` build huge strings.
Budgets on a general-purpose language proved whack-a-mole (three trials got past them), so:

* a template must stay inside the response-template language (:func:`check_template_language`,
  checked when it is saved and before every rendering): placeholders and their attributes,
  ``if``, ``for`` over a placeholder's list, comparisons, ``~`` and a few filters with
  constant arguments; no ``set``, calls, arithmetic or indexing. Its work then grows only with
  the application it is about;
* it renders in the sandbox within :func:`render_bounded`: at most
  :data:`STEP_BUDGET` executed lines of template code (counted by a trace function on the
  template's own frames only) and :data:`OUTPUT_LIMIT` characters of text, for an application
  whose lists are unusually long, counted as the text is produced;
* the filters it may use are replaced by bounded ones (:func:`bounded_filters`): a line of
  template code can hide any amount of work inside a filter (``"a…a"|replace("a", "a…a")``
  chained three times is 80 million characters), so each filter counts the text it reads and
  builds against :data:`WORK_LIMIT` per rendering, and ``replace`` and ``join`` (the ones that
  multiply) compute the size of their result *before* building it; no result may be longer
  than :data:`OUTPUT_LIMIT`.

Going over either raises :class:`jinja2.exceptions.SecurityError`, which the caller reports as
"the template does something templates may not do".
"""

from __future__ import annotations

import contextvars
import functools
import sys
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS, make_attrgetter
from jinja2.nodes import EvalContext
from jinja2.utils import pass_eval_context

STEP_BUDGET = 200_000  # executed template lines per rendering (a normal template: a few hundred)
OUTPUT_LIMIT = 100_000  # characters of one rendering, and of any one filter's result
WORK_LIMIT = 1_000_000  # characters filters may read and build in one rendering

# characters of text filters have read and built so far in the rendering under way (a list so
# the filters can add to it); None outside render_bounded
_work_done: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "template_work_done", default=None
)


class _StepsExhausted(SecurityError):
    """Raised from the trace function when a rendering runs past STEP_BUDGET lines."""


def render_bounded(template: jinja2.Template, context: dict[str, Any]) -> str:
    """Render ``template`` within STEP_BUDGET steps and OUTPUT_LIMIT characters.

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

    pieces: list[str] = []
    length = 0
    previous = sys.gettrace()
    work = _work_done.set([0])
    sys.settrace(on_call)
    try:
        # piece by piece, so a long text stops at the limit instead of being built first
        for piece in template.generate(**context):
            length += len(piece)
            if length > OUTPUT_LIMIT:
                raise SecurityError(f"the text may be at most {OUTPUT_LIMIT:,} characters long")
            pieces.append(piece)
    finally:
        sys.settrace(previous)
        _work_done.reset(work)
    return "".join(pieces)


# --- bounded filters ------------------------------------------------------------------------


def _charge(characters: int) -> None:
    """Count ``characters`` of text a filter reads or builds against the rendering's budgets.

    Raises:
        jinja2.exceptions.SecurityError: one result over OUTPUT_LIMIT, or the rendering's
        filters past WORK_LIMIT characters in all.
    """
    if characters > OUTPUT_LIMIT:
        raise SecurityError(
            f"a filter would build {characters:,} characters of text; the limit is {OUTPUT_LIMIT:,}"
        )
    done = _work_done.get()
    if done is not None:
        done[0] += characters
        if done[0] > WORK_LIMIT:
            raise SecurityError(
                f"the template's filters handle more than {WORK_LIMIT:,} characters of text"
            )


def _counted(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` (a Jinja filter) charging the text it is given and the text it returns."""

    @functools.wraps(function)  # keeps Jinja's pass_eval_context/pass_environment marker
    def counted(*args: Any, **kwargs: Any) -> Any:
        _charge(sum(len(a) for a in (*args, *kwargs.values()) if isinstance(a, str)))
        result = function(*args, **kwargs)
        if isinstance(result, str):
            _charge(len(result))
        return result

    return counted


@pass_eval_context
def bounded_replace(
    eval_ctx: EvalContext, s: Any, old: Any, new: Any, count: int | None = None
) -> str:
    """Jinja's ``replace`` (without autoescape, as response templates render) that computes the
    length of its result before building it.

    Returns:
        ``s`` with the first ``count`` (all when None or negative) ``old`` replaced by ``new``.
    Raises:
        jinja2.exceptions.SecurityError: the result would exceed OUTPUT_LIMIT characters, or the
        rendering's WORK_LIMIT.
    """
    text, old, new = str(s), str(old), str(new)
    _charge(len(text))
    found = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        found = min(found, count)
    _charge(len(text) + found * (len(new) - len(old)))
    return text.replace(old, new, -1 if count is None else count)


@pass_eval_context
def bounded_join(
    eval_ctx: EvalContext, value: Iterable[Any], d: Any = "", attribute: str | int | None = None
) -> str:
    """Jinja's ``join`` (without autoescape) that computes the length of its result before
    building it.

    Returns:
        the items of ``value`` (or their ``attribute``) as text, separated by ``d``.
    Raises:
        jinja2.exceptions.SecurityError: the result would exceed OUTPUT_LIMIT characters, or the
        rendering's WORK_LIMIT.
    """
    if attribute is not None:
        value = map(make_attrgetter(eval_ctx.environment, attribute), value)
    separator = str(d)
    # joining a text puts the separator between its characters
    items = value if isinstance(value, str) else [str(item) for item in value]
    _charge(sum(map(len, items)))
    _charge(sum(map(len, items)) + max(len(items) - 1, 0) * len(separator))
    return separator.join(items)


def bounded_filters() -> dict[str, Callable[..., Any]]:
    """The ALLOWED_FILTERS, each counting its text against the rendering's budgets; install
    them in the template environment's ``filters``.

    Returns:
        filter name -> filter function.
    """
    # replace and join charge what they read and build themselves, the rest afterwards (their
    # result is at most a few times what they read: upper("ﬃ") is "FFI", escape("&") "&amp;")
    special: dict[str, Callable[..., Any]] = {"replace": bounded_replace, "join": bounded_join}
    return {name: special.get(name) or _counted(FILTERS[name]) for name in ALLOWED_FILTERS}


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
# pieces joined with ~ in one expression (parentheses included): a join is not a filter, so
# its size is bounded by this many times the largest piece, not by WORK_LIMIT
MAX_CONCAT_PIECES = 20
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
    MAX_LOOP_DEPTH deep), comparisons, ``and``/``or``/``not``, ``~`` (at most
    MAX_CONCAT_PIECES pieces), and the ALLOWED_FILTERS and ALLOWED_TESTS with constant
    arguments. No ``set``, macros, calls, arithmetic, indexing,
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
    elif isinstance(node, nodes.Concat):
        pieces = _concat_pieces(node)
        if pieces > MAX_CONCAT_PIECES:
            _refuse(node, f"joining more than {MAX_CONCAT_PIECES} pieces with ~ ({pieces})")
    elif isinstance(node, nodes.Operand):
        if node.op not in _COMPARISONS:
            _refuse(node, f"the {node.op!r} comparison")
    elif not isinstance(node, _PLAIN):
        _refuse(node, _CONSTRUCT_NAMES.get(type(node).__name__, type(node).__name__))
    for child in node.iter_child_nodes():
        _check_node(child, loop_depth)


def _concat_pieces(node: nodes.Concat) -> int:
    """How many pieces ``node`` joins, counting through nested ``~`` (``(a ~ b) ~ c`` is 3)."""
    return sum(_concat_pieces(n) if isinstance(n, nodes.Concat) else 1 for n in node.nodes)
