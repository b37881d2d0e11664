"""Errors of the semantic cache; the API layer maps each to one status."""

from __future__ import annotations


class CacheError(Exception):
    """Base of the cache's errors."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidCacheConfig(CacheError):
    """A configuration value or invalidation rule is out of range (HTTP 422)."""


class EntryNotFound(CacheError):
    """No such entry for this tenant (HTTP 404; also for another tenant's entry)."""
