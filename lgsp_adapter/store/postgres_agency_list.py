"""The agency list on PostgreSQL: the same table and rules as on SQLite (``sqlite_agency_list``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from lgsp_adapter.audit import AuditEntry
from lgsp_adapter.registry.agency_list import Agency, AgencyChange, ImportReport, search_key
from lgsp_adapter.store.postgres_audit import PostgresAuditLog
from lgsp_adapter.store.sqlite_agency_list import COLUMNS, agency_change, merge_plan, versioned

SCHEMA = """
    CREATE TABLE agencies (
        code TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        parent TEXT,
        mail TEXT,
        mobile TEXT,
        fax TEXT,
        deleted INTEGER NOT NULL DEFAULT 0,
        source TEXT NOT NULL,
        search_key TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX agencies_parent ON agencies (parent, code);
"""
VERSION_SCHEMA = """
    ALTER TABLE agencies ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
    UPDATE agencies SET version = numbered.version FROM (
        SELECT code, row_number() OVER (ORDER BY updated_at, code) AS version FROM agencies
    ) AS numbered WHERE agencies.code = numbered.code;
    CREATE INDEX agencies_version ON agencies (version);
"""


class PostgresAgencyList:
    """Reads and imports of the agency list, on the store's pool."""

    def __init__(self, audit: PostgresAuditLog) -> None:
        self._pool = audit.pool
        self._audit = audit

    async def merge(
        self,
        agencies: Sequence[Agency],
        entries: Callable[[ImportReport], list[AuditEntry]],
        *,
        revive: Sequence[str] = (),
    ) -> ImportReport:
        """As ``SqliteAgencyList.merge``, in one transaction under the store's write lock."""
        placeholders = ", ".join(f"${n}" for n in range(1, len(COLUMNS) + 4))
        async with self._pool.acquire() as conn, conn.transaction():
            # Read under the write lock: a replica's merge of its served agencies racing a
            # national import must not overwrite what the import wrote.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self._audit.append_lock)
            rows = await conn.fetch(f"SELECT {', '.join(COLUMNS)} FROM agencies")
            existing = {row[0]: tuple(row) for row in rows}
            now = datetime.now(UTC).isoformat()
            report, added, changed = merge_plan(agencies, existing, now)
            top = await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM agencies")
            added, changed, revived = versioned(added, changed, revive, now, int(top))
            await conn.executemany(
                f"INSERT INTO agencies ({', '.join(COLUMNS)}, search_key, updated_at, version)"
                f" VALUES ({placeholders})",
                added,
            )
            await conn.executemany(
                "UPDATE agencies SET name = $1, parent = $2, mail = $3, mobile = $4, fax = $5,"
                " deleted = $6, source = $7, search_key = $8, updated_at = $9, version = $10"
                " WHERE code = $11",
                changed,
            )
            await conn.executemany(
                "UPDATE agencies SET deleted = 0, updated_at = $1, version = $2 WHERE code = $3"
                " AND deleted = 1",
                revived,
            )
            await self._audit.append_in_transaction(conn, entries(report))
        return report

    async def find(
        self,
        *,
        under: str | None = None,
        search: str | None = None,
        after: str = "",
        limit: int = 100,
        include_deleted: bool = False,
    ) -> list[Agency]:
        """As ``SqliteAgencyList.find``."""
        parameters: list[Any] = [after]
        clauses = ['code COLLATE "C" > $1']
        if under is not None:
            parameters.append(under)
            clauses.append(f"parent = ${len(parameters)}")
        if search:
            parameters.append(search_key(search))
            clauses.append(f"strpos(search_key, ${len(parameters)}) > 0")
        if not include_deleted:
            clauses.append("deleted = 0")
        parameters.append(limit)
        rows = await self._pool.fetch(
            f"SELECT {', '.join(COLUMNS)} FROM agencies WHERE {' AND '.join(clauses)}"
            f' ORDER BY code COLLATE "C" LIMIT ${len(parameters)}',
            *parameters,
        )
        return [_agency(row) for row in rows]

    async def changes(self, *, after_version: int, limit: int) -> list[AgencyChange]:
        """As ``SqliteAgencyList.changes``."""
        rows = await self._pool.fetch(
            f"SELECT {', '.join(COLUMNS)}, version, updated_at FROM agencies"
            " WHERE version > $1 ORDER BY version LIMIT $2",
            after_version,
            limit,
        )
        return [agency_change(tuple(row)) for row in rows]


def _agency(row: asyncpg.Record) -> Agency:
    return Agency.model_validate({**dict(zip(COLUMNS, row, strict=True)), "deleted": bool(row[6])})
