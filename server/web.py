"""The browser editor: the committed bundle in ``server/static/``, served without a build step.

``/``, ``/s/{share_token}`` (a session), ``/prompts`` and ``/p/{prompt_id}`` (a prompt) answer
with the single page (``index.html``), which routes on the client; ``/static/…`` serves the
bundle. Nothing else is claimed, so ``/api``, ``/ws``, the probes and the OpenAPI pages are
never shadowed. The sources and the build are in ``web/``.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parent / "static"

# The share token is in the page's URL: no Referer may carry it to another site.
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


class _Assets(StaticFiles):
    """The bundle; index.html names each file with a content hash, so it may be cached long."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        """The file, with long-lived caching when it exists."""
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
            response.headers["X-Content-Type-Options"] = "nosniff"
        return response


async def single_page(request: Request) -> Response:
    """The studio's page; the client-side router shows sign-in, the list or a session."""
    return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS, media_type="text/html")


def web_routes() -> list[BaseRoute]:
    """The page routes and the static bundle, to append after the API and websocket routes."""
    return [
        Route("/", single_page, methods=["GET"]),
        Route("/s/{share_token}", single_page, methods=["GET"]),
        Route("/prompts", single_page, methods=["GET"]),
        Route("/p/{prompt_id}", single_page, methods=["GET"]),
        Mount("/static", app=_Assets(directory=STATIC_DIR), name="static"),
    ]
