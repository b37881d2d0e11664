"""Resending JSON ops with their ``op_id`` against a real server process: after an abrupt
reconnect and after a restart the welcome says which ops landed, and a resend is never applied
twice."""

from __future__ import annotations

import pytest

from tests.support.accounts import Account
from tests.support.api import create_session
from tests.support.json_client import JsonClient, Message
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")


def op_frame(msg_id: str, op_id: str, rev: int, content: str) -> Message:
    return {
        "type": "op",
        "id": msg_id,
        "op_id": op_id,
        "rev": rev,
        "op": {"type": "insert", "position": 0, "content": content},
    }


async def reply(client: JsonClient, msg_id: str) -> Message:
    return await client.wait_for(
        lambda m: m.get("id") == msg_id and m.get("type") in {"ack", "error"}
    )


async def test_an_op_resent_after_a_reconnect_and_a_restart_lands_once(
    own_server: ServerProcess, team: list[Account]
) -> None:
    alice = team[0]
    session = await create_session(own_server, alice, "doc")
    token = session["share_token"]
    first = await JsonClient(own_server.ws_base, token, alice.token).connect()
    await first.send(op_frame("m1", "alice-1", 0, "A"))
    assert (await reply(first, "m1"))["type"] == "ack"
    await first.drop()  # as if the ack had been lost with the network

    second = await JsonClient(own_server.ws_base, token, alice.token).connect()
    assert second.welcome is not None
    assert second.welcome["landed_op_ids"] == ["alice-1"]
    assert second.welcome["content"] == "Adoc"
    await second.send(op_frame("m1", "alice-1", 0, "A"))  # resent blindly, same frame
    resent = await reply(second, "m1")
    assert resent["duplicate"] is True and resent["op"] is None
    assert second.text == "Adoc"
    await second.drop()

    await own_server.stop()
    await own_server.start()
    third = await JsonClient(own_server.ws_base, token, alice.token).connect()
    try:
        assert third.welcome is not None
        assert third.welcome["landed_op_ids"] == ["alice-1"]
        await third.send(op_frame("m1", "alice-1", 0, "A"))
        assert (await reply(third, "m1"))["duplicate"] is True
        await third.send(op_frame("m2", "alice-1", third.rev, "B"))
        assert (await reply(third, "m2"))["code"] == "op_id_reused"
        assert third.text == "Adoc"
    finally:
        await third.close()


async def test_a_client_that_drops_mid_op_can_always_resend(
    server: ServerProcess, team: list[Account]
) -> None:
    """Whether or not the op reached the server before the drop, following the welcome gives
    exactly one copy of it."""
    alice = team[0]
    session = await create_session(server, alice, "doc")
    token = session["share_token"]
    first = await JsonClient(server.ws_base, token, alice.token).connect()
    await first.send(op_frame("m1", "drop-1", 0, "X"))
    await first.drop()  # no wait for the ack

    again = await JsonClient(server.ws_base, token, alice.token).connect()
    try:
        assert again.welcome is not None
        landed = "drop-1" in again.welcome["landed_op_ids"]
        # A client resends an op that has not landed against the welcome's rev; one that has
        # may be resent too (the reply is then the duplicate ack).
        await again.send(op_frame("m1", "drop-1", again.rev, "X"))
        answer = await reply(again, "m1")
        assert answer["type"] == "ack" and bool(answer.get("duplicate")) is landed
        assert again.text == "Xdoc"
    finally:
        await again.close()
