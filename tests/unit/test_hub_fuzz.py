"""Property-based fuzzing of a room: hostile JSON and Yjs frames never crash it or split it.

One room in-process, with a hostile JSON client and a hostile Yjs client, a passive JSON
observer and a passive Yjs observer. After every sequence of frames the room's text, what each
observer built from the frames it was sent, and a replica freshly loaded from the room's state
must be equal. A frame may only be answered (an error frame) or close its own connection
(:class:`CloseConnection`); any other exception fails the test. Example counts are bounded and
derandomized so that the suite stays fast and reproducible.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Text

from crdt import EditOp, PromptDocument, parse_op
from crdt.codec import (
    SyncStep2,
    SyncUpdate,
    decode_message,
    encode_sync_step2,
    encode_sync_update,
    write_var_uint,
)
from server.hub.closing import CloseConnection
from server.hub.connection import ClientConnection, WireProtocol
from server.hub.json_protocol import handle_json_frame
from server.hub.room import Room
from server.hub.yjs_protocol import handle_binary_frame
from tests.support.transports import InstantWriter, RecordingTransport, recording_json_connection

SERVER_ID = 4242
OBSERVER_ID = 777
START = "hello wörld 😀"

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def base_document() -> PromptDocument:
    document = PromptDocument(client_id=SERVER_ID)
    document.apply_op(EditOp("insert", 0, 0, START, "user"))
    return document


def base_state() -> bytes:
    return base_document().full_state()


def written(conn: ClientConnection) -> list[bytes | str]:
    assert isinstance(conn.direct, RecordingTransport)
    return conn.direct.written


# -- strategies ----------------------------------------------------------------------------------

positions = st.one_of(st.integers(-3, 40), st.sampled_from([2**31, 2**53, 2**64, 10**30]))
op_objects = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["insert", "delete", "replace", "bogus", 3]),
        "position": st.one_of(positions, st.text(max_size=3), st.none(), st.booleans()),
        "length": st.one_of(positions, st.floats(allow_nan=True), st.none()),
        "content": st.one_of(st.text(max_size=8), st.integers(), st.none()),
    }
)
op_messages = st.builds(
    lambda op, rev, op_id: {"type": "op", "rev": rev, "op": op, "op_id": op_id},
    op_objects,
    st.one_of(st.integers(-2, 5), st.just(2**70), st.text(max_size=2), st.none()),
    st.one_of(st.none(), st.text(max_size=6), st.integers()),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=10,
)
json_frames = st.one_of(
    op_messages.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=30),
    st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth),
    st.sampled_from(['{"type":"ping"}', '{"type":"resync"}', '{"type":"presence","cursor":1}']),
)


@st.composite
def yjs_updates(draw: st.DrawFn) -> bytes:
    """A valid update from a replica of the base state, under a chosen (maybe conflicting) id,
    possibly only its later part (a clock gap)."""
    client = draw(st.sampled_from([SERVER_ID, OBSERVER_ID, 1, 99, 2**32 - 1]))
    doc: Doc[Text] = Doc(client_id=client)
    text = doc.get("content", type=Text)
    doc.apply_update(base_state())
    updates = []
    for _ in range(draw(st.integers(1, 3))):
        before = doc.get_state()
        current = str(text)
        # pycrdt indexes text in UTF-8 bytes: positions are taken at character boundaries.
        at = draw(st.integers(0, len(current)))
        offset = len(current[:at].encode())
        with doc.transaction():
            if at < len(current) and draw(st.booleans()):
                del text[offset : offset + len(current[at].encode())]
            else:
                text.insert(offset, draw(st.sampled_from(["a", "xy", "é"])))
        updates.append(doc.get_update(before))
    return updates[-1] if draw(st.booleans()) else b"".join(updates[:1])


def huge_varint(prefix: bytes) -> bytes:
    return prefix + b"\xff" * 12 + b"\x01"


binary_frames = st.one_of(
    st.binary(max_size=64),
    yjs_updates().map(encode_sync_update),
    yjs_updates().map(encode_sync_step2),
    st.tuples(yjs_updates().map(encode_sync_update), st.integers(0, 200)).map(
        lambda pair: pair[0][: pair[1]]
    ),
    st.binary(max_size=64).map(encode_sync_update),
    st.sampled_from(
        [
            huge_varint(b""),
            huge_varint(b"\x00"),
            huge_varint(b"\x00\x02"),
            b"\x00\x02" + write_var_uint(2**53 - 1),
            encode_sync_update(b"\x01" + huge_varint(b"\x01")),
            encode_sync_update(encode_sync_update(b"\x00\x00")),  # an update inside an update
            encode_sync_update(b"\x01\x01\x01\x00\x08\x01\x01t\x01" + b"\x75\x01" * 200),
        ]
    ),
)
frames = st.lists(
    st.one_of(json_frames.map(lambda f: ("json", f)), binary_frames.map(lambda f: ("yjs", f))),
    min_size=1,
    max_size=6,
)


# -- the property --------------------------------------------------------------------------------


class Observers:
    """A JSON and a Yjs client that only watch, rebuilding the text from what they are sent."""

    def __init__(self, room: Room) -> None:
        self.json = _join(room, "jo", WireProtocol.JSON, "VIEWER")
        self.yjs = _join(room, "yo", WireProtocol.YJS, "VIEWER")
        self.json_text = room.text
        self.doc: Doc[Text] = Doc(client_id=OBSERVER_ID)
        self.doc_text = self.doc.get("content", type=Text)
        self.doc.apply_update(room.document.full_state())
        written(self.json).clear()
        written(self.yjs).clear()

    def catch_up(self) -> None:
        for frame in written(self.json):
            assert isinstance(frame, str)
            message = json.loads(frame)
            if message["type"] == "op":
                self.json_text = parse_op(message["op"]).apply(self.json_text)
        for frame in written(self.yjs):
            assert isinstance(frame, bytes)
            decoded = decode_message(frame)
            if isinstance(decoded, SyncUpdate | SyncStep2):
                self.doc.apply_update(decoded.update)
        written(self.json).clear()
        written(self.yjs).clear()


def _join(room: Room, user: str, protocol: WireProtocol, role: str) -> ClientConnection:
    conn = recording_json_connection(user, role)
    conn.protocol = protocol
    room.add(conn)
    return conn


async def run_frames(sequence: list[tuple[str, Any]]) -> None:
    room = Room(
        session_id="s",
        tenant_id="t",
        name="n",
        description=None,
        document=base_document(),
        writer=InstantWriter(),  # type: ignore[arg-type]
    )
    json_attacker = _join(room, "mallory", WireProtocol.JSON, "EDITOR")
    yjs_attacker = _join(room, "trudy", WireProtocol.YJS, "EDITOR")
    observers = Observers(room)
    for kind, frame in sequence:
        if kind == "json":
            handle_json_frame(room, json_attacker, frame)
            replies = [json.loads(m) for m in written(json_attacker) if isinstance(m, str)]
            assert all(isinstance(reply, dict) and "type" in reply for reply in replies)
        else:
            try:
                handle_binary_frame(room, yjs_attacker, frame)
            except CloseConnection as closed:
                assert closed.code >= 1000 and closed.reason
        written(json_attacker).clear()
        await asyncio.sleep(0)  # the room's end-of-tick Yjs broadcast
        observers.catch_up()
        fresh = PromptDocument.from_state(room.document.full_state(), client_id=5)
        views = (room.text, observers.json_text, str(observers.doc_text), fresh.text)
        assert len(set(views)) == 1, (sequence, views)


@FUZZ
@given(frames)
def test_hostile_frames_never_crash_or_split_the_room(sequence: list[tuple[str, Any]]) -> None:
    asyncio.run(run_frames(sequence))


@FUZZ
@given(st.lists(yjs_updates(), min_size=1, max_size=4))
def test_valid_updates_with_conflicting_ids_and_gaps_converge(updates: list[bytes]) -> None:
    asyncio.run(run_frames([("yjs", encode_sync_update(update)) for update in updates]))
