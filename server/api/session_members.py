"""Session members over REST: list, set a role (OWNER only), remove."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.common import require_role, tenant_session
from server.api.deps import CurrentUser, ServicesDep, UserDb
from server.api.routing import StudioRoute
from server.api.schemas.sessions import MemberList, MemberOut, RoleOut, RoleUpdate
from server.api.types import ResourceId, error_responses
from server.errors import Conflict, NotFound
from storage.repositories.collaboration import (
    get_member,
    list_members,
    remove_member,
    set_member_role,
)
from storage.repositories.tenancy import get_user

router = APIRouter(
    route_class=StudioRoute, tags=["sessions"], responses=error_responses(403, 404, 409)
)


@router.get("/sessions/{session_id}/members", response_model=MemberList, summary="Members")
async def members(
    session_id: ResourceId, user: CurrentUser, db: UserDb, services: ServicesDep
) -> MemberList:
    """Everyone in the session, with who is online on this node."""
    session = await tenant_session(db, session_id, user)
    views = await list_members(db, session.id)
    room = services.hub.rooms.get(session.id)
    online = {c.user_id for c in room.connections} if room is not None else set()
    return MemberList(
        items=[
            MemberOut(
                user_id=v.user.id,
                name=v.user.name,
                email=v.user.email,
                color=v.user.color,
                role=v.member.role or "VIEWER",  # type: ignore[arg-type]
                joined_at=v.member.joined_at,
                last_seen_at=v.member.last_seen_at,
                online=v.user.id in online,
            )
            for v in views
        ]
    )


async def _ensure_another_owner(db: AsyncSession, session_id: str, user_id: str) -> None:
    """409 unless someone other than ``user_id`` is an OWNER of the session."""
    owners = [v.user.id for v in await list_members(db, session_id) if v.member.role == "OWNER"]
    if not any(owner != user_id for owner in owners):
        raise Conflict("a session must keep at least one OWNER")


@router.put(
    "/sessions/{session_id}/members/{user_id}", response_model=RoleOut, summary="Set a role"
)
async def set_role(
    session_id: ResourceId,
    user_id: ResourceId,
    body: RoleUpdate,
    user: CurrentUser,
    db: UserDb,
    services: ServicesDep,
) -> RoleOut:
    """Set a member's role (OWNER only); applies to their open connections at once."""
    session = await tenant_session(db, session_id, user)
    await require_role(db, session, user, "OWNER")
    target = await get_user(db, user_id)
    if target is None or target.tenant_id != user.tenant_id:
        raise NotFound(f"no user {user_id!r}")
    current = await get_member(db, session.id, user_id)
    if current is not None and current.role == "OWNER" and body.role != "OWNER":
        await _ensure_another_owner(db, session.id, user_id)
    member = await set_member_role(db, session_id=session.id, user_id=user_id, role=body.role)
    assert member is not None
    await db.commit()
    await services.hub.set_role(session.id, user_id, body.role)
    return RoleOut(user_id=user_id, role=body.role)


@router.delete(
    "/sessions/{session_id}/members/{user_id}", status_code=204, summary="Remove a member"
)
async def remove(
    session_id: ResourceId,
    user_id: ResourceId,
    user: CurrentUser,
    db: UserDb,
    services: ServicesDep,
) -> Response:
    """Remove a member (an OWNER, or the member leaving); their connections close (4403)."""
    session = await tenant_session(db, session_id, user)
    if user_id != user.user_id:
        await require_role(db, session, user, "OWNER")
    target = await get_member(db, session.id, user_id)
    if target is None:
        raise NotFound(f"user {user_id!r} is not a member of this session")
    if target.role == "OWNER":
        await _ensure_another_owner(db, session.id, user_id)
    await remove_member(db, session_id=session.id, user_id=user_id)
    await db.commit()
    await services.hub.remove_member(session.id, user_id)
    return Response(status_code=204)
