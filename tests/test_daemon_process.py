"""The daemon as operators run it: a separate process, stopped politely or killed outright."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from tests.agency_server import AgencyServer, agency_server
from tests.conftest import EXAMPLES

TOKEN = "province-office-token-0123456789"
DOCUMENT = (EXAMPLES / "status-03-accepted.edxml").read_bytes()  # commune 000.21.00.H56 -> H56


def config(tmp_path: Path, inbox: str) -> Path:
    path = tmp_path / "lgsp.toml"
    path.write_text(
        f"""
[http]
port = 0
[store]
path = "{tmp_path / "store.sqlite3"}"
[delivery]
quick_retries = 0
retry_delays_s = {[0.2] * 100}
[daemon]
drain_s = 5
[[agencies]]
code = "000.00.00.H56"
name = "UBND tỉnh Thanh Hóa"
[agencies.endpoint]
url = "{inbox}"
[[agencies]]
code = "000.21.00.H56"
name = "UBND xã Quảng Phú"
[agencies.endpoint]
url = "{inbox}"
[[clients]]
name = "quang-phu"
token = "{TOKEN}"
agencies = ["000.21.00.H56"]
"""
    )
    return path


async def start(config_path: Path) -> tuple[asyncio.subprocess.Process, str]:
    """Start `lgsp-adapter serve` and wait for the line that says where it listens."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lgsp_adapter",
        "serve",
        "--config",
        str(config_path),
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = (await asyncio.wait_for(process.stderr.readline(), timeout=30)).decode()
        if " on http://" in line:
            url = line.split(" on ", 1)[1].split()[0]
            _DRAINS.add(asyncio.create_task(_drain(process.stderr)))  # keep the pipe from filling
            return process, url
    raise AssertionError("the daemon did not start")


_DRAINS: set[asyncio.Task[None]] = set()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def submit(session: aiohttp.ClientSession, url: str) -> str:
    async with session.post(
        f"{url}/v1/packets",
        data=DOCUMENT,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/xml"},
    ) as response:
        assert response.status == 202, await response.text()
        return str((await response.json())["packet_id"])


@pytest.mark.asyncio
async def test_sigterm_stops_intake_and_exits_cleanly(tmp_path: Path) -> None:
    async with agency_server(AgencyServer()) as agency:
        process, url = await start(config(tmp_path, agency.url))
        async with aiohttp.ClientSession() as session:
            await submit(session, url)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=20) == 0


@pytest.mark.asyncio
async def test_a_daemon_killed_mid_stream_loses_nothing_it_accepted(tmp_path: Path) -> None:
    # The agency system is down while packets arrive, so deliveries are in every stage when
    # the daemon is killed; after the restart and the system's return, each must arrive.
    agency = AgencyServer(then=503)
    async with agency_server(agency):
        path = config(tmp_path, agency.url)
        process, url = await start(path)
        async with aiohttp.ClientSession() as session:
            accepted = [await submit(session, url) for _ in range(40)]
            os.kill(process.pid, signal.SIGKILL)
            await process.wait()
            agency.then = 200
            process, url = await start(path)
            deadline = time.monotonic() + 60
            # Polling: the effect to wait for happens in another process.
            while time.monotonic() < deadline and not set(accepted) <= set(agency.delivered()):  # noqa: ASYNC110
                await asyncio.sleep(0.2)
            await asyncio.sleep(1)  # time for any duplicate to show up
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=20)
    delivered = Counter(agency.delivered())
    assert set(accepted) <= set(delivered), "an accepted packet was lost"
    assert max(delivered.values()) == 1, f"delivered twice: {delivered.most_common(3)}"
