"""The built-in offline model: deterministic, useful, with real token counts."""

from __future__ import annotations

import json

from server.llm import tokens
from server.llm.base import ChatMessage, CompletionRequest
from server.llm.offline import OfflineProvider, key_terms, summarize

MESSAGES = (
    ChatMessage("system", "You are a careful translator of invoices."),
    ChatMessage("user", "Translate the invoice for {{client}} into French. Keep invoice totals."),
)


def request(**changes: object) -> CompletionRequest:
    base: dict[str, object] = {"model": "offline", "messages": MESSAGES}
    base.update(changes)
    return CompletionRequest(**base)  # type: ignore[arg-type]


async def test_answer_is_a_structured_echo_with_real_counts() -> None:
    completion = await OfflineProvider().complete(request())
    assert completion.provider == "offline" and completion.model == "offline"
    assert completion.finish_reason == "stop"
    text = completion.text
    assert "- Messages: 2 (system, user)" in text
    assert "- Request: Translate the invoice for {{client}} into French." in text
    assert "- Unfilled placeholders: {{client}}" in text
    assert "- Key terms: invoice, careful, translator, invoices, translate" in text
    assert text.endswith("[user]\n" + MESSAGES[1].content)
    prompt = tokens.count_message_tokens(MESSAGES)
    assert f"- Prompt: {prompt} tokens" in text
    assert completion.usage.prompt == prompt
    assert completion.usage.completion == tokens.count_tokens(text)
    assert completion.usage.total == prompt + completion.usage.completion


async def test_same_prompt_same_answer_whatever_the_temperature() -> None:
    provider = OfflineProvider()
    first = await provider.complete(request(temperature=0.0))
    second = await provider.complete(request(temperature=1.9))
    assert first == second


async def test_max_tokens_cuts_the_answer() -> None:
    completion = await OfflineProvider().complete(request(max_tokens=5))
    assert completion.finish_reason == "length"
    assert completion.usage.completion == 5 == tokens.count_tokens(completion.text)


async def test_json_mode_answers_a_json_object() -> None:
    completion = await OfflineProvider().complete(request(json_mode=True))
    answer = json.loads(completion.text)
    assert answer["model"] == "offline"
    assert answer["summary"]["unfilledPlaceholders"] == ["client"]
    assert answer["echo"][0] == {"role": "system", "content": MESSAGES[0].content}


async def test_stream_gives_the_same_text_then_usage() -> None:
    provider = OfflineProvider()
    whole = await provider.complete(request())
    chunks = [chunk async for chunk in provider.stream(request())]
    assert "".join(c.delta for c in chunks) == whole.text
    assert len(chunks) > 2
    assert chunks[-1].usage == whole.usage and chunks[-1].finish_reason == "stop"
    assert all(c.usage is None for c in chunks[:-1])


async def test_empty_prompt_still_answers() -> None:
    completion = await OfflineProvider().complete(request(messages=()))
    assert "- Messages: 0 (none)" in completion.text
    assert "- Request: (empty)" in completion.text
    assert completion.usage.prompt == 0


async def test_lists_only_itself() -> None:
    assert await OfflineProvider().list_models() == ["offline"]


def test_summary_of_a_long_request_is_cut() -> None:
    summary = summarize([ChatMessage("user", "word " * 200)])
    assert len(summary.request) == 200 and summary.request.endswith("…")


def test_key_terms_rank_by_frequency_then_first_appearance() -> None:
    assert key_terms("zeta alpha alpha beta beta gamma the the the") == [
        "alpha",
        "beta",
        "zeta",
        "gamma",
    ]
    assert key_terms("") == []
