"""Diffs between versions: unified per text, variables and model config by key."""

from __future__ import annotations

from server.prompts.content import PromptContent, Variable
from server.prompts.diff import ConfigChange, VariableChange, diff_versions, unified


def test_unified_diff_is_labelled_and_empty_when_equal() -> None:
    assert unified("a\n", "a\n", name="user", from_version=1, to_version=2) == ""
    text = unified("a\nb\n", "a\nc\n", name="user", from_version=1, to_version=2)
    assert text.startswith("--- v1/user\n+++ v2/user\n@@")
    assert "-b\n+c\n" in text


def test_a_last_line_without_newline_is_marked() -> None:
    text = unified("a", "b", name="content", from_version=3, to_version=4)
    assert text.endswith("+b\n\\ No newline at end of file\n")
    assert "-a\n\\ No newline at end of file\n" in text


def test_diff_versions_covers_texts_variables_and_model_config() -> None:
    old = PromptContent(
        content="hello",
        sections={"system": "S1"},
        variables=(Variable("1", "a", "x"), Variable("2", "gone")),
        model_config={"model": "m1", "temperature": 0.2, "drop": True},
    )
    new = PromptContent(
        content="hello",
        sections={"system": "S2", "user": "U"},
        variables=(Variable("1", "a", "y"), Variable("3", "new", "n")),
        model_config={"model": "m2", "temperature": 0.2, "maxTokens": 10},
    )
    result = diff_versions(old, new, from_version=1, to_version=2)
    changed = {t.name: t.changed for t in result.texts}
    assert changed == {
        "content": False,
        "system": True,
        "developer": False,
        "user": True,
        "context": False,
    }
    assert result.variables == [
        VariableChange("gone", "removed", "", None),
        VariableChange("a", "changed", "x", "y"),
        VariableChange("new", "added", None, "n"),
    ]
    assert result.model_config == [
        ConfigChange("drop", "removed", True, None),
        ConfigChange("model", "changed", "m1", "m2"),
        ConfigChange("maxTokens", "added", None, 10),
    ]
