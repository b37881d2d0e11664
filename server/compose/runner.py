"""The compose job runner: a service of every node that claims jobs and runs them to the end.

``async with ComposeRunner(...)`` starts one task that owns a task group: it sweeps jobs that
may not be retried, claims jobs while it has free slots (``concurrency``), and runs each claimed
job in the group. A job's run keeps its lease alive (every third of the lease), notices a cancel
request or a lost lease there, and runs the stages after the last one stored — so a job whose
node died resumes from its last finished stage on whichever node claims it next. On shutdown
the runner cancels its jobs and gives their leases back, so another node resumes them at once.

A submit on this node calls :meth:`ComposeRunner.wake`; jobs submitted elsewhere are found on
the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.compose.agents import JobSpec
from server.compose.events import (
    STAGE_PROGRESS,
    ChangeFeed,
    ComposeEvent,
    ComposeObserver,
    event_of,
)
from server.compose.models import AGENT_STAGES, ComposeInput, TechniqueRow
from server.compose.pipeline import Agents, ComposeStageError, stored
from server.settings import Settings
from storage import base
from storage.models import Technique
from storage.repositories import compose as jobs

logger = logging.getLogger(__name__)

#: Opens the agents for a job (see :mod:`server.compose.agents`); raises ComposeStageError when
#: its model is not available.
AgentsFactory = Callable[[JobSpec], contextlib.AbstractAsyncContextManager[Agents]]


@dataclass(frozen=True, slots=True)
class RunnerLimits:
    """The runner's knobs (from :class:`server.settings.Settings`)."""

    concurrency: int = 2
    lease_seconds: float = 30.0
    poll_seconds: float = 1.0
    max_attempts: int = 3
    stage_timeout_seconds: float = 120.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RunnerLimits:
        """The limits configured for this server (``PROMPT_STUDIO_COMPOSE_…``)."""
        return cls(
            concurrency=settings.compose_concurrency,
            lease_seconds=settings.compose_lease_seconds,
            poll_seconds=settings.compose_poll_seconds,
            max_attempts=settings.compose_max_attempts,
            stage_timeout_seconds=settings.compose_stage_timeout_seconds,
        )


@dataclass(slots=True)
class _Job:
    claim: jobs.Claim
    #: Why the job's work was stopped from outside: "cancelled" or "lost".
    stop: str | None = None
    work: asyncio.Task[None] | None = None
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)


class ComposeRunner:
    """Claims and runs compose jobs on this node."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        node_id: str,
        agents_for: AgentsFactory,
        limits: RunnerLimits,
        observers: Sequence[ComposeObserver] = (),
        clock: Callable[[], datetime] = base.utcnow,
    ) -> None:
        self._sessions = sessions
        self.node_id = node_id
        self._agents_for = agents_for
        self.limits = limits
        self._observers = list(observers)
        self._clock = clock
        self.feed = ChangeFeed()
        self._wakeup = asyncio.Event()
        self._jobs: dict[int, _Job] = {}
        self._main: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ComposeRunner:
        if self.limits.concurrency > 0:
            self._main = asyncio.create_task(self._serve(), name="compose-runner")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._main is not None:
            self._main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._main
            self._main = None

    def add_observer(self, observer: ComposeObserver) -> None:
        """Also tell ``observer`` about every change this runner makes."""
        self._observers.append(observer)

    def wake(self) -> None:
        """A job was submitted here: look for work now instead of at the next poll."""
        self._wakeup.set()

    def cancel_local(self, run_id: int) -> bool:
        """Stop the job at once if this node runs it (the database already says cancelled)."""
        job = self._jobs.get(run_id)
        if job is None or job.work is None:
            return False
        job.stop = "cancelled"
        job.work.cancel()
        return True

    @property
    def running(self) -> list[int]:
        """Ids of the jobs this node runs now."""
        return list(self._jobs)

    # -- the claim loop ------------------------------------------------------------------------

    async def _serve(self) -> None:
        async with asyncio.TaskGroup() as group:
            while True:
                try:
                    await self._sweep()
                    while len(self._jobs) < self.limits.concurrency:
                        claim = await self._claim()
                        if claim is None:
                            break
                        self._jobs[claim.run_id] = _Job(claim)
                        group.create_task(self._run(self._jobs[claim.run_id]))
                except Exception:
                    logger.exception("compose runner: claiming jobs failed; retrying")
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self.limits.poll_seconds)

    async def _sweep(self) -> None:
        async with self._sessions() as db:
            failed = await jobs.sweep(db, self._clock(), max_attempts=self.limits.max_attempts)
        for run_id in failed:
            logger.warning("compose job %d failed: interrupted too often or cancelled", run_id)
            await self._announce(run_id)

    async def _claim(self) -> jobs.Claim | None:
        async with self._sessions() as db:
            return await jobs.claim_next(
                db,
                self.node_id,
                self._clock(),
                lease_seconds=self.limits.lease_seconds,
                max_attempts=self.limits.max_attempts,
                exclude=list(self._jobs),
            )

    # -- one job -------------------------------------------------------------------------------

    async def _run(self, job: _Job) -> None:
        claim = job.claim
        logger.info(
            "compose job %d: attempt %d on %s from %s",
            claim.run_id,
            claim.attempt,
            self.node_id,
            claim.stage,
        )
        try:
            async with asyncio.TaskGroup() as group:
                job.work = group.create_task(self._work(job))
                keeper = group.create_task(self._keep_lease(job))
                job.work.add_done_callback(lambda _: keeper.cancel())
            if job.stop == "cancelled":
                await self._finish_failed(job, jobs.CANCELLED)
            elif job.stop == "lost":
                logger.warning("compose job %d: lease lost; another node has it", claim.run_id)
        except asyncio.CancelledError:
            # This node is shutting down: hand the job back to be resumed elsewhere.
            with contextlib.suppress(Exception):
                async with self._sessions() as db:
                    await asyncio.shield(jobs.release(db, claim, self._clock()))
            raise
        except Exception:
            # E.g. the database went away mid-stage: give the job back to be retried (counted,
            # so a job that keeps crashing is failed by the sweep after max_attempts).
            logger.exception("compose job %d crashed; giving it back", claim.run_id)
            with contextlib.suppress(Exception):
                async with self._sessions() as db:
                    await jobs.release(db, claim, self._clock(), counted=True)
        finally:
            self._jobs.pop(claim.run_id, None)
            self._wakeup.set()  # a slot is free

    async def _keep_lease(self, job: _Job) -> None:
        interval = self.limits.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                async with self._sessions() as db:
                    ours, cancel = await jobs.renew(
                        db, job.claim, self._clock(), lease_seconds=self.limits.lease_seconds
                    )
            except Exception:
                # The lease is still good for two more intervals; try again next time.
                logger.exception("compose job %d: renewing the lease failed", job.claim.run_id)
                continue
            if not ours or cancel:
                job.stop = "cancelled" if ours else "lost"
                assert job.work is not None
                job.work.cancel()
                return

    async def _work(self, job: _Job) -> None:
        claim = job.claim
        request = ComposeInput(
            raw=claim.input_raw,
            goal=claim.input_goal,
            constraints=claim.input_constraints,
            output_format=claim.input_output_format,
        )
        job.outputs = {k: v for k, v in claim.stage_outputs.items() if k in AGENT_STAGES}
        try:
            await self._stages(job, request)
        except ComposeStageError as exc:
            await self._finish_failed(job, exc.message)
        except _LeaseLost:
            job.stop = "lost"

    async def _stages(self, job: _Job, request: ComposeInput) -> None:
        claim = job.claim
        first = next((s for s in AGENT_STAGES if s not in job.outputs), "agent3")
        spec = JobSpec(claim.model_config, await self._techniques(), claim.tenant_id, first)
        async with self._agents_for(spec) as agents:
            await self._stages_with(job, request, agents)
        async with self._sessions() as db:
            if not await jobs.complete(db, claim, self._clock(), outputs=job.outputs):
                raise _LeaseLost
        await self._announce(claim.run_id)

    async def _stages_with(self, job: _Job, request: ComposeInput, agents: Agents) -> None:
        entered = False
        for index, stage in enumerate(AGENT_STAGES):
            if stage in job.outputs:
                continue  # finished before this node resumed the job
            if not entered:
                await self._enter(job, stage, outputs=False)
                entered = True
            output = await self._stage(agents, stage, request, job.outputs)
            job.outputs[stage] = stored(output)
            if index + 1 < len(AGENT_STAGES):
                # Store the output and move on in one write: a crash now resumes after it.
                await self._enter(job, AGENT_STAGES[index + 1], outputs=True)

    async def _stage(
        self, agents: Agents, stage: str, request: ComposeInput, outputs: dict[str, Any]
    ) -> Any:
        timeout = self.limits.stage_timeout_seconds
        try:
            return await asyncio.wait_for(agents.run(stage, request, outputs), timeout)
        except TimeoutError:
            raise ComposeStageError(stage, f"no answer within {timeout:g} s") from None

    async def _enter(self, job: _Job, stage: str, *, outputs: bool) -> None:
        async with self._sessions() as db:
            ours = await jobs.enter_stage(
                db,
                job.claim,
                self._clock(),
                stage=stage,
                progress=STAGE_PROGRESS[stage],
                stage_outputs=dict(job.outputs) if outputs else None,
            )
        if not ours:
            raise _LeaseLost
        await self._announce(job.claim.run_id)

    async def _finish_failed(self, job: _Job, error: str) -> None:
        async with self._sessions() as db:
            ours = await jobs.fail(db, job.claim, self._clock(), error=error)
        if ours:
            logger.info("compose job %d failed: %s", job.claim.run_id, error)
            await self._announce(job.claim.run_id)

    async def _techniques(self) -> list[TechniqueRow]:
        async with self._sessions() as db:
            rows = await db.execute(
                select(Technique.title, Technique.description, Technique.snippet).order_by(
                    Technique.id
                )
            )
            return [TechniqueRow(r.title, r.description, r.snippet) for r in rows]

    async def _announce(self, run_id: int) -> None:
        self.feed.notify(run_id)
        if not self._observers:
            return
        async with self._sessions() as db:
            run = await jobs.snapshot(db, run_id)
        if run is None:
            return
        event: ComposeEvent = event_of(run)
        for observer in self._observers:
            try:
                observer.changed(event)
            except Exception:
                logger.exception("compose observer %r failed on job %d", observer, run_id)


class _LeaseLost(Exception):
    """Another node took the job over; stop without writing anything."""
