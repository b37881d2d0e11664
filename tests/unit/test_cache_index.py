"""The in-memory vector index and the registry of loaded scopes."""

from __future__ import annotations

import asyncio
from datetime import datetime

import numpy as np
import pytest

from server.cache.embedders import normalize_rows
from server.cache.index import (
    PREFILTER_MIN_ROWS,
    IndexRegistry,
    LoadedBlock,
    LoadedRow,
    ScopeId,
    VectorIndex,
    decode_block,
    epoch_array,
    vector_bytes,
)

NOW = 1_000_000.0
LATER = NOW + 3600


def unit(*values: float) -> np.ndarray:
    return normalize_rows([values])[0]


def test_search_finds_the_nearest_unexpired_entry() -> None:
    index = VectorIndex(3)
    index.add("a", unit(1, 0, 0), LATER)
    index.add("b", unit(0, 1, 0), LATER)
    index.add("c", unit(1, 0.1, 0), NOW - 1)  # nearest, but expired
    entry, similarity = index.search(unit(1, 0.12, 0), NOW)
    assert entry == "a"
    assert similarity == pytest.approx(float(unit(1, 0, 0) @ unit(1, 0.12, 0)))


def test_empty_and_all_expired_scopes_have_no_neighbour() -> None:
    index = VectorIndex(2)
    assert index.search(unit(1, 0), NOW) == (None, None)
    index.add("a", unit(1, 0), NOW)  # expires exactly now: expired
    assert index.search(unit(1, 0), NOW) == (None, None)


def test_add_replaces_and_remove_keeps_rows_dense() -> None:
    index = VectorIndex(2)
    for number in range(40):  # past the initial capacity: the arrays grow
        index.add(f"e{number}", unit(1, number), LATER)
    index.add("e5", unit(0, 1), LATER)
    assert len(index) == 40
    assert index.remove("e0") and not index.remove("e0")
    assert "e0" not in index and len(index) == 39
    # The row moved into the hole still answers for its own id.
    assert index.search(unit(1, 39), NOW)[0] == "e39"
    assert index.search(unit(0, 1), NOW)[0] == "e5"


def test_a_vector_of_another_length_is_refused() -> None:
    index = VectorIndex(4)
    with pytest.raises(ValueError, match="dimensions"):
        index.add("a", unit(1, 0, 0), LATER)


def test_prefilter_serves_the_same_nearest_as_an_exact_scan() -> None:
    rng = np.random.default_rng(7)
    count = PREFILTER_MIN_ROWS + 1000
    vectors = normalize_rows(rng.standard_normal((count, 256)))
    index = VectorIndex(256)
    for row in range(count):
        index.add(f"e{row}", vectors[row], LATER)
    for target in rng.choice(count, 25, replace=False):
        query = normalize_rows([vectors[target] + 0.03 * rng.standard_normal(256)])[0]
        entry, similarity = index.search(query, NOW)
        exact = vectors @ query
        assert entry == f"e{target}"
        assert similarity == pytest.approx(float(exact.max()), abs=1e-5)
    # Expired rows are never candidates, even when they are the nearest.
    index.add("e0", vectors[0], NOW - 1)
    assert index.search(vectors[0], NOW)[0] != "e0"


async def _rows(rows: list[LoadedRow]) -> list[LoadedRow]:
    return rows


SCOPE: ScopeId = ("tenant", "scope", "hashing-3")


async def test_registry_loads_once_for_concurrent_callers() -> None:
    registry = IndexRegistry(max_scopes=4)
    calls = 0
    release = asyncio.Event()

    async def load() -> list[LoadedRow]:
        nonlocal calls
        calls += 1
        await release.wait()
        return [LoadedRow("a", unit(1, 0, 0), LATER)]

    first = asyncio.create_task(registry.get(SCOPE, 3, load))
    second = asyncio.create_task(registry.get(SCOPE, 3, load))
    await asyncio.sleep(0)
    release.set()
    one, two = await asyncio.gather(first, second)
    assert one is two and calls == 1 and len(one) == 1
    assert registry.vectors == 1 and registry.nbytes > 0


async def test_changes_during_a_load_are_not_undone_by_it() -> None:
    registry = IndexRegistry(max_scopes=4)
    release = asyncio.Event()

    async def load() -> list[LoadedRow]:
        await release.wait()
        # A snapshot taken before the changes below committed.
        return [LoadedRow("gone", unit(1, 0, 0), LATER), LoadedRow("kept", unit(0, 1, 0), LATER)]

    task = asyncio.create_task(registry.get(SCOPE, 3, load))
    await asyncio.sleep(0)
    registry.remove("gone")
    registry.add(SCOPE, "new", unit(0, 0, 1), LATER)
    release.set()
    index = await task
    assert sorted(index.ids) == ["kept", "new"]
    registry.remove("new")
    assert sorted(index.ids) == ["kept"]


async def test_a_failed_load_is_forgotten_and_retried() -> None:
    registry = IndexRegistry(max_scopes=4)

    async def broken() -> list[LoadedRow]:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        await registry.get(SCOPE, 3, broken)
    assert registry.loaded(SCOPE) is None
    index = await registry.get(SCOPE, 3, lambda: _rows([LoadedRow("a", unit(1, 0, 0), LATER)]))
    assert index.ids == ["a"]


async def test_least_recently_used_scopes_are_dropped_past_the_bound() -> None:
    registry = IndexRegistry(max_scopes=2)
    scopes = [("t", f"s{number}", "e") for number in range(3)]
    for number, scope in enumerate(scopes):
        await registry.get(
            scope, 3, lambda n=number: _rows([LoadedRow(f"x{n}", unit(1, 0, 0), LATER)])
        )
    assert registry.loaded(scopes[0]) is None
    assert registry.loaded(scopes[1]) is not None and registry.loaded(scopes[2]) is not None
    # An add for a scope that is not loaded is ignored (it will load from the table).
    registry.add(scopes[0], "late", unit(1, 0, 0), LATER)
    assert registry.loaded(scopes[0]) is None
    registry.drop_tenant("t")
    assert len(registry) == 0
    with pytest.raises(ValueError):
        IndexRegistry(max_scopes=0)


async def test_an_entry_moving_scope_leaves_its_old_scope() -> None:
    registry = IndexRegistry(max_scopes=4)
    other: ScopeId = ("tenant", "other", "hashing-3")
    first = await registry.get(SCOPE, 3, lambda: _rows([LoadedRow("a", unit(1, 0, 0), LATER)]))
    second = await registry.get(other, 3, lambda: _rows([]))
    registry.add(other, "a", unit(0, 1, 0), LATER)
    assert first.ids == [] and second.ids == ["a"]
    registry.clear()
    assert len(registry) == 0


def test_a_load_merges_in_one_block_and_skips_vectors_of_another_length() -> None:
    index = VectorIndex(3)
    index.loading = True
    rows = [LoadedRow(f"r{number}", unit(1, number, 0), LATER) for number in range(40)]
    index.merge_loaded([*rows, LoadedRow("short", np.ones(2, dtype=np.float32), LATER)])
    assert len(index) == 40 and "short" not in index and not index.loading
    assert index.search(unit(1, 39, 0), NOW)[0] == "r39"
    assert index.search(unit(1, 0, 0), NOW)[0] == "r0"


def test_a_stored_block_decodes_bytes_at_once_json_rows_too_and_skips_other_lengths() -> None:
    vectors = [unit(1, 0, 0), unit(0, 1, 0), unit(0, 0, 1)]
    stored: list[bytes | list[float]] = [
        vector_bytes(vectors[0]),
        vectors[1].tolist(),  # a row from before the binary column
        vector_bytes(np.ones(2, dtype=np.float32)),  # another embedder's size
        [1.0, 2.0],
        vector_bytes(vectors[2]),
    ]
    block = decode_block(["a", "b", "short", "short-json", "c"], stored, LATER + np.arange(5.0), 3)
    assert block.ids == ["a", "c", "b"]
    assert np.allclose(block.vectors, np.stack([vectors[0], vectors[2], vectors[1]]))
    assert (block.expires_at - LATER).tolist() == [0.0, 4.0, 1.0]
    index = VectorIndex(3)
    index.merge_loaded(block)
    assert index.search(unit(0, 0, 1), NOW) == ("c", pytest.approx(1.0))
    empty = decode_block([], [], np.zeros(0), 3)
    assert empty.ids == [] and empty.vectors.shape == (0, 3)


def test_a_block_load_keeps_changes_made_while_it_ran_and_grows_once() -> None:
    count = PREFILTER_MIN_ROWS + 5
    vectors = normalize_rows(np.random.default_rng(3).standard_normal((count, 8)))
    index = VectorIndex(8)
    index.loading = True
    index.add("r0", unit(*([0.0] * 7 + [1.0])), LATER)  # updated since the load began
    index.remove("r1")  # deleted since the load began
    ids = [f"r{number}" for number in range(count)]
    index.merge_loaded(LoadedBlock(ids, vectors, np.full(count, LATER)))
    assert len(index) == count - 1 and "r1" not in index
    assert index.search(unit(*([0.0] * 7 + [1.0])), NOW)[0] == "r0"
    assert index.search(vectors[count - 1], NOW) == (f"r{count - 1}", pytest.approx(1.0))
    assert index.nbytes < 2 * (count * 8 * 4 + count * 8 + count * 64 * 4) * 1.1


def test_expiry_times_convert_as_one_array() -> None:
    moments = [datetime(1970, 1, 1, 0, 0, 1, 500_000), datetime(2026, 1, 2, 3, 4, 5)]
    assert epoch_array(moments).tolist() == [
        1.5,
        (moments[1] - datetime(1970, 1, 1)).total_seconds(),
    ]
