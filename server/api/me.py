"""``GET /api/me``: who the login token belongs to."""

from __future__ import annotations

from fastapi import APIRouter

from server.api.deps import CurrentUser
from server.api.routing import StudioRoute
from server.api.schemas.sessions import MeOut

router = APIRouter(route_class=StudioRoute, tags=["account"])


@router.get("/me", response_model=MeOut, summary="The caller")
async def me(user: CurrentUser) -> MeOut:
    """The caller's user and tenant."""
    return MeOut(
        id=user.user_id,
        email=user.email,
        name=user.name,
        color=user.color,
        tenant_id=user.tenant_id,
    )
