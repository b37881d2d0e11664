"""Closing websockets whose credentials stop being valid, on every node.

A logout, a revoked user's tokens, a deactivated tenant, a purge of expired login sessions: each
must end the affected live connections at once (close 4401), not at their next join. The node
where it happens closes its own connections and publishes a ``revoke`` event on one node-wide
broker channel; every other node closes its matching connections. After a broker outage (events
may have been missed) each node re-checks every open connection's login token in the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.hub.broker import Broker, BrokerError, Envelope, Subscription
from server.hub.closing import CloseCode
from server.hub.registry import Hub
from storage.repositories.tenancy import resolve_login_session

logger = logging.getLogger(__name__)

#: The broker channel every node listens on for credential events.
CREDENTIALS_CHANNEL = "nodes:credentials"
_REVOKE = "revoke"


@dataclass(frozen=True, slots=True)
class Revocation:
    """Which connections to close: by login-token hash, by user, or by tenant."""

    token_hashes: frozenset[str] = frozenset()
    user_ids: frozenset[str] = frozenset()
    tenant_ids: frozenset[str] = frozenset()
    reason: str = "the login session ended"

    def to_json(self) -> bytes:
        """The broker payload."""
        return json.dumps(
            {
                "token_hashes": sorted(self.token_hashes),
                "user_ids": sorted(self.user_ids),
                "tenant_ids": sorted(self.tenant_ids),
                "reason": self.reason,
            }
        ).encode("utf-8")

    @classmethod
    def from_json(cls, payload: bytes) -> Revocation:
        """Parse a broker payload (``ValueError`` when malformed)."""
        data: Any = json.loads(payload)
        if not isinstance(data, dict):
            raise ValueError("a revocation must be a JSON object")

        def strings(name: str) -> frozenset[str]:
            value = data.get(name, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{name} must be a list of strings")
            return frozenset(value)

        reason = data.get("reason", "the login session ended")
        return cls(
            strings("token_hashes"),
            strings("user_ids"),
            strings("tenant_ids"),
            reason if isinstance(reason, str) else "the login session ended",
        )

    def matches(self, *, login_hash: str | None, user_id: str, tenant_id: str) -> bool:
        """Whether a connection with these credentials is affected."""
        return (
            (login_hash is not None and login_hash in self.token_hashes)
            or user_id in self.user_ids
            or tenant_id in self.tenant_ids
        )


class CredentialWatch:
    """The node's listener for credential events, and the way to raise one."""

    def __init__(
        self, hub: Hub, broker: Broker, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        self._hub = hub
        self._broker = broker
        self._sessions = sessions
        self._subscription: Subscription | None = None
        self._tasks: set[asyncio.Task[int]] = set()

    async def __aenter__(self) -> Self:
        if not self._broker.single_node:
            self._subscription = await self._broker.subscribe(CREDENTIALS_CHANNEL, self._on_event)
            self._broker.add_reconnect_listener(self._on_reconnected)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._broker.remove_reconnect_listener(self._on_reconnected)
        if self._subscription is not None:
            await self._subscription.unsubscribe()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def revoke(self, revocation: Revocation) -> int:
        """Close the matching connections here and on every other node; returns how many
        closed on this node."""
        closed = self.close_matching(revocation)
        if not self._broker.single_node:
            try:
                await self._broker.publish(CREDENTIALS_CHANNEL, _REVOKE, revocation.to_json())
            except BrokerError as exc:
                # The database already says the credentials are gone: other nodes find out when
                # the broker comes back and they re-check their connections.
                logger.warning("could not publish a credential revocation: %s", exc)
        return closed

    def close_matching(self, revocation: Revocation) -> int:
        """Close this node's connections that ``revocation`` names (4401)."""
        closed = 0
        for room in list(self._hub.rooms.values()):
            for conn in list(room.connections):
                principal = conn.principal
                if revocation.matches(
                    login_hash=principal.login_hash,
                    user_id=principal.user_id,
                    tenant_id=principal.tenant_id,
                ):
                    conn.close(CloseCode.UNAUTHENTICATED, revocation.reason)
                    closed += 1
        if closed:
            logger.info("closed %d connection(s): %s", closed, revocation.reason)
        return closed

    def _on_event(self, envelope: Envelope) -> None:
        if envelope.kind != _REVOKE:
            logger.warning("ignoring credential event of kind %r", envelope.kind)
            return
        try:
            revocation = Revocation.from_json(envelope.payload)
        except ValueError as exc:
            logger.warning("ignoring a malformed credential event: %s", exc)
            return
        self.close_matching(revocation)

    def _on_reconnected(self) -> None:
        task = asyncio.create_task(self.revalidate(), name="revalidate-credentials")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def revalidate(self) -> int:
        """Close every connection whose login token is no longer valid; returns how many."""
        hashes = set(self._open_login_hashes())
        gone: set[str] = set()
        async with self._sessions() as db:
            for login_hash in hashes:
                owner = await resolve_login_session(db, login_hash)
                if owner is None or not owner.tenant_active or owner.tenant_id is None:
                    gone.add(login_hash)
        if not gone:
            return 0
        return self.close_matching(Revocation(token_hashes=frozenset(gone)))

    def _open_login_hashes(self) -> Iterable[str]:
        for room in list(self._hub.rooms.values()):
            for conn in room.connections:
                if conn.principal.login_hash is not None:
                    yield conn.principal.login_hash
