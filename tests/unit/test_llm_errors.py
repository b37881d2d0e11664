"""The SDK's errors as our provider errors, and provider/run errors as HTTP answers."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai
import pytest

from server.api.run_errors import provider_api_error, run_api_error
from server.llm import base as llm
from server.llm.openai_errors import map_openai_error, retry_after_seconds
from server.runs import errors as runs

REQUEST = httpx2.Request("POST", "http://llm.test/v1/chat/completions")


def status_error(status: int, message: str, *, headers: dict[str, str] | None = None,
                 code: str | None = None) -> openai.APIStatusError:  # fmt: skip
    body: dict[str, Any] = {"error": {"message": message, "code": code}}
    response = httpx2.Response(status, headers=headers, json=body, request=REQUEST)
    classes = {400: openai.BadRequestError, 401: openai.AuthenticationError,
               403: openai.PermissionDeniedError, 404: openai.NotFoundError,
               422: openai.UnprocessableEntityError, 429: openai.RateLimitError}  # fmt: skip
    cls = classes.get(status, openai.APIStatusError)
    if status >= 500:
        cls = openai.InternalServerError
    return cls(message, response=response, body=body["error"])


@pytest.mark.parametrize(
    ("status", "message", "code", "expected"),
    [
        (401, "bad key", None, llm.ProviderAuthError),
        (403, "no access", None, llm.ProviderAuthError),
        (429, "slow down", None, llm.ProviderRateLimited),
        (400, "x", "context_length_exceeded", llm.ContextTooLong),
        (400, "This model's maximum context length is 4096 tokens", None, llm.ContextTooLong),
        (400, "the request exceeds the available context size", None, llm.ContextTooLong),
        (413, "prompt is too long", None, llm.ContextTooLong),
        (400, "temperature must be at most 1", None, llm.ProviderRejectedRequest),
        (422, "unsupported parameter", None, llm.ProviderRejectedRequest),
        (404, "The model `m` does not exist", "model_not_found", llm.UnknownModel),
        (404, "no such route", None, llm.ProviderUnavailable),
        (408, "request timeout", None, llm.ProviderTimeout),
        (500, "boom", None, llm.ProviderUnavailable),
        (503, "overloaded", None, llm.ProviderUnavailable),
    ],
)
def test_status_errors(status: int, message: str, code: str | None, expected: type) -> None:
    mapped = map_openai_error(status_error(status, message, code=code))
    assert type(mapped) is expected
    assert message[:20] in mapped.message


def test_connection_timeout_and_bad_answers() -> None:
    assert isinstance(map_openai_error(openai.APITimeoutError(REQUEST)), llm.ProviderTimeout)
    unreachable = map_openai_error(openai.APIConnectionError(request=REQUEST))
    assert type(unreachable) is llm.ProviderUnavailable
    assert isinstance(map_openai_error(json.JSONDecodeError("x", "{", 0)), llm.ProviderBadResponse)
    response = httpx2.Response(200, request=REQUEST)
    invalid = openai.APIResponseValidationError(response, body=None)
    assert isinstance(map_openai_error(invalid), llm.ProviderBadResponse)
    with pytest.raises(KeyError):
        map_openai_error(KeyError("a bug, not a provider failure"))


def test_long_provider_messages_are_cut() -> None:
    mapped = map_openai_error(status_error(500, "e" * 5000))
    assert len(mapped.message) < 600


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({"retry-after": "-4"}, None),
        ({"retry-after": "inf"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(httpx2.Headers(headers)) == expected
    assert retry_after_seconds(None) is None


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (llm.ProviderAuthError("x"), 502, "provider_auth"),
        (llm.ProviderRateLimited("x", retry_after=2.2), 429, "provider_rate_limited"),
        (llm.ProviderTimeout("x"), 504, "provider_timeout"),
        (llm.ProviderUnavailable("x"), 502, "provider_unavailable"),
        (llm.ProviderStreamInterrupted("x"), 502, "provider_stream_interrupted"),
        (llm.ProviderBadResponse("x"), 502, "provider_bad_response"),
        (llm.ContextTooLong("x"), 422, "context_too_long"),
        (llm.UnknownModel("x"), 422, "unknown_model"),
        (llm.ProviderRejectedRequest("x"), 422, "provider_rejected_request"),
        (llm.ProviderError("x"), 502, "provider_error"),
    ],
)
def test_provider_errors_as_http(error: llm.ProviderError, status: int, code: str) -> None:
    api = provider_api_error(error, run_id=7)
    response = api.to_response()
    assert (response.status_code, api.code) == (status, code)
    body = json.loads(bytes(response.body))
    assert body["error"]["run_id"] == 7 and body["error"]["code"] == code
    if isinstance(error, llm.ProviderRateLimited):
        assert response.headers["Retry-After"] == "3"  # rounded up, whole seconds
    else:
        assert "Retry-After" not in response.headers


def test_run_errors_as_http() -> None:
    quota = run_api_error(runs.QuotaExceeded("used up", retry_after=42)).to_response()
    assert quota.status_code == 429 and quota.headers["Retry-After"] == "42"
    assert run_api_error(runs.RunNotFound("x")).status == 404
    assert run_api_error(runs.RunForbidden("x")).status == 403
    assert run_api_error(runs.ProviderKeyUnavailable("x")).status == 503
    missing = run_api_error(runs.MissingRunVariables(["a", "b"]))
    assert (missing.status, missing.code, missing.field) == (422, "missing_variables", "variables")
