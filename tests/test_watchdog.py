"""A consumer the broker cancels (its queue deleted by an operator's mistake) is attached again
by the watchdog; /readyz says unready meanwhile, and nothing sent afterwards is lost."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest

from lgsp_adapter.bus.topology import Topology
from lgsp_adapter.config import Settings
from tests.agency_server import AgencyServer, agency_server
from tests.test_exchange_rabbitmq import (
    BROKER,
    COMMUNE,
    PROVINCE,
    daemon,
    letter_to,
    remove_topology,
)
from tests.test_registry_web import PROVINCE_TOKEN


async def readiness(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with session.get(f"{url}/readyz") as response:
        return response.status, await response.json()


@pytest.mark.asyncio
async def test_a_vanished_consumer_is_attached_again(tmp_path: Path) -> None:
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    commune = AgencyServer()
    try:
        async with agency_server(commune):
            config = Settings.model_validate(
                {
                    "bus": {"url": BROKER, "exchange": exchange},
                    "http": {"port": 0},
                    "store": {"path": str(tmp_path / "store.sqlite3")},
                    "daemon": {"consumer_watch_s": 3},
                    "agencies": [
                        {"code": PROVINCE, "name": "tỉnh", "endpoint": {"mode": "pull"}},
                        {"code": COMMUNE, "name": "xã", "endpoint": {"url": commune.url}},
                    ],
                    "clients": [
                        {"name": "province", "token": PROVINCE_TOKEN, "agencies": [PROVINCE]}
                    ],
                }
            )
            async with daemon(config) as url, aiohttp.ClientSession() as session:
                assert (await readiness(session, url))[0] == 200
                connection = await aio_pika.connect(BROKER)
                async with connection:
                    channel = await connection.channel()
                    await channel.queue_delete(Topology(exchange).agency_queue(COMMUNE))

                seen: list[tuple[int, str]] = []
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    status, report = await readiness(session, url)
                    seen.append((status, report["status"]))
                    if seen[-1] == (200, "ready") and (503, "unready") in seen:
                        break
                    await asyncio.sleep(0.05)
                assert (503, "unready") in seen, seen[:5]
                assert seen[-1] == (200, "ready"), seen[-5:]

                async with session.post(
                    f"{url}/v1/packets",
                    data=letter_to(COMMUNE),
                    headers={
                        "Authorization": f"Bearer {PROVINCE_TOKEN}",
                        "Content-Type": "application/xml",
                    },
                ) as response:
                    assert response.status == 202
                    packet_id = (await response.json())["packet_id"]
                for _ in range(200):
                    if packet_id in commune.delivered():
                        break
                    await asyncio.sleep(0.05)
    finally:
        await remove_topology(exchange, [PROVINCE, COMMUNE])
    assert commune.delivered() == [packet_id]
