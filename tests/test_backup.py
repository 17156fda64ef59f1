"""``lgsp-adapter backup`` while the daemon takes packets, and a restore from the copy."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest

from lgsp_adapter.store.backup import backup
from lgsp_adapter.store.sqlite import SqliteStore
from tests.agency_server import AgencyServer, agency_server
from tests.cli_process import lgsp_adapter
from tests.test_daemon_process import TOKEN, config, start, submit
from tests.test_store import packet, received


@pytest.mark.asyncio
async def test_a_backup_taken_under_load_verifies_and_restores(tmp_path: Path) -> None:
    store, copy = tmp_path / "store.sqlite3", tmp_path / "backup.sqlite3"
    async with agency_server(AgencyServer()) as agency:
        settings = config(tmp_path, agency.url)
        process, url = await start(settings)
        async with aiohttp.ClientSession() as session:
            before = [await submit(session, url) for _ in range(5)]
            # Packets keep arriving while the copy is made.
            during = asyncio.gather(*(submit(session, url) for _ in range(40)))
            status, out, err = await lgsp_adapter(
                "backup", "--store", str(store), "--to", str(copy)
            )
            await during
        assert status == 0, err
        assert "integrity ok" in out
        assert copy.stat().st_mode & 0o777 == 0o600  # it holds endpoint secrets
        status, _, err = await lgsp_adapter("backup", "--store", str(store), "--to", str(copy))
        assert status == 1
        assert "never overwrites" in err
        # The copy's audit log verifies against the daemon's key (beside it, as beside the store).
        status, out, err = await lgsp_adapter("audit", "verify", "--store", str(copy))
        assert status == 0, err

        # Restore: stop, put the copy in the store's place, start.
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0
        for leftover in (
            store,
            store.with_name(store.name + "-wal"),
            store.with_name(store.name + "-shm"),
        ):
            leftover.unlink(missing_ok=True)
        copy.rename(store)
        process, url = await start(settings)
        try:
            async with aiohttp.ClientSession() as session:
                for packet_id in before:
                    async with session.get(
                        f"{url}/v1/packets/{packet_id}",
                        headers={"Authorization": f"Bearer {TOKEN}"},
                    ) as response:
                        assert response.status == 200, packet_id
                await submit(session, url)  # and it goes on taking packets
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), timeout=30)
    status, out, err = await lgsp_adapter("audit", "verify", "--store", str(store))
    assert status == 0, err


def test_a_path_with_uri_characters_is_the_file_it_names(tmp_path: Path) -> None:
    # '#', '?' and '%' in a folder's name: read as URI syntax, they opened another file.
    folder = tmp_path / "a#b?c%41"
    folder.mkdir()
    asyncio.run(_made(folder / "store.sqlite3"))
    copy = backup(folder / "store.sqlite3", folder / "copy.sqlite3")
    assert copy.audit_entries == 1


async def _made(path: Path) -> None:
    async with await SqliteStore.open(path) as store:
        p = packet()
        await store.accept(p, [received(p)])
