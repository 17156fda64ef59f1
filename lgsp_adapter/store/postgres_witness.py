"""Witnessing on PostgreSQL: the same two tables as on SQLite (``sqlite_witness``), the
cosignatures append-only by trigger, the witness's view of each log advanced by compare-and-swap
(one statement, so replicas sharing the database never both advance it from one checkpoint).
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from lgsp_adapter.audit.entry import format_time
from lgsp_adapter.audit.store import StoredCosignature, stored_time
from lgsp_adapter.audit.witness import Witnessed

SCHEMA = """
    CREATE TABLE audit_cosignatures (
        size BIGINT NOT NULL,
        witness TEXT NOT NULL,
        line TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (size, witness)
    );
    CREATE TRIGGER audit_cosignatures_append_only BEFORE UPDATE OR DELETE ON audit_cosignatures
        FOR EACH ROW EXECUTE FUNCTION audit_append_only();
    CREATE TRIGGER audit_cosignatures_no_truncate BEFORE TRUNCATE ON audit_cosignatures
        FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
    CREATE TABLE witnessed_logs (
        origin TEXT PRIMARY KEY,
        size BIGINT NOT NULL,
        root BYTEA NOT NULL,
        note TEXT NOT NULL,
        at TEXT NOT NULL
    );
"""


class PostgresWitnessing:
    """The witnessing part of the ``AuditStore`` on the log's pool."""

    _pool: asyncpg.Pool

    async def add_cosignature(self, size: int, witness: str, line: str) -> None:
        """Keep a witness's cosignature of the checkpoint of ``size`` (once per witness)."""
        await self._pool.execute(
            "INSERT INTO audit_cosignatures (size, witness, line, at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING",
            size,
            witness,
            line,
            format_time(datetime.now(UTC)),
        )

    async def cosignatures(self) -> list[StoredCosignature]:
        """Every cosignature kept, by checkpoint size."""
        rows = await self._pool.fetch(
            "SELECT size, witness, line, at FROM audit_cosignatures ORDER BY size, witness"
        )
        return [StoredCosignature(row[0], row[1], row[2], stored_time(row[3])) for row in rows]

    async def witnessed(self, origin: str) -> Witnessed | None:
        """The latest checkpoint of ``origin`` this witness cosigned."""
        row = await self._pool.fetchrow(
            "SELECT size, root, note FROM witnessed_logs WHERE origin = $1", origin
        )
        return None if row is None else Witnessed(row[0], bytes(row[1]), row[2])

    async def advance(self, origin: str, old: Witnessed | None, new: Witnessed) -> bool:
        """``new`` becomes the latest of ``origin`` if ``old`` still is."""
        at = format_time(datetime.now(UTC))
        if old is None:
            status = await self._pool.execute(
                "INSERT INTO witnessed_logs (origin, size, root, note, at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                origin,
                new.size,
                new.root,
                new.note,
                at,
            )
        else:
            status = await self._pool.execute(
                "UPDATE witnessed_logs SET size = $1, root = $2, note = $3, at = $4"
                " WHERE origin = $5 AND size = $6 AND root = $7",
                new.size,
                new.root,
                new.note,
                at,
                origin,
                old.size,
                old.root,
            )
        return str(status).endswith(" 1")
