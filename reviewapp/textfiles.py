"""Reading text and YAML that people hand us (import files, YAML typed into admin forms).

Every problem is reported with where it is (line and column, 1-based) so the person can fix
the file: bytes that are not UTF-8, YAML syntax errors, aliases (refused: a few bytes can
expand into gigabytes) and duplicate mapping keys (PyYAML would silently keep the last one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class InputFileError(ValueError):
    """A file or text that cannot be read; the message says where and what is wrong."""


def read_utf8(path: str | Path) -> str:
    """The text of ``path`` decoded as UTF-8 (a leading BOM is dropped).

    Raises:
        InputFileError: "<path>: not UTF-8 text at line L, column C (byte 0xNN) ..." for the
            first undecodable byte; OSError when the file cannot be opened.
    """
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", errors="replace")) + 1
        raise InputFileError(
            f"{path}: not UTF-8 text at line {line}, column {column} "
            f"(byte {data[exc.start]:#04x}); save the file as UTF-8"
        ) from None
    return text.removeprefix("\ufeff")


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases, duplicate keys and impossible dates (with
    their position)."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_yaml_timestamp(self, node: Any) -> Any:
        # "2026-13-01" looks like a date to YAML; the base class lets Python's ValueError
        # escape, without a position
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} is not a valid date ({exc})", node.start_mark
            ) from None

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # unhashable key: the base class reports it
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"duplicate key {key!r} (first at line {first.line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """Parse YAML safely (no Python objects, no aliases, no duplicate keys).

    Raises:
        yaml.YAMLError: with ``problem_mark`` at the offending place (see :func:`yaml_problem`).
    """
    # StrictLoader is a SafeLoader subclass: no Python objects are built
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506  # nosec B506


def yaml_problem(exc: yaml.YAMLError) -> str:
    """ "invalid YAML at line L, column C: problem" for a YAML error."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"invalid YAML{where}: {getattr(exc, 'problem', None) or exc}"


def load_yaml_file(path: str | Path) -> Any:
    """:func:`read_utf8` then :func:`load_yaml`.

    Raises:
        InputFileError: bad bytes or bad YAML, "<path>: ..." with line and column.
    """
    text = read_utf8(path)
    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        raise InputFileError(f"{path}: {yaml_problem(exc)}") from None


StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", StrictLoader.construct_yaml_timestamp)
