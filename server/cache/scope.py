"""Scope keys: which cached answers may answer which request.

A cached answer is reused only for the same tenant, model, temperature, ``max_tokens`` and the
same non-user sections (system, developer, context); only the user text varies, and only it is
embedded. :class:`CacheScope` carries those values and derives the key stored on each entry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

#: The sections that key a cache entry (the user section is what gets compared instead).
KEYED_SECTIONS = ("system", "developer", "context")


def sections_hash(sections: Mapping[str, object] | None) -> str:
    """A stable hash of the keyed sections of ``sections`` (missing or empty ones count as "").

    Pass the rendered sections for a scope, or a prompt version's unrendered sections for
    :func:`server.cache.retire.retire_for_sections`.
    """
    values = {}
    for name in KEYED_SECTIONS:
        value = (sections or {}).get(name)
        values[name] = value if isinstance(value, str) else ""
    canonical = json.dumps(values, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def keyed_sections(sections: Mapping[str, object] | None) -> dict[str, str]:
    """The keyed sections of ``sections`` that are non-empty strings (what a refresh re-sends)."""
    return {
        name: value
        for name in KEYED_SECTIONS
        if isinstance(value := (sections or {}).get(name), str) and value
    }


def prompt_hash(user_text: str) -> str:
    """The exact-match key of a user text (hex SHA-256 of its UTF-8 bytes)."""
    return hashlib.sha256(user_text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class CacheScope:
    """Everything besides the user text that must match for a cached answer to be reused."""

    tenant_id: str
    model: str
    temperature: float
    max_tokens: int | None
    #: :func:`sections_hash` of the rendered system/developer/context sections.
    sections_hash: str

    @property
    def temperature_x100(self) -> int:
        """The temperature as stored (``runs.temperature`` convention): x100, rounded."""
        return round(self.temperature * 100)

    @property
    def key(self) -> str:
        """The scope key stored on each entry: a hash of model, settings and sections.

        The tenant is a column of its own (every query filters on it), so it is not hashed.
        """
        canonical = json.dumps(
            [self.model, self.temperature_x100, self.max_tokens, self.sections_hash],
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]
