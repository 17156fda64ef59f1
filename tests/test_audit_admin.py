"""The daemon's own entries: its key made once, its settings recorded when they change, and a
checkpoint signed when it stops, so a log left by a stopped daemon verifies as it stands."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from lgsp_adapter.audit import AuditEvent
from lgsp_adapter.audit.query import AuditQuery
from lgsp_adapter.audit.signing import LogKey
from lgsp_adapter.audit.verify import verify_log
from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.daemon.run import run_daemon
from lgsp_adapter.store.sqlite import SqliteStore

ORIGIN = "lgsp-adapter/admin-test"


def settings(tmp_path: Path, **changes: Any) -> Settings:
    return Settings.model_validate(
        {
            "http": {"port": 0},
            "store": {"path": str(tmp_path / "store.sqlite3")},
            "audit": {"origin": ORIGIN},
            "agencies": [
                {
                    "code": "000.00.00.H56",
                    "name": "UBND",
                    "endpoint": {"url": "http://127.0.0.1:9/inbox"},
                }
            ],
            "clients": [
                {
                    "name": "qlvb",
                    "token": changes.get("token", "province-office-token-0123456789"),
                    "agencies": ["000.00.00.H56"],
                }
            ],
        }
    )


async def start_and_stop(config: Settings) -> None:
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_daemon(config, stop, ready.set_result))
    await asyncio.wait_for(asyncio.shield(ready), timeout=10)
    stop.set()
    await asyncio.wait_for(task, timeout=10)


@pytest.mark.asyncio
async def test_the_daemon_records_its_key_and_settings_changes_and_signs_on_stop(
    tmp_path: Path,
) -> None:
    await start_and_stop(settings(tmp_path))
    await start_and_stop(settings(tmp_path))  # the same settings: nothing new to record
    await start_and_stop(settings(tmp_path, token="a-new-token-for-the-qlvb-system-0001"))
    key_path = tmp_path / "audit-signing.key"
    assert key_path.stat().st_mode & 0o777 == 0o600
    key = LogKey.load(key_path, ORIGIN)
    async with await SqliteStore.open(tmp_path / "store.sqlite3") as store:
        entries = await store.audit.query(AuditQuery(limit=100))
        assert [(e.event, e.outcome) for e in entries] == [
            (AuditEvent.ADMIN, "key_created"),
            (AuditEvent.CONFIG_CHANGED, "first"),
            (AuditEvent.ADMIN, "endpoint_from_settings"),  # into the registry, once
            (AuditEvent.ADMIN, "agencies_from_settings"),  # and the agency list, once
            (AuditEvent.CONFIG_CHANGED, "changed"),  # a token changed: only its digest shows
        ]
        assert "a-new-token" not in str(entries)
        assert key.verifier.fingerprint in (entries[0].detail or "")
        checkpoints = await store.audit.checkpoints()
        assert checkpoints[-1].size == 5  # signed at the last stop
        report = await verify_log(store.audit, key.verifier)
        assert report.ok, report.problems
