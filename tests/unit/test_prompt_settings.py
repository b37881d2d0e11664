"""The prompts area's settings: read from the environment, refused outside their bounds."""

from __future__ import annotations

import pytest

from server.settings import Settings, SettingsError

VARIABLES = {
    "PROMPT_STUDIO_PROMPT_MAX_TEXT_CHARS": ("prompt_max_text_chars", 500_000, 1),
    "PROMPT_STUDIO_PROMPT_MAX_VARIABLES": ("prompt_max_variables", 100, 0),
    "PROMPT_STUDIO_PROMPT_MAX_LABELS": ("prompt_max_labels", 50, 0),
    "PROMPT_STUDIO_PROMPT_IMPORT_MAX_VERSIONS": ("prompt_import_max_versions", 500, 1),
    "PROMPT_STUDIO_PROMPT_SAVE_ATTEMPTS": ("prompt_save_attempts", 5, 1),
}


@pytest.mark.parametrize("name", VARIABLES)
def test_defaults_values_and_lower_bounds(name: str) -> None:
    field, default, minimum = VARIABLES[name]
    assert getattr(Settings.from_env({}), field) == default
    assert getattr(Settings.from_env({name: str(minimum)}), field) == minimum
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: str(minimum - 1)})
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: "many"})


def test_save_attempts_have_an_upper_bound() -> None:
    assert Settings.from_env({"PROMPT_STUDIO_PROMPT_SAVE_ATTEMPTS": "100"}).prompt_save_attempts
    with pytest.raises(SettingsError, match="<= 100"):
        Settings.from_env({"PROMPT_STUDIO_PROMPT_SAVE_ATTEMPTS": "101"})
