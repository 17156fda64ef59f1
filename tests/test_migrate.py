"""``lgsp-adapter migrate`` on both stores: from nothing to current, then nothing to do."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.daemon.run import run_daemon
from lgsp_adapter.errors import FatalError
from lgsp_adapter.store.postgres import PostgresStore
from lgsp_adapter.store.sqlite import SqliteStore
from tests.cli_process import lgsp_adapter
from tests.exchange_stores import fresh_schema


@pytest.mark.asyncio
async def test_a_sqlite_store_is_brought_up_once(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite3"
    status, out, err = await lgsp_adapter("migrate", "--store", str(store))
    assert status == 0, err
    assert out.startswith("store: schema 0 -> ")
    status, out, _ = await lgsp_adapter("migrate", "--store", str(store))
    assert out.strip().endswith(", current")


@pytest.mark.asyncio
async def test_a_postgresql_store_is_brought_up_once(postgres_database: str) -> None:
    status, out, err = await lgsp_adapter("migrate", "--store", postgres_database)
    assert status == 0, err
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["audit", "exchange", "registry"]
    assert all(" 0 -> " in line for line in lines)
    status, out, _ = await lgsp_adapter("migrate", "--store", postgres_database)
    assert all(line.endswith(", current") for line in out.splitlines())
    status, _, err = await lgsp_adapter("migrate", "--store", "postgresql://nobody@127.0.0.1:1/x")
    assert status == 1
    assert "store.unavailable" in err


@pytest.mark.asyncio
async def test_a_daemon_told_not_to_migrate_refuses_a_schema_behind(
    tmp_path: Path, postgres_database: str
) -> None:
    # Replicas upgraded together run `migrate` once, themselves: no daemon changes the schema.
    store = tmp_path / "store.sqlite3"
    sqlite3.connect(store).close()  # a file at schema 0: the refusal, not a missing file's
    settings = Settings.model_validate(
        {
            "http": {"port": 0},
            "store": {"path": str(store), "migrate_on_start": False},
            "agencies": [{"code": "000.00.00.H56", "name": "T", "endpoint": {"url": "http://x/"}}],
        }
    )
    with pytest.raises(FatalError, match="run `lgsp-adapter migrate`"):
        await run_daemon(settings, asyncio.Event())
    status, _, err = await lgsp_adapter("migrate", "--store", str(store))
    assert status == 0, err
    async with await SqliteStore.open(store, migrate=False):
        pass  # up to date: opens

    dsn = await fresh_schema(postgres_database)
    with pytest.raises(FatalError, match="the audit schema is at version 0"):
        await PostgresStore.open(dsn, migrate=False)
    status, _, err = await lgsp_adapter("migrate", "--store", dsn)
    assert status == 0, err
    async with await PostgresStore.open(dsn, migrate=False):
        pass
