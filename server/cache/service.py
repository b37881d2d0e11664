"""The semantic cache service: lookup and store for the run service, and the cache's upkeep.

One :class:`SemanticCacheService` per process, built in the app's lifespan (``async with``). It
owns this node's vector indexes, their broker sync, the precision judge and the scheduled
maintenance task. Every method that touches the database takes the caller's session and leaves
the commit to the caller; index changes follow the commit (see :mod:`server.cache.changes`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.cache.changes import CommittedChanges
from server.cache.config import CachePolicy, policy_of
from server.cache.embedders import Embedder, EmbeddingError, Vectors
from server.cache.index import (
    IndexRegistry,
    LoadedBlock,
    ScopeId,
    VectorIndex,
    decode_block,
    epoch_array,
    vector_bytes,
)
from server.cache.judge import JudgeSample, PrecisionJudge, ProviderResolver
from server.cache.pricing import PriceTable
from server.cache.results import CacheEntry, CacheLookup, CacheOptions, MaintenanceReport
from server.cache.rules import (
    InvalidationOutcome,
    Invalidator,
    Refresher,
    Replacement,
    epoch_seconds,
    try_maintenance_lock,
)
from server.cache.scope import CacheScope, keyed_sections, prompt_hash
from server.cache.statistics import record_lookup
from server.cache.sync import Added, IndexSync
from server.hub.broker import Broker
from server.llm.base import TokenUsage
from storage.base import utcnow
from storage.models.cache import SemanticCache
from storage.repositories import cache as repo

logger = logging.getLogger(__name__)

#: Decimals kept of each stored vector component (the JSON column stays ~2.5 KB per entry).
VECTOR_DECIMALS = 6


class SemanticCacheService:
    """Lookup, store and upkeep of the semantic cache (see the module docstring)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        broker: Broker,
        embedder: Embedder,
        options: CacheOptions | None = None,
        *,
        providers: ProviderResolver | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.options = options or CacheOptions()
        self.embedder = embedder
        self.prices = PriceTable(self.options.prices)
        self._sessions = sessions
        self.registry = IndexRegistry(self.options.index_max_scopes)
        self.sync = IndexSync(broker, self.registry, queue_limit=self.options.sync_queue_limit)
        self.changes = CommittedChanges(self.registry, self.sync)
        self.judge = PrecisionJudge(
            sessions, queue_limit=self.options.judge_queue_limit, providers=providers
        )
        self.invalidator = Invalidator(self.changes, refresh_batch=self.options.refresh_batch)
        self._rng = rng or random.Random()
        self._maintenance: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the broker sync, the judge and the scheduled maintenance."""
        await self.sync.start()
        await self.judge.start()
        if self.options.maintenance_interval_seconds > 0:
            self._maintenance = asyncio.create_task(
                self._maintenance_loop(), name="semantic-cache-maintenance"
            )

    async def stop(self) -> None:
        """Stop every task the service owns."""
        if self._maintenance is not None:
            self._maintenance.cancel()
            await asyncio.gather(self._maintenance, return_exceptions=True)
            self._maintenance = None
        await self.judge.stop()
        await self.sync.stop()

    def set_refresher(self, refresher: Refresher | None) -> None:
        """The run service's callback that re-runs a cached request (refresh rules)."""
        self.invalidator.refresher = refresher

    def set_providers(self, providers: ProviderResolver | None) -> None:
        """How the judge reaches a model other than ``offline``."""
        self.judge.providers = providers

    # -- lookup and store ------------------------------------------------------------------

    async def policy(self, db: AsyncSession, tenant_id: str) -> CachePolicy:
        """The tenant's cache policy (defaults when it has no configuration row)."""
        return policy_of(await repo.get_config(db, tenant_id))

    def _bypassed(self, policy: CachePolicy, scope: CacheScope, user_text: str) -> bool:
        return policy.bypasses(scope.temperature) or len(user_text) > self.options.max_prompt_chars

    async def lookup(self, db: AsyncSession, scope: CacheScope, user_text: str) -> CacheLookup:
        """Find a cached answer for ``user_text`` in ``scope``, recording the lookup.

        Exact prompt hash first, then the nearest unexpired entry of the same embedder, a hit
        when its cosine similarity reaches the tenant's threshold. A failing embedder makes the
        semantic step a miss, never an error.
        """
        policy = await self.policy(db, scope.tenant_id)
        if self._bypassed(policy, scope, user_text):
            return CacheLookup(hit=False, bypassed=True)
        now = utcnow()
        exact = await repo.find_exact(db, scope.tenant_id, scope.key, prompt_hash(user_text), now)
        if exact is not None:
            return await self._hit(db, scope, exact, 1.0, now, user_text, policy, exact=True)
        similarity: float | None = None
        try:
            vector = (await self.embedder.embed([user_text]))[0]
        except EmbeddingError as exc:
            logger.warning("semantic cache: embedding failed, lookup is a miss: %s", exc)
        else:
            index = await self._index(db, scope, len(vector))
            entry_id, similarity = index.search(vector, epoch_seconds(now))
            if (
                entry_id is not None
                and similarity is not None
                and similarity >= policy.similarity_threshold
            ):
                row = await repo.get_entry(db, scope.tenant_id, entry_id)
                if row is not None and row.expires_at > now:
                    return await self._hit(db, scope, row, similarity, now, user_text, policy)
                # Deleted or expired meanwhile (its broker message may still be on its way).
                self.registry.remove(entry_id)
        await record_lookup(db, scope.tenant_id, now, hit=False, similarity=similarity)
        return CacheLookup(hit=False, similarity=similarity)

    async def _hit(
        self,
        db: AsyncSession,
        scope: CacheScope,
        row: SemanticCache,
        similarity: float,
        now: datetime,
        user_text: str,
        policy: CachePolicy,
        *,
        exact: bool = False,
    ) -> CacheLookup:
        entry = CacheEntry.of(row)
        tokens = entry.usage.total
        cost = self.prices.cost(scope.model, entry.prompt_tokens, entry.completion_tokens)
        await repo.record_hit(db, entry.id, tokens, now)
        await record_lookup(
            db,
            scope.tenant_id,
            now,
            hit=True,
            similarity=similarity,
            tokens_saved=tokens,
            cost_saved=cost,
        )
        if not exact and self._rng.random() < policy.precision_sample_rate:
            self.judge.submit(
                JudgeSample(
                    tenant_id=scope.tenant_id,
                    judge_model=policy.judge_model,
                    request=user_text,
                    cached_request=entry.prompt,
                    cached_response=entry.response,
                    at=now,
                )
            )
        return CacheLookup(hit=True, similarity=similarity, entry=entry, exact=exact)

    async def store(
        self,
        db: AsyncSession,
        scope: CacheScope,
        user_text: str,
        response: str,
        usage: TokenUsage,
        tags: Sequence[str] = (),
        *,
        sections: dict[str, str] | None = None,
        source_hash: str | None = None,
        user_id: str | None = None,
    ) -> CacheEntry | None:
        """Cache ``response`` for ``user_text`` in ``scope``; None when the scope bypasses.

        ``sections`` are the rendered sections (the keyed ones are kept so a refresh can run the
        request again); ``source_hash`` is the :func:`~server.cache.scope.sections_hash` of the
        prompt version's unrendered sections, for :meth:`retire_for_sections`. The same text in
        the same scope replaces the earlier answer. Past the tenant's ``max_cache_size`` the
        least recently used entries are evicted.
        """
        policy = await self.policy(db, scope.tenant_id)
        if self._bypassed(policy, scope, user_text):
            return None
        now = utcnow()
        expires_at = now + timedelta(seconds=policy.default_ttl_seconds)
        digest = prompt_hash(user_text)
        row = await repo.find_exact(db, scope.tenant_id, scope.key, digest, now)
        vector = await self._embed_or_none(user_text)
        if row is None:
            row = SemanticCache(
                prompt=user_text,
                prompt_hash=digest,
                tenant_id=scope.tenant_id,
                scope_key=scope.key,
                sections_hash=scope.sections_hash,
                model=scope.model,
                temperature=scope.temperature_x100,
                max_tokens=scope.max_tokens,
                user_id=user_id,
            )
            self._fill(row, response, usage, vector, now, expires_at, sections, source_hash)
            await repo.insert_entry(db, row, tags)
        else:
            self._fill(row, response, usage, vector, now, expires_at, sections, source_hash)
            await db.flush()
            if tags:
                await db.refresh(row, ["tags"])
                await repo.add_tags(db, row, tags)
        if vector is not None:
            scope_id: ScopeId = (scope.tenant_id, scope.key, self.embedder.name)
            self.changes.added(db, Added(scope_id, row.id, vector, epoch_seconds(expires_at)))
        await self.evict(db, scope.tenant_id, policy)
        return CacheEntry.of(row)

    def _fill(
        self,
        row: SemanticCache,
        response: str,
        usage: TokenUsage,
        vector: Vectors | None,
        now: datetime,
        expires_at: datetime,
        sections: dict[str, str] | None,
        source_hash: str | None,
    ) -> None:
        row.response = response
        row.prompt_tokens = usage.prompt
        row.completion_tokens = usage.completion
        row.created_at = now
        row.last_accessed_at = now
        row.expires_at = expires_at
        row.sections = keyed_sections(sections)
        row.source_hash = source_hash
        # Without a vector the entry still serves exact matches. Rounded as float64, so the
        # JSON holds short decimals rather than float32 noise digits.
        if vector is None:
            row.embedding, row.vector, row.embedder = [], None, ""
        else:
            row.embedding = np.round(vector.astype(np.float64), VECTOR_DECIMALS).tolist()
            row.vector = vector_bytes(vector)
            row.embedder = self.embedder.name

    async def _embed_or_none(self, text: str) -> Vectors | None:
        try:
            vectors = await self.embedder.embed([text])
            return np.ascontiguousarray(vectors[0], dtype=np.float32)
        except EmbeddingError as exc:
            logger.warning("semantic cache: embedding failed, entry serves exact matches: %s", exc)
            return None

    async def evict(self, db: AsyncSession, tenant_id: str, policy: CachePolicy) -> int:
        """Delete the tenant's least recently used entries past ``max_cache_size``; how many."""
        excess = await repo.count_entries(db, tenant_id) - policy.max_cache_size
        if excess <= 0:
            return 0
        victims = await repo.least_recently_used(db, tenant_id, excess)
        removed = await repo.delete_entries(db, tenant_id, victims)
        self.changes.removed(db, removed)
        return len(removed)

    async def _index(self, db: AsyncSession, scope: CacheScope, dimensions: int) -> VectorIndex:
        scope_id: ScopeId = (scope.tenant_id, scope.key, self.embedder.name)

        async def load() -> LoadedBlock:
            rows = await repo.scope_rows(
                db, scope.tenant_id, scope.key, self.embedder.name, utcnow()
            )
            return decode_block(rows.ids, rows.vectors, epoch_array(rows.expires_at), dimensions)

        return await self.registry.get(scope_id, dimensions, load)

    # -- upkeep ----------------------------------------------------------------------------

    async def retire_for_sections(
        self,
        db: AsyncSession,
        tenant_id: str,
        old_hash: str,
        new_hash: str | None = None,
        *,
        new_sections: Mapping[str, str] | None = None,
    ) -> InvalidationOutcome:
        """Retire the tenant's entries keyed on sections that changed; says how many.

        For the prompts code: call it when a new version's keyed sections differ from the
        previous version's, with both :func:`~server.cache.scope.sections_hash` values (equal
        hashes retire nothing), in the save's transaction. Entries whose rendered or source
        sections hash to ``old_hash`` are deleted, or refreshed with ``new_sections`` (the new
        version's keyed sections, when they hold no placeholders) where one of the tenant's
        ``refresh`` rules matches them (see :meth:`Invalidator.retire`).
        """
        if old_hash == new_hash:
            return InvalidationOutcome()
        policy = await self.policy(db, tenant_id)
        replacement = (
            None
            if new_sections is None or new_hash is None
            else Replacement(dict(new_sections), new_hash)
        )
        return await self.invalidator.retire(db, tenant_id, old_hash, policy, utcnow(), replacement)

    async def run_maintenance(self) -> MaintenanceReport:
        """One scheduled pass: every tenant's rules, then the purge of expired entries.

        On PostgreSQL only one node runs it at a time (advisory lock); the others skip.
        """
        async with self._sessions() as db:
            if not await try_maintenance_lock(db):
                await db.rollback()
                return MaintenanceReport(ran=False)
            report = MaintenanceReport(ran=True)
            now = utcnow()
            for row in await repo.configs_with_rules(db):
                policy = policy_of(row)
                if not policy.rules or row.tenant_id is None:
                    continue
                outcome = await self.invalidator.apply_rules(
                    db, row.tenant_id, policy, now, scheduled=True
                )
                report.deleted += outcome.deleted
                report.refreshed += outcome.refreshed
                report.tenants.append(row.tenant_id)
            report.purged = await self.invalidator.purge(db, now, None)
            await db.commit()
            return report

    async def _maintenance_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.maintenance_interval_seconds)
            try:
                report = await self.run_maintenance()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("semantic cache maintenance failed; retrying next interval")
                continue
            if report.deleted or report.refreshed or report.purged:
                logger.info(
                    "semantic cache maintenance: %d deleted, %d refreshed, %d expired purged",
                    report.deleted,
                    report.refreshed,
                    report.purged,
                )
