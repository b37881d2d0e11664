"""The compose operations the API calls: submit, read, list, cancel, watch, save.

Each takes the caller's :class:`~storage.repositories.compose.Scope`; another tenant's job is
:class:`ComposeNotFound`, exactly like an unknown id. The router commits where it writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.compose.events import ChangeFeed, ComposeEvent, event_of
from server.compose.models import JudgeOutput
from server.prompts import service as prompts
from server.prompts.context import Actor, PromptLimits
from server.runs.quota import day_start, runs_per_day, seconds_until_next_day
from storage.base import utcnow
from storage.models import AgentComposeRun
from storage.repositories import compose as jobs
from storage.repositories import runs as runs_repo
from storage.repositories.collaboration import get_member, get_session


class ComposeError(Exception):
    """Base of the compose domain's refusals; the API maps each class to one status."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ComposeNotFound(ComposeError):
    """No such job for this caller (404)."""


class ComposeQuotaExceeded(ComposeError):
    """The tenant may not start another job now (429); ``retry_after`` seconds when known."""

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ComposeConflict(ComposeError):
    """The job is in the wrong state for the request (409)."""


class ComposeInvalid(ComposeError):
    """The request names something that is not there or not allowed (422)."""


@dataclass(frozen=True, slots=True)
class Submission:
    """A new job as the caller asks for it."""

    raw: str
    goal: str | None
    constraints: str | None
    output_format: str | None
    model_config: dict[str, Any]
    session_id: str | None


async def submit(
    db: AsyncSession, scope: jobs.Scope, submission: Submission, *, max_active: int
) -> AgentComposeRun:
    """A new pending job, after the quotas and the session check. Flushed, not committed.

    Two quotas apply: at most ``max_active`` unfinished jobs per tenant, and the tenant's daily
    ``quotas.runsPerDay`` (as for runs), which runs and compose jobs started today share. The
    tenant's row lock taken first makes concurrent submits count one after the other.
    """
    now = utcnow()
    limit = runs_per_day(await runs_repo.lock_tenant(db, scope.tenant_id))
    if limit is not None:
        since = day_start(now)
        used = await runs_repo.count_runs_since(db, scope.tenant_id, since)
        used += await jobs.count_since(db, scope, since)
        if used >= limit:
            raise ComposeQuotaExceeded(
                f"the tenant's quota of {limit} runs per day is used up ({used} today, compose "
                "jobs included)",
                retry_after=seconds_until_next_day(now),
            )
    if await jobs.count_active(db, scope) >= max_active:
        raise ComposeQuotaExceeded(
            f"at most {max_active} compose jobs may be pending or running at once; "
            "wait for one to finish or cancel one"
        )
    if submission.session_id is not None:
        session = await get_session(db, submission.session_id, tenant_id=scope.tenant_id)
        member = None if session is None else await get_member(db, session.id, scope.user_id)
        if session is None or member is None:
            raise ComposeInvalid(
                f"no session {submission.session_id!r} that you are a member of",
                field="session_id",
            )
    return await jobs.create_run(
        db,
        scope,
        raw=submission.raw,
        goal=submission.goal,
        constraints=submission.constraints,
        output_format=submission.output_format,
        model_config=submission.model_config,
        session_id=submission.session_id,
    )


async def get(db: AsyncSession, scope: jobs.Scope, run_id: int) -> AgentComposeRun:
    """One of the caller's jobs with its result."""
    run = await jobs.get_run(db, scope, run_id)
    if run is None:
        raise ComposeNotFound(f"no compose job {run_id}")
    return run


async def list_jobs(
    db: AsyncSession, scope: jobs.Scope, *, status: str | None, limit: int, offset: int
) -> tuple[list[AgentComposeRun], int]:
    """A page of the caller's tenant's jobs, newest first, and the total."""
    return await jobs.list_runs(db, scope, status=status, limit=limit, offset=offset)


async def cancel(
    db: AsyncSession, scope: jobs.Scope, run_id: int, now: datetime
) -> AgentComposeRun:
    """Cancel a job: a pending one fails at once, a running one stops within a lease renewal.

    Commits. A finished job is :class:`ComposeConflict`.
    """
    run = await get(db, scope, run_id)
    outcome = await jobs.request_cancel(db, run.id, now)
    await db.commit()
    if outcome is None:
        raise ComposeConflict(f"compose job {run_id} has already finished ({run.status})")
    return await get(db, scope, run_id)


async def watch(
    sessions: async_sessionmaker[AsyncSession],
    feed: ChangeFeed | None,
    scope: jobs.Scope,
    run_id: int,
    *,
    poll_seconds: float,
    max_seconds: float,
    heartbeat_seconds: float,
) -> AsyncIterator[ComposeEvent | None]:
    """The job's current state, then each change, ending after it finished (or ``max_seconds``).

    Changes made by this node's runner arrive at once (``feed``); those of other nodes at the
    next re-read, every ``poll_seconds``. ``None`` is a heartbeat: nothing changed for
    ``heartbeat_seconds``.
    """
    started = time.monotonic()
    deadline = started + max_seconds
    last: tuple[str, str, int] | None = None
    last_sent = started
    with feed.listen(run_id) if feed is not None else contextlib.nullcontext() as changed:
        while True:
            if changed is not None:
                changed.clear()  # before reading: a change made from now on wakes us again
            async with sessions() as db:
                run = await jobs.get_run(db, scope, run_id)
            if run is None:
                raise ComposeNotFound(f"no compose job {run_id}")
            event = event_of(run)
            now = time.monotonic()
            if event.key() != last:
                last, last_sent = event.key(), now
                yield event
            elif now - last_sent >= heartbeat_seconds:
                last_sent = now
                yield None
            remaining = deadline - time.monotonic()
            if event.finished or remaining <= 0:
                return
            wait = min(poll_seconds, remaining, max(0.0, last_sent + heartbeat_seconds - now))
            if changed is None:
                await asyncio.sleep(wait)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), wait)


@dataclass(frozen=True, slots=True)
class SavedCompose:
    """Where a job's result was saved."""

    prompt_id: str
    version: int
    created_prompt: bool


async def save(
    db: AsyncSession,
    scope: jobs.Scope,
    run_id: int,
    *,
    prompt_id: str | None,
    name: str | None,
    limits: PromptLimits,
) -> SavedCompose:
    """The judge's prompt as a new version (of ``prompt_id``, or of a new prompt ``name``).

    ``decisionNotes`` become the version's message. Flushed, not committed; the prompts
    domain's errors (unknown prompt, too large) pass through.
    """
    run = await get(db, scope, run_id)
    if run.status != "completed" or run.result is None:
        raise ComposeConflict(f"compose job {run_id} has no result yet ({run.status})")
    final = JudgeOutput.model_validate(run.result.agent3_json)
    version = prompts.VersionInput(
        sections=final.final_prompt.model_dump(),
        variables=[v.model_dump() for v in final.final_variables],
        model_config=dict(run.model_config),
        message="\n".join(final.decision_notes) or None,
    )
    actor = Actor(tenant_id=scope.tenant_id, user_id=scope.user_id)
    source = prompts.Source(session_id=run.session_id)
    if prompt_id is None:
        assert name is not None
        prompt, saved = await prompts.create_prompt(
            db, actor, name=name, description=None, first=version, limits=limits, source=source
        )
        assert saved is not None
        return SavedCompose(prompt.id, saved.version.version, created_prompt=True)
    saved = await prompts.save_version(db, actor, prompt_id, version, limits, source=source)
    return SavedCompose(prompt_id, saved.version.version, created_prompt=False)
