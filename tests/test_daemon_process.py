"""The daemon as operators run it: a separate process, stopped politely or killed outright."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import BinaryIO

import aiohttp
import pytest

from tests.agency_server import AgencyServer, agency_server
from tests.conftest import EXAMPLES
from tests.documents import numbered
from tests.test_exchange_rabbitmq import remove_topology

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


def log_of(config_path: Path) -> Path:
    """Where a daemon started by :func:`start` writes what it logs: beside its config, so a
    failing test can quote it (each start appends)."""
    return config_path.with_suffix(".log")


def log_tail(config_path: Path, lines: int = 60) -> str:
    """The end of a daemon's log, for an assertion message."""
    path = log_of(config_path)
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


async def start(config_path: Path) -> tuple[asyncio.subprocess.Process, str]:
    """Start `lgsp-adapter serve` and wait for the line that says where it listens; what it
    logs goes on to :func:`log_of` its config."""
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
    log = log_of(config_path).open("ab")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        raw = await asyncio.wait_for(process.stderr.readline(), timeout=30)
        log.write(raw)
        line = raw.decode(errors="replace")
        if " on http://" in line:
            url = line.split(" on ", 1)[1].split()[0]
            # Keep the pipe from filling, and keep what it says for a failing test.
            _DRAINS.add(asyncio.create_task(_drain(process.stderr, log)))
            return process, url
        if not raw:
            break
    log.close()
    raise AssertionError(f"the daemon did not start:\n{log_tail(config_path)}")


_DRAINS: set[asyncio.Task[None]] = set()


async def _drain(stream: asyncio.StreamReader, log: BinaryIO) -> None:
    with log:
        while line := await stream.readline():
            log.write(line)
            log.flush()


async def submit(session: aiohttp.ClientSession, url: str) -> str:
    async with session.post(
        f"{url}/v1/packets",
        data=numbered(DOCUMENT),
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


def bus_config(
    tmp_path: Path, name: str, exchange: str, served: str, inbox: str, known: str
) -> Path:
    path = tmp_path / f"{name}.toml"
    client = (
        f'[[clients]]\nname = "province"\ntoken = "{TOKEN}"\nagencies = ["{served}"]\n'
        if served == "000.00.00.H56"
        else ""
    )
    path.write_text(
        f"""
[http]
port = 0
requests_per_second = 1000
[bus]
url = "amqp://guest:guest@127.0.0.1:5672/"
exchange = "{exchange}"
[store]
path = "{tmp_path / f"{name}.sqlite3"}"
[delivery]
quick_retries = 0
retry_delays_s = [0.3, 0.3]
[[agencies]]
code = "{served}"
name = "{served}"
[agencies.endpoint]
url = "{inbox}"
[[known_agencies]]
code = "{known}"
{client}"""
    )
    return path


@pytest.mark.asyncio
async def test_two_daemon_processes_exchange_over_rabbitmq(tmp_path: Path) -> None:
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    letter = (EXAMPLES / "edoc-new-thanh-hoa.edxml").read_bytes()
    head, _, rest = letter.decode().partition("<edXML:To>")
    letter = (
        head
        + "<edXML:To><edXML:OrganId>000.21.00.H56</edXML:OrganId></edXML:To>"
        + rest[rest.rindex("</edXML:To>") + len("</edXML:To>") :]
    ).encode()
    commune, province = AgencyServer(), AgencyServer()
    started: list[asyncio.subprocess.Process] = []
    try:
        async with agency_server(commune), agency_server(province):
            b, _ = await start(
                bus_config(tmp_path, "b", exchange, "000.21.00.H56", commune.url, "000.00.00.H56")
            )
            started.append(b)
            a, url = await start(
                bus_config(tmp_path, "a", exchange, "000.00.00.H56", province.url, "000.21.00.H56")
            )
            started.append(a)
            async with aiohttp.ClientSession() as session:
                sent = []
                for _ in range(20):
                    async with session.post(
                        f"{url}/v1/packets",
                        data=numbered(letter),
                        headers={
                            "Authorization": f"Bearer {TOKEN}",
                            "Content-Type": "application/xml",
                        },
                    ) as response:
                        assert response.status == 202, await response.text()
                        sent.append(str((await response.json())["packet_id"]))
                deadline = time.monotonic() + 60
                states: list[str] = []
                while time.monotonic() < deadline:  # another process's effect
                    states = []
                    for packet_id in sent:
                        async with session.get(
                            f"{url}/v1/packets/{packet_id}",
                            headers={"Authorization": f"Bearer {TOKEN}"},
                        ) as response:
                            answer = await response.json()
                            assert response.status == 200, answer
                            states += [d["state"] for d in answer["deliveries"]]
                    if states == ["delivered"] * len(sent):
                        break
                    await asyncio.sleep(0.2)
            for process in (a, b):
                process.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(process.wait(), timeout=20) == 0
    finally:
        for process in started:  # a failure above must not leave daemons running
            if process.returncode is None:
                process.kill()
                await process.wait()
        await remove_topology(exchange, ["000.00.00.H56", "000.21.00.H56"], [0.3])
    assert states == ["delivered"] * len(sent)  # as the sender's daemon learned from receipts
    assert Counter(commune.delivered()) == Counter(sent)
