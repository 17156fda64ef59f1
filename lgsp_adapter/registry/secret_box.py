"""Secrets the daemon must be able to use again, kept sealed: the axis systems' HMAC keys.

A bearer token is checked against its digest, but an HMAC can only be checked with the secret
itself, so the registry cannot keep a mere hash of it. Such secrets are sealed (Fernet:
AES-CBC with an HMAC, from ``cryptography``) with a key kept in a file beside the store rather
than in it, so a copy of the store (a backup, a dump, a replica's disk) does not give them away.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from lgsp_adapter.audit.key_file import create_private, read_private
from lgsp_adapter.errors import ErrorCode, FatalError, PermanentError


class SecretBox:
    """Seals and opens secrets with one key."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        try:
            self._fernet = Fernet(key)
        except ValueError as exc:
            raise FatalError(
                ErrorCode.CONFIG_INVALID, "the secret box's key is not a Fernet key"
            ) from exc

    @classmethod
    def at(cls, path: Path) -> SecretBox:
        """The box whose key is in ``path``, made there (readable by its owner only) when there
        is none yet; refused when others may read it."""
        if not os.path.lexists(path):
            key = Fernet.generate_key()
            if create_private(path, key + b"\n"):
                return cls(key)
        return cls(_read_key(path))

    @classmethod
    def existing(cls, path: Path) -> SecretBox:
        """The box whose key is in ``path``, which must be there already (a command beside a
        daemon: a key it made would seal what the daemon cannot open)."""
        if not os.path.lexists(path):
            raise FatalError(
                ErrorCode.CONFIG_INVALID,
                f"no key file at {path}: give [axis] secret_key the daemon's key file",
            )
        return cls(_read_key(path))

    def derived(self, purpose: str) -> SecretBox:
        """A box of its own for ``purpose`` (bearer tokens, say), its key derived from this
        one's: what it seals does not open here, nor what this one seals there, and every
        daemon with the same key file derives the same."""
        raw = base64.urlsafe_b64decode(self._key)
        derived = hmac.new(raw, purpose.encode("utf-8"), hashlib.sha256).digest()
        return SecretBox(base64.urlsafe_b64encode(derived))

    def seal(self, secret: str) -> str:
        """``secret`` sealed, as text to store; sealing the same secret twice differs."""
        return self._fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def open(self, sealed: str, *, max_age_s: int | None = None) -> str:
        """The secret ``seal`` sealed; ``registry.invalid`` when another key sealed it, the
        text was changed (the store and its key file do not belong together), or it was sealed
        more than ``max_age_s`` ago."""
        try:
            return self._fernet.decrypt(sealed.encode("ascii"), ttl=max_age_s).decode("utf-8")
        except (InvalidToken, UnicodeError) as exc:
            raise PermanentError(
                ErrorCode.REGISTRY_INVALID,
                "a sealed secret does not open with this key: sealed with another key file, "
                "or changed since",
            ) from exc


def _read_key(path: Path) -> bytes:
    key = read_private(path, "the secret box's key").strip()
    try:
        Fernet(key)
    except ValueError as exc:
        raise FatalError(
            ErrorCode.CONFIG_INVALID, f"{path} does not hold a secret box key (damaged?)"
        ) from exc
    return key
