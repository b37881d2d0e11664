"""The semantic-cache endpoints in-process, on both databases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update

from server.cache import CacheScope, SemanticCacheService, sections_hash
from server.llm.base import TokenUsage
from storage.base import utcnow
from storage.models.cache import SemanticCache
from tests.support.accounts import Account
from tests.support.inprocess import StudioApi

USAGE = TokenUsage(40, 20, 60)


def _cache(api: StudioApi) -> SemanticCacheService:
    cache = api.services.cache
    assert cache is not None
    return cache


def _scope(who: Account, model: str = "gpt-4o-mini") -> CacheScope:
    return CacheScope(who.tenant_id, model, 0.0, None, sections_hash({"system": "Be helpful."}))


async def _store(
    api: StudioApi, who: Account, text: str, tags: list[str] | None = None, **scope: Any
) -> str:
    async with api.services.sessions() as db:
        entry = await _cache(api).store(
            db, _scope(who, **scope), text, f"answer: {text}", USAGE, tags or []
        )
        await db.commit()
    assert entry is not None
    return entry.id


def _error(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    if field is not None:
        assert error["field"] == field, error
    return error


async def test_config_defaults_changes_and_bad_values(api: StudioApi) -> None:
    ana = await api.account()
    assert (await api.call("GET", "/api/cache/config")).status_code == 401
    defaults = (await api.call("GET", "/api/cache/config", ana)).json()
    assert defaults["enabled"] is True and defaults["similarity_threshold"] == 0.85
    assert defaults["invalidation_rules"] == [] and defaults["judge_model"] == "offline"
    assert defaults["updated_at"] is None

    rules = [{"type": "tag", "value": "faq", "action": "refresh"}, {"type": "time", "value": 60}]
    changed = await api.call(
        "PUT",
        "/api/cache/config",
        ana,
        json={"similarity_threshold": 0.9, "invalidation_rules": rules, "max_cache_size": 10},
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["similarity_threshold"] == 0.9 and body["max_cache_size"] == 10
    assert body["invalidation_rules"][1] == {"type": "time", "value": 60, "action": "delete"}
    assert body["updated_at"].endswith("Z")
    assert (await api.call("GET", "/api/cache/config", ana)).json() == body
    # Another tenant still has the defaults.
    bob = await api.account("Bob")
    assert (await api.call("GET", "/api/cache/config", bob)).json()["similarity_threshold"] == 0.85

    cap = api.settings.cache_max_entries_per_tenant
    for payload, field in (
        ({}, None),
        ({"enabled": None}, None),
        ({"similarity_threshold": 0.49}, "similarity_threshold"),
        ({"similarity_threshold": 1.5}, "similarity_threshold"),
        ({"similarity_threshold": "high"}, "similarity_threshold"),
        ({"default_ttl_seconds": 0}, "default_ttl_seconds"),
        ({"default_ttl_seconds": 1.5}, "default_ttl_seconds"),
        ({"max_cache_size": cap + 1}, "max_cache_size"),
        ({"max_cache_size": 2**70}, "max_cache_size"),
        ({"bypass_temperature": -1}, "bypass_temperature"),
        ({"precision_sample_rate": 2}, "precision_sample_rate"),
        ({"judge_model": ""}, "judge_model"),
        ({"colour": "red"}, "colour"),
        ({"invalidation_rules": [{"type": "size", "value": 1}]}, "invalidation_rules.0.type"),
        ({"invalidation_rules": [{"type": "time", "value": "soon"}]}, "invalidation_rules.0.value"),
        ({"invalidation_rules": [{"type": "count", "value": 0}]}, "invalidation_rules.0.value"),
        (
            {"invalidation_rules": [{"type": "tag", "value": "x" * 65}]},
            "invalidation_rules.0.value",
        ),
        ({"invalidation_rules": "all"}, "invalidation_rules"),
    ):
        _error(await api.call("PUT", "/api/cache/config", ana, json=payload), 422, field)
    malformed = await api.call(
        "PUT", "/api/cache/config", ana, content=b"{", headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    nan = await api.call(
        "PUT",
        "/api/cache/config",
        ana,
        content=b'{"similarity_threshold": NaN}',
        headers={"Content-Type": "application/json"},
    )
    assert nan.status_code in (400, 422)


async def test_entries_list_read_tag_and_delete(api: StudioApi) -> None:
    ana, bob = await api.accounts("Ana", "Bob")
    outsider = await api.account("Eve")
    first = await _store(api, ana, "Best 100% cotton shirts", ["shop"])
    second = await _store(api, ana, "weather in oslo tomorrow", ["weather"], model="gpt-4o")

    listed = (await api.call("GET", "/api/cache/entries", bob)).json()
    assert listed["total"] == 2 and [item["id"] for item in listed["items"]] == [second, first]
    assert listed["items"][1]["tags"] == ["shop"] and listed["items"][1]["expired"] is False
    assert listed["items"][1]["prompt_tokens"] == 40 and listed["items"][1]["hit_count"] == 0
    by_q = (await api.call("GET", "/api/cache/entries?q=100%25", ana)).json()
    assert [item["id"] for item in by_q["items"]] == [first]
    assert (await api.call("GET", "/api/cache/entries?q=0_", ana)).json()["total"] == 0
    by_tag = (await api.call("GET", "/api/cache/entries?tag=weather", ana)).json()
    assert [item["id"] for item in by_tag["items"]] == [second]
    by_model = (await api.call("GET", "/api/cache/entries?model=gpt-4o-mini", ana)).json()
    assert [item["id"] for item in by_model["items"]] == [first]
    paged = (await api.call("GET", "/api/cache/entries?limit=1&offset=1", ana)).json()
    assert [item["id"] for item in paged["items"]] == [first] and paged["total"] == 2
    assert (await api.call("GET", "/api/cache/entries", outsider)).json()["total"] == 0
    _error(await api.call("GET", "/api/cache/entries?limit=0", ana), 422, "limit")
    _error(await api.call("GET", f"/api/cache/entries?q={'x' * 201}", ana), 422, "q")
    _error(await api.call("GET", f"/api/cache/entries?tag={'x' * 65}", ana), 422, "tag")

    one = (await api.call("GET", f"/api/cache/entries/{first}", ana)).json()
    assert one["response"] == "answer: Best 100% cotton shirts" and one["temperature"] == 0.0
    _error(await api.call("GET", f"/api/cache/entries/{first}", outsider), 404)
    _error(await api.call("GET", "/api/cache/entries/no-such-entry", ana), 404)
    _error(await api.call("GET", f"/api/cache/entries/{'x' * 101}", ana), 422)

    tagged = await api.call(
        "POST", f"/api/cache/entries/{first}/tags", ana, json={"tags": ["sale", "shop", " sale "]}
    )
    assert tagged.status_code == 200 and tagged.json()["tags"] == ["sale", "shop"]
    for payload, field in (
        ({"tags": []}, "tags"),
        ({"tags": ["x" * 65]}, "tags.0"),
        ({"tags": [""]}, "tags.0"),
        ({"tags": ["t"] * 51}, "tags"),
        ({"tags": "sale"}, "tags"),
        ({"tag": ["sale"]}, None),
    ):
        _error(
            await api.call("POST", f"/api/cache/entries/{first}/tags", ana, json=payload),
            422,
            field,
        )
    _error(
        await api.call("POST", f"/api/cache/entries/{first}/tags", outsider, json={"tags": ["x"]}),
        404,
    )

    _error(await api.call("DELETE", f"/api/cache/entries/{first}", outsider), 404)
    assert (await api.call("DELETE", f"/api/cache/entries/{first}", ana)).status_code == 204
    _error(await api.call("DELETE", f"/api/cache/entries/{first}", ana), 404)
    assert (await api.call("GET", "/api/cache/entries", ana)).json()["total"] == 1


async def test_invalidate_and_purge(api: StudioApi) -> None:
    ana = await api.account()
    outsider = await api.account("Eve")
    await _store(api, ana, "ski resorts in austria", ["ski"])
    await _store(api, ana, "Ski passes in france")
    kept = await _store(api, ana, "beaches in portugal")
    await _store(api, outsider, "ski resorts in austria", ["ski"])

    by_tag = await api.call("POST", "/api/cache/invalidate", ana, json={"tag": "ski"})
    assert by_tag.status_code == 200 and by_tag.json() == {"deleted": 1, "refreshed": 0}
    by_pattern = await api.call("POST", "/api/cache/invalidate", ana, json={"pattern": "ski *"})
    assert by_pattern.json() == {"deleted": 1, "refreshed": 0}
    remaining = (await api.call("GET", "/api/cache/entries", ana)).json()
    assert [item["id"] for item in remaining["items"]] == [kept]
    assert (await api.call("GET", "/api/cache/entries", outsider)).json()["total"] == 1
    for payload, field in (
        ({"tag": "a", "pattern": "b"}, None),
        ({"pattern": ""}, "pattern"),
        ({"pattern": "x" * 501}, "pattern"),
        ({"tag": 5}, "tag"),
        ({"action": "explode"}, "action"),
    ):
        _error(await api.call("POST", "/api/cache/invalidate", ana, json=payload), 422, field)

    # With no selector, the configured rules run now.
    rules = [{"type": "pattern", "value": "*portugal*"}]
    await api.call("PUT", "/api/cache/config", ana, json={"invalidation_rules": rules})
    assert (await api.call("POST", "/api/cache/invalidate", ana, json={})).json()["deleted"] == 1

    expired = await _store(api, ana, "old news")
    async with api.services.sessions() as db:
        await db.execute(
            update(SemanticCache)
            .where(SemanticCache.id == expired)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
        await db.commit()
    assert (await api.call("GET", f"/api/cache/entries/{expired}", ana)).json()["expired"] is True
    assert (await api.call("POST", "/api/cache/purge", outsider)).json() == {"purged": 0}
    assert (await api.call("POST", "/api/cache/purge", ana)).json() == {"purged": 1}
    assert (await api.call("POST", "/api/cache/purge")).status_code == 401


async def test_stats_report_hits_savings_precision_and_the_histogram(api: StudioApi) -> None:
    ana = await api.account()
    await api.call("PUT", "/api/cache/config", ana, json={"precision_sample_rate": 0.0})
    await _store(api, ana, "How do I reset my password?")
    async with api.services.sessions() as db:
        cache = _cache(api)
        exact = await cache.lookup(db, _scope(ana), "How do I reset my password?")
        miss = await cache.lookup(db, _scope(ana), "What is the capital of Peru?")
        await db.commit()
    assert exact.exact and not miss.hit

    stats = await api.call("GET", "/api/cache/stats", ana)
    assert stats.status_code == 200, stats.text
    body = stats.json()
    assert body["days"] == 7 and (body["hits"], body["misses"]) == (1, 1)
    assert body["hit_rate"] == 0.5 and body["tokens_saved"] == 60
    # gpt-4o-mini: 40 x $0.15 + 20 x $0.60 per million tokens.
    assert abs(body["cost_saved"] - (40 * 0.15 + 20 * 0.60) / 1e6) < 1e-12
    assert body["precision"] == {"judged": 0, "correct": 0, "estimate": None}
    assert sum(bucket["count"] for bucket in body["histogram"]) == 2
    assert {"low": 1.0, "high": 1.0, "count": 1} in body["histogram"]
    assert len(body["daily"]) == 1 and body["daily"][0]["date"].endswith("T00:00:00Z")
    bob = await api.account("Bob")
    assert (await api.call("GET", "/api/cache/stats?days=1", bob)).json()["hits"] == 0
    _error(await api.call("GET", "/api/cache/stats?days=0", ana), 422, "days")
    _error(await api.call("GET", "/api/cache/stats?days=367", ana), 422, "days")
    _error(await api.call("GET", "/api/cache/stats?days=week", ana), 422, "days")
