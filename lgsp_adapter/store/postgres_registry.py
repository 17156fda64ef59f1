"""The registry of endpoints on PostgreSQL, for daemons that share one database.

The same tables as on SQLite (``sqlite_registry``). Changes take a transaction-scoped advisory
lock: registry changes are rare, and serialising them gives replicas exactly SQLite's
semantics (a create racing a create, a token issued twice) without relying on which unique
index fires first.
"""

from __future__ import annotations

from datetime import datetime

from lgsp_adapter.registry.records import Edit, Editor, EndpointRecord, Source, TokenRecord
from lgsp_adapter.store.closing import ClosedOnExit
from lgsp_adapter.store.postgres_audit import Conn, PostgresAuditLog
from lgsp_adapter.store.postgres_axis_systems import KEY_CHECK_SCHEMA, PostgresAxisSystems
from lgsp_adapter.store.postgres_axis_systems import SCHEMA as AXIS_SYSTEMS_SCHEMA
from lgsp_adapter.store.postgres_schema import lock_key, migrate
from lgsp_adapter.store.sqlite_registry import (
    endpoint_record,
    no_live_token,
    stored_form,
    token_record,
    token_reused,
)

MIGRATIONS = [
    """
    CREATE TABLE registry_endpoints (
        code TEXT PRIMARY KEY,
        record TEXT NOT NULL,
        revision INT NOT NULL,
        source TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        updated_by TEXT NOT NULL
    );
    CREATE TABLE registry_tokens (
        id TEXT PRIMARY KEY,
        digest TEXT NOT NULL UNIQUE,
        agency TEXT NOT NULL,
        label TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        created_by TEXT NOT NULL,
        revoked_at TIMESTAMPTZ
    );
    CREATE INDEX registry_tokens_agency ON registry_tokens (agency, created_at);
    CREATE TABLE registry_state (
        one INT PRIMARY KEY CHECK (one = 1),
        revision BIGINT NOT NULL
    );
    INSERT INTO registry_state VALUES (1, 0);
    """,
    """
    CREATE TABLE registry_removed (
        code TEXT PRIMARY KEY,
        revision INT NOT NULL,
        source TEXT NOT NULL,
        removed_at TIMESTAMPTZ NOT NULL,
        removed_by TEXT NOT NULL
    );
    """,
    AXIS_SYSTEMS_SCHEMA,
    KEY_CHECK_SCHEMA,
]
_ENDPOINT = "SELECT record, revision, source, created_at, updated_at, updated_by, code"
_SELECT_ISSUED = "SELECT id, digest, agency, label, created_at, created_by, revoked_at"


class PostgresRegistry(PostgresAxisSystems, ClosedOnExit):
    """The ``RegistryStore`` on PostgreSQL; ``async with await PostgresRegistry.open(dsn)``."""

    def __init__(self, audit: PostgresAuditLog) -> None:
        self.audit = audit
        self._pool = audit.pool
        self._lock = lock_key(audit.schema, "registry")  # serialises changes

    @classmethod
    async def open(cls, dsn: str, *, migrate: bool = True) -> PostgresRegistry:
        """Connect and bring the audit log's and the registry's schemas up to date (or, with
        ``migrate`` false, refuse them behind)."""
        audit = await PostgresAuditLog.open(dsn, migrate=migrate)
        registry = cls(audit)
        try:
            await registry.migrate(migrate)
        except BaseException:
            await audit.close()
            raise
        return registry

    async def migrate(self, apply: bool = True) -> None:
        """Bring the registry's schema up to date (or, ``apply`` false, refuse it behind)."""
        await migrate(self._pool, "registry", MIGRATIONS, self.audit.schema, apply=apply)

    async def close(self) -> None:
        """Close the audit log it writes through (and, with it, its pool)."""
        await self.audit.close()

    async def revision(self) -> int:
        """The registry's revision."""
        return int(await self._pool.fetchval("SELECT revision FROM registry_state") or 0)

    async def endpoints(self) -> list[EndpointRecord]:
        """Every record, by code."""
        rows = await self._pool.fetch(f"{_ENDPOINT} FROM registry_endpoints ORDER BY code")
        return [endpoint_record(tuple(row)) for row in rows]

    async def endpoint(self, code: str) -> EndpointRecord | None:
        """One record."""
        async with self._pool.acquire() as conn:
            return await _endpoint(conn, code)

    async def tokens(self, agency: str | None = None) -> list[TokenRecord]:
        """Tokens, revoked ones too."""
        where, parameters = ("WHERE agency = $1", [agency]) if agency else ("", [])
        rows = await self._pool.fetch(
            f"{_SELECT_ISSUED} FROM registry_tokens {where} ORDER BY agency, created_at, id",
            *parameters,
        )
        return [token_record(tuple(row)) for row in rows]

    async def removed(self) -> dict[str, Source]:
        """Codes removed and not registered again, with who removed them."""
        rows = await self._pool.fetch("SELECT code, source FROM registry_removed")
        return {row[0]: Source(row[1]) for row in rows}

    async def change(self, code: str, edit: Editor, *, actor: str) -> EndpointRecord | None:
        """Read, edit and write ``code``'s record in one transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self._lock)
            current = await _endpoint(conn, code)
            outcome = edit(current)
            if outcome is None:
                return current
            now = await conn.fetchval("SELECT now()")
            await _write_record(conn, code, current, outcome, now, actor)
            await _write_tokens(conn, code, outcome, now, actor)
            await conn.execute("UPDATE registry_state SET revision = revision + 1")
            await self.audit.append_in_transaction(conn, outcome.entries)
            return None if outcome.agency is None else await _endpoint(conn, code)


async def _write_record(
    conn: Conn,
    code: str,
    current: EndpointRecord | None,
    outcome: Edit,
    now: datetime,
    actor: str,
) -> None:
    """The record as the edit leaves it: written, or removed with its tokens revoked (its
    revision remembered, so a registration again goes on counting from it)."""
    if outcome.agency is None:
        await conn.execute("DELETE FROM registry_endpoints WHERE code = $1", code)
        await conn.execute(
            "UPDATE registry_tokens SET revoked_at = $1 WHERE agency = $2 AND revoked_at IS NULL",
            now,
            code,
        )
        await conn.execute(
            "INSERT INTO registry_removed (code, revision, source, removed_at, removed_by)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (code) DO UPDATE SET"
            " revision = excluded.revision, source = excluded.source,"
            " removed_at = excluded.removed_at, removed_by = excluded.removed_by",
            code,
            current.revision if current else 0,
            str(outcome.source),
            now,
            actor,
        )
    else:
        await conn.execute(
            "INSERT INTO registry_endpoints (code, record, revision, source, created_at,"
            " updated_at, updated_by) VALUES ($1, $2, COALESCE((SELECT revision + 1"
            " FROM registry_removed WHERE code = $1), 1), $3, $4, $4, $5)"
            " ON CONFLICT (code) DO UPDATE SET record = excluded.record,"
            " revision = registry_endpoints.revision + 1, source = excluded.source,"
            " updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            code,
            stored_form(outcome.agency),
            str(outcome.source),
            now,
            actor,
        )
        await conn.execute("DELETE FROM registry_removed WHERE code = $1", code)


async def _write_tokens(conn: Conn, code: str, outcome: Edit, now: datetime, actor: str) -> None:
    """The tokens the edit issues (never one in use) and revokes (only live ones of ``code``)."""
    for token in outcome.issue:
        if await conn.fetchval("SELECT 1 FROM registry_tokens WHERE digest = $1", token.digest):
            raise token_reused()
    await conn.executemany(
        "INSERT INTO registry_tokens (id, digest, agency, label, created_at, created_by)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        [(t.id, t.digest, code, t.label, now, actor) for t in outcome.issue],
    )
    for token_id in outcome.revoke:
        status = await conn.execute(
            "UPDATE registry_tokens SET revoked_at = $1 WHERE id = $2 AND agency = $3"
            " AND revoked_at IS NULL",
            now,
            token_id,
            code,
        )
        if status != "UPDATE 1":
            raise no_live_token(code, token_id)


async def _endpoint(conn: Conn, code: str) -> EndpointRecord | None:
    row = await conn.fetchrow(f"{_ENDPOINT} FROM registry_endpoints WHERE code = $1", code)
    return None if row is None else endpoint_record(tuple(row))
