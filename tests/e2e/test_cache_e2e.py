"""The semantic cache through two real server processes sharing PostgreSQL and Redis: an
answer cached on one node is served on the other by meaning, with the default (offline,
in-wheel) embedder; deleting it on one node stops it everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from migrations.runner import upgrade
from tests.support.accounts import Account, create_accounts
from tests.support.api import call
from tests.support.server_process import ServerProcess, running_server

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.postgres, pytest.mark.redis]

QUESTION = "What is the best way to learn the Python programming language quickly?"
PARAPHRASE = "What's the best way to quickly learn the Python programming language?"


async def run(server: ServerProcess, who: Account, content: str) -> dict[str, Any]:
    answer = await call(
        server, who, "POST", "/api/runs", json={"model": "offline", "content": content}
    )
    assert answer.status_code in (200, 201), answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_one_node_caches_another_serves_and_a_delete_reaches_both(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    upgrade(postgres_url, "head")
    env = {"REDIS_URL": redis_url, "PROMPT_STUDIO_CACHE_MAINTENANCE_SECONDS": "0"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with (
        running_server(postgres_url, tmp_path / "a", env) as node_a,
        running_server(postgres_url, tmp_path / "b", env) as node_b,
    ):
        (ana,) = await create_accounts(postgres_url, ["Ana"])
        first = await run(node_a, ana, QUESTION)
        assert first["cache"]["hit"] is False

        entries = (await call(node_b, ana, "GET", "/api/cache/entries")).json()
        assert entries["total"] == 1
        entry = entries["items"][0]
        assert entry["prompt"] == QUESTION and entry["embedder"].startswith("wordllama")

        second = await run(node_b, ana, PARAPHRASE)
        assert second["cache"]["hit"] is True and second["cache"]["entry_id"] == entry["id"]
        assert 0.85 <= second["cache"]["similarity"] < 1.0
        assert second["output"] == first["output"]

        stats = (await call(node_a, ana, "GET", "/api/cache/stats?days=1")).json()
        assert (stats["hits"], stats["misses"]) == (1, 1) and stats["tokens_saved"] > 0

        deleted = await call(node_a, ana, "DELETE", f"/api/cache/entries/{entry['id']}")
        assert deleted.status_code == 204
        third = await run(node_b, ana, PARAPHRASE)
        assert third["cache"]["hit"] is False


async def test_a_version_saved_on_one_node_retires_what_the_other_cached(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    upgrade(postgres_url, "head")
    env = {"REDIS_URL": redis_url, "PROMPT_STUDIO_CACHE_MAINTENANCE_SECONDS": "0"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with (
        running_server(postgres_url, tmp_path / "a", env) as node_a,
        running_server(postgres_url, tmp_path / "b", env) as node_b,
    ):
        (ana,) = await create_accounts(postgres_url, ["Ana"])
        first = {"sections": {"system": "Answer briefly.", "user": QUESTION}}
        created = await call(
            node_a, ana, "POST", "/api/prompts", json={"name": "P", "version": first}
        )
        assert created.status_code == 201, created.text
        prompt_id, v1 = created.json()["id"], created.json()["version"]["id"]

        async def run_v1() -> dict[str, Any]:
            body = {"model": "offline", "prompt_version_id": v1}
            answer = await call(node_a, ana, "POST", "/api/runs", json=body)
            assert answer.status_code == 201, answer.text
            return dict(answer.json()["cache"])

        assert (await run_v1())["hit"] is False
        assert (await run_v1())["hit"] is True
        second = {"sections": {"system": "Answer at length.", "user": QUESTION}}
        saved = await call(node_b, ana, "POST", f"/api/prompts/{prompt_id}/versions", json=second)
        assert saved.status_code == 201, saved.text
        assert saved.json()["cache_entries_retired"] == 1
        assert (await run_v1())["hit"] is False
