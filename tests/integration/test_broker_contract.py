"""The broker contract, run against every backend (memory and a real Redis).

Each test gets a fresh backend: a private :class:`MemoryBus`, or a random Redis channel prefix
so concurrent test runs never see each other's messages. Nodes are brokers with different node
ids on that bus / Redis. Every wait is on an event with a timeout; "nothing was delivered" is
shown with a later sentinel message, never with a sleep.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from redis.asyncio import Redis

from server.hub.broker import (
    Broker,
    BrokerUnavailable,
    Envelope,
    encode_envelope,
)
from server.hub.memory_broker import MemoryBroker, MemoryBus
from server.hub.redis_broker import RedisBroker
from tests.support.private_redis import PrivateRedis
from tests.support.services import require_service

WAIT = 10.0  # generous upper bound for any single wait; tests normally finish in milliseconds


class Inbox:
    """A handler that records envelopes and lets a test wait for a condition on them."""

    def __init__(self) -> None:
        self.items: list[Envelope] = []
        self._changed = asyncio.Event()

    def __call__(self, envelope: Envelope) -> None:
        self.items.append(envelope)
        self._changed.set()

    @property
    def payloads(self) -> list[bytes]:
        return [item.payload for item in self.items]

    async def wait_until(self, predicate: Callable[[list[Envelope]], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not predicate(self.items):
                self._changed.clear()
                await self._changed.wait()

    async def wait_for_payload(self, payload: bytes) -> None:
        await self.wait_until(lambda items: any(item.payload == payload for item in items))

    async def wait_for_count(self, count: int) -> None:
        await self.wait_until(lambda items: len(items) >= count)


@dataclass
class Backend:
    """Makes started broker "nodes" on one shared bus / Redis, and injects raw frames."""

    name: str
    stack: AsyncExitStack
    bus: MemoryBus = field(default_factory=MemoryBus)
    redis_url: str = ""
    prefix: str = ""
    _counter: int = 0

    async def node(self, node_id: str | None = None) -> Broker:
        self._counter += 1
        node_id = node_id or f"node-{self._counter}"
        broker: Broker
        if self.name == "memory":
            broker = MemoryBroker(node_id, self.bus)
        else:
            broker = RedisBroker(self.redis_url, node_id, channel_prefix=self.prefix)
        await self.stack.enter_async_context(broker)
        return broker

    async def inject(self, channel: str, frame: bytes) -> None:
        """Put ``frame`` on ``channel`` bypassing every broker (hand-made or broken frames)."""
        if self.name == "memory":
            assert self.bus.deliver(channel, frame) > 0
            return
        async with Redis.from_url(self.redis_url) as client:
            assert await client.publish(f"{self.prefix}{channel}", frame) > 0


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    async with AsyncExitStack() as stack:
        if request.param == "memory":
            yield Backend("memory", stack)
        else:
            redis_url = request.getfixturevalue("redis_url")
            prefix = f"test-broker-{uuid.uuid4().hex[:12]}:"
            yield Backend("redis", stack, redis_url=redis_url, prefix=prefix)


@pytest.fixture
async def nodes(backend: Backend) -> tuple[Broker, Broker]:
    """Two started nodes, ``a`` and ``b``, sharing one backend."""
    return await backend.node("a"), await backend.node("b")


# -- delivery -------------------------------------------------------------------------------


async def test_delivers_to_other_node(nodes: tuple[Broker, Broker]) -> None:
    a, b = nodes
    inbox = Inbox()
    await b.subscribe("doc-1", inbox)

    await a.publish("doc-1", "update", b"\x00hello\xff")

    await inbox.wait_for_count(1)
    assert inbox.items == [
        Envelope(channel="doc-1", sender="a", seq=1, kind="update", payload=b"\x00hello\xff")
    ]


async def test_own_echo_is_dropped(nodes: tuple[Broker, Broker]) -> None:
    a, b = nodes
    a_inbox, b_inbox = Inbox(), Inbox()
    await a.subscribe("doc", a_inbox)
    await b.subscribe("doc", b_inbox)

    await a.publish("doc", "update", b"from-a")
    await b_inbox.wait_for_payload(b"from-a")
    await b.publish("doc", "update", b"sentinel-from-b")
    await a_inbox.wait_for_payload(b"sentinel-from-b")

    # a's own message reached a's connection before b's sentinel did, and was dropped.
    assert a_inbox.payloads == [b"sentinel-from-b"]
    assert b_inbox.payloads == [b"from-a"]


async def test_binary_payloads_arrive_intact(nodes: tuple[Broker, Broker]) -> None:
    a, b = nodes
    inbox = Inbox()
    await b.subscribe("bin", inbox)
    every_byte = bytes(range(256)) * 3
    big = random.Random(1234).randbytes(1024 * 1024)
    not_utf8 = b"\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x28\x8c\xbc\r\n\x00"

    for payload in (every_byte, b"", not_utf8, big):
        await a.publish("bin", "update", payload)

    await inbox.wait_for_count(4)
    assert inbox.payloads == [every_byte, b"", not_utf8, big]
    assert all(type(item.payload) is bytes for item in inbox.items)


async def test_order_is_preserved(nodes: tuple[Broker, Broker]) -> None:
    a, b = nodes
    inbox = Inbox()
    await b.subscribe("ordered", inbox)

    for i in range(500):
        await a.publish("ordered", "update", i.to_bytes(4, "big"))

    await inbox.wait_for_count(500)
    assert [int.from_bytes(p, "big") for p in inbox.payloads] == list(range(500))
    assert [item.seq for item in inbox.items] == list(range(1, 501))
    assert not any(item.gap for item in inbox.items)


async def test_concurrent_publishes_keep_seq_in_delivery_order(
    nodes: tuple[Broker, Broker],
) -> None:
    a, b = nodes
    inbox = Inbox()
    await b.subscribe("busy", inbox)

    await asyncio.gather(*(a.publish("busy", "update", bytes([i % 256])) for i in range(300)))

    await inbox.wait_for_count(300)
    assert [item.seq for item in inbox.items] == list(range(1, 301))
    assert not any(item.gap for item in inbox.items)


async def test_publish_many_keeps_order_and_seq_with_single_publishes(
    nodes: tuple[Broker, Broker],
) -> None:
    a, b = nodes
    inbox = Inbox()
    await b.subscribe("batched", inbox)

    await a.publish("batched", "update", b"0")
    # More than one Redis pipeline holds, mixed kinds, interleaved with single publishes.
    batch = [("update" if i % 3 else "awareness", str(i).encode()) for i in range(1, 700)]
    await asyncio.gather(a.publish_many("batched", batch), a.publish("batched", "update", b"after"))
    await a.publish_many("batched", [])  # nothing to send is fine

    await inbox.wait_for_count(701)
    assert inbox.payloads == [b"0", *(p for _, p in batch), b"after"]
    assert [item.kind for item in inbox.items[1:700]] == [k for k, _ in batch]
    assert [item.seq for item in inbox.items] == list(range(1, 702))
    assert not any(item.gap for item in inbox.items)


async def test_seq_counts_per_channel(nodes: tuple[Broker, Broker]) -> None:
    a, b = nodes
    inbox = Inbox()
    await b.subscribe("x", inbox)
    await b.subscribe("y", inbox)

    for channel in ("x", "y", "x", "x", "y"):
        await a.publish(channel, "update", channel.encode())

    await inbox.wait_for_count(5)
    assert [(item.channel, item.seq) for item in inbox.items] == [
        ("x", 1),
        ("y", 1),
        ("x", 2),
        ("x", 3),
        ("y", 2),
    ]


async def test_subscribe_is_active_when_it_returns(backend: Backend) -> None:
    a, b = await backend.node(), await backend.node()
    for round_ in range(20):  # a message published right after subscribe() is never lost
        inbox = Inbox()
        subscription = await b.subscribe(f"fresh-{round_}", inbox)
        await a.publish(f"fresh-{round_}", "update", b"first")
        await inbox.wait_for_count(1)
        await subscription.unsubscribe()


async def test_concurrent_subscribers_are_all_active_on_return(backend: Backend) -> None:
    a, b = await backend.node(), await backend.node()
    inboxes = [Inbox() for _ in range(5)]
    await asyncio.gather(*(b.subscribe("crowd", inbox) for inbox in inboxes))

    await a.publish("crowd", "update", b"hello")

    for inbox in inboxes:
        await inbox.wait_for_payload(b"hello")


async def test_late_subscriber_sees_no_gap(nodes: tuple[Broker, Broker]) -> None:
    a, b = nodes
    await a.publish("late", "update", b"m1")
    await a.publish("late", "update", b"m2")
    inbox = Inbox()
    await b.subscribe("late", inbox)

    await a.publish("late", "update", b"m3")

    await inbox.wait_for_count(1)
    assert (inbox.items[0].seq, inbox.items[0].gap) == (3, False)


# -- subscriptions ----------------------------------------------------------------------------


async def test_unsubscribe_stops_delivery(nodes: tuple[Broker, Broker]) -> None:
    a, b = nodes
    gone, staying, sentinel = Inbox(), Inbox(), Inbox()
    first = await b.subscribe("doc", gone)
    second = await b.subscribe("doc", staying)
    await a.publish("doc", "update", b"before")
    await gone.wait_for_payload(b"before")

    await first.unsubscribe()
    await first.unsubscribe()  # idempotent
    assert not first.active
    await a.publish("doc", "update", b"after")
    await staying.wait_for_payload(b"after")
    assert gone.payloads == [b"before"]

    # The channel's last subscription: the node stops listening to the channel altogether.
    await b.subscribe("sentinel", sentinel)
    await second.unsubscribe()
    assert "doc" not in b.subscribed_channels
    await a.publish("doc", "update", b"after-all")
    await a.publish("sentinel", "update", b"sentinel")
    await sentinel.wait_for_payload(b"sentinel")
    assert staying.payloads == [b"before", b"after"]
    assert gone.payloads == [b"before"]


async def test_resubscribing_starts_fresh_tracking(nodes: tuple[Broker, Broker]) -> None:
    a, b = nodes
    inbox = Inbox()
    subscription = await b.subscribe("doc", inbox)
    await a.publish("doc", "update", b"1")
    await inbox.wait_for_count(1)
    await subscription.unsubscribe()

    await a.publish("doc", "update", b"2")  # nobody on b listens: not missed, just not wanted
    await b.subscribe("doc", inbox)
    await a.publish("doc", "update", b"3")

    await inbox.wait_for_count(2)
    assert [(item.payload, item.seq, item.gap) for item in inbox.items] == [
        (b"1", 1, False),
        (b"3", 3, False),
    ]


async def test_channels_and_subscribers_are_isolated(backend: Backend) -> None:
    a, b, c = await backend.node(), await backend.node(), await backend.node()
    b_x1, b_x2, b_y, c_y = Inbox(), Inbox(), Inbox(), Inbox()
    await b.subscribe("x", b_x1)
    await b.subscribe("x", b_x2)
    await b.subscribe("y", b_y)
    await c.subscribe("y", c_y)

    await a.publish("x", "update", b"to-x")
    await a.publish("y", "awareness", b"to-y")
    await a.publish("z", "update", b"to-z")  # nobody listens
    await a.publish("y", "control", b"end")

    for inbox in (b_y, c_y):
        await inbox.wait_for_payload(b"end")
    await b_x1.wait_for_payload(b"to-x")
    await b_x2.wait_for_payload(b"to-x")
    assert b_x1.payloads == b_x2.payloads == [b"to-x"]
    assert b_y.payloads == c_y.payloads == [b"to-y", b"end"]
    assert [item.kind for item in c_y.items] == ["awareness", "control"]


async def test_raising_handler_does_not_stop_delivery(
    nodes: tuple[Broker, Broker], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = nodes
    calls: list[bytes] = []

    def flaky(envelope: Envelope) -> None:
        calls.append(envelope.payload)
        if envelope.payload == b"boom":
            raise RuntimeError("handler bug")

    good = Inbox()
    await b.subscribe("doc", flaky)
    await b.subscribe("doc", good)

    with caplog.at_level(logging.ERROR, logger="server.hub.broker_base"):
        for payload in (b"one", b"boom", b"three"):
            await a.publish("doc", "update", payload)
        await good.wait_for_payload(b"three")

    assert calls == [b"one", b"boom", b"three"]
    assert good.payloads == [b"one", b"boom", b"three"]
    assert any("handler bug" in (r.exc_text or "") for r in caplog.records)


async def test_reconnect_listener_that_raises_is_isolated(backend: Backend) -> None:
    broker = await backend.node()
    called: list[str] = []

    def broken() -> None:
        called.append("broken")
        raise RuntimeError("listener bug")

    broker.add_reconnect_listener(broken)
    broker.add_reconnect_listener(lambda: called.append("fine"))
    broker._notify_reconnected()
    assert called == ["broken", "fine"]


# -- gaps and malformed frames ----------------------------------------------------------------


def frame(channel: str, seq: int, payload: bytes = b"", sender: str = "outsider") -> bytes:
    return encode_envelope(Envelope(channel, sender, seq, "update", payload))


async def test_gap_detection(backend: Backend) -> None:
    b = await backend.node("b")
    inbox = Inbox()
    await b.subscribe("doc", inbox)
    sequence = [
        (4, False),  # first seen from this sender: never a gap
        (5, False),
        (7, False),  # 6 was missed -> gap
        (8, False),
        (1, False),  # sender restarted: tracking resets, no gap
        (2, False),
        (2, False),  # went backwards but not to 1: restarted and we missed its start -> gap
        (3, False),
    ]
    for seq, _ in sequence:
        await backend.inject("doc", frame("doc", seq, str(seq).encode()))
    # Another sender's numbering is independent.
    await backend.inject("doc", frame("doc", 9, b"other", sender="someone-else"))

    await inbox.wait_for_count(len(sequence) + 1)
    assert [(item.seq, item.gap) for item in inbox.items] == [
        (4, False),
        (5, False),
        (7, True),
        (8, False),
        (1, False),
        (2, False),
        (2, True),
        (3, False),
        (9, False),
    ]


async def test_gap_tracking_is_per_channel(backend: Backend) -> None:
    b = await backend.node("b")
    inbox = Inbox()
    await b.subscribe("x", inbox)
    await b.subscribe("y", inbox)
    for channel, seq in (("x", 1), ("y", 10), ("x", 2), ("y", 11), ("x", 4)):
        await backend.inject(channel, frame(channel, seq))

    await inbox.wait_for_count(5)
    assert [(item.channel, item.seq, item.gap) for item in inbox.items] == [
        ("x", 1, False),
        ("y", 10, False),
        ("x", 2, False),
        ("y", 11, False),
        ("x", 4, True),
    ]


async def test_malformed_frames_are_dropped(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    b = await backend.node("b")
    inbox = Inbox()
    await b.subscribe("doc", inbox)
    good = frame("doc", 1, b"good")
    broken = [
        b"",
        b"\x02" + good[1:],  # unknown version
        good[:-1],  # truncated
        good + b"\x00",  # trailing byte
        frame("elsewhere", 1, b"misrouted"),  # channel in the frame is not this channel
        b"\x01\x03d\xffc\x01x\x01\x01u\x00",  # channel is not UTF-8
        b"\x01\x03doc\x01x\x00\x01u\x00",  # seq 0
        b"\x01\x03doc\x01x\x01\x01\x07\x00",  # kind is not printable
        b"\x01" + b"\xff" * 20,  # runaway varuint
        b"not even binary",
    ]
    with caplog.at_level(logging.WARNING, logger="server.hub.broker_base"):
        for raw in broken:
            await backend.inject("doc", raw)
        await backend.inject("doc", good)
        await inbox.wait_for_count(1)

    assert inbox.payloads == [b"good"]
    dropped = [r for r in caplog.records if r.getMessage().startswith("Dropping")]
    assert len(dropped) == len(broken)
    assert b.healthy


# -- health and life cycle --------------------------------------------------------------------


async def test_healthy_flag_follows_life_cycle(backend: Backend) -> None:
    if backend.name == "memory":
        broker: Broker = MemoryBroker("solo", backend.bus)
    else:
        broker = RedisBroker(backend.redis_url, "solo", channel_prefix=backend.prefix)
    assert not broker.healthy
    async with broker:
        assert broker.healthy
    assert not broker.healthy
    await broker.stop()  # idempotent
    async with broker:  # a stopped broker can be started again
        assert broker.healthy
    assert not broker.healthy


async def test_use_after_stop_and_bad_arguments_are_errors(backend: Backend) -> None:
    broker = await backend.node()
    with pytest.raises(ValueError, match="kind"):
        await broker.publish("doc", "", b"x")
    with pytest.raises(ValueError, match="kind"):
        await broker.publish("doc", "up date\n", b"x")
    with pytest.raises(ValueError, match="channel"):
        await broker.publish("", "update", b"x")
    with pytest.raises(TypeError, match="bytes"):
        await broker.publish("doc", "update", "text")  # type: ignore[arg-type]

    async def coroutine_handler(envelope: Envelope) -> None: ...

    with pytest.raises(TypeError, match="synchronous"):
        await broker.subscribe("doc", coroutine_handler)  # type: ignore[arg-type]
    subscription = await broker.subscribe("doc", Inbox())
    await broker.stop()
    assert not subscription.active
    await subscription.unsubscribe()  # harmless after stop
    with pytest.raises(RuntimeError, match="not started"):
        await broker.publish("doc", "update", b"x")
    with pytest.raises(RuntimeError, match="not started"):
        await broker.subscribe("doc", Inbox())


# -- Redis only: outages ----------------------------------------------------------------------


@pytest.fixture
async def redis_backend(redis_url: str) -> AsyncIterator[Backend]:
    async with AsyncExitStack() as stack:
        prefix = f"test-broker-{uuid.uuid4().hex[:12]}:"
        yield Backend("redis", stack, redis_url=redis_url, prefix=prefix)


async def eventually(predicate: Callable[[], bool]) -> None:
    """Wait (bounded) for state that has no event of its own: the receive task's retries."""
    async with asyncio.timeout(WAIT):
        while not predicate():  # noqa: ASYNC110 - polling a counter, not synchronising
            await asyncio.sleep(0.02)


class Reconnects:
    """A reconnect listener whose calls a test can wait for."""

    def __init__(self) -> None:
        self.count = 0
        self._event = asyncio.Event()

    def __call__(self) -> None:
        self.count += 1
        self._event.set()

    async def wait(self) -> None:
        async with asyncio.timeout(WAIT):
            await self._event.wait()
        self._event.clear()


async def _kill_subscriber_connections(redis_url: str, *brokers: RedisBroker) -> int:
    """``CLIENT KILL TYPE pubsub`` limited to these brokers' subscriber connections.

    Killing *every* pub/sub client would disturb other suites sharing this Redis, so each
    broker's connection is found by its client name and killed by id.
    """
    names = {broker.client_names[0] for broker in brokers}
    killed = 0
    async with Redis.from_url(redis_url) as admin:
        for client in await admin.client_list(_type="pubsub"):
            if client["name"] in names:
                killed += await admin.execute_command(  # type: ignore[no-untyped-call]
                    "CLIENT", "KILL", "TYPE", "pubsub", "ID", client["id"]
                )
    return killed


@pytest.mark.redis
async def test_redis_recovers_from_killed_pubsub_connection(redis_backend: Backend) -> None:
    backend = redis_backend
    a, b = await backend.node("a"), await backend.node("b")
    assert isinstance(a, RedisBroker) and isinstance(b, RedisBroker)
    a_back, b_back = Reconnects(), Reconnects()
    a.add_reconnect_listener(a_back)
    b.add_reconnect_listener(b_back)
    a_inbox, b_inbox = Inbox(), Inbox()
    await a.subscribe("doc", a_inbox)
    await b.subscribe("doc", b_inbox)
    await b.subscribe("other", b_inbox)
    await a.publish("doc", "update", b"before")
    await b_inbox.wait_for_payload(b"before")

    assert await _kill_subscriber_connections(backend.redis_url, a, b) == 2

    await a_back.wait()
    await b_back.wait()
    assert a.healthy and b.healthy
    await a.publish("doc", "update", b"after")
    await a.publish("other", "update", b"other-after")
    await b.publish("doc", "update", b"from-b-after")
    await b_inbox.wait_for_payload(b"other-after")
    await a_inbox.wait_for_payload(b"from-b-after")
    assert b_inbox.payloads == [b"before", b"after", b"other-after"]
    assert (a_back.count, b_back.count) == (1, 1)


@pytest.mark.redis
async def test_redis_publisher_survives_a_killed_connection(redis_backend: Backend) -> None:
    a, b = await redis_backend.node("a"), await redis_backend.node("b")
    assert isinstance(a, RedisBroker)
    inbox = Inbox()
    await b.subscribe("doc", inbox)
    await a.publish("doc", "update", b"before")
    await inbox.wait_for_payload(b"before")

    async with Redis.from_url(redis_backend.redis_url) as admin:
        (client,) = [c for c in await admin.client_list() if c["name"] == a.client_names[1]]
        await admin.execute_command("CLIENT", "KILL", "ID", client["id"])  # type: ignore[no-untyped-call]

    await a.publish("doc", "update", b"after")  # reconnects instead of failing
    await inbox.wait_for_payload(b"after")
    assert a.healthy
    assert [item.gap for item in inbox.items] == [False, False]


@pytest.mark.redis
async def test_redis_publishes_waiting_together_share_a_pipeline_and_keep_order(
    redis_backend: Backend,
) -> None:
    a, b = await redis_backend.node("a"), await redis_backend.node("b")
    assert isinstance(a, RedisBroker)
    channels = [f"doc-{n}" for n in range(20)]
    inboxes = {channel: Inbox() for channel in channels}
    for channel, inbox in inboxes.items():
        await b.subscribe(channel, inbox)
    before = a.pipelines_sent

    async def stream(channel: str) -> None:
        for n in range(10):
            await a.publish(channel, "update", f"{channel}:{n}".encode())

    await asyncio.gather(*(stream(channel) for channel in channels))
    for channel, inbox in inboxes.items():
        await inbox.wait_for_count(10)
        assert inbox.payloads == [f"{channel}:{n}".encode() for n in range(10)]
        assert not any(item.gap for item in inbox.items)
    # 200 messages, 20 channels publishing at once: far fewer round trips than messages.
    assert a.pipelines_sent - before <= 40


async def test_redis_publish_while_unreachable() -> None:
    broker = RedisBroker("redis://127.0.0.1:1/0", "lonely", channel_prefix="unreachable:")
    back = Reconnects()
    broker.add_reconnect_listener(back)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await broker.start()
    try:
        assert loop.time() - started < 3.0
        assert not broker.healthy
        inbox = Inbox()
        subscription = await broker.subscribe("doc", inbox)  # recorded, active on reconnect

        started = loop.time()
        with pytest.raises(BrokerUnavailable):
            await broker.publish("doc", "update", b"lost")
        assert loop.time() - started < 3.5
        assert not broker.healthy

        attempts = broker.connection_attempts
        await eventually(lambda: broker.connection_attempts >= attempts + 3)  # keeps retrying
        assert subscription.active
        assert back.count == 0
    finally:
        started = loop.time()
        await broker.stop()
        assert loop.time() - started < 2.0
    assert not broker.healthy


# -- Redis only: a full server restart (a private redis-server on a free port) -----------------


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    require_service("redis-server binary", shutil.which("redis-server") is not None)
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.mark.redis
async def test_redis_recovers_from_server_restart(private_redis: PrivateRedis) -> None:
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(RedisBroker(private_redis.url, "a"))
        b = await stack.enter_async_context(RedisBroker(private_redis.url, "b"))
        a_back, b_back = Reconnects(), Reconnects()
        a.add_reconnect_listener(a_back)
        b.add_reconnect_listener(b_back)
        inbox = Inbox()
        await b.subscribe("doc", inbox)
        await a.publish("doc", "update", b"before")
        await inbox.wait_for_payload(b"before")

        await asyncio.to_thread(private_redis.kill)
        with pytest.raises(BrokerUnavailable):
            await a.publish("doc", "update", b"lost")
        assert not a.healthy
        await eventually(lambda: not b.healthy)
        # (Un)subscribing while down is recorded and applied on reconnect.
        added, dropped = Inbox(), Inbox()
        await b.subscribe("added-while-down", added)
        await (await b.subscribe("dropped-while-down", dropped)).unsubscribe()

        await asyncio.to_thread(private_redis.start)
        await b_back.wait()
        await a_back.wait()
        assert a.healthy and b.healthy
        await a.publish("dropped-while-down", "update", b"unwanted")
        await a.publish("added-while-down", "update", b"wanted")
        await a.publish("doc", "update", b"after")
        await inbox.wait_for_payload(b"after")
        await added.wait_for_payload(b"wanted")
        assert dropped.items == []
        after = inbox.items[-1]
        assert (after.seq, after.gap) == (3, True)  # seq 2 was lost with the old server


@pytest.mark.redis
async def test_redis_notices_an_unresponsive_server(private_redis: PrivateRedis) -> None:
    # A frozen server never closes the socket: only the PING deadline can notice it.
    def broker(node_id: str) -> RedisBroker:
        return RedisBroker(
            private_redis.url, node_id, ping_interval=0.2, ping_timeout=0.3, socket_timeout=0.3
        )

    async with broker("a") as a, broker("b") as b:
        back = Reconnects()
        b.add_reconnect_listener(back)
        inbox = Inbox()
        await b.subscribe("doc", inbox)

        private_redis.freeze()
        try:
            await eventually(lambda: not b.healthy)
            with pytest.raises(BrokerUnavailable):
                await a.publish("doc", "update", b"lost")
        finally:
            private_redis.thaw()

        await back.wait()
        assert b.healthy
        await a.publish("doc", "update", b"after")
        await inbox.wait_for_payload(b"after")
