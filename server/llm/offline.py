"""The built-in ``offline`` model: no key, no network, the same answer for the same prompt.

It exists so that runs work on a fresh machine and so tests have a model that cannot flake. Its
answer is useful rather than random: a short structured summary of the rendered prompt (message
roles, prompt size, the request, its key terms, any ``{{placeholders}}`` left unfilled) followed by
the prompt itself, so a user sees exactly what would have been sent to a real model. Token counts
come from :mod:`server.llm.tokens`; ``max_tokens`` cuts the answer as a real model would
(``finish_reason="length"``). Temperature is accepted and ignored: the answer is deterministic.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from server.llm import tokens
from server.llm.base import ChatMessage, Completion, CompletionRequest, StreamChunk, TokenUsage

OFFLINE_MODEL = "offline"
OFFLINE_PROVIDER = "offline"

#: Tokens per streamed chunk: small enough to look like streaming, large enough to stay cheap.
STREAM_TOKENS_PER_CHUNK = 4
REQUEST_PREVIEW_CHARS = 200
KEY_TERM_COUNT = 5

_WORD = re.compile(r"[^\W\d_][\w'-]*", re.UNICODE)
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
_STOPWORD_TEXT = """
    a about above after again all also an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers him his how i if in into is it its itself just me more
    most my no nor not now of off on once only or other our ours out over own same she should so
    some such than that the their theirs them then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would you
    your yours please must shall may use using"""
_STOPWORDS = frozenset(re.findall(r"\S+", _STOPWORD_TEXT))


class OfflineProvider:
    """A :class:`~server.llm.base.Provider` that answers from the prompt alone."""

    name = OFFLINE_PROVIDER

    async def complete(self, request: CompletionRequest) -> Completion:
        """The whole deterministic answer."""
        text, usage, finish_reason = _answer(request)
        return Completion(
            text=text,
            usage=usage,
            model=OFFLINE_MODEL,
            provider=OFFLINE_PROVIDER,
            finish_reason=finish_reason,
        )

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamChunk]:
        """The same answer in small chunks; the last chunk carries usage and finish reason."""
        text, usage, finish_reason = _answer(request)
        pieces = tokens.split_tokens(text)
        for start in range(0, len(pieces), STREAM_TOKENS_PER_CHUNK):
            yield StreamChunk(delta="".join(pieces[start : start + STREAM_TOKENS_PER_CHUNK]))
            # Yield to the loop so a consumer that stops listening is noticed between chunks.
            await asyncio.sleep(0)
        yield StreamChunk(usage=usage, finish_reason=finish_reason)

    async def list_models(self) -> list[str]:
        """Only ``offline``."""
        return [OFFLINE_MODEL]


@dataclass(frozen=True, slots=True)
class PromptSummary:
    """What the offline model says about a prompt."""

    roles: tuple[str, ...]
    prompt_tokens: int
    words: int
    request: str
    key_terms: tuple[str, ...]
    unfilled_placeholders: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        """The summary with the API's camelCase keys."""
        return {
            "messages": len(self.roles),
            "roles": list(self.roles),
            "promptTokens": self.prompt_tokens,
            "words": self.words,
            "request": self.request,
            "keyTerms": list(self.key_terms),
            "unfilledPlaceholders": list(self.unfilled_placeholders),
        }


def summarize(messages: Sequence[ChatMessage]) -> PromptSummary:
    """The structured summary of a prompt that the offline model answers with."""
    user_texts = [message.content for message in messages if message.role == "user"]
    request_text = user_texts[-1] if user_texts else (messages[-1].content if messages else "")
    everything = "\n".join(message.content for message in messages)
    return PromptSummary(
        roles=tuple(message.role for message in messages),
        prompt_tokens=tokens.count_message_tokens(messages),
        words=len(_WORD.findall(everything)),
        request=_first_sentence(request_text),
        key_terms=tuple(key_terms(everything)),
        unfilled_placeholders=tuple(dict.fromkeys(_PLACEHOLDER.findall(everything))),
    )


def key_terms(text: str, count: int = KEY_TERM_COUNT) -> list[str]:
    """The most frequent content words of ``text`` (ties: first appearance wins)."""
    words = [word.lower() for word in _WORD.findall(text)]
    candidates = [word for word in words if len(word) > 2 and word not in _STOPWORDS]
    frequency = Counter(candidates)
    first_seen = {word: index for index, word in reversed(list(enumerate(candidates)))}
    ranked = sorted(frequency, key=lambda word: (-frequency[word], first_seen[word]))
    return ranked[:count]


def _answer(request: CompletionRequest) -> tuple[str, TokenUsage, str]:
    summary = summarize(request.messages)
    text = _render_json(summary, request) if request.json_mode else _render_text(summary, request)
    finish_reason = "stop"
    if request.max_tokens is not None:
        text, cut = tokens.truncate_to_tokens(text, request.max_tokens)
        if cut:
            finish_reason = "length"
    prompt_tokens = tokens.count_message_tokens(request.messages)
    completion_tokens = tokens.count_tokens(text)
    usage = TokenUsage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)
    return text, usage, finish_reason


def _render_text(summary: PromptSummary, request: CompletionRequest) -> str:
    placeholders = ", ".join("{{" + name + "}}" for name in summary.unfilled_placeholders)
    lines = [
        "Offline model: a deterministic echo of your prompt (no language model was called).",
        "",
        "Summary",
        f"- Messages: {len(summary.roles)} ({', '.join(summary.roles) or 'none'})",
        f"- Prompt: {summary.prompt_tokens} tokens, {summary.words} words",
        f"- Request: {summary.request or '(empty)'}",
        f"- Key terms: {', '.join(summary.key_terms) or 'none'}",
        f"- Unfilled placeholders: {placeholders or 'none'}",
        "",
        "Prompt",
    ]
    for message in request.messages:
        lines.append(f"[{message.role}]")
        lines.append(message.content)
    return "\n".join(lines)


def _render_json(summary: PromptSummary, request: CompletionRequest) -> str:
    echo = [{"role": message.role, "content": message.content} for message in request.messages]
    return json.dumps(
        {"model": OFFLINE_MODEL, "summary": summary.as_json(), "echo": echo},
        ensure_ascii=False,
        sort_keys=True,
    )


def _first_sentence(text: str) -> str:
    stripped = " ".join(text.split())
    sentence = _SENTENCE_END.split(stripped, maxsplit=1)[0]
    if len(sentence) > REQUEST_PREVIEW_CHARS:
        return sentence[: REQUEST_PREVIEW_CHARS - 1].rstrip() + "…"
    return sentence
