"""The provider registry a server process uses, built from its settings."""

from __future__ import annotations

from typing import Protocol

from server.llm.endpoints import Endpoint
from server.llm.registry import ProviderRegistry, RegistryOptions


class LlmSettings(Protocol):
    """The settings this needs (``server.settings.Settings`` has them)."""

    @property
    def llm_base_url(self) -> str | None: ...
    @property
    def llm_api_key(self) -> str | None: ...
    @property
    def llm_models(self) -> tuple[str, ...]: ...
    @property
    def llm_timeout_seconds(self) -> float: ...
    @property
    def llm_max_retries(self) -> int: ...
    @property
    def llm_models_ttl_seconds(self) -> float: ...
    @property
    def llm_models_cache_size(self) -> int: ...


def llm_registry(settings: LlmSettings) -> ProviderRegistry:
    """The registry for ``settings``: the server's endpoint when ``LLM_BASE_URL`` or
    ``LLM_API_KEY`` is set (a key alone means OpenAI itself), else only ``offline``."""
    default = None
    if settings.llm_base_url is not None or settings.llm_api_key is not None:
        default = Endpoint(settings.llm_base_url, settings.llm_api_key, settings.llm_models)
    options = RegistryOptions(
        timeout_seconds=settings.llm_timeout_seconds,
        max_retries=settings.llm_max_retries,
        models_ttl_seconds=settings.llm_models_ttl_seconds,
        models_cache_size=settings.llm_models_cache_size,
    )
    return ProviderRegistry(default, options)
