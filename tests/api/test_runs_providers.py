"""Runs against an OpenAI-compatible endpoint (the fake server on loopback), in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from tests.api.runs_support import events_of, run
from tests.support.fake_openai import FakeOpenAI
from tests.support.inprocess import StudioApi

KEY = "sk-server-key"
SECRET = "a-secret-key-long-enough-for-fernet-derivation"
MakeApi = Callable[..., AbstractAsyncContextManager[StudioApi]]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY) as server:
        yield server


@pytest.fixture
async def studio(make_api: MakeApi, fake: FakeOpenAI) -> AsyncIterator[StudioApi]:
    settings = {
        "llm_base_url": fake.base_url,
        "llm_api_key": KEY,
        "llm_max_retries": 0,
        "llm_timeout_seconds": 0.5,
        "secret_key": SECRET,
    }
    async with make_api(**settings) as api:
        yield api


FAULTS: list[tuple[str, dict[str, Any], int, str]] = [
    ("unauthorized", {}, 502, "provider_auth"),
    ("rate_limit", {"retry_after": 7}, 429, "provider_rate_limited"),
    ("slow_first_token", {"delay": 2.0}, 504, "provider_timeout"),
    ("server_error", {}, 502, "provider_unavailable"),
    ("malformed_json", {}, 502, "provider_bad_response"),
    ("context_length", {}, 422, "context_too_long"),
]


async def test_answers_and_provider_errors_over_json(studio: StudioApi, fake: FakeOpenAI) -> None:
    ana = await studio.account()
    body = await run(studio, ana, model="fake-small", content="Name two rivers", temperature=0.2)
    assert body["output"] == "Fake answer to: Name two rivers"
    assert body["provider"] == "openai-compatible" and body["finish_reason"] == "stop"
    assert body["token_usage"] == {"prompt": 3, "completion": 6, "total": 9}
    assert fake.chat_requests()[-1].body["temperature"] == 0.2

    for kind, params, status, code in FAULTS:
        fake.fail_next(kind, **params)  # type: ignore[arg-type]
        refused = await studio.call(
            "POST", "/api/runs", ana, json={"model": "fake-small", "content": f"try {kind}"}
        )
        assert refused.status_code == status, (kind, refused.text)
        error = refused.json()["error"]
        assert error["code"] == code, kind
        if kind == "rate_limit":
            assert refused.headers["Retry-After"] == "7"
        recorded = (await studio.call("GET", f"/api/runs/{error['run_id']}", ana)).json()
        assert recorded["status"] == "failed" and recorded["error"].startswith(code), kind
        assert recorded["output"] == ""

    unknown = await studio.call("POST", "/api/runs", ana, json={"model": "gpt-9", "content": "x"})
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "model"
    models = (await studio.call("GET", "/api/models", ana)).json()["items"]
    assert [(m["name"], m["source"]) for m in models] == [
        ("offline", "offline"),
        ("fake-large", "server"),
        ("fake-small", "server"),
    ]


async def test_streams_deltas_and_records_a_cut_stream(studio: StudioApi, fake: FakeOpenAI) -> None:
    ana = await studio.account()
    streamed = await studio.call(
        "POST",
        "/api/runs",
        ana,
        json={"model": "fake-large", "content": "Say three words", "stream": True},
    )
    events = events_of(streamed)
    deltas = [data["text"] for name, data in events if name == "delta"]
    assert deltas == ["Fake ", "answer ", "to: ", "Say ", "three ", "words"]
    assert events[-2] == ("usage", {"prompt": 3, "completion": 6, "total": 9})
    assert events[-1][0] == "done" and events[-1][1]["run"]["output"] == "".join(deltas)

    fake.fail_next("cut_stream", after_chunks=2)
    cut = events_of(
        await studio.call(
            "POST", "/api/runs", ana, json={"model": "fake-large", "content": "x y", "stream": True}
        )
    )
    assert [name for name, _ in cut] == ["delta", "delta", "error"]
    error = cut[-1][1]
    assert error["code"] == "provider_stream_interrupted" and error["status"] == "truncated"
    recorded = (await studio.call("GET", f"/api/runs/{error['run_id']}", ana)).json()
    assert recorded["status"] == "truncated" and recorded["output"] == "Fake answer "

    fake.fail_next("unauthorized")
    before = await studio.call(
        "POST", "/api/runs", ana, json={"model": "fake-large", "content": "x", "stream": True}
    )
    failed = events_of(before)
    assert [name for name, _ in failed] == ["error"] and failed[0][1]["status"] == "failed"
    assert failed[0][1]["code"] == "provider_auth"


async def test_a_tenant_endpoint_overrides_the_server_one(
    make_api: MakeApi, fake: FakeOpenAI
) -> None:
    with FakeOpenAI(api_key="sk-tenant", models=["tenant-model"]) as own:
        async with make_api(llm_base_url=fake.base_url, llm_api_key=KEY, secret_key=SECRET) as api:
            tenant = await api.tenant()
            ana = await api.account(tenant_id=tenant.tenant_id)
            config = {"llm": {"baseUrl": own.base_url, "apiKey": "sk-tenant"}}
            patched = await api.call(
                "PATCH", "/api/tenant", headers=tenant.headers, json={"config": config}
            )
            assert patched.status_code == 200, patched.text
            assert "sk-tenant" not in patched.text
            models = (await api.call("GET", "/api/models", ana)).json()["items"]
            assert [(m["name"], m["source"]) for m in models] == [
                ("offline", "offline"),
                ("tenant-model", "tenant"),
            ]
            body = await run(api, ana, model="tenant-model", content="hello")
            assert body["output"] == "Fake answer to: hello"
            assert own.chat_requests()[-1].headers["authorization"] == "Bearer sk-tenant"
            refused = await api.call(
                "POST", "/api/runs", ana, json={"model": "fake-small", "content": "x"}
            )
            assert refused.status_code == 422  # the server's models are not the tenant's
            other = await api.account("Eve")
            assert (await run(api, other, model="fake-small", content="x"))["output"]
