"""Durability and lifecycle: acked ops survive SIGKILL, 50 clients join at once, idle unload."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest

from tests.support.accounts import Account, create_accounts
from tests.support.api import call, create_session, session_content
from tests.support.json_client import JsonClient
from tests.support.server_process import ServerProcess
from tests.support.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_every_acked_op_survives_sigkill(own_server: ServerProcess) -> None:
    (alice,) = await create_accounts(own_server.database_url, ["Alice"])
    session = await create_session(own_server, alice, "start")
    client = JsonClient(own_server.ws_base, session["share_token"], alice.token)
    await client.connect()
    acked = []
    for i in range(40):
        reply = await client.op(
            {"type": "insert", "position": client.utf16_length(), "content": f" {i}"}
        )
        assert reply["type"] == "ack"
        acked.append(f" {i}")
    expected = "start" + "".join(acked)
    assert client.text == expected
    # No graceful shutdown: whatever was acked must already be on disk.
    await own_server.kill()
    await client.wait_closed()
    await own_server.start()
    assert await session_content(own_server, alice, session["id"]) == expected
    async with JsonClient(own_server.ws_base, session["share_token"], alice.token) as again:
        assert again.welcome is not None and again.welcome["content"] == expected
        # The document keeps working after the restart.
        assert (await again.insert(0, ">"))["type"] == "ack"
    async with httpx.AsyncClient(base_url=own_server.base_url, headers=alice.headers) as http:
        history = await http.get(f"/api/sessions/{session['id']}/history", params={"limit": 200})
    assert history.json()["total"] == 41


async def test_fifty_clients_joining_at_once_all_join_and_sync(
    server: ServerProcess,
) -> None:
    accounts = await create_accounts(server.database_url, [f"U{i}" for i in range(50)])
    owner = accounts[0]
    session = await create_session(server, owner, "shared ✓")
    clients = [JsonClient(server.ws_base, session["share_token"], a.token) for a in accounts]
    await asyncio.gather(*(c.connect() for c in clients))
    try:
        assert all(c.welcome is not None and c.welcome["content"] == "shared ✓" for c in clients)
        reply = await clients[0].insert(0, "*")
        assert reply["type"] == "ack"
        await asyncio.gather(*(c.wait_text("*shared ✓") for c in clients))
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    async with httpx.AsyncClient(base_url=server.base_url, headers=owner.headers) as http:
        members = await http.get(f"/api/sessions/{session['id']}/members")
    assert len(members.json()["items"]) == 50


async def test_idle_document_is_flushed_and_unloaded(
    server: ServerProcess, team: list[Account]
) -> None:
    alice = team[0]
    session = await create_session(server, alice, "idle")
    async with JsonClient(server.ws_base, session["share_token"], alice.token) as client:
        await client.insert(4, "!")
        leaving_at = datetime.now(UTC).replace(tzinfo=None)
    async with httpx.AsyncClient(base_url=server.base_url, headers=alice.headers) as http:
        async with asyncio.timeout(10):
            while True:
                body = (await http.get(f"/api/sessions/{session['id']}")).json()
                if not body["live"]:
                    break
                await asyncio.sleep(0.1)
        assert body["content"] == "idle!"
        members = await http.get(f"/api/sessions/{session['id']}/members")
    (member,) = members.json()["items"]
    # Presence was written when the member left (debounced, but before the unload).
    assert datetime.fromisoformat(member["last_seen_at"].rstrip("Z")) >= leaving_at
    assert member["online"] is False


async def test_last_seen_at_stays_current_while_connected(
    server: ServerProcess, team: list[Account]
) -> None:
    alice, bob, _ = team
    session = await create_session(server, alice, "present")

    async def last_seen() -> datetime:
        response = await call(server, alice, "GET", f"/api/sessions/{session['id']}/members")
        (member,) = [m for m in response.json()["items"] if m["user_id"] == bob.user_id]
        return datetime.fromisoformat(member["last_seen_at"].rstrip("Z"))

    async with JsonClient(server.ws_base, session["share_token"], bob.token):
        connected_at = datetime.now(UTC).replace(tzinfo=None)

        async def refreshed() -> bool:
            # Written again by the debounced tracker while Bob stays connected (0.2 s here).
            return await last_seen() > connected_at

        await eventually(refreshed, timeout=10)
