"""The exchange's two stores, opened fresh for a test: one SQLite file, or one PostgreSQL schema
that a second handle can share as another replica would."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from lgsp_adapter.store import Store
from lgsp_adapter.store.postgres import PostgresStore
from lgsp_adapter.store.sqlite import SqliteStore

BACKENDS = ["sqlite", "postgres"]


async def fresh_schema(postgres_database: str) -> str:
    """A DSN whose tables land in a new, empty schema of the test run's database."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(postgres_database)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()
    return f"{postgres_database}?search_path={schema}"


@asynccontextmanager
async def open_exchange_store(
    backend: str, tmp_path: Path, postgres_database: str | None
) -> AsyncIterator[tuple[Store, str]]:
    """A fresh store on ``backend`` and where it lives (a file, or a DSN)."""
    if backend == "sqlite":
        path = tmp_path / "store.sqlite3"
        async with await SqliteStore.open(path) as store:
            yield store, str(path)
        return
    assert postgres_database is not None
    dsn = await fresh_schema(postgres_database)
    async with await PostgresStore.open(dsn) as opened:
        yield opened, dsn
