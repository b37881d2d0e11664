"""Collaboration sessions over REST: create, list, read, rename, deactivate, rotate the link.

A share token is shown only when it is minted (here, at creation and on rotation); the database
keeps its SHA-256 hash, like API keys and login tokens.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from crdt import PromptDocument
from crdt.merge import fold_updates
from server.api.common import require_role, tenant_session, ws_url
from server.api.deps import CurrentUser, ServicesDep, UserDb
from server.api.prompt_views import domain_errors
from server.api.routing import StudioRoute
from server.api.schemas.sessions import (
    SessionCreate,
    SessionCreated,
    SessionDetail,
    SessionList,
    SessionOut,
    SessionSummary,
    SessionUpdate,
    ShareLink,
)
from server.api.types import PageParams, ResourceId, error_responses
from server.errors import ValidationFailed
from server.hub.doc_size import DocumentTooLarge
from server.prompts.context import Actor
from server.prompts.publishing import initial_text_for_version
from server.security import hash_secret, new_share_token
from storage.base import utcnow
from storage.repositories.collaboration import (
    count_members,
    create_session,
    list_active_sessions,
    load_document,
)

router = APIRouter(
    route_class=StudioRoute, tags=["sessions"], responses=error_responses(403, 404, 409)
)


@router.post("/sessions", status_code=201, response_model=SessionCreated, summary="New session")
async def create(
    body: SessionCreate, request: Request, user: CurrentUser, db: UserDb, services: ServicesDep
) -> SessionCreated:
    """A new session owned by the caller, with its share link (422 ``document_too_large`` when
    its text, given or from the prompt version, is over ``PROMPT_STUDIO_MAX_DOCUMENT_BYTES``)."""
    content = body.content or ""
    if body.prompt_id is not None:
        with domain_errors():
            content = await initial_text_for_version(
                db, Actor(user.tenant_id, user.user_id), body.prompt_id, body.version
            )
    size, limit = len(content.encode("utf-8")), services.settings.max_document_bytes
    if size > limit:
        raise ValidationFailed(
            str(DocumentTooLarge(size, limit)),
            field="prompt_id" if body.prompt_id is not None else "content",
            code="document_too_large",
        )
    # The CRDT state is made once, here, so every later load and every Yjs client shares it.
    document = PromptDocument.from_text(content)
    share_token = new_share_token()
    session = await create_session(
        db,
        tenant_id=user.tenant_id,
        owner_id=user.user_id,
        name=body.name,
        description=body.description,
        content=content,
        share_token=hash_secret(share_token),
        crdt_state=document.full_state(),
    )
    session.prompt_id = body.prompt_id
    await db.commit()
    return SessionCreated(
        **SessionOut.model_validate(session).model_dump(),
        content=content,
        share_token=share_token,
        ws_url=ws_url(request, share_token),
        role="OWNER",
        member_count=1,
    )


@router.get("/sessions", response_model=SessionList, summary="Active sessions")
async def list_sessions(
    user: CurrentUser, db: UserDb, page: Annotated[PageParams, Depends()]
) -> SessionList:
    """The tenant's active sessions, most recently updated first, paged."""
    summaries, total = await list_active_sessions(
        db, tenant_id=user.tenant_id, limit=page.limit, offset=page.offset
    )
    return SessionList(
        items=[
            SessionSummary(
                **SessionOut.model_validate(s.session).model_dump(), member_count=s.member_count
            )
            for s in summaries
        ],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/sessions/{session_id}", response_model=SessionDetail, summary="One session")
async def read(
    session_id: ResourceId, user: CurrentUser, db: UserDb, services: ServicesDep
) -> SessionDetail:
    """One session with its current (live) content."""
    session = await tenant_session(db, session_id, user)
    members = await count_members(db, session.id)
    room = services.hub.rooms.get(session.id)
    if room is not None:
        content = room.text
    else:
        persisted = await load_document(db, session.id)
        if persisted is not None and persisted[1]:
            # Updates logged since the last compaction (e.g. by another node) are in the text.
            content = fold_updates(persisted[0], persisted[1])[1]
        else:
            content = session.content or ""
    return SessionDetail(
        **SessionOut.model_validate(session).model_dump(),
        content=content,
        member_count=members,
        live=room is not None,
        rev=room.rev if room is not None else None,
        connections=len(room.connections) if room is not None else None,
    )


@router.patch("/sessions/{session_id}", response_model=SessionOut, summary="Rename")
async def update(
    session_id: ResourceId,
    body: SessionUpdate,
    user: CurrentUser,
    db: UserDb,
    services: ServicesDep,
) -> SessionOut:
    """Rename or re-describe the session (OWNER or EDITOR)."""
    session = await tenant_session(db, session_id, user)
    await require_role(db, session, user, "EDITOR")
    if body.name is not None:
        session.name = body.name
    if "description" in body.model_fields_set:
        session.description = body.description
    session.updated_at = utcnow()
    out = SessionOut.model_validate(session)
    await db.commit()
    services.hub.rename(session.id, out.name, out.description)
    return out


@router.post("/sessions/{session_id}/deactivate", response_model=SessionOut, summary="Deactivate")
async def deactivate(
    session_id: ResourceId, user: CurrentUser, db: UserDb, services: ServicesDep
) -> SessionOut:
    """Close every connection (4410) and refuse new joins (OWNER)."""
    session = await tenant_session(db, session_id, user)
    await require_role(db, session, user, "OWNER")
    session.is_active = False
    session.updated_at = utcnow()
    out = SessionOut.model_validate(session)
    await db.commit()
    await services.hub.deactivate(session.id)
    return out


@router.post(
    "/sessions/{session_id}/share-token", response_model=ShareLink, summary="New share link"
)
async def rotate_share_token(
    session_id: ResourceId, request: Request, user: CurrentUser, db: UserDb
) -> ShareLink:
    """A new link; the old one admits nobody from now on (OWNER)."""
    session = await tenant_session(db, session_id, user)
    await require_role(db, session, user, "OWNER")
    share_token = new_share_token()
    session.share_token = hash_secret(share_token)
    session.updated_at = utcnow()
    await db.commit()
    return ShareLink(share_token=share_token, ws_url=ws_url(request, share_token))
