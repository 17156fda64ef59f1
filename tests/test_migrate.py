"""``lgsp-adapter migrate`` on both stores: from nothing to current, then nothing to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_process import lgsp_adapter


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
