"""Open the store a location names, whichever kind it is."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from lgsp_adapter.errors import ErrorCode, FatalError
from lgsp_adapter.store.base import Store
from lgsp_adapter.store.location import is_postgres
from lgsp_adapter.store.postgres import PostgresStore
from lgsp_adapter.store.sqlite import SqliteStore


async def open_store(
    location: str,
    *,
    owner: bool = False,
    existing: bool = False,
    pool_size: int = 10,
    migrate: bool = True,
) -> Store:
    """The store at ``location`` (a SQLite file or a postgresql:// URL), its schema brought up
    to date. ``owner``: this process runs the exchange (on SQLite, the only one that may).
    ``existing``: a command that only reads or changes a store must never create an empty
    SQLite file by mistake. ``migrate`` false: refuse a schema that is behind."""
    if is_postgres(location):
        return await PostgresStore.open(location, pool_size=pool_size, migrate=migrate)
    path = Path(location)
    if existing and not await asyncio.to_thread(path.is_file):
        raise FatalError(ErrorCode.STORE_UNAVAILABLE, f"no store at {path}")
    return await SqliteStore.open(path, owner=owner, migrate=migrate)


@asynccontextmanager
async def opened(location: str, **options: Any) -> AsyncIterator[Store]:
    """``open_store`` for the length of a ``with``: closed however it ends."""
    store = await open_store(location, **options)
    try:
        yield store
    finally:
        await store.close()
