"""The OpenAI-compatible ``/embeddings`` embedder against the fake server on loopback, alone
and inside the cache service (a failing endpoint degrades lookups to misses, never errors)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from migrations.runner import upgrade
from server.cache import CacheOptions, CacheScope, EmbeddingError, SemanticCacheService
from server.cache.embedder_openai import OpenAIEmbedder
from server.hub.broker import MemoryBroker
from server.llm.base import TokenUsage
from storage.engine import create_engine, create_session_factory
from tests.support.accounts import create_accounts
from tests.support.fake_openai import EMBEDDINGS_PATH, FakeOpenAI, fake_embedding

KEY = "sk-test"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY, embedding_dims=32) as server:
        yield server


def embedder(fake: FakeOpenAI, *, api_key: str = KEY, retries: int = 0) -> OpenAIEmbedder:
    return OpenAIEmbedder(
        model="text-embedding-3-small",
        base_url=fake.base_url,
        api_key=api_key,
        timeout_seconds=5.0,
        max_retries=retries,
    )


async def test_vectors_come_back_normalised_and_in_order(fake: FakeOpenAI) -> None:
    client = embedder(fake)
    try:
        texts = ["red apples", "green pears", "red apples and green pears"]
        vectors = await client.embed(texts)
        assert vectors.shape == (3, 32) and client.dimensions == 32
        assert np.allclose(vectors, [fake_embedding(text, 32) for text in texts], atol=1e-6)
        assert client.name == "openai:text-embedding-3-small"
        assert (await client.embed([])).shape == (0, 32)
        (request,) = [r for r in fake.requests if r.path == EMBEDDINGS_PATH]
        assert request.body["model"] == "text-embedding-3-small" and request.body["input"] == texts
    finally:
        await client.aclose()


async def test_endpoint_failures_become_embedding_errors(fake: FakeOpenAI) -> None:
    client = embedder(fake)
    wrong_key = embedder(fake, api_key="sk-wrong")
    try:
        with pytest.raises(EmbeddingError):
            await wrong_key.embed(["x"])
        for kind in ("server_error", "malformed_json", "rate_limit"):
            fake.fail_next(kind, path=EMBEDDINGS_PATH, retry_after=0.01)  # type: ignore[arg-type]
            with pytest.raises(EmbeddingError):
                await client.embed(["x"])
    finally:
        await client.aclose()
        await wrong_key.aclose()


async def test_a_rate_limited_request_is_retried_after_retry_after(fake: FakeOpenAI) -> None:
    client = embedder(fake, retries=1)
    try:
        fake.fail_next("rate_limit", path=EMBEDDINGS_PATH, retry_after=0.05)
        assert (await client.embed(["hello there"])).shape == (1, 32)
        assert len([r for r in fake.requests if r.path == EMBEDDINGS_PATH]) == 2
    finally:
        await client.aclose()


async def test_the_cache_uses_it_and_survives_its_failures(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cache.db'}"
    upgrade(url, "head")
    (account,) = await create_accounts(url, ["Ada"])
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    client = embedder(fake)
    scope = CacheScope(account.tenant_id, "fake-small", 0.0, None, "sections")
    try:
        async with (
            MemoryBroker("node") as broker,
            SemanticCacheService(
                sessions, broker, client, CacheOptions(maintenance_interval_seconds=0)
            ) as cache,
            sessions() as db,
        ):
            stored = await cache.store(
                db, scope, "cheap hotels in vienna", "Try Hostel X", TokenUsage(1, 1, 2)
            )
            await db.commit()
            assert stored is not None
            found = await cache.lookup(db, scope, "cheap hotels vienna")
            assert found.hit and not found.exact and found.entry is not None
            assert found.entry.id == stored.id

            fake.fail_next("server_error", path=EMBEDDINGS_PATH, times=2)
            missed = await cache.lookup(db, scope, "cheap hotels in wien")
            assert not missed.hit and missed.similarity is None
            # Storing without a vector keeps an exact-match entry.
            plain = await cache.store(
                db, scope, "museums in vienna", "Albertina", TokenUsage(1, 1, 2)
            )
            await db.commit()
            assert plain is not None
            exact = await cache.lookup(db, scope, "museums in vienna")
            assert exact.exact and exact.entry is not None and exact.entry.id == plain.id
            await db.commit()
    finally:
        await client.aclose()
        await engine.dispose()
