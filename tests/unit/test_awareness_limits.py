"""The awareness caps (issue 9): decoding within limits, ids owned per connection, room size,
and what other clients are sent. Rooms and connections are real; only the socket is recorded."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from crdt import PromptDocument, ProtocolError
from crdt.codec import (
    AwarenessEntry,
    decode_awareness,
    decode_message,
    encode_awareness,
    encode_awareness_message,
    write_var_string,
    write_var_uint,
)
from server.hub.awareness import (
    DEFAULT_LIMITS,
    AwarenessLimits,
    decode_awareness_frame,
    nested_within,
)
from server.hub.closing import CloseCode, CloseConnection
from server.hub.connection import ClientConnection, WireProtocol
from server.hub.json_protocol import handle_json_frame
from server.hub.room import Room
from server.hub.yjs_protocol import handle_binary_frame
from server.settings import Settings
from tests.support.transports import RecordingTransport, recording_json_connection

LIMITS = AwarenessLimits(
    ids_per_connection=2,
    entries_per_message=5,
    states_per_room=4,
    state_bytes=64,
    state_depth=3,
)


class NoWriter:
    """Awareness never reaches the history writer."""

    def submit(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("no edits expected")

    def log_update(self, *args: object) -> None:
        raise AssertionError("no edits expected")


def make_room(limits: AwarenessLimits = LIMITS) -> Room:
    return Room(
        session_id="s",
        tenant_id="t",
        name="n",
        description=None,
        document=PromptDocument.from_text("hello"),
        writer=NoWriter(),  # type: ignore[arg-type]
        awareness_limits=limits,
    )


def join(room: Room, user: str, protocol: WireProtocol) -> ClientConnection:
    conn = recording_json_connection(user, "VIEWER")
    conn.protocol = protocol
    room.add(conn)
    sent(conn).clear()  # the join notices
    return conn


def sent(conn: ClientConnection) -> list[bytes | str]:
    assert isinstance(conn.direct, RecordingTransport)
    return conn.direct.written


def frame(*entries: tuple[int, int, Any]) -> bytes:
    return encode_awareness_message(encode_awareness([AwarenessEntry(*e) for e in entries]))


def awareness_sent(conn: ClientConnection) -> list[AwarenessEntry]:
    """Every awareness entry a Yjs connection was sent."""
    entries: list[AwarenessEntry] = []
    for data in sent(conn):
        assert isinstance(data, bytes)
        message = decode_message(data)
        entries += decode_awareness(message.payload)  # type: ignore[union-attr]
    return entries


def presence_sent(conn: ClientConnection) -> list[dict[str, Any]]:
    messages = [json.loads(m) for m in sent(conn) if isinstance(m, str)]
    return [m for m in messages if m["type"] == "presence"]


# -- decoding --------------------------------------------------------------------------------


def test_the_default_limits_are_the_settings_defaults() -> None:
    assert AwarenessLimits.from_settings(Settings()) == DEFAULT_LIMITS
    assert DEFAULT_LIMITS.ids_per_connection == 4


def test_a_message_at_the_entry_cap_is_decoded_and_one_over_it_is_dropped_unread() -> None:
    at_cap = frame(*[(i, 1, {}) for i in range(1, 6)])
    assert len(decode_awareness_frame(at_cap, LIMITS).entries) == 5
    # Six declared entries followed by bytes that are no entries at all: never read.
    over = encode_awareness_message(write_var_uint(6) + b"\xff" * 40)
    assert decode_awareness_frame(over, LIMITS).entries == []
    # The flood: 130,000 entries in one ~1 MB frame.
    flood = encode_awareness_message(
        write_var_uint(130_000)
        + b"".join(write_var_uint(i) + b"\x01\x02{}" for i in range(130_000))
    )
    assert decode_awareness_frame(flood, DEFAULT_LIMITS).entries == []


def raw_entry(client_id: int, clock: int, state: str) -> bytes:
    return write_var_uint(client_id) + write_var_uint(clock) + write_var_string(state)


def test_a_state_at_the_size_limit_is_kept_and_a_larger_one_is_skipped_unparsed() -> None:
    fits = '{"n":"' + "x" * (64 - 8) + '"}'
    assert len(fits) == 64
    # One byte over, and not even JSON: it is skipped without being parsed.
    payload = write_var_uint(2) + raw_entry(1, 1, fits) + raw_entry(2, 1, "{" * 65)
    decoded = decode_awareness_frame(encode_awareness_message(payload), LIMITS)
    assert [e.client_id for e in decoded.entries] == [1]
    assert decoded.refused is not None and "65 bytes" in decoded.refused


@pytest.mark.parametrize(
    ("state", "kept"),
    [
        ('{"a":{"b":[1]}}', True),  # three levels: the limit
        ('{"a":{"b":[[1]]}}', False),
        ("{" + '"a":{' * 20 + "}" * 20 + "}", False),
    ],
)
def test_states_nested_deeper_than_the_limit_are_skipped(state: str, kept: bool) -> None:
    limits = AwarenessLimits(2, 5, 4, 10_000, 3)
    raw = write_var_uint(1) + raw_entry(7, 1, state)
    decoded = decode_awareness_frame(encode_awareness_message(raw), limits)
    assert bool(decoded.entries) is kept
    assert (decoded.refused is None) is kept


def test_a_state_too_deep_for_the_json_parser_is_skipped_not_raised() -> None:
    deep = '{"a":' * 50_000 + "1" + "}" * 50_000
    limits = AwarenessLimits(2, 5, 4, 1_000_000, 16)
    raw = write_var_uint(1) + raw_entry(7, 1, deep)
    decoded = decode_awareness_frame(encode_awareness_message(raw), limits)
    assert decoded.entries == [] and decoded.refused is not None


def test_nested_within_walks_without_recursion() -> None:
    value: Any = 1
    for _ in range(100_000):
        value = [value]
    assert not nested_within({"a": value}, 50)
    assert nested_within({"a": [1, {"b": 2}], "c": {}}, 3)
    assert not nested_within({"a": [1, {"b": []}]}, 3)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\x01\x05\x01\x02", "declares 5 bytes"),  # the payload length says 5, 2 follow
        (b"\x01\x00", "truncated"),  # no entry count
        (b"\x01", "truncated"),  # no payload length
        (encode_awareness_message(b"\x01\x01\x01\x02{}") + b"!", "declares"),  # after it
        (encode_awareness_message(b"\x01\x01\x01\x02{}!"), "trailing"),  # inside it
        (encode_awareness_message(b"\x02\x01\x01\x02{}"), "too short"),  # two declared, one given
        (encode_awareness_message(b"\x01\x01\x01\x02[]"), "not an object"),
        (encode_awareness_message(b"\x01\x01\x01\x03NaN"), "not JSON"),
        (encode_awareness_message(b"\x01\x01\x01\x02{x"), "not JSON"),
        (encode_awareness_message(b"\x01\x01\x01\x02\xff\xfe"), "not JSON"),
        (encode_awareness_message(b"\x01" + b"\xff" * 9 + b"\x01\x02{}"), "53 bits"),
        (b"\x00\x00\x00", "not an awareness message"),
    ],
)
def test_malformed_awareness_frames_raise(data: bytes, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        decode_awareness_frame(data, LIMITS)


# -- ownership and caps ----------------------------------------------------------------------


def test_a_connection_sets_at_most_its_cap_of_ids_and_is_warned_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    room = make_room()
    bob, watcher = join(room, "bob", WireProtocol.YJS), join(room, "watcher", WireProtocol.YJS)
    with caplog.at_level(logging.WARNING, logger="server.hub.awareness"):
        handle_binary_frame(room, bob, frame((1, 1, {"n": 1}), (2, 1, {"n": 2})))
        handle_binary_frame(room, bob, frame((3, 1, {"n": 3}), (4, 1, {"n": 4})))
    assert set(room.awareness.states) == {1, 2}
    assert [e.client_id for e in awareness_sent(watcher)] == [1, 2]
    assert len([r for r in caplog.records if "more than 2 client ids" in r.message]) == 1
    # Its own ids stay its own: updates and removals of them are accepted.
    handle_binary_frame(room, bob, frame((1, 2, {"n": 10}), (2, 2, None)))
    assert {c: s.state for c, s in room.awareness.states.items()} == {1: {"n": 10}}


def test_one_connection_can_neither_overwrite_nor_remove_nor_steal_anothers_ids() -> None:
    room = make_room()
    alice, bob = join(room, "alice", WireProtocol.YJS), join(room, "bob", WireProtocol.YJS)
    observer = join(room, "carol", WireProtocol.JSON)
    handle_binary_frame(room, alice, frame((7, 1, {"who": "alice"})))
    handle_binary_frame(room, alice, frame((8, 1, {"who": "alice-2"})))
    handle_binary_frame(room, alice, frame((8, 2, None)))  # Alice's state is gone, her id is not
    sent(observer).clear()
    handle_binary_frame(
        room,
        bob,
        frame(
            (7, 99, None),
            (7, 100, {"who": "bob"}),
            (8, 5, {"who": "bob"}),
            (observer.awareness_client_id, 1, {"who": "bob"}),
        ),
    )
    assert {c: s.state for c, s in room.awareness.states.items()} == {7: {"who": "alice"}}
    assert presence_sent(observer) == [] and sent(alice) == []
    # Bob's own slots were not used up by what he was refused.
    handle_binary_frame(room, bob, frame((20, 1, {"who": "bob"}), (21, 1, {"who": "bob"})))
    assert {20, 21} <= set(room.awareness.states)


def test_a_stock_clients_echo_of_others_states_changes_nothing_and_keeps_it_open() -> None:
    room = make_room()
    alice, bob = join(room, "alice", WireProtocol.YJS), join(room, "bob", WireProtocol.YJS)
    handle_binary_frame(room, alice, frame((7, 3, {"who": "alice"})))
    echo = sent(bob)[-1]
    assert isinstance(echo, bytes)
    handle_binary_frame(room, bob, echo)  # y-websocket re-broadcasts what it applied
    handle_binary_frame(room, bob, frame((7, 4, None)))  # and its timeouts of others' states
    assert room.awareness.states[7].state == {"who": "alice"}
    assert not bob.is_closing and sent(alice) == []


def test_the_room_holds_at_most_its_cap_of_states() -> None:
    room = make_room()
    conns = [join(room, f"u{i}", WireProtocol.YJS) for i in range(3)]
    handle_binary_frame(room, conns[0], frame((1, 1, {}), (2, 1, {})))
    handle_binary_frame(room, conns[1], frame((3, 1, {}), (4, 1, {})))  # the cap: 4
    handle_binary_frame(room, conns[2], frame((5, 1, {})))
    assert set(room.awareness.states) == {1, 2, 3, 4}
    room.update_awareness(None, "remote", [AwarenessEntry(6, 1, {})])
    assert 6 not in room.awareness.states
    # Updates of states already held still go through; a freed place can be taken.
    handle_binary_frame(room, conns[0], frame((1, 2, {"again": True})))
    assert room.awareness.states[1].state == {"again": True}
    room.remove(conns[1])
    handle_binary_frame(room, conns[2], frame((5, 2, {})))
    assert set(room.awareness.states) == {1, 2, 5}


def test_leaving_removes_the_connections_states_and_frees_its_ids() -> None:
    room = make_room()
    alice, bob = join(room, "alice", WireProtocol.YJS), join(room, "bob", WireProtocol.YJS)
    observer = join(room, "carol", WireProtocol.JSON)
    handle_binary_frame(room, alice, frame((7, 1, {"who": "alice"})))
    sent(bob).clear()
    room.remove(alice)
    assert room.awareness.states == {}
    assert awareness_sent(bob) == [AwarenessEntry(7, 2, None)]
    assert [m["event"] for m in presence_sent(observer)] == ["update", "remove", "leave"]
    handle_binary_frame(room, bob, frame((7, 1, {"who": "bob"})))
    assert room.awareness.states[7].owner is bob


def test_local_and_remote_ids_never_touch_each_other() -> None:
    room = make_room()
    alice = join(room, "alice", WireProtocol.YJS)
    handle_binary_frame(room, alice, frame((7, 1, {"who": "alice"})))
    room.update_awareness(None, "remote", [AwarenessEntry(7, 50, None), AwarenessEntry(9, 1, {})])
    handle_binary_frame(room, alice, frame((9, 5, None)))
    assert {c: s.owner for c, s in room.awareness.states.items()} == {7: alice, 9: None}


def test_a_json_clients_id_is_its_own_before_it_sends_any_presence() -> None:
    room = make_room()
    ana = join(room, "ana", WireProtocol.JSON)
    bob = join(room, "bob", WireProtocol.YJS)
    handle_binary_frame(room, bob, frame((ana.awareness_client_id, 1, {"fake": True})))
    assert room.awareness.states == {}
    handle_json_frame(room, ana, '{"type":"presence","cursor":{"anchor":1,"head":2}}')
    assert room.awareness.states[ana.awareness_client_id].owner is ana


def test_fan_out_of_an_accepted_message_is_one_frame_per_yjs_client() -> None:
    room = make_room(DEFAULT_LIMITS)
    bob = join(room, "bob", WireProtocol.YJS)
    watchers = [join(room, f"w{i}", WireProtocol.YJS) for i in range(3)]
    observer = join(room, "carol", WireProtocol.JSON)
    # A message at the entry cap: a hundred fresh ids, of which Bob may take four.
    handle_binary_frame(room, bob, frame(*[(5000 + i, 1, {"i": i}) for i in range(100)]))
    taken = [AwarenessEntry(5000 + i, 1, {"i": i}) for i in range(4)]
    for watcher in watchers:
        assert len(sent(watcher)) == 1
        assert awareness_sent(watcher) == taken
    assert [m["client_id"] for m in presence_sent(observer)] == [5000, 5001, 5002, 5003]
    assert set(room.awareness.states) == {5000, 5001, 5002, 5003}


def test_a_malformed_awareness_frame_closes_only_its_connection_1002() -> None:
    room = make_room()
    bob = join(room, "bob", WireProtocol.YJS)
    with pytest.raises(CloseConnection) as closed:
        handle_binary_frame(room, bob, b"\x01\x05\x01\x02")
    assert closed.value.code == CloseCode.PROTOCOL_ERROR


# -- the JSON protocol -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["[" * 10_000 + "]" * 10_000, '{"type":"presence","cursor":' + "{" * 5_000],
)
def test_deeply_nested_json_earns_an_error_frame(raw: str) -> None:
    room = make_room()
    ana = join(room, "ana", WireProtocol.JSON)
    handle_json_frame(room, ana, raw)
    (reply,) = [json.loads(m) for m in sent(ana) if isinstance(m, str)]
    assert reply["type"] == "error" and reply["code"] == "malformed_json"
    assert not ana.is_closing


def test_repeating_the_same_json_presence_is_not_fanned_out_again() -> None:
    room = make_room()
    ana, ben = join(room, "ana", WireProtocol.JSON), join(room, "ben", WireProtocol.JSON)
    presence = '{"type":"presence","cursor":{"anchor":1,"head":1}}'
    for _ in range(50):
        handle_json_frame(room, ana, presence)
    handle_json_frame(room, ana, '{"type":"presence","cursor":{"anchor":2,"head":2}}')
    cursors = [m["state"]["cursor"]["anchor"] for m in presence_sent(ben)]
    assert cursors == [1, 2]


def test_queries_are_answered_from_one_encoding_until_the_states_change() -> None:
    room = make_room()
    bob = join(room, "bob", WireProtocol.YJS)
    handle_binary_frame(room, bob, frame((1, 1, {"n": 1})))
    first = room.awareness.snapshot()
    for _ in range(3):
        handle_binary_frame(room, bob, b"\x03")
    assert room.awareness.snapshot() is first
    assert sent(bob)[-3:] == [first.data] * 3
    handle_binary_frame(room, bob, frame((1, 2, {"n": 2})))
    handle_binary_frame(room, bob, b"\x03")
    assert awareness_sent(bob)[-1] == AwarenessEntry(1, 2, {"n": 2})
    room.remove(bob)
    handle_binary_frame(room, join(room, "ana", WireProtocol.YJS), b"\x03")
    assert room.awareness.snapshot().data == encode_awareness_message(encode_awareness([]))


def test_a_non_canonical_message_type_takes_the_same_bounded_path() -> None:
    room = make_room()
    bob, watcher = join(room, "bob", WireProtocol.YJS), join(room, "watcher", WireProtocol.YJS)
    # lib0 reads `81 00` as 1 too: such a frame must not reach the unbounded decoder.
    flood = b"\x81\x00" + encode_awareness_message(write_var_uint(6) + b"\xff" * 40)[1:]
    handle_binary_frame(room, bob, flood)
    handle_binary_frame(room, bob, b"\x81\x00" + frame((1, 1, {"n": 1}))[1:])
    assert awareness_sent(watcher) == [AwarenessEntry(1, 1, {"n": 1})]
