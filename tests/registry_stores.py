"""The registry's two stores, opened fresh for a test, and reopened as another process would."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from lgsp_adapter.audit.store import AuditStore
from lgsp_adapter.registry.records import RegistryStore
from lgsp_adapter.store.postgres_registry import PostgresRegistry
from lgsp_adapter.store.sqlite import SqliteStore

BACKENDS = ["sqlite", "postgres"]


@dataclass(frozen=True)
class Opened:
    """A registry store, the audit log it appends to, and where it lives."""

    registry: RegistryStore
    audit: AuditStore
    backend: str
    location: str

    async def dump(self) -> str:
        """Every byte of text the store holds, to look for what must not be there."""
        if self.backend == "sqlite":
            return await asyncio.to_thread(_files_text, Path(self.location))
        conn = await asyncpg.connect(self.location)
        try:
            rows = await conn.fetch("SELECT record FROM registry_endpoints")
            rows += await conn.fetch("SELECT digest, label FROM registry_tokens")
            rows += await conn.fetch("SELECT detail FROM audit_entries")
            rows += await conn.fetch("SELECT sealed_secret FROM registry_axis_systems")
        finally:
            await conn.close()
        return "\n".join(str(tuple(row)) for row in rows)


@asynccontextmanager
async def open_registry(
    backend: str, tmp_path: Path, postgres_database: str
) -> AsyncIterator[Opened]:
    """A fresh registry store on ``backend``."""
    if backend == "sqlite":
        path = tmp_path / "store.sqlite3"
        async with await SqliteStore.open(path) as store:
            yield Opened(store.registry, store.audit, backend, str(path))
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(postgres_database)
    await conn.execute(f"CREATE SCHEMA {schema}")
    await conn.close()
    dsn = f"{postgres_database}?search_path={schema}"
    async with await PostgresRegistry.open(dsn) as registry:
        yield Opened(registry, registry.audit, backend, dsn)


@pytest_asyncio.fixture(params=BACKENDS)
async def opened(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_database: str
) -> AsyncIterator[Opened]:
    """A fresh registry store, once on each backend."""
    async with open_registry(request.param, tmp_path, postgres_database) as store:
        yield store


@asynccontextmanager
async def reopen_registry(opened: Opened) -> AsyncIterator[RegistryStore]:
    """Another handle on the same registry (the CLI beside a daemon, a replica)."""
    if opened.backend == "sqlite":
        async with await SqliteStore.open(Path(opened.location)) as store:
            yield store.registry
        return
    async with await PostgresRegistry.open(opened.location) as registry:
        yield registry


def _files_text(path: Path) -> str:
    files = [path, *path.parent.glob(f"{path.name}-wal")]
    return "".join(f.read_bytes().decode("latin-1") for f in files)
