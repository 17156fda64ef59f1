"""The audit log's two stores, opened fresh for a test, and a way around their triggers to play
the attacker who has the database's own credentials."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from lgsp_adapter.audit.store import AuditStore
from lgsp_adapter.store.postgres_audit import PostgresAuditLog
from lgsp_adapter.store.sqlite import SqliteStore

BACKENDS = ["sqlite", "postgres"]


class Attacker:
    """Runs SQL on the store as someone with full access to the database would."""

    def __init__(self, backend: str, location: str) -> None:
        self.backend = backend
        self.location = location

    async def run(self, *statements: str) -> None:
        """Run ``statements`` with the append-only triggers out of the way."""
        if self.backend == "sqlite":
            db = sqlite3.connect(self.location)
            try:
                triggers = db.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
                ).fetchall()
                for name, _ in triggers:
                    db.execute(f"DROP TRIGGER {name}")
                for sql in statements:
                    db.execute(sql.replace("$bytes", "x"))
                for _, sql in triggers:
                    db.execute(sql)
                db.commit()
            finally:
                db.close()
            return
        conn = await asyncpg.connect(self.location)
        try:
            async with conn.transaction():
                await conn.execute("SET LOCAL session_replication_role = replica")
                for sql in statements:
                    await conn.execute(_pg(sql))
        finally:
            await conn.close()


def _pg(sql: str) -> str:
    # Blob literals are written x'..' for SQLite; PostgreSQL spells them '\x..'::bytea.
    out = []
    rest = sql
    while "$bytes'" in rest:
        before, _, after = rest.partition("$bytes'")
        hex_text, _, rest = after.partition("'")
        out.append(f"{before}'\\x{hex_text}'::bytea")
    out.append(rest)
    return "".join(out)


@asynccontextmanager
async def open_store(
    backend: str, tmp_path: Path, postgres_database: str
) -> AsyncIterator[tuple[AuditStore, Attacker]]:
    """A fresh audit store on ``backend`` and the attacker of that store."""
    if backend == "sqlite":
        path = tmp_path / "store.sqlite3"
        async with await SqliteStore.open(path) as store:
            yield store.audit, Attacker("sqlite", str(path))
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(postgres_database)
    await conn.execute(f"CREATE SCHEMA {schema}")
    await conn.close()
    dsn = f"{postgres_database}?search_path={schema}"
    async with await PostgresAuditLog.open(dsn) as log:
        yield log, Attacker("postgres", dsn)


@asynccontextmanager
async def reopen(backend: str, location: str) -> AsyncIterator[AuditStore]:
    """Another handle on a store ``open_store`` made (another process, another replica)."""
    if backend == "sqlite":
        async with await SqliteStore.open(Path(location)) as store:
            yield store.audit
        return
    async with await PostgresAuditLog.open(location) as log:
        yield log
