"""Session members over REST: list, set a role (OWNER only), remove."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.api.common import caller, iso, require_role, tenant_session
from server.errors import Conflict, NotFound, ValidationFailed
from server.http import read_json_object, reject_unknown_fields, services_of
from storage.repositories.collaboration import (
    ROLES,
    get_member,
    list_members,
    remove_member,
    set_member_role,
)
from storage.repositories.tenancy import get_user


async def members(request: Request) -> JSONResponse:
    """``GET /api/sessions/{id}/members``: everyone in the session, with who is online here."""
    principal = await caller(request)
    services = services_of(request)
    async with services.sessions() as db:
        session = await tenant_session(db, request.path_params["session_id"], principal)
        views = await list_members(db, session.id)
    room = services.hub.rooms.get(session.id)
    online = {c.user_id for c in room.connections} if room is not None else set()
    return JSONResponse(
        {
            "items": [
                {
                    "user_id": v.user.id,
                    "name": v.user.name,
                    "email": v.user.email,
                    "color": v.user.color,
                    "role": v.member.role,
                    "joined_at": iso(v.member.joined_at),
                    "last_seen_at": iso(v.member.last_seen_at),
                    "online": v.user.id in online,
                }
                for v in views
            ]
        }
    )


async def _ensure_another_owner(db: AsyncSession, session_id: str, user_id: str) -> None:
    """409 unless someone other than ``user_id`` is an OWNER of the session."""
    owners = [v.user.id for v in await list_members(db, session_id) if v.member.role == "OWNER"]
    if not any(owner != user_id for owner in owners):
        raise Conflict("a session must keep at least one OWNER")


async def set_role(request: Request) -> JSONResponse:
    """``PUT /api/sessions/{id}/members/{user_id}`` ``{role}``: OWNER only; applies at once."""
    principal = await caller(request)
    body = await read_json_object(request)
    reject_unknown_fields(body, {"role"})
    role = body.get("role")
    if role not in ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(ROLES)}", field="role")
    user_id = request.path_params["user_id"]
    services = services_of(request)
    async with services.sessions() as db, db.begin():
        session = await tenant_session(db, request.path_params["session_id"], principal)
        await require_role(db, session, principal, "OWNER")
        user = await get_user(db, user_id)
        if user is None or user.tenant_id != principal.tenant_id:
            raise NotFound(f"no user {user_id!r}")
        current = await get_member(db, session.id, user_id)
        if current is not None and current.role == "OWNER" and role != "OWNER":
            await _ensure_another_owner(db, session.id, user_id)
        member = await set_member_role(db, session_id=session.id, user_id=user_id, role=role)
        assert member is not None
    await services.hub.set_role(session.id, user_id, role)
    return JSONResponse({"user_id": user_id, "role": member.role})


async def remove(request: Request) -> Response:
    """``DELETE /api/sessions/{id}/members/{user_id}``: by an OWNER, or a member leaving.

    The removed member's open connections are closed (4403).
    """
    principal = await caller(request)
    user_id = request.path_params["user_id"]
    services = services_of(request)
    async with services.sessions() as db, db.begin():
        session = await tenant_session(db, request.path_params["session_id"], principal)
        if user_id != principal.user_id:
            await require_role(db, session, principal, "OWNER")
        target = await get_member(db, session.id, user_id)
        if target is None:
            raise NotFound(f"user {user_id!r} is not a member of this session")
        if target.role == "OWNER":
            await _ensure_another_owner(db, session.id, user_id)
        await remove_member(db, session_id=session.id, user_id=user_id)
    await services.hub.remove_member(session.id, user_id)
    return Response(status_code=204)


routes = [
    Route("/sessions/{session_id}/members", members, methods=["GET"]),
    Route("/sessions/{session_id}/members/{user_id}", set_role, methods=["PUT"]),
    Route("/sessions/{session_id}/members/{user_id}", remove, methods=["DELETE"]),
]
