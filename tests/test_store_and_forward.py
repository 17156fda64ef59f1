"""While RabbitMQ is away the daemon keeps accepting into its outbox, up to a budget, then
answers 503 with Retry-After; readiness says degraded, then unready; when the broker is back
everything accepted is published, in the order it was accepted, and delivered once."""

from __future__ import annotations

import sqlite3
import uuid
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest

from lgsp_adapter.daemon.config import Settings
from tests.agency_server import AgencyServer, agency_server
from tests.documents import numbered
from tests.tcp_proxy import BrokerProxy
from tests.test_exchange_rabbitmq import daemon, letter_to, remove_topology
from tests.test_registry_live import eventually
from tests.test_registry_web import COMMUNE, PROVINCE, PROVINCE_TOKEN, Api


@pytest.mark.asyncio
async def test_the_outbox_holds_what_is_accepted_while_the_broker_is_away(
    tmp_path: Path,
) -> None:
    proxy = BrokerProxy()
    await proxy.start()
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    letter = numbered(letter_to(COMMUNE), 100_000)  # each sent numbered anew, as long as this
    try:
        async with AsyncExitStack() as stack:
            province = await stack.enter_async_context(agency_server(AgencyServer()))
            quang_phu = await stack.enter_async_context(agency_server(AgencyServer()))
            config = Settings.model_validate(
                {
                    "http": {"port": 0},
                    "bus": {"url": proxy.url, "exchange": exchange},
                    "store": {"path": str(tmp_path / "store.sqlite3"), "outbox_budget_mb": 1},
                    "daemon": {"drain_s": 5},
                    "agencies": [
                        {"code": PROVINCE, "name": "tỉnh", "endpoint": {"url": province.url}},
                        {"code": COMMUNE, "name": "xã", "endpoint": {"url": quang_phu.url}},
                    ],
                    "clients": [
                        {"name": "province", "token": PROVINCE_TOKEN, "agencies": [PROVINCE]}
                    ],
                }
            )
            url = await stack.enter_async_context(daemon(config))
            session = await stack.enter_async_context(aiohttp.ClientSession())
            sender = Api(session, url, PROVINCE_TOKEN)
            # Ready once its consumers are attached.
            await eventually(lambda: readiness(session, url, "ready"))

            await proxy.cut()
            await eventually(lambda: readiness(session, url, "degraded"))
            accepted: list[str] = []
            refused = None
            for _ in range(1_000_000 // len(letter) + 10):
                status, answer, response = await sender.call(
                    "POST", "/v1/packets", numbered(letter), **{"Content-Type": "application/xml"}
                )
                if status != 202:
                    refused = (status, answer["error"]["code"], response.headers["Retry-After"])
                    break
                accepted.append(str(answer["packet_id"]))
            assert refused == (503, "bus.outbox_full", "30")
            assert len(accepted) == 1_000_000 // len(letter)  # the budget, to the packet
            status, report, _ = await sender.call("GET", "/readyz")
            assert (status, report["status"]) == (503, "unready")
            assert report["outbox"]["packets"] == len(accepted)
            assert quang_phu.received == []

            await proxy.start()
            await eventually(lambda: len(set(quang_phu.delivered())) == len(accepted), 60)
            assert Counter(quang_phu.delivered()).most_common(1)[0][1] == 1  # none twice
            with sqlite3.connect(tmp_path / "store.sqlite3") as db:
                published = [
                    row[0]
                    for row in db.execute(
                        "SELECT packet_id FROM audit_entries WHERE event = 'published' ORDER BY idx"
                    )
                ]
            assert published == accepted  # in the order they were accepted
            await eventually(lambda: readiness(session, url, "ready"))
    finally:
        await proxy.cut()
        await remove_topology(exchange, [PROVINCE, COMMUNE], [5, 30, 120, 600, 1800, 3600])


async def readiness(session: aiohttp.ClientSession, url: str, status: str) -> bool:
    async with session.get(f"{url}/readyz") as response:
        return bool((await response.json())["status"] == status)
