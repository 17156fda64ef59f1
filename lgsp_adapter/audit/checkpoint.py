"""Signed checkpoints: the log's size and root hash at a moment, signed by the log's key.

The text follows c2sp.org/tlog-checkpoint: the origin (the log's name), the tree size in
decimal, the root hash in base64, then our one extension line, ``time <UTC time>``. Anyone with
the verifier key can check a checkpoint; two checkpoints of one log are then tied together by a
consistency proof, and an entry to a checkpoint by an inclusion proof.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from lgsp_adapter.audit.entry import format_time
from lgsp_adapter.audit.signing import LogKey, NoteError, Trusted, Verifier


@dataclass(frozen=True)
class Checkpoint:
    """The state of the log a signature vouches for."""

    origin: str
    size: int
    root: bytes
    at: datetime

    def text(self) -> str:
        """The signed text."""
        root = base64.b64encode(self.root).decode()
        return f"{self.origin}\n{self.size}\n{root}\ntime {format_time(self.at)}\n"

    def sign(self, key: LogKey) -> str:
        """The checkpoint as a signed note."""
        return key.sign_note(self.text())

    @classmethod
    def open(cls, note: str, trusted: Trusted) -> Checkpoint:
        """The checkpoint in ``note`` if one of the ``trusted`` keys signed it (a key names
        its log: the origin must be its name); ``NoteError`` if none did."""
        faults: list[str] = []
        for verifier in trusted.verifiers:
            try:
                return cls._open(note, verifier)
            except NoteError as exc:
                if str(exc) not in faults:
                    faults.append(str(exc))
        raise NoteError("; ".join(faults) or "no key to check it with")

    @classmethod
    def _open(cls, note: str, verifier: Verifier) -> Checkpoint:
        lines = verifier.open(note).splitlines()
        if len(lines) < 3:
            raise NoteError("a checkpoint has an origin, a size and a root hash")
        origin, size_text, root_text, *extensions = lines
        digits = size_text.isascii() and size_text.isdigit()
        if not digits or (size_text.startswith("0") and size_text != "0"):
            raise NoteError(f"bad tree size {size_text!r}")
        try:
            root = base64.b64decode(root_text, validate=True)
        except binascii.Error as exc:
            raise NoteError("the root hash is not base64") from exc
        if len(root) != 32:
            raise NoteError("the root hash is not 32 bytes")
        times = [line[5:] for line in extensions if line.startswith("time ")]
        if len(times) != 1:
            raise NoteError("a checkpoint of this log carries one time line")
        try:
            at = datetime.fromisoformat(times[0])
        except ValueError as exc:
            raise NoteError(f"bad checkpoint time {times[0]!r}") from exc
        if origin != verifier.name:
            raise NoteError(f"checkpoint of {origin!r}, not of {verifier.name!r}")
        return cls(origin=origin, size=int(size_text), root=root, at=at)
