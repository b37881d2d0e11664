"""Merging several runs' event streams: order per stream, a bound of one, closing, failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from server.runs.streaming import Delta, RunEvent, merge_streams


class Source:
    """A stream of deltas that records whether it was closed before its end."""

    def __init__(self, texts: list[str], *, hold: asyncio.Event | None = None) -> None:
        self.texts = texts
        self.hold = hold
        self.closed_early = False
        self.finished = False

    async def events(self) -> AsyncIterator[RunEvent]:
        try:
            for text in self.texts:
                yield Delta(text)
            if self.hold is not None:
                await self.hold.wait()
            self.finished = True
        finally:
            self.closed_early = not self.finished


async def test_every_event_once_in_order_per_stream_with_a_queue_of_one() -> None:
    sources = [Source([f"{n}-{i}" for i in range(20)]) for n in range(3)]
    merged = [
        (index, event)
        async for index, event in merge_streams([s.events() for s in sources], queue_size=1)
    ]
    for index in range(3):
        texts = [e.text for i, e in merged if i == index and isinstance(e, Delta)]
        assert texts == [f"{index}-{i}" for i in range(20)]
    assert all(s.finished for s in sources)


async def test_closing_the_merged_stream_closes_every_stream() -> None:
    hold = asyncio.Event()
    sources = [Source(["a"], hold=hold), Source(["b"], hold=hold)]
    merged = merge_streams([s.events() for s in sources], queue_size=4)
    seen = {(await anext(merged))[0], (await anext(merged))[0]}
    assert seen == {0, 1}
    await merged.aclose()  # type: ignore[attr-defined]
    assert all(s.closed_early for s in sources)


async def test_a_failing_stream_fails_the_merge() -> None:
    async def broken() -> AsyncIterator[RunEvent]:
        yield Delta("x")
        raise RuntimeError("storage went away")

    with pytest.raises(RuntimeError, match="storage went away"):
        async for _ in merge_streams([broken(), Source(["y"]).events()], queue_size=2):
            pass
