"""The run service over a process's resources (built per request; it holds no state)."""

from __future__ import annotations

from server.runs.live import HubDocuments
from server.runs.service import RunLimits, RunService
from server.services import Services


def run_service(services: Services) -> RunService:
    """A :class:`RunService` using the process's sessions, registry, hub and cache."""
    settings = services.settings
    return RunService(
        sessions=services.sessions,
        registry=services.llm,
        secrets=services.secrets,
        live=HubDocuments(services.hub),
        cache=services.cache,
        leases=services.run_leases,
        limits=RunLimits(
            max_text_chars=settings.prompt_max_text_chars,
            compare_max_targets=settings.run_compare_max_targets,
            stream_queue_size=settings.run_stream_queue_size,
        ),
    )
