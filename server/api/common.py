"""Helpers shared by the REST routers: the caller, the tenant-scoped session, serialisation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from server.auth import Principal, authenticate
from server.errors import Forbidden, NotFound
from server.http import services_of
from server.hub.connection import ROLE_RANK
from storage.models import CollaborationSession
from storage.repositories.collaboration import get_member, get_session


async def caller(request: Request) -> Principal:
    """The authenticated user of a request (401 otherwise)."""
    return await authenticate(request, services_of(request).sessions)


def iso(value: datetime | None) -> str | None:
    """A timestamp as ISO 8601 in UTC (stored naive, always UTC)."""
    return None if value is None else value.isoformat() + "Z"


async def tenant_session(
    db: AsyncSession, session_id: str, principal: Principal
) -> CollaborationSession:
    """The caller's tenant's session with this id; another tenant's id is a plain 404."""
    session = await get_session(db, session_id, tenant_id=principal.tenant_id)
    if session is None:
        raise NotFound(f"no session {session_id!r}")
    return session


async def require_role(
    db: AsyncSession, session: CollaborationSession, principal: Principal, minimum: str
) -> str:
    """The caller's role in the session, or 403 if it is below ``minimum``."""
    member = await get_member(db, session.id, principal.user_id)
    role = member.role if member is not None and member.role else None
    if role is None or ROLE_RANK[role] < ROLE_RANK[minimum]:
        raise Forbidden(f"this needs the {minimum} role in the session")
    return role


def ws_url(request: Request, share_token: str) -> str:
    """The websocket URL a client joins with (y-websocket: serverUrl + '/ws', room = token)."""
    scheme = "wss" if request.url.scheme == "https" else "ws"
    return f"{scheme}://{request.url.netloc}/ws/{share_token}"


def session_json(
    session: CollaborationSession, *, content: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A session as the API shows it."""
    body: dict[str, Any] = {
        "id": session.id,
        "name": session.name,
        "description": session.description,
        "is_active": session.is_active,
        "owner_id": session.owner_id,
        "tenant_id": session.tenant_id,
        "created_at": iso(session.created_at),
        "updated_at": iso(session.updated_at),
    }
    if content is not None:
        body["content"] = content
    body.update(extra)
    return body
