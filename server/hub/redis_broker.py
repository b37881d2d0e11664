"""The Redis pub/sub broker backend: any number of server nodes share sessions through Redis.

Channel ``c`` is the Redis channel ``channel_prefix + c``. Each node holds two connections:

* one subscriber connection multiplexing every subscribed channel, owned by a
  :class:`~server.hub.redis_subscriber.RedisSubscriber` (receive task, liveness checks,
  reconnect with backoff, resubscription);
* one connection for PUBLISH: publishes waiting at the same moment (any channels) go out as one
  pipeline (:class:`~server.hub.redis_publisher.PipelinedPublisher`), one pipeline at a time.

Payloads stay ``bytes`` end to end (``decode_responses=False``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from server.hub.broker_base import (
    DEFAULT_CHANNEL_PREFIX,
    DEFAULT_PUBLISH_TIMEOUT,
    Broker,
    BrokerUnavailable,
)
from server.hub.redis_publisher import PipelinedPublisher
from server.hub.redis_subscriber import RedisSubscriber, SubscriberSettings

__all__ = ["RedisBroker"]

logger = logging.getLogger(__name__)


class RedisBroker(Broker):
    """A broker backed by Redis pub/sub.

    Starting never fails because Redis is down: the broker starts unhealthy, keeps retrying in
    its receive task and calls the reconnect listeners once Redis answers again. ``healthy``
    is false while the subscriber connection is down or since the last publish failed (a
    successful publish, or the subscriber's recovery, clears that).

    Timeouts are in seconds: ``socket_timeout`` bounds connecting and each socket operation,
    ``publish_timeout`` a whole :meth:`publish`, ``subscribe_timeout`` the wait for Redis to
    confirm a SUBSCRIBE; ``ping_interval``/``ping_timeout`` detect a silent connection; the
    reconnect backoff doubles from ``backoff_initial`` up to ``backoff_max``.
    """

    def __init__(
        self,
        url: str,
        node_id: str,
        channel_prefix: str = DEFAULT_CHANNEL_PREFIX,
        *,
        socket_timeout: float = 1.0,
        publish_timeout: float = DEFAULT_PUBLISH_TIMEOUT,
        subscribe_timeout: float = 3.0,
        ping_interval: float = 5.0,
        ping_timeout: float = 3.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 2.0,
    ) -> None:
        super().__init__(node_id, publish_timeout=publish_timeout)
        self._url = url
        self._where = _redact(url)
        self._prefix = channel_prefix.encode("utf-8")
        self._socket_timeout = socket_timeout
        self._client_name = _client_name(f"{channel_prefix}{node_id}")
        self._publisher: Redis | None = None
        self._pipeline: PipelinedPublisher | None = None
        self._pub_ok = True
        self._subscriber = RedisSubscriber(
            url,
            where=self._where,
            client_name=f"{self._client_name}:sub",
            settings=SubscriberSettings(
                socket_timeout=socket_timeout,
                subscribe_timeout=subscribe_timeout,
                ping_interval=ping_interval,
                ping_timeout=ping_timeout,
                backoff_initial=backoff_initial,
                backoff_max=backoff_max,
            ),
            wanted=lambda: [self._raw(channel) for channel in self._subscriptions],
            on_message=self._on_message,
            on_recovered=self._on_recovered,
        )

    @property
    def connection_attempts(self) -> int:
        """How many times the receive task tried to (re)connect (a health/ops statistic)."""
        return self._subscriber.attempts

    @property
    def pipelines_sent(self) -> int:
        """How many PUBLISH pipelines went to Redis (each carries one or more messages)."""
        return self._pipeline.pipelines if self._pipeline is not None else 0

    @property
    def client_names(self) -> tuple[str, str]:
        """The CLIENT SETNAME of the subscriber and publisher connections (for operators)."""
        return f"{self._client_name}:sub", f"{self._client_name}:pub"

    async def _start(self) -> None:
        self._publisher = Redis.from_url(
            self._url,
            # One retry, on a connection error only: it rides over a publisher connection
            # killed since its last use. Timeouts are not retried (the PUBLISH may have run).
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            client_name=f"{self._client_name}:pub",
            socket_timeout=self._socket_timeout,
            socket_connect_timeout=self._socket_timeout,
            health_check_interval=0,
            decode_responses=False,
        )
        self._pipeline = await PipelinedPublisher(self._publisher).__aenter__()
        await self._subscriber.start()

    async def _stop(self) -> None:
        await self._subscriber.stop()
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            await pipeline.__aexit__(None, None, None)
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            try:
                await publisher.aclose()
            except (RedisError, OSError) as exc:
                logger.warning("Closing the Redis publisher failed: %s", exc)

    def _backend_healthy(self) -> bool:
        return self._subscriber.healthy and self._pub_ok

    async def _send(self, channel: str, frame: bytes) -> None:
        await self._send_many(channel, [frame])

    async def _send_many(self, channel: str, frames: Sequence[bytes]) -> None:
        if self._pipeline is None:
            raise BrokerUnavailable("broker is not started")
        try:
            await self._pipeline.publish_many(self._raw(channel), frames)
        except (RedisError, OSError) as exc:
            self._set_pub_ok(False, exc)
            raise BrokerUnavailable(f"Redis at {self._where} is unavailable: {exc}") from exc
        self._set_pub_ok(True)

    def _publish_timed_out(self) -> None:
        self._set_pub_ok(False, "publish timed out")

    async def _backend_subscribe(self, channel: str, *, first: bool) -> None:
        await self._subscriber.subscribe(self._raw(channel), join=not first)

    async def _backend_unsubscribe(self, channel: str) -> None:
        await self._subscriber.unsubscribe(self._raw(channel))

    def _on_message(self, raw: bytes, data: object) -> bool:
        channel = raw[len(self._prefix) :].decode("utf-8", errors="replace")
        if channel not in self._subscriptions:
            return False
        if isinstance(data, bytes):
            self._deliver_frame(channel, data)
        else:
            logger.warning("Dropping non-binary message on channel %r", channel)
        return True

    def _on_recovered(self) -> None:
        self._pub_ok = True  # Redis answers again; the publisher reconnects on next use
        self._notify_reconnected()

    def _set_pub_ok(self, ok: bool, reason: object = None) -> None:
        if ok and not self._pub_ok:
            logger.info("Publishing to Redis at %s works again", self._where)
        elif not ok and self._pub_ok:
            logger.warning("Publishing to Redis at %s failed: %s", self._where, reason)
        self._pub_ok = ok

    def _raw(self, channel: str) -> bytes:
        return self._prefix + channel.encode("utf-8")


def _redact(url: str) -> str:
    """``url`` without credentials, for logs."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    return f"{parts.scheme}://{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path}"


def _client_name(name: str) -> str:
    """A CLIENT SETNAME-safe version of ``name`` (no spaces or control characters)."""
    return re.sub(r"[^\x21-\x7e]", "_", name)[:200]
