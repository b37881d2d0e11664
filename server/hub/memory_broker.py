"""The in-process broker backend: one node by default, several nodes sharing a bus in tests."""

from __future__ import annotations

import asyncio

from server.hub.broker_base import DEFAULT_PUBLISH_TIMEOUT, Broker

__all__ = ["MemoryBroker", "MemoryBus"]


class MemoryBus:
    """An in-process stand-in for Redis pub/sub, shared by the :class:`MemoryBroker` s on it.

    Frames are delivered through the event loop (``loop.call_soon``), never synchronously, so
    handlers never run inside ``publish``'s call stack and ordering is FIFO. A bus belongs to
    one event loop at a time.
    """

    def __init__(self) -> None:
        self._members: dict[str, list[MemoryBroker]] = {}

    def deliver(self, channel: str, frame: bytes) -> int:
        """Schedule ``frame`` for every broker subscribed to ``channel``; return how many.

        This is also the test hook for injecting hand-made (or malformed) frames.
        """
        members = self._members.get(channel)
        if not members:
            return 0
        loop = asyncio.get_running_loop()
        for broker in tuple(members):
            loop.call_soon(broker._deliver_frame, channel, frame)
        return len(members)

    def subscribers(self, channel: str) -> int:
        """How many brokers on this bus subscribe to ``channel``."""
        return len(self._members.get(channel, ()))

    def _join(self, channel: str, broker: MemoryBroker) -> None:
        members = self._members.setdefault(channel, [])
        if broker not in members:
            members.append(broker)

    def _leave(self, channel: str, broker: MemoryBroker) -> None:
        members = self._members.get(channel)
        if members is not None and broker in members:
            members.remove(broker)
            if not members:
                del self._members[channel]


class MemoryBroker(Broker):
    """A broker that stays inside this process.

    With the default private bus it is a single node: nothing is ever delivered to it (its own
    messages are dropped). Several brokers given the same :class:`MemoryBus` behave like nodes
    sharing one Redis. It is always healthy while started and never calls reconnect listeners.
    """

    def __init__(
        self,
        node_id: str,
        bus: MemoryBus | None = None,
        *,
        publish_timeout: float = DEFAULT_PUBLISH_TIMEOUT,
    ) -> None:
        super().__init__(node_id, publish_timeout=publish_timeout)
        self._private_bus = bus is None
        self._bus = bus if bus is not None else MemoryBus()

    @property
    def single_node(self) -> bool:
        """A private bus (the default) has no other node on it, ever."""
        return self._private_bus

    @property
    def bus(self) -> MemoryBus:
        """The bus this broker publishes on."""
        return self._bus

    async def _start(self) -> None:
        return None

    async def _stop(self) -> None:
        for channel in list(self._bus._members):
            self._bus._leave(channel, self)

    async def _send(self, channel: str, frame: bytes) -> None:
        self._bus.deliver(channel, frame)
        # Yield once per publish so a tight publishing loop lets deliveries run: the loop's
        # ready queue then holds at most one publish's worth of callbacks per publisher.
        await asyncio.sleep(0)

    async def _backend_subscribe(self, channel: str, *, first: bool) -> None:
        self._bus._join(channel, self)

    async def _backend_unsubscribe(self, channel: str) -> None:
        self._bus._leave(channel, self)

    def _backend_healthy(self) -> bool:
        return True
