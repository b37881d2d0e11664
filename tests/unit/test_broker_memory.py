"""Unit tests of the broker without a network: the envelope codec, sequence tracking, the
in-process backend's delivery rules, publish timeouts and backend selection by URL.

The behaviour every backend shares is in ``tests/integration/test_broker_contract.py``.
"""

from __future__ import annotations

import asyncio

import pytest

from server.hub.broker import (
    Broker,
    BrokerUnavailable,
    Envelope,
    MalformedFrame,
    MemoryBroker,
    MemoryBus,
    RedisBroker,
    SequenceTracker,
    create_broker,
    decode_envelope,
    encode_envelope,
)
from server.hub.broker_envelope import MAX_TRACKED_SENDERS
from server.hub.redis_broker import _client_name, _redact

# -- codec ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "envelope",
    [
        Envelope("doc", "node-1", 1, "update", b""),
        Envelope("d" * 1024, "n" * 255, 2**64 - 1, "k" * 32, bytes(range(256)) * 300),
        Envelope("sessión-☃", "nœud", 300, "sync-reply", b"\x00\xff"),
    ],
)
def test_envelope_round_trip(envelope: Envelope) -> None:
    frame = encode_envelope(envelope)
    assert frame[0] == 1
    assert decode_envelope(frame) == envelope


def test_gap_flag_is_not_on_the_wire() -> None:
    flagged = Envelope("doc", "n", 5, "update", b"x", gap=True)
    assert decode_envelope(encode_envelope(flagged)).gap is False


def test_frame_layout_is_stable() -> None:
    # version, channel, sender, seq (varuint 300 = ac 02), kind, payload
    frame = encode_envelope(Envelope("c", "n", 300, "u", b"\x00\x01"))
    assert frame == b"\x01\x01c\x01n\xac\x02\x01u\x02\x00\x01"


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "truncated"),
        (b"\x02\x01c\x01n\x01\x01u\x00", "version"),
        (b"\x01\x01c\x01n\x01\x01u\x02\x00", "truncated"),
        (b"\x01\x01c\x01n\x01\x01u\x00\x00", "trailing"),
        (b"\x01\x00\x01n\x01\x01u\x00", "empty"),
        (b"\x01\x01c\x01n\x00\x01u\x00", "seq"),
        (b"\x01\x01\xff\x01n\x01\x01u\x00", "UTF-8"),
        (b"\x01\x01c\x01n\x01\x00\x00", "kind"),
        (b"\x01\x01c\x01n\x01\x01\xe9\x00", "UTF-8"),
        (b"\x01\x01c\x01n\x01\x01 \x00", "kind"),
        (b"\x01\x01c\x01n" + b"\xff" * 10 + b"\x01", "varuint"),
        (b"\x01\x01c\x01n" + b"\xff" * 9 + b"\x7f", "range"),
        (b"\x01\xff\x7f", "exceeds"),
    ],
)
def test_malformed_frames_are_rejected(frame: bytes, reason: str) -> None:
    with pytest.raises(MalformedFrame, match=reason):
        decode_envelope(frame)


@pytest.mark.parametrize(
    ("envelope", "error"),
    [
        (Envelope("", "n", 1, "u", b""), "channel"),
        (Envelope("c", "", 1, "u", b""), "node_id"),
        (Envelope("c", "n", 0, "u", b""), "seq"),
        (Envelope("c", "n", 1, "", b""), "kind"),
        (Envelope("c", "n", 1, "k" * 33, b""), "kind"),
        (Envelope("c", "n", 1, "ünicode", b""), "ASCII"),
        (Envelope("c", "n", 1, "u", "text"), "bytes"),  # type: ignore[arg-type]
    ],
)
def test_encode_rejects_invalid_envelopes(envelope: Envelope, error: str) -> None:
    with pytest.raises((ValueError, TypeError), match=error):
        encode_envelope(envelope)


# -- sequence tracking ------------------------------------------------------------------------


def test_sequence_tracker_rule() -> None:
    tracker = SequenceTracker()
    observed = [(seq, tracker.observe("a", seq)) for seq in (3, 4, 6, 7, 1, 2, 2, 10, 11)]
    assert observed == [
        (3, False),  # first seen
        (4, False),
        (6, True),  # 5 missed
        (7, False),
        (1, False),  # restart
        (2, False),
        (2, True),  # restart, and seq 1 of the new life missed
        (10, True),
        (11, False),
    ]
    assert tracker.observe("b", 50) is False  # senders are independent


def test_sequence_tracker_is_bounded() -> None:
    tracker = SequenceTracker()
    for index in range(MAX_TRACKED_SENDERS + 1):
        tracker.observe(f"sender-{index}", 1)
    # sender-0 was forgotten, so its jump is not recognised; sender-1 is still tracked.
    assert tracker.observe("sender-0", 5) is False
    assert tracker.observe("sender-2", 5) is True


# -- the memory backend ----------------------------------------------------------------------


async def test_delivery_goes_through_the_event_loop() -> None:
    bus = MemoryBus()
    tasks: list[asyncio.Task[object] | None] = []
    async with MemoryBroker("a", bus) as a, MemoryBroker("b", bus) as b:
        received = asyncio.Event()

        def handler(envelope: Envelope) -> None:
            tasks.append(asyncio.current_task())
            received.set()

        await b.subscribe("doc", handler)
        assert bus.deliver("doc", encode_envelope(Envelope("doc", "x", 1, "update", b""))) == 1
        assert tasks == []  # scheduled, not called synchronously
        await asyncio.wait_for(received.wait(), 5)
        received.clear()

        await a.publish("doc", "update", b"")
        await asyncio.wait_for(received.wait(), 5)
    # Run as plain loop callbacks: never inside the publishing task's call stack.
    assert tasks == [None, None]


async def test_private_buses_are_separate_nodes() -> None:
    async with MemoryBroker("a") as a, MemoryBroker("b") as b:
        assert a.bus is not b.bus
        await b.subscribe("doc", lambda envelope: None)
        assert a.bus.subscribers("doc") == 0
        assert b.bus.subscribers("doc") == 1
    assert b.bus.subscribers("doc") == 0  # stop leaves the bus


async def test_memory_broker_is_healthy_while_started() -> None:
    broker = MemoryBroker("solo")
    assert not broker.healthy
    async with broker:
        assert broker.healthy
        with pytest.raises(RuntimeError, match="already started"):
            await broker.start()
    assert not broker.healthy


class _StuckBroker(MemoryBroker):
    """A backend whose sends never complete."""

    async def _send(self, channel: str, frame: bytes) -> None:
        await asyncio.Event().wait()


async def test_publish_never_blocks_forever() -> None:
    async with _StuckBroker("stuck", publish_timeout=0.05) as broker:
        with pytest.raises(BrokerUnavailable, match="longer than"):
            await broker.publish("doc", "update", b"x")
        # Waiting behind a stuck publish counts against the same bound.
        results = await asyncio.gather(
            *(broker.publish("doc", "update", b"x") for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(result, BrokerUnavailable) for result in results)


async def test_cancelled_subscribe_leaves_nothing_behind() -> None:
    class _SlowSubscribe(MemoryBroker):
        async def _backend_subscribe(self, channel: str, *, first: bool) -> None:
            await asyncio.Event().wait()

    async with _SlowSubscribe("slow") as broker:
        task = asyncio.create_task(broker.subscribe("doc", lambda envelope: None))
        await asyncio.sleep(0)  # let it start
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert broker.subscribed_channels == frozenset()


# -- backend selection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        (None, MemoryBroker),
        ("", MemoryBroker),
        ("memory://", MemoryBroker),
        ("redis://127.0.0.1:6379/0", RedisBroker),
        ("REDIS://127.0.0.1:6379/0", RedisBroker),
        ("rediss://user:secret@cache.example:6380/1", RedisBroker),
        ("unix:///run/redis.sock", RedisBroker),
    ],
)
def test_create_broker_picks_backend_by_url(url: str | None, kind: type[Broker]) -> None:
    broker = create_broker(url, "n1")
    assert type(broker) is kind
    assert broker.node_id == "n1"
    assert not broker.healthy  # created, not started: nothing connects


@pytest.mark.parametrize("url", ["http://example.com", "user:secret@host:6379"])
def test_create_broker_rejects_other_urls(url: str) -> None:
    with pytest.raises(ValueError, match="memory://") as error:
        create_broker(url, "n1")
    assert "secret" not in str(error.value)


def test_redis_urls_are_logged_without_credentials() -> None:
    assert _redact("rediss://user:secret@cache.example:6380/1") == "rediss://cache.example:6380/1"
    assert _redact("redis://:pw@localhost") == "redis://localhost:6379"
    assert _redact("unix:///run/redis.sock?password=pw") == "unix:///run/redis.sock"
    assert _client_name("prompt-studio:node 1\n") == "prompt-studio:node_1_"


def test_only_a_private_memory_bus_is_single_node() -> None:
    from server.hub.broker import create_broker
    from server.hub.memory_broker import MemoryBroker, MemoryBus

    assert MemoryBroker("solo").single_node is True
    bus = MemoryBus()
    assert MemoryBroker("a", bus=bus).single_node is False
    assert create_broker("redis://127.0.0.1:6379/0", "r").single_node is False
