"""Compose jobs end to end in-process: the runner against both databases and the fake LLM server."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.compose import offline
from server.compose.agents import JobSpec
from server.compose.models import ComposeInput, to_json
from server.compose.pipeline import Agents
from server.compose.runner import ComposeRunner, RunnerLimits
from storage.base import utcnow
from storage.engine import create_engine, create_session_factory
from storage.models import AgentComposeRun
from storage.repositories import compose as jobs
from storage.repositories.seed import seed
from tests.support.accounts import create_accounts
from tests.support.compose import GOOD, AgentScript, fake_agents, idea_of
from tests.support.fake_openai import FakeOpenAI
from tests.support.waiting import eventually

# Short enough that renewals matter within a test, long enough for a loaded machine's jitter.
FAST = RunnerLimits(concurrency=2, lease_seconds=3.0, poll_seconds=0.05, max_attempts=3)


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def sessions(migrated_database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(migrated_database_url)
    factory = create_session_factory(engine)
    async with factory() as db:
        await seed(db)
        await db.commit()
    yield factory
    await engine.dispose()


@pytest.fixture
async def scope(migrated_database_url: str) -> jobs.Scope:
    (account,) = await create_accounts(migrated_database_url, ["Ada"])
    return jobs.Scope(account.tenant_id, account.user_id)


async def submit(
    sessions: async_sessionmaker[AsyncSession],
    scope: jobs.Scope,
    raw: str,
    model: str = "fake-small",
) -> int:
    async with sessions() as db:
        run = await jobs.create_run(
            db, scope, raw=raw, goal=None, constraints=None, output_format=None,
            model_config={"model": model, "temperature": 0.2}, session_id=None,
        )  # fmt: skip
        await db.commit()
        return run.id


async def row(sessions: async_sessionmaker[AsyncSession], run_id: int) -> AgentComposeRun:
    async with sessions() as db:
        run = await jobs.snapshot(db, run_id)
    assert run is not None
    return run


async def finished(
    sessions: async_sessionmaker[AsyncSession], run_id: int, timeout: float = 20.0
) -> AgentComposeRun:
    async def done() -> bool:
        return (await row(sessions, run_id)).status in {"completed", "failed"}

    await eventually(done, timeout=timeout)
    return await row(sessions, run_id)


def runner(
    sessions: async_sessionmaker[AsyncSession],
    fake: FakeOpenAI,
    node: str = "node-a",
    limits: RunnerLimits = FAST,
    retries: int = 1,
) -> ComposeRunner:
    return ComposeRunner(
        sessions, node_id=node, agents_for=fake_agents(fake, retries=retries), limits=limits
    )


async def test_offline_job_runs_the_rule_engine_and_stores_all_three_outputs(
    sessions: async_sessionmaker[AsyncSession], scope: jobs.Scope, fake: FakeOpenAI
) -> None:
    raw = "Write something good about [PRODUCT] for <audience>."
    run_id = await submit(sessions, scope, raw, model="offline")
    async with runner(sessions, fake):
        run = await finished(sessions, run_id)
    assert (run.status, run.stage, run.progress, run.error) == ("completed", "done", 100, None)
    assert run.stage_outputs == {} and run.lease_owner is None and run.attempts == 1
    request = ComposeInput(raw=raw)
    converted = offline.convert(request)
    assert run.result is not None
    assert run.result.agent1_json == to_json(converted)
    assert run.result.agent2_json is not None and len(run.result.agent2_json["criticisms"]) == 6
    assert "technique: Role Prompting" in run.result.agent2_json["criticisms"][0]
    assert run.result.agent3_json["finalPrompt"]["user"] == converted.user
    assert fake.chat_requests() == []


async def test_llm_job_asks_each_agent_once_in_json_mode(
    sessions: async_sessionmaker[AsyncSession], scope: jobs.Scope, fake: FakeOpenAI
) -> None:
    script = AgentScript(fake)
    run_id = await submit(sessions, scope, "Test things")
    async with runner(sessions, fake):
        run = await finished(sessions, run_id)
    assert run.status == "completed", run.error
    assert run.result is not None
    assert (run.result.agent1_json, run.result.agent2_json, run.result.agent3_json) == (
        GOOD["agent1"],
        GOOD["agent2"],
        GOOD["agent3"],
    )
    assert [len(script.requests_of(s)) for s in ("agent1", "agent2", "agent3")] == [1, 1, 1]
    body = fake.chat_requests()[0].body
    assert body["response_format"] == {"type": "json_object"}
    critic = script.requests_of("agent2")[0]
    material = json.loads(
        critic[1]["content"].removeprefix("<material>\n").removesuffix("\n</material>")
    )
    assert material["converterPrompt"] == GOOD["agent1"]
    assert "Role Prompting" in [t["title"] for t in material["techniques"]]


async def test_malformed_json_is_shown_to_the_model_and_the_retry_succeeds(
    sessions: async_sessionmaker[AsyncSession], scope: jobs.Scope, fake: FakeOpenAI
) -> None:
    script = AgentScript(fake)
    script.queue("agent1", "Sure! Here is your prompt: {not json")
    run_id = await submit(sessions, scope, "Test things")
    async with runner(sessions, fake):
        run = await finished(sessions, run_id)
    assert run.status == "completed", run.error
    first, second = script.requests_of("agent1")
    assert len(second) == len(first) + 2
    assert second[-2] == {"role": "assistant", "content": "Sure! Here is your prompt: {not json"}
    assert "not JSON" in second[-1]["content"]


async def test_a_fenced_answer_is_accepted(
    sessions: async_sessionmaker[AsyncSession], scope: jobs.Scope, fake: FakeOpenAI
) -> None:
    script = AgentScript(fake)
    script.queue("agent3", "```json\n" + json.dumps(GOOD["agent3"]) + "\n```")
    run_id = await submit(sessions, scope, "Test things")
    async with runner(sessions, fake):
        run = await finished(sessions, run_id)
    assert run.status == "completed", run.error
    assert len(script.requests_of("agent3")) == 1


async def test_an_answer_failing_validation_twice_fails_the_run_clearly(
    sessions: async_sessionmaker[AsyncSession], scope: jobs.Scope, fake: FakeOpenAI
) -> None:
    script = AgentScript(fake)
    bad = json.dumps({"criticisms": "none", "fixes": []})
    script.queue("agent2", bad, bad)
    run_id = await submit(sessions, scope, "Test things")
    async with runner(sessions, fake):
        run = await finished(sessions, run_id)
    assert (run.status, run.stage, run.progress) == ("failed", "agent2", 40)
    assert run.error is not None
    assert run.error.startswith("agent2 (critic): the model gave no valid answer in 2 attempt(s)")
    assert "criticisms: Input should be a valid list" in run.error
    assert "alternativePrompt: Field required" in run.error
    assert run.stage_outputs == {"agent1": GOOD["agent1"]}
    assert run.result is None
    assert len(script.requests_of("agent2")) == 2 and script.requests_of("agent3") == []


async def test_zero_retries_fail_at_the_first_invalid_answer(
    sessions: async_sessionmaker[AsyncSession], scope: jobs.Scope, fake: FakeOpenAI
) -> None:
    script = AgentScript(fake)
    script.queue("agent1", "[]")
    run_id = await submit(sessions, scope, "Test things")
    async with runner(sessions, fake, retries=0):
        run = await finished(sessions, run_id)
    assert run.status == "failed"
    assert (
        run.error
        == "agent1 (converter): the model gave no valid answer in 1 attempt(s): the answer must be a JSON object"
    )


async def test_a_provider_failure_in_the_middle_stage_fails_the_run_there(
    sessions: async_sessionmaker[AsyncSession], scope: jobs.Scope, fake: FakeOpenAI
) -> None:
    script = AgentScript(fake)
    script.before = lambda stage: fake.fail_next("server_error") if stage == "agent1" else None
    run_id = await submit(sessions, scope, "Test things")
    async with runner(sessions, fake):
        run = await finished(sessions, run_id)
    assert (run.status, run.stage) == ("failed", "agent2")
    assert run.error is not None and run.error.startswith("agent2 (critic): provider_unavailable")
    assert run.stage_outputs == {"agent1": GOOD["agent1"]}


async def test_an_unknown_model_fails_the_run_at_once(
    sessions: async_sessionmaker[AsyncSession], scope: jobs.Scope, fake: FakeOpenAI
) -> None:
    AgentScript(fake)
    run_id = await submit(sessions, scope, "Test things", model="no-such-model")
    async with runner(sessions, fake):
        run = await finished(sessions, run_id)
    assert (run.status, run.stage) == ("failed", "agent1")
    assert run.error is not None and run.error.startswith("agent1 (converter): ")


async def test_a_slow_stage_keeps_its_lease_and_completes(
    sessions: async_sessionmaker[AsyncSession], scope: jobs.Scope, fake: FakeOpenAI
) -> None:
    script = AgentScript(fake)
    # Two and a half lease lengths inside one stage: only renewals keep the job from being
    # taken over by the other runner.
    script.before = lambda stage: (
        fake.fail_next("slow_first_token", delay=5.0) if stage == "agent1" else None
    )
    run_id = await submit(sessions, scope, "Test things")
    limits = RunnerLimits(concurrency=2, lease_seconds=2.0, poll_seconds=0.05)
    async with (
        runner(sessions, fake, limits=limits),
        runner(sessions, fake, node="node-b", limits=limits),
    ):
        run = await finished(sessions, run_id)
    assert run.status == "completed", run.error
    assert run.attempts == 1
    assert [len(script.requests_of(s)) for s in ("agent1", "agent2", "agent3")] == [1, 1, 1]


async def test_a_stage_slower_than_its_timeout_fails_the_run(
    sessions: async_sessionmaker[AsyncSession], scope: jobs.Scope, fake: FakeOpenAI
) -> None:
    AgentScript(fake)
    fake.fail_next("slow_first_token", delay=10.0)
    run_id = await submit(sessions, scope, "Test things")
    limits = RunnerLimits(
        concurrency=1, lease_seconds=5.0, poll_seconds=0.05, stage_timeout_seconds=1.0
    )
    async with runner(sessions, fake, limits=limits):
        run = await finished(sessions, run_id)
    assert (run.status, run.stage) == ("failed", "agent1")
    assert run.error == "agent1 (converter): no answer within 1 s"


async def test_a_job_whose_node_died_resumes_after_its_last_finished_stage(
    sessions: async_sessionmaker[AsyncSession], scope: jobs.Scope, fake: FakeOpenAI
) -> None:
    script = AgentScript(fake)
    run_id = await submit(sessions, scope, "Test things")
    async with sessions() as db:
        claim = await jobs.claim_next(db, "dead-node", utcnow(), lease_seconds=0.2, max_attempts=3)
        assert claim is not None and claim.run_id == run_id
        assert await jobs.enter_stage(
            db,
            claim,
            utcnow(),
            stage="agent2",
            progress=40,
            stage_outputs={"agent1": GOOD["agent1"]},
        )
    async with runner(sessions, fake):
        run = await finished(sessions, run_id)
    assert run.status == "completed", run.error
    assert run.attempts == 2
    assert [len(script.requests_of(s)) for s in ("agent1", "agent2", "agent3")] == [0, 1, 1]
    assert run.result is not None and run.result.agent1_json == GOOD["agent1"]
    # The dead node's lease is gone: nothing it might still write lands.
    async with sessions() as db:
        assert not await jobs.fail(db, claim, utcnow(), error="too late")
    assert (await row(sessions, run_id)).status == "completed"


async def test_a_job_interrupted_too_often_is_failed_with_a_reason(
    sessions: async_sessionmaker[AsyncSession], scope: jobs.Scope, fake: FakeOpenAI
) -> None:
    run_id = await submit(sessions, scope, "Test things")
    for attempt in range(1, 3):
        async with sessions() as db:
            claim = await jobs.claim_next(
                db,
                f"dying-{attempt}",
                utcnow() + timedelta(seconds=attempt),
                lease_seconds=0.5,
                max_attempts=2,
            )
        assert claim is not None and claim.attempt == attempt
    async with sessions() as db:
        assert (
            await jobs.claim_next(
                db, "late", utcnow() + timedelta(seconds=9), lease_seconds=1, max_attempts=2
            )
            is None
        )
    async with runner(
        sessions, fake, limits=RunnerLimits(concurrency=1, poll_seconds=0.05, max_attempts=2)
    ):
        run = await finished(sessions, run_id)
    assert run.status == "failed"
    assert (
        run.error
        == "the job was interrupted 2 time(s) (its server stopped or failed while running it); giving up"
    )


@pytest.mark.parametrize("stage", ["agent1", "agent2", "agent3"])
async def test_cancel_during_each_stage_stops_the_job_there(
    sessions: async_sessionmaker[AsyncSession], scope: jobs.Scope, fake: FakeOpenAI, stage: str
) -> None:
    script = AgentScript(fake)
    previous = {"agent2": "agent1", "agent3": "agent2"}.get(stage)
    if previous is None:
        fake.fail_next("slow_first_token", delay=30.0)
    else:
        script.before = lambda s: (
            fake.fail_next("slow_first_token", delay=30.0) if s == previous else None
        )
    run_id = await submit(sessions, scope, "Test things")
    async with runner(sessions, fake) as node:

        async def in_stage() -> bool:
            return (await row(sessions, run_id)).stage == stage and len(
                script.requests_of(stage)
            ) == 1

        await eventually(in_stage)
        async with sessions() as db:
            assert await jobs.request_cancel(db, run_id, utcnow()) == "running"
            await db.commit()
        # No local shortcut: the running node notices at its next lease renewal.
        run = await finished(sessions, run_id, timeout=5.0)
        assert node.running == []
    assert (run.status, run.stage, run.error) == ("failed", stage, jobs.CANCELLED)
    assert run.result is None
    later = {"agent1": ["agent2", "agent3"], "agent2": ["agent3"], "agent3": []}[stage]
    assert all(script.requests_of(s) == [] for s in later)


async def test_cancel_of_a_pending_job_fails_it_at_once_and_finished_jobs_refuse(
    sessions: async_sessionmaker[AsyncSession], scope: jobs.Scope, fake: FakeOpenAI
) -> None:
    run_id = await submit(sessions, scope, "Test things", model="offline")
    async with sessions() as db:
        assert await jobs.request_cancel(db, run_id, utcnow()) == "failed"
        await db.commit()
        assert await jobs.request_cancel(db, run_id, utcnow()) is None
        assert await jobs.request_cancel(db, 10**9, utcnow()) is None
    run = await row(sessions, run_id)
    assert (run.status, run.error) == ("failed", jobs.CANCELLED)
    async with runner(sessions, fake) as node:
        node.wake()
        async with sessions() as db:
            assert await jobs.claim_next(db, "x", utcnow(), lease_seconds=1, max_attempts=3) is None


async def test_shutdown_hands_the_job_back_and_another_node_resumes_it(
    sessions: async_sessionmaker[AsyncSession], scope: jobs.Scope, fake: FakeOpenAI
) -> None:
    script = AgentScript(fake)
    script.before = lambda s: (
        fake.fail_next("slow_first_token", delay=30.0) if s == "agent1" else None
    )
    run_id = await submit(sessions, scope, "Test things")
    async with runner(
        sessions, fake, limits=RunnerLimits(concurrency=1, lease_seconds=30.0, poll_seconds=0.05)
    ):

        async def in_critic() -> bool:
            return len(script.requests_of("agent2")) == 1

        await eventually(in_critic)
    stopped = await row(sessions, run_id)
    assert (stopped.status, stopped.stage, stopped.attempts) == ("running", "agent2", 0)
    script.before = None
    async with runner(sessions, fake, node="node-b"):
        run = await finished(sessions, run_id)
    assert run.status == "completed", run.error
    assert run.attempts == 1
    assert len(script.requests_of("agent1")) == 1


async def test_a_node_that_lost_its_lease_stops_and_writes_nothing(
    sessions: async_sessionmaker[AsyncSession], scope: jobs.Scope, fake: FakeOpenAI
) -> None:
    script = AgentScript(fake)
    fake.fail_next("slow_first_token", delay=30.0)
    run_id = await submit(sessions, scope, "Test things")
    async with runner(sessions, fake) as node:

        async def in_converter() -> bool:
            return len(script.requests_of("agent1")) == 1

        await eventually(in_converter)
        async with sessions() as db:  # another node took it over (e.g. after a long stall)
            await db.execute(
                update(AgentComposeRun)
                .where(AgentComposeRun.id == run_id)
                .values(lease_owner="thief")
            )
            await db.commit()

        async def stopped() -> bool:
            return node.running == []

        await eventually(stopped, timeout=5.0)
    run = await row(sessions, run_id)
    assert (run.status, run.stage, run.lease_owner) == ("running", "agent1", "thief")


async def test_two_runners_on_one_database_never_run_a_job_twice(
    sessions: async_sessionmaker[AsyncSession], scope: jobs.Scope, fake: FakeOpenAI
) -> None:
    script = AgentScript(fake)
    ids = [await submit(sessions, scope, f"job number {n}") for n in range(8)]
    limits = RunnerLimits(concurrency=3, lease_seconds=5.0, poll_seconds=0.05)
    async with runner(sessions, fake, "node-a", limits), runner(sessions, fake, "node-b", limits):
        runs = [await finished(sessions, run_id, timeout=30.0) for run_id in ids]
    assert [r.status for r in runs] == ["completed"] * 8
    assert all(r.attempts == 1 for r in runs)
    per_job: dict[str, int] = {}
    for request in fake.chat_requests():
        idea = idea_of(request.body["messages"])
        per_job[idea] = per_job.get(idea, 0) + 1
    assert per_job == {f"job number {n}": 3 for n in range(8)}
    assert len(script.requests_of("agent3")) == 8


async def test_listing_is_scoped_and_paged(
    sessions: async_sessionmaker[AsyncSession], scope: jobs.Scope, migrated_database_url: str
) -> None:
    (other,) = await create_accounts(migrated_database_url, ["Bob"])
    other_scope = jobs.Scope(other.tenant_id, other.user_id)
    mine = [await submit(sessions, scope, f"idea {n}", model="offline") for n in range(3)]
    theirs = await submit(sessions, other_scope, "their idea", model="offline")
    async with sessions() as db:
        page, total = await jobs.list_runs(db, scope, status=None, limit=2, offset=0)
        assert total == 3 and [r.id for r in page] == mine[:0:-1]
        page, _ = await jobs.list_runs(db, scope, status=None, limit=2, offset=2)
        assert [r.id for r in page] == [mine[0]]
        assert await jobs.list_runs(db, scope, status="completed", limit=5, offset=0) == ([], 0)
        assert await jobs.get_run(db, scope, theirs) is None
        assert await jobs.get_run(db, other_scope, theirs) is not None
        assert await jobs.count_active(db, scope) == 3


async def test_a_runner_never_takes_over_a_job_it_runs_itself(
    sessions: async_sessionmaker[AsyncSession], scope: jobs.Scope
) -> None:
    run_id = await submit(sessions, scope, "Test things")
    later = utcnow() + timedelta(seconds=5)
    async with sessions() as db:
        first = await jobs.claim_next(db, "a", utcnow(), lease_seconds=1, max_attempts=3)
        assert first is not None
        # Its lease ran out (say the event loop stalled) but it still runs the job.
        assert (
            await jobs.claim_next(db, "a", later, lease_seconds=1, max_attempts=3, exclude=[run_id])
            is None
        )
        other = await jobs.claim_next(db, "b", later, lease_seconds=1, max_attempts=3)
        assert other is not None and (other.run_id, other.attempt) == (run_id, 2)
        assert await jobs.renew(db, first, later, lease_seconds=1) == (False, False)
        assert await jobs.renew(db, other, later, lease_seconds=1) == (True, False)


class _Crashing:
    """Agents that fail in a way the runner does not expect (not a stage error)."""

    calls = 0

    async def run(self, stage: str, request: ComposeInput, previous: Any) -> Any:
        _Crashing.calls += 1
        raise RuntimeError("boom")


async def test_a_job_that_keeps_crashing_is_retried_then_failed_with_the_reason(
    sessions: async_sessionmaker[AsyncSession], scope: jobs.Scope
) -> None:
    @contextlib.asynccontextmanager
    async def crashing(spec: JobSpec) -> AsyncIterator[Agents]:
        yield _Crashing()

    _Crashing.calls = 0
    run_id = await submit(sessions, scope, "Test things")
    limits = RunnerLimits(concurrency=1, lease_seconds=3.0, poll_seconds=0.05, max_attempts=3)
    async with ComposeRunner(sessions, node_id="n", agents_for=crashing, limits=limits):
        run = await finished(sessions, run_id)
    assert run.status == "failed" and run.attempts == 3
    assert run.error is not None and run.error.startswith("the job was interrupted 3 time(s)")
    assert _Crashing.calls == 3
