"""What arrives across a bridge, on the shared broker: the far bus's shovel is played by a
broker account of its own publishing to the arrivals exchange, as the shovel does (user_id its
own, ``x-shovelled`` set). Packets from the bridge's codes are believed and recorded as
arrived; the same account claiming another sender is refused as forged; a packet for a code
nothing here takes is kept in the strays, recorded as returned, and refused back across the
bridge. The settings refuse bridges that overlap."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import subprocess
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from pydantic import ValidationError

from lgsp_adapter.bus.rabbitmq_messages import RECEIPT
from lgsp_adapter.bus.topology import Topology
from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.errors import ErrorCode, LgspError
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.registry.service import Registry
from lgsp_adapter.store import DeliveryState
from lgsp_adapter.store.sqlite import SqliteStore
from tests.agency_server import AgencyServer, agency_server
from tests.test_bridges import letter
from tests.test_exchange_rabbitmq import BROKER, daemon, deliveries, remove_topology, wait_for

COMMUNE, FAR = "000.21.00.H56", "000.00.00.G12"
FAR_USER, PASSWORD = "lgsp-test-far-shovel", "far-shovel-password-01"


def far_account(exchange: str) -> None:
    """The account the far bus's shovel would publish here with: the arrivals exchange only."""
    subprocess.run(
        ["rabbitmqctl", "-q", "add_user", FAR_USER, PASSWORD], capture_output=True, check=False
    )
    arrivals = Topology(exchange).arrivals_exchange.replace(".", "\\.")
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", FAR_USER, "^$", f"^{arrivals}$", "^$"],
        capture_output=True,
        check=True,
    )


def settings(tmp_path: Path, exchange: str, inbox: str) -> Settings:
    return Settings.model_validate(config(tmp_path, exchange, inbox))


def config(tmp_path: Path, exchange: str, inbox: str) -> dict[str, Any]:
    return {
        "http": {"port": 0},
        "bus": {"url": BROKER, "exchange": exchange},
        "store": {"path": str(tmp_path / "commune.sqlite3")},
        "delivery": {"quick_retries": 0, "retry_delays_s": [1]},
        "daemon": {"drain_s": 5},
        "agencies": [{"code": COMMUNE, "name": "commune", "endpoint": {"url": inbox}}],
        "bridges": [
            {
                "name": "moh",
                "level": "peer",
                "codes": ["*.*.*.G12"],
                "url": "amqp://lgsp-bridge:secret@127.0.0.1:5699/",
                "exchange": exchange,
                "arrivals_user": FAR_USER,
            }
        ],
    }


async def publish_across(exchange: str, sender: str, recipient: str, kind: str = "edoc") -> str:
    """A packet as the far bus's shovel brings it; its id."""
    body = letter(sender, recipient)
    packet_id = str(uuid.uuid4())
    headers: dict[str, Any] = {
        "x-lgsp-sender": sender,
        "x-lgsp-recipient": recipient,
        "x-lgsp-recipients": recipient,
        "x-lgsp-document-id": "",
        "x-lgsp-payload-sha256": hashlib.sha256(body).hexdigest(),
        "x-shovelled": [{"shovel-name": "lgsp.packets.bridge.thanhhoa", "shovelled-by": "moh@bus"}],
    }
    url = f"amqp://{FAR_USER}:{PASSWORD}@127.0.0.1:5672/"
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        arrivals = await channel.get_exchange(Topology(exchange).arrivals_exchange, ensure=False)
        await arrivals.publish(
            aio_pika.Message(
                body,
                message_id=packet_id,
                type=kind,
                content_type="application/xml",
                user_id=FAR_USER,
                headers=headers,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=f"{kind}.{recipient}",
        )
    return packet_id


@pytest.mark.asyncio
async def test_what_crosses_a_bridge_is_believed_for_its_codes_alone(tmp_path: Path) -> None:
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    far_account(exchange)
    commune = AgencyServer()
    topology = Topology(exchange)
    try:
        async with agency_server(commune), daemon(settings(tmp_path, exchange, commune.url)):
            store = tmp_path / "commune.sqlite3"
            believed = await publish_across(exchange, FAR, COMMUNE)
            seen = await wait_for(store, believed, COMMUNE, DeliveryState.DELIVERED)
            assert seen["events"] == [
                ("arrived", COMMUNE),
                ("signature", COMMUNE),
                ("delivered", COMMUNE),
            ]
            # The far bus's account speaking for an agency of this province: refused.
            spoofed = await publish_across(exchange, "000.00.00.H56", COMMUNE)
            # Across the bridge for a code nothing here takes: kept, and refused back.
            stray = await publish_across(exchange, FAR, "000.99.99.H56")
            connection = await aio_pika.connect(BROKER)
            async with connection:
                channel = await connection.channel()
                back = await channel.declare_queue(
                    topology.agency_queue("bridge-moh"), passive=True
                )
                receipts: dict[str, str] = {}
                for _ in range(200):
                    message = await back.get(fail=False, no_ack=True)
                    if message is not None and message.type == RECEIPT:
                        assert message.routing_key == f"receipt.{FAR}"
                        receipts[str(message.headers["x-lgsp-packet-id"])] = str(
                            message.headers["x-lgsp-state"]
                        )
                    if len(receipts) == 2:
                        break
                    if message is None:
                        await asyncio.sleep(0.05)
            # Both outcomes go back across the bridge to the sender's bus.
            assert receipts == {believed: "delivered", stray: "refused"}
            await asyncio.sleep(0.5)
        assert len(commune.received) == 1
        assert (await deliveries(store, spoofed))["events"] == []
        entries = await _entries(store)
        arrived = next(e for e in entries if e["event"] == "arrived")
        assert arrived["detail"].startswith("from bus moh (peer, amqp://127.0.0.1:5699/)")
        assert "through lgsp.packets.bridge.thanhhoa on moh@bus" in arrived["detail"]
        forged = next(e for e in entries if e["outcome"] == "bus.forged")
        assert (
            "the account of bus moh, which speaks only for its bridge's codes" in forged["detail"]
        )
        returned = next(e for e in entries if e["event"] == "returned")
        assert returned["packet_id"] == stray
        assert returned["outcome"] == "bus.unroutable"
        assert "refused back to 000.00.00.G12" in returned["detail"]
    finally:
        await remove_topology(exchange, [COMMUNE, "bridge-moh"])


async def _entries(store: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(store) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM audit_entries ORDER BY idx")]


def test_the_routing_table_refuses_overlaps_and_a_bridge_without_a_broker(tmp_path: Path) -> None:
    base = config(tmp_path, "lgsp.packets", "http://127.0.0.1:9/")
    second = {**base["bridges"][0], "name": "hub", "codes": ["000.00.*.G12"], "arrivals_user": "x"}
    with pytest.raises(ValidationError, match=r"bridge moh \(\*\.\*\.\*\.G12\) and bridge hub"):
        Settings.model_validate({**base, "bridges": [*base["bridges"], second]})
    inside = {**base, "known_agencies": [{"code": "000.00.00.G12"}]}
    with pytest.raises(ValidationError, match="in bridge moh's range"):
        Settings.model_validate(inside)
    with pytest.raises(ValidationError, match=r"bridges join RabbitMQ buses"):
        Settings.model_validate({**base, "bus": {"url": None}})
    with pytest.raises(ValidationError, match="amqp"):
        Settings.model_validate({**base, "bridges": [{**base["bridges"][0], "url": "http://x/"}]})


@pytest.mark.asyncio
async def test_the_registry_keeps_out_of_a_bridges_range(tmp_path: Path) -> None:
    """A live registration of a code on another bus would make this daemon speak for it."""
    directory = settings(tmp_path, "lgsp.packets", "http://127.0.0.1:9/").directory()
    assert directory.is_known(AgencyCode.parse(FAR))
    assert directory.bus_user(FAR) == FAR_USER  # the far shovel's account speaks for it
    # ...for its bridge's codes alone: packets and receipts about others are not believed.
    overreach = directory.overreach(FAR_USER, COMMUNE)
    assert overreach is not None
    assert overreach.name == "moh"
    assert directory.overreach(FAR_USER, FAR) is None
    assert directory.overreach("guest", COMMUNE) is None
    async with await SqliteStore.open(tmp_path / "store.sqlite3") as store:
        registry = Registry(store.registry, directory)
        body = {"code": FAR, "name": "Bộ Y tế", "endpoint": {"mode": "pull"}}
        with pytest.raises(LgspError) as refused:
            await registry.create(body, actor="integrator", issue_token=False)
    assert refused.value.code is ErrorCode.REGISTRY_DUPLICATE
    assert "bridge moh's range" in refused.value.message


def test_a_bridges_arrivals_user_is_not_an_account_of_this_bus(tmp_path: Path) -> None:
    base = config(tmp_path, "lgsp.packets", "http://127.0.0.1:9/")
    mine = {**base, "bridges": [{**base["bridges"][0], "arrivals_user": "guest"}]}
    with pytest.raises(ValidationError, match="arrivals_user is this daemon's account"):
        Settings.model_validate(mine)
    known = {**base, "known_agencies": [{"code": "000.22.00.H56", "bus_user": FAR_USER}]}
    with pytest.raises(ValidationError, match="or a known agency's"):
        Settings.model_validate(known)
