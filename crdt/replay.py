"""Applying edit operations to plain text (rebuilding a past version from edit history)."""

from __future__ import annotations

from collections.abc import Iterable

from crdt.ops import EditOp
from crdt.positions import utf16_to_index


def apply_to_text(text: str, op: EditOp) -> str:
    """The text after ``op`` (positions in UTF-16 code units); raises OpError when out of range."""
    start = utf16_to_index(text, op.position)
    end = utf16_to_index(text, op.position + op.length) if op.length else start
    if op.type == "insert":
        return text[:start] + op.content + text[start:]
    if op.type == "delete":
        return text[:start] + text[end:]
    return text[:start] + op.content + text[end:]


def replay(text: str, ops: Iterable[EditOp]) -> str:
    """Apply ops in order."""
    for op in ops:
        text = apply_to_text(text, op)
    return text
