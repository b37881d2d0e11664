"""Edit history: listing a session's edits and finding what is needed to rebuild a past text.

Rows are written by the history writer. Not every row carries full text: a row carries
``content_before`` and/or ``content_after`` only at checkpoints (see the README), and the text
at any edit is rebuilt from the nearest checkpoint at or before it by replaying the operations.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import EditHistory, User


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """An edit with the display fields of its author."""

    edit: EditHistory
    user_name: str | None


async def list_history(
    db: AsyncSession, session_id: str, *, limit: int, offset: int
) -> tuple[list[HistoryItem], int]:
    """A session's edits, newest first, and how many there are in all."""
    rows = await db.execute(
        select(EditHistory, User.name)
        .outerjoin(User, User.id == EditHistory.user_id)
        .where(EditHistory.session_id == session_id)
        .order_by(EditHistory.id.desc())
        .limit(limit)
        .offset(offset)
    )
    total = await db.scalar(
        select(func.count(EditHistory.id)).where(EditHistory.session_id == session_id)
    )
    return [HistoryItem(edit, name) for edit, name in rows.all()], int(total or 0)


async def get_edit(db: AsyncSession, session_id: str, edit_id: int) -> HistoryItem | None:
    """One edit of a session (None if unknown or of another session)."""
    row = (
        await db.execute(
            select(EditHistory, User.name)
            .outerjoin(User, User.id == EditHistory.user_id)
            .where(EditHistory.session_id == session_id, EditHistory.id == edit_id)
        )
    ).first()
    return None if row is None else HistoryItem(row[0], row[1])


async def replay_rows(db: AsyncSession, session_id: str, edit_id: int) -> list[EditHistory]:
    """The rows from the nearest checkpoint at or before ``edit_id`` up to it, oldest first.

    Only rows written by the same node as ``edit_id`` count: their positions refer to that
    node's copy of the text (a node checkpoints again after applying a peer's change). The first
    row returned carries ``content_before`` or ``content_after``; an empty list means no
    checkpoint exists (the text cannot be rebuilt).
    """
    target = await db.scalar(
        select(EditHistory).where(EditHistory.session_id == session_id, EditHistory.id == edit_id)
    )
    if target is None:
        return []
    same_node = (
        EditHistory.node_id.is_(None)
        if target.node_id is None
        else EditHistory.node_id == target.node_id
    )
    checkpoint_id = await db.scalar(
        select(func.max(EditHistory.id)).where(
            EditHistory.session_id == session_id,
            EditHistory.id <= edit_id,
            same_node,
            or_(EditHistory.content_before.is_not(None), EditHistory.content_after.is_not(None)),
        )
    )
    if checkpoint_id is None:
        return []
    rows = await db.scalars(
        select(EditHistory)
        .where(
            EditHistory.session_id == session_id,
            EditHistory.id >= checkpoint_id,
            EditHistory.id <= edit_id,
            same_node,
        )
        .order_by(EditHistory.id)
    )
    return list(rows)


async def recent_client_ops(
    db: AsyncSession, session_id: str, user_id: str, *, limit: int
) -> list[tuple[str, str | None]]:
    """The last ``limit`` client op ids (with their digests) a user's JSON ops were stored
    under in a session, oldest first."""
    rows = await db.execute(
        select(EditHistory.client_op_id, EditHistory.client_op_digest)
        .where(
            EditHistory.session_id == session_id,
            EditHistory.user_id == user_id,
            EditHistory.client_op_id.is_not(None),
        )
        .order_by(EditHistory.id.desc())
        .limit(limit)
    )
    return [(str(op_id), digest) for op_id, digest in reversed(rows.all())]
