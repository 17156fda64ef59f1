"""Retention: moving old entries out of the store into signed archive files.

An archive holds entries [start, end), where ``end`` is the size of a signed checkpoint, and the
hashes of the tree's edge at ``start``. From those two alone the checkpoint's root is recomputed,
so the archive proves itself against the checkpoint it carries; the store keeps the tree's
hashes (32 bytes a node), so what remains still verifies and every proof still works.

The file is JSON Lines: a header, one line per entry, and a trailer with the SHA-256 of all the
lines before it and the log key's signature over that digest.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lgsp_adapter.audit.checkpoint import Checkpoint
from lgsp_adapter.audit.entry import AuditEntry, AuditEvent, format_time
from lgsp_adapter.audit.merkle import Frontier, leaf_hash
from lgsp_adapter.audit.proofs import BadEvidence, b64, leaf_of, open_checkpoint, unb64
from lgsp_adapter.audit.query import AuditQuery
from lgsp_adapter.audit.signing import LogKey, NoteError, Trusted, Verifier, signed_last_by
from lgsp_adapter.audit.store import ArchiveRecord, AuditStore, StoredCheckpoint
from lgsp_adapter.audit.tree import load_frontier
from lgsp_adapter.errors import ErrorCode, LgspError

FORMAT = "lgsp-adapter/audit-archive/1"
# Signed before the digest, so an archive signature can never pass for a signed note's.
SIGNED_AS = b"lgsp-adapter audit archive v1\n"
_CHUNK = 5000


async def archive_before(
    store: AuditStore, key: LogKey, before: datetime, folder: Path, *, actor: str
) -> ArchiveRecord | None:
    """Archive the entries older than ``before``, up to the last signed checkpoint that only
    covers such entries, into a new file in ``folder``; None when there is nothing to move."""
    start = max((a.end for a in await store.archives()), default=0)
    chosen = await _archivable_checkpoint(store, key, before, start)
    if chosen is None:
        return None
    checkpoint, signed = chosen
    path = folder / f"audit-{start:012d}-{checkpoint.size:012d}.jsonl"
    # File work goes to a thread: the daemon's loop may be serving while an archive is written.
    partial = path.with_suffix(".partial")
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    try:
        sha256 = await _write_archive(store, key, start, checkpoint.note, signed, partial)
        await asyncio.to_thread(verify_archive, partial, key.verifier)  # as an auditor will
    except BaseException:
        await asyncio.to_thread(partial.unlink, missing_ok=True)
        raise
    # Only a complete, durable file takes the entries' place in the store.
    await asyncio.to_thread(partial.rename, path)
    record = ArchiveRecord(
        start=start, end=checkpoint.size, file=path.name, sha256=sha256, at=datetime.now(UTC)
    )
    await store.remove_archived(record)
    await store.append(
        [
            AuditEntry(
                event=AuditEvent.ADMIN,
                outcome="archived",
                detail=f"entries {start} to {checkpoint.size - 1} moved to {path.name} "
                f"(sha256 {sha256})",
                actor=actor,
            )
        ]
    )
    return record


async def _archivable_checkpoint(
    store: AuditStore, key: LogKey, before: datetime, start: int
) -> tuple[StoredCheckpoint, Checkpoint] | None:
    """The last checkpoint past ``start`` that covers only entries older than ``before`` and
    that ``key`` signed, opened; None when there is none."""
    newer = await store.query(AuditQuery(since=before, limit=1))
    first_newer = newer[0].index if newer and newer[0].index is not None else None
    limit = first_newer if first_newer is not None else await store.tree_size()
    sizes = [c for c in await store.checkpoints() if start < c.size <= limit]
    if not sizes:
        return None
    # The archive carries this key's verifier: its checkpoint must be one this key signed
    # (last, as a rotation's successor does its hand-over), not a key rotated out before.
    ours = [c for c in sizes if signed_last_by(c.note, key.verifier)]
    if not ours:
        raise LgspError(
            ErrorCode.AUDIT_NOT_FOUND,
            f"the checkpoints up to size {sizes[-1].size} were signed by a key rotated out "
            "since: archive up to the rotation's hand-over at least (a later --before)",
        )
    checkpoint = ours[-1]
    # The signed note, not the row's columns, says what the entries must rebuild.
    try:
        signed = Checkpoint.open(checkpoint.note, key.verifier)
    except NoteError as exc:
        raise LgspError(
            ErrorCode.AUDIT_TAMPERED,
            f"checkpoint {checkpoint.size}: {exc}; nothing was archived",
        ) from exc
    if signed.size != checkpoint.size:  # the row's size column was changed
        raise LgspError(
            ErrorCode.AUDIT_TAMPERED,
            f"entries {start} to {checkpoint.size - 1} do not rebuild the checkpoint of size "
            f"{checkpoint.size}: nothing was archived; run `lgsp-adapter audit verify`",
        )
    return checkpoint, signed


async def _write_archive(
    store: AuditStore, key: LogKey, start: int, note: str, signed: Checkpoint, partial: Path
) -> str:
    """Write entries [start, signed.size) to ``partial``, durably, and return the lines'
    SHA-256; refused unless the entries, rebuilt from their fields, give the signed root."""
    rebuilt = await load_frontier(start, store.nodes)
    header = {
        "format": FORMAT,
        "origin": key.name,
        "verifier_key": key.verifier.encoded(),
        "start": start,
        "end": signed.size,
        "start_edge": [b64(h) for h in rebuilt.hashes()],
        "checkpoint": note,
    }
    digest = hashlib.sha256()

    def lines(documents: list[dict[str, Any]]) -> bytes:
        data = b"".join(
            json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
            for d in documents
        )
        digest.update(data)
        return data

    out = await asyncio.to_thread(partial.open, "wb")
    try:
        await asyncio.to_thread(out.write, lines([header]))
        for offset in range(start, signed.size, _CHUNK):
            chunk = await store.entries(offset, min(offset + _CHUNK, signed.size))
            for entry in chunk:  # rebuilt from the fields: nothing altered leaves the store
                if entry.index != rebuilt.size:
                    break
                rebuilt.append(leaf_hash(entry.canonical()))
            documents = [
                {"index": e.index, "entry": {k: v for k, v in e.fields().items() if v is not None}}
                for e in chunk
            ]
            await asyncio.to_thread(out.write, lines(documents))
        if (rebuilt.size, rebuilt.root()) != (signed.size, signed.root):
            raise LgspError(
                ErrorCode.AUDIT_TAMPERED,
                f"entries {start} to {signed.size - 1} do not rebuild the checkpoint of size "
                f"{signed.size}: nothing was archived; run `lgsp-adapter audit verify`",
            )
        sha256 = digest.hexdigest()
        trailer = {"sha256": sha256, "signature": b64(key.sign(SIGNED_AS + sha256.encode()))}
        await asyncio.to_thread(out.write, json.dumps(trailer).encode() + b"\n")
        await asyncio.to_thread(_sync, out)
    finally:
        await asyncio.to_thread(out.close)
    return sha256


def _sync(out: Any) -> None:
    out.flush()
    os.fsync(out.fileno())


@dataclass(frozen=True)
class ArchiveCheck:
    """What an archive file proved."""

    start: int
    end: int
    checkpoint: Checkpoint
    verifier: Verifier
    sha256: str

    def summary(self) -> str:
        """One line for people."""
        return (
            f"archive verifies: entries {self.start} to {self.end - 1} of log "
            f"{self.checkpoint.origin!r}, signed at size {self.end} "
            f"({format_time(self.checkpoint.at)}); key fingerprint {self.verifier.fingerprint}"
        )


class ArchiveFile:
    """An archive file read as a stream: its header at once, its entries one by one, its
    trailer's digest and signature checked when the entries run out."""

    def __init__(self, path: Path, pinned: Trusted | None = None) -> None:
        try:
            self._file = path.open("rb")
        except (OSError, ValueError) as exc:
            raise BadEvidence(f"cannot read {path.name}: {exc}") from exc
        try:
            self._open(pinned)
        except BaseException:
            self._file.close()
            raise

    def _open(self, pinned: Trusted | None) -> None:
        first = self._file.readline()
        self.digest = hashlib.sha256(first)
        try:
            header = json.loads(first)
        except ValueError as exc:
            raise BadEvidence(f"not an archive: {exc}") from exc
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise BadEvidence(f"not an archive of format {FORMAT}")
        try:
            self.verifier = Verifier.parse(str(header.get("verifier_key", "")))
        except NoteError as exc:
            raise BadEvidence(f"the archive's key: {exc}") from exc
        if pinned is not None and not pinned.trusts(self.verifier):
            raise BadEvidence(
                f"the archive is signed by key {self.verifier.fingerprint}, not the pinned one"
            )
        self.checkpoint = open_checkpoint(header.get("checkpoint"), self.verifier)
        start, end, edge = header.get("start"), header.get("end"), header.get("start_edge")
        if type(start) is not int or type(end) is not int or not isinstance(edge, list):
            raise BadEvidence("the archive's header lacks start, end or start_edge")
        if not 0 <= start < end or end != self.checkpoint.size:
            raise BadEvidence(f"the archive's range {start} to {end} is not its checkpoint's")
        self.start, self.end = start, end
        self.edge = [unb64(h, "start_edge") for h in edge]

    def close(self) -> None:
        """Release the file."""
        self._file.close()

    def entries(self) -> Iterator[tuple[int, bytes]]:
        """Each entry's index and recomputed leaf, in order; at the end, ``BadEvidence`` unless
        the trailer signs exactly the lines read."""
        number = self.start
        held = self._file.readline()
        while held:
            following = self._file.readline()
            if not following:
                break  # ``held`` is the trailer
            self.digest.update(held)
            try:
                document = json.loads(held)
            except ValueError as exc:
                raise BadEvidence(f"entry {number} is not JSON") from exc
            if not isinstance(document, dict) or type(document.get("index")) is not int:
                raise BadEvidence(f"entry {number} is not an entry")
            fields = document.get("entry")
            if document["index"] != number or not isinstance(fields, dict):
                raise BadEvidence(f"entry {number} is missing or out of order")
            yield number, leaf_of(fields, f"entry {number}")
            number += 1
            held = following
        if number != self.end:
            raise BadEvidence(
                f"the archive holds entries {self.start} to {number - 1}, not to {self.end - 1}"
            )
        self._check_trailer(held)

    def _check_trailer(self, line: bytes) -> None:
        try:
            trailer = json.loads(line)
            signature = base64.b64decode(str(trailer.get("signature", "")), validate=True)
        except (ValueError, AttributeError, binascii.Error) as exc:
            raise BadEvidence("the archive's trailer is damaged") from exc
        digest = self.digest.hexdigest()
        if trailer.get("sha256") != digest or not self.verifier.signed(
            SIGNED_AS + digest.encode(), signature
        ):
            raise BadEvidence("the archive's lines do not match its signed digest: altered or cut")


def verify_archive(path: Path, pinned: Trusted | None = None) -> ArchiveCheck:
    """Check an archive file on its own (and against a pinned key, when given)."""
    archive = ArchiveFile(path, pinned)
    try:
        try:
            frontier = Frontier(archive.start, archive.edge)
        except ValueError as exc:
            raise BadEvidence(f"the archive's start_edge: {exc}") from exc
        for _, leaf in archive.entries():
            frontier.append(leaf)
    finally:
        archive.close()
    if frontier.root() != archive.checkpoint.root:
        raise BadEvidence(
            f"the entries do not rebuild the signed tree of size {archive.end}: altered"
        )
    return ArchiveCheck(
        start=archive.start,
        end=archive.end,
        checkpoint=archive.checkpoint,
        verifier=archive.verifier,
        sha256=archive.digest.hexdigest(),
    )
