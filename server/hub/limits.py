"""Abuse limits of the collaboration socket that span connections (this node's view).

* connections per session and per user: the next join is refused (close 4429);
* messages per user across all of that user's connections: one token bucket per user, shared by
  the user's connections (over it: what the per-connection rate limit does);
* failed logins per client address: each failure after the first within the window is
  answered a little later (slowed down), and after ``auth_failures`` within
  ``auth_failure_window`` seconds the address is refused (close 4429) until the oldest
  failure leaves the window. The addresses remembered are bounded (least recently failing
  forgotten first), and a success does not clear any address's failures (an attacker cannot
  launder them with a valid token).

All counts are per node: a client spread over N nodes gets N times the allowance.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from server.hub.ratelimit import TokenBucket
from server.settings import Settings

# The longest a failed authentication is delayed (the socket is held meanwhile).
MAX_FAILURE_DELAY_SECONDS = 2.0


@dataclass(slots=True)
class _UserSlot:
    connections: int
    bucket: TokenBucket


@dataclass(slots=True)
class AuthFailures:
    """Failed authentications per client address, in a sliding window, LRU-bounded."""

    limit: int
    window: float
    max_addresses: int
    # Each failure in the window after the first delays the next refusal this much more.
    delay_step: float = 0.0
    _failures: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)

    def fail(self, address: str, now: float | None = None) -> None:
        """Record one failed authentication from ``address``."""
        now = time.monotonic() if now is None else now
        stamps = self._failures.pop(address, None) or deque()
        self._expire(stamps, now)
        stamps.append(now)
        while len(stamps) > self.limit:
            stamps.popleft()  # only the last ``limit`` failures matter
        self._failures[address] = stamps
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)

    def retry_after(self, address: str, now: float | None = None) -> float | None:
        """Seconds until ``address`` may try again, or None when it may now."""
        stamps = self._failures.get(address)
        if not stamps:
            return None
        now = time.monotonic() if now is None else now
        self._expire(stamps, now)
        if len(stamps) < self.limit:
            return None
        return max(0.0, stamps[0] + self.window - now)

    def delay(self, address: str, now: float | None = None) -> float:
        """How long to wait before refusing ``address`` again: ``delay_step`` per earlier
        failure in the window, at most :data:`MAX_FAILURE_DELAY_SECONDS`."""
        stamps = self._failures.get(address)
        if not stamps:
            return 0.0
        self._expire(stamps, time.monotonic() if now is None else now)
        return min(MAX_FAILURE_DELAY_SECONDS, self.delay_step * max(0, len(stamps) - 1))

    def __len__(self) -> int:
        return len(self._failures)

    def _expire(self, stamps: deque[float], now: float) -> None:
        while stamps and stamps[0] <= now - self.window:
            stamps.popleft()


class SocketGuard:
    """The cross-connection limits of one node (see the module docstring)."""

    def __init__(
        self,
        *,
        connections_per_session: int,
        connections_per_user: int,
        user_rate_per_second: float,
        user_rate_burst: int,
        auth_failures: AuthFailures,
    ) -> None:
        self.connections_per_session = connections_per_session
        self.connections_per_user = connections_per_user
        self._user_rate = user_rate_per_second
        self._user_burst = user_rate_burst
        self.auth_failures = auth_failures
        self._users: dict[str, _UserSlot] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> SocketGuard:
        """The guard configured by ``settings``."""
        return cls(
            connections_per_session=settings.max_connections_per_session,
            connections_per_user=settings.max_connections_per_user,
            user_rate_per_second=settings.user_rate_limit_per_second,
            user_rate_burst=settings.user_rate_limit_burst,
            auth_failures=AuthFailures(
                settings.auth_failures_per_address,
                settings.auth_failure_window_seconds,
                settings.auth_failure_addresses,
                settings.auth_failure_delay_seconds,
            ),
        )

    def join_refusal(self, user_id: str, session_connections: int) -> str | None:
        """Why a new connection of ``user_id`` to a session holding ``session_connections``
        here is refused, or None when it may join."""
        if session_connections >= self.connections_per_session:
            return f"the session has the maximum of {self.connections_per_session} connections"
        slot = self._users.get(user_id)
        if slot is not None and slot.connections >= self.connections_per_user:
            return f"you have the maximum of {self.connections_per_user} open connections"
        return None

    def enter(self, user_id: str) -> TokenBucket:
        """Count a connection of ``user_id``; returns the user's shared message bucket."""
        slot = self._users.get(user_id)
        if slot is None:
            slot = self._users[user_id] = _UserSlot(
                0, TokenBucket(self._user_rate, self._user_burst)
            )
        slot.connections += 1
        return slot.bucket

    def leave(self, user_id: str) -> None:
        """Uncount a connection of ``user_id`` (its bucket goes with its last connection)."""
        slot = self._users.get(user_id)
        if slot is None:
            return
        slot.connections -= 1
        if slot.connections <= 0:
            del self._users[user_id]

    def connections_of(self, user_id: str) -> int:
        """How many connections ``user_id`` holds on this node."""
        slot = self._users.get(user_id)
        return 0 if slot is None else slot.connections
