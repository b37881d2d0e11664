"""REST routers, one module per area, mounted under ``/api``."""

from __future__ import annotations

from fastapi import APIRouter

from server.api import me, prompts, session_history, session_members, session_publish, sessions


def api_router() -> APIRouter:
    """Every REST router of the server, to be included under ``/api``."""
    router = APIRouter()
    for area in (me, sessions, session_members, session_history, prompts, session_publish):
        router.include_router(area.router)
    return router
