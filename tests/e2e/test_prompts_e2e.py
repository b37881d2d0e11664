"""Prompts against a real server: a session started from a version, edited live, published
back, and the publish seen by a connected JSON client and, in its awareness, a Yjs client."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest

# The two-node cluster of test_cluster (fixtures imported so pytest finds them here too).
from tests.e2e.test_cluster import cluster_database, private_redis, start_cluster  # noqa: F401
from tests.support.accounts import Account
from tests.support.api import call, create_session
from tests.support.json_client import JsonClient
from tests.support.private_redis import PrivateRedis
from tests.support.server_process import ServerProcess
from tests.support.services import require_service
from tests.support.yjs_client import YjsNodeClient, node_available, node_unavailable_reason

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_edit_a_version_live_and_publish_it(
    server: ServerProcess, team: list[Account]
) -> None:
    alice = team[0]
    created = await call(
        server,
        alice,
        "POST",
        "/api/prompts",
        json={"name": "Live", "version": {"sections": {"user": "Hello {{who}}"}}},
    )
    assert created.status_code == 201, created.text
    prompt_id = created.json()["id"]
    started = await call(
        server, alice, "POST", "/api/sessions", json={"name": "s", "prompt_id": prompt_id}
    )
    assert started.status_code == 201, started.text
    session = started.json()
    assert session["content"] == "--- user ---\nHello {{who}}"

    async with JsonClient(server.ws_base, session["share_token"], alice.token) as client:
        assert client.text == session["content"]
        await client.insert(len(client.text), "!")
        published = await call(
            server,
            alice,
            "POST",
            f"/api/sessions/{session['id']}/publish",
            json={"message": "live edit"},
        )
        assert published.status_code == 201, published.text
        seen = await client.wait_for(lambda m: m.get("type") == "published")
        assert seen["version"] == 2 and seen["prompt_id"] == prompt_id
        assert seen["user_id"] == alice.user_id and seen["message"] == "live edit"
        assert seen["edit_id"] == published.json()["source"]["edit_id"] is not None
        presence = await client.wait_for(
            lambda m: m.get("type") == "presence" and bool((m.get("state") or {}).get("server"))
        )
        assert presence["state"]["published"]["version"] == 2

    version = await call(server, alice, "GET", f"/api/prompts/{prompt_id}/versions/2")
    assert version.json()["sections"] == {"user": "Hello {{who}}!"}
    rendered = await call(
        server,
        alice,
        "POST",
        f"/api/prompts/{prompt_id}/render",
        json={"variables": {"who": "{{you}}"}},
    )
    assert rendered.json()["messages"] == [{"role": "user", "content": "Hello {{you}}!"}]


@pytest.fixture
def need_node() -> None:
    require_service(f"Node.js interop packages ({node_unavailable_reason()})", node_available())


@pytest.mark.node
async def test_a_yjs_client_sees_the_publish_in_the_servers_awareness(
    need_node: None, server: ServerProcess, team: list[Account]
) -> None:
    alice = team[0]
    created = await call(server, alice, "POST", "/api/prompts", json={"name": "Y"})
    prompt_id = created.json()["id"]
    session = await create_session(server, alice, "draft")
    url = f"{server.ws_base}/ws"
    async with YjsNodeClient(url, session["share_token"], params={"token": alice.token}) as yjs:
        await yjs.wait_synced()
        await yjs.insert(5, " two")
        await yjs.wait_text("draft two")
        before = await yjs.awareness()
        published = await call(
            server,
            alice,
            "POST",
            f"/api/sessions/{session['id']}/publish",
            json={"prompt_id": prompt_id},
        )
        assert published.status_code == 201, published.text
        assert published.json()["content"] == "draft two"
        states = await yjs.wait_awareness(len(before) + 1)
        announced = [s for s in states.values() if isinstance(s, dict) and s.get("server")]
        assert len(announced) == 1
        assert announced[0]["published"]["version"] == 1
        assert announced[0]["published"]["prompt_id"] == prompt_id


@pytest.mark.postgres
@pytest.mark.redis
async def test_a_publish_on_one_node_reaches_clients_on_another(
    cluster_database: str,  # noqa: F811 - the imported fixtures
    private_redis: PrivateRedis,  # noqa: F811
    tmp_path: Path,
) -> None:
    async with AsyncExitStack() as stack:
        cluster = await start_cluster(stack, cluster_database, private_redis, tmp_path, 2)
        a_node, b_node = cluster.nodes
        owner = cluster.owner
        created = await call(a_node, owner, "POST", "/api/prompts", json={"name": "C"})
        session = await cluster.session("on b")
        async with JsonClient(b_node.ws_base, session["share_token"], owner.token) as on_b:
            await on_b.insert(4, "!")  # acked: committed, so node A reads it from storage
            published = await call(
                a_node,
                owner,
                "POST",
                f"/api/sessions/{session['id']}/publish",
                json={"prompt_id": created.json()["id"]},
            )
            assert published.status_code == 201, published.text
            assert published.json()["content"] == "on b!"
            seen = await on_b.wait_for(lambda m: m.get("type") == "published")
            assert seen["version"] == 1 and seen["edit_id"] == published.json()["source"]["edit_id"]
