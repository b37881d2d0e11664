"""The y-websocket wire codec, checked against pycrdt's own message helpers."""

from __future__ import annotations

import pytest
from pycrdt import (
    Awareness,
    Doc,
    Text,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    handle_sync_message,
)
from pycrdt import write_var_uint as pycrdt_write_var_uint

from crdt.codec import (
    MAX_VAR_UINT,
    AwarenessEntry,
    AwarenessMessage,
    Decoder,
    Message,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_awareness,
    decode_message,
    encode_awareness,
    encode_awareness_message,
    encode_message,
    encode_permission_denied,
    encode_query_awareness,
    encode_sync_step1,
    encode_sync_step2,
    encode_sync_update,
    read_var_uint,
    write_var_bytes,
    write_var_string,
    write_var_uint,
)
from crdt.errors import ProtocolError


def sample_doc() -> Doc[Text]:
    doc: Doc[Text] = Doc(client_id=123456789)
    doc["content"] = Text("héllo 😀 مرحبا")
    return doc


# --- primitives -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [0, 1, 127, 128, 255, 256, 16383, 16384, 2**31, 2**32 + 5, MAX_VAR_UINT]
)
def test_var_uint_round_trip_and_matches_pycrdt(value: int) -> None:
    encoded = write_var_uint(value)
    assert encoded == pycrdt_write_var_uint(value)
    assert read_var_uint(encoded + b"\x99", 0) == (value, len(encoded))


def test_var_uint_known_bytes() -> None:
    assert write_var_uint(300) == b"\xac\x02"
    assert read_var_uint(b"\x00\xac\x02", 1) == (300, 3)


@pytest.mark.parametrize("value", [-1, MAX_VAR_UINT + 1])
def test_write_var_uint_range(value: int) -> None:
    with pytest.raises(ValueError):
        write_var_uint(value)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80",  # continuation bit, then nothing
        b"\xff" * 7 + b"\x7f",  # 56 bits
        b"\x80" * 8 + b"\x01",  # 9 bytes
        b"\xff" * 20,
    ],
)
def test_read_var_uint_rejects(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        read_var_uint(data)


def test_var_string_counts_bytes() -> None:
    assert write_var_string("é😀") == b"\x06" + "é😀".encode()
    assert Decoder(write_var_string("é😀")).read_var_string() == "é😀"
    assert write_var_bytes(b"") == b"\x00"


def test_var_bytes_cannot_claim_more_than_the_input() -> None:
    decoder = Decoder(b"\xff\xff\xff\x7f" + b"ab")
    with pytest.raises(ProtocolError, match="truncated"):
        decoder.read_var_bytes()


def test_var_string_must_be_utf8() -> None:
    with pytest.raises(ProtocolError, match="UTF-8"):
        Decoder(b"\x02\xc3\x28").read_var_string()


# --- golden bytes against pycrdt ------------------------------------------------------------


def test_sync_step1_matches_pycrdt() -> None:
    doc = sample_doc()
    frame = encode_sync_step1(doc.get_state())
    assert frame == create_sync_message(doc)
    assert decode_message(frame) == SyncStep1(doc.get_state())


def test_sync_step2_matches_pycrdt_reply() -> None:
    doc = sample_doc()
    empty: Doc[Text] = Doc(client_id=1)
    step1 = create_sync_message(empty)
    reply = handle_sync_message(step1[1:], doc)
    assert reply is not None
    assert encode_sync_step2(doc.get_update(empty.get_state())) == reply
    assert decode_message(reply) == SyncStep2(doc.get_update(empty.get_state()))


def test_sync_update_matches_pycrdt() -> None:
    update = sample_doc().get_update()
    frame = encode_sync_update(update)
    assert frame == create_update_message(update)
    assert decode_message(frame) == SyncUpdate(update)
    target: Doc[Text] = Doc()
    handle_sync_message(frame[1:], target)  # pycrdt accepts our frame
    assert str(target.get("content", type=Text)) == "héllo 😀 مرحبا"


def test_awareness_matches_pycrdt() -> None:
    doc = sample_doc()
    awareness = Awareness(doc)
    awareness.set_local_state({"user": {"name": "Ada", "color": "#30bced"}, "cursor": 3})
    awareness.set_local_state_field("cursor", 5)
    expected = awareness.encode_awareness_update([doc.client_id])
    clock = awareness.meta[doc.client_id]["clock"]
    assert clock > 0
    entries = [AwarenessEntry(doc.client_id, clock, awareness.get_local_state())]
    assert encode_awareness(entries) == expected
    assert decode_awareness(expected) == entries
    frame = encode_awareness_message(expected)
    assert frame == create_awareness_message(expected)
    assert decode_message(frame) == AwarenessMessage(expected)


def test_awareness_removal_round_trip_through_pycrdt() -> None:
    doc = sample_doc()
    awareness = Awareness(doc)
    awareness.apply_awareness_update(
        encode_awareness([AwarenessEntry(42, 3, {"name": "Bob"})]), "remote"
    )
    assert awareness.states[42] == {"name": "Bob"}
    awareness.apply_awareness_update(encode_awareness([AwarenessEntry(42, 4, None)]), "remote")
    assert 42 not in awareness.states


def test_awareness_with_non_ascii_state_counts_bytes() -> None:
    entries = [
        AwarenessEntry(2**32 - 1, 7, {"name": "Zoë 😀", "city": "القاهرة"}),
        AwarenessEntry(1, 0, None),
    ]
    payload = encode_awareness(entries)
    assert "Zoë 😀".encode() in payload  # written like JSON.stringify, not \u-escaped
    assert decode_awareness(payload) == entries


# --- decode_message: round trips and rejections ---------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        SyncStep1(b"\x00"),
        SyncStep2(b"\x00\x00"),
        SyncUpdate(b"\x01" * 300),
        AwarenessMessage(encode_awareness([AwarenessEntry(1, 2, {"a": [1, None]})])),
        QueryAwareness(),
    ],
)
def test_round_trip(message: Message) -> None:
    assert decode_message(encode_message(message)) == message


def test_query_awareness_bytes() -> None:
    assert encode_query_awareness() == b"\x03"


def test_permission_denied_bytes() -> None:
    assert encode_permission_denied("nö") == b"\x02\x00\x03n\xc3\xb6"


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (b"", "empty"),
        (b"\x80", "truncated message type"),
        (b"\x00", "truncated sync message type"),
        (b"\x00\x00", "truncated state vector length"),
        (b"\x00\x01\x05ab", "truncated update"),
        (b"\x00\x03\x00", "unknown sync message type 3"),
        (b"\x07", "unknown message type 7"),
        (b"\x80\x01", "unknown message type 128"),
        (b"\x02\x00\x00", "auth"),
        (b"\x03\x00", "trailing"),
        (b"\x00\x02\x01\x00\x00", "trailing"),
        (b"\x00\x00\xff\xff\xff\xff\xff\xff\xff\x7f", "53 bits"),
        (b"\x01\x00", "truncated awareness entry count"),
        (b"\x01\x01\x05", "too short"),
    ],
)
def test_decode_rejects(frame: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        decode_message(frame)


def _awareness_frame(state_json: bytes) -> bytes:
    payload = b"\x01\x01\x01" + write_var_bytes(state_json)
    return encode_awareness_message(payload)


@pytest.mark.parametrize(
    "state_json",
    [b"", b"{", b"[1]", b'"x"', b"NaN", b'{"a": Infinity}', b"[" * 100_000, b"\xff"],
)
def test_decode_rejects_bad_awareness_states(state_json: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_message(_awareness_frame(state_json))


def test_awareness_payload_trailing_bytes() -> None:
    payload = encode_awareness([AwarenessEntry(1, 1, None)]) + b"\x00"
    with pytest.raises(ProtocolError, match="trailing"):
        decode_awareness(payload)


def test_awareness_count_cannot_force_a_huge_loop() -> None:
    with pytest.raises(ProtocolError, match="too short"):
        decode_awareness(write_var_uint(MAX_VAR_UINT) + b"\x01\x01\x04null")
