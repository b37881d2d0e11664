"""The OpenAI-compatible provider over real HTTP against the fake server: answers, streams, faults."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from server.llm.base import (
    ChatMessage,
    CompletionRequest,
    ContextTooLong,
    ProviderAuthError,
    ProviderBadResponse,
    ProviderRateLimited,
    ProviderStreamInterrupted,
    ProviderTimeout,
    ProviderUnavailable,
    StreamChunk,
    UnknownModel,
)
from server.llm.openai_provider import OpenAICompatibleProvider
from tests.support.fake_openai import FakeOpenAI
from tests.support.waiting import eventually

KEY = "sk-fake-provider-test"
MESSAGES = (
    ChatMessage("system", "You answer briefly."),
    ChatMessage("user", "Name three primary colours please"),
)
REPLY = "Fake answer to: Name three primary colours please"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY) as server:
        yield server


def provider_for(
    fake: FakeOpenAI, *, key: str = KEY, timeout: float = 5.0, retries: int = 0
) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(
        base_url=fake.base_url, api_key=key, timeout_seconds=timeout, max_retries=retries
    )


def request(**changes: object) -> CompletionRequest:
    base = {"model": "fake-small", "messages": MESSAGES, "temperature": 0.2, "max_tokens": None}
    base.update(changes)
    return CompletionRequest(**base)  # type: ignore[arg-type]


async def collect(provider: OpenAICompatibleProvider, req: CompletionRequest) -> list[StreamChunk]:
    return [chunk async for chunk in provider.stream(req)]


async def test_complete_returns_text_usage_and_sends_parameters(fake: FakeOpenAI) -> None:
    provider = provider_for(fake)
    try:
        completion = await provider.complete(request(max_tokens=50, json_mode=True))
    finally:
        await provider.aclose()
    assert completion.text == REPLY
    assert completion.provider == "openai-compatible"
    assert completion.finish_reason == "stop"
    # The fake counts words: 3 + 5 prompt, 8 completion.
    assert (completion.usage.prompt, completion.usage.completion) == (8, 8)
    assert completion.usage.total == 16
    sent = fake.chat_requests()[-1].body
    assert sent["temperature"] == 0.2 and sent["max_tokens"] == 50
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["messages"][0] == {"role": "system", "content": "You answer briefly."}


async def test_max_tokens_cut_reports_length(fake: FakeOpenAI) -> None:
    provider = provider_for(fake)
    try:
        completion = await provider.complete(request(max_tokens=3))
    finally:
        await provider.aclose()
    assert completion.text == "Fake answer to: "
    assert completion.finish_reason == "length"


async def test_stream_yields_deltas_then_usage(fake: FakeOpenAI) -> None:
    provider = provider_for(fake)
    try:
        chunks = await collect(provider, request())
    finally:
        await provider.aclose()
    deltas = [c.delta for c in chunks if c.delta]
    assert "".join(deltas) == REPLY and len(deltas) == len(REPLY.split())
    last = chunks[-1]
    assert last.delta == "" and last.finish_reason == "stop"
    assert last.usage is not None and last.usage.completion == 8
    assert fake.chat_requests()[-1].body["stream_options"] == {"include_usage": True}


async def test_list_models(fake: FakeOpenAI) -> None:
    provider = provider_for(fake)
    try:
        assert await provider.list_models() == ["fake-large", "fake-small"]
    finally:
        await provider.aclose()


async def test_wrong_key_is_an_auth_error(fake: FakeOpenAI) -> None:
    provider = provider_for(fake, key="sk-wrong")
    try:
        with pytest.raises(ProviderAuthError, match="Incorrect API key"):
            await provider.complete(request())
        with pytest.raises(ProviderAuthError):
            await collect(provider, request())
    finally:
        await provider.aclose()


async def test_rate_limit_carries_retry_after(fake: FakeOpenAI) -> None:
    fake.fail_next("rate_limit", retry_after=7)
    provider = provider_for(fake)
    try:
        with pytest.raises(ProviderRateLimited) as caught:
            await provider.complete(request())
    finally:
        await provider.aclose()
    assert caught.value.retry_after == 7
    assert caught.value.code == "provider_rate_limited"


async def test_sdk_retries_a_rate_limit_honouring_retry_after(fake: FakeOpenAI) -> None:
    fake.fail_next("rate_limit", retry_after=0.3)
    provider = provider_for(fake, retries=1)
    before = len(fake.chat_requests())
    started = time.monotonic()
    try:
        completion = await provider.complete(request())
    finally:
        await provider.aclose()
    assert completion.text == REPLY
    assert len(fake.chat_requests()) - before == 2
    assert time.monotonic() - started >= 0.3


async def test_server_error_after_retries_is_unavailable(fake: FakeOpenAI) -> None:
    fake.fail_next("server_error", times=2)
    provider = provider_for(fake, retries=1)
    try:
        with pytest.raises(ProviderUnavailable, match="HTTP 500"):
            await provider.complete(request())
    finally:
        await provider.aclose()


async def test_context_length_is_context_too_long(fake: FakeOpenAI) -> None:
    fake.fail_next("context_length")
    provider = provider_for(fake)
    try:
        with pytest.raises(ContextTooLong, match="maximum context length"):
            await provider.complete(request())
    finally:
        await provider.aclose()


async def test_unknown_model_is_unknown_model(fake: FakeOpenAI) -> None:
    provider = provider_for(fake)
    try:
        with pytest.raises(UnknownModel):
            await provider.complete(request(model="gpt-nonexistent"))
    finally:
        await provider.aclose()


async def test_malformed_json_is_a_bad_response(fake: FakeOpenAI) -> None:
    fake.fail_next("malformed_json")
    provider = provider_for(fake)
    try:
        with pytest.raises(ProviderBadResponse):
            await provider.complete(request())
        fake.fail_next("malformed_json", after_chunks=2)
        with pytest.raises(ProviderBadResponse):
            await collect(provider, request())
    finally:
        await provider.aclose()


async def test_slow_first_token_times_out(fake: FakeOpenAI) -> None:
    fake.fail_next("slow_first_token", delay=1.0)
    fake.fail_next("slow_first_token", delay=1.0)
    provider = provider_for(fake, timeout=0.2)
    try:
        with pytest.raises(ProviderTimeout):
            await provider.complete(request())
        with pytest.raises(ProviderTimeout):
            await collect(provider, request())
    finally:
        await provider.aclose()


async def test_slow_first_token_within_the_timeout_succeeds(fake: FakeOpenAI) -> None:
    fake.fail_next("slow_first_token", delay=0.2)
    provider = provider_for(fake, timeout=5.0)
    try:
        chunks = await collect(provider, request())
    finally:
        await provider.aclose()
    assert "".join(c.delta for c in chunks) == REPLY


async def test_cut_stream_is_interrupted_after_the_partial_text(fake: FakeOpenAI) -> None:
    fake.fail_next("cut_stream", after_chunks=3)
    provider = provider_for(fake)
    received: list[str] = []
    try:
        with pytest.raises(ProviderStreamInterrupted):
            async for chunk in provider.stream(request()):
                received.append(chunk.delta)
    finally:
        await provider.aclose()
    assert "".join(received) == "Fake answer to: "


async def test_closing_the_stream_early_stops_the_upstream_request(fake: FakeOpenAI) -> None:
    fake.fail_next("stall", after_chunks=2)
    provider = provider_for(fake)
    try:
        stream = provider.stream(request())
        assert (await anext(stream)).delta == "Fake "
        assert (await anext(stream)).delta == "answer "
        await stream.aclose()  # type: ignore[attr-defined]
        upstream = fake.chat_requests()[-1]

        async def disconnected() -> bool:
            return upstream.disconnected

        await eventually(disconnected, timeout=5)
        assert not upstream.completed
    finally:
        await provider.aclose()


async def test_unreachable_endpoint_is_unavailable() -> None:
    with FakeOpenAI() as gone:
        url = gone.base_url
    provider = OpenAICompatibleProvider(
        base_url=url, api_key=None, timeout_seconds=2, max_retries=0
    )
    try:
        with pytest.raises(ProviderUnavailable, match="could not be reached"):
            await provider.complete(request())
    finally:
        await provider.aclose()
