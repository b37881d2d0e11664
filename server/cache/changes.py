"""Index changes that wait for their transaction: applied and published only after commit.

The cache writes through the caller's database session, and the caller decides when to commit.
An index that learnt of an entry before its commit could serve an id that a rollback undid, and
a peer told early could look it up before it is visible; so changes are collected on the session
and applied (here, and through :class:`~server.cache.sync.IndexSync` on every other node) by
SQLAlchemy's ``after_commit`` event, and discarded by ``after_rollback``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from server.cache.index import IndexRegistry
from server.cache.sync import Added, Change, IndexSync, Removed, Reset, apply_change
from storage.repositories.cache import RemovedEntry

_PENDING_KEY = "semantic_cache.pending"


class CommittedChanges:
    """Queues index changes on a session until it commits."""

    def __init__(self, registry: IndexRegistry, sync: IndexSync) -> None:
        self._registry = registry
        self._sync = sync

    def added(self, db: AsyncSession, change: Added) -> None:
        """An entry's vector was inserted or replaced."""
        self._pending(db).append(change)

    def removed(self, db: AsyncSession, entries: Iterable[RemovedEntry]) -> None:
        """Entries were deleted."""
        ids = tuple(entry.id for entry in entries)
        if ids:
            self._pending(db).append(Removed(ids))

    def reset(self, db: AsyncSession, tenant_id: str | None) -> None:
        """Many entries of a tenant changed: loaded scopes reload from the table."""
        self._pending(db).append(Reset(tenant_id))

    def _pending(self, db: AsyncSession) -> list[Change]:
        session = db.sync_session
        pending: list[Change] | None = session.info.get(_PENDING_KEY)
        if pending is None:
            pending = []
            session.info[_PENDING_KEY] = pending
            event.listen(session, "after_commit", self._after_commit)
            event.listen(session, "after_rollback", self._after_rollback)
        return pending

    def _after_commit(self, session: Session, *_: Any) -> None:
        pending: list[Change] = session.info.get(_PENDING_KEY, [])
        changes = list(pending)
        pending.clear()
        for change in changes:
            apply_change(self._registry, change)
        self._sync.publish(changes)

    def _after_rollback(self, session: Session, *_: Any) -> None:
        pending: list[Change] = session.info.get(_PENDING_KEY, [])
        pending.clear()
