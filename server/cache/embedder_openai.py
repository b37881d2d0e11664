"""An embedder on an OpenAI-compatible ``/embeddings`` endpoint (OpenAI, vLLM, Ollama, LiteLLM).

Uses the official ``openai`` SDK, which retries with backoff and honours ``Retry-After``; any
failure becomes :class:`~server.cache.embedders.EmbeddingError` (the cache then treats the
lookup as a miss rather than failing the run).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import openai

from server.cache.embedders import EmbeddingError, Vectors, normalize_rows


class OpenAIEmbedder:
    """Embeddings from ``{base_url}/embeddings`` with one model."""

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None,
        api_key: str | None,
        timeout_seconds: float = 10.0,
        max_retries: int = 2,
    ) -> None:
        self.name = f"openai:{model}"
        # Learned from the first answer; every later answer must match it.
        self.dimensions = 0
        self._model = model
        # A local endpoint may need no key; the SDK insists on one, so send a placeholder.
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or "unused",
            timeout=timeout_seconds,
            max_retries=max_retries,
        )

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """One unit row per text; raises :class:`EmbeddingError` on any endpoint failure."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        try:
            answer = await self._client.embeddings.create(
                model=self._model, input=list(texts), encoding_format="float"
            )
        except openai.OpenAIError as exc:
            raise EmbeddingError(f"the embeddings endpoint failed: {exc}") from exc
        except ValueError as exc:
            # The SDK lets an unparsable body through as a JSON (or validation) error.
            raise EmbeddingError(f"the embeddings endpoint sent a malformed answer: {exc}") from exc
        rows = sorted(answer.data, key=lambda item: item.index)
        if len(rows) != len(texts):
            raise EmbeddingError(
                f"the embeddings endpoint returned {len(rows)} vectors for {len(texts)} texts"
            )
        vectors = [row.embedding for row in rows]
        expected = self.dimensions or len(vectors[0])
        if expected == 0 or any(len(vector) != expected for vector in vectors):
            raise EmbeddingError("the embeddings endpoint returned vectors of differing lengths")
        matrix = normalize_rows(vectors)
        if not np.isfinite(matrix).all():
            raise EmbeddingError("the embeddings endpoint returned non-finite numbers")
        self.dimensions = expected
        return matrix

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.close()
