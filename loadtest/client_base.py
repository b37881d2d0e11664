"""What every simulated client shares: the socket, its reader task, bookkeeping and closing.

A client connects once (no reconnects: a drop is an error and its missing deliveries count as
lost), reads every frame in one task, and writes what it observes straight into its worker's
:class:`~loadtest.model.WorkerResult` (one event loop, so no locking).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from abc import ABC, abstractmethod

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from loadtest.model import ClientSpec, ConnectRecord, WorkerResult

CLOSE_TIMEOUT = 2.0


class Client(ABC):
    """One websocket client of one room."""

    def __init__(
        self, spec: ClientSpec, result: WorkerResult, rng: random.Random, *, deflate: bool
    ) -> None:
        """Prepare (but do not open) the connection described by ``spec``."""
        self.spec = spec
        self.client_id = spec.client_id
        self.result = result
        self.rng = rng
        self.deflate = deflate
        self.ws: ClientConnection | None = None
        self.alive = False
        self.received = 0
        """Markers of other clients seen so far."""
        self._closing = False
        self._reader: asyncio.Task[None] | None = None
        self._ready_or_gone = asyncio.Event()
        self._ready = False
        self._frame_at = 0.0
        """When the frame being handled arrived (the arrival time of the markers in it)."""

    # -- lifecycle -------------------------------------------------------------------------------

    async def connect(self, timeout: float) -> bool:
        """Open the socket and wait for the initial sync; False (and an error) on failure."""
        record = ConnectRecord(self.client_id, time.monotonic())
        self.result.connects.append(record)
        try:
            async with asyncio.timeout(timeout):
                self.ws = await connect(
                    self.spec.url,
                    compression="deflate" if self.deflate else None,
                    ping_interval=None,
                    max_size=None,
                    close_timeout=CLOSE_TIMEOUT,
                    open_timeout=None,
                    proxy=None,
                )
                record.open_s = time.monotonic() - record.started
                self.alive = True
                self._reader = asyncio.create_task(self._read(), name=f"read-{self.client_id}")
                await self.on_open()
                await self._ready_or_gone.wait()
        except TimeoutError:
            self.result.errors.add("connect:timeout", f"client {self.client_id} after {timeout}s")
            await self.close()
            return False
        except InvalidStatus as exc:
            status = exc.response.status_code
            self.result.errors.add(f"connect:http_{status}", str(exc))
            return False
        except (OSError, WebSocketException) as exc:
            self.result.errors.add(f"connect:{type(exc).__name__}", str(exc))
            await self.close()
            return False
        if not self._ready:
            return False  # closed before it was in sync; the reader counted the close
        record.ready_s = time.monotonic() - record.started
        return True

    def mark_ready(self) -> None:
        """Called by a subclass once the initial sync is complete."""
        self._ready = True
        self._ready_or_gone.set()

    async def close(self) -> None:
        """Close from our side (bounded) and stop reading."""
        self._closing = True
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), CLOSE_TIMEOUT * 2)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        self.alive = False

    async def _read(self) -> None:
        assert self.ws is not None
        ws = self.ws
        try:
            async for frame in ws:
                self._frame_at = time.monotonic()
                if isinstance(frame, str):
                    self.on_text(frame)
                else:
                    await self.on_binary(frame)
        except ConnectionClosed:
            pass
        except Exception as exc:  # a bug in our own handling: count it, never hide it
            self.result.errors.add(f"client:{type(exc).__name__}", repr(exc))
        finally:
            self.alive = False
            if not self._closing:
                code = ws.close_code
                self.result.errors.add(
                    f"closed:{code}", f"client {self.client_id}: {ws.close_reason or ''}"
                )
            self._ready_or_gone.set()
            self.on_gone()

    async def send(self, frame: str | bytes) -> bool:
        """Send one frame; False (and an error) if the socket is gone."""
        if self.ws is None or not self.alive:
            return False
        try:
            await self.ws.send(frame)
        except ConnectionClosed as exc:
            self.result.errors.add("send:closed", str(exc))
            self.alive = False
            return False
        return True

    def record_markers(self, found: list[tuple[int, int]]) -> None:
        """Record the arrival of other clients' markers found in received text."""
        arrived = self._frame_at
        for author, seq in found:
            if author != self.client_id:
                self.result.arrivals.append((author, seq, self.client_id, arrived))
                self.received += 1

    # -- protocol hooks --------------------------------------------------------------------------

    async def on_open(self) -> None:
        """Say whatever the protocol says first (default: nothing)."""
        return None

    @abstractmethod
    async def on_binary(self, frame: bytes) -> None:
        """Handle one binary frame."""

    @abstractmethod
    def on_text(self, frame: str) -> None:
        """Handle one text frame."""

    def on_gone(self) -> None:
        """The socket closed (release anything waiting on it)."""
        return None

    @abstractmethod
    async def edit(self, seq: int, deadline: float) -> bool:
        """Make edit ``seq`` and send it; False if it could not be sent by ``deadline``."""

    @property
    def busy(self) -> bool:
        """Whether an edit is still waiting for the server (JSON: an unacknowledged op)."""
        return False
