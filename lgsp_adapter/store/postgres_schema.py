"""Versioned schemas on PostgreSQL: each part of the store (the audit log, the registry) keeps
its version in ``lgsp_schema`` and moves forward by its own list of scripts, never edited once
shipped. A part's advisory lock makes two processes starting at once migrate one at a time."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import asyncpg

from lgsp_adapter.errors import ErrorCode, FatalError
from lgsp_adapter.store.rows import schema_behind


def lock_key(schema: str, name: str) -> int:
    """The advisory lock ``name`` of the store in ``schema``: advisory locks are database-wide,
    and the stores of two schemas in one database must not share theirs."""
    digest = hashlib.sha256(f"lgsp-adapter:{schema}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def migrate(
    pool: asyncpg.Pool, part: str, scripts: Sequence[str], schema: str, *, apply: bool = True
) -> None:
    """Bring ``part`` up to ``len(scripts)``, in one transaction under the schema's migration
    lock (every part takes the same one: two processes starting at once go one at a time); with
    ``apply`` false, refuse a part that is behind instead."""
    lock = lock_key(schema, "migrate")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS lgsp_schema (part TEXT PRIMARY KEY, version INT)"
        )
        version = await conn.fetchval("SELECT version FROM lgsp_schema WHERE part = $1", part) or 0
        if version > len(scripts):
            raise FatalError(
                ErrorCode.STORE_UNAVAILABLE,
                f"the {part} schema (version {version}) is newer than this adapter knows",
            )
        if version < len(scripts) and not apply:
            raise schema_behind(part, version, len(scripts))
        for script in scripts[version:]:
            await conn.execute(script)
        await conn.execute(
            "INSERT INTO lgsp_schema (part, version) VALUES ($1, $2)"
            " ON CONFLICT (part) DO UPDATE SET version = $2",
            part,
            len(scripts),
        )
