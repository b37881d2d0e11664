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


def fold_updates(stored: bytes | None, updates: Sequence[bytes]) -> tuple[bytes, str]:
    """A stored state with ``updates`` applied: (the new full state, its text).

    Used to compact a document's update log into its snapshot, and to read the current text of
    a document that is not loaded.
    """
    document = document_from_log(stored, updates)
    return document.full_state(), document.text


def document_from_log(stored: bytes | None, updates: Sequence[bytes]) -> PromptDocument:
    """The document made of a stored state (or nothing) and the updates logged after it.

    Raises:
        UpdateError: a part cannot be decoded.
    """
    parts = [stored, *updates] if stored else list(updates)
    if not parts:
        return PromptDocument.empty()
    try:
        # Merging the binary updates first and integrating the result once is ~5x cheaper
        # than integrating each update (each integration describes its change).
        return PromptDocument.from_state(merge_updates(parts))
    except UpdateError:
        pass
    # A part pycrdt cannot merge: integrate one by one, so the error names the bad part.
    document = PromptDocument.from_state(stored) if stored else PromptDocument.empty()
    for update in updates:
        document.apply_update(update)
    return document
