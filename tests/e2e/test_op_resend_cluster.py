"""A JSON op resent to another node (two real nodes, PostgreSQL and a private Redis) is not
applied twice: the op ids are read from storage at every join, also into a room that node had
loaded before the op was made."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from storage.engine import create_engine
from storage.models import EditHistory
from tests.e2e.test_cluster import (  # noqa: F401  (fixtures used by name)
    Cluster,
    cluster_database,
    json_client,
    private_redis,
    start_cluster,
)
from tests.e2e.test_op_resend_e2e import op_frame, reply
from tests.support.locks import write_lock
from tests.support.private_redis import PrivateRedis
from tests.support.waiting import eventually

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.postgres,
    pytest.mark.redis,
]


@pytest_asyncio.fixture(loop_scope="session")
async def two_nodes(
    cluster_database: str,  # noqa: F811
    private_redis: PrivateRedis,  # noqa: F811
    tmp_path: Path,
) -> AsyncIterator[Cluster]:
    async with AsyncExitStack() as stack:
        yield await start_cluster(stack, cluster_database, private_redis, tmp_path, 2)


async def rows_with_op_id(cluster: Cluster, session_id: str, op_id: str) -> int:
    engine = create_engine(cluster.database_url)
    try:
        async with engine.connect() as conn:
            count = await conn.scalar(
                select(func.count(EditHistory.id)).where(
                    EditHistory.session_id == session_id, EditHistory.client_op_id == op_id
                )
            )
    finally:
        await engine.dispose()
    return int(count or 0)


async def test_an_op_resent_to_the_other_node_lands_once(two_nodes: Cluster) -> None:
    a_node, b_node = two_nodes.nodes
    ana, ben, _ = two_nodes.others
    session = await two_nodes.session("base")
    async with (
        json_client(b_node, session, ben) as watcher,
        json_client(b_node, session, ana) as ana_other_tab,  # ana's ids loaded on B already
    ):
        on_a = await json_client(a_node, session, ana).connect()
        await on_a.send(op_frame("m1", "ana-1", on_a.rev, "A"))
        assert (await reply(on_a, "m1"))["type"] == "ack"
        await on_a.drop()
        await watcher.wait_text("Abase")

        on_b = await json_client(b_node, session, ana).connect()
        try:
            assert on_b.welcome is not None
            assert on_b.welcome["landed_op_ids"] == ["ana-1"]
            await on_b.send(op_frame("m1", "ana-1", 0, "A"))
            resent = await reply(on_b, "m1")
            assert resent["type"] == "ack" and resent["duplicate"] is True
            await on_b.send(op_frame("m2", "ana-2", on_b.rev, "B"))
            assert (await reply(on_b, "m2")).get("duplicate") is None
            await watcher.wait_text("BAbase")
            await ana_other_tab.wait_text("BAbase")
        finally:
            await on_b.close()

    async def content_settled() -> bool:
        return await two_nodes.content_on(a_node, session["id"]) == "BAbase"

    await eventually(content_settled, timeout=15)
    assert await rows_with_op_id(two_nodes, session["id"], "ana-1") == 1
    assert await rows_with_op_id(two_nodes, session["id"], "ana-2") == 1


async def test_an_op_resent_to_another_node_before_it_is_stored_is_not_applied_again(
    two_nodes: Cluster,
) -> None:
    """While node A's history commit is held up, node B knows the op from A's broadcast: it is
    listed as landed and a resend is refused (``op_unconfirmed``), not applied; once stored,
    a resend to B gets its duplicate ack."""
    a_node, b_node = two_nodes.nodes
    ana, ben, _ = two_nodes.others
    session = await two_nodes.session("base")
    async with json_client(b_node, session, ben) as watcher:
        on_a = await json_client(a_node, session, ana).connect()
        async with write_lock(two_nodes.database_url):
            await on_a.send(op_frame("m1", "ana-slow", on_a.rev, "S"))
            await watcher.wait_text("Sbase")  # fanned out through Redis, not yet stored
            on_b = await json_client(b_node, session, ana).connect()
            try:
                assert on_b.welcome is not None
                assert on_b.welcome["landed_op_ids"] == ["ana-slow"]
                assert on_b.welcome["content"] == "Sbase"
                await on_b.send(op_frame("m1", "ana-slow", on_b.rev, "S"))
                refused = await reply(on_b, "m1")
                assert refused["type"] == "error" and refused["code"] == "op_unconfirmed"
            finally:
                await on_b.drop()
            assert not any(m.get("type") == "ack" for m in on_a.messages)
        assert (await reply(on_a, "m1"))["type"] == "ack"  # stored now
        await on_a.drop()
        again = await json_client(b_node, session, ana).connect()
        try:
            await again.send(op_frame("m1", "ana-slow", again.rev, "S"))
            assert (await reply(again, "m1"))["duplicate"] is True
            assert again.text == "Sbase" and watcher.text == "Sbase"
        finally:
            await again.close()
    assert await rows_with_op_id(two_nodes, session["id"], "ana-slow") == 1
