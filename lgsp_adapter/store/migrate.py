"""``lgsp-adapter migrate``: bring a store's schema up to this version of the adapter.

The daemon migrates at start too; an upgrade that should not wait on a daemon's start (several
replicas on one PostgreSQL, a window of its own) runs this first. Migrations only move forward
and are never edited once shipped; a store newer than the adapter is refused.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg

from lgsp_adapter.errors import ErrorCode, FatalError
from lgsp_adapter.store.location import is_postgres
from lgsp_adapter.store.postgres import PostgresStore
from lgsp_adapter.store.sqlite import SqliteStore

Versions = dict[str, int]
"""Each part of a store and its schema version."""


def _sqlite_version(path: Path) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


async def _postgres_versions(dsn: str) -> Versions:
    try:
        conn = await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError) as exc:
        raise FatalError(
            ErrorCode.STORE_UNAVAILABLE, f"cannot connect to PostgreSQL: {exc}"
        ) from exc
    try:
        if not await conn.fetchval("SELECT to_regclass('lgsp_schema') IS NOT NULL"):
            return {}
        rows = await conn.fetch("SELECT part, version FROM lgsp_schema ORDER BY part")
        return {row["part"]: row["version"] for row in rows}
    finally:
        await conn.close()


async def migrate(location: str) -> tuple[Versions, Versions]:
    """Migrate the store at ``location`` (a SQLite file or a postgresql:// URL): its parts'
    versions before and after."""
    if is_postgres(location):
        before = await _postgres_versions(location)
        shared = await PostgresStore.open(location)  # migrates every part
        await shared.close()
        return before, await _postgres_versions(location)
    path = Path(location)
    before = {"store": _sqlite_version(path)}
    store = await SqliteStore.open(path)
    await store.close()
    return before, {"store": _sqlite_version(path)}
