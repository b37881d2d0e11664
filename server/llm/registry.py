"""Which provider serves a model.

- ``offline`` is always served, by the built-in :class:`~server.llm.offline.OfflineProvider`.
- A tenant with its own endpoint (``tenants.config["llm"]``) is served by that endpoint only: its
  key pays, and the server's endpoint is never used on its behalf.
- Otherwise the server's endpoint (``LLM_BASE_URL`` / ``LLM_API_KEY``) serves the models listed
  in ``LLM_MODELS``, or, when that is empty, whatever its ``/models`` lists (cached for
  ``PROMPT_STUDIO_LLM_MODELS_TTL_SECONDS``).

A model nobody serves is :class:`~server.llm.base.UnknownModel`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from server.llm.base import Provider, UnknownModel
from server.llm.endpoints import Endpoint
from server.llm.offline import OFFLINE_MODEL, OfflineProvider

if TYPE_CHECKING:
    from server.llm.openai_provider import OpenAICompatibleProvider

Source = Literal["offline", "server", "tenant"]


@dataclass(frozen=True, slots=True)
class RegistryOptions:
    """Client behaviour shared by every endpoint (each a ``PROMPT_STUDIO_LLM_…`` setting)."""

    timeout_seconds: float = 60.0
    max_retries: int = 2
    models_ttl_seconds: float = 300.0
    #: Endpoints whose /models answer is remembered at once (least recently used dropped).
    models_cache_size: int = 256


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model a caller may run, and who serves it."""

    name: str
    provider: str
    source: Source


class ProviderRegistry:
    """Resolves a model name (and the caller's tenant endpoint) to a provider."""

    def __init__(
        self,
        default: Endpoint | None,
        options: RegistryOptions | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.default = default
        self.options = options or RegistryOptions()
        self.offline = OfflineProvider()
        self._clock = clock
        self._shared: OpenAICompatibleProvider | None = None
        self._listed: OrderedDict[str, tuple[float, tuple[str, ...]]] = OrderedDict()

    async def aclose(self) -> None:
        """Close the shared client of the server's endpoint."""
        if self._shared is not None:
            await self._shared.aclose()
            self._shared = None

    @asynccontextmanager
    async def provider_for(
        self, model: str, tenant: Endpoint | None = None
    ) -> AsyncIterator[Provider]:
        """The provider that serves ``model`` for a caller, open for the ``async with`` block.

        A tenant endpoint's client lives only for the block; the server's is shared.
        """
        if model == OFFLINE_MODEL:
            yield self.offline
            return
        if tenant is not None:
            async with self._client(tenant) as provider:
                if model not in await self._served(tenant, provider):
                    raise UnknownModel(f"model {model!r} is not served by this tenant's endpoint")
                yield provider
            return
        if self.default is None:
            raise UnknownModel(
                f"model {model!r} is not available: no LLM endpoint is configured (LLM_BASE_URL), "
                f"only {OFFLINE_MODEL!r}"
            )
        provider = self._default_provider()
        if model not in await self._served(self.default, provider):
            raise UnknownModel(f"model {model!r} is not served by the configured LLM endpoint")
        yield provider

    async def ensure_served(self, model: str, tenant: Endpoint | None = None) -> None:
        """Raise :class:`UnknownModel` unless ``model`` is served for this caller."""
        async with self.provider_for(model, tenant):
            pass

    async def shared(self, model: str) -> Provider:
        """A provider for background work not tied to a tenant (``offline`` or the server's).

        Unlike :meth:`provider_for` it stays open until :meth:`aclose`; a tenant's own
        endpoint is never used here.
        """
        if model == OFFLINE_MODEL:
            return self.offline
        if self.default is None:
            raise UnknownModel(f"model {model!r} is not available: no LLM endpoint is configured")
        provider = self._default_provider()
        if model not in await self._served(self.default, provider):
            raise UnknownModel(f"model {model!r} is not served by the configured LLM endpoint")
        return provider

    async def models(self, tenant: Endpoint | None = None) -> list[ModelInfo]:
        """Every model the caller may run: ``offline`` first, then the endpoint's, sorted."""
        found = [ModelInfo(OFFLINE_MODEL, self.offline.name, "offline")]
        if tenant is not None:
            async with self._client(tenant) as provider:
                names = await self._served(tenant, provider)
            found += [ModelInfo(name, provider.name, "tenant") for name in sorted(names)]
        elif self.default is not None:
            shared = self._default_provider()
            names = await self._served(self.default, shared)
            found += [ModelInfo(name, shared.name, "server") for name in sorted(names)]
        return found

    def _default_provider(self) -> OpenAICompatibleProvider:
        assert self.default is not None
        if self._shared is None:
            self._shared = self._new_provider(self.default)
        return self._shared

    @asynccontextmanager
    async def _client(self, endpoint: Endpoint) -> AsyncIterator[OpenAICompatibleProvider]:
        provider = self._new_provider(endpoint)
        try:
            yield provider
        finally:
            await provider.aclose()

    def _new_provider(self, endpoint: Endpoint) -> OpenAICompatibleProvider:
        # Imported on first use: the openai package costs ~0.3 s of every start-up, and a
        # server without an LLM endpoint never needs it.
        from server.llm.openai_provider import OpenAICompatibleProvider

        return OpenAICompatibleProvider(
            base_url=endpoint.base_url,
            api_key=endpoint.api_key,
            timeout_seconds=self.options.timeout_seconds,
            max_retries=self.options.max_retries,
        )

    async def _served(self, endpoint: Endpoint, provider: Provider) -> frozenset[str]:
        if endpoint.models:
            return frozenset(endpoint.models)
        key = endpoint.identity
        now = self._clock()
        cached = self._listed.get(key)
        if cached is not None and now - cached[0] < self.options.models_ttl_seconds:
            self._listed.move_to_end(key)
            return frozenset(cached[1])
        names = tuple(await provider.list_models())
        self._listed[key] = (now, names)
        self._listed.move_to_end(key)
        while len(self._listed) > self.options.models_cache_size:
            self._listed.popitem(last=False)
        return frozenset(names)
