"""The in-memory vector index: one numpy matrix per (tenant, scope, embedder).

The table stays the source of truth: an index is loaded lazily from it the first time its scope
is looked up, then kept in step by the cache service (its own commits) and by the broker (other
nodes' commits). Entries are unit vectors, so cosine similarity is a dot product.

Search is exact up to :data:`PREFILTER_MIN_ROWS` rows. Above that a fixed random orthogonal
projection to :data:`PROJECTED_DIMENSIONS` dimensions (scaled so its dot products estimate the
cosine) picks candidates: the rows within :data:`PREFILTER_MARGIN` of the best estimate, at most
:data:`CANDIDATES` of them. Their exact similarities decide: a hit is always decided on the exact
cosine, so the prefilter can only ever turn a hit into a miss (when the true nearest is not
among the candidates), never serve a wrong entry.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import TypeVar

import numpy as np
import numpy.typing as npt

#: Rows from which a scope's search goes through the projected prefilter.
PREFILTER_MIN_ROWS = 16_384
#: Dimensions of the prefilter's projection.
PROJECTED_DIMENSIONS = 64
#: Most candidates the prefilter hands to the exact comparison.
CANDIDATES = 64
#: Rows whose estimated cosine is this close to the best estimate are candidates (the
#: estimate's error is about 0.1 for unit vectors: this keeps the true nearest with margin).
PREFILTER_MARGIN = 0.35
_INITIAL_CAPACITY = 16
_EPOCH = datetime(1970, 1, 1)

#: (tenant id, scope key, embedder name)
ScopeId = tuple[str, str, str]
Vector = npt.NDArray[np.float32]
_G = TypeVar("_G", bound=np.generic)


@dataclass(frozen=True, slots=True)
class LoadedRow:
    """One entry as loaded from the table."""

    entry_id: str
    vector: Vector
    expires_at: float


@dataclass(frozen=True, slots=True)
class LoadedBlock:
    """A whole load as arrays: ``ids[i]`` has row ``vectors[i]`` and expiry ``expires_at[i]``."""

    ids: list[str]
    vectors: npt.NDArray[np.float32]
    expires_at: npt.NDArray[np.float64]

    @classmethod
    def of_rows(cls, rows: Iterable[LoadedRow], dimensions: int) -> LoadedBlock:
        """The rows of ``dimensions`` dimensions as one block (others are skipped)."""
        kept = [row for row in rows if row.vector.shape == (dimensions,)]
        vectors = (
            np.stack([row.vector for row in kept]).astype(np.float32, copy=False)
            if kept
            else np.zeros((0, dimensions), dtype=np.float32)
        )
        expires = np.array([row.expires_at for row in kept], dtype=np.float64)
        return cls([row.entry_id for row in kept], vectors, expires)


def decode_block(
    ids: list[str],
    stored: list[bytes | list[float]],
    expires_at: npt.NDArray[np.float64],
    dimensions: int,
) -> LoadedBlock:
    """Stored vectors as one block; rows of another size are skipped.

    The float32 bytes of all rows are joined and decoded by one ``frombuffer`` (no per-row
    array); only rows stored before the binary column (JSON lists) are converted one by one.
    """
    width = dimensions * 4
    picked: list[int] = []
    chunks: list[bytes] = []
    legacy: list[Vector] = []
    legacy_picked: list[int] = []
    for position, value in enumerate(stored):
        if isinstance(value, bytes):
            if len(value) == width:
                picked.append(position)
                chunks.append(value)
        else:
            vector = np.asarray(value, dtype=np.float32)
            if vector.shape == (dimensions,):
                legacy_picked.append(position)
                legacy.append(vector)
    # A read-only view of the joined bytes (no copy on little-endian machines): the index
    # copies it once into its own matrix.
    matrix = np.frombuffer(b"".join(chunks), dtype="<f4").reshape(len(chunks), dimensions)
    matrix = matrix.astype(np.float32, copy=False)
    if legacy:
        matrix = np.concatenate([matrix, np.stack(legacy)])
        picked += legacy_picked
    order = np.asarray(picked, dtype=np.intp)
    return LoadedBlock([ids[i] for i in picked], matrix, expires_at[order])


def epoch_array(moments: Sequence[datetime]) -> npt.NDArray[np.float64]:
    """Seconds since the epoch of naive UTC datetimes, as one array.

    (Six times faster than numpy's own ``datetime64`` conversion of Python datetimes.)
    """
    return np.fromiter(
        ((moment - _EPOCH).total_seconds() for moment in moments),
        dtype=np.float64,
        count=len(moments),
    )


def vector_bytes(vector: Vector) -> bytes:
    """A vector as stored in ``semantic_cache.vector``: little-endian float32."""
    return np.asarray(vector, dtype="<f4").tobytes()


def vector_of(stored: bytes | list[float]) -> Vector:
    """A stored vector (binary column or JSON list) as a float32 array."""
    if isinstance(stored, bytes | bytearray | memoryview):
        return np.frombuffer(bytes(stored), dtype="<f4").astype(np.float32)
    return np.asarray(stored, dtype=np.float32)


@cache
def _projection(dimensions: int) -> Vector:
    """A fixed (seeded) random orthogonal projection ``dimensions -> PROJECTED_DIMENSIONS``."""
    rng = np.random.default_rng(dimensions)
    basis, _ = np.linalg.qr(rng.standard_normal((dimensions, PROJECTED_DIMENSIONS)))
    # Scaled so that projected dot products estimate the cosine itself (not a quarter of it).
    scale = np.sqrt(dimensions / PROJECTED_DIMENSIONS)
    return np.ascontiguousarray(basis * scale, dtype=np.float32)


class VectorIndex:
    """The unit vectors of one scope, with their expiry times (seconds since the epoch)."""

    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}
        self._matrix: npt.NDArray[np.float32] = np.zeros(
            (_INITIAL_CAPACITY, dimensions), dtype=np.float32
        )
        self._expires: npt.NDArray[np.float64] = np.zeros(_INITIAL_CAPACITY, dtype=np.float64)
        self._uses_projection = dimensions > PROJECTED_DIMENSIONS
        self._projected: npt.NDArray[np.float32] = np.zeros(
            (_INITIAL_CAPACITY, PROJECTED_DIMENSIONS if self._uses_projection else 0),
            dtype=np.float32,
        )
        # Ids removed while the index was loading, so the load does not bring them back.
        self._tombstones: set[str] = set()
        self.loading = False

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._rows

    @property
    def ids(self) -> list[str]:
        """The ids held, in row order (a copy)."""
        return list(self._ids)

    @property
    def nbytes(self) -> int:
        """Bytes held by the numpy arrays (capacity included)."""
        return self._matrix.nbytes + self._expires.nbytes + self._projected.nbytes

    def add(self, entry_id: str, vector: npt.ArrayLike, expires_at: float) -> None:
        """Insert or replace one entry."""
        row_vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if row_vector.shape[0] != self.dimensions:
            raise ValueError(f"vector has {row_vector.shape[0]} dimensions, not {self.dimensions}")
        self._tombstones.discard(entry_id)
        row = self._rows.get(entry_id)
        if row is None:
            row = len(self._ids)
            if row == self._matrix.shape[0]:
                self._grow()
            self._ids.append(entry_id)
            self._rows[entry_id] = row
        self._matrix[row] = row_vector
        self._expires[row] = expires_at
        if self._uses_projection:
            self._projected[row] = row_vector @ _projection(self.dimensions)

    def remove(self, entry_id: str) -> bool:
        """Drop one entry; returns whether it was held."""
        if self.loading:
            self._tombstones.add(entry_id)
        row = self._rows.pop(entry_id, None)
        if row is None:
            return False
        last = len(self._ids) - 1
        if row != last:
            moved = self._ids[last]
            self._ids[row] = moved
            self._rows[moved] = row
            self._matrix[row] = self._matrix[last]
            self._expires[row] = self._expires[last]
            self._projected[row] = self._projected[last]
        self._ids.pop()
        return True

    def merge_loaded(self, loaded: LoadedBlock | Iterable[LoadedRow]) -> None:
        """Add what the table held, except entries changed or removed since the load began."""
        block = (
            loaded
            if isinstance(loaded, LoadedBlock)
            else LoadedBlock.of_rows(loaded, self.dimensions)
        )
        keep = [
            position
            for position, entry_id in enumerate(block.ids)
            if entry_id not in self._rows and entry_id not in self._tombstones
        ]
        if keep and block.vectors.shape[1:] == (self.dimensions,):
            # One allocation, one copy and one projection for the whole load, not one per row.
            start = len(self._ids)
            end = start + len(keep)
            self._reserve(end)
            chosen = np.asarray(keep, dtype=np.intp)
            rows = block.vectors if len(keep) == len(block.ids) else block.vectors[chosen]
            self._matrix[start:end] = rows
            self._expires[start:end] = block.expires_at[chosen]
            if self._uses_projection:
                self._projected[start:end] = rows @ _projection(self.dimensions)
            fresh = [block.ids[position] for position in keep]
            self._ids.extend(fresh)
            self._rows.update(zip(fresh, range(start, end), strict=True))
        self._tombstones.clear()
        self.loading = False

    def search(self, vector: npt.ArrayLike, now: float) -> tuple[str | None, float | None]:
        """The nearest unexpired entry and its cosine similarity, or ``(None, None)``."""
        count = len(self._ids)
        if count == 0:
            return None, None
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        expired = self._expires[:count] <= now
        if count < PREFILTER_MIN_ROWS or not self._uses_projection:
            scores = self._matrix[:count] @ query
            scores[expired] = -np.inf
            best = int(np.argmax(scores))
            similarity = float(scores[best])
        else:
            coarse = self._projected[:count] @ (query @ _projection(self.dimensions))
            coarse[expired] = -np.inf
            top = coarse.max()
            if not np.isfinite(top):
                return None, None
            # Cheaper than a partition of every row: most rows are far below the best.
            candidates = np.flatnonzero(coarse >= top - PREFILTER_MARGIN)
            if candidates.size > CANDIDATES:
                nearest = np.argpartition(coarse[candidates], -CANDIDATES)[-CANDIDATES:]
                candidates = candidates[nearest]
            exact = self._matrix[candidates] @ query
            pick = int(np.argmax(exact))
            best = int(candidates[pick])
            similarity = float(exact[pick])
        if not np.isfinite(similarity):
            return None, None
        return self._ids[best], similarity

    def _grow(self) -> None:
        self._reserve(self._matrix.shape[0] + 1)

    def _reserve(self, rows: int) -> None:
        """Room for ``rows`` rows: capacity doubled until it fits, in one reallocation."""
        capacity = self._matrix.shape[0]
        if rows <= capacity:
            return
        while capacity < rows:
            capacity *= 2
        self._matrix = _resized(self._matrix, capacity)
        self._expires = _resized(self._expires, capacity)
        self._projected = _resized(self._projected, capacity)


def _resized(array: npt.NDArray[_G], rows: int) -> npt.NDArray[_G]:
    grown = np.zeros((rows, *array.shape[1:]), dtype=array.dtype)
    grown[: array.shape[0]] = array
    return grown


Loader = Callable[[], Awaitable[LoadedBlock | list[LoadedRow]]]


class IndexRegistry:
    """The loaded indexes of this node, at most ``max_scopes`` (least recently used dropped)."""

    def __init__(self, max_scopes: int) -> None:
        if max_scopes < 1:
            raise ValueError("max_scopes must be >= 1")
        self._max_scopes = max_scopes
        self._indexes: OrderedDict[ScopeId, VectorIndex] = OrderedDict()
        self._loads: dict[ScopeId, asyncio.Future[VectorIndex]] = {}
        self._where: dict[str, ScopeId] = {}

    def __len__(self) -> int:
        return len(self._indexes)

    @property
    def vectors(self) -> int:
        """Vectors held across every loaded scope."""
        return sum(len(index) for index in self._indexes.values())

    @property
    def nbytes(self) -> int:
        """Bytes held by every loaded index's arrays."""
        return sum(index.nbytes for index in self._indexes.values())

    def loaded(self, scope: ScopeId) -> VectorIndex | None:
        """The index of ``scope`` if it is loaded (or loading), else None."""
        return self._indexes.get(scope)

    async def get(self, scope: ScopeId, dimensions: int, loader: Loader) -> VectorIndex:
        """The index of ``scope``, loading it with ``loader`` on first use.

        Changes applied while the load runs are kept (the load does not undo them); concurrent
        callers share one load.
        """
        index = self._indexes.get(scope)
        if index is not None and not index.loading:
            self._indexes.move_to_end(scope)
            return index
        pending = self._loads.get(scope)
        if pending is not None:
            return await asyncio.shield(pending)
        index = VectorIndex(dimensions)
        index.loading = True
        self._indexes[scope] = index
        future: asyncio.Future[VectorIndex] = asyncio.get_running_loop().create_future()
        self._loads[scope] = future
        try:
            index.merge_loaded(await loader())
        except BaseException as exc:
            if self._indexes.get(scope) is index:
                self._drop(scope)
            future.set_exception(exc)
            # Retrieved here so a load nobody else waited for logs nothing at shutdown.
            future.exception()
            raise
        finally:
            if self._loads.get(scope) is future:
                del self._loads[scope]
        if self._indexes.get(scope) is index:
            for entry_id in index.ids:
                self._where[entry_id] = scope
            self._evict()
        future.set_result(index)
        return index

    def add(self, scope: ScopeId, entry_id: str, vector: npt.ArrayLike, expires_at: float) -> None:
        """Apply a committed insert or update (ignored when ``scope`` is not loaded)."""
        previous = self._where.get(entry_id)
        if previous is not None and previous != scope:
            self.remove(entry_id)
        index = self._indexes.get(scope)
        if index is None:
            return
        index.add(entry_id, vector, expires_at)
        self._where[entry_id] = scope

    def remove(self, entry_id: str) -> None:
        """Apply a committed delete (ignored when the entry's scope is not loaded)."""
        scope = self._where.pop(entry_id, None)
        if scope is not None:
            index = self._indexes.get(scope)
            if index is not None:
                index.remove(entry_id)
            return
        # An entry not yet seen may belong to a scope that is loading right now.
        for index in self._indexes.values():
            if index.loading:
                index.remove(entry_id)

    def drop_tenant(self, tenant_id: str) -> None:
        """Forget every loaded scope of one tenant (they reload from the table on next use)."""
        for scope in [scope for scope in self._indexes if scope[0] == tenant_id]:
            self._drop(scope)

    def clear(self) -> None:
        """Forget everything (after missed broker messages: the table is reloaded lazily)."""
        for scope in list(self._indexes):
            self._drop(scope)

    def _drop(self, scope: ScopeId) -> None:
        index = self._indexes.pop(scope, None)
        if index is None:
            return
        for entry_id in index.ids:
            if self._where.get(entry_id) == scope:
                del self._where[entry_id]

    def _evict(self) -> None:
        while len(self._indexes) > self._max_scopes:
            victim = next(
                (scope for scope, index in self._indexes.items() if not index.loading), None
            )
            if victim is None:
                return
            self._drop(victim)
