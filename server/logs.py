"""Logging for every command: one stderr handler on the root logger whose lines carry no secrets.

Clients pass credentials where servers like to log them: the login token as ``?token=`` on a
websocket URL (y-websocket's ``params``), the share token as the ``/ws/<share>`` path itself, an
``Authorization`` header. uvicorn's access log and its websocket lines print the full URL, and an
exception message may quote any of these. So redaction is done on the finished line, after
formatting (message, arguments, traceback and stack alike), in :class:`RedactingFormatter`, at
every level.

:func:`configure_logging` installs the one handler; ``serve`` then runs uvicorn with
``log_config=None``, so uvicorn's loggers (``uvicorn.error``, ``uvicorn.access``) keep no handler
of their own and propagate here like ours. Later log-format work (JSON lines, request ids)
belongs in this module: a handler added anywhere else would bypass the redaction.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TextIO

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: What stands in for the redacted part of a secret.
MASK = "…"
# A value this long is a generated token (ours are 32+ characters): its first characters
# (``pst_``, ``psk_``, or four of a share token's 192 random bits) say which one it was.
# Anything shorter may be a human's password and is masked whole.
_KEEP_PREFIX_FROM = 16
_KEEP = 4

_VALUE = r"[^\s&#;\"'<>,)\]}]+"
_SECRET_NAMES = r"(?:(?:share_|access_|login_)?token|api_?key|key|password|passwd|secret)"

_QUERY_SECRET = re.compile(rf"(?i)([?&;]{_SECRET_NAMES}=)({_VALUE})")
_WS_PATH = re.compile(r"(/ws/)([^/?#\s\"'<>]+)")
# Eight characters at least: "Bearer token missing" is a message, not a credential.
_SCHEME_CREDENTIAL = re.compile(r"(?i)\b(bearer|basic)(\s+)([A-Za-z0-9._~+/=-]{8,})")
_HEADER_VALUE = re.compile(
    r"(?i)\b((?:proxy-)?authorization|x-api-key|cookie|set-cookie)"
    r"(['\"]?\s*[:=,]\s*(?:b?['\"])?(?:(?:bearer|basic)\s+)?)([^\s'\",;)]+)"
)
_NAMED_VALUE = re.compile(rf"(?i)(['\"]{_SECRET_NAMES}['\"]\s*:\s*b?['\"])([^'\"]+)")
_PREFIXED_SECRET = re.compile(r"\b(?:pst|psk)_[A-Za-z0-9_-]{8,}")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*:)([^@/\s]+)(@)")


def mask(secret: str) -> str:
    """``secret`` with all but a short prefix replaced by :data:`MASK` (idempotent)."""
    if secret.endswith(MASK):
        return secret
    if len(secret) >= _KEEP_PREFIX_FROM:
        return secret[:_KEEP] + MASK
    return MASK


def redact(text: str) -> str:
    """``text`` with every credential this server knows of masked.

    Covered: ``token``/``api_key``/``key``/``password``/``secret`` query parameters, the share
    token in a ``/ws/<share>`` path, ``Bearer``/``Basic`` credentials and ``Authorization``,
    ``X-API-Key`` and cookie header values, JSON-ish ``"token": "…"`` pairs, our login tokens and
    API keys (``pst_…``, ``psk_…``) wherever they appear, and passwords in URLs.
    """
    if not text:
        return text
    text = _URL_PASSWORD.sub(lambda m: m[1] + MASK + m[3], text)
    text = _QUERY_SECRET.sub(lambda m: m[1] + mask(m[2]), text)
    text = _WS_PATH.sub(lambda m: m[1] + mask(m[2]), text)
    text = _SCHEME_CREDENTIAL.sub(lambda m: m[1] + m[2] + mask(m[3]), text)
    text = _HEADER_VALUE.sub(lambda m: m[1] + m[2] + mask(m[3]), text)
    text = _NAMED_VALUE.sub(lambda m: m[1] + mask(m[2]), text)
    return _PREFIXED_SECRET.sub(lambda m: mask(m[0]), text)


class RedactingFormatter(logging.Formatter):
    """A :class:`logging.Formatter` whose every finished line has passed :func:`redact`."""

    def format(self, record: logging.LogRecord) -> str:
        """Format as usual (message, arguments, traceback), then redact the result."""
        return redact(super().format(record))


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time (it may be replaced after set-up)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(level: str) -> None:
    """Log every logger's records at ``level`` and above to stderr, redacted.

    Idempotent: calling it again replaces the handler it installed before, and leaves any other
    handler on the root logger (a test runner's, say) alone.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(RedactingFormatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)


__all__ = ["LOG_FORMAT", "MASK", "RedactingFormatter", "configure_logging", "mask", "redact"]
