"""Write-behind persistence of edit history and document updates, in group commits.

Edits are submitted as they happen; a single background task writes everything submitted while
the previous commit was in flight in ONE transaction — the ``edit_history`` rows, per document
one ``document_updates`` row holding the batch's Yjs updates merged, and (debounced) the
sessions' ``updated_at`` — then resolves each submitter's future. A failed commit keeps its
entries and is retried with backoff, so nothing acknowledged is ever lost and nothing is
acknowledged before it is durable.

What is submitted but not yet durable is the *backlog*. It is bounded: once it holds
``max_pending_edits`` edits or ``max_pending_bytes`` bytes, :meth:`HistoryWriter.admit` says no
and the intake refuses new edits (before applying them) until commits catch up, so a writer
that cannot keep up pushes back instead of growing memory.

A document's persisted state is ``collaboration_sessions.crdt_state`` plus its
``document_updates`` rows. The same task folds a document's rows into ``crdt_state`` (and its
plain ``content``) — one document at a time, between commits — when its log has grown as large
as its snapshot (so folding costs O(change) amortized however large the document gets), has
many rows, or got old, and on request (a document being unloaded).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.base import utcnow
from storage.engine import DEFAULT_SQLITE_BUSY_TIMEOUT_MS
from storage.history_backlog import DEFAULT_MAX_BYTES, DEFAULT_MAX_EDITS, Backlog
from storage.history_sql import FoldFn, compact_document, write_batch
from storage.models import CollaborationSession
from storage.sqlite_batch import SqliteBatchInserter
from storage.update_log import UpdateLogs

logger = logging.getLogger(__name__)

INITIAL_BACKOFF_SECONDS = 0.05
# Fold a document's update log into its snapshot once the log is as large as the snapshot (at
# least COMPACT_MIN_BYTES), has this many rows, or its oldest row is this old. Loading merges
# snapshot and log in one pass, so a log as large as its snapshot costs a load little.
COMPACT_AFTER_ROWS = 1000
COMPACT_AFTER_SECONDS = 30.0
COMPACT_MIN_BYTES = 64 * 1024
# A batch this large is committed at once: lingering would only add to the wait of its edits
# (and on a busy event loop each turn spent waiting lets the intake add more).
LINGER_UNTIL_EDITS = 256
# What one pending edit is counted as beyond its texts: its entry, operation dict, future and
# share of the batch (measured with tracemalloc: ~700 bytes per one-op edit, update included).
ENTRY_OVERHEAD_BYTES = 640

# Merges several Yjs updates into one.
MergeFn = Callable[[Sequence[bytes]], bytes]

__all__ = ["FoldFn", "HistoryEntry", "HistoryWriter", "MergeFn", "SessionGoneError"]


@dataclass(slots=True)
class HistoryEntry:
    """One edit_history row waiting to be written."""

    session_id: str
    user_id: str
    operation: dict[str, Any]
    content_before: str | None = None
    content_after: str | None = None
    node_id: str | None = None
    # A JSON client's own id for the op this row ends, and a digest of the op as it sent it.
    client_op_id: str | None = None
    client_op_digest: str | None = None

    def size(self) -> int:
        """Bytes this entry is counted as while it waits (see ``max_pending_bytes``)."""
        content = self.operation.get("content")
        return (
            ENTRY_OVERHEAD_BYTES
            + len(self.content_before or "")
            + len(self.content_after or "")
            + (len(content) if isinstance(content, str) else 0)
        )


@dataclass(slots=True)
class _Pending:
    entries: list[HistoryEntry]
    future: asyncio.Future[list[int]]


@dataclass(slots=True)
class _Batch:
    pending: list[_Pending] = field(default_factory=list)
    updates: dict[str, list[bytes]] = field(default_factory=dict)
    # What this batch adds to the backlog (edits, bytes).
    edits: int = 0
    size: int = 0


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
        compact_min_bytes: int = COMPACT_MIN_BYTES,
        max_pending_edits: int = DEFAULT_MAX_EDITS,
        max_pending_bytes: int = DEFAULT_MAX_BYTES,
        touch_seconds: float = 5.0,
        sqlite_file: str | None = None,
        sqlite_busy_timeout_ms: int = DEFAULT_SQLITE_BUSY_TIMEOUT_MS,
    ) -> None:
        """``sqlite_file``: the database is this SQLite file; write batches and compactions to
        it on one connection of the writer's own (:mod:`storage.sqlite_batch`) instead of
        through ``sessions``. ``touch_seconds``: a session's ``updated_at`` is written with its
        edits at most this often."""
        self._sessions = sessions
        self._inserter = (
            SqliteBatchInserter(sqlite_file, busy_timeout_ms=sqlite_busy_timeout_ms)
            if sqlite_file
            else None
        )
        self._merge = merge
        self._fold = fold
        self._linger = linger_seconds
        self._max_backoff = max_backoff_seconds
        self._backoff = INITIAL_BACKOFF_SECONDS
        self.backlog = Backlog(max_edits=max_pending_edits, max_bytes=max_pending_bytes)
        """What is submitted and not yet durable (see :mod:`storage.history_backlog`)."""
        self._touch_seconds = touch_seconds
        self._batch = _Batch()
        self._logs = UpdateLogs(
            after_rows=compact_after_rows,
            after_seconds=compact_after_seconds,
            min_bytes=compact_min_bytes,
            max_retry_seconds=max_backoff_seconds,
        )
        # When each session's updated_at was last written by this writer (monotonic).
        self._touched: dict[str, float] = {}
        self._wakeup = asyncio.Event()
        self._urgent = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.commits = 0
        # Called with the seconds each successful group commit took (the app's /metrics).
        self.on_commit: Callable[[float], None] | None = None
        self.compactions = 0
        self.failures = 0

    async def __aenter__(self) -> HistoryWriter:
        if self._inserter is not None:
            await self._inserter.__aenter__()
        self._task = asyncio.create_task(self._run(), name="history-writer")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing = True
        self._logs.closing = True
        self._wakeup.set()
        try:
            if self._task is not None:
                await self._task
        finally:
            if self._inserter is not None:
                await self._inserter.__aexit__(None, None, None)

    def admit(self) -> bool:
        """Whether the intake may apply one more edit now (see :meth:`Backlog.admit`): if not,
        the caller refuses the edit before applying it, so nothing of it is relayed or acked."""
        return self.backlog.admit()

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
        next commit starts at once instead of lingering to gather more edits. Never refuses:
        the change is already applied; the intake asks :meth:`admit` before applying one.
        """
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        if entries:
            self._batch.pending.append(_Pending(entries, future))
            self._count(len(entries), sum(e.size() for e in entries))
        else:
            future.set_result([])
        if update:
            self._batch.updates.setdefault(session_id, []).append(update)
            self._count(0, len(update))
        if awaited:
            self._urgent.set()
        self._wake()
        return future

    def log_update(self, session_id: str, update: bytes) -> None:
        """Persist a Yjs update that has no history rows (a peer's change, an initial state)."""
        if update:
            self._batch.updates.setdefault(session_id, []).append(update)
            self._count(0, len(update))
            self._wake()

    def request_compaction(self, session_id: str) -> None:
        """Fold the document's update log into its snapshot at the next opportunity."""
        self._logs.request(session_id)
        self._wake()

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed and every compaction due is
        done (or failed: its rows then stay in the log, and loading still reads them)."""
        if self._task is None or self._task.done():
            raise RuntimeError("the history writer is not running")
        await self._idle.wait()

    def _count(self, edits: int, size: int) -> None:
        if self._batch.edits < LINGER_UNTIL_EDITS <= self._batch.edits + edits:
            self._urgent.set()
        self._batch.edits += edits
        self._batch.size += size
        self.backlog.add(edits, size)

    def _wake(self) -> None:
        self._idle.clear()
        self._wakeup.set()

    def _has_work(self) -> bool:
        return bool(
            self._batch.pending
            or self._batch.updates
            or self._logs.next_due(time.monotonic()) is not None
        )

    async def _run(self) -> None:
        while True:
            if not self._has_work():
                self._idle.set()
                if self._closing:
                    return
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._wakeup.wait(), self._logs.seconds_to_next(time.monotonic())
                    )
                continue
            if self._linger > 0 and not self._closing and not self._urgent.is_set():
                # Gather more edits, unless (or until) someone waits for this commit.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), self._linger)
            self._urgent.clear()
            if self._batch.pending or self._batch.updates:
                await self._write_pending()
            # One document per turn, so commits (and the acks waiting on them) go in between.
            session_id = self._logs.next_due(time.monotonic())
            if session_id is not None:
                await self._compact_logged(session_id)

    async def _write_pending(self) -> None:
        """Commit everything queued so far; on failure requeue it and back off.

        A separate method so that the batch is released as soon as it is written, not kept
        alive by the loop until the next batch.
        """
        batch, self._batch = self._batch, _Batch()
        started = time.perf_counter()
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
        if self.on_commit is not None:
            self.on_commit(time.perf_counter() - started)
        self.backlog.remove(batch.edits, batch.size)

    def _requeue(self, batch: _Batch) -> None:
        # Older entries go first so the rows keep the order the edits were applied in.
        self._batch.pending[:0] = batch.pending
        for session_id, updates in batch.updates.items():
            self._batch.updates.setdefault(session_id, [])[:0] = updates
        self._batch.edits += batch.edits
        self._batch.size += batch.size

    async def _commit(self, batch: _Batch) -> None:
        try:
            ids = await self._write(batch)
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
            for session_id in gone:
                self._logs.forget(session_id)
                self._touched.pop(session_id, None)
            ids = await self._write(batch)
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

    async def _write(self, batch: _Batch) -> list[list[int]]:
        now = utcnow()
        clock = time.monotonic()
        # One row per entry, in the column order of HISTORY_COLUMNS.
        rows = [
            (
                e.session_id,
                e.user_id,
                e.operation,
                e.content_before,
                e.content_after,
                e.node_id,
                e.client_op_id,
                e.client_op_digest,
                now,
            )
            for item in batch.pending
            for e in item.entries
        ]
        merged = [(sid, self._merge(chunks), now) for sid, chunks in batch.updates.items()]
        # updated_at moves with the edits, written at most every touch_seconds per session.
        edited = {item.entries[0].session_id for item in batch.pending}
        touches = [
            (sid, now)
            for sid in sorted(edited)
            if clock - self._touched.get(sid, -math.inf) >= self._touch_seconds
        ]
        if self._inserter is not None:
            ids = await self._inserter.insert(rows, merged, touches)
        else:
            ids = await write_batch(self._sessions, rows, merged, touches)
        for sid, _ in touches:
            self._touched[sid] = clock
        for sid, data, _ in merged:
            self._logs.logged(sid, len(data), clock)
        per_item: list[list[int]] = []
        start = 0
        for item in batch.pending:
            per_item.append(ids[start : start + len(item.entries)])
            start += len(item.entries)
        return per_item

    async def _compact_logged(self, session_id: str) -> None:
        rows, size = self._logs.counts(session_id)
        try:
            _folded, snapshot = await self._fold_log(session_id)
        except Exception:
            # The rows stay; a later attempt folds them. Nothing is lost meanwhile.
            self.failures += 1
            delay = self._logs.failed(session_id, time.monotonic())
            logger.exception(
                "compacting the update log of %s failed; retrying in %.2fs", session_id, delay
            )
            return
        if self._logs.folded(session_id, rows, size, snapshot, time.monotonic()):
            self._touched.pop(session_id, None)  # unloading: its next edit touches at once

    async def compact(self, session_id: str) -> int:
        """Fold the document's logged updates into ``crdt_state``/``content``; returns rows folded.

        Concurrent compactions of one document (several nodes) never lose an update: each
        folds and deletes only the rows it read under the document's lock.
        """
        folded, _snapshot = await self._fold_log(session_id)
        return folded

    async def _fold_log(self, session_id: str) -> tuple[int, int]:
        if self._inserter is not None:
            folded, snapshot = await self._inserter.compact(session_id, self._fold, utcnow())
        else:
            folded, snapshot = await compact_document(self._sessions, session_id, self._fold)
        if folded:
            self.compactions += 1
        return folded, snapshot
