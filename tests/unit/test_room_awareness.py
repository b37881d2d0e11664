"""Awareness bookkeeping of a room: owners, stale clocks, renewal and expiry of peers' states."""

from __future__ import annotations

import pytest

from crdt import PromptDocument
from crdt.codec import AwarenessEntry
from server.hub import awareness as awareness_module
from server.hub import room as room_module
from server.hub.connection import ClientConnection
from server.hub.room import Room
from tests.support.transports import RecordingTransport, recording_json_connection


class NoWriter:
    """The room's history writer is not involved in awareness."""

    def submit(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("no edits expected")

    def log_update(self, *args: object) -> None:
        raise AssertionError("no edits expected")


def json_connection(user: str) -> ClientConnection:
    return recording_json_connection(user)


def written(conn: ClientConnection) -> list[bytes | str]:
    assert isinstance(conn.direct, RecordingTransport)
    return conn.direct.written


def make_room() -> Room:
    return Room(
        session_id="s",
        tenant_id="t",
        name="n",
        description=None,
        document=PromptDocument.empty(),
        writer=NoWriter(),  # type: ignore[arg-type]
    )


def test_a_client_cannot_overwrite_another_clients_state_or_go_back_in_time() -> None:
    room = make_room()
    ana, ben = json_connection("ana"), json_connection("ben")
    room.connections |= {ana, ben}
    assert room.update_awareness(ana, "ana", [AwarenessEntry(7, 2, {"cursor": 1})])
    assert not room.update_awareness(ben, "ben", [AwarenessEntry(7, 9, {"cursor": 5})])
    assert not room.update_awareness(ana, "ana", [AwarenessEntry(7, 1, {"cursor": 0})])
    assert room.awareness.states[7].state == {"cursor": 1}
    # Ben was told about Ana's state; Ana was not echoed her own.
    assert len(written(ben)) == 1 and written(ana) == []


def test_silent_peer_states_expire_and_json_states_are_renewed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    room = make_room()
    ana = json_connection("ana")
    room.connections.add(ana)
    ana.awareness_clock = 1
    room.update_awareness(ana, "ana", [AwarenessEntry(ana.awareness_client_id, 1, {"c": 1})])
    room.update_awareness(None, "remote-user", [AwarenessEntry(99, 4, {"c": 2})])
    now = room_module.time.monotonic()
    # Time passes beyond the timeout without a word from the other node (a plain test
    # function: no event loop is running while the clock is patched).
    monkeypatch.setattr(
        room_module.time,
        "monotonic",
        lambda: now + awareness_module.REMOTE_AWARENESS_TIMEOUT_SECONDS + 1,
    )
    room.renew_awareness()
    assert 99 not in room.awareness.states  # the peer's client went silent: expired
    mine = room.awareness.states[ana.awareness_client_id]
    assert mine.clock == 2 and mine.state == {"c": 1}  # renewed with a higher clock
