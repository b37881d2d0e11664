"""Updates that write under the server's own client id are refused (found by fuzzing).

pycrdt keeps a struct whose clock is beyond what it has as *pending*: invisible in the text and
reported as an empty update, so it is relayed to nobody. Under the server's own client id such a
struct can never be completed by anybody but the server itself, and the server's next edit fills
the gap and makes it appear on the server only: JSON clients (who see the server's text) and Yjs
peers (who never got it) diverge. Updates under *other* client ids that skip clocks wait outside
pycrdt (which integrates them silently when their origins are known) until the gap is filled,
as a Yjs client holds them pending: the server's text is what a Yjs client applying the same
updates sees, and the filling change carries the waiting part to everybody.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pycrdt import Doc, Map, Text

from crdt import EditOp, PromptDocument, UpdateError
from crdt.codec import Decoder, encode_sync_update
from crdt.update_header import MAX_ANY_DEPTH, ClockRange, read_update_ranges
from server.hub.closing import CloseCode, CloseConnection
from server.hub.connection import ClientConnection, WireProtocol
from server.hub.room import Room
from server.hub.yjs_protocol import handle_binary_frame
from tests.support.transports import RecordingTransport, recording_json_connection

SERVER_ID = 4242


def server_document(text: str = "hello") -> PromptDocument:
    document = PromptDocument(client_id=SERVER_ID)
    document.apply_op(EditOp("insert", 0, 0, text, "user"))
    return document


def forger(document: PromptDocument, client_id: int) -> tuple[Doc[Text], Text]:
    """A Yjs replica of ``document`` that writes under ``client_id``."""
    doc: Doc[Text] = Doc(client_id=client_id)
    text = doc.get("content", type=Text)
    doc.apply_update(document.full_state())
    return doc, text


def edit(doc: Doc[Text], text: Text, position: int, content: str) -> bytes:
    """Insert ``content`` in ``doc``; return the update of that edit alone."""
    before = doc.get_state()
    with doc.transaction():
        text.insert(position, content)
    return doc.get_update(before)


def gapped_update(document: PromptDocument, client_id: int) -> tuple[bytes, bytes]:
    """Two consecutive edits under ``client_id``: (the first, the second), the second alone
    being an update with a clock gap."""
    doc, text = forger(document, client_id)
    first = edit(doc, text, len(document.text), " world")
    second = edit(doc, text, len(document.text) + 6, "!!!")
    return first, second


def yjs_text(*updates: bytes) -> str:
    """What a stock Yjs replica shows after applying ``updates`` in order."""
    doc: Doc[Text] = Doc()
    text = doc.get("content", type=Text)
    for update in updates:
        doc.apply_update(update)
    return str(text)


# -- reading the update header -----------------------------------------------------------------


def state_vector(document: PromptDocument) -> dict[int, int]:
    decoder = Decoder(document.state_vector())
    return {
        decoder.read_var_uint(): decoder.read_var_uint() for _ in range(decoder.read_var_uint())
    }


def test_ranges_of_a_real_document_match_its_state_vector() -> None:
    document = PromptDocument(client_id=5)
    for index, piece in enumerate(["héllo", " 😀 ", "wörld", "\u20ac" * 3, "ascii"]):
        document.apply_op(EditOp("insert", index, 0, piece, "user"))
    document.apply_op(EditOp("delete", 2, 3, "", "user"))
    ranges = read_update_ranges(document.full_state())
    assert ranges.structs == [ClockRange(5, 0, state_vector(document)[5])]
    assert ranges.deletes and all(r.client == 5 for r in ranges.deletes)


def test_ranges_of_maps_arrays_and_formatting() -> None:
    doc: Doc[Any] = Doc(client_id=9)
    text = doc.get("content", type=Text)
    with doc.transaction():
        text.insert(0, "hello", {"bold": True})
        doc["m"] = Map({"x": {"a": [1, 2.5, None, True, "s", 10**12, -3]}})
    (group,) = read_update_ranges(doc.get_update()).structs
    decoder = Decoder(doc.get_state())
    assert decoder.read_var_uint() == 1 and decoder.read_var_uint() == 9
    assert group == ClockRange(9, 0, decoder.read_var_uint())


@pytest.mark.parametrize(
    ("update", "problem"),
    [
        (b"", "truncated"),
        (b"\x01", "truncated"),
        (b"\xff" * 9, "53 bits"),
        (b"\x01\xff\xff\xff\xff\x0f\x01\x00", "exceeds"),  # 4 billion structs declared
        (b"\x00\x00\x00", "trailing"),
        (b"\x01\x01\x01\x00\x1f\x01\x01t", "unknown content"),
        # one ContentAny item (ref 8, parent "t") holding arrays nested past the bound
        (
            b"\x01\x01\x01\x00\x08\x01\x01t\x01" + b"\x75\x01" * (MAX_ANY_DEPTH + 1) + b"\x7e\x00",
            "deeper",
        ),
    ],
)
def test_malformed_updates_are_refused(update: bytes, problem: str) -> None:
    with pytest.raises(UpdateError, match=problem):
        read_update_ranges(update)


# -- the document ------------------------------------------------------------------------------


@pytest.mark.parametrize("integrate", [False, True])
def test_a_gap_under_the_servers_own_id_is_refused(integrate: bool) -> None:
    document = server_document()
    _first, second = gapped_update(document, SERVER_ID)
    state = document.full_state()
    with pytest.raises(UpdateError, match="own client id"):
        if integrate:
            document.integrate_update(second)
        else:
            document.apply_update(second)
    assert document.full_state() == state
    # Before the fix the server's next edit completed the pending struct on the server only.
    change = document.apply_op(EditOp("insert", 5, 0, "?", "user"))
    assert document.text == "hello?" == yjs_text(state, change.update)


def test_new_structs_under_the_servers_own_id_are_refused_without_a_gap_too() -> None:
    document = server_document()
    first, _second = gapped_update(document, SERVER_ID)
    with pytest.raises(UpdateError, match="own client id"):
        document.apply_update(first)
    assert document.text == "hello"


def test_a_deletion_of_clocks_the_server_has_not_written_is_refused() -> None:
    document = server_document()
    # Delete set only: client SERVER_ID, one range starting at clock 5 (beyond the 5 written).
    update = b"\x00\x01\x92\x21\x01\x05\x03"  # 4242 as a varuint is 92 21
    assert read_update_ranges(update).deletes == [ClockRange(SERVER_ID, 5, 8)]
    with pytest.raises(UpdateError, match="own client id"):
        document.apply_update(update)


def test_our_own_structs_coming_back_are_a_harmless_duplicate() -> None:
    document = server_document()
    echoed = document.full_state()  # e.g. a peer node's sync reply
    change = document.apply_update(echoed)
    assert change.update == b"" and change.ops == [] and document.text == "hello"
    # Deleting what the server wrote is an ordinary edit.
    doc, text = forger(document, 77)
    before = doc.get_state()
    with doc.transaction():
        del text[0:2]
    assert document.apply_update(doc.get_update(before)).content_after == "llo"


@pytest.mark.parametrize("integrate", [False, True])
def test_a_gap_under_another_id_waits_until_it_is_filled(integrate: bool) -> None:
    document = server_document()
    start = document.full_state()
    first, second = gapped_update(document, 99)
    apply = document.integrate_update if integrate else document.apply_update
    apply(second)
    # Held back: nothing to relay, and the text is what a Yjs replica applying the same shows.
    assert document.full_state() == start and document.waiting_updates == 1
    assert document.text == yjs_text(start, second) == "hello"
    outcome = apply(first)
    integrated = outcome[0] if isinstance(outcome, tuple) else outcome.update
    # The filling change carries the waiting part to everybody.
    assert document.text == "hello world!!!" == yjs_text(start, integrated)
    assert document.waiting_updates == 0


def test_a_gapped_struct_with_known_origins_waits_instead_of_changing_the_text_silently() -> None:
    """Found by the fuzz suite: pycrdt integrates a struct at clock 1 of a client it has no
    clock 0 of when the struct's origins are known, without advancing its state vector; the
    update it reports is then empty, so the server's text changed and nobody was told."""
    document = server_document()
    start = document.full_state()
    doc, text = forger(document, 99)
    first = edit(doc, text, 0, "x")  # clock 0, sent last
    gapped = edit(doc, text, 3, "a")  # clock 1, between two of the server's characters
    assert read_update_ranges(gapped).structs == [ClockRange(99, 1, 2)]
    held = document.apply_update(gapped)
    # (pycrdt itself would show "heallo" here; Yjs holds the struct pending and shows "hello")
    assert held.update == b"" and held.ops == [] and document.text == "hello"
    completed = document.apply_update(first)
    assert document.text == str(text) == yjs_text(start, completed.update) == "xheallo"


def test_waiting_updates_are_bounded() -> None:
    document = PromptDocument(client_id=SERVER_ID, max_waiting=1)
    document.apply_op(EditOp("insert", 0, 0, "hello", "user"))
    _first, second = gapped_update(document, 99)
    _other_first, other_second = gapped_update(document, 98)
    document.apply_update(second)  # at the bound
    with pytest.raises(UpdateError, match="already wait"):
        document.apply_update(other_second)
    assert document.waiting_updates == 1 and document.text == "hello"


# -- the room: a Yjs client and a peer node --------------------------------------------------


class RecordingWriter:
    def __init__(self) -> None:
        self.updates: list[bytes] = []

    def admit(self) -> bool:
        return True

    def submit(self, session_id: str, entries: object, update: bytes, **_: object) -> Any:
        self.updates.append(update)
        future = asyncio.get_running_loop().create_future()
        future.set_result([])
        return future

    def log_update(self, session_id: str, update: bytes) -> None:
        self.updates.append(update)


def make_room(writer: RecordingWriter) -> Room:
    return Room(
        session_id="s",
        tenant_id="t",
        name="n",
        description=None,
        document=server_document(),
        writer=writer,  # type: ignore[arg-type]
    )


def join(room: Room, user: str, protocol: WireProtocol) -> ClientConnection:
    conn = recording_json_connection(user, "EDITOR")
    conn.protocol = protocol
    room.add(conn)
    written(conn).clear()
    return conn


def written(conn: ClientConnection) -> list[bytes | str]:
    assert isinstance(conn.direct, RecordingTransport)
    return conn.direct.written


async def test_a_yjs_client_forging_the_servers_id_is_closed_and_nobody_sees_it() -> None:
    writer = RecordingWriter()
    room = make_room(writer)
    mallory = join(room, "mallory", WireProtocol.YJS)
    observers = [join(room, "ana", WireProtocol.JSON), join(room, "ben", WireProtocol.YJS)]
    for conn in observers:
        written(conn).clear()  # the notices of each other's joins
    _first, second = gapped_update(room.document, room.document.client_id)
    with pytest.raises(CloseConnection) as closed:
        handle_binary_frame(room, mallory, encode_sync_update(second))
    assert closed.value.code == CloseCode.INVALID_PAYLOAD
    assert "own client id" in closed.value.reason
    await asyncio.sleep(0)  # let the room's end-of-tick broadcast run, if any was queued
    assert all(written(conn) == [] for conn in observers) and writer.updates == []
    assert room.text == "hello"


def test_a_peer_nodes_update_forging_our_id_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    writer = RecordingWriter()
    room = make_room(writer)
    state = room.document.full_state()
    _first, second = gapped_update(room.document, room.document.client_id)
    room.apply_remote_update(second, user_id="u")
    assert room.document.full_state() == state and writer.updates == []
    assert "own client id" in caplog.text
