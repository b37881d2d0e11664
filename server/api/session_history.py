"""Edit history over REST: list edits, show the text after one, restore to it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy.ext.asyncio import AsyncSession

from crdt import EditOp, parse_op
from crdt.replay import replay
from server.api.common import require_role, tenant_session
from server.api.deps import CurrentUser, ServicesDep, UserDb
from server.api.routing import StudioRoute
from server.api.schemas.sessions import (
    EditDetail,
    EditOut,
    EditUser,
    HistoryList,
    RestoreOut,
    RestoreRequest,
)
from server.api.types import IntId, PageParams, ResourceId, error_responses
from server.errors import Conflict, NotFound, ValidationFailed
from server.hub.doc_size import DocumentTooLarge
from storage.models import EditHistory
from storage.repositories.history import HistoryItem, get_edit, list_history, replay_rows

router = APIRouter(
    route_class=StudioRoute, tags=["sessions"], responses=error_responses(403, 404, 409)
)


def _edit_out(item: HistoryItem) -> EditOut:
    edit = item.edit
    operation = edit.operation if isinstance(edit.operation, dict) else {}
    return EditOut(
        id=edit.id,
        user=EditUser(id=edit.user_id, name=item.user_name),
        operation=operation,
        origin=str(operation.get("origin", "user")),
        created_at=edit.created_at,
    )


def _stored_op(row: EditHistory) -> EditOp:
    """An edit_history operation as an EditOp (server-written rows may use any origin)."""
    operation = dict(row.operation)
    origin = operation.pop("origin", "user")
    op = parse_op({**operation, "origin": "user"})
    return EditOp(op.type, op.position, op.length, op.content, origin)


def content_after(rows: list[EditHistory]) -> str:
    """Rebuild the text after the last of ``rows`` (the first row is a checkpoint)."""
    first = rows[0]
    if first.content_after is not None:
        return replay(first.content_after, (_stored_op(r) for r in rows[1:]))
    assert first.content_before is not None
    return replay(first.content_before, (_stored_op(r) for r in rows))


async def content_at(db: AsyncSession, session_id: str, edit_id: int) -> tuple[HistoryItem, str]:
    """An edit of the session and the text right after it (404 / 409 when impossible)."""
    item = await get_edit(db, session_id, edit_id)
    if item is None:
        raise NotFound(f"no edit {edit_id} in this session")
    rows = await replay_rows(db, session_id, edit_id)
    if not rows:
        raise Conflict(f"the text after edit {edit_id} cannot be rebuilt (no checkpoint)")
    return item, content_after(rows)


@router.get("/sessions/{session_id}/history", response_model=HistoryList, summary="Edits")
async def history(
    session_id: ResourceId,
    user: CurrentUser,
    db: UserDb,
    page: Annotated[PageParams, Depends()],
) -> HistoryList:
    """The session's edits, newest first, paged."""
    session = await tenant_session(db, session_id, user)
    items, total = await list_history(db, session.id, limit=page.limit, offset=page.offset)
    return HistoryList(
        items=[_edit_out(i) for i in items], total=total, limit=page.limit, offset=page.offset
    )


@router.get(
    "/sessions/{session_id}/history/{edit_id}", response_model=EditDetail, summary="One edit"
)
async def edit_detail(
    session_id: ResourceId, edit_id: IntId, user: CurrentUser, db: UserDb
) -> EditDetail:
    """One edit and the text right after it."""
    session = await tenant_session(db, session_id, user)
    item, content = await content_at(db, session.id, edit_id)
    return EditDetail(**_edit_out(item).model_dump(), content=content)


@router.post("/sessions/{session_id}/restore", response_model=RestoreOut, summary="Restore")
async def restore(
    session_id: ResourceId,
    body: RestoreRequest,
    user: CurrentUser,
    db: UserDb,
    services: ServicesDep,
) -> RestoreOut:
    """Bring the text back to an edit, as a new change every client receives (EDITOR+)."""
    session = await tenant_session(db, session_id, user)
    await require_role(db, session, user, "EDITOR")
    if not session.is_active:
        raise Conflict("the session is not active")
    live_id = session.id
    _item, target = await content_at(db, live_id, body.edit_id)
    await db.rollback()  # release the read transaction before waiting on the hub
    try:
        rev, durable = await services.hub.replace_text(
            live_id, user.user_id, target, origin="restore"
        )
    except DocumentTooLarge as exc:
        raise ValidationFailed(str(exc), field="edit_id", code="document_too_large") from None
    await durable
    return RestoreOut(rev=rev, content=target, restored_edit_id=body.edit_id)
