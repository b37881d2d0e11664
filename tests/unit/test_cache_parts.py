"""Small parts of the semantic cache: scope keys, prices, rules, buckets, verdicts, messages,
and the offline embedders."""

from __future__ import annotations

import numpy as np
import pytest

from server.cache.config import (
    MAX_RULES,
    CachePolicy,
    InvalidationRule,
    parse_rules,
    policy_of,
    updated_policy,
)
from server.cache.embedders import HashingEmbedder, WordLlamaEmbedder, normalize_rows
from server.cache.errors import InvalidCacheConfig
from server.cache.judge import offline_verdict, parse_verdict
from server.cache.pricing import PriceTable, PriceTableError, parse_prices
from server.cache.scope import CacheScope, keyed_sections, prompt_hash, sections_hash
from server.cache.statistics import NO_NEIGHBOUR, bucket_of
from server.cache.sync import Added, Removed, Reset, decode_change, encode_change
from storage.models.cache import CacheConfig
from storage.repositories.cache import glob_to_like


def scope(**changes: object) -> CacheScope:
    values: dict[str, object] = {
        "tenant_id": "t",
        "model": "gpt-4o-mini",
        "temperature": 0.7,
        "max_tokens": 256,
        "sections_hash": sections_hash({"system": "Be brief."}),
    }
    values.update(changes)
    return CacheScope(**values)  # type: ignore[arg-type]


def test_every_setting_of_the_scope_changes_its_key() -> None:
    base = scope().key
    assert scope().key == base and len(base) == 32
    for change in (
        {"model": "gpt-4o"},
        {"temperature": 0.71},
        {"max_tokens": None},
        {"max_tokens": 257},
        {"sections_hash": sections_hash({"system": "Be long."})},
    ):
        assert scope(**change).key != base, change
    # The tenant is its own column, not part of the key.
    assert scope(tenant_id="other").key == base
    assert scope(temperature=0.704).temperature_x100 == 70


def test_sections_hash_covers_only_the_keyed_sections() -> None:
    one = sections_hash({"system": "S", "developer": "D", "context": "C", "user": "U1"})
    assert one == sections_hash({"context": "C", "developer": "D", "system": "S", "user": "U2"})
    assert one != sections_hash({"system": "S", "developer": "D", "context": "C2"})
    assert sections_hash(None) == sections_hash({"system": "", "developer": None})
    assert keyed_sections({"system": "S", "user": "U", "context": "", "developer": 3}) == {
        "system": "S"
    }
    assert prompt_hash("a") != prompt_hash("a ") and len(prompt_hash("")) == 64


def test_prices_parse_and_override_the_builtin_table() -> None:
    assert parse_prices(" m1=1/2 , m2=0.5/0 ,") == (("m1", 1.0, 2.0), ("m2", 0.5, 0.0))
    table = PriceTable(parse_prices("gpt-4o-mini=1/1"))
    assert table.cost("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(2.0)
    assert table.cost("gpt-4o", 1_000_000, 0) == pytest.approx(2.5)
    assert table.cost("offline", 10**9, 10**9) == 0.0
    for bad in ("m", "m=1", "m=1/2/3", "=1/2", "m=a/1", "m=-1/1", "m=nan/1", "m=inf/1"):
        with pytest.raises(PriceTableError):
            parse_prices(bad)


def test_rules_are_validated_field_by_field() -> None:
    rules = parse_rules(
        [
            {"type": "tag", "value": " faq ", "action": "refresh"},
            {"type": "pattern", "value": "*weather*"},
            {"type": "time", "value": 60},
            {"type": "count", "value": 3, "action": "delete"},
        ]
    )
    assert rules[0] == InvalidationRule("tag", "faq", "refresh")
    assert rules[1].action == "delete"
    assert parse_rules(None) == ()
    cases = [
        ("nope", "invalidation_rules"),
        ([{"type": "size", "value": 1}], "invalidation_rules.0.type"),
        ([{"type": "tag", "value": "x", "action": "drop"}], "invalidation_rules.0.action"),
        ([{"type": "tag", "value": ""}], "invalidation_rules.0.value"),
        ([{"type": "tag", "value": "x" * 65}], "invalidation_rules.0.value"),
        ([{"type": "pattern", "value": 5}], "invalidation_rules.0.value"),
        ([{"type": "time", "value": "60"}], "invalidation_rules.0.value"),
        ([{"type": "time", "value": 0}], "invalidation_rules.0.value"),
        ([{"type": "count", "value": True}], "invalidation_rules.0.value"),
        ([{"type": "count", "value": 2**31}], "invalidation_rules.0.value"),
        ([{"type": "tag", "value": "a"}, 7], "invalidation_rules.1"),
        ([{"type": "count", "value": 1}] * (MAX_RULES + 1), "invalidation_rules"),
    ]
    for raw, field in cases:
        with pytest.raises(InvalidCacheConfig) as caught:
            parse_rules(raw)
        assert caught.value.field == field, raw


def test_policy_updates_are_validated_at_their_edges() -> None:
    policy = CachePolicy()
    assert (
        updated_policy(
            policy, {"similarity_threshold": 1.0}, max_cache_size=10
        ).similarity_threshold
        == 1.0
    )
    assert updated_policy(policy, {"max_cache_size": 10}, max_cache_size=10).max_cache_size == 10
    for changes in (
        {"similarity_threshold": 0.49},
        {"similarity_threshold": 1.01},
        {"similarity_threshold": "0.9"},
        {"max_cache_size": 11},
        {"max_cache_size": 0},
        {"max_cache_size": 5.0},
        {"default_ttl_seconds": 0},
        {"bypass_temperature": 2.5},
        {"precision_sample_rate": -0.1},
        {"enabled": 1},
        {"judge_model": " "},
        {"colour": "red"},
    ):
        with pytest.raises(InvalidCacheConfig) as caught:
            updated_policy(policy, changes, max_cache_size=10)
        assert caught.value.field == next(iter(changes))
    assert policy.bypasses(1.01) and not policy.bypasses(1.0)
    assert CachePolicy(enabled=False).bypasses(0.0)


def test_a_stored_row_with_unreadable_rules_keeps_serving_without_them() -> None:
    row = CacheConfig(tenant_id="t", invalidation_rules=[{"type": "bogus"}])
    assert policy_of(row).rules == ()
    assert policy_of(None) == CachePolicy()


def test_similarity_buckets() -> None:
    assert bucket_of(None) == NO_NEIGHBOUR
    assert bucket_of(float("nan")) == NO_NEIGHBOUR
    assert bucket_of(-0.3) == 0
    assert bucket_of(0.849) == 16
    assert bucket_of(0.85) == 17
    assert bucket_of(1.0) == 20
    assert bucket_of(1.0000001) == 20


def test_judge_verdicts() -> None:
    assert parse_verdict('{"same": true}') is True
    assert parse_verdict(' {"same": false} ') is False
    assert parse_verdict("Yes, it does.") is True
    assert parse_verdict("no") is False
    assert parse_verdict('{"same": "yes"}') is None
    assert parse_verdict("maybe") is None
    assert offline_verdict("What is the capital city of France?", "Name the capital city of France")
    assert not offline_verdict("What is the capital of France?", "How do I bake sourdough bread?")
    assert offline_verdict("", "")


def test_sync_messages_round_trip_and_malformed_ones_are_refused() -> None:
    vector = normalize_rows([[0.5, -1.0, 2.0]])[0]
    added = Added(("t", "s", "e"), "id-1", vector, 123.5)
    decoded = decode_change(*encode_change(added))
    assert isinstance(decoded, Added)
    assert decoded.scope == added.scope and decoded.entry_id == "id-1"
    assert decoded.expires_at == 123.5 and np.allclose(decoded.vector, vector)
    assert decode_change(*encode_change(Removed(("a", "b")))) == Removed(("a", "b"))
    assert decode_change(*encode_change(Reset("t"))) == Reset("t")
    assert decode_change(*encode_change(Reset(None))) == Reset(None)
    for kind, payload in (
        ("add", b'{"t": "t", "s": "s", "e": "e", "i": "i", "x": 1}'),
        ("add", b'{"t": "t", "s": "s", "e": "e", "i": "i", "x": 1}\n\x00\x00\x00'),
        ("add", b"not json\n\x00\x00\x00\x00"),
        ("remove", b'{"ids": [1]}'),
        ("remove", b"[]"),
        ("reset", b'{"tenant": 5}'),
        ("other", b"{}"),
    ):
        with pytest.raises((ValueError, KeyError, TypeError)):
            decode_change(kind, payload)


async def test_hashing_embedder_is_deterministic_and_word_based() -> None:
    embedder = HashingEmbedder(64)
    vectors = await embedder.embed(["the cat sat", "The cat sat!", "stock prices fell", ""])
    assert vectors.shape == (4, 64) and vectors.dtype == np.float32
    assert float(vectors[0] @ vectors[1]) == pytest.approx(1.0)
    assert float(vectors[0] @ vectors[2]) < 0.5
    assert not vectors[3].any()
    assert embedder.name == "hashing-64"
    with pytest.raises(ValueError):
        HashingEmbedder(4)


async def test_wordllama_loads_from_its_wheel_without_network() -> None:
    embedder = WordLlamaEmbedder()
    vectors = await embedder.embed(
        ["How do I reset my password?", "I forgot my password, how can I change it?",
         "What is the boiling point of water?"]
    )  # fmt: skip
    assert vectors.shape == (3, 256)
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2])
    assert (await embedder.embed([])).shape == (0, 256)


def test_glob_patterns_become_escaped_like_patterns() -> None:
    assert glob_to_like("*weather?") == "%weather_"
    assert glob_to_like("100%_off\\") == "100\\%\\_off\\\\"


async def test_the_embedder_setting_picks_the_embedder() -> None:
    from server.cache import create_embedder
    from server.cache.embedder_openai import OpenAIEmbedder
    from server.settings import Settings

    assert isinstance(create_embedder(Settings()), WordLlamaEmbedder)
    assert isinstance(create_embedder(Settings(cache_embedder="hashing")), HashingEmbedder)
    remote = create_embedder(
        Settings(cache_embedder="openai", llm_base_url="http://127.0.0.1:9/v1", llm_api_key="k")
    )
    assert isinstance(remote, OpenAIEmbedder) and remote.name == "openai:text-embedding-3-small"
    await remote.aclose()
