"""Close codes of the collaboration websocket, and the exception that carries one.

A :class:`CloseConnection` raised anywhere while serving a socket is turned into a close frame in
exactly one place (the endpoint).
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    """Websocket close codes used by the server (documented in the README)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    INVALID_PAYLOAD = 1007
    POLICY_VIOLATION = 1008  # rate limit exceeded
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVER_RESTART = 1012
    TRY_AGAIN_LATER = 1013  # slow consumer: the send queue overflowed
    UNAUTHENTICATED = 4401
    FORBIDDEN = 4403
    UNKNOWN_SHARE_TOKEN = 4404
    SESSION_INACTIVE = 4410
    # A Yjs update that would take the document past PROMPT_STUDIO_MAX_DOCUMENT_BYTES.
    DOCUMENT_TOO_LARGE = 4413
    # Too many connections (per session or per user), or too many failed logins from an address.
    TOO_MANY = 4429


class CloseConnection(Exception):
    """Close this client's socket with ``code`` and a human-readable ``reason``."""

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(f"{int(code)} {reason}")
        self.code = code
        # The close reason must fit a control frame (123 bytes of UTF-8).
        self.reason = reason.encode("utf-8")[:123].decode("utf-8", "ignore")
