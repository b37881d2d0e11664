"""Deleting expired login sessions on a schedule, and closing the websockets they opened.

Runs on every node; deleting rows that are already gone is harmless, so no coordination is
needed. Each purge revokes the purged tokens, so a connection opened with a token that expired
is closed (4401) at the next purge rather than whenever it happens to reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.hub.revocation import CredentialWatch, Revocation
from storage.repositories.tenancy import purge_expired_login_sessions

logger = logging.getLogger(__name__)


class LoginPurger:
    """A background service: purge every ``interval`` seconds while the app runs."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        credentials: CredentialWatch,
        *,
        interval: float,
    ) -> None:
        self._sessions = sessions
        self._credentials = credentials
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="login-purge")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def purge_once(self) -> int:
        """Delete the expired login sessions now and close their connections; returns how
        many sessions were deleted."""
        async with self._sessions() as db, db.begin():
            purged = await purge_expired_login_sessions(db)
        if purged:
            logger.info("purged %d expired login session(s)", len(purged))
            await self._credentials.revoke(
                Revocation(token_hashes=frozenset(purged), reason="the login session expired")
            )
        return len(purged)

    async def _run(self) -> None:
        while True:
            try:
                await self.purge_once()
            except Exception:
                # A database outage must not end the schedule: try again next time.
                logger.exception("purging expired login sessions failed")
            await asyncio.sleep(self._interval)
