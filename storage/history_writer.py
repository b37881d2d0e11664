"""Write-behind persistence of edit history and document updates, in group commits.

Edits are submitted as they happen; a single background task writes everything submitted while
the previous commit was in flight in ONE transaction — the ``edit_history`` rows and, per
document, one ``document_updates`` row holding the batch's Yjs updates merged — then resolves
each submitter's future. A failed commit keeps its entries and is retried with backoff, so
nothing acknowledged is ever lost and nothing is acknowledged before it is durable.

A document's persisted state is ``collaboration_sessions.crdt_state`` plus its
``document_updates`` rows. The same task folds a document's rows into ``crdt_state`` (and its
plain ``content``) once it has enough of them or they get old, and on request (a document being
unloaded), so each commit writes O(change) bytes instead of the whole document.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.base import utcnow
from storage.models import CollaborationSession, DocumentUpdate, EditHistory
from storage.repositories.collaboration import save_document
from storage.sqlite_batch import HISTORY_COLUMNS, SqliteBatchInserter

logger = logging.getLogger(__name__)

INITIAL_BACKOFF_SECONDS = 0.05
# Fold a document's update log into its snapshot after this many rows, or rows this old.
# Rows are small and loading merges them in one pass, so a long log is cheap to keep; each
# compaction costs several statements and, with several nodes, is done by every node.
COMPACT_AFTER_ROWS = 1000
COMPACT_AFTER_SECONDS = 30.0

# Merges several Yjs updates into one.
MergeFn = Callable[[Sequence[bytes]], bytes]
# Folds updates into a stored state: (state or None, updates) -> (new state, its text).
FoldFn = Callable[[bytes | None, Sequence[bytes]], tuple[bytes, str]]


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
    updates: dict[str, list[bytes]] = field(default_factory=dict)


class SessionGoneError(LookupError):
    """The collaboration session was deleted before its edits could be written."""


class HistoryWriter:
    """Group-committing writer for edit history and document updates.

    Use as ``async with HistoryWriter(...) as writer:``; leaving the block flushes everything.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        merge: MergeFn,
        fold: FoldFn,
        linger_seconds: float = 0.005,
        max_backoff_seconds: float = 5.0,
        compact_after_rows: int = COMPACT_AFTER_ROWS,
        compact_after_seconds: float = COMPACT_AFTER_SECONDS,
        sqlite_file: str | None = None,
    ) -> None:
        """``sqlite_file``: the database is this SQLite file; write batches to it directly
        (:mod:`storage.sqlite_batch`) instead of through ``sessions``."""
        self._sessions = sessions
        self._inserter = SqliteBatchInserter(sqlite_file) if sqlite_file else None
        self._merge = merge
        self._fold = fold
        self._linger = linger_seconds
        self._max_backoff = max_backoff_seconds
        self._backoff = INITIAL_BACKOFF_SECONDS
        self._compact_rows = compact_after_rows
        self._compact_seconds = compact_after_seconds
        self._batch = _Batch()
        # Per document: log rows written since its last compaction, and when the first was.
        self._log_rows: dict[str, int] = {}
        self._log_since: dict[str, float] = {}
        self._compact_requested: set[str] = set()
        self._wakeup = asyncio.Event()
        self._urgent = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.commits = 0
        self.compactions = 0
        self.failures = 0

    async def __aenter__(self) -> HistoryWriter:
        if self._inserter is not None:
            await self._inserter.__aenter__()
        self._task = asyncio.create_task(self._run(), name="history-writer")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing = True
        self._wakeup.set()
        try:
            if self._task is not None:
                await self._task
        finally:
            if self._inserter is not None:
                await self._inserter.__aexit__(None, None, None)

    def submit(
        self,
        session_id: str,
        entries: list[HistoryEntry],
        update: bytes | None,
        *,
        awaited: bool = False,
    ) -> asyncio.Future[list[int]]:
        """Queue edits and the Yjs update that made them; the future gives their row ids.

        ``awaited``: someone waits for this commit (a JSON client's ack, a REST restore), so the
        next commit starts at once instead of lingering to gather more edits.
        """
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        if entries:
            self._batch.pending.append(_Pending(entries, future))
        else:
            future.set_result([])
        if update:
            self._batch.updates.setdefault(session_id, []).append(update)
        if awaited:
            self._urgent.set()
        self._wake()
        return future

    def log_update(self, session_id: str, update: bytes) -> None:
        """Persist a Yjs update that has no history rows (a peer's change, an initial state)."""
        if update:
            self._batch.updates.setdefault(session_id, []).append(update)
            self._wake()

    def request_compaction(self, session_id: str) -> None:
        """Fold the document's update log into its snapshot at the next opportunity."""
        self._compact_requested.add(session_id)
        self._wake()

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed (and requested compactions)."""
        if self._task is None or self._task.done():
            raise RuntimeError("the history writer is not running")
        await self._idle.wait()

    def _wake(self) -> None:
        self._idle.clear()
        self._wakeup.set()

    def _has_work(self) -> bool:
        return bool(self._batch.pending or self._batch.updates or self._due_compactions())

    def _due_compactions(self) -> list[str]:
        now = time.monotonic()
        due = set(self._compact_requested)
        for session_id, rows in self._log_rows.items():
            if rows >= self._compact_rows or (
                rows and now - self._log_since[session_id] >= self._compact_seconds
            ):
                due.add(session_id)
        if self._closing:
            due.update(s for s, rows in self._log_rows.items() if rows)
        return sorted(due)

    async def _run(self) -> None:
        while True:
            if not self._has_work():
                self._idle.set()
                if self._closing:
                    return
                self._wakeup.clear()
                # Wake up for age-based compaction even when no new edits arrive.
                timeout = self._compact_seconds if any(self._log_rows.values()) else None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout)
                continue
            if self._linger > 0 and not self._closing and not self._urgent.is_set():
                # Gather more edits, unless (or until) someone waits for this commit.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), self._linger)
            self._urgent.clear()
            if self._batch.pending or self._batch.updates:
                await self._write_pending()
            # Checked after every commit too, so a busy document is still compacted.
            if self._due_compactions():
                await self._compact_due()

    async def _write_pending(self) -> None:
        """Commit everything queued so far; on failure requeue it and back off.

        A separate method so that the batch is released as soon as it is written, not kept
        alive by the loop until the next batch.
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
        now = time.monotonic()
        for session_id in batch.updates:
            self._log_rows[session_id] = self._log_rows.get(session_id, 0) + 1
            self._log_since.setdefault(session_id, now)

    def _requeue(self, batch: _Batch) -> None:
        # Older entries go first so the rows keep the order the edits were applied in.
        self._batch.pending[:0] = batch.pending
        for session_id, updates in batch.updates.items():
            self._batch.updates.setdefault(session_id, [])[:0] = updates

    async def _commit(self, batch: _Batch) -> None:
        try:
            ids = await self._write(batch.pending, batch.updates)
        except (IntegrityError, sqlite3.IntegrityError):
            # Most likely a session deleted while its edits waited: drop those, keep the rest.
            gone = await self._missing_sessions(batch)
            if not gone:
                raise
            for item in batch.pending:
                if item.entries[0].session_id in gone and not item.future.done():
                    item.future.set_exception(SessionGoneError(item.entries[0].session_id))
            logger.warning("dropping edits of deleted session(s) %s", ", ".join(sorted(gone)))
            batch.pending = [p for p in batch.pending if p.entries[0].session_id not in gone]
            batch.updates = {k: v for k, v in batch.updates.items() if k not in gone}
            ids = await self._write(batch.pending, batch.updates)
        for item, item_ids in zip(batch.pending, ids, strict=True):
            if not item.future.done():
                item.future.set_result(item_ids)

    async def _missing_sessions(self, batch: _Batch) -> set[str]:
        wanted = {p.entries[0].session_id for p in batch.pending} | set(batch.updates)
        async with self._sessions() as db:
            found = set(
                await db.scalars(
                    select(CollaborationSession.id).where(CollaborationSession.id.in_(wanted))
                )
            )
        return wanted - found

    async def _write(
        self, pending: list[_Pending], updates: dict[str, list[bytes]]
    ) -> list[list[int]]:
        now = utcnow()
        # One row per entry, in the column order of HISTORY_COLUMNS.
        rows = [
            (
                e.session_id,
                e.user_id,
                e.operation,
                e.content_before,
                e.content_after,
                e.node_id,
                now,
            )
            for item in pending
            for e in item.entries
        ]
        merged = [(session_id, self._merge(chunks), now) for session_id, chunks in updates.items()]
        if self._inserter is not None:
            ids = await self._inserter.insert(rows, merged)
        else:
            ids = await self._write_with_sqlalchemy(rows, merged)
        per_item: list[list[int]] = []
        start = 0
        for item in pending:
            per_item.append(ids[start : start + len(item.entries)])
            start += len(item.entries)
        return per_item

    async def _write_with_sqlalchemy(
        self, rows: list[tuple[Any, ...]], updates: list[tuple[str, bytes, datetime]]
    ) -> list[int]:
        async with self._sessions() as db, db.begin():
            # Multi-row INSERTs (no ORM unit of work: this is the hot path).
            ids: list[int] = []
            if rows:
                ids = await _insert_history_rows(
                    db, [dict(zip(HISTORY_COLUMNS, row, strict=True)) for row in rows]
                )
            if updates:
                await db.execute(
                    insert(cast(Table, DocumentUpdate.__table__)),
                    [
                        {"session_id": session_id, "data": data, "created_at": created_at}
                        for session_id, data, created_at in updates
                    ],
                )
        return ids

    async def _compact_due(self) -> None:
        for session_id in self._due_compactions():
            try:
                await self.compact(session_id)
            except Exception:
                # The rows stay; the next attempt folds them. Nothing is lost meanwhile.
                self.failures += 1
                logger.exception("compacting the update log of %s failed", session_id)
                await asyncio.sleep(self._backoff)
                self._backoff = min(self._backoff * 2, self._max_backoff)
                return
            self._compact_requested.discard(session_id)
            self._log_rows.pop(session_id, None)
            self._log_since.pop(session_id, None)
            if self._batch.pending:
                # Edits waiting for their ack go before the next document's compaction.
                await self._write_pending()

    async def compact(self, session_id: str) -> int:
        """Fold the document's logged updates into ``crdt_state``/``content``; returns rows folded.

        The stored state is locked (``FOR UPDATE`` on PostgreSQL) and only the rows read are
        deleted, so nodes compacting the same document concurrently never lose an update.
        """
        async with self._sessions() as db, db.begin():
            stored = await db.scalar(
                select(CollaborationSession.crdt_state)
                .where(CollaborationSession.id == session_id)
                .with_for_update()
            )
            rows = (
                await db.execute(
                    select(DocumentUpdate.id, DocumentUpdate.data)
                    .where(DocumentUpdate.session_id == session_id)
                    .order_by(DocumentUpdate.id)
                )
            ).all()
            if not rows:
                return 0
            state, content = self._fold(stored, [data for _, data in rows])
            await save_document(db, session_id, crdt_state=state, content=content)
            await db.execute(
                delete(DocumentUpdate).where(DocumentUpdate.id.in_([row_id for row_id, _ in rows]))
            )
        self.compactions += 1
        return len(rows)


async def _insert_history_rows(db: AsyncSession, params: list[dict[str, Any]]) -> list[int]:
    """Insert edit_history rows in one round trip; their ids in the order of ``params``.

    On PostgreSQL, SQLAlchemy's "insertmanyvalues" returns the ids in parameter order. On SQLite
    asking for that order makes it insert row by row (~6x the CPU per row), so the ids are
    returned in any order and sorted instead: SQLite has a single writer and gives each new row
    the largest rowid so far plus one, so ids grow in the order the rows were inserted.
    """
    table = cast(Table, EditHistory.__table__)
    if db.get_bind().dialect.name == "sqlite":
        result = await db.execute(insert(table).returning(table.c.id), params)
        return sorted(result.scalars())
    result = await db.execute(
        insert(table).returning(table.c.id, sort_by_parameter_order=True), params
    )
    return list(result.scalars())
