"""Security headers on every HTTP response: a pure ASGI middleware (websockets pass untouched).

Every response: ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` (share
tokens are in page URLs) and ``X-Frame-Options: DENY``. HTML: a ``Content-Security-Policy``
unless the page set its own (the studio's pages do, see :mod:`server.web`); the API docs page
gets one that admits the Swagger UI bundle it loads from its CDN. ``/api``:
``Cache-Control: no-store`` (answers carry tenants' data and credentials).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.origins import is_api_path
from server.web import PAGE_HEADERS

ALWAYS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)

#: Any HTML page that brings no policy of its own: the studio's (scripts and styles from 'self',
#: websockets to the same host).
PAGE_CSP = PAGE_HEADERS["Content-Security-Policy"]

#: FastAPI's Swagger UI: its bundle and styles from jsDelivr, an inline script that starts it.
SWAGGER_CDN = "https://cdn.jsdelivr.net"
DOCS_CSP = (
    f"default-src 'self'; script-src 'self' 'unsafe-inline' {SWAGGER_CDN}; "
    f"style-src 'self' 'unsafe-inline' {SWAGGER_CDN}; img-src 'self' data: https:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class SecurityHeaders:
    """Adds the headers above to HTTP responses; any other scope goes straight to ``app``."""

    def __init__(self, app: ASGIApp, *, docs_path: str | None = "/docs") -> None:
        self.app = app
        self.docs_path = docs_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request, adding the headers to its response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._add(MutableHeaders(scope=message), path)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _add(self, headers: MutableHeaders, path: str) -> None:
        for name, value in ALWAYS:
            headers.setdefault(name, value)
        if is_api_path(path):
            headers["Cache-Control"] = "no-store"
        is_html = headers.get("content-type", "").lower().startswith("text/html")
        if is_html and "content-security-policy" not in headers:
            headers["Content-Security-Policy"] = DOCS_CSP if path == self.docs_path else PAGE_CSP
