"""Collaboration sessions over REST: create, list, read, rename, deactivate, rotate the link."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from crdt import PromptDocument
from crdt.merge import fold_updates
from server.api.common import caller, require_role, session_json, tenant_session, ws_url
from server.errors import ValidationFailed
from server.http import (
    optional_str,
    page_params,
    read_json_object,
    reject_unknown_fields,
    required_str,
    services_of,
)
from server.security import new_share_token
from storage.base import utcnow
from storage.repositories.collaboration import (
    count_members,
    create_session,
    list_active_sessions,
    load_document,
)

MAX_NAME = 200
MAX_DESCRIPTION = 2_000
MAX_INITIAL_CONTENT = 1_000_000


async def create(request: Request) -> JSONResponse:
    """``POST /api/sessions``: a new session owned by the caller, with its share link."""
    principal = await caller(request)
    body = await read_json_object(request)
    reject_unknown_fields(body, {"name", "description", "content"})
    name = required_str(body, "name", max_length=MAX_NAME)
    description = optional_str(body, "description", max_length=MAX_DESCRIPTION)
    content = optional_str(body, "content", max_length=MAX_INITIAL_CONTENT) or ""
    # The CRDT state is made once, here, so every later load and every Yjs client shares it.
    document = PromptDocument.from_text(content)
    services = services_of(request)
    async with services.sessions() as db, db.begin():
        session = await create_session(
            db,
            tenant_id=principal.tenant_id,
            owner_id=principal.user_id,
            name=name,
            description=description,
            content=content,
            share_token=new_share_token(),
            crdt_state=document.full_state(),
        )
    return JSONResponse(
        session_json(
            session,
            content=content,
            share_token=session.share_token,
            ws_url=ws_url(request, session.share_token),
            role="OWNER",
            member_count=1,
        ),
        status_code=201,
    )


async def list_sessions(request: Request) -> JSONResponse:
    """``GET /api/sessions``: the tenant's active sessions, newest activity first, paged."""
    principal = await caller(request)
    limit, offset = page_params(request)
    async with services_of(request).sessions() as db:
        summaries, total = await list_active_sessions(
            db, tenant_id=principal.tenant_id, limit=limit, offset=offset
        )
    return JSONResponse(
        {
            "items": [session_json(s.session, member_count=s.member_count) for s in summaries],
            "total": total,
            "limit": limit,
            "offset": offset,
        }
    )


async def read(request: Request) -> JSONResponse:
    """``GET /api/sessions/{id}``: one session with its current (live) content."""
    principal = await caller(request)
    services = services_of(request)
    async with services.sessions() as db:
        session = await tenant_session(db, request.path_params["session_id"], principal)
        members = await count_members(db, session.id)
        room = services.hub.rooms.get(session.id)
        persisted = None if room is not None else await load_document(db, session.id)
    if room is not None:
        content = room.text
    elif persisted is not None and persisted[1]:
        # Updates logged since the last compaction (e.g. by another node) are part of the text.
        content = fold_updates(persisted[0], persisted[1])[1]
    else:
        content = session.content or ""
    extra: dict[str, object] = {"member_count": members, "live": room is not None}
    if room is not None:
        extra["rev"] = room.rev
        extra["connections"] = len(room.connections)
    return JSONResponse(session_json(session, content=content, **extra))


async def update(request: Request) -> JSONResponse:
    """``PATCH /api/sessions/{id}``: rename or re-describe (OWNER or EDITOR)."""
    principal = await caller(request)
    body = await read_json_object(request)
    reject_unknown_fields(body, {"name", "description"})
    if not body:
        raise ValidationFailed("nothing to change: give name and/or description")
    services = services_of(request)
    async with services.sessions() as db, db.begin():
        session = await tenant_session(db, request.path_params["session_id"], principal)
        await require_role(db, session, principal, "EDITOR")
        if "name" in body:
            session.name = required_str(body, "name", max_length=MAX_NAME)
        if "description" in body:
            session.description = optional_str(body, "description", max_length=MAX_DESCRIPTION)
        session.updated_at = utcnow()
    services.hub.rename(session.id, session.name, session.description)
    return JSONResponse(session_json(session))


async def deactivate(request: Request) -> JSONResponse:
    """``POST /api/sessions/{id}/deactivate``: close every connection, refuse new joins (OWNER)."""
    principal = await caller(request)
    services = services_of(request)
    async with services.sessions() as db, db.begin():
        session = await tenant_session(db, request.path_params["session_id"], principal)
        await require_role(db, session, principal, "OWNER")
        session.is_active = False
        session.updated_at = utcnow()
    await services.hub.deactivate(session.id)
    return JSONResponse(session_json(session))


async def rotate_share_token(request: Request) -> JSONResponse:
    """``POST /api/sessions/{id}/share-token``: a new link; the old one admits nobody (OWNER)."""
    principal = await caller(request)
    services = services_of(request)
    async with services.sessions() as db, db.begin():
        session = await tenant_session(db, request.path_params["session_id"], principal)
        await require_role(db, session, principal, "OWNER")
        session.share_token = new_share_token()
        session.updated_at = utcnow()
    return JSONResponse(
        {"share_token": session.share_token, "ws_url": ws_url(request, session.share_token)}
    )


routes = [
    Route("/sessions", create, methods=["POST"]),
    Route("/sessions", list_sessions, methods=["GET"]),
    Route("/sessions/{session_id}", read, methods=["GET"]),
    Route("/sessions/{session_id}", update, methods=["PATCH"]),
    Route("/sessions/{session_id}/deactivate", deactivate, methods=["POST"]),
    Route("/sessions/{session_id}/share-token", rotate_share_token, methods=["POST"]),
]
