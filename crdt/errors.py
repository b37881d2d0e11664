"""Exceptions raised by the :mod:`crdt` package.

Every error derives from :class:`CrdtError`, so a caller can map the whole family in one place
(the server turns them into a JSON ``error`` message or a websocket close code).
"""

from __future__ import annotations

__all__ = ["CrdtError", "OpError", "ProtocolError", "UpdateError"]


class CrdtError(Exception):
    """Base class of every error raised by :mod:`crdt`."""


class OpError(CrdtError):
    """A JSON edit operation is invalid, or does not fit the current text.

    ``code`` is a stable machine-readable identifier (``"invalid_op"``, ``"out_of_range"``),
    ``message`` a human-readable explanation and ``field`` the offending field of the op, if any.
    """

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def __repr__(self) -> str:
        return f"OpError(code={self.code!r}, message={self.message!r}, field={self.field!r})"


class ProtocolError(CrdtError):
    """A wire frame (or a state vector inside one) cannot be decoded."""


class UpdateError(CrdtError):
    """A Yjs update could not be applied; the document was left unchanged."""
