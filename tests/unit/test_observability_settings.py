"""The settings of /metrics and of the log format: defaults, accepted values and their edges."""

from __future__ import annotations

import pytest

from server.settings import Settings, SettingsError


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.metrics_enabled is True
    assert settings.metrics_port is None
    assert settings.log_format == "text"


@pytest.mark.parametrize(("raw", "port"), [("1", 1), ("9100", 9100), ("65535", 65535), (" ", None)])
def test_metrics_port_accepts_ports(raw: str, port: int | None) -> None:
    assert Settings.from_env({"PROMPT_STUDIO_METRICS_PORT": raw}).metrics_port == port


@pytest.mark.parametrize("raw", ["0", "-1", "65536", "http", "9100.5"])
def test_metrics_port_refuses_anything_else(raw: str) -> None:
    with pytest.raises(SettingsError, match="PROMPT_STUDIO_METRICS_PORT"):
        Settings.from_env({"PROMPT_STUDIO_METRICS_PORT": raw})


@pytest.mark.parametrize(("raw", "enabled"), [("false", False), ("0", False), ("on", True)])
def test_metrics_can_be_switched_off(raw: str, enabled: bool) -> None:
    assert Settings.from_env({"PROMPT_STUDIO_METRICS_ENABLED": raw}).metrics_enabled is enabled


def test_metrics_enabled_refuses_non_booleans() -> None:
    with pytest.raises(SettingsError, match="PROMPT_STUDIO_METRICS_ENABLED"):
        Settings.from_env({"PROMPT_STUDIO_METRICS_ENABLED": "maybe"})


@pytest.mark.parametrize(("raw", "fmt"), [("json", "json"), ("JSON", "json"), ("text", "text")])
def test_log_format_accepts_text_and_json(raw: str, fmt: str) -> None:
    assert Settings.from_env({"PROMPT_STUDIO_LOG_FORMAT": raw}).log_format == fmt


@pytest.mark.parametrize("raw", ["xml", "logfmt", "jsonl"])
def test_log_format_refuses_others(raw: str) -> None:
    with pytest.raises(SettingsError, match="PROMPT_STUDIO_LOG_FORMAT"):
        Settings.from_env({"PROMPT_STUDIO_LOG_FORMAT": raw})


@pytest.mark.parametrize(("raw", "size"), [("256", 256), ("1048576", 1048576), ("", 8192)])
def test_metrics_max_head_bytes_accepts_its_range(raw: str, size: int) -> None:
    settings = Settings.from_env({"PROMPT_STUDIO_METRICS_MAX_HEAD_BYTES": raw})
    assert settings.metrics_max_head_bytes == size


@pytest.mark.parametrize("raw", ["255", "1048577", "big"])
def test_metrics_max_head_bytes_refuses_the_rest(raw: str) -> None:
    with pytest.raises(SettingsError, match="PROMPT_STUDIO_METRICS_MAX_HEAD_BYTES"):
        Settings.from_env({"PROMPT_STUDIO_METRICS_MAX_HEAD_BYTES": raw})
