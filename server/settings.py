"""Settings read from the environment, once, in the entry point.

Conventional names first (``DATABASE_URL``, ``REDIS_URL``, ``HOST``, ``PORT``, ``LOG_LEVEL``);
everything else is prefixed ``PROMPT_STUDIO_``. Every variable is documented in the README.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from server.llm.endpoints import EndpointConfigError, parse_models, validate_base_url
from server.llm.secrets import fernet_key_of
from server.origins import OriginError, parse_allowed_origins

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./prompt-studio.db"
LOG_FORMATS = ("text", "json")


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
    # Log lines as text or as one JSON object per line (PROMPT_STUDIO_LOG_FORMAT=json).
    log_format: str = "text"
    # GET /metrics (Prometheus) on the main port; off when a separate metrics port is set.
    metrics_enabled: bool = True
    # Serve /metrics on this port of HOST instead of the main one (None: on the main port).
    metrics_port: int | None = None
    # Largest request head (bytes) the separate metrics port reads; a longer one is dropped.
    metrics_max_head_bytes: int = 8192
    # Largest websocket frame accepted, in bytes; larger frames close the socket with 1009.
    max_frame_bytes: int = 1024 * 1024
    # Messages one connection may send per second (token bucket) before it is refused.
    rate_limit_per_second: float = 200.0
    rate_limit_burst: int = 400
    # Cross-connection limits (server.hub.limits, per node): connections one session and one
    # user may hold (the next join is closed 4429), and messages per second one user may send
    # over all of their connections (a token bucket shared by them).
    max_connections_per_session: int = 500
    max_connections_per_user: int = 50
    user_rate_limit_per_second: float = 400.0
    user_rate_limit_burst: int = 800
    # Failed websocket authentications (4401) one client address may have within the window
    # before it is refused (4429); how many addresses are remembered (least recent forgotten).
    auth_failures_per_address: int = 20
    auth_failure_window_seconds: float = 60.0
    auth_failure_addresses: int = 10_000
    # Each failed authentication after the first in the window is answered this much later
    # than the previous one (at most 2 s).
    auth_failure_delay_seconds: float = 0.25
    # Messages and bytes a socket may send before it is admitted (direct transport; past
    # either, it is closed with 1008).
    preauth_max_frames: int = 32
    preauth_max_bytes: int = 2 * 1024 * 1024
    # Largest document (its text in UTF-8 bytes): an op or update past it is refused
    # (JSON: error document_too_large; Yjs: close 4413), and so is a REST write feeding it.
    max_document_bytes: int = 1024 * 1024
    # How long a document with no connections stays in memory before it is flushed and unloaded.
    unload_grace_seconds: float = 30.0
    # Upper bound on how long an edit waits in the write-behind queue before its group commit.
    history_flush_ms: int = 20
    # The history writer's backlog (edits applied but not yet durable) is bounded by this many
    # edits and bytes; at the bound, edits are refused (Yjs: close 1013; JSON: error
    # "overloaded") until commits catch up.
    history_max_pending_edits: int = 20_000
    history_max_pending_bytes: int = 64 * 1024 * 1024
    # How often at most a session's updated_at is written while it is being edited.
    session_touch_seconds: float = 5.0
    # How long a SQLite connection waits for another one's write lock before giving up.
    sqlite_busy_timeout_ms: int = 30_000
    # How often a member's last_seen_at is written while connected.
    presence_debounce_seconds: float = 15.0
    # Outgoing messages queued per connection before a slow consumer is closed (1013).
    send_queue_limit: int = 1024
    # JSON op ids (idempotent resend, see server.hub.op_ids): how many of each user's last op
    # ids a room remembers and reads back at a join, and the longest op id accepted.
    op_ids_per_user: int = 100
    op_id_max_chars: int = 64
    # Yjs updates that skip clocks of a client wait outside pycrdt until the gap is filled
    # (see crdt.document); at most this many per document, more are refused (close 1003).
    crdt_max_waiting_updates: int = 256
    # Awareness (presence) caps, see server.hub.awareness: client ids one connection may
    # announce, entries one message may declare (more: dropped unread), states one room holds,
    # and the size (JSON bytes) and nesting depth of one state.
    awareness_ids_per_connection: int = 4
    awareness_entries_per_message: int = 100
    awareness_states_per_room: int = 1000
    awareness_state_bytes: int = 8 * 1024
    awareness_state_depth: int = 16
    # Node identity in a cluster; random per process when unset.
    node_id: str | None = None
    # Offer permessage-deflate to websocket clients. Off by default: collaboration messages are
    # small, and compression keeps a zlib context per connection and per-recipient encoding.
    ws_compression: bool = False
    # "direct": uvicorn protocol with the synchronous fan-out path (server.ws_protocol);
    # "asgi": uvicorn's stock protocol and the portable ASGI path only.
    ws_transport: str = "direct"
    # A connection whose HTTP request head is not complete this long after it was accepted (or,
    # kept alive, after its next request began) is closed (408 if part of the head arrived).
    head_timeout_seconds: float = 10.0
    # Connections with an incomplete request head one node holds at once; past it the oldest
    # is closed (a slowloris otherwise holds a file descriptor per connection).
    max_half_open_connections: int = 1000
    # How long a client dropped for not reading (1013) may take to read what was buffered for
    # it before its connection is aborted.
    drop_grace_seconds: float = 5.0
    # Web origins (scheme://host[:port]) whose pages may open the websocket and call /api with
    # CORS, besides the server's own; () = same origin only, ("*",) = any (see server.origins).
    allowed_origins: tuple[str, ...] = ()
    # Agent compose jobs (server.compose.runner): jobs one node runs at once (0: none here).
    compose_concurrency: int = 2
    # A claimed job's lease; renewed every third of it while the job runs. A node that dies
    # leaves its jobs to be resumed by any node once the lease has expired.
    compose_lease_seconds: float = 30.0
    # How often an idle runner looks for jobs submitted on other nodes.
    compose_poll_seconds: float = 1.0
    # Claims of one job before it is failed (each claim after a crash counts).
    compose_max_attempts: int = 3
    # Longest one agent (one model call, with its retries) may take before the job fails.
    compose_stage_timeout_seconds: float = 120.0
    # Times an invalid model answer is shown back to the model before the stage fails.
    compose_validation_retries: int = 1
    # Pending + running compose jobs one tenant may have; more is refused with 429.
    compose_max_active_per_tenant: int = 10
    # Longest idea (``raw``) and each optional field, in characters.
    compose_max_input_chars: int = 20_000
    # How often an event stream re-reads a job run by another node.
    compose_events_poll_seconds: float = 1.0
    # An event stream ends after this long even if the job is still going (clients reconnect).
    compose_events_max_seconds: float = 900.0
    # An event stream with nothing to report sends a comment this often (keeps proxies open).
    compose_events_heartbeat_seconds: float = 15.0
    # How long the "Composer" stays in a live session's presence after the job finished.
    compose_presence_linger_seconds: float = 60.0
    # Prompts (server.prompts): characters of text in one version (content, sections and
    # variable values), declared variables per version, labels per prompt (latest/production
    # not counted), versions per imported document, and version numbers one save tries.
    prompt_max_text_chars: int = 500_000
    prompt_max_variables: int = 100
    prompt_max_labels: int = 50
    prompt_import_max_versions: int = 500
    prompt_save_attempts: int = 5
    # The platform operator's key (operator endpoints under /api/admin); unset = they answer 404.
    operator_key: str | None = None
    # How often expired login sessions are deleted.
    login_purge_interval_seconds: float = 3600.0
    # PostgreSQL row-level security: every request's transactions set app.tenant_id, and the
    # tenant_isolation policies (0016) bind the (non-owner) role the server connects as.
    postgres_rls: bool = False
    # The server's OpenAI-compatible endpoint (LLM_BASE_URL; unset with LLM_API_KEY set = OpenAI).
    llm_base_url: str | None = None
    llm_api_key: str | None = None
    # Models served by that endpoint (LLM_MODELS, comma-separated); empty = ask its /models.
    llm_models: tuple[str, ...] = ()
    # Per-request timeout (connect, each read) and SDK retries (backoff honours Retry-After).
    llm_timeout_seconds: float = 60.0
    llm_max_retries: int = 2
    # How long an endpoint's /models answer is believed, and how many endpoints are remembered.
    llm_models_ttl_seconds: float = 300.0
    llm_models_cache_size: int = 256
    # Encrypts tenants' provider keys (Fernet key or a passphrase of 32+ characters; comma list
    # to rotate). Unset: tenants cannot store provider keys.
    secret_key: str | None = None
    # Runs (server.runs): targets one compare request may run at once, and the events a merged
    # compare stream buffers before its targets wait for the client to read.
    run_compare_max_targets: int = 8
    run_stream_queue_size: int = 256
    # A running run's lease, renewed (with its partial output) every third of it while the
    # model answers; every node sweeps every run_sweep_seconds and fails running runs whose
    # lease expired, so a dead node's runs end within lease + sweep seconds.
    run_lease_seconds: float = 15.0
    run_sweep_seconds: float = 5.0
    # Semantic cache (server.cache). The embedder: "wordllama" (offline, weights in its wheel),
    # "openai" (an OpenAI-compatible /embeddings endpoint) or "hashing" (no model; tests).
    cache_embedder: str = "wordllama"
    # The /embeddings model, endpoint and key (endpoint and key default to LLM_BASE_URL/_API_KEY).
    cache_embedding_model: str = "text-embedding-3-small"
    cache_embedding_base_url: str | None = None
    cache_embedding_api_key: str | None = None
    cache_embedding_timeout_seconds: float = 10.0
    # User texts longer than this (characters) bypass the cache.
    cache_max_prompt_chars: int = 32_000
    # Upper bound of a tenant's max_cache_size.
    cache_max_entries_per_tenant: int = 100_000
    # Scope indexes one node keeps in memory (least recently used dropped; they reload).
    cache_index_max_scopes: int = 1024
    # Index changes waiting to be published to other nodes; past it peers reload from the table.
    cache_sync_queue_limit: int = 1024
    # Hits waiting for the precision judge; past it samples are dropped.
    cache_judge_queue_limit: int = 64
    # Interval of the scheduled pass (rules, purge of expired entries); 0 = never on this node.
    cache_maintenance_seconds: float = 60.0
    # Entries one refresh rule re-runs per pass.
    cache_refresh_batch: int = 50
    # Extra per-model prices, dollars per million tokens: ((model, input, output), ...).
    cache_model_prices: tuple[tuple[str, float, float], ...] = ()

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
        log_format = text("PROMPT_STUDIO_LOG_FORMAT", defaults.log_format).lower()
        if log_format not in LOG_FORMATS:
            raise SettingsError(
                f"PROMPT_STUDIO_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, "
                f"got {log_format!r}"
            )
        metrics_port = (
            integer("PROMPT_STUDIO_METRICS_PORT", 0, minimum=1, maximum=65535)
            if env.get("PROMPT_STUDIO_METRICS_PORT", "").strip()
            else None
        )
        return cls(
            database_url=database_url,
            redis_url=redis_url,
            host=text("HOST", defaults.host),
            port=integer("PORT", defaults.port, minimum=0, maximum=65535),
            log_level=log_level,
            log_format=log_format,
            metrics_enabled=boolean("PROMPT_STUDIO_METRICS_ENABLED", defaults.metrics_enabled),
            metrics_port=metrics_port,
            metrics_max_head_bytes=integer(
                "PROMPT_STUDIO_METRICS_MAX_HEAD_BYTES",
                defaults.metrics_max_head_bytes,
                256,
                1024 * 1024,
            ),
            max_frame_bytes=integer(
                "PROMPT_STUDIO_MAX_FRAME_BYTES", defaults.max_frame_bytes, 1024
            ),
            rate_limit_per_second=number(
                "PROMPT_STUDIO_RATE_LIMIT_PER_SECOND", defaults.rate_limit_per_second, 1.0
            ),
            rate_limit_burst=integer(
                "PROMPT_STUDIO_RATE_LIMIT_BURST", defaults.rate_limit_burst, 1
            ),
            max_connections_per_session=integer(
                "PROMPT_STUDIO_MAX_CONNECTIONS_PER_SESSION", defaults.max_connections_per_session, 1
            ),
            max_connections_per_user=integer(
                "PROMPT_STUDIO_MAX_CONNECTIONS_PER_USER", defaults.max_connections_per_user, 1
            ),
            user_rate_limit_per_second=number(
                "PROMPT_STUDIO_USER_RATE_LIMIT_PER_SECOND",
                defaults.user_rate_limit_per_second,
                1.0,
            ),
            user_rate_limit_burst=integer(
                "PROMPT_STUDIO_USER_RATE_LIMIT_BURST", defaults.user_rate_limit_burst, 1
            ),
            auth_failures_per_address=integer(
                "PROMPT_STUDIO_AUTH_FAILURES_PER_ADDRESS", defaults.auth_failures_per_address, 1
            ),
            auth_failure_window_seconds=number(
                "PROMPT_STUDIO_AUTH_FAILURE_WINDOW_SECONDS",
                defaults.auth_failure_window_seconds,
                1.0,
            ),
            auth_failure_addresses=integer(
                "PROMPT_STUDIO_AUTH_FAILURE_ADDRESSES", defaults.auth_failure_addresses, 1
            ),
            max_document_bytes=integer(
                "PROMPT_STUDIO_MAX_DOCUMENT_BYTES", defaults.max_document_bytes, 1024
            ),
            auth_failure_delay_seconds=number(
                "PROMPT_STUDIO_AUTH_FAILURE_DELAY_SECONDS", defaults.auth_failure_delay_seconds
            ),
            preauth_max_frames=integer(
                "PROMPT_STUDIO_PREAUTH_MAX_FRAMES", defaults.preauth_max_frames, 1
            ),
            preauth_max_bytes=integer(
                "PROMPT_STUDIO_PREAUTH_MAX_BYTES", defaults.preauth_max_bytes, 1024
            ),
            unload_grace_seconds=number(
                "PROMPT_STUDIO_UNLOAD_GRACE_SECONDS", defaults.unload_grace_seconds
            ),
            history_flush_ms=integer(
                "PROMPT_STUDIO_HISTORY_FLUSH_MS", defaults.history_flush_ms, 1
            ),
            history_max_pending_edits=integer(
                "PROMPT_STUDIO_HISTORY_MAX_PENDING_EDITS", defaults.history_max_pending_edits, 1
            ),
            history_max_pending_bytes=integer(
                "PROMPT_STUDIO_HISTORY_MAX_PENDING_BYTES", defaults.history_max_pending_bytes, 1024
            ),
            session_touch_seconds=number(
                "PROMPT_STUDIO_SESSION_TOUCH_SECONDS", defaults.session_touch_seconds
            ),
            sqlite_busy_timeout_ms=integer(
                "PROMPT_STUDIO_SQLITE_BUSY_TIMEOUT_MS", defaults.sqlite_busy_timeout_ms, 0
            ),
            presence_debounce_seconds=number(
                "PROMPT_STUDIO_PRESENCE_DEBOUNCE_SECONDS", defaults.presence_debounce_seconds
            ),
            send_queue_limit=integer(
                "PROMPT_STUDIO_SEND_QUEUE_LIMIT", defaults.send_queue_limit, 16
            ),
            op_ids_per_user=integer(
                "PROMPT_STUDIO_OP_IDS_PER_USER", defaults.op_ids_per_user, 1, 10_000
            ),
            op_id_max_chars=integer(
                "PROMPT_STUDIO_OP_ID_MAX_CHARS", defaults.op_id_max_chars, 8, 1024
            ),
            crdt_max_waiting_updates=integer(
                "PROMPT_STUDIO_CRDT_MAX_WAITING_UPDATES",
                defaults.crdt_max_waiting_updates,
                1,
                100_000,
            ),
            awareness_ids_per_connection=integer(
                "PROMPT_STUDIO_AWARENESS_IDS_PER_CONNECTION",
                defaults.awareness_ids_per_connection,
                1,
            ),
            awareness_entries_per_message=integer(
                "PROMPT_STUDIO_AWARENESS_ENTRIES_PER_MESSAGE",
                defaults.awareness_entries_per_message,
                1,
            ),
            awareness_states_per_room=integer(
                "PROMPT_STUDIO_AWARENESS_STATES_PER_ROOM", defaults.awareness_states_per_room, 1
            ),
            awareness_state_bytes=integer(
                "PROMPT_STUDIO_AWARENESS_STATE_BYTES", defaults.awareness_state_bytes, 2
            ),
            # Deeper than this and re-encoding a state could hit Python's recursion limit.
            awareness_state_depth=integer(
                "PROMPT_STUDIO_AWARENESS_STATE_DEPTH", defaults.awareness_state_depth, 1, 100
            ),
            node_id=env.get("PROMPT_STUDIO_NODE_ID") or None,
            ws_compression=boolean("PROMPT_STUDIO_WS_COMPRESSION", defaults.ws_compression),
            ws_transport=ws_transport,
            head_timeout_seconds=number(
                "PROMPT_STUDIO_HEAD_TIMEOUT_SECONDS", defaults.head_timeout_seconds, 0.1
            ),
            max_half_open_connections=integer(
                "PROMPT_STUDIO_MAX_HALF_OPEN_CONNECTIONS", defaults.max_half_open_connections, 1
            ),
            drop_grace_seconds=number(
                "PROMPT_STUDIO_DROP_GRACE_SECONDS", defaults.drop_grace_seconds, 0.1
            ),
            allowed_origins=_allowed_origins(env.get("PROMPT_STUDIO_ALLOWED_ORIGINS", "")),
            compose_concurrency=integer(
                "PROMPT_STUDIO_COMPOSE_CONCURRENCY", defaults.compose_concurrency, 0, 64
            ),
            compose_lease_seconds=number(
                "PROMPT_STUDIO_COMPOSE_LEASE_SECONDS", defaults.compose_lease_seconds, 1.0
            ),
            compose_poll_seconds=number(
                "PROMPT_STUDIO_COMPOSE_POLL_SECONDS", defaults.compose_poll_seconds, 0.05
            ),
            compose_max_attempts=integer(
                "PROMPT_STUDIO_COMPOSE_MAX_ATTEMPTS", defaults.compose_max_attempts, 1, 100
            ),
            compose_stage_timeout_seconds=number(
                "PROMPT_STUDIO_COMPOSE_STAGE_TIMEOUT_SECONDS",
                defaults.compose_stage_timeout_seconds,
                1.0,
            ),
            compose_validation_retries=integer(
                "PROMPT_STUDIO_COMPOSE_VALIDATION_RETRIES",
                defaults.compose_validation_retries,
                0,
                5,
            ),
            compose_max_active_per_tenant=integer(
                "PROMPT_STUDIO_COMPOSE_MAX_ACTIVE_PER_TENANT",
                defaults.compose_max_active_per_tenant,
                1,
            ),
            compose_max_input_chars=integer(
                "PROMPT_STUDIO_COMPOSE_MAX_INPUT_CHARS", defaults.compose_max_input_chars, 100
            ),
            compose_events_poll_seconds=number(
                "PROMPT_STUDIO_COMPOSE_EVENTS_POLL_SECONDS",
                defaults.compose_events_poll_seconds,
                0.05,
            ),
            compose_events_max_seconds=number(
                "PROMPT_STUDIO_COMPOSE_EVENTS_MAX_SECONDS", defaults.compose_events_max_seconds, 1.0
            ),
            compose_events_heartbeat_seconds=number(
                "PROMPT_STUDIO_COMPOSE_EVENTS_HEARTBEAT_SECONDS",
                defaults.compose_events_heartbeat_seconds,
                0.1,
            ),
            compose_presence_linger_seconds=number(
                "PROMPT_STUDIO_COMPOSE_PRESENCE_LINGER_SECONDS",
                defaults.compose_presence_linger_seconds,
            ),
            prompt_max_text_chars=integer(
                "PROMPT_STUDIO_PROMPT_MAX_TEXT_CHARS", defaults.prompt_max_text_chars, 1
            ),
            prompt_max_variables=integer(
                "PROMPT_STUDIO_PROMPT_MAX_VARIABLES", defaults.prompt_max_variables, 0
            ),
            prompt_max_labels=integer(
                "PROMPT_STUDIO_PROMPT_MAX_LABELS", defaults.prompt_max_labels, 0
            ),
            prompt_import_max_versions=integer(
                "PROMPT_STUDIO_PROMPT_IMPORT_MAX_VERSIONS", defaults.prompt_import_max_versions, 1
            ),
            prompt_save_attempts=integer(
                "PROMPT_STUDIO_PROMPT_SAVE_ATTEMPTS", defaults.prompt_save_attempts, 1, 100
            ),
            operator_key=_operator_key(env.get("PROMPT_STUDIO_OPERATOR_KEY", "")),
            postgres_rls=_postgres_rls(
                boolean("PROMPT_STUDIO_POSTGRES_RLS", defaults.postgres_rls), database_url
            ),
            login_purge_interval_seconds=number(
                "PROMPT_STUDIO_LOGIN_PURGE_INTERVAL_SECONDS",
                defaults.login_purge_interval_seconds,
                1.0,
            ),
            llm_base_url=_llm_base_url(env.get("LLM_BASE_URL", "")),
            llm_api_key=env.get("LLM_API_KEY", "").strip() or None,
            llm_models=parse_models(env.get("LLM_MODELS", "")),
            llm_timeout_seconds=number(
                "PROMPT_STUDIO_LLM_TIMEOUT_SECONDS", defaults.llm_timeout_seconds, 0.1
            ),
            llm_max_retries=integer(
                "PROMPT_STUDIO_LLM_MAX_RETRIES", defaults.llm_max_retries, 0, 10
            ),
            llm_models_ttl_seconds=number(
                "PROMPT_STUDIO_LLM_MODELS_TTL_SECONDS", defaults.llm_models_ttl_seconds
            ),
            llm_models_cache_size=integer(
                "PROMPT_STUDIO_LLM_MODELS_CACHE_SIZE", defaults.llm_models_cache_size, 1
            ),
            secret_key=_secret_key(env.get("PROMPT_STUDIO_SECRET_KEY", "")),
            run_compare_max_targets=integer(
                "PROMPT_STUDIO_RUN_COMPARE_MAX_TARGETS", defaults.run_compare_max_targets, 1, 32
            ),
            run_stream_queue_size=integer(
                "PROMPT_STUDIO_RUN_STREAM_QUEUE_SIZE", defaults.run_stream_queue_size, 1
            ),
            run_lease_seconds=number(
                "PROMPT_STUDIO_RUN_LEASE_SECONDS", defaults.run_lease_seconds, 1.0
            ),
            run_sweep_seconds=number(
                "PROMPT_STUDIO_RUN_SWEEP_SECONDS", defaults.run_sweep_seconds, 0.1
            ),
            **_cache_settings(env, defaults, text, integer, number),
        )


WS_TRANSPORTS = ("direct", "asgi")


def _cache_settings(
    env: Mapping[str, str],
    defaults: Settings,
    text: Callable[[str, str], str],
    integer: Callable[..., int],
    number: Callable[..., float],
) -> dict[str, Any]:
    """The ``PROMPT_STUDIO_CACHE_*`` settings (see :class:`Settings` for each)."""
    # Imported here: server.cache imports the hub, whose modules import this one.
    from server.cache.factory import EMBEDDERS
    from server.cache.pricing import PriceTableError, parse_prices

    embedder = text("PROMPT_STUDIO_CACHE_EMBEDDER", defaults.cache_embedder).lower()
    if embedder not in EMBEDDERS:
        raise SettingsError(
            f"PROMPT_STUDIO_CACHE_EMBEDDER must be one of {', '.join(EMBEDDERS)}, got {embedder!r}"
        )
    try:
        prices = parse_prices(env.get("PROMPT_STUDIO_CACHE_MODEL_PRICES", ""))
    except PriceTableError as exc:
        raise SettingsError(f"PROMPT_STUDIO_CACHE_MODEL_PRICES: {exc}") from None
    return {
        "cache_embedder": embedder,
        "cache_embedding_model": text(
            "PROMPT_STUDIO_CACHE_EMBEDDING_MODEL", defaults.cache_embedding_model
        ),
        "cache_embedding_base_url": env.get("PROMPT_STUDIO_CACHE_EMBEDDING_BASE_URL", "").strip()
        or None,
        "cache_embedding_api_key": env.get("PROMPT_STUDIO_CACHE_EMBEDDING_API_KEY", "").strip()
        or None,
        "cache_embedding_timeout_seconds": number(
            "PROMPT_STUDIO_CACHE_EMBEDDING_TIMEOUT_SECONDS",
            defaults.cache_embedding_timeout_seconds,
            0.1,
        ),
        "cache_max_prompt_chars": integer(
            "PROMPT_STUDIO_CACHE_MAX_PROMPT_CHARS", defaults.cache_max_prompt_chars, 1
        ),
        "cache_max_entries_per_tenant": integer(
            "PROMPT_STUDIO_CACHE_MAX_ENTRIES_PER_TENANT", defaults.cache_max_entries_per_tenant, 1
        ),
        "cache_index_max_scopes": integer(
            "PROMPT_STUDIO_CACHE_INDEX_MAX_SCOPES", defaults.cache_index_max_scopes, 1
        ),
        "cache_sync_queue_limit": integer(
            "PROMPT_STUDIO_CACHE_SYNC_QUEUE_LIMIT", defaults.cache_sync_queue_limit, 1
        ),
        "cache_judge_queue_limit": integer(
            "PROMPT_STUDIO_CACHE_JUDGE_QUEUE_LIMIT", defaults.cache_judge_queue_limit, 1
        ),
        "cache_maintenance_seconds": number(
            "PROMPT_STUDIO_CACHE_MAINTENANCE_SECONDS", defaults.cache_maintenance_seconds
        ),
        "cache_refresh_batch": integer(
            "PROMPT_STUDIO_CACHE_REFRESH_BATCH", defaults.cache_refresh_batch, 1
        ),
        "cache_model_prices": prices,
    }


#: An operator key shorter than this is refused: it guards every tenant.
MIN_OPERATOR_KEY_LENGTH = 24


def _postgres_rls(enabled: bool, database_url: str) -> bool:
    if enabled and not database_url.startswith("postgresql"):
        raise SettingsError("PROMPT_STUDIO_POSTGRES_RLS=on needs a PostgreSQL DATABASE_URL")
    return enabled


def _operator_key(raw: str) -> str | None:
    key = raw.strip()
    if not key:
        return None
    if len(key) < MIN_OPERATOR_KEY_LENGTH:
        raise SettingsError(
            f"PROMPT_STUDIO_OPERATOR_KEY must be at least {MIN_OPERATOR_KEY_LENGTH} characters"
        )
    return key


def _allowed_origins(raw: str) -> tuple[str, ...]:
    try:
        return parse_allowed_origins(raw)
    except OriginError as error:
        raise SettingsError(f"PROMPT_STUDIO_ALLOWED_ORIGINS: {error}") from None


def _llm_base_url(raw: str) -> str | None:
    if not raw.strip():
        return None
    try:
        return validate_base_url(raw, field="LLM_BASE_URL")
    except EndpointConfigError as error:
        raise SettingsError(f"LLM_BASE_URL: {error}") from None


def _secret_key(raw: str) -> str | None:
    if not raw.strip():
        return None
    for part in raw.split(","):
        try:
            fernet_key_of(part)
        except ValueError as error:
            raise SettingsError(f"PROMPT_STUDIO_SECRET_KEY: {error}") from None
    return raw.strip()


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
