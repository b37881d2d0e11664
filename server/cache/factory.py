"""Building the cache from the server's settings (the composition root calls this)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.cache.embedders import Embedder, HashingEmbedder, WordLlamaEmbedder
from server.cache.results import CacheOptions
from server.cache.service import SemanticCacheService
from server.hub.broker import Broker

if TYPE_CHECKING:
    from server.settings import Settings

#: Values of ``PROMPT_STUDIO_CACHE_EMBEDDER``.
EMBEDDERS = ("wordllama", "hashing", "openai")


def create_embedder(settings: Settings) -> Embedder:
    """The embedder ``PROMPT_STUDIO_CACHE_EMBEDDER`` names."""
    if settings.cache_embedder == "hashing":
        return HashingEmbedder()
    if settings.cache_embedder == "openai":
        from server.cache.embedder_openai import OpenAIEmbedder  # the openai package is heavy

        return OpenAIEmbedder(
            model=settings.cache_embedding_model,
            base_url=settings.cache_embedding_base_url or settings.llm_base_url,
            api_key=settings.cache_embedding_api_key or settings.llm_api_key,
            timeout_seconds=settings.cache_embedding_timeout_seconds,
        )
    return WordLlamaEmbedder()


def cache_options(settings: Settings) -> CacheOptions:
    """The cache's limits from the settings."""
    return CacheOptions(
        max_prompt_chars=settings.cache_max_prompt_chars,
        max_entries_per_tenant=settings.cache_max_entries_per_tenant,
        index_max_scopes=settings.cache_index_max_scopes,
        sync_queue_limit=settings.cache_sync_queue_limit,
        judge_queue_limit=settings.cache_judge_queue_limit,
        maintenance_interval_seconds=settings.cache_maintenance_seconds,
        refresh_batch=settings.cache_refresh_batch,
        prices=settings.cache_model_prices,
    )


def create_cache_service(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], broker: Broker
) -> SemanticCacheService:
    """The process's cache service (start it with ``async with``)."""
    return SemanticCacheService(
        sessions, broker, create_embedder(settings), cache_options(settings)
    )
