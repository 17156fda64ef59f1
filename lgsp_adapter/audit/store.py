"""What the audit log needs from a store, on SQLite or PostgreSQL alike.

A store keeps five append-only tables: the entries (by leaf index, from 0, each row with its
leaf hash), the hash of every perfect subtree of the Merkle tree over them (``(level, index)``:
level 0 are the leaves), built when a checkpoint is signed, the signed checkpoints, the
witnesses' cosignatures of them, and the archives; and, as a witness of other logs, the latest
checkpoint of each it cosigned. Appending is one insert per entry; any proof is a handful of
lookups, however long the log grows. Both stores share the query builder and row readers below.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from lgsp_adapter.audit.entry import AuditEntry, canonical_entry, format_time
from lgsp_adapter.audit.merkle import Node, leaf_hash
from lgsp_adapter.audit.query import AuditQuery
from lgsp_adapter.audit.signing import LogKey
from lgsp_adapter.audit.witness import Witnessed

Fields = dict[str, str | None]


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint as kept: its size and root for lookups, and the signed note itself."""

    size: int
    root: bytes
    at: datetime
    note: str


@dataclass(frozen=True)
class StoredCosignature:
    """A witness's cosignature of one of this log's checkpoints, kept beside it."""

    size: int
    witness: str
    line: str  # the cosignature line, as the witness gave it
    at: datetime  # when it was kept


@dataclass(frozen=True)
class ArchiveRecord:
    """Entries [start, end) moved out of the store into a signed archive file."""

    start: int
    end: int
    file: str
    sha256: str
    at: datetime


@dataclass(frozen=True)
class StoredEntry:
    """An entry's stored fields, its index, and the leaf hash its row carries (which ``verify``
    compares with the hash of the fields, to name an entry changed alone)."""

    index: int
    fields: Fields
    leaf: bytes


class AuditStore(Protocol):
    """The audit log's storage."""

    async def append(self, entries: Sequence[AuditEntry]) -> None:
        """Append entries with their leaves, in one transaction (the tree's other hashes are
        stored when a checkpoint is signed)."""
        ...

    async def tree_size(self) -> int:
        """How many leaves the tree has."""
        ...

    async def nodes(self, keys: Sequence[Node]) -> dict[Node, bytes]:
        """The stored subtree hashes among ``keys``."""
        ...

    async def node_range(self, level: int, start: int, end: int) -> dict[int, bytes]:
        """The stored subtree hashes of ``level`` with index in [start, end), by index."""
        ...

    def stored_entries(self, start: int = 0) -> AsyncIterator[StoredEntry]:
        """Every entry from index ``start`` on, in index order, with its stored leaf."""
        ...

    async def entries(self, start: int, end: int) -> list[AuditEntry]:
        """Entries with index in [start, end)."""
        ...

    async def query(self, query: AuditQuery) -> list[AuditEntry]:
        """One page of entries matching ``query``, in index order."""
        ...

    async def history(self, packet_id: UUID) -> list[AuditEntry]:
        """A packet's entries, in the order they were appended."""
        ...

    async def checkpoint(
        self, key: LogKey, *, min_size: int = 1, cosigner: LogKey | None = None
    ) -> StoredCheckpoint | None:
        """Sign and keep a checkpoint of the tree as it is, unless it has fewer than
        ``min_size`` leaves or the latest checkpoint already has its size (then that one).
        ``cosigner`` signs it too (a key rotation's hand-over)."""
        ...

    async def checkpoints(self) -> list[StoredCheckpoint]:
        """Every checkpoint, smallest first."""
        ...

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The largest checkpoint, or None before the first."""
        ...

    async def archives(self) -> list[ArchiveRecord]:
        """Archives made so far, oldest first."""
        ...

    async def add_cosignature(self, size: int, witness: str, line: str) -> None:
        """Keep a witness's cosignature of the checkpoint of ``size`` (once per witness)."""
        ...

    async def cosignatures(self) -> list[StoredCosignature]:
        """Every cosignature kept, by checkpoint size."""
        ...

    async def witnessed(self, origin: str) -> Witnessed | None:
        """As a witness of other logs: the latest checkpoint of ``origin`` cosigned here."""
        ...

    async def advance(self, origin: str, old: Witnessed | None, new: Witnessed) -> bool:
        """As a witness: ``new`` is the latest of ``origin`` if ``old`` still was."""
        ...

    async def remove_archived(self, record: ArchiveRecord) -> None:
        """Record the archive and delete its entries, in one transaction."""
        ...


def where(query: AuditQuery, bind: Callable[[Any], str]) -> str:
    """The WHERE clause of ``query`` for either store: ``bind`` records a value and returns
    its placeholder (``?`` on SQLite, ``$n`` on PostgreSQL)."""
    clauses: list[str] = []
    if query.since is not None:
        clauses.append(f"at >= {bind(format_time(query.since))}")
    if query.until is not None:
        clauses.append(f"at < {bind(format_time(query.until))}")
    if query.agency is not None:
        clauses.append(f"(sender = {bind(query.agency)} OR recipient = {bind(query.agency)})")
    for name in ("kind", "document_id", "outcome"):
        value = getattr(query, name)
        if value is not None:
            clauses.append(f"{name} = {bind(value)}")
    if query.event is not None:
        clauses.append(f"event = {bind(query.event.value)}")
    if query.packet_id is not None:
        clauses.append(f"packet_id = {bind(str(query.packet_id))}")
    if query.after is not None:
        clauses.append(f"idx > {bind(query.after)}")
    if query.before is not None:
        clauses.append(f"idx < {bind(query.before)}")
    return " WHERE " + " AND ".join(clauses) if clauses else ""


def stored_time(text: Any) -> datetime:
    """A stored time; one that cannot be read (the row was tampered with) reads as the epoch,
    and ``verify`` judges the row by what was signed, not by this column."""
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return datetime.fromtimestamp(0, UTC)


def entry_row(entry: AuditEntry) -> tuple[Any, ...]:
    """An entry's leaf hash and fields, as both stores insert them (its fields read once)."""
    fields = entry.fields()
    return (leaf_hash(canonical_entry(fields)), *fields.values())


def checkpoint_of(row: Any) -> StoredCheckpoint:
    """A checkpoint from a stored row (size, root, at, note)."""
    return StoredCheckpoint(size=row[0], root=bytes(row[1]), at=stored_time(row[2]), note=row[3])
