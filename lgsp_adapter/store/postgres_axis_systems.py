"""The axis systems of the registry on PostgreSQL: the same table as on SQLite
(``sqlite_axis_systems``), changed under the registry's advisory lock."""

from __future__ import annotations

import json

import asyncpg

from lgsp_adapter.registry.records import AxisEditor, AxisSystemRecord
from lgsp_adapter.store.postgres_audit import Conn, PostgresAuditLog
from lgsp_adapter.store.sqlite_axis_systems import AXIS_COLUMNS, axis_system_record

SCHEMA = """
    CREATE TABLE registry_axis_systems (
        system_id TEXT PRIMARY KEY,
        agencies TEXT NOT NULL,
        sealed_secret TEXT NOT NULL,
        label TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        updated_by TEXT NOT NULL
    );
"""


KEY_CHECK_SCHEMA = "ALTER TABLE registry_state ADD COLUMN sealed_key_check TEXT;"


class PostgresAxisSystems:
    """The axis systems' half of the PostgreSQL ``RegistryStore``."""

    audit: PostgresAuditLog
    _pool: asyncpg.Pool
    _lock: int

    async def axis_systems(self) -> list[AxisSystemRecord]:
        """Every axis system, by system id."""
        rows = await self._pool.fetch(
            f"SELECT {AXIS_COLUMNS} FROM registry_axis_systems ORDER BY system_id"
        )
        return [axis_system_record(tuple(row)) for row in rows]

    async def key_check(self, sealed: str) -> str:
        """The check value of the key sealing the secrets: ``sealed`` when none was kept."""
        kept = await self._pool.fetchval(
            "UPDATE registry_state SET sealed_key_check = COALESCE(sealed_key_check, $1)"
            " RETURNING sealed_key_check",
            sealed,
        )
        return str(kept)

    async def change_axis_system(
        self, system_id: str, edit: AxisEditor, *, actor: str
    ) -> AxisSystemRecord | None:
        """Read, edit and write one system's record in one transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self._lock)
            current = await _axis_system(conn, system_id)
            outcome = edit(current)
            if outcome is None:
                return current
            if outcome.system is None:
                await conn.execute(
                    "DELETE FROM registry_axis_systems WHERE system_id = $1", system_id
                )
            else:
                new = outcome.system
                await conn.execute(
                    f"INSERT INTO registry_axis_systems ({AXIS_COLUMNS})"
                    " VALUES ($1, $2, $3, $4, now(), now(), $5) ON CONFLICT (system_id)"
                    " DO UPDATE SET agencies = excluded.agencies,"
                    " sealed_secret = excluded.sealed_secret, label = excluded.label,"
                    " updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                    system_id,
                    json.dumps(list(new.agencies)),
                    new.sealed_secret,
                    new.label,
                    actor,
                )
            await conn.execute("UPDATE registry_state SET revision = revision + 1")
            await self.audit.append_in_transaction(conn, outcome.entries)
            return await _axis_system(conn, system_id)


async def _axis_system(conn: Conn, system_id: str) -> AxisSystemRecord | None:
    row = await conn.fetchrow(
        f"SELECT {AXIS_COLUMNS} FROM registry_axis_systems WHERE system_id = $1", system_id
    )
    return None if row is None else axis_system_record(tuple(row))
