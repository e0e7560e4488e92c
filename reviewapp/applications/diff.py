"""Field-by-field differences between two revisions of an application.

Text fields get a word-level diff (``difflib.SequenceMatcher`` from the standard library over
word and whitespace tokens); list fields list what was added and removed; other fields show the
old and new value. Nothing here builds HTML: templates escape every piece.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

from reviewapp.applications.schema import CONTENT_FIELDS, FIELD_LABELS, LIST_FIELDS, TEXT_LIMITS

_TOKEN = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)


@dataclass
class FieldChange:
    """One changed field.

    ``kind``: ``text`` (``segments`` holds (op, text) pairs, op in equal/insert/delete),
    ``list`` (``added`` / ``removed`` values) or ``value`` (``before`` / ``after``).
    """

    name: str
    label: str
    kind: str
    before: Any
    after: Any
    segments: list[tuple[str, str]] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def word_diff(before: str, after: str) -> list[tuple[str, str]]:
    """Word-level diff of two texts as (op, text) pairs; joining the ``equal`` and ``delete``
    texts gives ``before``, joining ``equal`` and ``insert`` gives ``after``."""
    a, b = _TOKEN.findall(before or ""), _TOKEN.findall(after or "")
    out: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            out.append(("equal", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(("delete", "".join(a[i1:i2])))
        if j2 > j1:
            out.append(("insert", "".join(b[j1:j2])))
    return out


def diff_contents(before: dict[str, Any], after: dict[str, Any]) -> list[FieldChange]:
    """The fields that differ between two revision contents, in form order.

    Args:
        before, after: revision ``content`` dicts (missing keys count as empty).
    """
    changes = []
    for name in CONTENT_FIELDS:
        old, new = before.get(name), after.get(name)
        if old == new or (old in (None, "", []) and new in (None, "", [])):
            continue
        label = FIELD_LABELS[name]
        if name in LIST_FIELDS:
            old_list, new_list = list(old or []), list(new or [])
            changes.append(
                FieldChange(
                    name,
                    label,
                    "list",
                    old_list,
                    new_list,
                    added=[v for v in new_list if v not in old_list],
                    removed=[v for v in old_list if v not in new_list],
                )
            )
        elif name in TEXT_LIMITS and name != "product_url":
            changes.append(
                FieldChange(name, label, "text", old, new, segments=word_diff(old or "", new or ""))
            )
        else:
            changes.append(FieldChange(name, label, "value", old, new))
    return changes
