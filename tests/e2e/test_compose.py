"""Agent compose against real server processes and the fake OpenAI server on loopback.

SSE read by a real HTTP client while a live session's JSON client watches the "Composer"
participant; a server SIGKILLed in the middle of a job, restarted, finishing it from its last
finished stage; two nodes on one PostgreSQL never running the same job twice.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from migrations.runner import upgrade
from tests.support.accounts import Account, create_accounts
from tests.support.api import call, create_session
from tests.support.compose import AgentScript, idea_of
from tests.support.fake_openai import FakeOpenAI
from tests.support.json_client import JsonClient
from tests.support.server_process import ServerProcess, running_server
from tests.support.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")

MODEL = {"model": "fake-small", "temperature": 0.2}


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def llm_env(fake: FakeOpenAI, **extra: str) -> dict[str, str]:
    return {
        "LLM_BASE_URL": fake.base_url,
        "LLM_MODELS": "fake-small",
        "PROMPT_STUDIO_LLM_MAX_RETRIES": "0",
        "PROMPT_STUDIO_COMPOSE_POLL_SECONDS": "0.1",
        **extra,
    }


async def submit(server: ServerProcess, who: Account, raw: str, **body: Any) -> int:
    response = await call(
        server, who, "POST", "/api/compose", json={"raw": raw, "model_config": MODEL, **body}
    )
    assert response.status_code == 202, response.text
    return int(response.json()["id"])


async def job(server: ServerProcess, who: Account, run_id: int) -> dict[str, Any]:
    response = await call(server, who, "GET", f"/api/compose/{run_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def completed(server: ServerProcess, who: Account, run_id: int) -> dict[str, Any]:
    async def finished() -> bool:
        return (await job(server, who, run_id))["status"] in {"completed", "failed"}

    await eventually(finished, timeout=90.0, interval=0.1)
    return await job(server, who, run_id)


async def test_sse_and_the_composer_participant_follow_a_job(
    server_database_url: str, tmp_path: Path, fake: FakeOpenAI
) -> None:
    script = AgentScript(fake)
    # The converter answers only once the stream is open (a late client would rightly start
    # from a later stage); every stage after it takes a moment, so each change is its own event.
    connected = threading.Event()

    def pace(stage: str) -> None:
        if stage == "agent1":
            connected.wait(timeout=20.0)
        fake.fail_next("slow_first_token", delay=0.4)

    script.before = pace
    ana, bob = await create_accounts(server_database_url, ["Ana", "Bob"])
    env = llm_env(fake, PROMPT_STUDIO_COMPOSE_PRESENCE_LINGER_SECONDS="1")
    async with running_server(server_database_url, tmp_path, env) as server:
        session = await create_session(server, ana, "draft")
        async with JsonClient(server.ws_base, session["share_token"], bob.token) as watcher:
            run_id = await submit(server, ana, "Test things", session_id=session["id"])
            events: list[tuple[str, dict[str, Any]]] = []
            headers = ana.headers
            async with (
                httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as http,
                http.stream("GET", f"/api/compose/{run_id}/events") as stream,
            ):
                assert stream.status_code == 200
                assert stream.headers["content-type"].startswith("text/event-stream")
                name = ""
                async for line in stream.aiter_lines():
                    if line.startswith("event: "):
                        name = line.removeprefix("event: ")
                    elif line.startswith("data: "):
                        events.append((name, json.loads(line.removeprefix("data: "))))
                        connected.set()
            # Progress 0: pending, or claimed a moment before the converter starts.
            seen = [(n, e["stage"], e["progress"]) for n, e in events if e["progress"] > 0]
            assert seen == [
                ("progress", "agent1", 10),
                ("progress", "agent2", 40),
                ("progress", "agent3", 70),
                ("result", "done", 100),
            ]
            assert events[-1][1]["result"]["finalPrompt"]["user"] == "Test {{thing}}."

            def composer_done(message: dict[str, Any]) -> bool:
                state = message.get("state") or {}
                return (
                    message.get("type") == "presence"
                    and state.get("name") == "Composer"
                    and "suggestion" in state.get("composer", {})
                )

            final = await watcher.wait_for(composer_done, timeout=10.0)
            composer = final["state"]["composer"]
            assert (composer["id"], composer["status"], composer["progress"]) == (
                run_id,
                "completed",
                100,
            )
            assert composer["suggestion"] == events[-1][1]["result"]
            stages = [
                m["state"]["composer"]["stage"]
                for m in watcher.messages
                if m.get("type") == "presence" and (m.get("state") or {}).get("name") == "Composer"
            ]
            assert "agent2" in stages and stages[-1] == "done"
            # After lingering with its suggestion, the participant leaves.
            left = await watcher.wait_for(
                lambda m: (
                    m.get("type") == "presence"
                    and m.get("event") == "remove"
                    and m.get("client_id") == final["client_id"]
                ),
                timeout=10.0,
            )
            assert left["user_id"] == f"composer:{run_id}"


async def test_a_job_survives_sigkill_and_finishes_from_its_last_finished_stage(
    server_database_url: str, tmp_path: Path, fake: FakeOpenAI
) -> None:
    script = AgentScript(fake)
    script.before = lambda stage: (
        fake.fail_next("slow_first_token", delay=60.0) if stage == "agent1" else None
    )
    (ana,) = await create_accounts(server_database_url, ["Ana"])
    env = llm_env(fake, PROMPT_STUDIO_COMPOSE_LEASE_SECONDS="2")
    first = ServerProcess(server_database_url, env=env, log_path=tmp_path / "first.log")
    await first.start()
    try:
        run_id = await submit(first, ana, "Survive the crash")

        async def in_critic() -> bool:
            return len(script.requests_of("agent2")) == 1

        await eventually(in_critic, timeout=40.0)
        before = await job(first, ana, run_id)
        assert (before["status"], before["stage"]) == ("running", "agent2")
        assert before["outputs"]["agent1"] is not None
    finally:
        await first.kill()
    script.before = None
    second = ServerProcess(server_database_url, env=env, log_path=tmp_path / "second.log")
    async with second:
        after = await completed(second, ana, run_id)
    assert after["status"] == "completed", after["error"]
    assert after["attempts"] == 2
    # The converter ran once; the critic's interrupted call was made again; the judge once.
    assert [len(script.requests_of(s)) for s in ("agent1", "agent2", "agent3")] == [1, 2, 1]


@pytest.mark.postgres
async def test_two_nodes_on_one_postgresql_never_run_a_job_twice(
    postgres_url: str, tmp_path: Path, fake: FakeOpenAI
) -> None:
    upgrade(postgres_url, "head")
    script = AgentScript(fake)
    script.before = lambda stage: fake.fail_next("slow_first_token", delay=0.05)
    (ana,) = await create_accounts(postgres_url, ["Ana"])
    env = llm_env(fake, PROMPT_STUDIO_COMPOSE_CONCURRENCY="3", LOG_LEVEL="INFO")
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    async with (
        running_server(postgres_url, tmp_path / "a", {**env, "PROMPT_STUDIO_NODE_ID": "a"}) as a,
        running_server(postgres_url, tmp_path / "b", {**env, "PROMPT_STUDIO_NODE_ID": "b"}) as b,
    ):
        node_a, node_b = a, b
        nodes = [node_a, node_b]
        ids = [await submit(nodes[n % 2], ana, f"job {n}") for n in range(10)]
        runs = [await completed(nodes[(n + 1) % 2], ana, run_id) for n, run_id in enumerate(ids)]
    assert [r["status"] for r in runs] == ["completed"] * 10
    assert all(r["attempts"] == 1 for r in runs)
    per_job: dict[str, int] = {}
    for request in fake.chat_requests():
        idea = idea_of(request.body["messages"])
        per_job[idea] = per_job.get(idea, 0) + 1
    assert per_job == {f"job {n}": 3 for n in range(10)}
    assert len(script.requests_of("agent3")) == 10
    # Each node's log names the jobs it claimed: together all of them, none on both.
    claimed = {
        name: {
            int(m.group(1))
            for m in re.finditer(
                rf"compose job (\d+): attempt \d+ on {name}\b",
                (tmp_path / name / "server.log").read_text(),
            )
        }
        for name in ("a", "b")
    }
    assert claimed["a"] | claimed["b"] == set(ids)
    assert claimed["a"] & claimed["b"] == set()
