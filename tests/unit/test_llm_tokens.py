"""Token counting with the bundled cl100k_base encoding (no download)."""

from __future__ import annotations

import pytest

from server.llm import tokens
from server.llm.base import ChatMessage


def test_counts_are_cl100k_counts() -> None:
    # Reference ids from OpenAI's cl100k_base for this sentence.
    assert tokens.encode("Hello world, héllo!") == [9906, 1917, 11, 305, 19010, 385, 0]
    assert tokens.count_tokens("Hello world, héllo!") == 7
    assert tokens.count_tokens("") == 0


def test_special_token_text_is_counted_not_refused() -> None:
    assert tokens.count_tokens("<|endoftext|>") > 1


def test_chat_messages_include_the_framing() -> None:
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")]
    content = sum(tokens.count_tokens(m.content) + tokens.count_tokens(m.role) for m in messages)
    assert tokens.count_message_tokens(messages) == content + 3 * 2 + 3
    assert tokens.count_message_tokens([]) == 0


@pytest.mark.parametrize("limit", [0, 1, 3, 100])
def test_truncate_to_tokens(limit: int) -> None:
    text = "The quick brown fox jumps over the lazy dog"
    cut, was_cut = tokens.truncate_to_tokens(text, limit)
    assert tokens.count_tokens(cut) <= limit
    assert was_cut == (tokens.count_tokens(text) > limit)
    assert text.startswith(cut)


@pytest.mark.parametrize("text", ["plain words here", "emoji 🎉🎉 and 日本語 text", "", "a\n\tb"])
def test_split_tokens_round_trips_without_broken_characters(text: str) -> None:
    pieces = tokens.split_tokens(text)
    assert "".join(pieces) == text
    assert all("\ufffd" not in piece for piece in pieces)
    assert len(pieces) <= tokens.count_tokens(text)
