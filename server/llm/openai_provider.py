"""The OpenAI-compatible chat-completions provider, on the official ``openai`` SDK.

One class serves OpenAI, vLLM, Ollama, llama.cpp's server and a LiteLLM proxy: they all speak
``/chat/completions`` and ``/models``. The SDK retries 408/409/429/5xx and connection errors with
exponential backoff that honours ``Retry-After``; whatever still fails after ``max_retries``
becomes one of our provider errors (:mod:`server.llm.openai_errors`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from server.llm import tokens
from server.llm.base import (
    Completion,
    CompletionRequest,
    ProviderBadResponse,
    ProviderError,
    ProviderStreamInterrupted,
    StreamChunk,
    TokenUsage,
)
from server.llm.openai_errors import map_openai_error

logger = logging.getLogger(__name__)

PROVIDER_NAME = "openai-compatible"
#: Some local servers (llama.cpp, Ollama) accept any key but the SDK insists on one.
PLACEHOLDER_API_KEY = "not-needed"


class OpenAICompatibleProvider:
    """A :class:`~server.llm.base.Provider` for one OpenAI-compatible endpoint."""

    name = PROVIDER_NAME

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        timeout_seconds: float,
        max_retries: int,
    ) -> None:
        self.base_url = base_url
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or PLACEHOLDER_API_KEY,
            timeout=timeout_seconds,
            max_retries=max_retries,
        )

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.close()

    async def complete(self, request: CompletionRequest) -> Completion:
        """One non-streamed completion."""
        try:
            response = await self._client.chat.completions.create(
                **_arguments(request), stream=False
            )
            return _completion_of(response, request)
        except Exception as error:
            raise map_openai_error(error) from error

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamChunk]:
        """Deltas as they arrive; the last chunk carries usage and finish reason.

        Closing this iterator early closes the HTTP response, which stops the upstream request.
        A stream that ends without a finish reason raises :class:`ProviderStreamInterrupted`.
        """
        try:
            upstream = await self._client.chat.completions.create(
                **_arguments(request), stream=True, stream_options={"include_usage": True}
            )
        except Exception as error:
            raise map_openai_error(error) from error
        parts: list[str] = []
        usage: TokenUsage | None = None
        finish_reason: str | None = None
        try:
            async for chunk in upstream:
                delta, chunk_finish, chunk_usage = _read_chunk(chunk)
                finish_reason = chunk_finish or finish_reason
                usage = chunk_usage or usage
                if delta:
                    parts.append(delta)
                    yield StreamChunk(delta=delta)
        except ProviderError:
            raise
        except Exception as error:
            mapped = map_openai_error(error)
            if parts and not isinstance(mapped, ProviderBadResponse):
                raise ProviderStreamInterrupted(
                    f"the answer stopped after {len(parts)} chunks: {mapped.message}"
                ) from error
            raise mapped from error
        finally:
            # Shielded: a cancelled caller (a client that went away) must still close the
            # response, which is what stops the upstream generation.
            with anyio.CancelScope(shield=True):
                await upstream.close()
        if finish_reason is None and usage is None:
            raise ProviderStreamInterrupted("the model provider's stream ended without a finish")
        if usage is None:
            # The endpoint ignored stream_options.include_usage: count what we sent and received.
            usage = _estimated_usage(request, "".join(parts))
        yield StreamChunk(usage=usage, finish_reason=finish_reason)

    async def list_models(self) -> list[str]:
        """Model ids from the endpoint's ``/models``, sorted."""
        try:
            page = await self._client.models.list()
            return sorted({model.id async for model in page})
        except Exception as error:
            raise map_openai_error(error) from error


def _arguments(request: CompletionRequest) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "model": request.model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "temperature": request.temperature,
    }
    if request.max_tokens is not None:
        arguments["max_tokens"] = request.max_tokens
    if request.json_mode:
        arguments["response_format"] = {"type": "json_object"}
    return arguments


def _completion_of(response: ChatCompletion, request: CompletionRequest) -> Completion:
    if not response.choices:
        raise ProviderBadResponse("the model provider answered with no choices")
    choice = response.choices[0]
    text = choice.message.content or ""
    if response.usage is not None:
        usage = TokenUsage(
            response.usage.prompt_tokens,
            response.usage.completion_tokens,
            response.usage.total_tokens,
        )
    else:
        usage = _estimated_usage(request, text)
    return Completion(
        text=text,
        usage=usage,
        model=response.model or request.model,
        provider=PROVIDER_NAME,
        finish_reason=choice.finish_reason,
    )


def _read_chunk(chunk: ChatCompletionChunk) -> tuple[str, str | None, TokenUsage | None]:
    usage = None
    if chunk.usage is not None:
        usage = TokenUsage(
            chunk.usage.prompt_tokens, chunk.usage.completion_tokens, chunk.usage.total_tokens
        )
    if not chunk.choices:
        return "", None, usage
    choice = chunk.choices[0]
    return choice.delta.content or "", choice.finish_reason, usage


def _estimated_usage(request: CompletionRequest, text: str) -> TokenUsage:
    prompt = tokens.count_message_tokens(request.messages)
    completion = tokens.count_tokens(text)
    return TokenUsage(prompt, completion, prompt + completion)
