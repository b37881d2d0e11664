"""A version as one live text and back."""

from __future__ import annotations

import pytest

from server.prompts.content import PromptContent, Variable
from server.prompts.document import content_from_text, version_text


@pytest.mark.parametrize(
    "content",
    [
        PromptContent(content="plain text\n"),
        PromptContent(content=""),
        PromptContent(sections={"system": "S", "user": "U\n\nmore\n"}),
        PromptContent(
            content="head", sections={"system": "", "developer": "D", "context": "C", "user": "U"}
        ),
        PromptContent(sections={"user": "ends with newlines\n\n"}),
    ],
)
def test_a_version_survives_the_trip_through_a_live_text(content: PromptContent) -> None:
    parsed = content_from_text(version_text(content))
    expected_content = content.content if content.sections is None else (content.content or None)
    assert parsed.content == expected_content
    assert parsed.sections == content.sections


def test_text_without_markers_is_content_and_base_supplies_variables_and_config() -> None:
    base = PromptContent(variables=(Variable("1", "x"),), model_config={"model": "m"})
    parsed = content_from_text("--- not a marker\n{{x}}", base)
    assert parsed.content == "--- not a marker\n{{x}}" and parsed.sections is None
    assert parsed.variables == base.variables and parsed.model_config == {"model": "m"}


def test_a_repeated_marker_continues_its_section() -> None:
    parsed = content_from_text("--- user ---\na\n--- system ---\ns\n--- user ---\nb")
    assert parsed.sections == {"user": "a\nb", "system": "s"}


def test_a_marker_on_the_last_line_makes_an_empty_section() -> None:
    assert content_from_text("x\n--- user ---").sections == {"user": ""}
