"""The subscriber side of :class:`~server.hub.redis_broker.RedisBroker`.

One Redis connection multiplexes every subscribed channel, and one receive task owns it for
its whole life. The connection is driven directly rather than through redis-py's ``PubSub``:
``PubSub``'s retry path silently reconnects and resubscribes inside a failing call (so an
outage, and the messages lost in it, would go unnoticed - redis/redis-py#2089, #1572), and its
health check only *sends* PING, never noticing a half-open socket (redis/redis-py#2417,
celery/kombu#2590). Here:

* the task reads with a deadline; after ``ping_interval`` of silence it sends PING, and if
  nothing at all arrives within ``ping_timeout`` the connection is declared dead;
* on any connection error (``CLIENT KILL``, a Redis restart, network loss) it marks itself
  unhealthy, logs, reconnects with capped exponential backoff and jitter, resubscribes every
  wanted channel, waits until Redis confirmed them, marks itself healthy and reports the
  recovery;
* it never dies: unexpected errors are logged with their traceback and handled like a lost
  connection;
* SUBSCRIBE/UNSUBSCRIBE from other tasks are written under a lock and confirmed by the
  receive task (Redis acknowledges each channel, in order); a dead connection is never
  written to, so redis-py never reconnects it behind our back.

Messages are dispatched synchronously from the receive task: nothing queues in the process. A
consumer too slow for Redis' ``client-output-buffer-limit pubsub`` is disconnected by Redis,
which is handled as an outage.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

__all__ = ["RedisSubscriber", "SubscriberSettings"]

logger = logging.getLogger(__name__)

_SUBSCRIBE_BATCH = 256
_WARN_EVERY_ATTEMPTS = 30

_Pending = deque[tuple[bool, asyncio.Future[bool]]]


class _ConnectionDead(Exception):
    """The subscriber connection stopped answering (no reply to PING or SUBSCRIBE)."""


@dataclass(frozen=True, slots=True)
class SubscriberSettings:
    """Timeouts (seconds) of a :class:`RedisSubscriber`."""

    socket_timeout: float = 1.0
    subscribe_timeout: float = 3.0
    ping_interval: float = 5.0
    ping_timeout: float = 3.0
    backoff_initial: float = 0.1
    backoff_max: float = 2.0


class RedisSubscriber:
    """A self-healing Redis subscriber connection.

    ``wanted()`` lists the raw channel names to be subscribed (asked on every reconnect);
    ``on_message(channel, data)`` gets every message and returns whether the channel is still
    wanted (if not, it is unsubscribed); ``on_recovered()`` is called after an outage once every
    wanted channel is subscribed again.
    """

    def __init__(
        self,
        url: str,
        *,
        where: str,
        client_name: str,
        settings: SubscriberSettings,
        wanted: Callable[[], list[bytes]],
        on_message: Callable[[bytes, object], bool],
        on_recovered: Callable[[], None],
    ) -> None:
        self._url = url
        self._where = where
        self._client_name = client_name
        self._settings = settings
        self._wanted = wanted
        self._on_message = on_message
        self._on_recovered = on_recovered
        self._pool: ConnectionPool | None = None
        self._task: asyncio.Task[None] | None = None
        self._conn: AbstractConnection | None = None  # None while down
        self._pending: dict[bytes, _Pending] = {}  # unconfirmed (UN)SUBSCRIBEs per channel
        self._subscribing: dict[bytes, asyncio.Future[None]] = {}  # subscribe() in progress
        self._write_lock = asyncio.Lock()
        self._first_attempt = asyncio.Event()
        self.healthy = False
        self.attempts = 0

    async def start(self) -> None:
        """Start the receive task and wait (bounded) for its first connection attempt."""
        s = self._settings
        self._first_attempt = asyncio.Event()
        self._pool = ConnectionPool.from_url(
            self._url,
            retry=Retry(NoBackoff(), 0),  # failures surface to the receive task
            client_name=self._client_name,
            socket_timeout=s.socket_timeout,
            socket_connect_timeout=s.socket_timeout,
            health_check_interval=0,  # liveness is checked by the receive task
            decode_responses=False,
        )
        self._task = asyncio.create_task(self._run(), name=f"redis-subscriber[{self._where}]")
        try:
            async with asyncio.timeout(s.socket_timeout * 2 + s.subscribe_timeout):
                await self._first_attempt.wait()
        except TimeoutError:
            logger.warning("Redis at %s did not answer within the start timeout", self._where)

    async def stop(self) -> None:
        """Cancel and await the receive task, then close every connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
            if not task.cancelled() and task.exception() is not None:
                logger.error("Redis receive task had failed", exc_info=task.exception())
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await pool.aclose()
            except (RedisError, OSError) as exc:
                logger.warning("Closing the Redis subscriber pool failed: %s", exc)
        self.healthy = False

    async def subscribe(self, channel: bytes, *, join: bool = False) -> None:
        """SUBSCRIBE ``channel`` and wait (bounded) for Redis to confirm it.

        ``join``: send nothing, only wait for a :meth:`subscribe` of the same channel still in
        progress. Returns at once while down: the channel is subscribed on reconnect (it is in
        ``wanted()``).
        """
        timeout = self._settings.subscribe_timeout
        if join:
            in_progress = self._subscribing.get(channel)
            if in_progress is not None:
                await asyncio.wait({in_progress}, timeout=timeout)
            return
        finished = asyncio.get_running_loop().create_future()
        self._subscribing[channel] = finished
        try:
            waiting = await self._command("SUBSCRIBE", [channel])
            if waiting:
                done, _ = await asyncio.wait(waiting, timeout=timeout)
                if not done:
                    logger.warning("Redis did not confirm SUBSCRIBE %r in time", channel)
        finally:
            if self._subscribing.get(channel) is finished:
                del self._subscribing[channel]
            finished.set_result(None)

    async def unsubscribe(self, channel: bytes) -> None:
        """UNSUBSCRIBE ``channel`` (without waiting for the confirmation)."""
        await self._command("UNSUBSCRIBE", [channel])

    # -- writing ---------------------------------------------------------------------------

    async def _command(
        self, command: str, channels: list[bytes], conn: AbstractConnection | None = None
    ) -> list[asyncio.Future[bool]]:
        async with self._write_lock:
            return await self._send_locked(command, channels, conn)

    async def _send_locked(
        self, command: str, channels: list[bytes], conn: AbstractConnection | None = None
    ) -> list[asyncio.Future[bool]]:
        """Send (UN)SUBSCRIBE with the write lock held; return the confirmation futures.

        Returns none when the connection is down (or ``conn`` is no longer current); a failed
        send drops the connection and leaves the rest to the receive task.
        """
        if conn is None:
            conn = self._conn
        if conn is None or conn is not self._conn or not conn.is_connected:
            return []
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[bool]] = []
        for channel in channels:
            future: asyncio.Future[bool] = loop.create_future()
            self._pending.setdefault(channel, deque()).append((command == "SUBSCRIBE", future))
            futures.append(future)
        try:
            await conn.send_command(command, *channels, check_health=False)
        except (RedisError, OSError) as exc:
            logger.warning("Sending %s to Redis at %s failed: %s", command, self._where, exc)
            self._forget_connection(conn)
            return []
        return futures

    # -- the receive task ------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = self._settings.backoff_initial
        failures = 0
        outage = False
        while True:
            conn: AbstractConnection | None = None
            self.attempts += 1
            try:
                assert self._pool is not None
                conn = await self._pool.get_connection()  # type: ignore[no-untyped-call]
                await self._resubscribe(conn)
                self.healthy = True
                self._first_attempt.set()
                if outage:
                    logger.info(
                        "Redis pub/sub at %s is back after %d failed attempt(s)",
                        self._where,
                        failures,
                    )
                    outage, failures, backoff = False, 0, self._settings.backoff_initial
                    self._on_recovered()
                await self._read_forever(conn)
            except (RedisError, OSError, _ConnectionDead) as exc:
                failures += 1
                level = logging.DEBUG
                if failures == 1 or failures % _WARN_EVERY_ATTEMPTS == 0:
                    level = logging.WARNING
                logger.log(
                    level,
                    "Redis pub/sub at %s unavailable (%d failed attempt(s)): %s; retrying",
                    self._where,
                    failures,
                    f"{type(exc).__name__}: {exc}",
                )
            except Exception:  # the receive task must survive anything
                failures += 1
                logger.exception("Unexpected error in the Redis receive task; reconnecting")
            finally:
                if conn is not None:
                    await self._release(conn)
            self.healthy = False
            outage = True
            self._first_attempt.set()
            await asyncio.sleep(random.uniform(backoff / 2, backoff))
            backoff = min(backoff * 2, self._settings.backoff_max)

    async def _resubscribe(self, conn: AbstractConnection) -> None:
        """Make ``conn`` current, subscribe every wanted channel and await the confirmations."""
        futures: list[asyncio.Future[bool]] = []
        async with self._write_lock:  # one critical section: no (un)subscribe interleaves
            self._conn = conn
            channels = self._wanted()
            for start in range(0, len(channels), _SUBSCRIBE_BATCH):
                batch = channels[start : start + _SUBSCRIBE_BATCH]
                sent = await self._send_locked("SUBSCRIBE", batch, conn)
                if len(sent) != len(batch):
                    raise RedisConnectionError("SUBSCRIBE could not be sent")
                futures.extend(sent)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.subscribe_timeout
        while not all(future.done() for future in futures):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise _ConnectionDead("Redis did not confirm SUBSCRIBE in time")
            await self._handle(conn, await self._read(conn, remaining))

    async def _read_forever(self, conn: AbstractConnection) -> None:
        """Dispatch everything Redis sends on ``conn``; raise when it fails or goes silent."""
        s = self._settings
        loop = asyncio.get_running_loop()
        last_heard = loop.time()
        ping_sent: float | None = None
        while True:
            now = loop.time()
            if ping_sent is None and now - last_heard >= s.ping_interval:
                async with self._write_lock:
                    if not conn.is_connected:
                        raise RedisConnectionError("subscriber connection closed")
                    await conn.send_command("PING", check_health=False)
                ping_sent = now
            if ping_sent is None:
                deadline = last_heard + s.ping_interval
            elif now >= ping_sent + s.ping_timeout:
                raise _ConnectionDead(f"no reply to PING within {s.ping_timeout}s")
            else:
                deadline = ping_sent + s.ping_timeout
            response = await self._read(conn, max(deadline - now, 0.01))
            if response is None:
                continue
            last_heard, ping_sent = loop.time(), None  # anything at all proves liveness
            await self._handle(conn, response)

    async def _read(self, conn: AbstractConnection, seconds: float) -> object:
        """The next reply on ``conn``, or ``None`` after ``seconds``.

        A read cut short by the deadline keeps its partial data in redis-py's parser, and the
        next read resumes it.
        """
        if not conn.is_connected:
            raise RedisConnectionError("subscriber connection closed")
        return await conn.read_response(
            timeout=seconds, disconnect_on_error=False, push_request=True
        )

    async def _handle(self, conn: AbstractConnection, response: object) -> None:
        if not isinstance(response, list) or len(response) < 2:
            return  # PONG: b"PONG" outside subscribed mode, [b"pong", b""] inside
        kind, channel = response[0], response[1]
        if not isinstance(channel, bytes):
            return
        if kind == b"message" and len(response) == 3:
            wanted = self._on_message(channel, response[2])
            unsubscribing = any(not is_sub for is_sub, _ in self._pending.get(channel, ()))
            if not wanted and not unsubscribing:
                # Subscribed at Redis but no longer here (a subscribe() cancelled mid-way).
                await self._command("UNSUBSCRIBE", [channel], conn)
        elif kind in (b"subscribe", b"unsubscribe"):
            pending = self._pending.get(channel)
            if pending:
                _, future = pending.popleft()
                if not pending:
                    del self._pending[channel]
                if not future.done():
                    future.set_result(True)

    def _forget_connection(self, conn: AbstractConnection) -> None:
        """Stop using ``conn`` (write lock held) and release everyone waiting on it."""
        if self._conn is not conn:
            return
        self._conn = None
        pending, self._pending = self._pending, {}
        for entries in pending.values():
            for _, future in entries:
                if not future.done():
                    future.set_result(False)

    async def _release(self, conn: AbstractConnection) -> None:
        async with self._write_lock:
            self._forget_connection(conn)
        await conn.disconnect(nowait=True)
        if self._pool is not None:
            await self._pool.release(conn)
