"""REST routers, one module per area, mounted under ``/api``."""

from __future__ import annotations

from fastapi import APIRouter

from server.api import me, session_history, session_members, sessions


def api_router() -> APIRouter:
    """Every REST router of the server, to be included under ``/api``."""
    router = APIRouter()
    for area in (me, sessions, session_members, session_history):
        router.include_router(area.router)
    return router
