"""Settings read from the environment, once, in the entry point.

Conventional names first (``DATABASE_URL``, ``REDIS_URL``, ``HOST``, ``PORT``, ``LOG_LEVEL``);
everything else is prefixed ``PROMPT_STUDIO_``. Every variable is documented in the README.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./prompt-studio.db"


class SettingsError(ValueError):
    """A configuration value is missing or malformed."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server needs to know about its environment."""

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    # Largest websocket frame accepted, in bytes; larger frames close the socket with 1009.
    max_frame_bytes: int = 1024 * 1024
    # Messages one connection may send per second (token bucket) before it is refused.
    rate_limit_per_second: float = 200.0
    rate_limit_burst: int = 400
    # How long a document with no connections stays in memory before it is flushed and unloaded.
    unload_grace_seconds: float = 30.0
    # Upper bound on how long an edit waits in the write-behind queue before its group commit.
    history_flush_ms: int = 20
    # How often a member's last_seen_at is written while connected.
    presence_debounce_seconds: float = 15.0
    # Outgoing messages queued per connection before a slow consumer is closed (1013).
    send_queue_limit: int = 1024
    # Node identity in a cluster; random per process when unset.
    node_id: str | None = None
    # Offer permessage-deflate to websocket clients. Off by default: collaboration messages are
    # small, and compression keeps a zlib context per connection and per-recipient encoding.
    ws_compression: bool = False
    # "direct": uvicorn protocol with the synchronous fan-out path (server.ws_protocol);
    # "asgi": uvicorn's stock protocol and the portable ASGI path only.
    ws_transport: str = "direct"

    @property
    def is_sqlite(self) -> bool:
        """True when the database is the embedded SQLite file (or memory)."""
        return self.database_url.startswith("sqlite")

    def with_overrides(self, **changes: object) -> Settings:
        """Return a copy with some fields replaced (tests use this)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables, validating each one."""
        env = os.environ if environ is None else environ
        defaults = cls()

        def text(name: str, default: str) -> str:
            value = env.get(name, "").strip()
            return value or default

        def integer(name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = int(raw)
            except ValueError:
                raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
            if value < minimum:
                raise SettingsError(f"{name} must be >= {minimum}, got {value}")
            if maximum is not None and value > maximum:
                raise SettingsError(f"{name} must be <= {maximum}, got {value}")
            return value

        def number(name: str, default: float, minimum: float = 0.0) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise SettingsError(f"{name} must be a number, got {raw!r}") from None
            if not math.isfinite(value):
                raise SettingsError(f"{name} must be a finite number, got {raw!r}")
            if value < minimum:
                raise SettingsError(f"{name} must be >= {minimum}, got {value}")
            return value

        def boolean(name: str, default: bool) -> bool:
            raw = env.get(name, "").strip().lower()
            if not raw:
                return default
            if raw in {"1", "true", "yes", "on"}:
                return True
            if raw in {"0", "false", "no", "off"}:
                return False
            raise SettingsError(f"{name} must be true or false (1/0, yes/no, on/off), got {raw!r}")

        ws_transport = text("PROMPT_STUDIO_WS_TRANSPORT", defaults.ws_transport).lower()
        if ws_transport not in WS_TRANSPORTS:
            raise SettingsError(
                f"PROMPT_STUDIO_WS_TRANSPORT must be one of {', '.join(WS_TRANSPORTS)}, "
                f"got {ws_transport!r}"
            )
        database_url = text("DATABASE_URL", defaults.database_url)
        validate_database_url(database_url)
        redis_url = env.get("REDIS_URL", "").strip() or None
        if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError(
                f"REDIS_URL must start with redis://, rediss:// or unix://, got {redis_url!r}"
            )
        log_level = text("LOG_LEVEL", defaults.log_level).upper()
        if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise SettingsError(
                f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {log_level!r}"
            )
        return cls(
            database_url=database_url,
            redis_url=redis_url,
            host=text("HOST", defaults.host),
            port=integer("PORT", defaults.port, minimum=0, maximum=65535),
            log_level=log_level,
            max_frame_bytes=integer(
                "PROMPT_STUDIO_MAX_FRAME_BYTES", defaults.max_frame_bytes, 1024
            ),
            rate_limit_per_second=number(
                "PROMPT_STUDIO_RATE_LIMIT_PER_SECOND", defaults.rate_limit_per_second, 1.0
            ),
            rate_limit_burst=integer(
                "PROMPT_STUDIO_RATE_LIMIT_BURST", defaults.rate_limit_burst, 1
            ),
            unload_grace_seconds=number(
                "PROMPT_STUDIO_UNLOAD_GRACE_SECONDS", defaults.unload_grace_seconds
            ),
            history_flush_ms=integer(
                "PROMPT_STUDIO_HISTORY_FLUSH_MS", defaults.history_flush_ms, 1
            ),
            presence_debounce_seconds=number(
                "PROMPT_STUDIO_PRESENCE_DEBOUNCE_SECONDS", defaults.presence_debounce_seconds
            ),
            send_queue_limit=integer(
                "PROMPT_STUDIO_SEND_QUEUE_LIMIT", defaults.send_queue_limit, 16
            ),
            node_id=env.get("PROMPT_STUDIO_NODE_ID") or None,
            ws_compression=boolean("PROMPT_STUDIO_WS_COMPRESSION", defaults.ws_compression),
            ws_transport=ws_transport,
        )


WS_TRANSPORTS = ("direct", "asgi")

SUPPORTED_DATABASE_SCHEMES = ("sqlite+aiosqlite://", "postgresql+asyncpg://")


def validate_database_url(url: str) -> None:
    """Refuse URLs whose driver this server cannot use, with a message naming the fix."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        raise SettingsError(
            "DATABASE_URL must name the async driver: use postgresql+asyncpg://… "
            f"instead of {url.split('://', 1)[0]}://…"
        )
    if url.startswith("sqlite://"):
        raise SettingsError(
            "DATABASE_URL must name the async driver: use sqlite+aiosqlite:///path.db"
        )
    if not url.startswith(SUPPORTED_DATABASE_SCHEMES):
        raise SettingsError(
            f"DATABASE_URL {url!r} is not supported; expected one of "
            + ", ".join(s + "…" for s in SUPPORTED_DATABASE_SCHEMES)
        )
    try:
        make_url(url)  # parses the port eagerly: "host:notaport" fails here, not at connect time
    except (ArgumentError, ValueError) as exc:
        raise SettingsError(f"DATABASE_URL is malformed: {exc}") from None


__all__ = ["DEFAULT_DATABASE_URL", "Settings", "SettingsError", "validate_database_url"]
