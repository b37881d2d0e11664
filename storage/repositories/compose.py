"""Compose jobs: creating, listing and cancelling them, and the lease protocol that runs them.

Claiming is one ``UPDATE … WHERE id = (SELECT … LIMIT 1) RETURNING``. On PostgreSQL the inner
select takes ``FOR UPDATE SKIP LOCKED``, so concurrent claimers on any number of nodes each get
a different job without waiting on each other; on SQLite the statement is a plain conditional
UPDATE, atomic because SQLite runs one writer at a time. Every later write by the claimant is
fenced on ``(lease_owner, attempts)``: a node whose lease was taken over changes nothing, and
learns it from the ``False`` it gets back.

Timestamps are naive UTC passed in by the caller (so tests control the clock).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from storage.models import AgentComposeResult, AgentComposeRun

#: Statuses of a job that is not finished.
ACTIVE_STATUSES = ("pending", "running")
#: The ``error`` of a cancelled job.
CANCELLED = "cancelled by the user"


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose jobs a caller sees (their tenant's), and who they are (for new jobs)."""

    tenant_id: str
    user_id: str

    def condition(self) -> ColumnElement[bool]:
        """The WHERE clause selecting this scope's jobs."""
        return AgentComposeRun.tenant_id == self.tenant_id


@dataclass(frozen=True, slots=True)
class Claim:
    """A job this node holds the lease of, fenced by ``(owner, attempt)``."""

    run_id: int
    owner: str
    attempt: int
    stage: str
    stage_outputs: dict[str, Any]
    input_raw: str
    input_goal: str | None
    input_constraints: str | None
    input_output_format: str | None
    model_config: dict[str, Any]
    tenant_id: str | None
    session_id: str | None


async def create_run(
    db: AsyncSession,
    scope: Scope,
    *,
    raw: str,
    goal: str | None,
    constraints: str | None,
    output_format: str | None,
    model_config: dict[str, Any],
    session_id: str | None,
) -> AgentComposeRun:
    """Add a pending job (flushed, not committed)."""
    run = AgentComposeRun(
        tenant_id=scope.tenant_id,
        user_id=scope.user_id,
        session_id=session_id,
        input_raw=raw,
        input_goal=goal,
        input_constraints=constraints,
        input_output_format=output_format,
        model_config=model_config,
    )
    db.add(run)
    await db.flush()
    return run


async def count_active(db: AsyncSession, scope: Scope) -> int:
    """How many of the scope's jobs are pending or running (the quota counts these)."""
    count = await db.scalar(
        select(func.count())
        .select_from(AgentComposeRun)
        .where(scope.condition(), AgentComposeRun.status.in_(ACTIVE_STATUSES))
    )
    return int(count or 0)


async def count_since(db: AsyncSession, scope: Scope, since: datetime) -> int:
    """How many jobs the scope started at or after ``since`` (the daily quota counts these)."""
    count = await db.scalar(
        select(func.count())
        .select_from(AgentComposeRun)
        .where(scope.condition(), AgentComposeRun.created_at >= since)
    )
    return int(count or 0)


async def get_run(db: AsyncSession, scope: Scope, run_id: int) -> AgentComposeRun | None:
    """One of the scope's jobs with its result, or None (also for another scope's id)."""
    return await db.scalar(
        select(AgentComposeRun)
        .where(AgentComposeRun.id == run_id, scope.condition())
        .options(selectinload(AgentComposeRun.result))
        .execution_options(populate_existing=True)
    )


async def list_runs(
    db: AsyncSession, scope: Scope, *, status: str | None, limit: int, offset: int
) -> tuple[list[AgentComposeRun], int]:
    """A page of the scope's jobs, newest first, and how many there are in all."""
    conditions = [scope.condition()]
    if status is not None:
        conditions.append(AgentComposeRun.status == status)
    total = await db.scalar(select(func.count()).select_from(AgentComposeRun).where(*conditions))
    rows = await db.scalars(
        select(AgentComposeRun)
        .where(*conditions)
        .options(selectinload(AgentComposeRun.result))
        .order_by(AgentComposeRun.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total or 0)


async def request_cancel(db: AsyncSession, run_id: int, now: datetime) -> str | None:
    """Cancel a job: a pending one fails at once, a running one is asked to stop.

    Returns the job's status after the call (``failed`` or ``running``), or None when it had
    already finished (nothing to cancel).
    """
    failed = await db.execute(
        update(AgentComposeRun)
        .where(AgentComposeRun.id == run_id, AgentComposeRun.status == "pending")
        .values(
            status="failed",
            error=CANCELLED,
            cancel_requested_at=now,
            finished_at=now,
            updated_at=now,
        )
    )
    if failed.rowcount:  # type: ignore[attr-defined]
        return "failed"
    asked = await db.execute(
        update(AgentComposeRun)
        .where(AgentComposeRun.id == run_id, AgentComposeRun.status == "running")
        .values(cancel_requested_at=func.coalesce(AgentComposeRun.cancel_requested_at, now))
    )
    return "running" if asked.rowcount else None  # type: ignore[attr-defined]


def _claimable(now: datetime, max_attempts: int) -> ColumnElement[bool]:
    return and_(
        AgentComposeRun.cancel_requested_at.is_(None),
        AgentComposeRun.attempts < max_attempts,
        or_(
            AgentComposeRun.status == "pending",
            and_(AgentComposeRun.status == "running", AgentComposeRun.lease_expires_at < now),
        ),
    )


async def claim_next(
    db: AsyncSession,
    owner: str,
    now: datetime,
    *,
    lease_seconds: float,
    max_attempts: int,
    exclude: Sequence[int] = (),
) -> Claim | None:
    """Take the oldest pending job, or a running one whose lease expired; None if there is none.

    ``exclude``: jobs the caller is running itself (a late renewal must not make it take its
    own job over). Commits: the claim must be visible to other nodes before any work starts.
    """
    conditions = [_claimable(now, max_attempts)]
    if exclude:
        conditions.append(AgentComposeRun.id.not_in(list(exclude)))
    # An idle node polls: look first with a plain read, so that finding nothing takes no write
    # lock (SQLite's is the whole database). The read transaction ends before the UPDATE: a
    # SQLite read transaction cannot safely become a write one once another writer committed.
    waiting = await db.scalar(select(AgentComposeRun.id).where(*conditions).limit(1))
    await db.rollback()
    if waiting is None:
        return None
    candidate = (
        select(AgentComposeRun.id)
        .where(*conditions)
        .order_by(AgentComposeRun.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    table = AgentComposeRun
    result = await db.execute(
        update(table)
        .where(table.id == candidate, _claimable(now, max_attempts))
        .values(
            status="running",
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=table.attempts + 1,
            updated_at=now,
        )
        .returning(
            table.id,
            table.attempts,
            table.stage,
            table.stage_outputs,
            table.input_raw,
            table.input_goal,
            table.input_constraints,
            table.input_output_format,
            table.model_config,
            table.tenant_id,
            table.session_id,
        )
    )
    row = result.one_or_none()
    await db.commit()
    if row is None:
        return None
    return Claim(
        run_id=row.id,
        owner=owner,
        attempt=row.attempts,
        stage=row.stage,
        stage_outputs=dict(row.stage_outputs or {}),
        input_raw=row.input_raw,
        input_goal=row.input_goal,
        input_constraints=row.input_constraints,
        input_output_format=row.input_output_format,
        model_config=dict(row.model_config),
        tenant_id=row.tenant_id,
        session_id=row.session_id,
    )


async def sweep(db: AsyncSession, now: datetime, *, max_attempts: int) -> list[int]:
    """Fail running jobs whose lease expired and that may not be retried. Commits.

    Those are jobs cancelled while their node was gone, and jobs whose nodes died
    ``max_attempts`` times. Returns their ids.
    """
    table = AgentComposeRun
    expired = and_(table.status == "running", table.lease_expires_at < now)
    stale = await db.scalar(
        select(table.id)
        .where(expired, or_(table.cancel_requested_at.is_not(None), table.attempts >= max_attempts))
        .limit(1)
    )
    await db.rollback()  # as in claim_next: no write lock when there is nothing to do
    if stale is None:
        return []
    cancelled = await db.execute(
        update(table)
        .where(expired, table.cancel_requested_at.is_not(None))
        .values(status="failed", error=CANCELLED, finished_at=now, updated_at=now)
        .returning(table.id)
    )
    ids = list(cancelled.scalars())
    exhausted = await db.execute(
        update(table)
        .where(expired, table.attempts >= max_attempts)
        .values(
            status="failed",
            error=f"the job was interrupted {max_attempts} time(s) (its server stopped or failed "
            "while running it); giving up",
            finished_at=now,
            updated_at=now,
        )
        .returning(table.id)
    )
    ids.extend(exhausted.scalars())
    await db.commit()
    return ids


def _fenced(claim: Claim) -> ColumnElement[bool]:
    return and_(
        AgentComposeRun.id == claim.run_id,
        AgentComposeRun.status == "running",
        AgentComposeRun.lease_owner == claim.owner,
        AgentComposeRun.attempts == claim.attempt,
    )


async def renew(
    db: AsyncSession, claim: Claim, now: datetime, *, lease_seconds: float
) -> tuple[bool, bool]:
    """Extend the lease. Returns (still ours, cancel requested). Commits."""
    result = await db.execute(
        update(AgentComposeRun)
        .where(_fenced(claim))
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
        .returning(AgentComposeRun.cancel_requested_at)
    )
    row = result.one_or_none()
    await db.commit()
    if row is None:
        return False, False
    return True, row.cancel_requested_at is not None


async def enter_stage(
    db: AsyncSession,
    claim: Claim,
    now: datetime,
    *,
    stage: str,
    progress: int,
    stage_outputs: dict[str, Any] | None = None,
) -> bool:
    """Move the job to ``stage`` (storing outputs so far, when given). False if not ours."""
    values: dict[str, Any] = {"stage": stage, "progress": progress, "updated_at": now}
    if stage_outputs is not None:
        values["stage_outputs"] = stage_outputs
    result = await db.execute(update(AgentComposeRun).where(_fenced(claim)).values(**values))
    await db.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def complete(
    db: AsyncSession, claim: Claim, now: datetime, *, outputs: dict[str, dict[str, Any]]
) -> bool:
    """Store the result row and finish the job, in one transaction. False if not ours."""
    result = await db.execute(
        update(AgentComposeRun)
        .where(_fenced(claim))
        .values(
            status="completed",
            stage="done",
            progress=100,
            stage_outputs={},
            lease_owner=None,
            lease_expires_at=None,
            finished_at=now,
            updated_at=now,
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        await db.rollback()
        return False
    db.add(
        AgentComposeResult(
            run_id=claim.run_id,
            agent1_json=outputs.get("agent1"),
            agent2_json=outputs.get("agent2"),
            agent3_json=outputs["agent3"],
        )
    )
    await db.commit()
    return True


async def fail(db: AsyncSession, claim: Claim, now: datetime, *, error: str) -> bool:
    """Finish the job as failed with ``error``. False if not ours."""
    result = await db.execute(
        update(AgentComposeRun)
        .where(_fenced(claim))
        .values(
            status="failed",
            error=error,
            lease_owner=None,
            lease_expires_at=None,
            finished_at=now,
            updated_at=now,
        )
    )
    await db.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def release(db: AsyncSession, claim: Claim, now: datetime, *, counted: bool = False) -> bool:
    """Give the job back: any node (this one too) may claim it at once.

    A node shutting down gives its jobs back uncounted (the job did not fail, its node left);
    a job that crashed is given back ``counted``, so repeated crashes end in :func:`sweep`.
    """
    attempts = claim.attempt if counted else claim.attempt - 1
    result = await db.execute(
        update(AgentComposeRun)
        .where(_fenced(claim))
        .values(lease_expires_at=now, attempts=attempts, updated_at=now)
    )
    await db.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def snapshot(db: AsyncSession, run_id: int) -> AgentComposeRun | None:
    """A job as it is now, with its result (no scope: for the runner and event streams)."""
    return await db.scalar(
        select(AgentComposeRun)
        .where(AgentComposeRun.id == run_id)
        .options(selectinload(AgentComposeRun.result))
        .execution_options(populate_existing=True)
    )
