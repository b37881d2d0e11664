"""Streamed runs: events as the answer arrives, and several runs' events merged (compare).

A stream ends with exactly one ``done`` (the recorded run) or ``error`` event. A consumer that
stops listening (a client that disconnected) closes the stream: the provider's response is
closed, which stops the upstream request, and the run is recorded ``cancelled`` with what had
arrived. An upstream stream cut off mid-way is recorded ``truncated`` with its partial output.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import anyio

from server.llm.base import ProviderError, TokenUsage
from server.runs.recording import Outcome
from server.runs.service import Prepared, RunService, elapsed_ms, hit_outcome
from storage.models import Run


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of the answer."""

    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    """The token usage, once known."""

    usage: TokenUsage


@dataclass(frozen=True, slots=True)
class Done:
    """The run, recorded."""

    run: Run


@dataclass(frozen=True, slots=True)
class Failed:
    """The provider failed; the run is recorded (``failed`` or ``truncated``)."""

    error: ProviderError
    run: Run


RunEvent = Delta | Usage | Done | Failed


async def stream_run(service: RunService, prepared: Prepared) -> AsyncIterator[RunEvent]:
    """The events of one prepared run."""
    started = time.monotonic()
    parts: list[str] = []
    finished = False
    similarity: float | None = None
    try:
        found = await service.lookup(prepared)
        if found is not None and found.hit and found.entry is not None:
            run = await service.record(prepared, hit_outcome(found, elapsed_ms(started)))
            finished = True
            yield Delta(found.entry.response)
            yield Usage(found.entry.usage)
            yield Done(run)
            return
        similarity = None if found is None else found.similarity
        usage: TokenUsage | None = None
        finish_reason: str | None = None
        provider_name: str | None = None
        try:
            async with (
                service.keeping(prepared, lambda: "".join(parts)),
                service.registry.provider_for(
                    prepared.request.model, prepared.endpoint
                ) as provider,
            ):
                provider_name = provider.name
                chunks = provider.stream(prepared.request)
                try:
                    async for chunk in chunks:
                        if chunk.delta:
                            parts.append(chunk.delta)
                            yield Delta(chunk.delta)
                        if chunk.usage is not None:
                            usage, finish_reason = chunk.usage, chunk.finish_reason
                finally:
                    await close_iterator(chunks)
        except ProviderError as error:
            outcome = Outcome(
                status="truncated" if parts else "failed",
                output="".join(parts),
                latency_ms=elapsed_ms(started),
                provider=provider_name,
                error=f"{error.code}: {error.message}",
                cache_similarity=similarity,
            )
            run = await service.record(prepared, outcome)
            finished = True
            yield Failed(error, run)
            return
        if usage is not None:
            yield Usage(usage)
        outcome = Outcome(
            status="completed",
            output="".join(parts),
            latency_ms=elapsed_ms(started),
            usage=usage,
            provider=provider_name,
            finish_reason=finish_reason,
            cache_similarity=similarity,
        )
        run = await service.record(prepared, outcome)
        finished = True
        yield Done(run)
    finally:
        if not finished:
            # The consumer went away (or was cancelled): record what arrived. Shielded, since
            # a cancelled request's scope would otherwise cancel this write too.
            with anyio.CancelScope(shield=True):
                await service.record(
                    prepared,
                    Outcome(
                        status="cancelled",
                        output="".join(parts),
                        latency_ms=elapsed_ms(started),
                        error="the client disconnected before the answer was complete",
                        cache_similarity=similarity,
                    ),
                )


_END = object()


async def close_iterator(iterator: AsyncIterator[object]) -> None:
    """Close an async generator (a no-op for other iterators), even while being cancelled."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        with anyio.CancelScope(shield=True):
            await close()


async def merge_streams(
    streams: Sequence[AsyncIterator[RunEvent]], *, queue_size: int
) -> AsyncIterator[tuple[int, RunEvent]]:
    """The events of several streams as they come, each tagged with its stream's index.

    Each stream is pumped by a task into one bounded queue (a slow consumer slows the pumps).
    Closing the merged stream cancels the pumps, which closes every stream.
    """
    queue: asyncio.Queue[tuple[int, object]] = asyncio.Queue(maxsize=queue_size)

    async def pump(index: int, stream: AsyncIterator[RunEvent]) -> None:
        try:
            try:
                async for event in stream:
                    await queue.put((index, event))
            finally:
                await close_iterator(stream)
        except Exception as error:  # handed to the consumer, which raises it
            await queue.put((index, error))
            return
        await queue.put((index, _END))

    tasks = [asyncio.create_task(pump(index, s)) for index, s in enumerate(streams)]
    remaining = len(tasks)
    try:
        while remaining:
            index, item = await queue.get()
            if item is _END:
                remaining -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield index, item  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.gather(*tasks, return_exceptions=True)
