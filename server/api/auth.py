"""``DELETE /api/auth/token``: log out."""

from __future__ import annotations

from fastapi import APIRouter, Response

from server.api.deps import CurrentUser, ServicesDep, UserDb
from server.api.routing import StudioRoute
from server.hub.revocation import Revocation
from storage.repositories.tenancy import delete_login_session

router = APIRouter(route_class=StudioRoute, tags=["account"])


@router.delete("/auth/token", status_code=204, summary="Log out")
async def logout(user: CurrentUser, db: UserDb, services: ServicesDep) -> Response:
    """End the login session of the token used; websockets opened with it close (4401)."""
    assert user.login_hash is not None  # set by every token lookup
    await delete_login_session(db, user.login_hash)
    await db.commit()
    await services.credentials.revoke(
        Revocation(token_hashes=frozenset({user.login_hash}), reason="logged out")
    )
    response = Response(status_code=204)
    response.delete_cookie("prompt_studio_token")
    return response
