"""`lgsp-adapter endpoints …` as an integrator runs it in a shell beside a running daemon:
real processes on the daemon's store, the daemon picking each change up, and the same
commands on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from lgsp_adapter.daemon.config import Settings
from tests.agency_server import AgencyServer, agency_server
from tests.test_exchange_embedded import settled
from tests.test_exchange_rabbitmq import daemon, letter_to
from tests.test_registry_web import COMMUNE, PROVINCE, PROVINCE_TOKEN, Api, commune


async def endpoints(
    cwd: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "lgsp_adapter",
            "endpoints",
            *args,
            "--config",
            str(cwd / "lgsp.toml"),
        ],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


@pytest.mark.asyncio
async def test_the_cli_changes_the_registry_of_a_running_daemon(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite3"
    (tmp_path / "lgsp.toml").write_text(f'[store]\npath = "{store}"\n')
    async with AsyncExitStack() as stack:
        province = await stack.enter_async_context(agency_server(AgencyServer()))
        quang_phu = await stack.enter_async_context(agency_server(AgencyServer()))
        config = Settings.model_validate(
            {
                "http": {"port": 0},
                "store": {"path": str(store)},
                "daemon": {"drain_s": 5, "registry_poll_s": 0.1},
                "agencies": [
                    {"code": PROVINCE, "name": "UBND tỉnh", "endpoint": {"url": province.url}}
                ],
                "clients": [{"name": "province", "token": PROVINCE_TOKEN, "agencies": [PROVINCE]}],
            }
        )
        url = await stack.enter_async_context(daemon(config))
        body = commune(quang_phu.url) | {
            "endpoint": {"url": quang_phu.url, "auth": {"kind": "bearer", "token": "b" * 30}}
        }
        added = await endpoints(tmp_path, "add", "-", stdin=json.dumps(body))
        assert added.returncode == 0, added.stderr
        record = json.loads(added.stdout)
        assert record["endpoint"]["auth"]["token"] == "**********"
        assert len(record["token"]) >= 40
        assert "shown this once" in added.stderr

        # The daemon sees it within its poll, and delivers the next packet there.
        async with aiohttp.ClientSession() as session:
            sender = Api(session, url, PROVINCE_TOKEN)
            for _ in range(100):
                status, answer, _ = await sender.call(
                    "POST", "/v1/packets", letter_to(COMMUNE), **{"Content-Type": "application/xml"}
                )
                if status == 202:
                    break
                await asyncio.sleep(0.05)
            assert status == 202
        await settled(url, answer["packet_id"])
        assert len(quang_phu.received) == 1
        assert quang_phu.received[0].headers["Authorization"] == "Bearer " + "b" * 30

        listed = await endpoints(tmp_path, "list")
        assert listed.returncode == 0
        lines = listed.stdout.splitlines()
        assert any(line.split()[:3] == [COMMUNE, "push", "enabled"] for line in lines), lines

        stale = await endpoints(
            tmp_path, "change", COMMUNE, "-", "--revision", "7", stdin='{"name": "x"}'
        )
        assert stale.returncode == 1
        assert "registry.conflict" in stale.stderr
        changed = await endpoints(
            tmp_path,
            "change",
            COMMUNE,
            "-",
            "--revision",
            "1",
            stdin='{"endpoint": {"timeout_s": 3}}',
        )
        assert changed.returncode == 0, changed.stderr
        assert json.loads(changed.stdout)["revision"] == 2

        tested = await endpoints(tmp_path, "test", COMMUNE)
        assert tested.returncode == 0, tested.stdout
        assert json.loads(tested.stdout)["verdict"] == "answers"

        issued = await endpoints(tmp_path, "token", "issue", COMMUNE, "--label", "backup")
        assert issued.returncode == 0
        token_id = json.loads(issued.stdout)["id"]
        shown = json.loads((await endpoints(tmp_path, "show", COMMUNE)).stdout)
        assert [t["label"] for t in shown["tokens"]] == ["system", "backup"]
        assert (
            json.loads(issued.stdout)["token"]
            not in (await endpoints(tmp_path, "show", COMMUNE)).stdout
        )
        revoked = await endpoints(tmp_path, "token", "revoke", COMMUNE, token_id)
        assert revoked.returncode == 0

        bad = await endpoints(
            tmp_path, "add", "-", stdin=json.dumps(commune("gopher://x/", "000.21.01.H56"))
        )
        assert bad.returncode == 1
        assert "registry.invalid" in bad.stderr
        assert "endpoint.url" in bad.stderr
        removed = await endpoints(tmp_path, "remove", COMMUNE)
        assert removed.returncode == 0
        gone = await endpoints(tmp_path, "show", COMMUNE)
        assert gone.returncode == 1
        assert "registry.not_found" in gone.stderr
    unreachable_test = await endpoints(tmp_path, "test", PROVINCE)  # its server has stopped
    assert unreachable_test.returncode == 1
    assert json.loads(unreachable_test.stdout)["error"]["code"] == "endpoint.unreachable"


@pytest.mark.asyncio
async def test_the_cli_works_on_postgresql(tmp_path: Path, postgres_database: str) -> None:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(postgres_database)
    await conn.execute(f"CREATE SCHEMA {schema}")
    await conn.close()
    dsn = f"{postgres_database}?search_path={schema}"
    (tmp_path / "lgsp.toml").write_text("")
    added = await endpoints(
        tmp_path,
        "add",
        "-",
        "--store",
        dsn,
        "--no-token",
        stdin=json.dumps(commune("http://127.0.0.1:9/")),
    )
    assert added.returncode == 0, added.stderr
    assert "token" not in json.loads(added.stdout)
    listed = await endpoints(tmp_path, "list", "--store", dsn)
    assert listed.stdout.split()[:4] == [COMMUNE, "push", "enabled", "http://127.0.0.1:9/"]
    duplicate = await endpoints(
        tmp_path, "add", "-", "--store", dsn, stdin=json.dumps(commune("http://127.0.0.1:9/"))
    )
    assert duplicate.returncode == 1
    assert "registry.duplicate" in duplicate.stderr
