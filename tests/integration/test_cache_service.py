"""The semantic cache service against both databases: lookup, store, scopes, eviction,
statistics, the judge, rules, purges and retirement."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from migrations.runner import upgrade
from server.cache import (
    CacheOptions,
    CacheScope,
    HashingEmbedder,
    RefreshRequest,
    SemanticCacheService,
    admin,
    sections_hash,
)
from server.cache import index as index_module
from server.cache import service as service_module
from server.cache.rules import try_maintenance_lock
from server.hub.broker import MemoryBroker
from server.llm.base import Completion, TokenUsage
from storage.base import utcnow
from storage.engine import create_engine, create_session_factory
from storage.models.cache import CacheStatistics, SemanticCache
from storage.repositories import cache as repo
from tests.support.accounts import create_accounts
from tests.support.waiting import eventually

USAGE = TokenUsage(prompt=100, completion=50, total=150)


@dataclass
class Env:
    service: SemanticCacheService
    sessions: async_sessionmaker[AsyncSession]
    tenant: str
    other_tenant: str

    def scope(self, **changes: object) -> CacheScope:
        values: dict[str, object] = {
            "tenant_id": self.tenant,
            "model": "gpt-4o-mini",
            "temperature": 0.2,
            "max_tokens": 200,
            "sections_hash": sections_hash({"system": "You answer travel questions."}),
        }
        values.update(changes)
        return CacheScope(**values)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def cache_env(database_url: str, maintenance_seconds: float = 0.0) -> AsyncIterator[Env]:
    """A started service (hashing embedder, no scheduled pass by default) and two tenants."""
    (account,) = await create_accounts(database_url, ["Ada"])
    (other,) = await create_accounts(database_url, ["Bob"])
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    options = CacheOptions(
        maintenance_interval_seconds=maintenance_seconds, max_entries_per_tenant=50
    )
    try:
        async with (
            MemoryBroker("node-a") as broker,
            SemanticCacheService(
                sessions, broker, HashingEmbedder(), options, rng=random.Random(1)
            ) as service,
        ):
            yield Env(service, sessions, account.tenant_id, other.tenant_id)
    finally:
        await engine.dispose()


@pytest.fixture
async def env(migrated_database_url: str) -> AsyncIterator[Env]:
    async with cache_env(migrated_database_url) as built:
        yield built


async def store(env: Env, text: str, scope: CacheScope | None = None, **kwargs: object) -> str:
    async with env.sessions() as db:
        entry = await env.service.store(
            db,
            scope or env.scope(),
            text,
            f"answer to {text}",
            USAGE,
            **kwargs,  # type: ignore[arg-type]
        )
        await db.commit()
    assert entry is not None
    return entry.id


async def lookup(env: Env, text: str, scope: CacheScope | None = None):  # type: ignore[no-untyped-def]
    async with env.sessions() as db:
        found = await env.service.lookup(db, scope or env.scope(), text)
        await db.commit()
    return found


async def configure(env: Env, tenant: str | None = None, **changes: object) -> None:
    async with env.sessions() as db:
        await admin.update_config(env.service, db, tenant or env.tenant, changes)
        await db.commit()


async def test_exact_then_semantic_hits_and_misses(env: Env) -> None:
    entry_id = await store(env, "what is the best time to visit kyoto in spring")
    exact = await lookup(env, "what is the best time to visit kyoto in spring")
    assert exact.hit and exact.exact and exact.similarity == 1.0
    assert exact.entry is not None and exact.entry.id == entry_id
    assert exact.entry.response.startswith("answer to") and exact.entry.usage == USAGE
    near = await lookup(env, "what is the best time to visit kyoto in the spring")
    assert near.hit and not near.exact and near.similarity is not None
    assert 0.85 <= near.similarity < 1.0
    far = await lookup(env, "how many bones are in the human hand")
    assert not far.hit and far.similarity is not None and far.similarity < 0.5
    async with env.sessions() as db:
        row = await repo.get_entry(db, env.tenant, entry_id)
        assert row is not None and row.hit_count == 2 and row.tokens_saved == 300
        report = await admin.statistics(db, env.tenant, 7)
    assert (report.hits, report.misses, report.tokens_saved) == (2, 1, 300)
    # gpt-4o-mini: 100 x $0.15 + 50 x $0.60 per million tokens, saved twice.
    assert report.cost_saved == pytest.approx(2 * (100 * 0.15 + 50 * 0.60) / 1e6)
    assert report.hit_rate == pytest.approx(2 / 3)
    assert sum(bucket.count for bucket in report.histogram) == 3
    assert any(bucket.low == 1.0 and bucket.count == 1 for bucket in report.histogram)


async def test_an_answer_never_crosses_tenants_models_or_settings(env: Env) -> None:
    text = "recommend a quiet beach near lisbon"
    await store(env, text)
    for other in (
        env.scope(tenant_id=env.other_tenant),
        env.scope(model="gpt-4o"),
        env.scope(temperature=0.3),
        env.scope(max_tokens=201),
        env.scope(sections_hash=sections_hash({"system": "You answer cooking questions."})),
    ):
        found = await lookup(env, text, other)
        assert not found.hit and found.similarity is None, other
    assert (await lookup(env, text)).hit


async def test_entries_of_another_embedder_are_never_compared(env: Env) -> None:
    await store(env, "cheap flights from paris to rome")
    env.service.embedder = HashingEmbedder(128)
    env.service.registry.clear()
    semantic = await lookup(env, "cheap flights from paris to rome please")
    assert not semantic.hit and semantic.similarity is None
    # The exact prompt hash does not depend on vectors.
    assert (await lookup(env, "cheap flights from paris to rome")).exact


async def test_hot_temperatures_disabled_tenants_and_long_texts_bypass(env: Env) -> None:
    assert (await lookup(env, "x", env.scope(temperature=1.01))).bypassed
    async with env.sessions() as db:
        assert await env.service.store(db, env.scope(temperature=1.5), "x", "y", USAGE) is None
        long_text = "a" * (env.service.options.max_prompt_chars + 1)
        assert await env.service.store(db, env.scope(), long_text, "y", USAGE) is None
    assert not (await lookup(env, "x", env.scope(temperature=1.0))).bypassed
    await configure(env, bypass_temperature=0.1)
    assert (await lookup(env, "x")).bypassed
    await configure(env, bypass_temperature=1.0, enabled=False)
    assert (await lookup(env, "x")).bypassed
    async with env.sessions() as db:
        report = await admin.statistics(db, env.tenant, 1)
    assert report.hits + report.misses == 1  # bypassed lookups are not lookups


async def test_expired_entries_miss_and_are_purged(env: Env) -> None:
    entry_id = await store(env, "visa rules for japan")
    assert (await lookup(env, "visa rules for japan today")).hit
    async with env.sessions() as db:
        await db.execute(
            update(SemanticCache)
            .where(SemanticCache.id == entry_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await db.commit()
    env.service.registry.clear()  # the expiry changed behind the service's back
    assert not (await lookup(env, "visa rules for japan")).hit
    async with env.sessions() as db:
        assert await admin.purge(env.service, db, env.other_tenant) == 0
        assert await admin.purge(env.service, db, env.tenant) == 1
        await db.commit()
        assert await repo.get_entry(db, env.tenant, entry_id) is None


async def test_storing_the_same_text_again_replaces_the_answer(env: Env) -> None:
    first = await store(env, "best ramen in osaka", tags=["food"])
    second = await store(env, "best ramen in osaka", tags=["osaka"])
    assert first == second
    async with env.sessions() as db:
        row = await admin.get_entry(db, env.tenant, first)
        assert sorted(tag.name for tag in row.tags) == ["food", "osaka"]
        assert await repo.count_entries(db, env.tenant) == 1


async def test_least_recently_used_entries_are_evicted_past_max_cache_size(env: Env) -> None:
    await configure(env, max_cache_size=3)
    ids = [await store(env, f"question number {word}") for word in ("one", "two", "three")]
    assert (await lookup(env, "question number one")).hit  # now the most recently used
    fourth = await store(env, "question number four")
    async with env.sessions() as db:
        assert await repo.get_entry(db, env.tenant, ids[1]) is None
        for kept in (ids[0], ids[2], fourth):
            assert await repo.get_entry(db, env.tenant, kept) is not None
    assert not (await lookup(env, "question number two")).exact
    # Shrinking the bound evicts at once.
    await configure(env, max_cache_size=1)
    async with env.sessions() as db:
        assert await repo.count_entries(db, env.tenant) == 1


async def test_a_rolled_back_store_never_reaches_the_index(env: Env) -> None:
    await store(env, "museum opening hours in madrid")
    async with env.sessions() as db:
        await env.service.store(db, env.scope(), "train tickets from madrid to seville", "a", USAGE)
        await db.rollback()
    found = await lookup(env, "train tickets from madrid to seville")
    assert not found.hit


async def test_the_judge_samples_hits_and_reports_precision(env: Env) -> None:
    await configure(env, precision_sample_rate=1.0)
    await store(env, "what is the capital city of australia")
    assert (await lookup(env, "what is the capital city of australia today")).hit
    async with env.sessions() as db:  # exact hits are never judged
        assert (
            await env.service.lookup(db, env.scope(), "what is the capital city of australia")
        ).exact
        await db.commit()

    async def judged() -> bool:
        async with env.sessions() as db:
            report = await admin.statistics(db, env.tenant, 1)
        return report.judged_hits == 1

    await eventually(judged)
    async with env.sessions() as db:
        report = await admin.statistics(db, env.tenant, 1)
    assert report.judged_correct == 1 and report.precision == 1.0
    await configure(env, precision_sample_rate=0.0)
    judged_before = env.service.judge.judged
    assert (await lookup(env, "what is the capital city of australia now")).hit
    assert env.service.judge.judged == judged_before


async def test_invalidate_by_tag_and_pattern_now(env: Env) -> None:
    tagged = await store(env, "hotel near the louvre", tags=["paris"])
    other = await store(env, "hotel near the colosseum", tags=["rome"])
    async with env.sessions() as db:
        outcome = await admin.invalidate(env.service, db, env.other_tenant, tag="paris")
        assert outcome.deleted == 0
        outcome = await admin.invalidate(env.service, db, env.tenant, tag="paris")
        assert outcome.deleted == 1
        await db.commit()
        assert await repo.get_entry(db, env.tenant, tagged) is None
    assert not (await lookup(env, "hotel near the louvre")).hit
    async with env.sessions() as db:
        # Globs: case-insensitive, the whole prompt; LIKE wildcards in the text are literal.
        assert (await admin.invalidate(env.service, db, env.tenant, pattern="%")).deleted == 0
        assert (await admin.invalidate(env.service, db, env.tenant, pattern="HOTEL*")).deleted == 1
        await db.commit()
        assert await repo.get_entry(db, env.tenant, other) is None


async def test_refresh_reruns_the_prompt_through_the_run_service(env: Env) -> None:
    calls: list[RefreshRequest] = []

    async def refresher(request: RefreshRequest) -> Completion:
        calls.append(request)
        return Completion(
            text="fresh answer", usage=TokenUsage(10, 5, 15), model=request.model, provider="test"
        )

    sections = {"system": "You answer travel questions.", "user": "ignored"}
    entry_id = await store(
        env, "ferry from athens to santorini", tags=["greece"], sections=sections
    )
    async with env.sessions() as db:
        # No refresher yet: a refresh deletes rather than keeping a stale answer.
        outcome = await admin.invalidate(
            env.service, db, env.tenant, tag="greece", action="refresh"
        )
        assert outcome.deleted == 1
        await db.rollback()
    env.service.set_refresher(refresher)
    async with env.sessions() as db:
        outcome = await admin.invalidate(
            env.service, db, env.tenant, tag="greece", action="refresh"
        )
        await db.commit()
        assert outcome.refreshed == 1 and outcome.deleted == 0
    assert calls == [
        RefreshRequest(
            tenant_id=env.tenant,
            model="gpt-4o-mini",
            temperature=0.2,
            max_tokens=200,
            sections={"system": "You answer travel questions."},
            user_text="ferry from athens to santorini",
        )
    ]
    found = await lookup(env, "ferry from athens to santorini")
    assert found.entry is not None and found.entry.id == entry_id
    assert found.entry.response == "fresh answer" and found.entry.usage.total == 15


async def test_scheduled_rules_time_and_count(env: Env) -> None:
    await configure(
        env,
        invalidation_rules=[
            {"type": "count", "value": 2, "action": "delete"},
            {"type": "time", "value": 3600, "action": "delete"},
        ],
    )
    popular = await store(env, "tallest building in dubai")
    old = await store(env, "oldest bridge in prague")
    fresh = await store(env, "longest river in africa")
    for _ in range(2):
        assert (await lookup(env, "tallest building in dubai")).hit
    async with env.sessions() as db:
        await db.execute(
            update(SemanticCache)
            .where(SemanticCache.id == old)
            .values(created_at=utcnow() - timedelta(hours=2))
        )
        await db.commit()
    report = await env.service.run_maintenance()
    assert report.ran and report.deleted == 2 and env.tenant in report.tenants
    async with env.sessions() as db:
        assert await repo.get_entry(db, env.tenant, popular) is None
        assert await repo.get_entry(db, env.tenant, old) is None
        assert await repo.get_entry(db, env.tenant, fresh) is not None
    assert not (await lookup(env, "tallest building in dubai")).hit


async def test_retiring_entries_keyed_on_changed_sections(env: Env) -> None:
    old_source = sections_hash({"system": "You answer {{topic}} questions."})
    keyed = await store(env, "packing list for iceland", source_hash=old_source)
    unrelated = await store(env, "packing list for iceland", env.scope(model="gpt-4o"))
    async with env.sessions() as db:
        retire = env.service.retire_for_sections
        assert (await retire(db, env.tenant, old_source, old_source)).deleted == 0
        assert (await retire(db, env.other_tenant, old_source)).deleted == 0
        assert (await retire(db, env.tenant, old_source, "new")).deleted == 1
        await db.commit()
        assert await repo.get_entry(db, env.tenant, keyed) is None
        assert await repo.get_entry(db, env.tenant, unrelated) is not None
        # Rendered sections count too: every entry of the scope's sections goes.
        rendered = env.scope().sections_hash
        assert (await retire(db, env.tenant, rendered)).deleted == 1
        await db.commit()


async def test_a_scope_loads_as_one_block_of_bytes_and_json_rows(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = await store(env, "ferry times from helsinki to tallinn")
    legacy = await store(env, "cheapest month to fly to lisbon")
    async with env.sessions() as db:
        # A row written before the binary column: only its JSON embedding.
        await db.execute(
            update(SemanticCache).where(SemanticCache.id == legacy).values(vector=None)
        )
        await db.commit()
    env.service.registry.clear()

    def per_row(*_: object) -> object:
        raise AssertionError("a load must not decode vectors row by row")

    # The per-row decoder (and per-row objects) made a 100,000-entry load take seconds.
    monkeypatch.setattr(service_module, "vector_of", per_row, raising=False)
    monkeypatch.setattr(index_module, "LoadedRow", per_row)
    near_binary = await lookup(env, "the ferry times from helsinki to tallinn")
    near_legacy = await lookup(env, "the cheapest month to fly to lisbon")
    assert near_binary.hit and near_binary.entry is not None and near_binary.entry.id == binary
    assert near_legacy.hit and near_legacy.entry is not None and near_legacy.entry.id == legacy
    loaded = env.service.registry.loaded((env.tenant, env.scope().key, HashingEmbedder().name))
    assert loaded is not None and sorted(loaded.ids) == sorted([binary, legacy])


async def test_statistics_rows_are_upserted_per_tenant_and_day(env: Env) -> None:
    await lookup(env, "first miss")
    await lookup(env, "second miss")
    await lookup(env, "a miss for bob", env.scope(tenant_id=env.other_tenant))
    async with env.sessions() as db:
        rows = (await db.scalars(select(CacheStatistics).order_by(CacheStatistics.id))).all()
    assert [(row.tenant_id == env.tenant, row.total_misses) for row in rows] == [
        (True, 2),
        (False, 1),
    ]
    assert all(
        row.date == utcnow().replace(hour=0, minute=0, second=0, microsecond=0) for row in rows
    )


@pytest.mark.postgres
async def test_one_node_at_a_time_runs_the_scheduled_pass(postgres_url: str) -> None:
    upgrade(postgres_url, "head")
    async with cache_env(postgres_url) as env, env.sessions() as holder:
        assert await try_maintenance_lock(holder)
        assert not (await env.service.run_maintenance()).ran
        await holder.rollback()
        assert (await env.service.run_maintenance()).ran


async def test_the_scheduled_pass_purges_expired_entries_by_itself(
    migrated_database_url: str,
) -> None:
    async with cache_env(migrated_database_url, maintenance_seconds=0.05) as env:
        entry_id = await store(env, "night trains from vienna")
        async with env.sessions() as db:
            await db.execute(
                update(SemanticCache)
                .where(SemanticCache.id == entry_id)
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
            await db.commit()

        async def purged() -> bool:
            async with env.sessions() as db:
                return await repo.get_entry(db, env.tenant, entry_id) is None

        await eventually(purged)


async def test_indexes_load_float32_vectors_and_rows_with_only_the_json_array(env: Env) -> None:
    binary = await store(env, "ferries between the greek islands")
    legacy = await store(env, "hiking trails in the swiss alps")
    async with env.sessions() as db:
        row = await repo.get_entry(db, env.tenant, binary)
        assert row is not None and row.vector is not None and len(row.vector) == 256 * 4
        # Short decimals in the JSON copy, not float32 noise digits.
        assert all(len(repr(value)) <= 10 for value in row.embedding)
        await db.execute(
            update(SemanticCache).where(SemanticCache.id == legacy).values(vector=None)
        )
        await db.commit()
    env.service.registry.clear()
    for text, entry_id in (
        ("ferries between the greek islands today", binary),
        ("hiking trails in the swiss alps today", legacy),
    ):
        found = await lookup(env, text)
        assert found.hit and not found.exact and found.entry is not None, text
        assert found.entry.id == entry_id
