"""JSON-protocol collaboration against a real server process, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.accounts import Account
from tests.support.api import call, create_session, grant
from tests.support.json_client import JsonClient
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_welcome_carries_content_rev_role_and_members(
    server: ServerProcess, team: list[Account]
) -> None:
    alice = team[0]
    session = await create_session(server, alice, "Hello")
    async with JsonClient(server.ws_base, session["share_token"], alice.token) as client:
        welcome = client.welcome
        assert welcome is not None
        assert welcome["content"] == "Hello"
        assert welcome["rev"] == 0
        assert welcome["role"] == "OWNER"
        assert welcome["session"]["id"] == session["id"]
        assert [m["user_id"] for m in welcome["members"]] == [alice.user_id]


async def test_the_roster_follows_members_added_and_removed_while_the_room_is_open(
    server: ServerProcess, team: list[Account]
) -> None:
    alice, bob, carol = team
    session = await create_session(server, alice, "Hello")
    async with JsonClient(server.ws_base, session["share_token"], alice.token):
        # The room is loaded (and its roster read); members change over REST meanwhile.
        await grant(server, alice, session["id"], bob, "VIEWER")
        await grant(server, alice, session["id"], carol)
        async with JsonClient(server.ws_base, session["share_token"], carol.token) as c:
            assert c.welcome is not None
            members = {m["user_id"]: m for m in c.welcome["members"]}
            assert set(members) == {alice.user_id, bob.user_id, carol.user_id}
            assert members[bob.user_id]["role"] == "VIEWER"
            assert not members[bob.user_id]["online"] and members[alice.user_id]["online"]
        await grant(server, alice, session["id"], bob, "EDITOR")
        response = await call(
            server, alice, "DELETE", f"/api/sessions/{session['id']}/members/{carol.user_id}"
        )
        assert response.status_code in (200, 204), response.text
        async with JsonClient(server.ws_base, session["share_token"], bob.token) as b:
            assert b.welcome is not None
            members = {m["user_id"]: m for m in b.welcome["members"]}
            assert set(members) == {alice.user_id, bob.user_id}
            assert members[bob.user_id]["role"] == "EDITOR" == b.welcome["role"]


async def test_edits_fan_out_and_are_acked(server: ServerProcess, team: list[Account]) -> None:
    alice, bob, _ = team
    session = await create_session(server, alice, "Hello")
    await grant(server, alice, session["id"], bob)
    async with (
        JsonClient(server.ws_base, session["share_token"], alice.token) as a,
        JsonClient(server.ws_base, session["share_token"], bob.token) as b,
    ):
        ack = await a.insert(5, " world")
        assert ack["type"] == "ack" and ack["rev"] == 1
        op = await b.wait_for(lambda m: m.get("type") == "op")
        assert op["user_id"] == alice.user_id
        assert op["op"] == {"type": "insert", "position": 5, "content": " world", "origin": "user"}
        await b.wait_text("Hello world")
        reply = await b.op({"type": "replace", "position": 0, "length": 5, "content": "Howdy"})
        assert reply["type"] == "ack"
        await a.wait_text("Howdy world")
    read = await call(server, alice, "GET", f"/api/sessions/{session['id']}")
    assert read.json()["content"] == "Howdy world"


async def test_concurrent_ops_from_the_same_revision_converge_with_intent(
    server: ServerProcess, team: list[Account]
) -> None:
    alice, bob, _ = team
    session = await create_session(server, alice, "The cat sat.")
    await grant(server, alice, session["id"], bob)
    async with (
        JsonClient(server.ws_base, session["share_token"], alice.token) as a,
        JsonClient(server.ws_base, session["share_token"], bob.token) as b,
    ):
        # Both edit revision 0 without seeing each other's change.
        a_reply, b_reply = await asyncio.gather(
            a.op({"type": "insert", "position": 4, "content": "black "}, rev=0),
            b.op({"type": "replace", "position": 8, "length": 3, "content": "slept"}, rev=0),
        )
        assert a_reply["type"] == b_reply["type"] == "ack"
        expected = "The black cat slept."
        await a.wait_text(expected)
        await b.wait_text(expected)


async def test_utf16_positions_with_emoji_accents_and_arabic(
    server: ServerProcess, team: list[Account]
) -> None:
    alice, bob, _ = team
    session = await create_session(server, alice, "😀 café مرحبا")
    async with (
        JsonClient(server.ws_base, session["share_token"], alice.token) as a,
        JsonClient(server.ws_base, session["share_token"], bob.token) as b,
    ):
        # "😀" is two UTF-16 code units: position 2 is right after it.
        assert (await a.insert(2, "!"))["type"] == "ack"
        # "😀! café " is 9 units; the Arabic word starts there.
        assert (await a.op({"type": "insert", "position": 9, "content": "« "}))["type"] == "ack"
        assert (await a.op({"type": "delete", "position": 4, "length": 4}))["type"] == "ack"
        await b.wait_text("😀!  « مرحبا")
        # Splitting the emoji's surrogate pair is refused.
        reply = await a.op({"type": "insert", "position": 1, "content": "x"})
        assert reply["type"] == "error" and reply["code"] == "out_of_range"
    read = await call(server, alice, "GET", f"/api/sessions/{session['id']}")
    assert read.json()["content"] == "😀!  « مرحبا"


async def test_viewer_cannot_edit_but_sees_edits_and_presence(
    server: ServerProcess, team: list[Account]
) -> None:
    alice, bob, _ = team
    session = await create_session(server, alice, "abc")
    async with (
        JsonClient(server.ws_base, session["share_token"], alice.token) as a,
        JsonClient(server.ws_base, session["share_token"], bob.token) as viewer,
    ):
        assert viewer.welcome is not None and viewer.welcome["role"] == "VIEWER"
        refused = await viewer.insert(0, "x")
        assert refused["type"] == "error" and refused["code"] == "forbidden"
        await viewer.send({"type": "presence", "cursor": {"anchor": 1, "head": 2}})
        seen = await a.wait_for(
            lambda m: m.get("type") == "presence" and m.get("event") == "update"
        )
        assert seen["user_id"] == bob.user_id and seen["state"]["cursor"] == {
            "anchor": 1,
            "head": 2,
        }
        assert (await a.insert(3, "d"))["type"] == "ack"
        await viewer.wait_text("abcd")
        # Promotion applies to the open connection at once.
        await grant(server, alice, session["id"], bob)  # asserts 200
        await viewer.wait_for(lambda m: m.get("type") == "role" and m.get("role") == "EDITOR")
        assert (await viewer.insert(0, ">"))["type"] == "ack"
        await a.wait_text(">abcd")
    read = await call(server, alice, "GET", f"/api/sessions/{session['id']}")
    assert read.json()["content"] == ">abcd"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "malformed_json"),
        ("[1, 2]", "invalid_message"),
        ('{"type": "teleport"}', "unknown_type"),
        ('{"type": 7}', "invalid_message"),
        (
            '{"type": "op", "id": "x", "rev": "0", "op": {"type": "insert", "position": 0, "content": "a"}}',
            "invalid_op",
        ),
        (
            '{"type": "op", "id": "x", "rev": 0, "op": {"type": "insert", "position": "0", "content": "a"}}',
            "invalid_op",
        ),
        (
            '{"type": "op", "id": "x", "rev": 0, "op": {"type": "insert", "position": 99, "content": "a"}}',
            "out_of_range",
        ),
        (
            '{"type": "op", "id": "x", "rev": 0, "op": {"type": "delete", "position": 1, "length": 50}}',
            "out_of_range",
        ),
        (
            '{"type": "op", "id": "x", "rev": 0, "op": {"type": "delete", "position": -1, "length": 1}}',
            "invalid_op",
        ),
        (
            '{"type": "op", "id": "x", "rev": 0, "op": {"type": "insert", "position": true, "content": "a"}}',
            "invalid_op",
        ),
        (
            '{"type": "op", "id": "x", "rev": 0, "op": {"type": "explode", "position": 0}}',
            "invalid_op",
        ),
        ('{"type": "op", "id": "x", "rev": 0, "op": "insert"}', "invalid_op"),
        (
            '{"type": "op", "id": "x", "rev": 999, "op": {"type": "insert", "position": 0, "content": "a"}}',
            "invalid_rev",
        ),
        ('{"type": "presence", "cursor": {"anchor": 1, "head": 500}}', "invalid_presence"),
        ('{"type": "presence", "cursor": "here"}', "invalid_presence"),
    ],
)
async def test_bad_messages_get_an_error_and_change_nothing(
    server: ServerProcess, team: list[Account], frame: str, code: str
) -> None:
    alice, bob, _ = team
    session = await create_session(server, alice, "safe")
    async with (
        JsonClient(server.ws_base, session["share_token"], alice.token) as a,
        JsonClient(server.ws_base, session["share_token"], bob.token) as watcher,
    ):
        await a.send(frame)
        error = await a.wait_for(lambda m: m.get("type") == "error")
        assert error["code"] == code, error
        assert error["message"]
        # The connection still works and the document is untouched.
        await a.send({"type": "ping", "id": "p"})
        await a.wait_for(lambda m: m.get("type") == "pong")
        assert not [m for m in watcher.messages if m.get("type") == "op"]
    read = await call(server, alice, "GET", f"/api/sessions/{session['id']}")
    assert read.json()["content"] == "safe"


async def test_binary_frame_on_a_json_connection_is_refused(
    server: ServerProcess, team: list[Account]
) -> None:
    alice = team[0]
    session = await create_session(server, alice, "x")
    async with JsonClient(server.ws_base, session["share_token"], alice.token) as a:
        await a.send(b"\x00\x01\x02")
        error = await a.wait_for(lambda m: m.get("type") == "error")
        assert error["code"] == "unexpected_binary"


async def test_oversized_frame_closes_with_1009(server: ServerProcess, team: list[Account]) -> None:
    alice = team[0]
    session = await create_session(server, alice, "x")
    async with JsonClient(server.ws_base, session["share_token"], alice.token) as a:
        await a.send("x" * (1024 * 1024 + 1))
        code, _reason = await a.wait_closed()
        assert code == 1009
    read = await call(server, alice, "GET", f"/api/sessions/{session['id']}")
    assert read.json()["content"] == "x"


@pytest.mark.parametrize(
    ("token_kind", "share_kind", "code"),
    [
        ("none", "valid", 4401),
        ("garbage", "valid", 4401),
        ("valid", "unknown", 4404),
        ("outsider", "valid", 4403),
    ],
)
async def test_admission_close_codes(
    server: ServerProcess,
    team: list[Account],
    outsider: Account,
    token_kind: str,
    share_kind: str,
    code: int,
) -> None:
    alice = team[0]
    session = await create_session(server, alice)
    token = {"none": None, "garbage": "pst_nope", "valid": alice.token, "outsider": outsider.token}[
        token_kind
    ]
    share = session["share_token"] if share_kind == "valid" else "no-such-token"
    client = JsonClient(server.ws_base, share, token)
    await client.connect(wait_welcome=False)
    closed_code, reason = await client.wait_closed()
    assert closed_code == code
    assert reason
    assert not [m for m in client.messages if m.get("type") == "welcome"]


async def test_deactivate_closes_connections_and_refuses_joins(
    server: ServerProcess, team: list[Account]
) -> None:
    alice, bob, _ = team
    session = await create_session(server, alice, "bye")
    async with JsonClient(server.ws_base, session["share_token"], bob.token) as b:
        forbidden = await call(server, bob, "POST", f"/api/sessions/{session['id']}/deactivate")
        assert forbidden.status_code == 403
        done = await call(server, alice, "POST", f"/api/sessions/{session['id']}/deactivate")
        assert done.status_code == 200 and done.json()["is_active"] is False
        code, reason = await b.wait_closed()
        assert code == 4410 and reason
    late = JsonClient(server.ws_base, session["share_token"], bob.token)
    await late.connect(wait_welcome=False)
    assert (await late.wait_closed())[0] == 4410


async def test_rotating_the_share_token_stops_new_joins_with_the_old_one(
    server: ServerProcess, team: list[Account]
) -> None:
    alice, bob, _ = team
    session = await create_session(server, alice, "link")
    async with JsonClient(server.ws_base, session["share_token"], alice.token) as a:
        rotated = await call(server, alice, "POST", f"/api/sessions/{session['id']}/share-token")
        assert rotated.status_code == 200
        new_token = rotated.json()["share_token"]
        assert new_token != session["share_token"]
        old = JsonClient(server.ws_base, session["share_token"], bob.token)
        await old.connect(wait_welcome=False)
        assert (await old.wait_closed())[0] == 4404
        async with JsonClient(server.ws_base, new_token, bob.token) as b:
            assert b.welcome is not None and b.welcome["content"] == "link"
        # The connection made with the old link is unaffected.
        await a.send({"type": "ping"})
        await a.wait_for(lambda m: m.get("type") == "pong")


async def test_removing_a_member_closes_their_connection(
    server: ServerProcess, team: list[Account]
) -> None:
    alice, bob, _ = team
    session = await create_session(server, alice, "members")
    async with JsonClient(server.ws_base, session["share_token"], bob.token) as b:
        removed = await call(
            server, alice, "DELETE", f"/api/sessions/{session['id']}/members/{bob.user_id}"
        )
        assert removed.status_code == 204
        code, _ = await b.wait_closed()
        assert code == 4403
    members = await call(server, alice, "GET", f"/api/sessions/{session['id']}/members")
    assert [m["user_id"] for m in members.json()["items"]] == [alice.user_id]


async def test_rate_limit_errors_then_closes_with_1008(
    server: ServerProcess, team: list[Account]
) -> None:
    alice = team[0]
    session = await create_session(server, alice, "")
    async with JsonClient(server.ws_base, session["share_token"], alice.token) as a:
        for _ in range(1200):
            if a.closed.is_set():
                break
            try:
                await a.send({"type": "ping"})
            except ConnectionClosed:
                break
        await a.wait_for(lambda m: m.get("code") == "rate_limited")
        code, _ = await a.wait_closed()
        assert code == 1008
