"""The implementation behind :mod:`server.hub.broker`: the shared base of every backend.

Import the public names from :mod:`server.hub.broker`; backends subclass :class:`Broker` here.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Self

from server.hub.broker_envelope import (
    Envelope,
    MalformedFrame,
    SequenceTracker,
    decode_envelope,
    encode_envelope,
    validate_channel,
    validate_kind,
    validate_node_id,
)

__all__ = [
    "DEFAULT_CHANNEL_PREFIX",
    "DEFAULT_PUBLISH_TIMEOUT",
    "Broker",
    "BrokerError",
    "BrokerUnavailable",
    "EnvelopeHandler",
    "ReconnectListener",
    "Subscription",
]

logger = logging.getLogger(__name__)

EnvelopeHandler = Callable[[Envelope], None]
"""A subscriber: called synchronously on the event loop with each envelope."""

ReconnectListener = Callable[[], None]
"""Called (synchronously, on the event loop) after the backend recovered from an outage."""

DEFAULT_CHANNEL_PREFIX = "prompt-studio:"
"""Prefix of every Redis channel name, so several deployments can share one Redis."""

PUBLISH_LOCK_STRIPES = 64
"""How many channels may publish at once (a channel always maps to the same stripe)."""

DEFAULT_PUBLISH_TIMEOUT = 3.0
"""Upper bound (seconds) on one ``publish`` call, waiting for earlier publishes included."""


class BrokerError(Exception):
    """Base class of broker errors."""


class BrokerUnavailable(BrokerError):
    """The backend cannot take the message now (down, unreachable or too slow)."""


class Subscription:
    """One handler subscribed to one channel; returned by :meth:`Broker.subscribe`."""

    __slots__ = ("_active", "_broker", "_channel", "_handler")

    def __init__(self, broker: Broker, channel: str, handler: EnvelopeHandler) -> None:
        self._broker = broker
        self._channel = channel
        self._handler = handler
        self._active = True

    @property
    def channel(self) -> str:
        """The channel subscribed to."""
        return self._channel

    @property
    def handler(self) -> EnvelopeHandler:
        """The handler called with each envelope."""
        return self._handler

    @property
    def active(self) -> bool:
        """Whether the handler still receives envelopes."""
        return self._active

    async def unsubscribe(self) -> None:
        """Stop delivery to this handler; calling it again does nothing.

        No envelope reaches the handler after this is called, even one already on its way.
        """
        if not self._active:
            return
        self._active = False
        await self._broker._remove_subscription(self)

    def __repr__(self) -> str:
        state = "active" if self._active else "inactive"
        return f"<Subscription {self.channel!r} {state}>"


class Broker(ABC):
    """The broker interface and the behaviour every backend shares.

    Use it as an async context manager (or call :meth:`start` / :meth:`stop`). Backends
    implement the ``_backend_*`` hooks, ``_send`` and ``_backend_healthy`` and hand received
    raw frames to :meth:`_deliver_frame`.
    """

    def __init__(self, node_id: str, *, publish_timeout: float = DEFAULT_PUBLISH_TIMEOUT) -> None:
        validate_node_id(node_id)
        self._node_id = node_id
        self._publish_timeout = publish_timeout
        self._running = False
        self._subscriptions: dict[str, list[Subscription]] = {}
        self._trackers: dict[str, SequenceTracker] = {}
        self._next_seq: dict[str, int] = {}
        self._listeners: list[ReconnectListener] = []
        # Publishes on one channel are serialised (so seq order is delivery order); different
        # channels proceed concurrently. Striped locks keep that bounded however many channels.
        self._publish_locks = [asyncio.Lock() for _ in range(PUBLISH_LOCK_STRIPES)]
        # Statistics for /metrics: messages handed to the backend, and sends that failed.
        self.published = 0
        self.publish_failures = 0

    @property
    def node_id(self) -> str:
        """This node's id; envelopes carrying it are this node's own and are not delivered."""
        return self._node_id

    @property
    def single_node(self) -> bool:
        """True when no other node can ever share this broker (nothing to exchange with)."""
        return False

    @property
    def healthy(self) -> bool:
        """Whether the broker is started and its backend currently works."""
        return self._running and self._backend_healthy()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the backend. A backend that is down does not fail this: see :attr:`healthy`."""
        if self._running:
            raise RuntimeError("broker already started")
        try:
            await self._start()
        except BaseException:
            await self._stop()
            raise
        self._running = True

    async def stop(self) -> None:
        """Stop the backend and every task it owns; subscriptions end. Idempotent."""
        if not self._running:
            return
        self._running = False
        for subscriptions in self._subscriptions.values():
            for subscription in subscriptions:
                subscription._active = False
        self._subscriptions.clear()
        self._trackers.clear()
        await self._stop()

    async def publish(self, channel: str, kind: str, payload: bytes) -> None:
        """Send ``payload`` to every other node subscribed to ``channel``.

        Messages of one node on one channel arrive in the order of their ``publish`` calls.
        Raises :class:`BrokerUnavailable` if the backend is down or the call takes longer than
        the publish timeout; the message may then be lost, and receivers will see a gap.
        """
        await self.publish_many(channel, [(kind, payload)])

    async def publish_many(self, channel: str, messages: Sequence[tuple[str, bytes]]) -> None:
        """Send several ``(kind, payload)`` messages on ``channel``, in order, as one send.

        Like :meth:`publish` called for each in turn, but a backend that can sends them in one
        round trip: a busy document then never waits a round trip per message. On failure any
        of them may be lost (receivers see a gap).
        """
        self._check_running()
        validate_channel(channel)
        for kind, payload in messages:
            validate_kind(kind)
            if not isinstance(payload, bytes):
                raise TypeError("payload must be bytes")
        if not messages:
            return
        try:
            lock = self._publish_locks[zlib.crc32(channel.encode()) % PUBLISH_LOCK_STRIPES]
            async with asyncio.timeout(self._publish_timeout), lock:
                seq = self._next_seq.get(channel, 0)
                frames = []
                for kind, payload in messages:
                    seq += 1
                    frames.append(
                        encode_envelope(Envelope(channel, self._node_id, seq, kind, payload))
                    )
                self._next_seq[channel] = seq
                await self._send_many(channel, frames)
        except TimeoutError as exc:
            self.publish_failures += 1
            self._publish_timed_out()
            raise BrokerUnavailable(
                f"publish on {channel!r} took longer than {self._publish_timeout}s"
            ) from exc
        except Exception:
            self.publish_failures += 1
            raise
        self.published += len(messages)

    async def subscribe(self, channel: str, handler: EnvelopeHandler) -> Subscription:
        """Call ``handler`` with every envelope other nodes publish on ``channel`` from now on.

        When the backend is healthy, the subscription is active when this returns. When it is
        down, the subscription is recorded and becomes active on reconnect (followed by the
        reconnect listeners); this never raises :class:`BrokerUnavailable`.
        """
        self._check_running()
        validate_channel(channel)
        if not callable(handler) or inspect.iscoroutinefunction(handler):
            raise TypeError("handler must be a synchronous callable")
        subscription = Subscription(self, channel, handler)
        existing = self._subscriptions.get(channel)
        if existing is None:
            self._subscriptions[channel] = [subscription]
            self._trackers[channel] = SequenceTracker()
        else:
            existing.append(subscription)
        try:
            await self._backend_subscribe(channel, first=existing is None)
        except BaseException:
            subscription._active = False
            self._forget(subscription)
            raise
        return subscription

    def add_reconnect_listener(self, listener: ReconnectListener) -> None:
        """Call ``listener()`` each time the backend comes back after an outage."""
        self._listeners.append(listener)

    def remove_reconnect_listener(self, listener: ReconnectListener) -> None:
        """Undo :meth:`add_reconnect_listener`; unknown listeners are ignored."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    # -- for backends ----------------------------------------------------------------------

    @property
    def subscribed_channels(self) -> frozenset[str]:
        """Channels with at least one active local subscription."""
        return frozenset(self._subscriptions)

    def _deliver_frame(self, channel: str, frame: bytes) -> None:
        """Decode a frame received on ``channel`` and hand it to that channel's handlers."""
        subscriptions = self._subscriptions.get(channel)
        if not self._running or not subscriptions:
            return
        try:
            envelope = decode_envelope(frame)
        except MalformedFrame as exc:
            logger.warning(
                "Dropping malformed frame on channel %r (%d bytes): %s", channel, len(frame), exc
            )
            return
        if envelope.channel != channel:
            logger.warning(
                "Dropping frame for channel %r received on channel %r", envelope.channel, channel
            )
            return
        if envelope.sender == self._node_id:
            return
        if self._trackers[channel].observe(envelope.sender, envelope.seq):
            envelope = replace(envelope, gap=True)
            logger.info(
                "Gap on channel %r from node %r before seq %d",
                channel,
                envelope.sender,
                envelope.seq,
            )
        for subscription in tuple(subscriptions):
            if not subscription.active:
                continue
            try:
                subscription.handler(envelope)
            except Exception:
                logger.exception(
                    "Broker handler %r failed on channel %r", subscription.handler, channel
                )

    def _notify_reconnected(self) -> None:
        """Call every reconnect listener; one that raises is logged and the rest still run."""
        for listener in tuple(self._listeners):
            try:
                listener()
            except Exception:
                logger.exception("Broker reconnect listener %r failed", listener)

    def _publish_timed_out(self) -> None:
        """Hook: a publish exceeded the publish timeout (nothing to do by default)."""
        return None

    @abstractmethod
    async def _start(self) -> None:
        """Acquire backend resources and start owned tasks."""

    @abstractmethod
    async def _stop(self) -> None:
        """Release everything :meth:`_start` acquired (also after a partial start)."""

    @abstractmethod
    async def _send(self, channel: str, frame: bytes) -> None:
        """Transmit one frame; raise :class:`BrokerUnavailable` on backend failure."""

    async def _send_many(self, channel: str, frames: Sequence[bytes]) -> None:
        """Transmit frames in order (a backend may override this to batch them)."""
        for frame in frames:
            await self._send(channel, frame)

    @abstractmethod
    async def _backend_subscribe(self, channel: str, *, first: bool) -> None:
        """Make sure ``channel`` is subscribed (``first``: it had no local subscription)."""

    @abstractmethod
    async def _backend_unsubscribe(self, channel: str) -> None:
        """``channel`` lost its last local subscription."""

    @abstractmethod
    def _backend_healthy(self) -> bool:
        """Whether the backend currently works."""

    # -- internals -------------------------------------------------------------------------

    def _check_running(self) -> None:
        if not self._running:
            raise RuntimeError("broker is not started")

    def _forget(self, subscription: Subscription) -> bool:
        """Drop a subscription locally; return whether its channel has no subscription left."""
        subscriptions = self._subscriptions.get(subscription.channel)
        if subscriptions is None or subscription not in subscriptions:
            return False
        subscriptions.remove(subscription)
        if subscriptions:
            return False
        del self._subscriptions[subscription.channel]
        del self._trackers[subscription.channel]
        return True

    async def _remove_subscription(self, subscription: Subscription) -> None:
        if self._forget(subscription) and self._running:
            await self._backend_unsubscribe(subscription.channel)
