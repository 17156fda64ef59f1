"""The audit log on SQLite: entries, the tree's subtree hashes, checkpoints and archives.

Appends happen inside the store's write transactions (``append_in_transaction``), so a state
change and the entries that record it commit together. An entry's row carries its leaf hash and
takes the next index in the same statement: one insert, nothing cached, whoever else appends.
The tree's other hashes are stored when a checkpoint is signed, in that transaction. Triggers
make every table append-only; entries may be deleted only below the end of a recorded archive.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from lgsp_adapter.audit.checkpoint import Checkpoint
from lgsp_adapter.audit.entry import FIELDS, AuditEntry, format_time
from lgsp_adapter.audit.merkle import Node
from lgsp_adapter.audit.query import AuditQuery
from lgsp_adapter.audit.signing import LogKey
from lgsp_adapter.audit.store import (
    ArchiveRecord,
    StoredCheckpoint,
    StoredEntry,
    checkpoint_of,
    entry_row,
    stored_time,
    where,
)
from lgsp_adapter.audit.tree import extend
from lgsp_adapter.store.sqlite_witness import SqliteWitnessing

SCHEMA = """
    CREATE TABLE audit_entries (
        idx INTEGER PRIMARY KEY,           -- the leaf index in the tree, from 0
        leaf BLOB NOT NULL,                -- SHA-256(0x00 || canonical encoding)
        at TEXT NOT NULL,                  -- UTC, yyyy-mm-ddThh:mm:ss.ffffffZ
        event TEXT NOT NULL,
        packet_id TEXT,
        sender TEXT,
        recipient TEXT,
        kind TEXT,
        document_id TEXT,
        payload_sha256 TEXT,
        outcome TEXT,
        detail TEXT,
        actor TEXT
    );
    CREATE INDEX audit_entries_packet ON audit_entries (packet_id, idx);
    CREATE INDEX audit_entries_at ON audit_entries (at);
    CREATE INDEX audit_entries_document ON audit_entries (document_id, idx);
    CREATE INDEX audit_entries_sender ON audit_entries (sender, idx);
    CREATE INDEX audit_entries_recipient ON audit_entries (recipient, idx);
    CREATE TABLE audit_tree (
        level INTEGER NOT NULL,            -- 0: leaves; n: subtrees of 2^n leaves
        idx INTEGER NOT NULL,
        hash BLOB NOT NULL,
        PRIMARY KEY (level, idx)
    ) WITHOUT ROWID;
    CREATE TABLE audit_checkpoints (
        size INTEGER PRIMARY KEY,
        root BLOB NOT NULL,
        at TEXT NOT NULL,
        note TEXT NOT NULL                 -- the signed note, as signed
    );
    CREATE TABLE audit_archives (
        start INTEGER NOT NULL,
        "end" INTEGER PRIMARY KEY,
        file TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
        WHEN OLD.idx >= (SELECT coalesce(max("end"), 0) FROM audit_archives)
        BEGIN SELECT RAISE(ABORT, 'only archived audit entries may be removed'); END;
"""
_APPEND_ONLY = ("audit_tree", "audit_checkpoints", "audit_archives")
SCHEMA += "".join(
    f"""
    CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """
    for table in _APPEND_ONLY
)

_COLUMNS = ", ".join(FIELDS)
# The log's size: one past the last entry, or the end of the archives when all were archived.
_SIZE = (
    'SELECT ifnull(max(idx) + 1, (SELECT ifnull(max("end"), 0) FROM audit_archives))'
    " FROM audit_entries"
)
_INSERT_ENTRY = (
    f"INSERT INTO audit_entries (idx, leaf, {_COLUMNS}) VALUES (({_SIZE}), ?{', ?' * len(FIELDS)})"
)
_SELECT_ENTRY = f"SELECT idx, {_COLUMNS} FROM audit_entries"
_BATCH = 5000

WriteTransaction = Callable[[], AbstractAsyncContextManager[None]]


class SqliteAuditLog(SqliteWitnessing):
    """The ``AuditStore`` on the store's connections."""

    def __init__(
        self,
        *,
        writer: sqlite3.Connection,
        reader: sqlite3.Connection,
        transaction: WriteTransaction,
        appended: Callable[[Sequence[AuditEntry]], None] | None = None,
    ) -> None:
        self._db = writer
        self._read = reader
        self._transaction = transaction
        self._appended = appended  # the store's: what its transaction will have committed

    def append_in_transaction(self, entries: Sequence[AuditEntry]) -> None:
        """Append inside the caller's open write transaction."""
        if entries:
            self._db.executemany(
                _INSERT_ENTRY,
                [entry_row(entry) for entry in entries],
            )
            if self._appended is not None:
                self._appended(entries)

    async def append(self, entries: Sequence[AuditEntry]) -> None:
        """Append in a transaction of their own."""
        async with self._transaction():
            self.append_in_transaction(entries)

    @staticmethod
    def _size(db: sqlite3.Connection) -> int:
        row = db.execute(_SIZE).fetchone()
        return int(row[0]) if row else 0

    def _loader(self, db: sqlite3.Connection) -> Callable[[Sequence[Node]], Any]:
        async def load(keys: Sequence[Node]) -> dict[Node, bytes]:
            return _nodes(db, keys)

        return load

    async def _build_tree(self, size: int) -> bytes:
        """Store the tree's hashes up to ``size`` leaves (inside a write transaction)."""
        row = self._db.execute(
            "SELECT ifnull(max(idx) + 1, 0) FROM audit_tree WHERE level = 0"
        ).fetchone()
        built = int(row[0]) if row else 0
        cursor = self._db.execute(
            "SELECT idx, leaf FROM audit_entries WHERE idx >= ? AND idx < ? ORDER BY idx",
            (built, size),
        )
        leaves = [(int(r[0]), bytes(r[1])) for r in cursor.fetchall()]
        if built + len(leaves) != size:
            raise LookupError(f"entries {built} to {size - 1} are not all in the store")
        nodes, root = await extend(built, self._loader(self._db), leaves)
        self._db.executemany("INSERT INTO audit_tree (level, idx, hash) VALUES (?, ?, ?)", nodes)
        return root

    async def tree_size(self) -> int:
        """How many entries the log has had (its leaves), archived ones included."""
        return self._size(self._read)

    async def nodes(self, keys: Sequence[Node]) -> dict[Node, bytes]:
        """The stored subtree hashes among ``keys``."""
        return _nodes(self._read, keys)

    async def node_range(self, level: int, start: int, end: int) -> dict[int, bytes]:
        """The stored subtree hashes of ``level`` with index in [start, end), by index."""
        cursor = self._read.execute(
            "SELECT idx, hash FROM audit_tree WHERE level = ? AND idx >= ? AND idx < ?",
            (level, start, end),
        )
        return {int(row[0]): bytes(row[1]) for row in cursor.fetchall()}

    async def stored_entries(self, start: int = 0) -> AsyncIterator[StoredEntry]:
        """Every entry from ``start`` on, in index order, with its stored leaf."""
        position = start
        while True:
            cursor = self._read.execute(
                f"SELECT idx, {_COLUMNS}, leaf FROM audit_entries"
                " WHERE idx >= ? ORDER BY idx LIMIT ?",
                (position, _BATCH),
            )
            rows = list(cursor.fetchall())
            for row in rows:
                yield StoredEntry(
                    index=row[0],
                    fields=dict(zip(FIELDS, row[1:-1], strict=True)),
                    leaf=bytes(row[-1]),
                )
            if len(rows) < _BATCH:
                return
            position = rows[-1][0] + 1

    async def entries(self, start: int, end: int) -> list[AuditEntry]:
        """Entries with index in [start, end)."""
        return await self._select(" WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end))

    async def query(self, query: AuditQuery) -> list[AuditEntry]:
        """One page of entries matching ``query``, in index order."""
        parameters: list[Any] = []

        def bind(value: Any) -> str:
            parameters.append(value)
            return "?"

        clause = where(query, bind)
        order = "DESC" if query.newest_first else ""
        return await self._select(
            f"{clause} ORDER BY idx {order} LIMIT ?", (*parameters, query.limit)
        )

    async def history(self, packet_id: UUID) -> list[AuditEntry]:
        """A packet's entries, in the order they were appended."""
        return await self._select(" WHERE packet_id = ? ORDER BY idx", (str(packet_id),))

    async def _select(self, tail: str, parameters: tuple[Any, ...]) -> list[AuditEntry]:
        rows = self._read.execute(_SELECT_ENTRY + tail, parameters).fetchall()
        return [
            AuditEntry.from_fields(dict(zip(FIELDS, row[1:], strict=True)), row[0]) for row in rows
        ]

    async def checkpoint(
        self, key: LogKey, *, min_size: int = 1, cosigner: LogKey | None = None
    ) -> StoredCheckpoint | None:
        """Sign and keep a checkpoint of the tree as it is now (see ``AuditStore``)."""
        async with self._transaction():
            size = self._size(self._db)
            if size < min_size:
                return None
            latest = self._db.execute(
                "SELECT size, root, at, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1"
            ).fetchone()
            if latest is not None and latest[0] == size:
                return checkpoint_of(latest)
            root = await self._build_tree(size)
            signed = Checkpoint(origin=key.name, size=size, root=root, at=datetime.now(UTC))
            note = signed.sign(key)
            if cosigner is not None:
                note = cosigner.cosign(note)
            self._db.execute(
                "INSERT INTO audit_checkpoints (size, root, at, note) VALUES (?, ?, ?, ?)",
                (size, root, format_time(signed.at), note),
            )
        return StoredCheckpoint(size=size, root=root, at=signed.at, note=note)

    async def checkpoints(self) -> list[StoredCheckpoint]:
        """Every checkpoint, smallest first."""
        rows = self._read.execute(
            "SELECT size, root, at, note FROM audit_checkpoints ORDER BY size"
        ).fetchall()
        return [checkpoint_of(row) for row in rows]

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The largest checkpoint, or None before the first."""
        row = self._read.execute(
            "SELECT size, root, at, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1"
        ).fetchone()
        return None if row is None else checkpoint_of(row)

    async def archives(self) -> list[ArchiveRecord]:
        """Archives made so far, oldest first."""
        rows = self._read.execute(
            'SELECT start, "end", file, sha256, at FROM audit_archives ORDER BY "end"'
        ).fetchall()
        return [
            ArchiveRecord(
                start=row[0],
                end=row[1],
                file=row[2],
                sha256=row[3],
                at=stored_time(row[4]),
            )
            for row in rows
        ]

    async def remove_archived(self, record: ArchiveRecord) -> None:
        """Record the archive and delete its entries, in one transaction."""
        async with self._transaction():
            self._db.execute(
                'INSERT INTO audit_archives (start, "end", file, sha256, at)'
                " VALUES (?, ?, ?, ?, ?)",
                (record.start, record.end, record.file, record.sha256, format_time(record.at)),
            )
            self._db.execute("DELETE FROM audit_entries WHERE idx < ?", (record.end,))


def _nodes(db: sqlite3.Connection, keys: Sequence[Node]) -> dict[Node, bytes]:
    found: dict[Node, bytes] = {}
    keys = list(keys)
    for offset in range(0, len(keys), 400):
        chunk = keys[offset : offset + 400]
        values = ", ".join("(?, ?)" for _ in chunk)
        flat = [number for key in chunk for number in key]
        # Driven from the keys, so each is one primary-key lookup, not a scan of the tree.
        cursor = db.execute(
            f"WITH k(level, idx) AS (VALUES {values}) SELECT t.level, t.idx, t.hash"
            " FROM k CROSS JOIN audit_tree t ON t.level = k.level AND t.idx = k.idx",
            flat,
        )
        for level, index, digest in cursor.fetchall():
            found[(level, index)] = bytes(digest)
    return found
