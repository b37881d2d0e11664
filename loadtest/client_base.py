"""What every simulated client shares: the socket, its callbacks, bookkeeping and closing.

A client connects once (no reconnects: a drop is an error and its missing deliveries count as
lost) over :class:`~loadtest.light_ws.LightWebSocket`, which hands each message to
:meth:`Client.on_text` / :meth:`Client.on_binary` as it is parsed, and writes what it observes
straight into its worker's :class:`~loadtest.model.WorkerResult` (one event loop, so no
locking). The generator offers no compression (neither do the servers it measures, by default).
"""

from __future__ import annotations

import asyncio
import random
import time
from abc import ABC, abstractmethod

from loadtest.light_ws import HandshakeRejected, LightProtocolError, LightWebSocket
from loadtest.model import ClientSpec, ConnectRecord, WorkerResult

CLOSE_TIMEOUT = 2.0


class Client(ABC):
    """One websocket client of one room."""

    def __init__(self, spec: ClientSpec, result: WorkerResult, rng: random.Random) -> None:
        """Prepare (but do not open) the connection described by ``spec``."""
        self.spec = spec
        self.client_id = spec.client_id
        self.result = result
        self.rng = rng
        self.ws: LightWebSocket | None = None
        self.alive = False
        self.received = 0
        """Markers of other clients seen so far."""
        self._closing = False
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
                self.ws = await LightWebSocket.connect(
                    self.spec.url,
                    on_message=self._on_message,
                    on_close=self._on_close,
                    open_timeout=timeout,
                )
                record.open_s = time.monotonic() - record.started
                self.alive = True
                self.on_open()
                await self._ready_or_gone.wait()
        except TimeoutError:
            self.result.errors.add("connect:timeout", f"client {self.client_id} after {timeout}s")
            await self.close()
            return False
        except HandshakeRejected as exc:
            self.result.errors.add(f"connect:http_{exc.status}", str(exc))
            return False
        except (OSError, LightProtocolError) as exc:
            self.result.errors.add(f"connect:{type(exc).__name__}", str(exc))
            await self.close()
            return False
        if not self._ready:
            return False  # closed before it was in sync; the close was counted
        record.ready_s = time.monotonic() - record.started
        return True

    def mark_ready(self) -> None:
        """Called by a subclass once the initial sync is complete."""
        self._ready = True
        self._ready_or_gone.set()

    async def close(self) -> None:
        """Close from our side (bounded)."""
        self._closing = True
        if self.ws is not None:
            await self.ws.close(timeout=CLOSE_TIMEOUT)
        self.alive = False

    def _on_message(self, frame: bytes | str) -> None:
        self._frame_at = time.monotonic()
        try:
            if isinstance(frame, str):
                self.on_text(frame)
            else:
                self.on_binary(frame)
        except Exception as exc:  # a bug in our own handling: count it, never hide it
            self.result.errors.add(f"client:{type(exc).__name__}", repr(exc))

    def _on_close(self, code: int, reason: str) -> None:
        self.alive = False
        if not self._closing:
            self.result.errors.add(f"closed:{code}", f"client {self.client_id}: {reason}")
        self._ready_or_gone.set()
        self.on_gone()

    def send(self, frame: str | bytes) -> bool:
        """Send one frame now; False (and an error) if the socket is gone."""
        if self.ws is None or not self.alive:
            return False
        if not self.ws.send(frame):
            self.result.errors.add("send:closed", f"client {self.client_id}")
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

    def on_open(self) -> None:
        """Say whatever the protocol says first (default: nothing)."""
        return None

    @abstractmethod
    def on_binary(self, frame: bytes) -> None:
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
