"""Waiting for a condition that can only be polled (e.g. a REST read), always with a deadline."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 10.0, interval: float = 0.05
) -> None:
    """Poll ``check`` until it returns True; TimeoutError after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        for _ in itertools.count():
            if await check():
                return
            await asyncio.sleep(interval)
