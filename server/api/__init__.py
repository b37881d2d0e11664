"""REST routers, one module per area, mounted under ``/api``."""

from __future__ import annotations

from starlette.routing import BaseRoute

from server.api import me, session_history, session_members, sessions


def routes() -> list[BaseRoute]:
    """Every REST route of the server."""
    return [*me.routes, *sessions.routes, *session_members.routes, *session_history.routes]
