"""Replaying edit operations on plain text (rebuilding a past version from edit history)."""

from __future__ import annotations

from collections.abc import Iterable

from crdt.ops import EditOp


def replay(text: str, ops: Iterable[EditOp]) -> str:
    """``text`` with ``ops`` applied in order (UTF-16 positions; OpError when out of range)."""
    for op in ops:
        text = op.apply(text)
    return text
