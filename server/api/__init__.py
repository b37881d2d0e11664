"""REST routers, one module per area, mounted under ``/api``."""

from __future__ import annotations

from fastapi import APIRouter

from server.api import (
    admin_debug,
    admin_marketplace,
    admin_tenants,
    auth,
    cache,
    compose,
    marketplace,
    me,
    prompts,
    runs,
    session_history,
    session_members,
    session_publish,
    sessions,
    templates,
    tenant,
)
from server.api.types import error_responses

#: Every REST operation is authenticated, validates what it is given and parses any body
#: defensively (400, 413); each router and route declares its further errors (404, 409…).
_EVERY_ROUTE = error_responses(400, 401, 413, 422)


def api_router() -> APIRouter:
    """Every REST router of the server, to be included under ``/api``."""
    router = APIRouter()
    areas = (
        me,
        auth,
        tenant,
        admin_tenants,
        admin_marketplace,
        admin_debug,
        sessions,
        session_members,
        session_history,
        prompts,
        session_publish,
        templates,
        marketplace,
        compose,
        runs,
        cache,
    )
    for area in areas:
        router.include_router(area.router, responses=_EVERY_ROUTE)
    return router
