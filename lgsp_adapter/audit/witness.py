"""A witness of other daemons' logs (c2sp.org/tlog-witness): it cosigns a log's checkpoint
only when a consistency proof shows it extends the last one it cosigned for that log.

That is what makes a log trustworthy against its own operator: whoever holds a log's key can
sign any history, but not get a witness to cosign two histories that fork. The witness keeps,
per log, the latest checkpoint it cosigned (advanced by compare-and-swap, so two requests, or
two replicas on one store, never both move it from the same place), and an auditor compares a
log with it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from lgsp_adapter.audit.checkpoint import Checkpoint
from lgsp_adapter.audit.cosignature import WitnessKey, checkpoint_text
from lgsp_adapter.audit.merkle import verify_consistency
from lgsp_adapter.audit.signing import NoteError, Trusted, signature_keys

EMPTY_ROOT = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
MAX_REQUEST = 16 * 1024
_OLD = re.compile(r"old (0|[1-9][0-9]{0,18})")


@dataclass(frozen=True)
class Witnessed:
    """The latest checkpoint of a log a witness cosigned: its size, root, and the note as the
    witness keeps it (the log's signature, then the witness's)."""

    size: int
    root: bytes
    note: str


class WitnessState(Protocol):
    """Where a witness keeps what it cosigned, per log origin."""

    async def witnessed(self, origin: str) -> Witnessed | None:
        """The latest checkpoint of ``origin`` cosigned here, or None."""
        ...

    async def advance(self, origin: str, old: Witnessed | None, new: Witnessed) -> bool:
        """Replace ``old`` by ``new`` if ``old`` is still the latest; False if it is not."""
        ...


class WitnessRefusal(Exception):
    """Why a checkpoint was not cosigned, with the HTTP status the protocol gives it; a 409
    carries the size the witness has, for the log to prove from."""

    def __init__(
        self, status: int, message: str, size: int | None = None, *, fork: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.size = size
        self.fork = fork  # a validly signed checkpoint that contradicts one cosigned: evidence


@dataclass(frozen=True)
class AddCheckpoint:
    """An add-checkpoint request: the size the log proves from, the proof, the note."""

    old: int
    proof: list[bytes]
    note: str

    @classmethod
    def parse(cls, body: bytes) -> AddCheckpoint:
        """``old N``, up to 63 base64 hashes a line, a blank line, the signed note."""
        if len(body) > MAX_REQUEST:
            raise WitnessRefusal(400, f"a request is at most {MAX_REQUEST} bytes")
        try:
            text = body.decode()
        except UnicodeDecodeError as exc:
            raise WitnessRefusal(400, "the request is not UTF-8") from exc
        head, separator, note = text.partition("\n\n")
        lines = head.split("\n")
        found = _OLD.fullmatch(lines[0])
        if not separator or found is None:
            raise WitnessRefusal(400, "a request starts with 'old <size>', then the proof")
        if len(lines) - 1 > 63:
            raise WitnessRefusal(400, "a consistency proof has at most 63 hashes")
        proof = []
        for line in lines[1:]:
            try:
                digest = base64.b64decode(line, validate=True)
            except binascii.Error as exc:
                raise WitnessRefusal(400, "a proof line is not base64") from exc
            if len(digest) != 32:
                raise WitnessRefusal(400, "a proof hash is not 32 bytes")
            proof.append(digest)
        return cls(old=int(found.group(1)), proof=proof, note=note)


class Witness:
    """Cosigns the checkpoints of the logs it was told to witness, never a fork."""

    def __init__(self, key: WitnessKey, logs: dict[str, Trusted], state: WitnessState) -> None:
        self.key = key
        self.logs = logs
        self.state = state
        self._locks: dict[str, asyncio.Lock] = {}

    async def add_checkpoint(self, body: bytes) -> str:
        """The cosignature line of the checkpoint in ``body``; ``WitnessRefusal`` if not."""
        request = AddCheckpoint.parse(body)
        origin = request.note.split("\n", 1)[0]
        trusted = self.logs.get(origin)
        if trusted is None:
            raise WitnessRefusal(404, f"this witness does not witness the log {origin!r}")
        try:
            checkpoint = Checkpoint.open(request.note, trusted)
            text = checkpoint_text(request.note)
        except NoteError as exc:
            raise WitnessRefusal(403, f"not a checkpoint signed by the log's key: {exc}") from exc
        if text != checkpoint.text():
            raise WitnessRefusal(400, "the checkpoint's text is not in its canonical form")
        if request.old > checkpoint.size:
            raise WitnessRefusal(400, f"old size {request.old} is past the checkpoint's")
        async with self._locks.setdefault(origin, asyncio.Lock()):
            latest = await self.state.witnessed(origin)
            self._check(request, checkpoint, latest)
            note = request.note.split("\n\n", 1)[0] + "\n\n" + _log_lines(request.note, trusted)
            line = self.key.cosign(text, datetime.now(UTC))
            new = Witnessed(checkpoint.size, checkpoint.root, note + line)
            if latest is not None and latest.size == new.size:
                return line  # the same checkpoint again: cosigned again, the state unchanged
            if not await self.state.advance(origin, latest, new):
                now = await self.state.witnessed(origin)
                raise WitnessRefusal(409, "another checkpoint was cosigned meanwhile", _size(now))
        return line

    @staticmethod
    def _check(request: AddCheckpoint, checkpoint: Checkpoint, latest: Witnessed | None) -> None:
        """The rules of tlog-witness, in its order: the old size, then consistency."""
        if request.old != _size(latest):
            raise WitnessRefusal(
                409, f"this witness has size {_size(latest)}, not {request.old}", _size(latest)
            )
        if checkpoint.size == 0 and checkpoint.root != EMPTY_ROOT:
            raise WitnessRefusal(422, "a checkpoint of size 0 has the empty tree's root")
        if latest is None:
            if request.proof:
                raise WitnessRefusal(422, "a checkpoint proved from size 0 has no proof")
            return  # the first checkpoint of a log is trusted as it comes
        if latest.size == checkpoint.size:
            if latest.root != checkpoint.root:
                raise WitnessRefusal(
                    422, f"a different root at size {latest.size}: a fork", fork=True
                )
            return
        if not verify_consistency(
            latest.size, checkpoint.size, latest.root, checkpoint.root, request.proof
        ):
            raise WitnessRefusal(
                422,
                f"the checkpoint of size {checkpoint.size} does not extend size {latest.size} "
                "this witness cosigned: a fork, or a bad proof",
                fork=True,
            )


def _size(witnessed: Witnessed | None) -> int:
    return 0 if witnessed is None else witnessed.size


def _log_lines(note: str, trusted: Trusted) -> str:
    """The signature lines of ``note`` by the log's trusted keys (others' are not kept)."""
    lines = note.rpartition("\n\n")[2].splitlines()
    signers = signature_keys(note, trusted)
    return "".join(f"{line}\n" for line, signer in zip(lines, signers, strict=True) if signer)
