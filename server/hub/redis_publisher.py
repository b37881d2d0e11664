"""PUBLISH to Redis in pipelines: every publish waiting at the same moment shares one round trip.

A node publishes one message per update per room. Sent one command at a time, each costs a
socket write (and on loopback the kernel's delivery to Redis is charged to that write), a reply
read, and redis-py's per-command overhead: under load that was a fifth of a node's CPU. Here the
publishes requested while the previous pipeline is in flight are sent together as the next one.
Order is kept: pipelines go out one after another, and within one, in the order asked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis

logger = logging.getLogger(__name__)

__all__ = ["PipelinedPublisher"]

# The most commands one pipeline carries (a bound on one write and one reply read).
MAX_BATCH = 512


@dataclass(slots=True)
class _Batch:
    done: asyncio.Future[None]
    commands: list[tuple[bytes, bytes]] = field(default_factory=list)


class PipelinedPublisher:
    """Sends PUBLISH commands through ``client`` in batches (see the module docstring).

    Use as ``async with PipelinedPublisher(client) as publisher:``; :meth:`publish_many` raises
    the error that failed its pipeline (a ``RedisError`` or ``OSError``).
    """

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._queue: list[_Batch] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.pipelines = 0
        """How many pipelines were sent (for tests and statistics)."""

    async def __aenter__(self) -> PipelinedPublisher:
        self._task = asyncio.create_task(self._run(), name="redis-publisher")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for batch in self._queue:
            if not batch.done.done():
                batch.done.set_exception(ConnectionError("the publisher stopped"))
                batch.done.exception()  # retrieved: the waiters may be gone
        self._queue.clear()

    async def publish_many(self, channel: bytes, messages: Sequence[bytes]) -> None:
        """PUBLISH each of ``messages`` on ``channel``, in order; returns once Redis took all."""
        if self._task is None:
            raise ConnectionError("the publisher is not running")
        batches: list[_Batch] = []
        for message in messages:
            if not self._queue or len(self._queue[-1].commands) >= MAX_BATCH:
                self._queue.append(_Batch(asyncio.get_running_loop().create_future()))
                self._wakeup.set()
            batch = self._queue[-1]
            batch.commands.append((channel, message))
            if not batches or batches[-1] is not batch:
                batches.append(batch)
        # Shielded: a caller that gives up (a timeout) must not cancel the others' pipeline.
        for batch in batches:
            await asyncio.shield(batch.done)

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = self._queue.pop(0)
            try:
                await self._send(batch.commands)
            except asyncio.CancelledError:
                self._queue.insert(0, batch)  # failed by __aexit__
                raise
            except Exception as exc:
                batch.done.set_exception(exc)
                batch.done.exception()  # the waiters re-raise it; none may be left
            else:
                batch.done.set_result(None)

    async def _send(self, commands: list[tuple[bytes, bytes]]) -> None:
        self.pipelines += 1
        if len(commands) == 1:
            await self._client.publish(*commands[0])
            return
        pipe = self._client.pipeline(transaction=False)
        for channel, message in commands:
            pipe.publish(channel, message)
        await pipe.execute()
