"""Which provider serves a model: offline always, the server's endpoint, a tenant's own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server.llm.base import ChatMessage, CompletionRequest, ProviderUnavailable, UnknownModel
from server.llm.endpoints import Endpoint
from server.llm.registry import ModelInfo, ProviderRegistry, RegistryOptions
from tests.support.fake_openai import MODELS_PATH, FakeOpenAI

OPTIONS = RegistryOptions(timeout_seconds=5, max_retries=0, models_ttl_seconds=60)
HELLO = [ChatMessage("user", "hello there")]


@pytest.fixture(scope="module")
def server_fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key="sk-server", models=["srv-a", "srv-b"]) as fake:
        yield fake


@pytest.fixture(scope="module")
def tenant_fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key="sk-tenant", models=["ten-x"]) as fake:
        yield fake


def model_calls(fake: FakeOpenAI) -> int:
    return sum(1 for r in fake.requests if r.path == MODELS_PATH)


async def test_offline_is_served_without_any_endpoint() -> None:
    registry = ProviderRegistry(None, OPTIONS)
    async with registry.provider_for("offline") as provider:
        completion = await provider.complete(CompletionRequest("offline", HELLO))
    assert completion.provider == "offline"
    assert await registry.models() == [ModelInfo("offline", "offline", "offline")]
    with pytest.raises(UnknownModel, match="LLM_BASE_URL"):
        async with registry.provider_for("gpt-4o"):
            pass
    await registry.aclose()


async def test_server_endpoint_models_from_its_listing_cached(server_fake: FakeOpenAI) -> None:
    now = [0.0]
    registry = ProviderRegistry(
        Endpoint(server_fake.base_url, "sk-server"), OPTIONS, clock=lambda: now[0]
    )
    before = model_calls(server_fake)
    try:
        models = await registry.models()
        assert [m.name for m in models] == ["offline", "srv-a", "srv-b"]
        assert models[1] == ModelInfo("srv-a", "openai-compatible", "server")
        async with registry.provider_for("srv-b") as provider:
            completion = await provider.complete(CompletionRequest("srv-b", HELLO))
        assert completion.text == "Fake answer to: hello there"
        assert model_calls(server_fake) - before == 1
        now[0] = 61.0  # past the TTL: listed again
        async with registry.provider_for("srv-a"):
            pass
        assert model_calls(server_fake) - before == 2
        with pytest.raises(UnknownModel):
            async with registry.provider_for("ten-x"):
                pass
    finally:
        await registry.aclose()


async def test_configured_models_skip_the_listing(server_fake: FakeOpenAI) -> None:
    registry = ProviderRegistry(Endpoint(server_fake.base_url, "sk-server", ("srv-a",)), OPTIONS)
    before = model_calls(server_fake)
    try:
        assert [m.name for m in await registry.models()] == ["offline", "srv-a"]
        with pytest.raises(UnknownModel):
            async with registry.provider_for("srv-b"):
                pass
    finally:
        await registry.aclose()
    assert model_calls(server_fake) == before


async def test_a_tenant_endpoint_overrides_the_server_one(
    server_fake: FakeOpenAI, tenant_fake: FakeOpenAI
) -> None:
    registry = ProviderRegistry(Endpoint(server_fake.base_url, "sk-server"), OPTIONS)
    tenant = Endpoint(tenant_fake.base_url, "sk-tenant")
    try:
        assert [m.name for m in await registry.models(tenant)] == ["offline", "ten-x"]
        async with registry.provider_for("ten-x", tenant) as provider:
            await provider.complete(CompletionRequest("ten-x", HELLO))
        assert tenant_fake.chat_requests()[-1].headers["authorization"] == "Bearer sk-tenant"
        with pytest.raises(UnknownModel, match="tenant"):
            async with registry.provider_for("srv-a", tenant):
                pass
        async with registry.provider_for("offline", tenant) as provider:
            assert provider.name == "offline"
    finally:
        await registry.aclose()


async def test_listing_cache_is_bounded(server_fake: FakeOpenAI, tenant_fake: FakeOpenAI) -> None:
    options = RegistryOptions(timeout_seconds=5, max_retries=0, models_cache_size=1)
    registry = ProviderRegistry(Endpoint(server_fake.base_url, "sk-server"), options)
    tenant = Endpoint(tenant_fake.base_url, "sk-tenant")
    before = model_calls(server_fake)
    try:
        await registry.models()
        await registry.models(tenant)  # evicts the server endpoint's listing
        await registry.models()
    finally:
        await registry.aclose()
    assert model_calls(server_fake) - before == 2


async def test_an_unreachable_endpoint_fails_clearly() -> None:
    with FakeOpenAI() as gone:
        url = gone.base_url
    registry = ProviderRegistry(Endpoint(url, None), OPTIONS)
    try:
        with pytest.raises(ProviderUnavailable):
            await registry.models()
    finally:
        await registry.aclose()
