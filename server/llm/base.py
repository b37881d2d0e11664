"""The provider interface every LLM backend implements, and the errors it may raise.

Everything above this module (runs, the semantic cache's judge, agent compose) talks to a
:class:`Provider` and knows nothing of HTTP or of any SDK. Errors are a small hierarchy that the
API layer maps to status codes in one place.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Role = Literal["system", "developer", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a chat-completions conversation."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """What to ask a model. ``json_mode`` asks for a JSON object answer where supported."""

    model: str
    messages: Sequence[ChatMessage]
    temperature: float = 0.7
    max_tokens: int | None = None
    json_mode: bool = False


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Token counts as the schema stores them (``runs.token_usage``)."""

    prompt: int
    completion: int
    total: int


@dataclass(frozen=True, slots=True)
class Completion:
    """A finished answer."""

    text: str
    usage: TokenUsage
    model: str
    provider: str
    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """One piece of a streamed answer: a text delta, or (last) the usage and finish reason."""

    delta: str = ""
    usage: TokenUsage | None = None
    finish_reason: str | None = None


class Provider(Protocol):
    """A chat-completions backend."""

    #: Shown in responses as ``provider`` (e.g. ``"openai-compatible"``, ``"offline"``).
    name: str

    async def complete(self, request: CompletionRequest) -> Completion:
        """The whole answer at once."""
        ...

    def stream(self, request: CompletionRequest) -> AsyncIterator[StreamChunk]:
        """The answer as it is generated; the last chunk carries the usage.

        Closing the iterator early (``aclose``) cancels the upstream request.
        """
        ...

    async def list_models(self) -> list[str]:
        """The model names this provider serves."""
        ...


class ProviderError(Exception):
    """Base of every provider failure; ``code`` is the API error code it becomes."""

    code: str = "provider_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProviderAuthError(ProviderError):
    """The provider refused the credentials (HTTP 502 ``provider_auth``)."""

    code = "provider_auth"


class ProviderRateLimited(ProviderError):
    """The provider is rate limiting us (HTTP 429 with ``Retry-After``)."""

    code = "provider_rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderTimeout(ProviderError):
    """The provider did not answer in time (HTTP 504)."""

    code = "provider_timeout"


class ProviderUnavailable(ProviderError):
    """The provider could not be reached or failed (HTTP 502)."""

    code = "provider_unavailable"


class ProviderBadResponse(ProviderError):
    """The provider answered something that is not a valid completion (HTTP 502)."""

    code = "provider_bad_response"


class ContextTooLong(ProviderError):
    """The prompt does not fit the model's context window (HTTP 422)."""

    code = "context_too_long"


class ProviderStreamInterrupted(ProviderUnavailable):
    """A streamed answer stopped before its end (connection cut, no final chunk).

    The text that did arrive is kept by whoever consumed the stream; this only says it is partial.
    """

    code = "provider_stream_interrupted"


class ProviderRejectedRequest(ProviderError):
    """The provider refused the request's parameters (its 400/422; HTTP 422 for us)."""

    code = "provider_rejected_request"


class UnknownModel(ProviderError):
    """No configured provider serves this model (HTTP 422)."""

    code = "unknown_model"


def messages_of(pairs: Sequence[tuple[Role, str]]) -> list[ChatMessage]:
    """Chat messages from ``(role, content)`` pairs, skipping empty contents."""
    return [ChatMessage(role, content) for role, content in pairs if content]
