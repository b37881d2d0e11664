"""``Settings.from_env``: the README's defaults, every variable parsed, every bad value named."""

from __future__ import annotations

import pytest

from server.settings import DEFAULT_DATABASE_URL, Settings, SettingsError

POSTGRES_URL = "postgresql+asyncpg://ps:secret@db.internal:5433/promptstudio"


def test_defaults_match_the_readme() -> None:
    settings = Settings.from_env({})
    assert settings.database_url == DEFAULT_DATABASE_URL == "sqlite+aiosqlite:///./prompt-studio.db"
    assert settings.is_sqlite
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.redis_url is None
    assert settings.log_level == "INFO"
    assert settings.max_frame_bytes == 1_048_576
    assert settings.rate_limit_per_second == 200
    assert settings.rate_limit_burst == 400
    assert settings.unload_grace_seconds == 30
    assert settings.history_flush_ms == 20
    assert settings.presence_debounce_seconds == 15
    assert settings.send_queue_limit == 1024
    assert settings.node_id is None
    assert settings.ws_compression is False
    assert settings.ws_transport == "direct"
    assert settings.head_timeout_seconds == 10
    assert settings.max_half_open_connections == 1000
    assert settings.drop_grace_seconds == 5


def test_blank_values_fall_back_to_defaults() -> None:
    blank = {"DATABASE_URL": "  ", "HOST": "", "PORT": " ", "REDIS_URL": "", "LOG_LEVEL": ""}
    assert Settings.from_env(blank) == Settings.from_env({})


def test_every_variable_is_parsed() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": POSTGRES_URL,
            "REDIS_URL": "redis://cache.internal:6380/2",
            "HOST": "0.0.0.0",
            "PORT": " 9001 ",
            "LOG_LEVEL": "debug",
            "PROMPT_STUDIO_MAX_FRAME_BYTES": "2048",
            "PROMPT_STUDIO_RATE_LIMIT_PER_SECOND": "12.5",
            "PROMPT_STUDIO_RATE_LIMIT_BURST": "25",
            "PROMPT_STUDIO_UNLOAD_GRACE_SECONDS": "0.5",
            "PROMPT_STUDIO_HISTORY_FLUSH_MS": "7",
            "PROMPT_STUDIO_PRESENCE_DEBOUNCE_SECONDS": "2",
            "PROMPT_STUDIO_SEND_QUEUE_LIMIT": "64",
            "PROMPT_STUDIO_NODE_ID": "node-a",
            "PROMPT_STUDIO_WS_COMPRESSION": "Yes",
            "PROMPT_STUDIO_WS_TRANSPORT": "ASGI",
            "PROMPT_STUDIO_HEAD_TIMEOUT_SECONDS": "0.1",
            "PROMPT_STUDIO_MAX_HALF_OPEN_CONNECTIONS": "1",
            "PROMPT_STUDIO_DROP_GRACE_SECONDS": "2.5",
        }
    )
    assert settings.database_url == POSTGRES_URL and not settings.is_sqlite
    assert settings.redis_url == "redis://cache.internal:6380/2"
    assert (settings.host, settings.port) == ("0.0.0.0", 9001)
    assert settings.log_level == "DEBUG"
    assert settings.max_frame_bytes == 2048
    assert settings.rate_limit_per_second == 12.5
    assert settings.rate_limit_burst == 25
    assert settings.unload_grace_seconds == 0.5
    assert settings.history_flush_ms == 7
    assert settings.presence_debounce_seconds == 2.0
    assert settings.send_queue_limit == 64
    assert settings.node_id == "node-a"
    assert settings.ws_compression is True
    assert settings.ws_transport == "asgi"
    assert settings.head_timeout_seconds == 0.1  # the smallest accepted
    assert settings.max_half_open_connections == 1  # likewise
    assert settings.drop_grace_seconds == 2.5


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("ON", True), ("0", False), ("no", False), ("off", False)],
)
def test_booleans_accept_the_usual_spellings(raw: str, expected: bool) -> None:
    assert Settings.from_env({"PROMPT_STUDIO_WS_COMPRESSION": raw}).ws_compression is expected


@pytest.mark.parametrize(
    "url",
    [
        "sqlite+aiosqlite:///./prompt-studio.db",
        "sqlite+aiosqlite:////var/lib/prompt-studio/data.db",
        "sqlite+aiosqlite:///:memory:",
        "postgresql+asyncpg://postgres@127.0.0.1/promptstudio",
    ],
)
def test_supported_database_urls_are_accepted(url: str) -> None:
    assert Settings.from_env({"DATABASE_URL": url}).database_url == url


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://user:pw@cache:6380/1", "unix:///tmp/redis.sock"]
)
def test_redis_urls_are_accepted(url: str) -> None:
    assert Settings.from_env({"REDIS_URL": url}).redis_url == url


@pytest.mark.parametrize("level", ["DEBUG", "INFO", "WARNING", "ERROR", "warning"])
def test_log_levels_are_accepted_case_insensitively(level: str) -> None:
    assert Settings.from_env({"LOG_LEVEL": level}).log_level == level.upper()


@pytest.mark.parametrize(
    ("name", "value", "hint"),
    [
        ("PORT", "eighty", "integer"),
        ("PORT", "80.5", "integer"),
        ("PORT", "-1", ">= 0"),
        ("PORT", "65536", "<= 65535"),
        ("LOG_LEVEL", "VERBOSE", "DEBUG"),
        ("REDIS_URL", "http://127.0.0.1:6379", "redis://"),
        ("REDIS_URL", "127.0.0.1:6379", "redis://"),
        ("DATABASE_URL", "postgresql://postgres@127.0.0.1/db", "postgresql+asyncpg://"),
        ("DATABASE_URL", "postgres://postgres@127.0.0.1/db", "postgresql+asyncpg://"),
        ("DATABASE_URL", "sqlite:///./prompt-studio.db", "sqlite+aiosqlite://"),
        ("DATABASE_URL", "mysql://x", "not supported"),
        ("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1/db", "not supported"),
        ("DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:notaport/db", "malformed"),
        ("PROMPT_STUDIO_MAX_FRAME_BYTES", "big", "integer"),
        ("PROMPT_STUDIO_MAX_FRAME_BYTES", "100", ">= 1024"),
        ("PROMPT_STUDIO_RATE_LIMIT_PER_SECOND", "fast", "number"),
        ("PROMPT_STUDIO_RATE_LIMIT_PER_SECOND", "0", ">= 1"),
        ("PROMPT_STUDIO_RATE_LIMIT_PER_SECOND", "nan", "finite"),
        ("PROMPT_STUDIO_RATE_LIMIT_BURST", "0", ">= 1"),
        ("PROMPT_STUDIO_UNLOAD_GRACE_SECONDS", "-1", ">= 0"),
        ("PROMPT_STUDIO_UNLOAD_GRACE_SECONDS", "inf", "finite"),
        ("PROMPT_STUDIO_HISTORY_FLUSH_MS", "0", ">= 1"),
        ("PROMPT_STUDIO_PRESENCE_DEBOUNCE_SECONDS", "-0.5", ">= 0"),
        ("PROMPT_STUDIO_SEND_QUEUE_LIMIT", "8", ">= 16"),
        ("PROMPT_STUDIO_WS_COMPRESSION", "maybe", "true or false"),
        ("PROMPT_STUDIO_WS_TRANSPORT", "fast", "direct, asgi"),
        ("PROMPT_STUDIO_HEAD_TIMEOUT_SECONDS", "0.09", ">= 0.1"),
        ("PROMPT_STUDIO_HEAD_TIMEOUT_SECONDS", "inf", "finite"),
        ("PROMPT_STUDIO_HEAD_TIMEOUT_SECONDS", "soon", "number"),
        ("PROMPT_STUDIO_MAX_HALF_OPEN_CONNECTIONS", "0", ">= 1"),
        ("PROMPT_STUDIO_MAX_HALF_OPEN_CONNECTIONS", "1.5", "integer"),
        ("PROMPT_STUDIO_DROP_GRACE_SECONDS", "0", ">= 0.1"),
        ("PROMPT_STUDIO_DROP_GRACE_SECONDS", "nan", "finite"),
    ],
)
def test_bad_values_raise_naming_the_variable(name: str, value: str, hint: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    message = str(caught.value)
    assert name in message
    assert hint in message
    assert "\n" not in message  # the CLI prints it as one line


def test_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


def test_from_env_reads_the_process_environment_when_given_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PORT", "8123")
    monkeypatch.setenv("LOG_LEVEL", "ERROR")
    settings = Settings.from_env()
    assert (settings.port, settings.log_level) == (8123, "ERROR")
    monkeypatch.setenv("PORT", "nope")
    with pytest.raises(SettingsError, match="PORT"):
        Settings.from_env()


def test_with_overrides_returns_a_changed_copy() -> None:
    base = Settings.from_env({})
    changed = base.with_overrides(port=9100, host="0.0.0.0")
    assert (changed.port, changed.host) == (9100, "0.0.0.0")
    assert (base.port, base.host) == (8000, "127.0.0.1")


AWARENESS_VARIABLES = {
    "PROMPT_STUDIO_AWARENESS_IDS_PER_CONNECTION": ("awareness_ids_per_connection", 4, 1, None),
    "PROMPT_STUDIO_AWARENESS_ENTRIES_PER_MESSAGE": ("awareness_entries_per_message", 100, 1, None),
    "PROMPT_STUDIO_AWARENESS_STATES_PER_ROOM": ("awareness_states_per_room", 1000, 1, None),
    "PROMPT_STUDIO_AWARENESS_STATE_BYTES": ("awareness_state_bytes", 8192, 2, None),
    "PROMPT_STUDIO_AWARENESS_STATE_DEPTH": ("awareness_state_depth", 16, 1, 100),
    "PROMPT_STUDIO_CRDT_MAX_WAITING_UPDATES": ("crdt_max_waiting_updates", 256, 1, 100_000),
}


@pytest.mark.parametrize("name", sorted(AWARENESS_VARIABLES))
def test_awareness_limits_default_parse_and_refuse_values_past_their_edges(name: str) -> None:
    field, default, minimum, maximum = AWARENESS_VARIABLES[name]
    assert getattr(Settings.from_env({}), field) == default
    assert getattr(Settings.from_env({name: str(minimum)}), field) == minimum
    with pytest.raises(SettingsError, match=f"{name} must be >= {minimum}"):
        Settings.from_env({name: str(minimum - 1)})
    with pytest.raises(SettingsError, match=f"{name} must be an integer"):
        Settings.from_env({name: "many"})
    if maximum is not None:
        assert getattr(Settings.from_env({name: str(maximum)}), field) == maximum
        with pytest.raises(SettingsError, match=f"{name} must be <= {maximum}"):
            Settings.from_env({name: str(maximum + 1)})


def test_llm_settings_defaults_and_parsing() -> None:
    defaults = Settings.from_env({})
    assert (defaults.llm_base_url, defaults.llm_api_key, defaults.llm_models) == (None, None, ())
    assert (defaults.llm_timeout_seconds, defaults.llm_max_retries) == (60.0, 2)
    assert (defaults.llm_models_ttl_seconds, defaults.llm_models_cache_size) == (300.0, 256)
    assert defaults.secret_key is None
    settings = Settings.from_env(
        {
            "LLM_BASE_URL": "http://127.0.0.1:11434/v1/",
            "LLM_API_KEY": " sk-abc ",
            "LLM_MODELS": "llama3, qwen2 ,,llama3",
            "PROMPT_STUDIO_LLM_TIMEOUT_SECONDS": "0.1",
            "PROMPT_STUDIO_LLM_MAX_RETRIES": "10",
            "PROMPT_STUDIO_LLM_MODELS_TTL_SECONDS": "0",
            "PROMPT_STUDIO_LLM_MODELS_CACHE_SIZE": "1",
            "PROMPT_STUDIO_SECRET_KEY": "s" * 32 + "," + "t" * 40,
        }
    )
    assert settings.llm_base_url == "http://127.0.0.1:11434/v1"
    assert settings.llm_api_key == "sk-abc"
    assert settings.llm_models == ("llama3", "qwen2")
    assert (settings.llm_timeout_seconds, settings.llm_max_retries) == (0.1, 10)
    assert (settings.llm_models_ttl_seconds, settings.llm_models_cache_size) == (0.0, 1)
    assert settings.secret_key == "s" * 32 + "," + "t" * 40


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LLM_BASE_URL", "localhost:8080"),
        ("LLM_BASE_URL", "https://user:pw@llm.example/v1"),
        ("PROMPT_STUDIO_LLM_TIMEOUT_SECONDS", "0.09"),
        ("PROMPT_STUDIO_LLM_MAX_RETRIES", "11"),
        ("PROMPT_STUDIO_LLM_MAX_RETRIES", "-1"),
        ("PROMPT_STUDIO_LLM_MODELS_CACHE_SIZE", "0"),
        ("PROMPT_STUDIO_SECRET_KEY", "s" * 31),
        ("PROMPT_STUDIO_SECRET_KEY", "s" * 32 + ",short"),
    ],
)
def test_bad_llm_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


HISTORY_INTEGERS = {
    "PROMPT_STUDIO_HISTORY_MAX_PENDING_EDITS": ("history_max_pending_edits", 20_000, 1),
    "PROMPT_STUDIO_HISTORY_MAX_PENDING_BYTES": ("history_max_pending_bytes", 64 << 20, 1024),
    "PROMPT_STUDIO_SQLITE_BUSY_TIMEOUT_MS": ("sqlite_busy_timeout_ms", 30_000, 0),
}


@pytest.mark.parametrize("name", sorted(HISTORY_INTEGERS))
def test_history_writer_limits_default_parse_and_refuse_values_past_their_edges(
    name: str,
) -> None:
    field, default, minimum = HISTORY_INTEGERS[name]
    assert getattr(Settings.from_env({}), field) == default
    assert getattr(Settings.from_env({name: str(minimum)}), field) == minimum
    with pytest.raises(SettingsError, match=f"{name} must be >= {minimum}"):
        Settings.from_env({name: str(minimum - 1)})
    with pytest.raises(SettingsError, match=f"{name} must be an integer"):
        Settings.from_env({name: "1e3"})


def test_session_touch_interval_defaults_parses_and_refuses_negative_values() -> None:
    name = "PROMPT_STUDIO_SESSION_TOUCH_SECONDS"
    assert Settings.from_env({}).session_touch_seconds == 5.0
    assert Settings.from_env({name: "0"}).session_touch_seconds == 0.0
    assert Settings.from_env({name: "0.25"}).session_touch_seconds == 0.25
    with pytest.raises(SettingsError, match=f"{name} must be >= 0"):
        Settings.from_env({name: "-0.1"})
    with pytest.raises(SettingsError, match=f"{name} must be a finite number"):
        Settings.from_env({name: "inf"})


# name -> (field, default, lowest accepted, highest accepted or None, a value just too low)
COMPOSE_VARIABLES: dict[str, tuple[str, float, float, float | None, str]] = {
    "PROMPT_STUDIO_COMPOSE_CONCURRENCY": ("compose_concurrency", 2, 0, 64, "-1"),
    "PROMPT_STUDIO_COMPOSE_LEASE_SECONDS": ("compose_lease_seconds", 30.0, 1.0, None, "0.99"),
    "PROMPT_STUDIO_COMPOSE_POLL_SECONDS": ("compose_poll_seconds", 1.0, 0.05, None, "0.04"),
    "PROMPT_STUDIO_COMPOSE_MAX_ATTEMPTS": ("compose_max_attempts", 3, 1, 100, "0"),
    "PROMPT_STUDIO_COMPOSE_STAGE_TIMEOUT_SECONDS": ("compose_stage_timeout_seconds", 120.0, 1.0, None, "0.5"),
    "PROMPT_STUDIO_COMPOSE_VALIDATION_RETRIES": ("compose_validation_retries", 1, 0, 5, "-1"),
    "PROMPT_STUDIO_COMPOSE_MAX_ACTIVE_PER_TENANT": ("compose_max_active_per_tenant", 10, 1, None, "0"),
    "PROMPT_STUDIO_COMPOSE_MAX_INPUT_CHARS": ("compose_max_input_chars", 20_000, 100, None, "99"),
    "PROMPT_STUDIO_COMPOSE_EVENTS_POLL_SECONDS": ("compose_events_poll_seconds", 1.0, 0.05, None, "0.01"),
    "PROMPT_STUDIO_COMPOSE_EVENTS_MAX_SECONDS": ("compose_events_max_seconds", 900.0, 1.0, None, "0.5"),
    "PROMPT_STUDIO_COMPOSE_EVENTS_HEARTBEAT_SECONDS": ("compose_events_heartbeat_seconds", 15.0, 0.1, None, "0.09"),
    "PROMPT_STUDIO_COMPOSE_PRESENCE_LINGER_SECONDS": ("compose_presence_linger_seconds", 60.0, 0.0, None, "-1"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(COMPOSE_VARIABLES))
def test_compose_settings_default_parse_and_refuse_values_past_their_edges(name: str) -> None:
    field, default, lowest, highest, too_low = COMPOSE_VARIABLES[name]
    assert getattr(Settings.from_env({}), field) == default
    assert getattr(Settings.from_env({name: str(lowest)}), field) == lowest
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: too_low})
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: "lots"})
    if highest is not None:
        assert getattr(Settings.from_env({name: str(highest)}), field) == highest
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({name: str(int(highest) + 1)})


# name -> (field, default, lowest accepted, a value just too low)
CACHE_NUMBERS: dict[str, tuple[str, float, float, str]] = {
    "PROMPT_STUDIO_CACHE_EMBEDDING_TIMEOUT_SECONDS": ("cache_embedding_timeout_seconds", 10.0, 0.1, "0.09"),
    "PROMPT_STUDIO_CACHE_MAX_PROMPT_CHARS": ("cache_max_prompt_chars", 32_000, 1, "0"),
    "PROMPT_STUDIO_CACHE_MAX_ENTRIES_PER_TENANT": ("cache_max_entries_per_tenant", 100_000, 1, "0"),
    "PROMPT_STUDIO_CACHE_INDEX_MAX_SCOPES": ("cache_index_max_scopes", 1024, 1, "0"),
    "PROMPT_STUDIO_CACHE_SYNC_QUEUE_LIMIT": ("cache_sync_queue_limit", 1024, 1, "0"),
    "PROMPT_STUDIO_CACHE_JUDGE_QUEUE_LIMIT": ("cache_judge_queue_limit", 64, 1, "0"),
    "PROMPT_STUDIO_CACHE_MAINTENANCE_SECONDS": ("cache_maintenance_seconds", 60.0, 0.0, "-1"),
    "PROMPT_STUDIO_CACHE_REFRESH_BATCH": ("cache_refresh_batch", 50, 1, "0"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CACHE_NUMBERS))
def test_cache_limits_default_parse_and_refuse_values_past_their_edges(name: str) -> None:
    field, default, lowest, too_low = CACHE_NUMBERS[name]
    assert getattr(Settings.from_env({}), field) == default
    assert getattr(Settings.from_env({name: str(lowest)}), field) == lowest
    for bad in (too_low, "lots"):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({name: bad})


def test_cache_embedder_endpoint_and_prices() -> None:
    defaults = Settings.from_env({})
    assert defaults.cache_embedder == "wordllama" and defaults.cache_model_prices == ()
    assert defaults.cache_embedding_base_url is None and defaults.cache_embedding_api_key is None
    parsed = Settings.from_env(
        {
            "PROMPT_STUDIO_CACHE_EMBEDDER": "OpenAI",
            "PROMPT_STUDIO_CACHE_EMBEDDING_MODEL": "nomic-embed-text",
            "PROMPT_STUDIO_CACHE_EMBEDDING_BASE_URL": "http://127.0.0.1:11434/v1",
            "PROMPT_STUDIO_CACHE_EMBEDDING_API_KEY": "sk-embed",
            "PROMPT_STUDIO_CACHE_MODEL_PRICES": "llama3=0.2/0.4, gpt-4o=3/12",
        }
    )
    assert parsed.cache_embedder == "openai" and parsed.cache_embedding_model == "nomic-embed-text"
    assert parsed.cache_embedding_base_url == "http://127.0.0.1:11434/v1"
    assert parsed.cache_embedding_api_key == "sk-embed"
    assert parsed.cache_model_prices == (("llama3", 0.2, 0.4), ("gpt-4o", 3.0, 12.0))
    with pytest.raises(SettingsError, match="PROMPT_STUDIO_CACHE_EMBEDDER"):
        Settings.from_env({"PROMPT_STUDIO_CACHE_EMBEDDER": "bert"})
    for bad in ("llama3", "llama3=1", "llama3=a/b", "llama3=-1/1"):
        with pytest.raises(SettingsError, match="PROMPT_STUDIO_CACHE_MODEL_PRICES"):
            Settings.from_env({"PROMPT_STUDIO_CACHE_MODEL_PRICES": bad})


def test_run_settings_defaults_and_edges() -> None:
    defaults = Settings.from_env({})
    assert (defaults.run_compare_max_targets, defaults.run_stream_queue_size) == (8, 256)
    edges = Settings.from_env(
        {"PROMPT_STUDIO_RUN_COMPARE_MAX_TARGETS": "32", "PROMPT_STUDIO_RUN_STREAM_QUEUE_SIZE": "1"}
    )
    assert (edges.run_compare_max_targets, edges.run_stream_queue_size) == (32, 1)
    for name, value in (
        ("PROMPT_STUDIO_RUN_COMPARE_MAX_TARGETS", "0"),
        ("PROMPT_STUDIO_RUN_COMPARE_MAX_TARGETS", "33"),
        ("PROMPT_STUDIO_RUN_STREAM_QUEUE_SIZE", "0"),
    ):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({name: value})


def test_operator_key_purge_interval_and_row_level_security() -> None:
    defaults = Settings.from_env({})
    assert defaults.operator_key is None
    assert defaults.login_purge_interval_seconds == 3600
    assert defaults.postgres_rls is False
    key = "k" * 24
    assert Settings.from_env({"PROMPT_STUDIO_OPERATOR_KEY": f"  {key} "}).operator_key == key
    with pytest.raises(SettingsError, match="at least 24"):
        Settings.from_env({"PROMPT_STUDIO_OPERATOR_KEY": "k" * 23})
    assert (
        Settings.from_env(
            {"PROMPT_STUDIO_LOGIN_PURGE_INTERVAL_SECONDS": "1"}
        ).login_purge_interval_seconds
        == 1
    )
    with pytest.raises(SettingsError, match="PURGE_INTERVAL"):
        Settings.from_env({"PROMPT_STUDIO_LOGIN_PURGE_INTERVAL_SECONDS": "0.5"})
    with pytest.raises(SettingsError, match="PostgreSQL"):
        Settings.from_env({"PROMPT_STUDIO_POSTGRES_RLS": "on"})
    with pytest.raises(SettingsError, match="true or false"):
        Settings.from_env({"PROMPT_STUDIO_POSTGRES_RLS": "maybe", "DATABASE_URL": POSTGRES_URL})
    assert Settings.from_env(
        {"PROMPT_STUDIO_POSTGRES_RLS": "on", "DATABASE_URL": POSTGRES_URL}
    ).postgres_rls


def test_allowed_origins_are_normalized_and_malformed_ones_refused() -> None:
    assert Settings.from_env({}).allowed_origins == ()  # same origin only
    parsed = Settings.from_env(
        {
            "PROMPT_STUDIO_ALLOWED_ORIGINS": (
                " HTTPS://App.Example.com:443 , http://localhost:5173,https://app.example.com,"
                "http://[::1]:8080/"
            )
        }
    )
    assert parsed.allowed_origins == (
        "https://app.example.com",
        "http://localhost:5173",
        "http://[::1]:8080",
    )
    assert Settings.from_env({"PROMPT_STUDIO_ALLOWED_ORIGINS": " * "}).allowed_origins == ("*",)
    for bad in (
        "app.example.com",
        "ftp://files.example",
        "https://app.example/path",
        "https://user:pw@app.example",
        "https://app.example?x=1",
        "https://app.example:99999",
        "null",
        "*, https://app.example",
    ):
        with pytest.raises(SettingsError, match="PROMPT_STUDIO_ALLOWED_ORIGINS"):
            Settings.from_env({"PROMPT_STUDIO_ALLOWED_ORIGINS": bad})


# name -> (field, default, lowest accepted, a value just too low)
RUN_LEASE_NUMBERS: dict[str, tuple[str, float, float, str]] = {
    "PROMPT_STUDIO_RUN_LEASE_SECONDS": ("run_lease_seconds", 15.0, 1.0, "0.99"),
    "PROMPT_STUDIO_RUN_SWEEP_SECONDS": ("run_sweep_seconds", 5.0, 0.1, "0.09"),
}


@pytest.mark.parametrize("name", sorted(RUN_LEASE_NUMBERS))
def test_run_lease_settings_default_parse_and_refuse_values_past_their_edges(name: str) -> None:
    field, default, lowest, too_low = RUN_LEASE_NUMBERS[name]
    assert getattr(Settings.from_env({}), field) == default
    assert getattr(Settings.from_env({name: str(lowest)}), field) == lowest
    for bad in (too_low, "lots", "nan", "inf"):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({name: bad})
