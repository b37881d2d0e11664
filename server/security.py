"""Secrets: generating login tokens, share tokens and API keys, and hashing them for storage."""

from __future__ import annotations

import hashlib
import secrets

# 32 random bytes = 256 bits, URL-safe base64 without padding.
_TOKEN_BYTES = 32


def new_login_token() -> str:
    """A fresh login-session token (256 random bits)."""
    return "pst_" + secrets.token_urlsafe(_TOKEN_BYTES)


def new_api_key() -> str:
    """A fresh tenant API key (256 random bits)."""
    return "psk_" + secrets.token_urlsafe(_TOKEN_BYTES)


def new_share_token() -> str:
    """A fresh collaboration share token (192 random bits, short enough for a link)."""
    return secrets.token_urlsafe(24)


def hash_secret(secret: str) -> str:
    """The stored form of a token or key: SHA-256 hex.

    Tokens are 256-bit random values, so a fast unsalted hash is enough (no dictionary to attack)
    and lets the server look a token up by its hash in one indexed query.
    """
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
