"""Websocket frames built once per broadcast, checked against the websockets library's parser."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from server.hub.wire import WireMessage, encode_frame


def parse(raw: bytes) -> Frame:
    """Parse one server-to-client frame with websockets' own parser (a client's view)."""
    reader = StreamReader()
    reader.feed_data(raw)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        assert reader.buffer == b"", "the frame must use exactly its bytes"
        return frame
    raise AssertionError("the parser wanted more bytes than the frame has")


# Around each boundary of the length encoding: 7-bit, 16-bit and 64-bit lengths.
@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_binary_frames_of_every_length_encoding_parse_back(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    frame = parse(encode_frame(0x2, payload))
    assert frame.opcode is Opcode.BINARY and frame.fin and frame.data == payload


def test_text_message_is_utf8_and_framed_as_text() -> None:
    message = WireMessage('{"type":"op","content":"😀 café"}')
    assert not message.is_binary
    frame = parse(message.frame)
    assert frame.opcode is Opcode.TEXT
    assert frame.data.decode("utf-8") == message.data


def test_a_message_is_encoded_once_however_often_it_is_framed() -> None:
    message = WireMessage(b"\x00\x02\x05update")
    first = message.frame
    assert message.frame is first
    assert message.payload is message.data  # binary payloads are not copied
    assert parse(first).data == b"\x00\x02\x05update"
