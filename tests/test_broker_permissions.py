"""Each daemon on its own broker account with the least permissions that work: the exchange
runs; the account cannot read another agency's queue, declare one, nor publish as another."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage
from aiormq.exceptions import AMQPError
from yarl import URL

from lgsp_adapter.bus.topology import Topology, permissions
from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.store import DeliveryState
from tests.agency_server import AgencyServer, agency_server
from tests.test_exchange_embedded import submit
from tests.test_exchange_rabbitmq import (
    broker_account,
    daemon,
    letter_to,
    remove_topology,
    wait_for,
)

PROVINCE, COMMUNE = "000.00.00.H56", "000.21.00.H56"


def settings(
    tmp: Path,
    name: str,
    url: str,
    exchange: str,
    served: str,
    inbox: str,
    known: str,
    known_user: str,
) -> Settings:
    return Settings.model_validate(
        {
            "http": {"port": 0},
            "bus": {"url": url, "exchange": exchange},
            "store": {"path": str(tmp / f"{name}.sqlite3")},
            "delivery": {"quick_retries": 0, "retry_delays_s": [0.3]},
            "daemon": {"drain_s": 5},
            "agencies": [{"code": served, "name": served, "endpoint": {"url": inbox}}],
            "known_agencies": [{"code": known, "bus_user": known_user}],
            "clients": [
                {
                    "name": "system",
                    "token": "province-office-token-0123456789",
                    "agencies": [served],
                }
            ],
        }
    )


@pytest.mark.asyncio
async def test_least_privilege_accounts_exchange_and_nothing_more(tmp_path: Path) -> None:
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    topology = Topology(exchange)
    suffix = uuid.uuid4().hex[:8]
    try:
        async with AsyncExitStack() as stack:
            province_url = await stack.enter_async_context(
                broker_account(
                    f"lgsp_province_{suffix}", permissions(topology, re.escape(PROVINCE))
                )
            )
            commune_url = await stack.enter_async_context(
                broker_account(f"lgsp_commune_{suffix}", permissions(topology, re.escape(COMMUNE)))
            )
            province_user, commune_user = URL(province_url).user, URL(commune_url).user
            assert province_user is not None
            assert commune_user is not None
            province = await stack.enter_async_context(agency_server(AgencyServer()))
            quang_phu = await stack.enter_async_context(agency_server(AgencyServer()))
            await stack.enter_async_context(
                daemon(
                    settings(
                        tmp_path,
                        "b",
                        commune_url,
                        exchange,
                        COMMUNE,
                        quang_phu.url,
                        PROVINCE,
                        province_user,
                    )
                )
            )
            url = await stack.enter_async_context(
                daemon(
                    settings(
                        tmp_path,
                        "a",
                        province_url,
                        exchange,
                        PROVINCE,
                        province.url,
                        COMMUNE,
                        commune_user,
                    )
                )
            )
            # The exchange runs on these permissions, receipts and all.
            packet_id = await submit(url, letter_to(COMMUNE))
            await wait_for(tmp_path / "a.sqlite3", packet_id, COMMUNE, DeliveryState.DELIVERED)
            assert quang_phu.delivered() == [packet_id]

            # The commune's account may not read the province's queue...
            connection = await aio_pika.connect(commune_url)
            async with connection:
                channel = await connection.channel()
                queue = await channel.get_queue(topology.agency_queue(PROVINCE), ensure=False)

                async def steal(message: AbstractIncomingMessage) -> None:
                    raise AssertionError("read another agency's packet")

                with pytest.raises(AMQPError, match="ACCESS_REFUSED"):
                    await queue.consume(steal)
            # ... nor declare a queue for an agency it does not serve ...
            connection = await aio_pika.connect(commune_url)
            async with connection:
                channel = await connection.channel()
                with pytest.raises(AMQPError, match="ACCESS_REFUSED"):
                    await channel.declare_queue(
                        topology.agency_queue("000.22.00.H56"),
                        durable=True,
                        arguments=topology.agency_arguments(),
                    )
            # ... nor publish under the province's identity: the broker checks user_id.
            connection = await aio_pika.connect(commune_url)
            async with connection:
                channel = await connection.channel(publisher_confirms=True)
                target = await channel.get_exchange(exchange, ensure=False)
                forged = aio_pika.Message(b"", user_id=province_user, type="receipt")
                with pytest.raises(AMQPError, match="PRECONDITION_FAILED"):
                    await target.publish(forged, routing_key=f"receipt.{PROVINCE}")
    finally:
        await remove_topology(exchange, [PROVINCE, COMMUNE], [0.3])


def test_the_cli_prints_the_line_for_the_settings(tmp_path: Path) -> None:
    (tmp_path / "lgsp.toml").write_text(
        '[bus]\nexchange = "lgsp.packets"\n[[agencies]]\ncode = "000.21.00.H56"\nname = "xã"\n'
        '[agencies.endpoint]\nmode = "pull"\n'
    )
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "lgsp_adapter",
            "broker-permissions",
            "lgsp-xa",
            "--config",
            str(tmp_path / "lgsp.toml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    words = shlex.split(shown.stdout)
    rules = permissions(Topology("lgsp.packets"), re.escape(COMMUNE))
    assert words == [
        "rabbitmqctl",
        "set_permissions",
        "-p",
        "/",
        "lgsp-xa",
        rules.configure,
        rules.write,
        rules.read,
    ]
    assert re.fullmatch(rules.read, "lgsp.packets.agency.000.21.00.H56")
    assert not re.fullmatch(rules.read, "lgsp.packets.agency.000.22.00.H56")
