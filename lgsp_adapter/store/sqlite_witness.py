"""Witnessing on SQLite: the cosignatures other daemons gave this log's checkpoints, and, as a
witness of theirs, the latest checkpoint of each log this one cosigned.

Cosignatures are append-only, as the rest of the log is: a witness's word, once kept, is
evidence. The witness's view of each log is the one row that changes, by compare-and-swap on its
size and root, so two requests never both advance it from the same checkpoint.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime

from lgsp_adapter.audit.entry import format_time
from lgsp_adapter.audit.store import StoredCosignature, stored_time
from lgsp_adapter.audit.witness import Witnessed

SCHEMA = """
    CREATE TABLE audit_cosignatures (
        size INTEGER NOT NULL,             -- the checkpoint cosigned
        witness TEXT NOT NULL,             -- the witness's name
        line TEXT NOT NULL,                -- its cosignature line, as given
        at TEXT NOT NULL,
        PRIMARY KEY (size, witness)
    );
    CREATE TRIGGER audit_cosignatures_no_update BEFORE UPDATE ON audit_cosignatures
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_cosignatures_no_delete BEFORE DELETE ON audit_cosignatures
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TABLE witnessed_logs (
        origin TEXT PRIMARY KEY,           -- a log this daemon witnesses
        size INTEGER NOT NULL,
        root BLOB NOT NULL,
        note TEXT NOT NULL,                -- the log's signature and this witness's
        at TEXT NOT NULL
    );
"""


class SqliteWitnessing:
    """The witnessing part of the ``AuditStore`` on the store's connections."""

    _db: sqlite3.Connection
    _read: sqlite3.Connection
    _transaction: Callable[[], AbstractAsyncContextManager[None]]

    async def add_cosignature(self, size: int, witness: str, line: str) -> None:
        """Keep a witness's cosignature of the checkpoint of ``size`` (once per witness)."""
        async with self._transaction():
            self._db.execute(
                "INSERT INTO audit_cosignatures (size, witness, line, at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (size, witness, line, format_time(datetime.now(UTC))),
            )

    async def cosignatures(self) -> list[StoredCosignature]:
        """Every cosignature kept, by checkpoint size."""
        rows = self._read.execute(
            "SELECT size, witness, line, at FROM audit_cosignatures ORDER BY size, witness"
        ).fetchall()
        return [StoredCosignature(row[0], row[1], row[2], stored_time(row[3])) for row in rows]

    async def witnessed(self, origin: str) -> Witnessed | None:
        """The latest checkpoint of ``origin`` this witness cosigned."""
        row = self._read.execute(
            "SELECT size, root, note FROM witnessed_logs WHERE origin = ?", (origin,)
        ).fetchone()
        return None if row is None else Witnessed(row[0], bytes(row[1]), row[2])

    async def advance(self, origin: str, old: Witnessed | None, new: Witnessed) -> bool:
        """``new`` becomes the latest of ``origin`` if ``old`` still is."""
        at = format_time(datetime.now(UTC))
        async with self._transaction():
            if old is None:
                changed = self._db.execute(
                    "INSERT INTO witnessed_logs (origin, size, root, note, at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (origin, new.size, new.root, new.note, at),
                )
            else:
                changed = self._db.execute(
                    "UPDATE witnessed_logs SET size = ?, root = ?, note = ?, at = ?"
                    " WHERE origin = ? AND size = ? AND root = ?",
                    (new.size, new.root, new.note, at, origin, old.size, old.root),
                )
            return changed.rowcount == 1
