"""Logging for every command: one stderr handler on the root logger whose lines carry no secrets.

Clients pass credentials where servers like to log them: the login token as ``?token=`` on a
websocket URL (y-websocket's ``params``), the share token as the ``/ws/<share>`` path itself, an
``Authorization`` header. uvicorn's access log and its websocket lines print the full URL, and an
exception message may quote any of these. So redaction is done on the finished line, after
formatting (message, arguments, traceback and stack alike), in :class:`RedactingFormatter`, at
every level.

:func:`configure_logging` installs the one handler; ``serve`` then runs uvicorn with
``log_config=None``, so uvicorn's loggers (``uvicorn.error``, ``uvicorn.access``) keep no handler
of their own and propagate here like ours. A handler added anywhere else would bypass the
redaction.

Lines are text (:data:`LOG_FORMAT`) or, with ``PROMPT_STUDIO_LOG_FORMAT=json``, one JSON object
per line (:class:`JsonFormatter`). Every line logged while an HTTP request or a websocket is
being served carries its id (``request_id``, ``connection_id``): the ids live in context
variables (:data:`request_id`, :data:`connection_id`), set by :class:`RequestIds` and by the
websocket endpoint, and are inherited by the tasks started meanwhile.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid
from typing import TextIO

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"

#: The id of the HTTP request being served (None outside of one).
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
#: The id of the collaboration websocket being served (None outside of one).
connection_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "connection_id", default=None
)
REQUEST_ID_HEADER = "x-request-id"
# An incoming X-Request-ID is kept only if it is this short and of these characters: it ends up
# in every log line and in the response, so it must not carry newlines, markup or a novel.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

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


def _context_of(record: logging.LogRecord) -> dict[str, str]:
    """The ids of the request/connection a record was logged in (see :class:`ContextFilter`)."""
    context: dict[str, str] = {}
    for name in ("request_id", "connection_id"):
        value = getattr(record, name, None)
        if isinstance(value, str):
            context[name] = value
    return context


class ContextFilter(logging.Filter):
    """Stamps each record with the current request and connection id (on the handler, so it
    sees every record, uvicorn's included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Copy the context variables onto the record (a record's own values win)."""
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.get()
        if getattr(record, "connection_id", None) is None:
            record.connection_id = connection_id.get()
        return True


class RedactingFormatter(logging.Formatter):
    """A :class:`logging.Formatter` whose every finished line has passed :func:`redact`."""

    def format(self, record: logging.LogRecord) -> str:
        """Format as usual (message, arguments, traceback), then redact the result."""
        context = _context_of(record)
        record.context = "".join(f" {k}={v}" for k, v in context.items())
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, the context ids
    when set and ``exception`` when there is one; every string redacted."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a single-line JSON object."""
        line: dict[str, str] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        line.update(_context_of(record))
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            line["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False)


class RequestIds:
    """Gives every HTTP request an id: a sane incoming ``X-Request-ID``, else a new one; it is
    set in :data:`request_id` while the request is served and echoed in the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request with its id in context and in the response headers."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = incoming_request_id(scope) or uuid.uuid4().hex
        token = request_id.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)


def incoming_request_id(scope: Scope) -> str | None:
    """The client's ``X-Request-ID`` if it is sane (see ``_SANE_REQUEST_ID``), else None."""
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER.encode():
            text = value.decode("latin-1")
            return text if _SANE_REQUEST_ID.fullmatch(text) else None
    return None


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time (it may be replaced after set-up)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(level: str, log_format: str = "text") -> None:
    """Log every logger's records at ``level`` and above to stderr, redacted, as text lines or
    (``log_format="json"``) JSON lines.

    uvicorn's loggers get no handler of their own and propagate here, so their lines have the
    same format as ours. Idempotent: calling it again replaces the handler it installed before,
    and leaves any other handler on the root logger (a test runner's, say) alone.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(handler)
    handler = _StderrHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else RedactingFormatter(LOG_FORMAT)
    )
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True


__all__ = [
    "LOG_FORMAT",
    "MASK",
    "ContextFilter",
    "JsonFormatter",
    "RedactingFormatter",
    "RequestIds",
    "configure_logging",
    "connection_id",
    "incoming_request_id",
    "mask",
    "redact",
    "request_id",
]
