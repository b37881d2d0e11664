"""The semantic cache: answers reused across requests that mean the same thing.

The run service uses three calls on the process's :class:`SemanticCacheService`
(``services.cache``), each on its own database session (it commits)::

    scope = CacheScope(tenant_id, model, temperature, max_tokens, sections_hash(rendered))
    found = await cache.lookup(db, scope, user_text)      # CacheLookup(hit, similarity, entry)
    if not found.hit and not found.bypassed:
        ...call the model...
        await cache.store(db, scope, user_text, completion.text, completion.usage, tags,
                          sections=rendered, source_hash=sections_hash(version.sections))

and registers ``cache.set_refresher(callback)`` (runs a :class:`RefreshRequest` again, for
refresh rules) and ``cache.set_providers(resolver)`` (for a judge model other than
``offline``). The prompts API calls ``await cache.retire_for_sections(db, tenant_id, old_hash,
new_hash, new_sections=...)`` in the save's transaction when a new version changes a keyed
section; it returns how many entries it deleted and refreshed.
"""

from server.cache.embedders import Embedder, EmbeddingError, HashingEmbedder, WordLlamaEmbedder
from server.cache.factory import create_cache_service, create_embedder
from server.cache.judge import ProviderResolver
from server.cache.results import CacheEntry, CacheLookup, CacheOptions, MaintenanceReport
from server.cache.rules import InvalidationOutcome, Refresher, RefreshRequest
from server.cache.scope import KEYED_SECTIONS, CacheScope, prompt_hash, sections_hash
from server.cache.service import SemanticCacheService

__all__ = [
    "KEYED_SECTIONS",
    "CacheEntry",
    "CacheLookup",
    "CacheOptions",
    "CacheScope",
    "Embedder",
    "EmbeddingError",
    "HashingEmbedder",
    "InvalidationOutcome",
    "MaintenanceReport",
    "ProviderResolver",
    "RefreshRequest",
    "Refresher",
    "SemanticCacheService",
    "WordLlamaEmbedder",
    "create_cache_service",
    "create_embedder",
    "prompt_hash",
    "sections_hash",
]
