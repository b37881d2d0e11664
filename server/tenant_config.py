"""A tenant's ``config`` document: merging an update into it and showing it safely.

The document has the schema doc's keys (``maxUsers``, ``features``, ``theme``, ``quotas``) plus
``llm`` (the tenant's own provider: its key is sealed before it is stored and never shown).
An update replaces the keys it names; a key set to ``null`` is removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.llm.endpoints import TENANT_CONFIG_KEY, redact_tenant_llm, seal_tenant_llm
from server.llm.secrets import SecretBox


def merged_config(
    stored: Mapping[str, Any] | None, update: Mapping[str, Any], box: SecretBox
) -> dict[str, Any]:
    """The config after applying ``update`` (already validated) to ``stored``.

    Raises :class:`server.llm.endpoints.EndpointConfigError` or
    :class:`server.llm.secrets.SecretKeyMissing` for an ``llm`` entry that cannot be stored.
    """
    config = dict(stored or {})
    for key, value in update.items():
        if value is None:
            config.pop(key, None)
        elif key == TENANT_CONFIG_KEY:
            previous = config.get(TENANT_CONFIG_KEY)
            config[key] = seal_tenant_llm(
                value, box, previous if isinstance(previous, Mapping) else None
            )
        else:
            config[key] = value
    return config


def visible_config(stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """The config as an endpoint may show it: the provider key replaced by ``hasApiKey``."""
    config = dict(stored or {})
    llm = config.get(TENANT_CONFIG_KEY)
    if isinstance(llm, Mapping):
        config[TENANT_CONFIG_KEY] = redact_tenant_llm(llm)
    return config


def max_users(stored: Mapping[str, Any] | None) -> int | None:
    """The tenant's ``maxUsers`` limit, if it has one."""
    value = (stored or {}).get("maxUsers")
    return value if isinstance(value, int) and not isinstance(value, bool) else None
