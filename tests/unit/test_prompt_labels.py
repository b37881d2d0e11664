"""Label names, and which labels a caller may move."""

from __future__ import annotations

import pytest

from server.prompts.errors import InvalidPrompt
from server.prompts.labels import is_stored, validate_label, validate_movable


@pytest.mark.parametrize("name", ["production", "staging", "v1.2", "a", "x_y-z", "9", "a" * 64])
def test_valid_label_names(name: str) -> None:
    assert validate_label(name) == name


@pytest.mark.parametrize("name", ["", "Prod", "-a", ".a", "a b", "a/b", "a" * 65, "é", "a\n"])
def test_invalid_label_names_fail_on_the_label_field(name: str) -> None:
    with pytest.raises(InvalidPrompt) as caught:
        validate_label(name)
    assert caught.value.field == "label"


def test_latest_cannot_be_moved_by_hand_but_production_can() -> None:
    with pytest.raises(InvalidPrompt, match="latest"):
        validate_movable("latest")
    assert validate_movable("production") == "production"
    assert not is_stored("latest") and not is_stored("production") and is_stored("staging")
