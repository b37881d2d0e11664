"""Edit history over REST: list edits, show the text after one, restore to it."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from crdt import EditOp, parse_op
from crdt.replay import replay
from server.api.common import caller, iso, require_role, tenant_session
from server.errors import Conflict, NotFound, ValidationFailed
from server.http import page_params, read_json_object, reject_unknown_fields, services_of
from storage.models import EditHistory
from storage.repositories.history import HistoryItem, get_edit, list_history, replay_rows


def _edit_json(item: HistoryItem) -> dict[str, Any]:
    edit = item.edit
    operation = edit.operation if isinstance(edit.operation, dict) else {}
    return {
        "id": edit.id,
        "user": {"id": edit.user_id, "name": item.user_name},
        "operation": operation,
        "origin": operation.get("origin", "user"),
        "created_at": iso(edit.created_at),
    }


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


async def history(request: Request) -> JSONResponse:
    """``GET /api/sessions/{id}/history``: edits, newest first, paged."""
    principal = await caller(request)
    limit, offset = page_params(request)
    async with services_of(request).sessions() as db:
        session = await tenant_session(db, request.path_params["session_id"], principal)
        items, total = await list_history(db, session.id, limit=limit, offset=offset)
    return JSONResponse(
        {"items": [_edit_json(i) for i in items], "total": total, "limit": limit, "offset": offset}
    )


def _edit_id(raw: object, field: str = "edit_id") -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and raw.isdecimal():
        value = int(raw)
    else:
        raise ValidationFailed(f"{field} must be an integer", field=field)
    if value < 1:
        raise ValidationFailed(f"{field} must be positive", field=field)
    return value


async def _content_at(request: Request, session_id: str, edit_id: int) -> tuple[HistoryItem, str]:
    async with services_of(request).sessions() as db:
        item = await get_edit(db, session_id, edit_id)
        if item is None:
            raise NotFound(f"no edit {edit_id} in this session")
        rows = await replay_rows(db, session_id, edit_id)
    if not rows:
        raise Conflict(f"the text after edit {edit_id} cannot be rebuilt (no checkpoint)")
    return item, content_after(rows)


async def edit_detail(request: Request) -> JSONResponse:
    """``GET /api/sessions/{id}/history/{edit_id}``: one edit and the text right after it."""
    principal = await caller(request)
    edit_id = _edit_id(request.path_params["edit_id"])
    async with services_of(request).sessions() as db:
        session = await tenant_session(db, request.path_params["session_id"], principal)
    item, content = await _content_at(request, session.id, edit_id)
    return JSONResponse({**_edit_json(item), "content": content})


async def restore(request: Request) -> JSONResponse:
    """``POST /api/sessions/{id}/restore`` ``{edit_id}``: bring the text back, as a new change."""
    principal = await caller(request)
    body = await read_json_object(request)
    reject_unknown_fields(body, {"edit_id"})
    if "edit_id" not in body:
        raise ValidationFailed("edit_id is required", field="edit_id")
    edit_id = _edit_id(body["edit_id"])
    services = services_of(request)
    async with services.sessions() as db:
        session = await tenant_session(db, request.path_params["session_id"], principal)
        await require_role(db, session, principal, "EDITOR")
    if not session.is_active:
        raise Conflict("the session is not active")
    _item, target = await _content_at(request, session.id, edit_id)
    rev, durable = await services.hub.replace_text(
        session.id, principal.user_id, target, origin="restore"
    )
    await durable
    return JSONResponse({"rev": rev, "content": target, "restored_edit_id": edit_id})


routes = [
    Route("/sessions/{session_id}/history", history, methods=["GET"]),
    Route("/sessions/{session_id}/history/{edit_id}", edit_detail, methods=["GET"]),
    Route("/sessions/{session_id}/restore", restore, methods=["POST"]),
]
