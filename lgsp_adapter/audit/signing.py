"""The log's Ed25519 key, and signed notes in the C2SP ``signed-note`` format.

Checkpoints are signed notes (c2sp.org/signed-note, the format of Go's checksum database and
of the transparency-dev tools), so an auditor can check ours with software we did not write.
A note is UTF-8 text ending in a newline, a blank line, then one line per signature:
``— <key name> <base64(key id || signature)>``, where the key id is the first four bytes of
``SHA-256(name || "\\n" || 0x01 || public key)`` and the signature covers the text.
The private key lives in a PEM file readable by its owner only; it is made at first use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lgsp_adapter.audit.key_file import create_private, read_private
from lgsp_adapter.errors import ErrorCode, FatalError

_ED25519 = b"\x01"  # the signed-note algorithm byte for Ed25519
_DASH = "\u2014"  # the em dash that starts a signature line


class NoteError(ValueError):
    """A note that is malformed or not signed by the expected key."""


def key_id(name: str, kind: bytes, public_key: bytes) -> bytes:
    """The four bytes that tie a signature line to a key: ``SHA-256(name || "\\n" || kind ||
    key)``, ``kind`` the signed-note key type (0x01 Ed25519 notes, 0x04 witness cosignatures)."""
    return hashlib.sha256(name.encode() + b"\n" + kind + public_key).digest()[:4]


def encode_key(name: str, kind: bytes, public_key: bytes) -> str:
    """``name+hexid+base64(kind || key)``: a verifier key string of signed-note tools."""
    encoded = base64.b64encode(kind + public_key).decode()
    return f"{name}+{key_id(name, kind, public_key).hex()}+{encoded}"


def parse_key(text: str, kind: bytes) -> tuple[str, bytes]:
    """The name and raw Ed25519 key of a verifier key string of type ``kind``; ``NoteError``
    naming the fault if it is not one."""
    name, _, rest = text.strip().partition("+")
    hex_id, _, key = rest.partition("+")
    try:
        raw = base64.b64decode(key, validate=True)
    except binascii.Error as exc:
        raise NoteError("the verifier key is not base64") from exc
    if not name or any(c.isspace() for c in name) or len(raw) != 33:
        raise NoteError("not an Ed25519 verifier key (name+id+base64)")
    if raw[:1] != kind:
        raise NoteError(f"not a key of type 0x{kind.hex()}: its type byte is 0x{raw[:1].hex()}")
    if key_id(name, kind, raw[1:]).hex() != hex_id:
        raise NoteError("the verifier key's id does not match its name and key")
    return name, raw[1:]


def split_note(note: str) -> tuple[str, list[str]]:
    """A signed note's text (with its final newline: what its signatures cover) and its
    signature lines."""
    text, separator, lines = note.rpartition("\n\n")
    if not separator or not text:
        raise NoteError("not a signed note: no blank line before the signatures")
    return text + "\n", lines.splitlines()


@dataclass(frozen=True)
class Verifier:
    """A public key under a name: what an auditor needs to check our checkpoints."""

    name: str
    public_key: bytes  # 32 raw Ed25519 bytes

    @property
    def key_id(self) -> bytes:
        """The four bytes that tie a signature line to this key."""
        return key_id(self.name, _ED25519, self.public_key)

    def encoded(self) -> str:
        """``name+hexid+base64key``: the verifier key string of signed-note tools."""
        return encode_key(self.name, _ED25519, self.public_key)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the raw public key, hex: to compare by phone or on paper."""
        return hashlib.sha256(self.public_key).hexdigest()

    @classmethod
    def parse(cls, text: str) -> Verifier:
        """Read a verifier key string; ``NoteError`` if it is not one."""
        return cls(*parse_key(text, _ED25519))

    @property
    def verifiers(self) -> tuple[Verifier, ...]:
        """This key alone (a ``Keyring`` has several)."""
        return (self,)

    def trusts(self, other: Verifier) -> bool:
        """Whether ``other`` is this key."""
        return other == self

    def signed(self, data: bytes, signature: bytes) -> bool:
        """Whether this key signed ``data`` (a raw signature, as in archive files)."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, data)
        except InvalidSignature:
            return False
        return True

    def open(self, note: str) -> str:
        """The text of ``note`` if this key signed it; ``NoteError`` naming the fault if not."""
        text, separator, signatures = note.rpartition("\n\n")
        if not separator or not text:
            raise NoteError("not a signed note: no blank line before the signatures")
        text += "\n"
        found = False
        for line in signatures.splitlines():
            parts = line.split(" ")
            if len(parts) != 3 or parts[0] != _DASH:
                raise NoteError(f"malformed signature line: {line!r}")
            if parts[1] != self.name:
                continue
            try:
                blob = base64.b64decode(parts[2], validate=True)
            except binascii.Error as exc:
                raise NoteError("a signature is not base64") from exc
            if blob[:4] != self.key_id:
                continue
            found = True
            try:
                Ed25519PublicKey.from_public_bytes(self.public_key).verify(blob[4:], text.encode())
            except InvalidSignature as exc:
                raise NoteError(f"the signature by {self.name} does not verify") from exc
            return text
        raise NoteError(
            f"not signed by {self.name} ({self.key_id.hex()})"
            + ("" if found else ": no signature with that key")
        )


@dataclass(frozen=True)
class Keyring:
    """The keys a log has been signed with over its life, oldest first: a rotated key's
    checkpoints, archives and bundles still verify beside the new one's."""

    verifiers: tuple[Verifier, ...]

    def trusts(self, other: Verifier) -> bool:
        """Whether ``other`` is one of these keys."""
        return other in self.verifiers

    @property
    def fingerprint(self) -> str:
        """The keys' fingerprints, for messages."""
        return ", ".join(v.fingerprint for v in self.verifiers)


Trusted = Verifier | Keyring
"""What a check accepts signatures from: one key, or a log's keys over its life."""


def signature_names(note: str) -> list[str]:
    """The names ``note``'s signature lines claim, in order (for messages: unchecked)."""
    return [line.split(" ")[1] for line in split_note(note)[1] if line.count(" ") == 2]


def signed_last_by(note: str, verifier: Verifier) -> bool:
    """Whether ``verifier`` made ``note``'s last signature: the key that signs from there on
    (a rotation's successor signs its hand-over after the retiring key)."""
    try:
        return signature_keys(note, verifier)[-1:] == [verifier]
    except NoteError:
        return False


def signature_keys(note: str, trusted: Trusted) -> list[Verifier | None]:
    """Who made each of ``note``'s signature lines, in order: the trusted key whose signature
    it is and verifies, or None (an unknown key, or a signature that does not verify). A
    rotation's hand-over is signed by the retiring key, then by its successor."""
    text, lines = split_note(note)
    found: list[Verifier | None] = []
    for line in lines:
        signer = None
        for verifier in trusted.verifiers:
            try:
                verifier.open(f"{text}\n{line}\n")
            except NoteError:
                continue
            signer = verifier
            break
        found.append(signer)
    return found


class LogKey:
    """The private key that signs checkpoints and archives."""

    def __init__(self, name: str | None, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        raw = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        # Without a configured name, one derived from the key itself: the same wherever the key
        # goes (a new container, the CLI on another host), unlike a host name.
        self.name = name or f"lgsp-adapter/{hashlib.sha256(raw).hexdigest()[:16]}"
        self.verifier = Verifier(self.name, raw)

    @classmethod
    def generate(cls, name: str | None) -> LogKey:
        """A new key (tests, and the first start of a daemon)."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path, name: str | None) -> LogKey:
        """The key in ``path``; ``FatalError`` if there is none (read-only commands)."""
        if not path.is_file():
            raise FatalError(
                ErrorCode.CONFIG_INVALID,
                f"no audit signing key at {path} (the daemon makes it at its first start)",
            )
        return cls.load_or_create(path, name)

    @classmethod
    def load_or_create(cls, path: Path, name: str | None) -> LogKey:
        """The key in ``path`` (PEM, PKCS#8), made there with mode 0600 if there is none."""
        try:
            if not os.path.lexists(path):
                cls.generate(name).save(path)
        except FileExistsError:
            pass  # another process made it first: theirs is the key
        except OSError as exc:
            raise FatalError(
                ErrorCode.CONFIG_INVALID, f"cannot make the audit signing key {path}: {exc}"
            ) from exc
        try:
            loaded = serialization.load_pem_private_key(
                read_private(path, "the audit signing key"), password=None
            )
        except ValueError as exc:
            raise FatalError(
                ErrorCode.CONFIG_INVALID, f"cannot use the audit signing key {path}: {exc}"
            ) from exc
        if not isinstance(loaded, Ed25519PrivateKey):
            raise FatalError(ErrorCode.CONFIG_INVALID, f"{path} is not an Ed25519 private key")
        return cls(name, loaded)

    def sign(self, data: bytes) -> bytes:
        """A raw Ed25519 signature of ``data``."""
        return self._key.sign(data)

    def cosign(self, note: str) -> str:
        """``note`` (signed by another key) with this key's signature added: a rotation's
        hand-over checkpoint carries both the old key's and the new one's."""
        text, separator, _ = note.rpartition("\n\n")
        if not separator:
            raise ValueError("not a signed note")
        signature = self._key.sign((text + "\n").encode())
        blob = base64.b64encode(self.verifier.key_id + signature).decode()
        return f"{note}{_DASH} {self.name} {blob}\n"

    def save(self, path: Path) -> None:
        """Write the key to a new file (PEM, PKCS#8, mode 0600); ``FileExistsError`` if
        there is one."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        if not create_private(path, pem):  # never two keys from two processes at once
            raise FileExistsError(path)

    def sign_note(self, text: str) -> str:
        """``text`` (ending in a newline) as a note signed by this key."""
        if not text.endswith("\n") or "\n\n" in text:
            raise ValueError("a note's text ends in one newline and has no blank line")
        signature = self._key.sign(text.encode())
        blob = base64.b64encode(self.verifier.key_id + signature).decode()
        return f"{text}\n{_DASH} {self.name} {blob}\n"

    def public_pem(self) -> str:
        """The public key as PEM (SubjectPublicKeyInfo), for tools that want X.509 forms."""
        return (
            self._key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
