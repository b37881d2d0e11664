"""Rendering: one-pass substitution, defaults, missing variables, and the chat messages."""

from __future__ import annotations

import pytest

from server.llm.base import ChatMessage
from server.prompts.content import PromptContent, Variable
from server.prompts.errors import MissingVariables
from server.prompts.render import render, substitute, to_messages


def test_substituted_values_are_never_rendered_again() -> None:
    rendered = substitute("{{a}} and {{b}}", {"a": "{{b}}", "b": "{{a}}"})
    assert rendered == "{{b}} and {{a}}"


def test_placeholders_without_values_and_malformed_braces_stay_literal() -> None:
    assert substitute("{{a}} {{ b }} {{c", {"b": "B"}) == "{{a}} B {{c"


def test_render_uses_given_values_then_non_empty_defaults() -> None:
    content = PromptContent(
        sections={"system": "Be {{tone}}.", "user": "About {{topic}}"},
        variables=(Variable("1", "tone", "kind"), Variable("2", "topic", "")),
    )
    rendered = render(content, {"topic": "cats"})
    assert rendered.sections == {"system": "Be kind.", "user": "About cats"}
    assert rendered.content is None
    assert rendered.messages == [
        ChatMessage("system", "Be kind."),
        ChatMessage("user", "About cats"),
    ]
    assert render(content, {"topic": "x", "tone": ""}).sections == {
        "system": "Be .",
        "user": "About x",
    }


def test_a_missing_variable_error_names_every_missing_one_once() -> None:
    content = PromptContent(
        content="{{a}} {{b}}", sections={"user": "{{c}} {{a}}"}, variables=(Variable("1", "b"),)
    )
    with pytest.raises(MissingVariables) as caught:
        render(content, {})
    assert caught.value.names == ["a", "b", "c"]
    assert caught.value.field == "variables"
    assert "a, b, c" in caught.value.message


def test_messages_from_sections_join_context_before_user_and_skip_empty_ones() -> None:
    messages = to_messages(
        "ignored", {"system": "S", "developer": "D", "context": "C", "user": "U"}
    )
    assert messages == [
        ChatMessage("system", "S"),
        ChatMessage("developer", "D"),
        ChatMessage("user", "C\n\nU"),
    ]
    assert to_messages(None, {"system": "", "user": "U"}) == [ChatMessage("user", "U")]


def test_messages_from_plain_content() -> None:
    assert to_messages("Hello", None) == [ChatMessage("user", "Hello")]
    assert to_messages("Hello", {"system": ""}) == [ChatMessage("user", "Hello")]
    assert to_messages("", None) == []
