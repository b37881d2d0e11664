"""Bounds on HTTP connections whose request head never completes (a slowloris).

uvicorn's h11 protocol (the one serving every request here: ``httptools`` is not installed, and
``serve`` names h11 explicitly) waits for a request head for as long as the client likes, so a
client sending ``GET / HTTP/1.1\\r\\nHost: x\\r\\n`` and nothing more holds a file descriptor
forever. :class:`GuardedH11Protocol` is that protocol with two bounds:

- a **head timeout**: a connection whose request head is not complete ``timeout`` seconds after
  it was accepted — or, kept alive, after the first byte of its next request — is closed, with
  ``408 Request Timeout`` when part of a head had arrived (silently when nothing had);
- a **half-open bound**: one node holds at most ``limit`` connections whose head is incomplete;
  past it the oldest are closed first. Closing the oldest (rather than refusing the newest) keeps
  the node reachable under attack: a legitimate request's head arrives within a round trip, so
  it is rarely the oldest, while the attacker's connections age.

Once the head is complete nothing changes: the body, the response, keep-alive (uvicorn's own
timeout between requests) and websocket upgrades behave exactly as in uvicorn.

It relies on uvicorn's ``H11Protocol`` (its ``conn``, ``transport``, ``loop`` and ``client``, and
no names of its own among those added here) and on h11's ``their_state`` staying ``IDLE`` until
a request head is parsed; ``tests/unit/test_dependency_guards.py`` checks both.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 25\r\nconnection: close\r\n\r\nrequest head not complete"
)
# Closing connections over the bound is worth a warning, but at most one line this often.
WARNING_INTERVAL_SECONDS = 60.0


class HeadGuard:
    """One node's connections whose request head is incomplete, oldest first."""

    def __init__(self, timeout: float, limit: int) -> None:
        self.timeout = timeout
        self.limit = limit
        self._pending: dict[GuardedH11Protocol, None] = {}  # insertion order: oldest first
        self._sweep: asyncio.TimerHandle | None = None
        self._evicted = 0
        self._warned_at = -math.inf

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, protocol: GuardedH11Protocol) -> None:
        """``protocol`` waits for a request head from now on."""
        self._pending[protocol] = None
        if len(self._pending) > self.limit and self._sweep is None:
            # Deferred to a timer, which runs after the next poll's reads: connections accepted
            # in one batch have their heads waiting in the kernel, and reading those takes them
            # off the list, so only connections that really are incomplete get closed.
            self._sweep = protocol.loop.call_later(0, self._close_excess)

    def discard(self, protocol: GuardedH11Protocol) -> None:
        """``protocol`` has its head, or is gone."""
        self._pending.pop(protocol, None)

    def _close_excess(self) -> None:
        self._sweep = None
        excess = len(self._pending) - self.limit
        if excess <= 0:
            return
        for protocol in list(itertools.islice(self._pending, excess)):
            protocol.abandon_head(timed_out=False)
        self._evicted += excess
        now = time.monotonic()
        if now - self._warned_at >= WARNING_INTERVAL_SECONDS:
            logger.warning(
                "closed %d connection(s) whose request head was incomplete: more than %d at once "
                "(PROMPT_STUDIO_MAX_HALF_OPEN_CONNECTIONS)",
                self._evicted,
                self.limit,
            )
            self._evicted = 0
            self._warned_at = now


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol closing connections whose request head does not complete."""

    guard: ClassVar[HeadGuard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_started = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Accepted: the request head is due within the timeout."""
        super().connection_made(transport)
        self._await_head()

    def data_received(self, data: bytes) -> None:
        """Feed h11; the head timer stops once a whole request head has been parsed."""
        if (
            self._head_timer is None
            and self.conn.their_state is h11.IDLE
            and not self.transport.is_closing()
        ):
            self._await_head()  # a kept-alive connection's next request begins
        if self._head_timer is not None:
            self._head_started = True
        super().data_received(data)
        # Anything but IDLE means h11 has the head (or refused it with a 400); an upgraded
        # connection belongs to the websocket protocol now.
        if self._head_timer is not None and self.conn.their_state is not h11.IDLE:
            self._head_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """Gone: it no longer counts against the bound."""
        self._head_complete()
        super().connection_lost(exc)

    def abandon_head(self, *, timed_out: bool) -> None:
        """Close this connection, whose head is incomplete (408 when part of it arrived)."""
        self._head_complete()
        if self.transport.is_closing():
            return
        logger.debug(
            "closing the connection from %s: request head incomplete %s",
            self.client,
            f"after {self.guard.timeout:g}s" if timed_out else "and too many such at once",
        )
        if self._head_started:
            self.transport.write(REQUEST_TIMEOUT_RESPONSE)
        self.transport.close()

    def _await_head(self) -> None:
        self._head_started = False
        self._head_timer = self.loop.call_later(self.guard.timeout, self._head_timed_out)
        self.guard.add(self)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        self.abandon_head(timed_out=True)

    def _head_complete(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self.guard.discard(self)


def guarded_h11_protocol(timeout: float, limit: int) -> type[GuardedH11Protocol]:
    """A :class:`GuardedH11Protocol` class with its own :class:`HeadGuard` (one per server)."""

    class Guarded(GuardedH11Protocol):
        pass

    Guarded.guard = HeadGuard(timeout, limit)
    return Guarded


__all__ = ["GuardedH11Protocol", "HeadGuard", "guarded_h11_protocol"]
