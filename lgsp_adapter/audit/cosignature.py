"""Witness cosignatures (c2sp.org/tlog-cosignature, ``cosignature/v1``): a third party's
signature over a checkpoint, saying "I saw this log at this size and root, and it was consistent
with everything of it I saw before".

A cosignature line looks like a signed note's: ``— <witness name> base64(key id || timestamp ||
Ed25519 signature)``, where the key id is the first four bytes of ``SHA-256(name || "\\n" ||
0x04 || public key)``, the timestamp eight bytes big-endian (POSIX seconds), and the signature
covers ``cosignature/v1\\ntime <timestamp>\\n`` followed by the checkpoint's text. So the lines
travel beside a checkpoint, and any tlog-witness tool checks ours.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from lgsp_adapter.audit.signing import (
    LogKey,
    NoteError,
    encode_key,
    key_id,
    parse_key,
    split_note,
)

_COSIGNATURE = b"\x04"  # the signed-note key type of a timestamped Ed25519 witness cosignature
_DASH = "\u2014"


def _message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode()


@dataclass(frozen=True)
class WitnessVerifier:
    """A witness's public key under its name: what checks its cosignatures."""

    name: str
    public_key: bytes  # 32 raw Ed25519 bytes

    @property
    def key_id(self) -> bytes:
        """The four bytes that tie a cosignature line to this key."""
        return key_id(self.name, _COSIGNATURE, self.public_key)

    def encoded(self) -> str:
        """``name+hexid+base64(0x04 || key)``: the witness's verifier key string."""
        return encode_key(self.name, _COSIGNATURE, self.public_key)

    @classmethod
    def parse(cls, text: str) -> WitnessVerifier:
        """Read a witness verifier key string; ``NoteError`` if it is not one."""
        return cls(*parse_key(text, _COSIGNATURE))

    def check(self, line: str, text: str) -> datetime:
        """When this witness cosigned the checkpoint ``text`` with ``line``; ``NoteError`` if
        the line is not its cosignature of that text."""
        parts = line.rstrip("\n").split(" ")
        if len(parts) != 3 or parts[0] != _DASH or parts[1] != self.name:
            raise NoteError(f"not a cosignature line of {self.name}")
        try:
            blob = base64.b64decode(parts[2], validate=True)
        except binascii.Error as exc:
            raise NoteError("a cosignature is not base64") from exc
        if len(blob) != 76 or blob[:4] != self.key_id:
            raise NoteError(f"not a cosignature by {self.name}'s key {self.key_id.hex()}")
        (timestamp,) = struct.unpack(">Q", blob[4:12])
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                blob[12:], _message(text, timestamp)
            )
        except InvalidSignature as exc:
            raise NoteError(f"{self.name}'s cosignature does not verify over it") from exc
        if timestamp >= 2**63:
            raise NoteError("a cosignature time past 2^63")
        return datetime.fromtimestamp(timestamp, UTC)


class WitnessKey:
    """The private key a daemon cosigns other logs' checkpoints with: never its log's key, for
    one Ed25519 key must not sign as two parties."""

    def __init__(self, name: str, key: LogKey) -> None:
        self._key = key
        self.name = name
        self.verifier = WitnessVerifier(name, key.verifier.public_key)

    @classmethod
    def load_or_create(cls, path: Path, name: str | None) -> WitnessKey:
        """The key in ``path`` (PEM, PKCS#8, mode 0600), made there if there is none; without
        a configured name, one from the key's fingerprint."""
        key = LogKey.load_or_create(path, None)
        return cls(name or f"lgsp-adapter-witness/{key.verifier.fingerprint[:16]}", key)

    def cosign(self, text: str, at: datetime) -> str:
        """The cosignature line (with its newline) of the checkpoint ``text`` at ``at``."""
        timestamp = int(at.timestamp())
        signature = self._key.sign(_message(text, timestamp))
        blob = self.verifier.key_id + struct.pack(">Q", timestamp) + signature
        return f"{_DASH} {self.name} {base64.b64encode(blob).decode()}\n"


def checkpoint_text(note: str) -> str:
    """A signed note's text (what a cosignature covers), without its signature lines."""
    return split_note(note)[0]
