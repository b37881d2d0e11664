"""The history writer's backlog: edits submitted but not yet durable, and its bound.

The intake asks :meth:`Backlog.admit` before it applies an edit; once the backlog holds
``max_edits`` edits or ``max_bytes`` bytes the answer is no until commits bring it down, so a
writer that cannot keep up makes the server refuse edits instead of growing memory. An edit
that was admitted is always written (a failed commit is retried), so an edit that was applied
and relayed is never dropped for being over the bound: the bound is checked before, not after.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

DEFAULT_MAX_EDITS = 20_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class Backlog:
    """Counts of what is pending (edits, bytes) against their maximum."""

    def __init__(self, *, max_edits: int = DEFAULT_MAX_EDITS, max_bytes: int = DEFAULT_MAX_BYTES):
        """Refuse once ``max_edits`` edits or ``max_bytes`` bytes are pending (both >= 1)."""
        if max_edits < 1 or max_bytes < 1:
            raise ValueError("the backlog's max_edits and max_bytes must be at least 1")
        self.max_edits = max_edits
        self.max_bytes = max_bytes
        self.edits = 0
        self.bytes = 0
        self.peak_edits = 0
        self.refused = 0
        """Edits refused so far (see :meth:`admit`)."""
        self._full = False

    def admit(self) -> bool:
        """Whether one more edit may be applied now; a refusal is counted, and the first of
        an episode logged."""
        if self.edits < self.max_edits and self.bytes < self.max_bytes:
            return True
        self.refused += 1
        if not self._full:
            self._full = True
            logger.warning(
                "edit history backlog full (%d edits, %d bytes not yet stored): refusing edits "
                "until it drains",
                self.edits,
                self.bytes,
            )
        return False

    def add(self, edits: int, size: int) -> None:
        """Edits (and bytes) were submitted."""
        self.edits += edits
        self.bytes += size
        self.peak_edits = max(self.peak_edits, self.edits)

    def remove(self, edits: int, size: int) -> None:
        """Edits (and bytes) were stored, or dropped with their deleted session."""
        self.edits -= edits
        self.bytes -= size
        if self._full and self.edits <= self.max_edits // 2 and self.bytes <= self.max_bytes // 2:
            self._full = False
            logger.warning(
                "edit history backlog drained (%d edits pending); %d edits refused so far",
                self.edits,
                self.refused,
            )
