"""Idempotent JSON ops in-process against a real database: an op resent with its ``op_id`` is
never applied twice — while it is being stored, once stored, and after the room was unloaded
and loaded again — and bad op ids are refused with a named error."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from server.hub.connection import ClientConnection
from server.hub.json_protocol import handle_json_frame, welcome_message
from server.hub.registry import Hub
from server.hub.room import Room
from storage.models import EditHistory
from tests.support.accounts import create_accounts
from tests.support.hubs import hub_with_session
from tests.support.locks import write_lock
from tests.support.transports import RecordingTransport, recording_json_connection
from tests.support.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")

OPS_PER_USER = 3
MAX_ID_CHARS = 16


@dataclass
class Setup:
    hub: Hub
    session_id: str
    user_id: str
    database_url: str

    async def join(self, user_id: str | None = None) -> tuple[Room, ClientConnection]:
        """Acquire the room and add a JSON connection of the user, as the endpoint does."""
        user = user_id or self.user_id
        room = await self.hub.acquire(self.session_id)
        await self.hub.refresh_op_ids(room, user)
        conn = recording_json_connection(user)
        room.add(conn)
        return room, conn

    def leave(self, room: Room, conn: ClientConnection) -> None:
        room.remove(conn)
        self.hub.release(room)

    async def stored_op_ids(self) -> list[str | None]:
        async with self.hub._sessions() as db:
            rows = await db.scalars(
                select(EditHistory.client_op_id)
                .where(EditHistory.session_id == self.session_id)
                .order_by(EditHistory.id)
            )
            return list(rows)


@pytest_asyncio.fixture(loop_scope="session")
async def setup(migrated_database_url: str) -> AsyncIterator[Setup]:
    async with hub_with_session(
        migrated_database_url,
        name="resend",
        op_ids_per_user=OPS_PER_USER,
        op_id_max_chars=MAX_ID_CHARS,
    ) as seeded:
        yield Setup(seeded.hub, seeded.session_id, seeded.owner.user_id, migrated_database_url)


def replies(conn: ClientConnection) -> list[dict[str, Any]]:
    transport = conn.direct
    assert isinstance(transport, RecordingTransport)
    return [json.loads(w) for w in transport.written if isinstance(w, str)]


async def reply_to(conn: ClientConnection, msg_id: str) -> dict[str, Any]:
    """The ack or error the connection was sent for message ``msg_id`` (waiting for it)."""

    async def arrived() -> bool:
        return any(m.get("id") == msg_id for m in replies(conn))

    await eventually(arrived, timeout=10)
    (reply,) = [m for m in replies(conn) if m.get("id") == msg_id]
    return reply


def send_op(
    room: Room, conn: ClientConnection, msg_id: str, op_id: Any, rev: int = 0, text: str = "!"
) -> None:
    frame = {
        "type": "op",
        "id": msg_id,
        "op_id": op_id,
        "rev": rev,
        "op": {"type": "insert", "position": 0, "content": text},
    }
    handle_json_frame(room, conn, json.dumps(frame))


async def test_a_resent_op_is_acked_once_stored_and_never_applied_twice(setup: Setup) -> None:
    room, conn = await setup.join()
    try:
        async with write_lock(setup.database_url):
            send_op(room, conn, "m1", "op-a")
            # Resent before the first is even stored (e.g. by a second tab after a reconnect).
            send_op(room, conn, "m2", "op-a")
            assert room.text == "!hello"
        first, second = await reply_to(conn, "m1"), await reply_to(conn, "m2")
        assert first["type"] == "ack" and first["op_id"] == "op-a" and first["op"] is not None
        assert second == {
            "type": "ack",
            "id": "m2",
            "op_id": "op-a",
            "rev": room.rev,
            "op": None,
            "duplicate": True,
        }
        send_op(room, conn, "m3", "op-a", rev=room.rev)  # and once more, long after
        assert (await reply_to(conn, "m3"))["duplicate"] is True
        assert room.text == "!hello"
        assert await setup.stored_op_ids() == ["op-a"]
    finally:
        setup.leave(room, conn)


async def test_an_op_id_reused_for_another_op_is_refused(setup: Setup) -> None:
    room, conn = await setup.join()
    try:
        send_op(room, conn, "m1", "op-b")
        await reply_to(conn, "m1")
        send_op(room, conn, "m2", "op-b", rev=room.rev, text="?")
        error = await reply_to(conn, "m2")
        assert error["type"] == "error" and error["code"] == "op_id_reused"
        assert error["field"] == "op_id" and "op-b" in error["message"]
        assert room.text == "!hello"
    finally:
        setup.leave(room, conn)


async def test_op_ids_are_per_user(setup: Setup) -> None:
    (other,) = await create_accounts(setup.database_url, ["Other"])
    room, mine = await setup.join()
    try:
        send_op(room, mine, "m1", "shared-id")
        await reply_to(mine, "m1")
        theirs = recording_json_connection(other.user_id)
        room.add(theirs)
        send_op(room, theirs, "t1", "shared-id", rev=room.rev)
        assert (await reply_to(theirs, "t1")).get("duplicate") is None
        assert room.text == "!!hello"
        room.remove(theirs)
    finally:
        setup.leave(room, mine)


@pytest.mark.parametrize(
    ("op_id", "reason"),
    [
        (7, "op_id must be a string"),
        (True, "op_id must be a string"),
        (["a"], "op_id must be a string"),
        ("", "op_id must not be empty"),
        ("x" * (MAX_ID_CHARS + 1), f"op_id is longer than {MAX_ID_CHARS} characters"),
        ("a\nb", "op_id must not contain control characters"),
    ],
)
async def test_bad_op_ids_are_refused_and_change_nothing(
    setup: Setup, op_id: Any, reason: str
) -> None:
    room, conn = await setup.join()
    try:
        send_op(room, conn, "bad", op_id)
        assert await reply_to(conn, "bad") == {
            "type": "error",
            "code": "invalid_op_id",
            "message": reason,
            "id": "bad",
            "field": "op_id",
        }
        assert room.text == "hello" and room.rev == 0
        send_op(room, conn, "longest", "x" * MAX_ID_CHARS)  # the edge itself is accepted
        assert (await reply_to(conn, "longest"))["type"] == "ack"
    finally:
        setup.leave(room, conn)


async def test_dedupe_survives_unloading_and_the_welcome_lists_landed_ids(setup: Setup) -> None:
    room, conn = await setup.join()
    for i in range(OPS_PER_USER + 1):
        send_op(room, conn, f"m{i}", f"op-{i}", rev=room.rev)
        await reply_to(conn, f"m{i}")
    send_op(room, conn, "plain", None, rev=room.rev)  # an op without an id is stored without one
    await reply_to(conn, "plain")
    setup.leave(room, conn)

    async def unloaded() -> bool:
        return setup.session_id not in setup.hub.rooms

    await eventually(unloaded, timeout=10)
    room, conn = await setup.join()
    try:
        assert room is not None and room.rev == 0  # a fresh load: revisions start again
        welcome = welcome_message(room, conn)
        # The last OPS_PER_USER ids, oldest first; the first one is forgotten (bounded memory).
        assert welcome["landed_op_ids"] == ["op-1", "op-2", "op-3"]
        text = room.text
        send_op(room, conn, "again", "op-3", rev=4)  # a stale rev from the old incarnation
        assert (await reply_to(conn, "again"))["duplicate"] is True
        assert room.text == text
        assert await setup.stored_op_ids() == ["op-0", "op-1", "op-2", "op-3", None]
    finally:
        setup.leave(room, conn)
