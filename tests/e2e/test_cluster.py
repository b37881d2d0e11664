"""Several real server processes sharing one PostgreSQL database and one Redis.

Every test gets a fresh database, a private ``redis-server`` on a free port (so stopping it
affects nobody else) and two or three nodes on random ports, with clients of both protocols
spread over the nodes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import redis.asyncio as redis_client
from sqlalchemy import func, select

from migrations.runner import upgrade
from storage.engine import create_engine
from storage.models import CollaborationSession, EditHistory
from tests.support.accounts import Account, create_accounts
from tests.support.json_client import JsonClient
from tests.support.private_redis import PrivateRedis, redis_server_available
from tests.support.server_process import ServerProcess
from tests.support.services import (
    create_postgres_database,
    drop_postgres_database,
    postgres_available,
    require_service,
)
from tests.support.waiting import eventually
from tests.support.yjs_client import YjsNodeClient, node_available, node_unavailable_reason

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.postgres,
    pytest.mark.redis,
]

# Redis outages are healed within this bound (reconnect backoff ≤ 2 s, then one resync).
CONVERGENCE_BOUND_SECONDS = 15.0


@dataclass
class Cluster:
    database_url: str
    redis: PrivateRedis
    nodes: list[ServerProcess]
    owner: Account
    others: list[Account]

    async def session(self, content: str) -> dict[str, Any]:
        async with httpx.AsyncClient(
            base_url=self.nodes[0].base_url, headers=self.owner.headers
        ) as http:
            response = await http.post(
                "/api/sessions", json={"name": "cluster", "content": content}
            )
            assert response.status_code == 201
            session = response.json()
            for other in self.others:
                granted = await http.put(
                    f"/api/sessions/{session['id']}/members/{other.user_id}",
                    json={"role": "EDITOR"},
                )
                assert granted.status_code == 200
        return session

    async def content_on(self, node: ServerProcess, session_id: str) -> str:
        async with httpx.AsyncClient(base_url=node.base_url, headers=self.owner.headers) as http:
            return str((await http.get(f"/api/sessions/{session_id}")).json()["content"])

    async def history_count(self, session_id: str) -> int:
        engine = create_engine(self.database_url)
        try:
            async with engine.connect() as conn:
                count = await conn.scalar(
                    select(func.count(EditHistory.id)).where(EditHistory.session_id == session_id)
                )
        finally:
            await engine.dispose()
        return int(count or 0)


@pytest.fixture
def cluster_database() -> Iterator[str]:
    require_service("PostgreSQL", postgres_available())
    url = create_postgres_database("cluster")
    try:
        upgrade(url, "head")
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    require_service("redis-server binary", redis_server_available())
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def start_cluster(
    stack: AsyncExitStack,
    database_url: str,
    redis: PrivateRedis,
    tmp_path: Path,
    size: int,
    extra_env: dict[int, dict[str, str]] | None = None,
) -> Cluster:
    nodes = []
    for index in range(size):
        node = ServerProcess(
            database_url,
            env={
                "REDIS_URL": redis.url,
                "PROMPT_STUDIO_NODE_ID": f"node-{index}",
                "PROMPT_STUDIO_UNLOAD_GRACE_SECONDS": "2",
                **(extra_env or {}).get(index, {}),
            },
            log_path=tmp_path / f"node-{index}.log",
        )
        nodes.append(node)
    await asyncio.gather(*(n.start() for n in nodes))
    for node in nodes:
        stack.push_async_callback(node.stop)
    owner, *others = await create_accounts(database_url, ["Owner", "Ana", "Ben", "Cai"])
    return Cluster(database_url, redis, nodes, owner, others)


@pytest_asyncio.fixture(loop_scope="session")
async def cluster(
    cluster_database: str, private_redis: PrivateRedis, tmp_path: Path
) -> AsyncIterator[Cluster]:
    async with AsyncExitStack() as stack:
        yield await start_cluster(stack, cluster_database, private_redis, tmp_path, 2)


def json_client(node: ServerProcess, session: dict[str, Any], account: Account) -> JsonClient:
    return JsonClient(node.ws_base, session["share_token"], account.token)


async def test_json_clients_on_two_nodes_converge_and_history_has_each_change_once(
    cluster: Cluster,
) -> None:
    a_node, b_node = cluster.nodes
    ana, ben, _ = cluster.others
    session = await cluster.session("base")
    async with json_client(a_node, session, ana) as a, json_client(b_node, session, ben) as b:
        sent = 0
        for round_ in range(10):
            replies = await asyncio.gather(
                a.insert(0, f"a{round_} "), b.insert(b.utf16_length(), "!")
            )
            assert all(r["type"] == "ack" for r in replies)
            sent += 2
        await eventually(lambda: _same(a, b))
        final = a.text
        assert final.endswith("base" + "!" * 10)
        assert all(f"a{i} " in final for i in range(10))
    for node in cluster.nodes:
        await eventually(lambda node=node: _content_is(cluster, node, session["id"], final))
    assert await cluster.history_count(session["id"]) == sent


async def _same(a: JsonClient, b: JsonClient) -> bool:
    return a.text == b.text


async def _content_is(cluster: Cluster, node: ServerProcess, session_id: str, text: str) -> bool:
    return await cluster.content_on(node, session_id) == text


async def test_yjs_and_json_clients_spread_over_nodes_converge(cluster: Cluster) -> None:
    require_service(f"Node.js interop packages ({node_unavailable_reason()})", node_available())
    a_node, b_node = cluster.nodes
    ana, ben, cai = cluster.others
    session = await cluster.session("one two")
    async with (
        YjsNodeClient(
            f"{a_node.ws_base}/ws", session["share_token"], params={"token": ana.token}
        ) as ya,
        YjsNodeClient(
            f"{b_node.ws_base}/ws", session["share_token"], params={"token": ben.token}
        ) as yb,
        json_client(b_node, session, cai) as jb,
    ):
        await ya.wait_text("one two")
        await yb.wait_text("one two")
        await asyncio.gather(ya.insert(0, "zero "), yb.insert(7, " three"))
        assert (await jb.insert(0, "» "))["type"] == "ack"

        async def converged() -> bool:
            texts = {await ya.text(), await yb.text(), jb.text}
            return len(texts) == 1

        await eventually(converged)
        final = await ya.text()
        for piece in ("zero ", " three", "» ", "one two"):
            assert final.count(piece) == 1
    for node in cluster.nodes:
        await eventually(lambda node=node: _content_is(cluster, node, session["id"], final))
    assert await cluster.history_count(session["id"]) == 3


async def test_presence_crosses_nodes_and_is_removed_when_the_client_leaves(
    cluster: Cluster,
) -> None:
    a_node, b_node = cluster.nodes
    ana, ben, _ = cluster.others
    session = await cluster.session("presence")
    async with json_client(b_node, session, ben) as watcher:
        async with json_client(a_node, session, ana) as a:
            await a.send({"type": "presence", "cursor": {"anchor": 2, "head": 5}})
            update = await watcher.wait_for(
                lambda m: m.get("type") == "presence" and m.get("event") == "update"
            )
            assert update["user_id"] == ana.user_id
            assert update["state"]["cursor"] == {"anchor": 2, "head": 5}
            assert a.welcome is not None
            client_id = a.welcome["client_id"]
        removed = await watcher.wait_for(
            lambda m: (
                m.get("type") == "presence"
                and m.get("event") == "remove"
                and m.get("client_id") == client_id
            )
        )
        assert removed["state"] is None


async def test_control_events_reach_connections_on_other_nodes(cluster: Cluster) -> None:
    a_node, b_node = cluster.nodes
    ana, ben, _ = cluster.others
    session = await cluster.session("control")
    async with (
        json_client(b_node, session, ana) as on_b,
        json_client(b_node, session, ben) as ben_b,
        httpx.AsyncClient(base_url=a_node.base_url, headers=cluster.owner.headers) as http,
    ):
        demoted = await http.put(
            f"/api/sessions/{session['id']}/members/{ana.user_id}", json={"role": "VIEWER"}
        )
        assert demoted.status_code == 200
        await on_b.wait_for(lambda m: m.get("type") == "role" and m.get("role") == "VIEWER")
        refused = await on_b.insert(0, "x")
        assert refused["type"] == "error" and refused["code"] == "forbidden"
        removed = await http.delete(f"/api/sessions/{session['id']}/members/{ana.user_id}")
        assert removed.status_code == 204
        assert (await on_b.wait_closed())[0] == 4403
        deactivated = await http.post(f"/api/sessions/{session['id']}/deactivate")
        assert deactivated.status_code == 200
        assert (await ben_b.wait_closed())[0] == 4410


async def test_redis_outage_heals_without_anyone_reconnecting(cluster: Cluster) -> None:
    a_node, b_node = cluster.nodes
    ana, ben, _ = cluster.others
    session = await cluster.session("")
    async with json_client(a_node, session, ana) as a, json_client(b_node, session, ben) as b:
        assert (await a.insert(0, "before "))["type"] == "ack"
        await b.wait_text("before ")
        cluster.redis.kill()
        # Both nodes keep serving their own clients, and say they are degraded.
        assert (await a.insert(a.utf16_length(), "A-during "))["type"] == "ack"
        assert (await b.insert(0, "B-during "))["type"] == "ack"
        async with httpx.AsyncClient(base_url=a_node.base_url) as http:
            ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        assert "redis" in ready.json()["degraded"]
        cluster.redis.restart()
        expected = "B-during before A-during "
        await eventually(lambda: _texts_are(a, b, expected), timeout=CONVERGENCE_BOUND_SECONDS)
        assert (await a.insert(0, "after "))["type"] == "ack"
        await b.wait_text("after " + expected)
    for node in cluster.nodes:
        await eventually(
            lambda node=node: _content_is(cluster, node, session["id"], "after " + expected)
        )
    assert await cluster.history_count(session["id"]) == 4


async def _texts_are(a: JsonClient, b: JsonClient, text: str) -> bool:
    return a.text == text and b.text == text


async def test_a_killed_node_loses_nothing_acked(cluster: Cluster) -> None:
    a_node, b_node = cluster.nodes
    ana, ben, _ = cluster.others
    session = await cluster.session("")
    async with json_client(b_node, session, ben) as watcher:
        a = json_client(a_node, session, ana)
        await a.connect()
        for i in range(20):
            assert (await a.insert(a.utf16_length(), f"{i},"))["type"] == "ack"
        acked = a.text
        await a_node.kill()
        await a.wait_closed()
        # The client reconnects to the surviving node and finds everything it was acked.
        async with json_client(b_node, session, ana) as again:
            assert again.welcome is not None and again.welcome["content"] == acked
        await watcher.wait_text(acked)
    assert await cluster.history_count(session["id"]) == 20


async def test_a_node_opening_a_document_catches_up_when_the_stored_snapshot_is_behind(
    cluster_database: str, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        # Node 0 holds its writes back for 5 s, so storage lags behind its live document.
        slow_writer = {0: {"PROMPT_STUDIO_HISTORY_FLUSH_MS": "5000"}}
        cluster = await start_cluster(
            stack, cluster_database, private_redis, tmp_path, 3, extra_env=slow_writer
        )
        a_node, b_node, c_node = cluster.nodes
        ana, ben, cai = cluster.others
        session = await cluster.session("stored")
        async with (
            json_client(a_node, session, ana) as a,
            json_client(a_node, session, cluster.owner) as a_watcher,
        ):
            await a.op({"type": "insert", "position": 6, "content": " + live"}, wait_ack=False)
            await a_watcher.wait_text("stored + live")  # applied on node 0, not yet stored
            engine = create_engine(cluster.database_url)
            try:
                async with engine.connect() as conn:
                    stored = await conn.scalar(
                        select(CollaborationSession.content).where(
                            CollaborationSession.id == session["id"]
                        )
                    )
            finally:
                await engine.dispose()
            assert stored == "stored"  # the snapshot is behind
            async with (
                json_client(b_node, session, ben) as b,
                json_client(c_node, session, cai) as c,
            ):
                await b.wait_text("stored + live")
                await c.wait_text("stored + live")


async def test_killed_pubsub_connections_heal_by_resync(cluster: Cluster) -> None:
    a_node, b_node = cluster.nodes
    ana, ben, _ = cluster.others
    session = await cluster.session("")
    async with json_client(a_node, session, ana) as a, json_client(b_node, session, ben) as b:
        assert (await a.insert(0, "x"))["type"] == "ack"
        await b.wait_text("x")
        admin = redis_client.Redis.from_url(cluster.redis.url)
        try:
            killed = await admin.client_kill_filter(_type="pubsub")
        finally:
            await admin.aclose()
        assert killed >= 2
        # Edits made while the subscriptions are down are lost by pub/sub, then resynced.
        for i in range(5):
            assert (await a.insert(a.utf16_length(), str(i)))["type"] == "ack"
            assert (await b.insert(0, chr(ord("a") + i)))["type"] == "ack"
        expected = "edcbax01234"
        await eventually(lambda: _texts_are(a, b, expected), timeout=CONVERGENCE_BOUND_SECONDS)
