"""Combining Yjs updates without a live document (coalescing broadcasts, merging snapshots)."""

from __future__ import annotations

from collections.abc import Sequence

import pycrdt

from crdt.document import PromptDocument
from crdt.errors import UpdateError


def merge_updates(updates: Sequence[bytes]) -> bytes:
    """One update equivalent to applying all of ``updates`` (in any order)."""
    if len(updates) == 1:
        return updates[0]
    try:
        return bytes(pycrdt.merge_updates(*updates))
    except ValueError as exc:
        raise UpdateError(f"cannot merge updates: {exc}") from None


def merge_states(stored: bytes | None, ours: bytes) -> tuple[bytes, str]:
    """The union of a stored document state and ours, and its text.

    Yjs updates are commutative and idempotent, so the union never loses a change that either
    side has: a node whose copy is behind cannot roll a newer stored state back.
    """
    if not stored:
        document = PromptDocument.from_state(ours)
    else:
        document = PromptDocument.from_state(stored)
        document.apply_update(ours)
    return document.full_state(), document.text
