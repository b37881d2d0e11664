"""Where an OpenAI-compatible endpoint is, and a tenant's own endpoint inside its config.

A tenant may bring its own provider: ``tenants.config["llm"]`` holds
``{"baseUrl": "https://…/v1", "apiKeyEncrypted": "<Fernet token>", "models": ["…"]}``. The key
arrives in clear (``apiKey``) through the tenant API, is sealed here with the
:class:`~server.llm.secrets.SecretBox` before it is stored, and :func:`redact_tenant_llm` is what
any endpoint may show: the key never leaves the server, only whether one is set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from server.llm.secrets import SecretBox

TENANT_CONFIG_KEY = "llm"
MAX_URL_LENGTH = 2000
MAX_KEY_LENGTH = 1000
MAX_MODELS = 200
MAX_MODEL_NAME_LENGTH = 200


class EndpointConfigError(ValueError):
    """A tenant's ``llm`` config is malformed; ``field`` names the offending key."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An OpenAI-compatible endpoint; ``base_url=None`` is the SDK's default (OpenAI itself)."""

    base_url: str | None
    api_key: str | None
    #: The models it serves; empty means "ask its /models".
    models: tuple[str, ...] = ()

    @property
    def identity(self) -> str:
        """A stable key for caches that does not contain the API key itself."""
        material = f"{self.base_url or ''}\0{self.api_key or ''}".encode()
        return hashlib.sha256(material).hexdigest()


def parse_models(raw: str) -> tuple[str, ...]:
    """Model names from a comma-separated list (``LLM_MODELS``), blanks and repeats dropped."""
    return tuple(dict.fromkeys(name.strip() for name in raw.split(",") if name.strip()))


def validate_base_url(value: object, *, field: str = "llm.baseUrl") -> str:
    """An http(s) URL with a host, without credentials, trailing slash removed."""
    if not isinstance(value, str) or not value.strip():
        raise EndpointConfigError("the base URL must be a non-empty string", field=field)
    url = value.strip()
    if len(url) > MAX_URL_LENGTH:
        raise EndpointConfigError(f"the base URL is longer than {MAX_URL_LENGTH}", field=field)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointConfigError("the base URL must be http(s)://host[:port]/path", field=field)
    if parts.username or parts.password:
        raise EndpointConfigError("put the key in apiKey, not in the URL", field=field)
    return url.rstrip("/")


def seal_tenant_llm(
    value: Mapping[str, object], box: SecretBox, previous: Mapping[str, object] | None = None
) -> dict[str, object]:
    """The ``llm`` entry to store from what a tenant admin sent.

    ``value`` is ``{"baseUrl", "apiKey"?, "models"?}``; an omitted ``apiKey`` keeps the stored
    one, ``"apiKey": null`` removes it. Raises :class:`EndpointConfigError` on bad input and
    :class:`~server.llm.secrets.SecretKeyMissing` when a key is sent but none can be sealed.
    """
    unknown = set(value) - {"baseUrl", "apiKey", "models"}
    if unknown:
        name = sorted(unknown)[0]
        raise EndpointConfigError(f"unknown key {name!r}", field=f"llm.{name}")
    stored: dict[str, object] = {"baseUrl": validate_base_url(value.get("baseUrl"))}
    models = value.get("models", [])
    if not isinstance(models, list) or len(models) > MAX_MODELS:
        raise EndpointConfigError(
            f"models must be a list of ≤ {MAX_MODELS} names", field="llm.models"
        )
    for name in models:
        if not isinstance(name, str) or not 0 < len(name.strip()) <= MAX_MODEL_NAME_LENGTH:
            raise EndpointConfigError(
                "every model name must be 1-200 characters", field="llm.models"
            )
    stored["models"] = list(dict.fromkeys(name.strip() for name in models))
    if "apiKey" in value:
        key = value["apiKey"]
        if key is not None:
            if not isinstance(key, str) or not 0 < len(key.strip()) <= MAX_KEY_LENGTH:
                raise EndpointConfigError("apiKey must be 1-1000 characters", field="llm.apiKey")
            stored["apiKeyEncrypted"] = box.encrypt(key.strip())
    elif previous is not None and isinstance(previous.get("apiKeyEncrypted"), str):
        stored["apiKeyEncrypted"] = previous["apiKeyEncrypted"]
    return stored


def redact_tenant_llm(stored: Mapping[str, object]) -> dict[str, object]:
    """What an endpoint may show of a stored ``llm`` entry: no key, only whether there is one."""
    return {
        "baseUrl": stored.get("baseUrl"),
        "models": list(stored.get("models") or []),  # type: ignore[call-overload]
        "hasApiKey": isinstance(stored.get("apiKeyEncrypted"), str),
    }


def tenant_endpoint(config: Mapping[str, object] | None, box: SecretBox) -> Endpoint | None:
    """The tenant's own endpoint from its config, the key decrypted; None when it has none."""
    if not config:
        return None
    stored = config.get(TENANT_CONFIG_KEY)
    if not isinstance(stored, Mapping) or not isinstance(stored.get("baseUrl"), str):
        return None
    token = stored.get("apiKeyEncrypted")
    api_key = box.decrypt(token) if isinstance(token, str) else None
    models = stored.get("models")
    names = (
        tuple(name for name in models if isinstance(name, str)) if isinstance(models, list) else ()
    )
    return Endpoint(base_url=stored["baseUrl"], api_key=api_key, models=names)
