"""Run leases on both databases: renewal with the partial output, and the sweep that fails
the running runs of dead nodes (once each, even with several nodes sweeping at once)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.runs.leases import INTERRUPTED, RunLeases
from storage.base import utcnow
from storage.engine import create_engine, create_session_factory
from storage.models import PromptVersion, Run
from storage.repositories import prompts as prompts_repo
from storage.repositories import runs as repo
from tests.support.accounts import Account, create_accounts
from tests.support.waiting import eventually


@pytest.fixture
async def sessions(migrated_database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(migrated_database_url)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def account(migrated_database_url: str) -> Account:
    (ana,) = await create_accounts(migrated_database_url, ["Ana"])
    return ana


async def _version(sessions: async_sessionmaker[AsyncSession], who: Account) -> str:
    async with sessions() as db:
        prompt = await prompts_repo.create_prompt(
            db, tenant_id=who.tenant_id, owner_id=who.user_id, name="P", description=None
        )
        fields = prompts_repo.NewVersion(
            content="hello",
            sections=None,
            variables=[],
            model_config={},
            message=None,
            created_by=who.user_id,
            source_session_id=None,
            source_edit_id=None,
            source_listing_id=None,
        )
        version = await prompts_repo.add_version(db, prompt.id, fields, attempts=3)
        await db.commit()
        return version.id


async def _run(sessions: async_sessionmaker[AsyncSession], who: Account, **fields: Any) -> int:
    values: dict[str, Any] = {
        "tenant_id": who.tenant_id,
        "sections": {},
        "model": "offline",
        "temperature": 0,
        "output": "",
        "status": "running",
        "node_id": "dead-node",
        **fields,
    }
    async with sessions() as db:
        run = Run(**values)
        await repo.insert_run(db, run)
        await db.commit()
        return run.id


async def _row(sessions: async_sessionmaker[AsyncSession], run_id: int) -> Run:
    async with sessions() as db:
        row = await db.scalar(select(Run).where(Run.id == run_id))
    assert row is not None
    return row


def _leases(sessions: async_sessionmaker[AsyncSession], node: str = "live-node") -> RunLeases:
    return RunLeases(sessions, node, lease_seconds=1.0, sweep_seconds=0.1)


async def test_the_sweep_fails_expired_running_runs_and_keeps_their_output(
    sessions: async_sessionmaker[AsyncSession], account: Account
) -> None:
    now = utcnow()
    version = await _version(sessions, account)
    expired = await _run(
        sessions,
        account,
        prompt_version_id=version,
        output="half an ans",
        lease_expires_at=now - timedelta(seconds=1),
    )
    current = await _run(sessions, account, lease_expires_at=now + timedelta(minutes=5))
    unleased_old = await _run(sessions, account, created_at=now - timedelta(minutes=5))
    unleased_new = await _run(sessions, account)
    finished = await _run(
        sessions, account, status="completed", output="done", lease_expires_at=now - timedelta(1)
    )
    swept = await _leases(sessions).sweep()
    assert sorted(run.id for run in swept) == sorted([expired, unleased_old])
    assert {run.node_id for run in swept} == {"dead-node"}
    row = await _row(sessions, expired)
    assert (row.status, row.finish_reason, row.error) == ("failed", "interrupted", INTERRUPTED)
    assert row.output == "half an ans" and row.lease_expires_at is None
    for untouched in (current, unleased_new):
        assert (await _row(sessions, untouched)).status == "running"
    assert (await _row(sessions, finished)).status == "completed"
    # The version's metrics count the interrupted run as a finished, unsuccessful one.
    async with sessions() as db:
        metrics = await db.scalar(
            select(PromptVersion.performance_metrics).where(PromptVersion.id == version)
        )
    assert metrics is not None and metrics["runCount"] == 1 and metrics["successRate"] == 0
    assert await _leases(sessions).sweep() == []


async def test_a_kept_lease_is_renewed_with_the_partial_output_until_swept(
    sessions: async_sessionmaker[AsyncSession], account: Account
) -> None:
    leases = _leases(sessions)
    run_id = await _run(
        sessions, account, node_id=leases.node_id, lease_expires_at=leases.lease_until()
    )
    parts = ["so far"]
    async with leases.keeping(run_id, lambda: " ".join(parts)):
        first = (await _row(sessions, run_id)).lease_expires_at
        parts.append("and more")

        async def renewed() -> bool:
            row = await _row(sessions, run_id)
            return row.output == "so far and more" and row.lease_expires_at != first

        await eventually(renewed, timeout=10)
        # A node that stops renewing is swept; the other node's sweep leaves this one alone.
        assert await _leases(sessions, "other").sweep() == []
    async with sessions() as db:
        past = utcnow() - timedelta(seconds=1)
        await db.execute(update(Run).where(Run.id == run_id).values(lease_expires_at=past))
        await db.commit()
    assert [run.id for run in await _leases(sessions, "other").sweep()] == [run_id]
    # The old owner can no longer renew a run that was swept.
    async with sessions() as db:
        assert not await repo.renew_lease(db, run_id, leases.node_id, utcnow(), "late")
        await db.commit()
    assert (await _row(sessions, run_id)).output == "so far and more"


async def test_nodes_sweeping_at_once_fail_each_run_once(
    sessions: async_sessionmaker[AsyncSession], account: Account
) -> None:
    past = utcnow() - timedelta(seconds=5)
    expected = [await _run(sessions, account, lease_expires_at=past) for _ in range(6)]
    nodes = [_leases(sessions, f"node-{n}") for n in range(3)]
    passes = await asyncio.gather(*(node.sweep() for node in nodes))
    swept = [run.id for one in passes for run in one]
    assert sorted(swept) == sorted(expected)  # every run, none twice


async def test_the_periodic_sweep_runs_on_its_own(
    sessions: async_sessionmaker[AsyncSession], account: Account
) -> None:
    run_id = await _run(sessions, account, lease_expires_at=utcnow() - timedelta(seconds=1))
    async with _leases(sessions):

        async def swept() -> bool:
            return (await _row(sessions, run_id)).status == "failed"

        await eventually(swept, timeout=10)


def test_leases_refuse_non_positive_intervals(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    for lease, sweep in ((0.0, 1.0), (1.0, 0.0), (-1.0, 1.0)):
        with pytest.raises(ValueError, match="must be > 0"):
            RunLeases(sessions, "n", lease_seconds=lease, sweep_seconds=sweep)
