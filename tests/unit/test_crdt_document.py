"""PromptDocument: JSON ops and Yjs updates on one pycrdt document."""

from __future__ import annotations

import gc
import weakref

import pytest
from pycrdt import Doc, Map, Text, merge_updates

from crdt.document import Change, PromptDocument
from crdt.errors import OpError, ProtocolError, UpdateError
from crdt.ops import EditOp
from crdt.replay import replay

ARABIC = "مرحبا بالعالم"


def snapshot(document: PromptDocument) -> tuple[str, bytes, bytes]:
    return document.text, document.state_vector(), document.full_state()


def peer_of(document: PromptDocument, client_id: int) -> PromptDocument:
    return PromptDocument.from_state(document.full_state(), client_id=client_id)


# --- construction ---------------------------------------------------------------------------


def test_empty() -> None:
    document = PromptDocument.empty()
    assert document.text == ""
    assert document.utf16_length == 0
    assert PromptDocument.from_state(document.full_state()).text == ""


def test_from_text_and_from_state_round_trip() -> None:
    text = f"Héllo 😀 {ARABIC} e\u0301"
    document = PromptDocument.from_text(text, client_id=7)
    assert document.text == text
    assert document.client_id == 7
    assert document.utf16_length == len(text) + 1  # one surrogate pair
    restored = PromptDocument.from_state(document.full_state())
    assert restored.text == text
    assert restored.client_id != 7


def test_from_state_rejects_garbage() -> None:
    with pytest.raises(UpdateError):
        PromptDocument.from_state(b"\x01\x02garbage")


def test_from_state_reads_a_stock_pycrdt_document() -> None:
    doc: Doc[Text] = Doc()
    doc["content"] = Text("written by another Yjs implementation")
    assert PromptDocument.from_state(doc.get_update()).text == (
        "written by another Yjs implementation"
    )


# --- apply_op -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "op", "after"),
    [
        ("hello", EditOp("insert", 5, 0, "!"), "hello!"),
        ("héllo", EditOp("insert", 2, 0, "X"), "héXllo"),
        ("a😀b", EditOp("insert", 3, 0, "X"), "a😀Xb"),
        ("a😀b", EditOp("delete", 1, 2, ""), "ab"),
        ("a😀b", EditOp("replace", 1, 2, "🎉🎉"), "a🎉🎉b"),
        (ARABIC, EditOp("replace", 6, 7, "يا عالم"), "مرحبا يا عالم"),
        ("e\u0301t\u00e9", EditOp("delete", 1, 1, ""), "et\u00e9"),  # drop the combining mark
        ("", EditOp("insert", 0, 0, "😀"), "😀"),
    ],
)
def test_apply_op(text: str, op: EditOp, after: str) -> None:
    document = PromptDocument.from_text(text)
    change = document.apply_op(op)
    assert change.content_before == text
    assert change.content_after == after == document.text
    assert change.ops == [op]
    assert change.update
    assert PromptDocument.from_state(document.full_state()).text == after


def test_apply_op_update_reaches_a_peer() -> None:
    server = PromptDocument.from_text("héllo wörld", client_id=1)
    peer = peer_of(server, 2)
    change = server.apply_op(EditOp("replace", 6, 5, "😀"))
    seen = peer.apply_update(change.update)
    assert peer.text == "héllo 😀"
    assert seen.ops == [EditOp("replace", 6, 5, "😀", "sync")]


def test_replace_is_one_transaction() -> None:
    document = PromptDocument.from_text("abcdef", client_id=1)
    peer = peer_of(document, 2)
    transactions: list[bytes] = []
    subscription = document._doc.observe(lambda event: transactions.append(event.update))
    change = document.apply_op(EditOp("replace", 1, 3, "XY"))
    document._doc.unobserve(subscription)
    assert transactions == [change.update]
    assert peer.apply_update(change.update).ops == [EditOp("replace", 1, 3, "XY", "sync")]


@pytest.mark.parametrize(
    ("op", "field"),
    [
        (EditOp("insert", 7, 0, "x"), "position"),
        (EditOp("insert", 2, 0, "x"), "position"),  # inside 😀
        (EditOp("delete", 1, 1, ""), "length"),  # ends inside 😀
        (EditOp("delete", 4, 3, ""), "length"),  # past the end
        (EditOp("replace", 2, 1, "x"), "position"),
    ],
)
def test_out_of_range_leaves_the_document_untouched(op: EditOp, field: str) -> None:
    document = PromptDocument.from_text("a😀bcd")  # 6 UTF-16 units
    before = snapshot(document)
    with pytest.raises(OpError) as info:
        document.apply_op(op)
    assert info.value.code == "out_of_range"
    assert info.value.field == field
    assert snapshot(document) == before


# --- apply_update ---------------------------------------------------------------------------


def test_duplicate_update_changes_nothing() -> None:
    server = PromptDocument.from_text("hello", client_id=1)
    peer = peer_of(server, 2)
    update = peer.apply_op(EditOp("insert", 5, 0, " 😀")).update
    first = server.apply_update(update)
    assert first.ops == [EditOp("insert", 5, 0, " 😀", "sync")]
    assert first.update
    again = server.apply_update(update)
    assert again == Change(b"", [], "hello 😀", "hello 😀")
    assert not again.text_changed
    assert server.apply_update(b"\x00\x00").update == b""


def test_origin_tags_the_ops() -> None:
    server = PromptDocument.from_text("x", client_id=1)
    peer = peer_of(server, 2)
    update = peer.apply_op(EditOp("delete", 0, 1, "")).update
    assert server.apply_update(update, origin="user").ops == [EditOp("delete", 0, 1, "", "user")]


def test_multi_edit_update_on_multibyte_text() -> None:
    base = f"é😀 {ARABIC} 🎉z"
    server = PromptDocument.from_text(base, client_id=1)
    peer = peer_of(server, 2)
    updates = [
        peer.apply_op(EditOp("insert", 0, 0, "→")).update,
        peer.apply_op(EditOp("delete", 2, 2, "")).update,  # the 😀
        peer.apply_op(EditOp("replace", 5, 5, "سلام")).update,
        peer.apply_op(EditOp("insert", peer.utf16_length, 0, "!")).update,
    ]
    change = server.apply_update(merge_updates(*updates))
    assert change.content_after == peer.text == server.text
    assert replay(change.content_before, change.ops) == change.content_after
    assert len(change.ops) >= 3


def test_delete_then_insert_at_one_point_merges_into_a_replace() -> None:
    server = PromptDocument.from_text("héllo wörld", client_id=1)
    peer = peer_of(server, 2)
    with peer._doc.transaction():  # a Yjs client may send both in one update
        text = peer._text
        text.insert(8, "Ö")  # pycrdt counts bytes: "héllo w" is 8 bytes
        del text[10:12]  # the old "ö", now after the 2-byte "Ö"
    change = server.apply_update(peer.full_state())
    assert server.text == "héllo wÖrld"
    assert change.ops == [EditOp("replace", 7, 1, "Ö", "sync")]
    assert replay(change.content_before, change.ops) == change.content_after


def test_update_touching_another_root_type_gives_no_ops() -> None:
    server = PromptDocument.from_text("abc", client_id=1)
    other: Doc[Map[int]] = Doc(client_id=9)
    other["settings"] = settings = Map[int]()
    settings["temperature"] = 1
    change = server.apply_update(other.get_update())
    assert change.ops == []
    assert change.update  # still news for Yjs peers
    assert server.text == "abc"


@pytest.mark.parametrize(
    "update",
    [b"", b"\x01", b"\xff\xff\xff", b"\x01\x02garbage", b"\x02\x01\x05"],
)
def test_malformed_update_leaves_the_document_untouched(update: bytes) -> None:
    document = PromptDocument.from_text("héllo 😀")
    before = snapshot(document)
    with pytest.raises(UpdateError):
        document.apply_update(update)
    assert snapshot(document) == before


def test_a_rust_panic_becomes_an_update_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class PanicException(BaseException):  # what pyo3 raises when Rust code panics
        pass

    def panic(update: bytes) -> None:
        raise PanicException("index out of bounds")

    document = PromptDocument.from_text("abc")
    monkeypatch.setattr(document._doc, "apply_update", panic)
    with pytest.raises(UpdateError, match="rejected by pycrdt"):
        document.apply_update(b"\x00\x00")
    assert document.text == "abc"


def test_other_base_exceptions_propagate(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(update: bytes) -> None:
        raise KeyboardInterrupt

    document = PromptDocument.from_text("abc")
    monkeypatch.setattr(document._doc, "apply_update", interrupt)
    with pytest.raises(KeyboardInterrupt):
        document.apply_update(b"\x00\x00")


def test_truncated_real_update_is_rejected() -> None:
    server = PromptDocument.from_text("abc", client_id=1)
    peer = peer_of(server, 2)
    update = peer.apply_op(EditOp("insert", 1, 0, "😀😀")).update
    before = snapshot(server)
    for cut in range(1, len(update)):
        try:
            change = server.apply_update(update[:cut])
        except UpdateError:
            assert snapshot(server) == before
        else:  # a prefix that still decodes must not corrupt anything
            assert replay(change.content_before, change.ops) == change.content_after


def test_update_with_missing_dependencies_waits() -> None:
    server = PromptDocument.from_text("ab", client_id=1)
    peer = peer_of(server, 2)
    first = peer.apply_op(EditOp("insert", 1, 0, "X")).update
    second = peer.apply_op(EditOp("insert", 2, 0, "Y")).update
    early = server.apply_update(second)
    assert early.ops == [] and early.update == b""
    late = server.apply_update(first)
    assert server.text == "aXYb"
    assert replay(late.content_before, late.ops) == "aXYb"


def test_missing_dependencies_travel_in_the_integrating_change() -> None:
    origin = PromptDocument.from_text("ab", client_id=1)
    server = peer_of(origin, 2)
    bystander = peer_of(origin, 3)
    first = origin.apply_op(EditOp("insert", 1, 0, "X")).update
    second = origin.apply_op(EditOp("insert", 2, 0, "Y")).update
    assert server.apply_update(second).update == b""
    integrated = server.apply_update(first).update
    bystander.apply_update(integrated)
    assert bystander.text == "aXYb"


# --- state vectors --------------------------------------------------------------------------


def test_encode_state_as_update_for_a_peer() -> None:
    server = PromptDocument.from_text("hello", client_id=1)
    peer = peer_of(server, 2)
    server.apply_op(EditOp("insert", 5, 0, " wörld"))
    diff = server.encode_state_as_update(peer.state_vector())
    assert peer.apply_update(diff).ops == [EditOp("insert", 5, 0, " wörld", "sync")]
    assert peer.text == server.text


@pytest.mark.parametrize("state_vector", [b"", b"\xff", b"\x05\x01", b"\x01\xff\xff"])
def test_malformed_state_vector(state_vector: bytes) -> None:
    document = PromptDocument.from_text("abc")
    before = snapshot(document)
    with pytest.raises(ProtocolError):
        document.encode_state_as_update(state_vector)
    assert snapshot(document) == before


# --- replicas -------------------------------------------------------------------------------


def test_concurrent_ops_on_two_replicas_converge() -> None:
    base = PromptDocument.from_text(f"héllo 😀 {ARABIC}", client_id=1)
    left = peer_of(base, 2)
    right = peer_of(base, 3)
    from_left = left.apply_op(EditOp("replace", 0, 5, "Bonjour")).update
    from_right = right.apply_op(EditOp("insert", 5, 0, "!!")).update
    left_change = left.apply_update(from_right)
    right_change = right.apply_update(from_left)
    assert left.text == right.text
    assert "Bonjour" in left.text and "!!" in left.text
    assert replay(left_change.content_before, left_change.ops) == left.text
    assert replay(right_change.content_before, right_change.ops) == right.text


def test_document_is_garbage_collected() -> None:
    document = PromptDocument.from_text("abc")
    document.apply_op(EditOp("insert", 0, 0, "x"))
    peer = PromptDocument.from_state(document.full_state())
    peer.apply_update(document.apply_op(EditOp("delete", 0, 1, "")).update)
    refs = [weakref.ref(document._doc), weakref.ref(peer._doc)]
    del document, peer
    gc.collect()
    assert all(ref() is None for ref in refs)
