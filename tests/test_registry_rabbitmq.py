"""The done-when of the registry: with both daemons running on RabbitMQ, an integrator
registers a new commune's system on the district's daemon, tests it, and the province's very
next packet for that commune crosses the bus and is delivered there. Removing it stops the
consumer without losing what waits in its queue; registering it again delivers that too."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import aio_pika
import aiohttp
import pytest

from lgsp_adapter.bus.topology import Topology
from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.store import DeliveryState
from tests.agency_server import AgencyServer, agency_server
from tests.test_exchange_rabbitmq import (
    BROKER,
    DELAYS,
    daemon,
    letter_to,
    remove_topology,
    wait_for,
)
from tests.test_registry_web import Api, commune, submit

PROVINCE, DISTRICT, COMMUNE = "000.00.00.H56", "000.21.00.H56", "000.21.07.H56"
PROVINCE_TOKEN = "province-office-token-0123456789"
INTEGRATOR = "integrator-of-the-district-0123456789"


def settings(tmp_path: Path, name: str, exchange: str, **more: object) -> Settings:
    return Settings.model_validate(
        {
            "http": {"port": 0},
            "bus": {"url": BROKER, "exchange": exchange},
            "store": {"path": str(tmp_path / f"{name}.sqlite3")},
            "delivery": {"quick_retries": 0, "retry_delays_s": DELAYS},
            "daemon": {"drain_s": 5, "registry_poll_s": 0.2},
            **more,
        }
    )


async def consumers(exchange: str, code: str) -> int | None:
    """How many consumers the commune's queue has (None: no such queue)."""
    connection = await aio_pika.connect(BROKER)
    async with connection:
        channel = await connection.channel()
        try:
            queue = await channel.declare_queue(Topology(exchange).agency_queue(code), passive=True)
        except aio_pika.exceptions.ChannelClosed:
            return None
        return int(queue.declaration_result.consumer_count or 0)


@pytest.mark.asyncio
async def test_a_commune_registered_live_gets_the_next_packet_over_rabbitmq(
    tmp_path: Path,
) -> None:
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    try:
        async with AsyncExitStack() as stack:
            province_system = await stack.enter_async_context(agency_server(AgencyServer()))
            district_system = await stack.enter_async_context(agency_server(AgencyServer()))
            quang_phu = await stack.enter_async_context(agency_server(AgencyServer()))
            district = settings(
                tmp_path,
                "district",
                exchange,
                agencies=[
                    {
                        "code": DISTRICT,
                        "name": "UBND huyện",
                        "endpoint": {"url": district_system.url},
                    }
                ],
                known_agencies=[{"code": PROVINCE}],
                clients=[
                    {"name": "district-integrator", "token": INTEGRATOR, "role": "integrator"}
                ],
            )
            province = settings(
                tmp_path,
                "province",
                exchange,
                agencies=[
                    {
                        "code": PROVINCE,
                        "name": "UBND tỉnh",
                        "endpoint": {"url": province_system.url},
                    }
                ],
                known_agencies=[{"code": DISTRICT}, {"code": COMMUNE}],
                clients=[{"name": "province", "token": PROVINCE_TOKEN, "agencies": [PROVINCE]}],
            )
            district_url = await stack.enter_async_context(daemon(district))
            province_url = await stack.enter_async_context(daemon(province))
            session = await stack.enter_async_context(aiohttp.ClientSession())
            integrator = Api(session, district_url, INTEGRATOR)
            sender = Api(session, province_url, PROVINCE_TOKEN)
            assert await consumers(exchange, COMMUNE) is None  # nobody serves it yet

            status, record, _ = await integrator.call(
                "POST", "/v1/endpoints", commune(quang_phu.url, COMMUNE)
            )
            assert status == 201, record
            assert await consumers(exchange, COMMUNE) == 1  # declared and consumed at once
            status, report, _ = await integrator.call("POST", f"/v1/endpoints/{COMMUNE}/test")
            assert status == 200
            assert report["ok"], report

            packet_id = await submit(sender, letter_to(COMMUNE))
            await wait_for(
                tmp_path / "province.sqlite3", packet_id, COMMUNE, DeliveryState.DELIVERED
            )
            assert quang_phu.delivered() == [packet_id]

            # Removed: its consumer stops; a packet sent meanwhile waits in its queue.
            status, _, _ = await integrator.call("DELETE", f"/v1/endpoints/{COMMUNE}")
            assert status == 204
            assert await consumers(exchange, COMMUNE) == 0
            waiting = await submit(sender, letter_to(COMMUNE))
            await wait_for(tmp_path / "province.sqlite3", waiting, COMMUNE, DeliveryState.PUBLISHED)
            await asyncio.sleep(0.5)
            assert quang_phu.delivered() == [packet_id]
            # Registered again: what waited is delivered, nothing was lost.
            status, _, _ = await integrator.call(
                "POST", "/v1/endpoints", commune(quang_phu.url, COMMUNE)
            )
            assert status == 201
            await wait_for(tmp_path / "province.sqlite3", waiting, COMMUNE, DeliveryState.DELIVERED)
            assert quang_phu.delivered() == [packet_id, waiting]
    finally:
        await remove_topology(exchange, [PROVINCE, DISTRICT, COMMUNE])
