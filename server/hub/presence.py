"""Debounced persistence of ``session_members.last_seen_at``.

Connections mark their member as seen on join and on leave, and every member with an open
connection counts as seen at each interval (``source``); a background task writes the marks at
most once per interval, so presence costs one small UPDATE per session per interval however
busy the session is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.base import utcnow
from storage.repositories.collaboration import touch_members

logger = logging.getLogger(__name__)


class PresenceTracker:
    """Collects "user was here" marks and flushes them periodically."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, interval: float) -> None:
        self._sessions = sessions
        self._interval = interval
        self._marks: dict[str, dict[str, datetime]] = defaultdict(dict)
        self._task: asyncio.Task[None] | None = None
        # Who is connected right now, as (session_id, user_id) pairs (set by the hub).
        self.source: Callable[[], Iterable[tuple[str, str]]] | None = None

    async def __aenter__(self) -> PresenceTracker:
        self._task = asyncio.create_task(self._run(), name="presence-flusher")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    def mark(self, session_id: str, user_id: str) -> None:
        """Remember that the user was present in the session now."""
        self._marks[session_id][user_id] = utcnow()

    async def flush(self) -> None:
        """Write every pending mark."""
        marks, self._marks = self._marks, defaultdict(dict)
        if not marks:
            return
        try:
            async with self._sessions() as db, db.begin():
                for session_id, users in marks.items():
                    latest = max(users.values())
                    await touch_members(db, session_id, list(users), at=latest)
        except Exception:
            logger.exception("writing presence failed; will retry")
            for session_id, users in marks.items():
                for user_id, at in users.items():
                    self._marks[session_id].setdefault(user_id, at)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if self.source is not None:
                for session_id, user_id in self.source():
                    self.mark(session_id, user_id)
            await self.flush()
