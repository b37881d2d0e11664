"""The counters /metrics reads: broker publishes and failures, message type labels."""

from __future__ import annotations

import asyncio

import pytest

from server.hub.broker import BrokerUnavailable
from server.hub.memory_broker import MemoryBroker, MemoryBus
from server.hub.traffic import Traffic, json_type, yjs_type


async def test_publishes_are_counted_per_message() -> None:
    bus = MemoryBus()
    async with MemoryBroker("a", bus) as a, MemoryBroker("b", bus):
        await a.publish("doc", "update", b"x")
        await a.publish_many("doc", [("update", b"y"), ("awareness", b"z")])
        await a.publish_many("doc", [])
        assert (a.published, a.publish_failures) == (3, 0)


class _StuckBroker(MemoryBroker):
    async def _send(self, channel: str, frame: bytes) -> None:
        await asyncio.Event().wait()


class _BrokenBroker(MemoryBroker):
    async def _send(self, channel: str, frame: bytes) -> None:
        raise BrokerUnavailable("backend down")


@pytest.mark.parametrize("broker_class", [_StuckBroker, _BrokenBroker])
async def test_failed_publishes_are_counted(broker_class: type[MemoryBroker]) -> None:
    async with broker_class("n", publish_timeout=0.05) as broker:
        with pytest.raises(BrokerUnavailable):
            await broker.publish_many("doc", [("update", b"x"), ("update", b"y")])
        assert (broker.published, broker.publish_failures) == (0, 1)


async def test_invalid_input_is_not_a_backend_failure() -> None:
    async with MemoryBroker("n") as broker:
        with pytest.raises(TypeError):
            await broker.publish("doc", "update", "not bytes")  # type: ignore[arg-type]
        assert broker.publish_failures == 0


@pytest.mark.parametrize(
    ("frame", "label"),
    [(b"\x00\x00\x01\x00", "sync"), (b"\x01\x00", "awareness"), (b"\x03", "query_awareness")],
)
def test_yjs_frames_are_labelled_by_type(frame: bytes, label: str) -> None:
    assert yjs_type(frame) == label


@pytest.mark.parametrize("frame", [b"", b"\x07", b"\xff\xff\xff"])
def test_unknown_yjs_frames_share_one_label(frame: bytes) -> None:
    assert yjs_type(frame) == "other"


@pytest.mark.parametrize("kind", ["nope", "", None, 1, ["op"], "op" * 1000, "OP"])
def test_unknown_json_types_share_one_label(kind: object) -> None:
    assert json_type(kind) == "other"


def test_json_types_of_the_protocol_keep_their_name() -> None:
    assert [json_type(k) for k in ("op", "ack", "welcome", "presence")] == [
        "op",
        "ack",
        "welcome",
        "presence",
    ]
    assert Traffic().inbound["json", "op"] == 0
