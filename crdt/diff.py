"""Turning "make the text equal this" into one minimal edit (used by restore)."""

from __future__ import annotations

from typing import get_args

from crdt.delta import diff_to_ops
from crdt.ops import EditOp, OpOrigin


def diff_to_op(current: str, target: str, *, origin: OpOrigin = "user") -> EditOp | None:
    """The single insert/delete/replace that turns ``current`` into ``target``, or None.

    The common prefix and suffix are kept; positions and lengths are in UTF-16 code units, and
    an emoji is never split. An unknown ``origin`` raises ValueError.
    """
    if origin not in get_args(OpOrigin):
        raise ValueError(f"unknown op origin {origin!r}")
    ops = diff_to_ops(current, target, origin)
    return ops[0] if ops else None
