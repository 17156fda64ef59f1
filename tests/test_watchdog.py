"""A consumer the broker cancels (its queue deleted by an operator's mistake) is attached again
by the watchdog; /readyz says unready meanwhile, and nothing sent afterwards is lost."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest

from lgsp_adapter.bus.topology import Topology
from lgsp_adapter.daemon.config import Settings
from tests.agency_server import AgencyServer, agency_server, arrival
from tests.test_exchange_embedded import submit
from tests.test_exchange_rabbitmq import (
    BROKER,
    COMMUNE,
    PROVINCE,
    daemon,
    letter_to,
    remove_topology,
)
from tests.test_registry_live import consumer_count
from tests.test_registry_web import PROVINCE_TOKEN


async def readiness(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with session.get(f"{url}/readyz") as response:
        return response.status, await response.json()


@asynccontextmanager
async def consumer_lost(
    tmp_path: Path, commune: AgencyServer, watch_s: float
) -> AsyncIterator[tuple[str, aiohttp.ClientSession, str]]:
    """A daemon on RabbitMQ, ready, whose commune's queue is then deleted under it."""
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    config = Settings.model_validate(
        {
            "bus": {"url": BROKER, "exchange": exchange},
            "http": {"port": 0},
            "store": {"path": str(tmp_path / "store.sqlite3")},
            "daemon": {"consumer_watch_s": watch_s},
            "agencies": [
                {"code": PROVINCE, "name": "tỉnh", "endpoint": {"mode": "pull"}},
                {"code": COMMUNE, "name": "xã", "endpoint": {"url": commune.url}},
            ],
            "clients": [{"name": "province", "token": PROVINCE_TOKEN, "agencies": [PROVINCE]}],
        }
    )
    try:
        async with daemon(config) as url, aiohttp.ClientSession() as session:
            # Ready once its consumers are attached (not before: readiness says so).
            assert (await readiness_becomes(session, url, "ready"))["status"] == "ready"
            connection = await aio_pika.connect(BROKER)
            async with connection:
                channel = await connection.channel()
                await channel.queue_delete(Topology(exchange).agency_queue(COMMUNE))
            yield url, session, exchange
    finally:
        await remove_topology(exchange, [PROVINCE, COMMUNE])


async def readiness_becomes(
    session: aiohttp.ClientSession, url: str, wanted: str, timeout_s: float = 20
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        _, report = await readiness(session, url)
        if report["status"] == wanted or time.monotonic() > deadline:
            return report
        await asyncio.sleep(0.05)


@pytest.mark.asyncio
async def test_readiness_names_an_agency_whose_consumer_vanished(tmp_path: Path) -> None:
    commune = AgencyServer()
    async with (
        agency_server(commune),
        consumer_lost(tmp_path, commune, watch_s=3600) as (url, session, _),  # no watchdog now
    ):
        report = await readiness_becomes(session, url, "unready")
    assert report["status"] == "unready", report
    assert COMMUNE in report["why"]


@pytest.mark.asyncio
async def test_the_watchdog_attaches_a_vanished_consumer_again(tmp_path: Path) -> None:
    commune = AgencyServer()
    async with (
        agency_server(commune),
        consumer_lost(tmp_path, commune, watch_s=0.5) as (url, session, exchange),
    ):
        await asyncio.sleep(1)  # a look of the watchdog at least
        report = await readiness_becomes(session, url, "ready")
        assert report["status"] == "ready", report
        # aio-pika restores a cancelled consumer by itself once its queue is back (after its
        # 5 s): the watchdog's must be the only one then, not a second beside it.
        await asyncio.sleep(6)
        assert await consumer_count(exchange, COMMUNE) == 1
        packet_id = await submit(url, letter_to(COMMUNE))
        await arrival(commune, packet_id)
    assert commune.delivered() == [packet_id]
