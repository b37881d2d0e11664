"""``POST /api/sessions/{id}/publish``: a session's live text becomes a version of its prompt.

The live text is read like ``GET /api/sessions/{id}`` reads it: from the room when the document
is loaded on this node, else from the persisted snapshot and update log. With the room loaded,
the history writer is flushed first, so the newest ``edit_history`` id is that of the last
change in the text; should a change land while that id is being read, both are read again.
Every connected client is told: JSON clients get a ``published`` message, Yjs clients see it in
the server's awareness state (:mod:`server.hub.announcements`), on every node.
"""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession

from crdt.merge import fold_updates
from server.api.common import require_role, tenant_session
from server.api.deps import CurrentUser, ServicesDep, UserDb
from server.api.prompt_views import domain_errors, limits_of, retire_cache_entries, saved_out
from server.api.routing import StudioRoute
from server.api.schemas.prompts import Published, PublishRequest
from server.api.types import ResourceId, error_responses
from server.prompts.context import Actor
from server.prompts.publishing import LiveText, publish
from server.services import Services
from storage.models import CollaborationSession
from storage.repositories.collaboration import load_document
from storage.repositories.prompts import last_edit_id

router = APIRouter(
    route_class=StudioRoute, tags=["sessions"], responses=error_responses(403, 404, 409)
)

# Reads of (text, newest edit id) while the room keeps changing before one is consistent; the
# last read is used after that (its edit id may then be a change or two past the text).
CAPTURE_ATTEMPTS = 5


async def live_text(
    services: Services, db: AsyncSession, session: CollaborationSession
) -> LiveText:
    """The session's current text and the newest edit_history id it includes."""
    room = services.hub.rooms.get(session.id)
    if room is None:
        edit_id = await last_edit_id(db, session.id)
        persisted = await load_document(db, session.id)
        if persisted is not None and persisted[1]:
            return LiveText(fold_updates(persisted[0], persisted[1])[1], edit_id)
        return LiveText(session.content or "", edit_id)
    for _ in range(CAPTURE_ATTEMPTS):
        await services.hub.writer.flush()
        text, rev = room.text, room.rev
        edit_id = await last_edit_id(db, session.id)
        if room.rev == rev:
            break
    return LiveText(text, edit_id)


@router.post(
    "/sessions/{session_id}/publish",
    status_code=201,
    response_model=Published,
    summary="Publish the live text as a version",
)
async def publish_session(
    session_id: ResourceId,
    body: PublishRequest,
    user: CurrentUser,
    db: UserDb,
    services: ServicesDep,
) -> Published:
    """Make the live text a new version of the session's prompt (or the one named); EDITOR+."""
    session = await tenant_session(db, session_id, user)
    await require_role(db, session, user, "EDITOR")
    live = await live_text(services, db, session)
    with domain_errors():
        saved = await publish(
            db,
            Actor(tenant_id=user.tenant_id, user_id=user.user_id),
            session,
            live,
            prompt_id=body.prompt_id,
            message=body.message,
            limits=limits_of(services.settings),
        )
    retired = await retire_cache_entries(services.cache, db, user.tenant_id, saved)
    await db.commit()
    version = saved.version
    await services.hub.announce(
        session.id,
        "published",
        {
            "prompt_id": version.prompt_id,
            "version": version.version,
            "version_id": version.id,
            "edit_id": live.edit_id,
            "user_id": user.user_id,
            "message": version.message,
        },
    )
    return Published(**saved_out(saved, retired).model_dump(by_alias=True), session_id=session.id)
