"""The ``openai`` SDK's exceptions turned into our provider error hierarchy, in one place."""

from __future__ import annotations

import json
import math

import openai

from server.llm.base import (
    ContextTooLong,
    ProviderAuthError,
    ProviderBadResponse,
    ProviderError,
    ProviderRateLimited,
    ProviderRejectedRequest,
    ProviderTimeout,
    ProviderUnavailable,
    UnknownModel,
)

#: How OpenAI, vLLM, llama.cpp, Ollama and LiteLLM word "the prompt does not fit".
_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "context length",
    "maximum context",
    "context window",
    "context size",
    "exceed_context_size",
    "too many tokens",
    "prompt is too long",
)
MESSAGE_LIMIT = 500


def map_openai_error(error: Exception) -> ProviderError:
    """The provider error that ``error`` (raised by the SDK or while parsing) stands for."""
    if isinstance(error, ProviderError):
        return error
    if isinstance(error, openai.APITimeoutError):
        return ProviderTimeout("the model provider did not answer in time")
    if isinstance(error, openai.APIConnectionError):
        return ProviderUnavailable(f"the model provider could not be reached: {_cause(error)}")
    if isinstance(error, openai.APIStatusError):
        return _map_status(error)
    if isinstance(error, openai.APIResponseValidationError | json.JSONDecodeError | ValueError):
        return ProviderBadResponse(f"the model provider sent an invalid answer: {_short(error)}")
    if isinstance(error, openai.OpenAIError):
        return ProviderBadResponse(f"the model provider failed: {_short(error)}")
    raise error


def retry_after_seconds(headers: object) -> float | None:
    """Seconds from a ``Retry-After`` (or ``retry-after-ms``) header, when it is a number."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = get(name)
        if raw is None:
            continue
        try:
            value = float(raw) / divisor
        except (TypeError, ValueError):
            continue
        if math.isfinite(value) and value >= 0:
            return value
    return None


def _map_status(error: openai.APIStatusError) -> ProviderError:
    status = error.status_code
    message = _provider_message(error)
    if status in (401, 403):
        return ProviderAuthError(f"the model provider refused the credentials: {message}")
    if status == 429:
        return ProviderRateLimited(
            f"the model provider is rate limiting: {message}",
            retry_after=retry_after_seconds(error.response.headers),
        )
    if status in (400, 413, 422) and _is_context_error(error, message):
        return ContextTooLong(f"the prompt does not fit the model's context: {message}")
    if status == 404 and "model" in message.lower():
        return UnknownModel(f"the model provider does not serve this model: {message}")
    if status in (400, 413, 422):
        return ProviderRejectedRequest(f"the model provider refused the request: {message}")
    if status in (408, 504):
        return ProviderTimeout(f"the model provider timed out: {message}")
    return ProviderUnavailable(f"the model provider failed with HTTP {status}: {message}")


def _is_context_error(error: openai.APIStatusError, message: str) -> bool:
    code = getattr(error, "code", None)
    haystack = f"{code or ''} {message}".lower()
    return any(marker in haystack for marker in _CONTEXT_MARKERS)


def _provider_message(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return _limit(inner["message"])
        if isinstance(inner, str):
            return _limit(inner)
    return _limit(error.message)


def _cause(error: BaseException) -> str:
    cause = error.__cause__ or error.__context__
    return _short(cause) if cause is not None else _short(error)


def _short(error: BaseException) -> str:
    return _limit(str(error) or type(error).__name__)


def _limit(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"
