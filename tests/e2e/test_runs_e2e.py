"""Runs through a real server process against the fake OpenAI server: real sockets both ways.

A streamed run read incrementally by a real HTTP client; a client that disconnects mid-stream
makes the server close its upstream request, and the run is recorded ``cancelled`` with what had
arrived.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.support.accounts import Account, create_accounts
from tests.support.api import call
from tests.support.fake_openai import FakeOpenAI
from tests.support.server_process import ServerProcess, running_server
from tests.support.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def llm_server(
    server_database_url: str, tmp_path_factory: pytest.TempPathFactory, fake: FakeOpenAI
) -> AsyncIterator[ServerProcess]:
    env = {
        "LLM_BASE_URL": fake.base_url,
        "LLM_MODELS": "fake-small",
        "PROMPT_STUDIO_LLM_MAX_RETRIES": "0",
    }
    log_dir = Path(tmp_path_factory.mktemp("runs-logs"))
    async with running_server(server_database_url, log_dir, env) as proc:
        yield proc


async def read_events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Server-sent events as they arrive."""
    name = ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            yield name, json.loads(line[len("data: ") :])


async def latest_run(server: ServerProcess, who: Account) -> dict[str, Any]:
    listed = await call(server, who, "GET", "/api/runs?limit=1")
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    return dict(items[0]) if items else {}


async def test_a_stream_arrives_incrementally_over_real_http(
    llm_server: ServerProcess, fake: FakeOpenAI
) -> None:
    (ana,) = await create_accounts(llm_server.database_url, ["Ana"])
    body = {"model": "fake-small", "content": "one two three", "stream": True, "cache": "bypass"}
    async with (
        httpx.AsyncClient(base_url=llm_server.base_url, headers=ana.headers) as http,
        http.stream("POST", "/api/runs", json=body) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [event async for event in read_events(response)]
    deltas = "".join(data["text"] for name, data in events if name == "delta")
    assert deltas == "Fake answer to: one two three"
    assert events[-1][0] == "done" and events[-1][1]["run"]["status"] == "completed"
    assert fake.chat_requests()[-1].completed


async def test_a_client_that_disconnects_stops_the_upstream_request(
    llm_server: ServerProcess, fake: FakeOpenAI
) -> None:
    (ana,) = await create_accounts(llm_server.database_url, ["Ana"])
    fake.fail_next("stall", after_chunks=2)
    body = {"model": "fake-small", "content": "never finished", "stream": True}
    received: list[str] = []
    async with (
        httpx.AsyncClient(base_url=llm_server.base_url, headers=ana.headers) as http,
        http.stream("POST", "/api/runs", json=body) as response,
    ):
        assert response.status_code == 200
        async for name, data in read_events(response):
            assert name == "delta"
            received.append(data["text"])
            if len(received) == 2:
                break  # leaving the block closes the connection mid-stream
    assert received == ["Fake ", "answer "]
    upstream = fake.chat_requests()[-1]

    async def upstream_closed() -> bool:
        return upstream.disconnected

    await eventually(upstream_closed, timeout=10)
    assert not upstream.completed

    async def recorded_cancelled() -> bool:
        return (await latest_run(llm_server, ana)).get("status") == "cancelled"

    await eventually(recorded_cancelled, timeout=10)
    run = await latest_run(llm_server, ana)
    assert run["output"] == "Fake answer " and run["model"] == "fake-small"
