"""Run leases: a run left ``running`` by a node that died ends ``failed`` within a bound.

Each run is inserted with this node's id and a lease (``runs.lease_expires_at``). While its
answer is produced, :meth:`RunLeases.keeping` renews the lease every third of
``lease_seconds``, storing the partial output so far, so a crash loses at most one interval of
output. Every node sweeps every ``sweep_seconds``: ``running`` runs whose lease has expired are
marked ``failed`` with ``finish_reason`` ``interrupted`` and their stored output kept. A run of
a dead node is therefore swept at most ``lease_seconds + sweep_seconds`` after its last renewal.

On PostgreSQL one node sweeps at a time (a transaction-level advisory lock; the rows are also
read ``FOR UPDATE SKIP LOCKED``); SQLite is one node's file, where the sweep just runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.base import utcnow
from storage.repositories import runs as repo

logger = logging.getLogger(__name__)

#: Key of the PostgreSQL advisory lock that keeps the sweep on one node at a time.
SWEEP_LOCK_KEY = 0x5EC_0A11
#: Runs one sweep pass fails at most (the next pass takes the rest).
SWEEP_BATCH = 500
#: What a swept run's ``error`` says.
INTERRUPTED = (
    "interrupted: the node answering this run stopped renewing it (the process died or lost "
    "the database); the output is what it had stored"
)

Clock = Callable[[], datetime]


class RunLeases:
    """This node's run leases and the periodic sweep of every node's expired ones."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        node_id: str,
        *,
        lease_seconds: float,
        sweep_seconds: float,
        clock: Clock = utcnow,
    ) -> None:
        if lease_seconds <= 0 or sweep_seconds <= 0:
            raise ValueError("lease_seconds and sweep_seconds must be > 0")
        self.node_id = node_id
        self.lease_seconds = lease_seconds
        self.sweep_seconds = sweep_seconds
        self._sessions = sessions
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._sweep_loop(), name="run-lease-sweep")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def lease_until(self) -> datetime:
        """The expiry of a lease taken or renewed now."""
        return self._clock() + timedelta(seconds=self.lease_seconds)

    @contextlib.asynccontextmanager
    async def keeping(
        self, run_id: int, partial: Callable[[], str] | None = None
    ) -> AsyncIterator[None]:
        """Renew run ``run_id``'s lease while the block runs, storing ``partial()`` each time."""
        task = asyncio.create_task(self._renew_loop(run_id, partial), name=f"run-lease-{run_id}")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _renew_loop(self, run_id: int, partial: Callable[[], str] | None) -> None:
        interval = self.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                async with self._sessions() as db:
                    kept = await repo.renew_lease(
                        db,
                        run_id,
                        self.node_id,
                        self.lease_until(),
                        None if partial is None else partial(),
                    )
                    await db.commit()
            except SQLAlchemyError:
                # Two more intervals before the lease runs out: try again next time.
                logger.warning("run %d: renewing its lease failed", run_id, exc_info=True)
                continue
            if not kept:
                # Finished, or swept after a stall longer than the lease: nothing to renew.
                return

    async def sweep(self) -> list[repo.SweptRun]:
        """One pass: fail the running runs whose lease has expired; which ones it failed."""
        now = self._clock()
        async with self._sessions() as db:
            if not await _try_sweep_lock(db):
                await db.rollback()
                return []
            swept = await repo.sweep_stale_runs(
                db,
                now,
                unleased_before=now - timedelta(seconds=self.lease_seconds),
                limit=SWEEP_BATCH,
                error=INTERRUPTED,
            )
            for version_id in sorted({r.prompt_version_id for r in swept if r.prompt_version_id}):
                await repo.refresh_version_metrics(db, version_id)
            await db.commit()
        for run in swept:
            logger.warning("run %d of node %s swept: its lease expired", run.id, run.node_id)
        return swept

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_seconds)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("run lease sweep failed; retrying next interval")


async def _try_sweep_lock(db: AsyncSession) -> bool:
    """Take the sweep's lock for this transaction (always granted on SQLite)."""
    if (await db.connection()).dialect.name != "postgresql":
        return True
    return bool(await db.scalar(select(func.pg_try_advisory_xact_lock(SWEEP_LOCK_KEY))))
