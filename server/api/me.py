"""``GET /api/me``: who the login token belongs to."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server.api.common import caller


async def me(request: Request) -> JSONResponse:
    """The caller's user and tenant."""
    principal = await caller(request)
    return JSONResponse(
        {
            "id": principal.user_id,
            "email": principal.email,
            "name": principal.name,
            "color": principal.color,
            "tenant_id": principal.tenant_id,
        }
    )


routes = [Route("/me", me, methods=["GET"])]
