"""Write-behind persistence of edit history and document snapshots, in group commits.

Edits are submitted as they happen; a single background task writes everything submitted while
the previous commit was in flight in ONE transaction (edit_history rows plus the latest snapshot
of every touched document), then resolves each submitter's future. A failed commit keeps its
entries and is retried with backoff, so nothing acknowledged is ever lost and nothing is
acknowledged before it is durable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.base import utcnow
from storage.models import CollaborationSession, EditHistory
from storage.repositories.collaboration import save_document

logger = logging.getLogger(__name__)

INITIAL_BACKOFF_SECONDS = 0.05

# Returns (crdt_state, content) of a live document at the moment it is called.
SnapshotFn = Callable[[], tuple[bytes, str]]
# Merges a stored state with ours into (merged state, its text); used when several nodes write.
MergeFn = Callable[[bytes | None, bytes], tuple[bytes, str]]


@dataclass(slots=True)
class HistoryEntry:
    """One edit_history row waiting to be written."""

    session_id: str
    user_id: str
    operation: dict[str, Any]
    content_before: str | None = None
    content_after: str | None = None
    node_id: str | None = None


@dataclass(slots=True)
class _Pending:
    entries: list[HistoryEntry]
    future: asyncio.Future[list[int]]


@dataclass(slots=True)
class _Batch:
    pending: list[_Pending] = field(default_factory=list)
    snapshots: dict[str, SnapshotFn] = field(default_factory=dict)


class SessionGoneError(LookupError):
    """The collaboration session was deleted before its edits could be written."""


class HistoryWriter:
    """Group-committing writer for edit history and document snapshots.

    Use as ``async with HistoryWriter(...) as writer:``; leaving the block flushes everything.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        linger_seconds: float = 0.005,
        max_backoff_seconds: float = 5.0,
        merge: MergeFn | None = None,
    ) -> None:
        self._sessions = sessions
        self._linger = linger_seconds
        self._max_backoff = max_backoff_seconds
        # With several nodes, a snapshot is merged into the stored one (never overwrites it), so
        # a node whose copy lacks a peer's latest change cannot roll the stored state back.
        self._merge = merge
        self._backoff = INITIAL_BACKOFF_SECONDS
        self._batch = _Batch()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.commits = 0
        self.failures = 0

    async def __aenter__(self) -> HistoryWriter:
        self._task = asyncio.create_task(self._run(), name="history-writer")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    def submit(
        self, session_id: str, entries: list[HistoryEntry], snapshot: SnapshotFn | None
    ) -> asyncio.Future[list[int]]:
        """Queue edits (and the document's snapshot function); the future gives their row ids."""
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        if entries:
            self._batch.pending.append(_Pending(entries, future))
        else:
            future.set_result([])
        if snapshot is not None:
            self._batch.snapshots[session_id] = snapshot
        self._idle.clear()
        self._wakeup.set()
        return future

    def mark_dirty(self, session_id: str, snapshot: SnapshotFn) -> None:
        """Ask for a snapshot of a document without history rows (e.g. a change from a peer)."""
        self._batch.snapshots[session_id] = snapshot
        self._idle.clear()
        self._wakeup.set()

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed."""
        if self._task is None or self._task.done():
            raise RuntimeError("the history writer is not running")
        await self._idle.wait()

    def _has_work(self) -> bool:
        return bool(self._batch.pending or self._batch.snapshots)

    async def _run(self) -> None:
        while True:
            if not self._has_work():
                self._idle.set()
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self._linger > 0 and not self._closing:
                await asyncio.sleep(self._linger)
            await self._write_pending()

    async def _write_pending(self) -> None:
        """Commit everything queued so far; on failure requeue it and back off.

        A separate method so that the batch (and the documents its snapshot functions hold) is
        released as soon as it is written, not kept alive by the loop until the next batch.
        """
        batch, self._batch = self._batch, _Batch()
        try:
            await self._commit(batch)
        except Exception:
            self.failures += 1
            logger.exception(
                "edit history commit failed (%d edits); retrying in %.2fs",
                sum(len(p.entries) for p in batch.pending),
                self._backoff,
            )
            self._requeue(batch)
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, self._max_backoff)
            return
        self._backoff = INITIAL_BACKOFF_SECONDS
        self.commits += 1

    def _requeue(self, batch: _Batch) -> None:
        # Older entries go first so the rows keep the order the edits were applied in.
        self._batch.pending[:0] = batch.pending
        for session_id, fn in batch.snapshots.items():
            self._batch.snapshots.setdefault(session_id, fn)

    async def _commit(self, batch: _Batch) -> None:
        try:
            ids = await self._write(batch.pending, batch.snapshots)
        except IntegrityError:
            # Most likely a session deleted while its edits waited: drop those, keep the rest.
            gone = await self._missing_sessions(batch)
            if not gone:
                raise
            for item in batch.pending:
                if item.entries[0].session_id in gone and not item.future.done():
                    item.future.set_exception(SessionGoneError(item.entries[0].session_id))
            logger.warning("dropping edits of deleted session(s) %s", ", ".join(sorted(gone)))
            batch.pending = [p for p in batch.pending if p.entries[0].session_id not in gone]
            batch.snapshots = {k: v for k, v in batch.snapshots.items() if k not in gone}
            ids = await self._write(batch.pending, batch.snapshots)
        for item, item_ids in zip(batch.pending, ids, strict=True):
            if not item.future.done():
                item.future.set_result(item_ids)

    async def _missing_sessions(self, batch: _Batch) -> set[str]:
        wanted = {p.entries[0].session_id for p in batch.pending} | set(batch.snapshots)
        async with self._sessions() as db:
            found = set(
                await db.scalars(
                    select(CollaborationSession.id).where(CollaborationSession.id.in_(wanted))
                )
            )
        return wanted - found

    async def _write(
        self, pending: list[_Pending], snapshots: dict[str, SnapshotFn]
    ) -> list[list[int]]:
        async with self._sessions() as db, db.begin():
            # One multi-row INSERT ... RETURNING id (no ORM unit of work: this is the hot path).
            now = utcnow()
            params = [
                {
                    "session_id": e.session_id,
                    "user_id": e.user_id,
                    "operation": e.operation,
                    "content_before": e.content_before,
                    "content_after": e.content_after,
                    "node_id": e.node_id,
                    "created_at": now,
                }
                for item in pending
                for e in item.entries
            ]
            ids: list[int] = []
            if params:
                result = await db.execute(
                    insert(EditHistory).returning(EditHistory.id, sort_by_parameter_order=True),
                    params,
                )
                ids = list(result.scalars())
            for session_id, snapshot in snapshots.items():
                state, content = snapshot()
                if self._merge is not None:
                    stored = await db.scalar(
                        select(CollaborationSession.crdt_state)
                        .where(CollaborationSession.id == session_id)
                        .with_for_update()
                    )
                    state, content = self._merge(stored, state)
                await save_document(db, session_id, crdt_state=state, content=content)
        per_item: list[list[int]] = []
        start = 0
        for item in pending:
            per_item.append(ids[start : start + len(item.entries)])
            start += len(item.entries)
        return per_item
