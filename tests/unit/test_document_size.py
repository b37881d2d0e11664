"""The document size bound (issue 14): an op or Yjs update that would take the text past
``max_document_bytes`` (UTF-8) is refused before it is applied; one that reaches it exactly
passes. Rooms and connections are real; only the socket is recorded."""

from __future__ import annotations

import json

import pytest

from crdt import EditOp, PromptDocument
from crdt.codec import encode_sync_update
from server.hub.closing import CloseCode, CloseConnection
from server.hub.connection import ClientConnection, WireProtocol
from server.hub.doc_size import DocumentTooLarge, check_op, check_update, text_bytes
from server.hub.json_protocol import handle_json_frame
from server.hub.room import Room
from server.hub.yjs_protocol import handle_binary_frame
from server.settings import Settings, SettingsError
from tests.support.transports import RecordingTransport, recording_json_connection

LIMIT = 64


class NoWriter:
    """A refused change never reaches the history writer (which has room for it)."""

    def admit(self) -> bool:
        return True

    def submit(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("no edits expected")

    def log_update(self, *args: object) -> None:
        raise AssertionError("no edits expected")


def make_room(text: str) -> Room:
    return Room(
        session_id="s",
        tenant_id="t",
        name="n",
        description=None,
        document=PromptDocument.from_text(text),
        writer=NoWriter(),  # type: ignore[arg-type]
        max_document_bytes=LIMIT,
    )


def join(room: Room, user: str, protocol: WireProtocol) -> ClientConnection:
    conn = recording_json_connection(user, "EDITOR")
    conn.protocol = protocol
    room.add(conn)
    sent(conn).clear()
    return conn


def sent(conn: ClientConnection) -> list[bytes | str]:
    assert isinstance(conn.direct, RecordingTransport)
    return conn.direct.written


def update_inserting(document: PromptDocument, text: str) -> bytes:
    """The Yjs update a peer holding ``document`` sends after typing ``text`` at its end."""
    peer = PromptDocument.from_state(document.full_state())
    peer.apply_op(EditOp("insert", peer.utf16_length, 0, text))
    return peer.encode_state_as_update(document.state_vector())


def test_an_op_reaching_the_limit_passes_and_one_byte_more_is_refused() -> None:
    document = PromptDocument.from_text("é" * 10)  # 20 bytes of UTF-8, 10 UTF-16 units
    fits = EditOp("insert", 10, 0, "x" * (LIMIT - 20))
    check_op(document, fits, LIMIT)
    with pytest.raises(DocumentTooLarge) as refused:
        check_op(document, EditOp("insert", 10, 0, "é" * ((LIMIT - 20) // 2) + "x"), LIMIT)
    assert refused.value.size == LIMIT + 1 and refused.value.limit == LIMIT
    assert "PROMPT_STUDIO_MAX_DOCUMENT_BYTES" in str(refused.value)
    assert text_bytes(document) == 20  # the trial ran on a copy


def test_a_replace_that_keeps_the_size_under_the_limit_passes_near_it() -> None:
    document = PromptDocument.from_text("a" * LIMIT)
    check_op(document, EditOp("replace", 0, 10, "b" * 10), LIMIT)  # same size: allowed
    check_op(document, EditOp("delete", 0, 10), LIMIT)
    with pytest.raises(DocumentTooLarge):
        check_op(document, EditOp("replace", 0, 10, "b" * 11), LIMIT)


def test_an_update_reaching_the_limit_passes_and_one_byte_more_is_refused() -> None:
    document = PromptDocument.from_text("hello")
    check_update(document, update_inserting(document, "x" * (LIMIT - 5)), LIMIT)
    with pytest.raises(DocumentTooLarge):
        check_update(document, update_inserting(document, "x" * (LIMIT - 4)), LIMIT)
    check_update(document, b"\x01\x02garbage", LIMIT)  # undecodable: left to apply to refuse
    check_update(document, update_inserting(document, "x" * 10_000), None)  # unbounded


def test_a_json_op_past_the_limit_is_refused_with_an_error_and_no_peer_sees_it() -> None:
    room = make_room("hello")
    author = join(room, "ana", WireProtocol.JSON)
    other = join(room, "ben", WireProtocol.JSON)
    sent(author).clear()  # ben's join notice
    frame = {"type": "op", "id": 7, "rev": 0, "op": {"type": "insert", "position": 5}}
    frame["op"]["content"] = "x" * (LIMIT - 4)  # type: ignore[index]
    handle_json_frame(room, author, json.dumps(frame))
    (error,) = [json.loads(m) for m in sent(author) if isinstance(m, str)]
    assert error["type"] == "error" and error["code"] == "document_too_large"
    assert error["id"] == 7 and error["limit"] == LIMIT and str(LIMIT) in error["message"]
    assert room.text == "hello" and room.rev == 0
    assert sent(other) == []


def test_a_yjs_update_past_the_limit_closes_4413_and_no_peer_sees_it() -> None:
    room = make_room("hello")
    author = join(room, "ana", WireProtocol.YJS)
    other = join(room, "ben", WireProtocol.YJS)
    sent(author).clear()
    update = update_inserting(room.document, "x" * (LIMIT - 4))
    with pytest.raises(CloseConnection) as closed:
        handle_binary_frame(room, author, encode_sync_update(update))
    assert closed.value.code == CloseCode.DOCUMENT_TOO_LARGE == 4413
    assert str(LIMIT) in closed.value.reason
    assert room.text == "hello" and room.rev == 0
    assert sent(other) == []


@pytest.mark.parametrize("value", ["1023", "-5", "big"])
def test_the_document_limit_setting_refuses_out_of_range_values(value: str) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env({"PROMPT_STUDIO_MAX_DOCUMENT_BYTES": value})
    assert (
        Settings.from_env({"PROMPT_STUDIO_MAX_DOCUMENT_BYTES": "2048"}).max_document_bytes == 2048
    )
