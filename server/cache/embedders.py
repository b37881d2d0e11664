"""Embedders: turn user texts into unit vectors the index compares by cosine similarity.

Every embedder has a ``name`` recorded on each entry it embedded; the index never compares
vectors of different names (a vector means nothing in another model's space).

* :class:`WordLlamaEmbedder` - the default: WordLlama's ``l2_supercat`` 256-d static embeddings,
  whose weights and tokenizer ship inside the ``wordllama`` wheel. Loaded from the installed
  package with downloads disabled, so it works offline and never fetches anything.
* :class:`HashingEmbedder` - feature hashing of words and word pairs: no model, for tests.
* :class:`~server.cache.embedder_openai.OpenAIEmbedder` - an OpenAI-compatible ``/embeddings``
  endpoint.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from wordllama.inference import WordLlamaInference

Vectors = npt.NDArray[np.float32]
"""A ``(n, dimensions)`` float32 matrix of unit rows (all-zero rows for texts with no content)."""


class EmbeddingError(Exception):
    """The embedder could not embed the texts (a model that failed to load, an endpoint down)."""


class Embedder(Protocol):
    """Embeds texts into unit vectors."""

    #: Recorded on each entry; entries of another name are never compared.
    name: str
    #: Length of each vector.
    dimensions: int

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """One unit row per text, in order."""
        ...


def normalize_rows(matrix: npt.ArrayLike) -> Vectors:
    """``matrix`` as float32 with each row scaled to length 1 (all-zero rows stay zero)."""
    rows = np.array(matrix, dtype=np.float32, ndmin=2)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    np.divide(rows, norms, out=rows, where=norms > 0)
    return rows


_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    """Signed feature hashing of lower-cased words and adjacent word pairs.

    Deterministic and instant; texts sharing most words are close. Meant for tests and as a
    fallback that needs nothing at all, not for production-quality matching.
    """

    def __init__(self, dimensions: int = 256) -> None:
        if dimensions < 8:
            raise ValueError("dimensions must be >= 8")
        self.dimensions = dimensions
        self.name = f"hashing-{dimensions}"

    def embed_sync(self, texts: Sequence[str]) -> Vectors:
        """The vectors, computed on the calling thread."""
        matrix = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            words = [word.lower() for word in _WORD.findall(text)]
            features = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
            for feature in features:
                digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                sign = 1.0 if value & 1 else -1.0
                matrix[row, (value >> 1) % self.dimensions] += sign
        return normalize_rows(matrix)

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """The vectors (cheap enough to compute on the event loop)."""
        return self.embed_sync(texts)


#: WordLlama's model config whose weights the wheel ships.
WORDLLAMA_CONFIG = "l2_supercat"
WORDLLAMA_DIMENSIONS = 256


def wordllama_package_dir() -> Path:
    """The installed ``wordllama`` package folder (holds ``weights/`` and ``tokenizers/``)."""
    import wordllama

    return Path(wordllama.__file__).resolve().parent


class WordLlamaEmbedder:
    """WordLlama ``l2_supercat`` 256-d embeddings from the weights inside the wheel.

    The model (16 MB of weights) loads on first use, in a worker thread; embedding one short
    text takes about a tenth of a millisecond, so it runs on the calling thread.
    """

    name = f"wordllama-{WORDLLAMA_CONFIG}-{WORDLLAMA_DIMENSIONS}"
    dimensions = WORDLLAMA_DIMENSIONS

    def __init__(self) -> None:
        self._model: WordLlamaInference | None = None
        self._lock = asyncio.Lock()

    def load_sync(self) -> WordLlamaInference:
        """Load the model now (idempotent); raises :class:`EmbeddingError` if it cannot."""
        if self._model is None:
            try:
                from wordllama import WordLlama

                self._model = WordLlama.load(
                    config=WORDLLAMA_CONFIG,
                    cache_dir=wordllama_package_dir(),
                    dim=WORDLLAMA_DIMENSIONS,
                    disable_download=True,
                )
            except (ImportError, OSError, ValueError) as exc:
                raise EmbeddingError(f"cannot load the WordLlama model: {exc}") from exc
        return self._model

    def embed_sync(self, texts: Sequence[str]) -> Vectors:
        """The vectors, computed on the calling thread (loads the model if needed)."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        model = self.load_sync()
        return normalize_rows(model.embed(list(texts), norm=False))

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """The vectors; the first call loads the model in a worker thread."""
        if self._model is None:
            async with self._lock:
                if self._model is None:
                    await asyncio.to_thread(self.load_sync)
        return self.embed_sync(texts)
