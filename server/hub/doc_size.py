"""The bound on a document's size: its text in UTF-8 bytes (``PROMPT_STUDIO_MAX_DOCUMENT_BYTES``).

A change that would take the text past the bound is refused before it is applied, so no peer
ever sees it. An op or update can add at most its own content (an update: its own bytes) to the
text, so a change that cannot reach the bound is let through at the cost of one length check;
only one that might is tried first on a copy of the document (the exact answer, paid for near
the bound alone).
"""

from __future__ import annotations

from crdt import EditOp, PromptDocument, UpdateError


class DocumentTooLarge(Exception):
    """The change would make the document larger than ``limit`` bytes."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"the document would be {size} bytes, over the limit of {limit} bytes"
            " (PROMPT_STUDIO_MAX_DOCUMENT_BYTES)"
        )
        self.size = size
        self.limit = limit


def text_bytes(document: PromptDocument) -> int:
    """The document's size as the bound counts it: its text in UTF-8."""
    return len(document.text.encode("utf-8"))


def check_op(document: PromptDocument, op: EditOp, limit: int | None) -> None:
    """Raise :class:`DocumentTooLarge` if applying ``op`` would pass ``limit``."""
    if limit is None or op.type == "delete":
        return
    current = text_bytes(document)
    if current + len(op.content.encode("utf-8")) <= limit:
        return
    trial = PromptDocument.from_state(document.full_state())
    trial.apply_op(op)
    size = text_bytes(trial)
    if size > limit and size > current:  # a change that shrinks an oversized text is let in
        raise DocumentTooLarge(size, limit)


def check_update(document: PromptDocument, update: bytes, limit: int | None) -> None:
    """Raise :class:`DocumentTooLarge` if applying the Yjs ``update`` would pass ``limit``
    (an undecodable update is left for the caller's own apply to refuse)."""
    if limit is None:
        return
    current = text_bytes(document)
    if current + len(update) <= limit:
        return
    trial = PromptDocument.from_state(document.full_state())
    try:
        trial.apply_update(update)
    except UpdateError:
        return
    size = text_bytes(trial)
    if size > limit and size > current:
        raise DocumentTooLarge(size, limit)
