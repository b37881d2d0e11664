"""Tenant provider keys: sealed with Fernet, never shown, refused when no secret is configured."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from server.llm.endpoints import (
    EndpointConfigError,
    redact_tenant_llm,
    seal_tenant_llm,
    tenant_endpoint,
)
from server.llm.secrets import MIN_SECRET_LENGTH, SecretBox, SecretKeyMissing, SecretUnreadable

PASSPHRASE = "correct horse battery staple and long enough"


def test_round_trip_with_a_passphrase_and_with_a_fernet_key() -> None:
    for secret in (PASSPHRASE, Fernet.generate_key().decode()):
        box = SecretBox.from_setting(secret)
        token = box.encrypt("sk-live-123")
        assert "sk-live-123" not in token
        assert box.decrypt(token) == "sk-live-123"


def test_a_short_passphrase_is_refused() -> None:
    with pytest.raises(ValueError, match=str(MIN_SECRET_LENGTH)):
        SecretBox.from_setting("x" * (MIN_SECRET_LENGTH - 1))
    assert SecretBox.from_setting("x" * MIN_SECRET_LENGTH).available


def test_without_a_secret_nothing_is_stored_or_read() -> None:
    box = SecretBox.from_setting(None)
    assert not box.available
    with pytest.raises(SecretKeyMissing, match="PROMPT_STUDIO_SECRET_KEY"):
        box.encrypt("sk")
    with pytest.raises(SecretKeyMissing):
        box.decrypt("gAAAA")


def test_rotation_first_secret_encrypts_every_secret_decrypts() -> None:
    old = SecretBox.from_setting(PASSPHRASE)
    token = old.encrypt("sk-old")
    rotated = SecretBox.from_setting(f"{'n' * 40},{PASSPHRASE}")
    assert rotated.decrypt(token) == "sk-old"
    assert SecretBox.from_setting("n" * 40).decrypt(rotated.encrypt("sk-new")) == "sk-new"
    with pytest.raises(SecretUnreadable):
        SecretBox.from_setting("n" * 40).decrypt(token)


def test_a_corrupt_token_is_unreadable() -> None:
    with pytest.raises(SecretUnreadable):
        SecretBox.from_setting(PASSPHRASE).decrypt("not-a-token")


def test_seal_redact_and_read_back_a_tenant_endpoint() -> None:
    box = SecretBox.from_setting(PASSPHRASE)
    stored = seal_tenant_llm(
        {"baseUrl": "https://llm.example.com/v1/", "apiKey": " sk-t ", "models": ["a", "a", "b"]},
        box,
    )
    assert stored["baseUrl"] == "https://llm.example.com/v1"
    assert stored["models"] == ["a", "b"]
    assert "sk-t" not in repr(stored) and "apiKey" not in stored
    assert redact_tenant_llm(stored) == {
        "baseUrl": "https://llm.example.com/v1",
        "models": ["a", "b"],
        "hasApiKey": True,
    }
    endpoint = tenant_endpoint({"llm": stored, "maxUsers": 3}, box)
    assert endpoint is not None
    assert (endpoint.base_url, endpoint.api_key, endpoint.models) == (
        "https://llm.example.com/v1",
        "sk-t",
        ("a", "b"),
    )
    assert "sk-t" not in endpoint.identity


def test_omitted_key_is_kept_and_null_key_is_removed() -> None:
    box = SecretBox.from_setting(PASSPHRASE)
    first = seal_tenant_llm({"baseUrl": "http://127.0.0.1:9/v1", "apiKey": "sk-1"}, box)
    kept = seal_tenant_llm({"baseUrl": "http://127.0.0.1:9/v1"}, box, previous=first)
    assert kept["apiKeyEncrypted"] == first["apiKeyEncrypted"]
    removed = seal_tenant_llm({"baseUrl": "http://127.0.0.1:9/v1", "apiKey": None}, box, first)
    assert "apiKeyEncrypted" not in removed
    endpoint = tenant_endpoint({"llm": removed}, box)
    assert endpoint is not None and endpoint.api_key is None


def test_storing_a_key_without_a_secret_is_refused() -> None:
    with pytest.raises(SecretKeyMissing):
        seal_tenant_llm({"baseUrl": "https://x.example/v1", "apiKey": "sk"}, SecretBox([]))
    # Without a key, a base URL alone needs no secret (e.g. a local Ollama).
    stored = seal_tenant_llm({"baseUrl": "https://x.example/v1"}, SecretBox([]))
    assert redact_tenant_llm(stored)["hasApiKey"] is False


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"baseUrl": "ftp://x.example"}, "llm.baseUrl"),
        ({"baseUrl": "https://"}, "llm.baseUrl"),
        ({"baseUrl": "https://user:pw@x.example/v1"}, "llm.baseUrl"),
        ({"baseUrl": 5}, "llm.baseUrl"),
        ({"baseUrl": "https://x.example/" + "a" * 2000}, "llm.baseUrl"),
        ({"baseUrl": "https://x.example", "apiKey": ""}, "llm.apiKey"),
        ({"baseUrl": "https://x.example", "apiKey": 12}, "llm.apiKey"),
        ({"baseUrl": "https://x.example", "apiKey": "k" * 1001}, "llm.apiKey"),
        ({"baseUrl": "https://x.example", "models": "gpt"}, "llm.models"),
        ({"baseUrl": "https://x.example", "models": [""]}, "llm.models"),
        ({"baseUrl": "https://x.example", "models": ["m"] * 201}, "llm.models"),
        ({"baseUrl": "https://x.example", "extra": 1}, "llm.extra"),
    ],
)
def test_bad_tenant_llm_config_names_the_field(value: dict[str, object], field: str) -> None:
    with pytest.raises(EndpointConfigError) as caught:
        seal_tenant_llm(value, SecretBox.from_setting(PASSPHRASE))
    assert caught.value.field == field


def test_configs_without_an_endpoint() -> None:
    box = SecretBox.from_setting(PASSPHRASE)
    assert tenant_endpoint(None, box) is None
    assert tenant_endpoint({}, box) is None
    assert tenant_endpoint({"llm": "nonsense"}, box) is None
    assert tenant_endpoint({"llm": {"models": []}}, box) is None
