"""Helpers shared by the collaboration routers: the tenant's session, roles, the share link."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth import Principal
from server.errors import Forbidden, NotFound
from storage.models import CollaborationSession
from storage.models.collaboration import MemberRole, role_at_least
from storage.repositories.collaboration import get_member, get_session


async def tenant_session(
    db: AsyncSession, session_id: str, principal: Principal
) -> CollaborationSession:
    """The caller's tenant's session with this id; another tenant's id is a plain 404."""
    session = await get_session(db, session_id, tenant_id=principal.tenant_id)
    if session is None:
        raise NotFound(f"no session {session_id!r}")
    return session


async def require_role(
    db: AsyncSession, session: CollaborationSession, principal: Principal, minimum: MemberRole
) -> str:
    """The caller's role in the session, or 403 if it is below ``minimum``."""
    member = await get_member(db, session.id, principal.user_id)
    role = member.role if member is not None and member.role else None
    if role is None or not role_at_least(role, minimum):
        raise Forbidden(f"this needs the {minimum} role in the session")
    return role


def ws_url(request: Request, share_token: str) -> str:
    """The websocket URL a client joins with (y-websocket: serverUrl + '/ws', room = token)."""
    scheme = "wss" if request.url.scheme == "https" else "ws"
    return f"{scheme}://{request.url.netloc}/ws/{share_token}"
