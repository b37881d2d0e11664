"""Encryption of tenants' provider keys at rest (Fernet, keyed by ``PROMPT_STUDIO_SECRET_KEY``).

A tenant's own LLM API key must be read back to call its provider, so it is encrypted rather than
hashed. ``PROMPT_STUDIO_SECRET_KEY`` is either a Fernet key (``Fernet.generate_key()``) or any
passphrase of at least :data:`MIN_SECRET_LENGTH` characters, stretched with HKDF-SHA256. Several
comma-separated secrets rotate keys: the first encrypts, every one decrypts. With no secret
configured, storing a key is refused with :class:`SecretKeyMissing` — never stored in clear.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

#: A passphrase shorter than this is refused: it would be guessable offline from a database dump.
MIN_SECRET_LENGTH = 32
_HKDF_INFO = b"prompt-studio tenant provider keys v1"


class SecretsError(Exception):
    """Base of the secret box's errors."""


class SecretKeyMissing(SecretsError):
    """No ``PROMPT_STUDIO_SECRET_KEY`` is configured, so keys can be neither stored nor read."""

    def __init__(self) -> None:
        super().__init__(
            "PROMPT_STUDIO_SECRET_KEY is not set: tenant provider keys cannot be stored or used"
        )


class SecretUnreadable(SecretsError):
    """A stored secret was encrypted with a key that is no longer configured, or is corrupt."""


def fernet_key_of(secret: str) -> bytes:
    """The Fernet key a configured secret stands for (itself, or derived from a passphrase)."""
    raw = secret.strip()
    try:
        if len(base64.urlsafe_b64decode(raw.encode("ascii"))) == 32 and len(raw) == 44:
            return raw.encode("ascii")
    except (binascii.Error, UnicodeEncodeError, ValueError):
        pass
    if len(raw) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"a secret key must be a Fernet key or at least {MIN_SECRET_LENGTH} characters"
        )
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        raw.encode("utf-8")
    )
    return base64.urlsafe_b64encode(derived)


class SecretBox:
    """Encrypts and decrypts short secrets with the configured key(s)."""

    def __init__(self, secrets: Sequence[str]) -> None:
        keys = [fernet_key_of(secret) for secret in secrets if secret.strip()]
        self._fernet = MultiFernet([Fernet(key) for key in keys]) if keys else None

    @classmethod
    def from_setting(cls, value: str | None) -> SecretBox:
        """A box from the ``PROMPT_STUDIO_SECRET_KEY`` value (comma-separated for rotation)."""
        return cls((value or "").split(","))

    @property
    def available(self) -> bool:
        """True when a secret key is configured."""
        return self._fernet is not None

    def encrypt(self, plaintext: str) -> str:
        """The token to store for ``plaintext``."""
        if self._fernet is None:
            raise SecretKeyMissing()
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The plaintext of a stored token."""
        if self._fernet is None:
            raise SecretKeyMissing()
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError) as error:
            raise SecretUnreadable(
                "a stored provider key cannot be decrypted with PROMPT_STUDIO_SECRET_KEY "
                "(was the key rotated without keeping the old one?)"
            ) from error
