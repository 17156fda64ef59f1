"""The whole exchange in one daemon on the embedded bus, with real agency systems on loopback."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lgsp_adapter.audit import AuditEvent
from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.daemon.run import run_daemon
from lgsp_adapter.packets.edxml_codec import parse_edxml
from lgsp_adapter.packets.edxml_model import StatusPacket
from lgsp_adapter.store.sqlite import SqliteStore
from tests.agency_server import AgencyServer, agency_server
from tests.conftest import EXAMPLES

PROVINCE = "000.00.00.H56"
DEPARTMENT = "000.00.12.H56"
COMMUNES = ["000.21.00.H56", "000.22.00.H56"]
TOKEN = "province-office-token-0123456789"
AUDITOR_TOKEN = "state-audit-office-token-0123456789"


@asynccontextmanager
async def exchange(
    tmp_path: Path, servers: dict[str, AgencyServer], **delivery: Any
) -> AsyncIterator[tuple[str, dict[str, AgencyServer]]]:
    """A daemon serving the province, its department and two communes; yields its URL."""
    async with AsyncExitStack() as stack:
        for server in servers.values():
            await stack.enter_async_context(agency_server(server))
        settings = Settings.model_validate(
            {
                "http": {"port": 0},
                "store": {"path": str(tmp_path / "store.sqlite3")},
                "delivery": {"quick_retries": 0, "retry_delays_s": [0.2, 0.2], **delivery},
                "daemon": {"drain_s": 5},
                "agencies": [
                    {"code": code, "name": code, "endpoint": {"url": server.url, "timeout_s": 1}}
                    for code, server in servers.items()
                ],
                "clients": [
                    {"name": "province", "token": TOKEN, "agencies": [PROVINCE]},
                    {"name": "kiem-toan", "token": AUDITOR_TOKEN, "role": "auditor"},
                ],
            }
        )
        stop = asyncio.Event()
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(run_daemon(settings, stop, ready.set_result))
        try:
            url = await asyncio.wait_for(asyncio.shield(ready), timeout=10)
            yield url, servers
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=20)


async def submit(url: str, body: bytes, token: str = TOKEN) -> str:
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            f"{url}/v1/packets",
            data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/xml"},
        )
        assert response.status == 202, await response.text()
        return str((await response.json())["packet_id"])


async def settled(url: str, packet_id: str, timeout_s: float = 10) -> dict[str, Any]:
    """The packet's state once every delivery is final."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while True:
            response = await session.get(
                f"{url}/v1/packets/{packet_id}", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            state: dict[str, Any] = await response.json()
            final = {"delivered", "refused", "dead_lettered"}
            if all(d["state"] in final for d in state["deliveries"]):
                return state
            assert time.monotonic() < deadline, f"not settled in {timeout_s} s: {state}"
            await asyncio.sleep(0.05)


def servers(**scripts: AgencyServer) -> dict[str, AgencyServer]:
    made = {code: AgencyServer() for code in (PROVINCE, DEPARTMENT, *COMMUNES)}
    made.update({code.replace("_", "."): server for code, server in scripts.items()})
    return made


DOCUMENT = (EXAMPLES / "edoc-new-thanh-hoa.edxml").read_bytes()


@pytest.mark.asyncio
async def test_a_document_reaches_every_recipient_byte_for_byte(tmp_path: Path) -> None:
    async with exchange(tmp_path, servers()) as (url, agencies):
        packet_id = await submit(url, DOCUMENT)
        state = await settled(url, packet_id)
    assert {d["recipient"]: d["state"] for d in state["deliveries"]} == dict.fromkeys(
        (DEPARTMENT, *COMMUNES), "delivered"
    )
    for code in (DEPARTMENT, *COMMUNES):
        (request,) = agencies[code].received
        assert request.body == DOCUMENT
        assert request.headers["X-LGSP-Packet-Id"] == packet_id
    assert agencies[PROVINCE].received == []
    events = [e["event"] for e in state["history"]]
    assert events[0] == "received"
    assert events.count("published") == 3
    assert events.count("delivered") == 3


@pytest.mark.asyncio
async def test_a_system_that_fails_twice_gets_it_on_the_third_durable_attempt(
    tmp_path: Path,
) -> None:
    flaky = AgencyServer(script=[503, 503])
    async with exchange(tmp_path, servers(**{"000_22_00_H56": flaky})) as (url, _):
        packet_id = await submit(url, DOCUMENT)
        state = await settled(url, packet_id)
    (delivery,) = [d for d in state["deliveries"] if d["recipient"] == "000.22.00.H56"]
    assert (delivery["state"], delivery["attempts"]) == ("delivered", 3)
    journey = [e["event"] for e in state["history"] if e.get("recipient") == "000.22.00.H56"]
    # The verdict on its signatures comes with the outcome, not with each retry.
    assert journey == ["published", "retried", "retried", "signature", "delivered"]
    assert len(flaky.received) == 3


@pytest.mark.asyncio
async def test_a_refusal_is_final(tmp_path: Path) -> None:
    refusing = AgencyServer(then=400)
    async with exchange(tmp_path, servers(**{"000_21_00_H56": refusing})) as (url, _):
        state = await settled(url, await submit(url, DOCUMENT))
    (delivery,) = [d for d in state["deliveries"] if d["recipient"] == "000.21.00.H56"]
    assert delivery["state"] == "refused"
    assert len(refusing.received) == 1
    refused = [e for e in state["history"] if e["event"] == "refused"]
    assert refused[0]["outcome"] == "delivery.refused"


@pytest.mark.asyncio
async def test_a_system_down_past_every_retry_is_dead_lettered(tmp_path: Path) -> None:
    down = AgencyServer(then=503)
    async with exchange(tmp_path, servers(**{"000_21_00_H56": down})) as (url, _):
        state = await settled(url, await submit(url, DOCUMENT))
    (delivery,) = [d for d in state["deliveries"] if d["recipient"] == "000.21.00.H56"]
    assert (delivery["state"], delivery["attempts"]) == ("dead_lettered", 3)
    assert len(down.received) == 3


@pytest.mark.asyncio
async def test_a_slow_system_is_retried_after_its_timeout(tmp_path: Path) -> None:
    slow = AgencyServer(delay_s=1.5)
    async with exchange(tmp_path, servers(**{"000_21_00_H56": slow})) as (url, _):
        packet_id = await submit(url, DOCUMENT)
        await asyncio.sleep(1.2)
        slow.delay_s = 0
        state = await settled(url, packet_id)
    (delivery,) = [d for d in state["deliveries"] if d["recipient"] == "000.21.00.H56"]
    assert delivery["state"] == "delivered"
    assert delivery["attempts"] >= 2


@pytest.mark.asyncio
async def test_the_adapter_can_send_status_01_on_an_agencys_behalf(tmp_path: Path) -> None:
    province, commune = AgencyServer(), AgencyServer()
    async with AsyncExitStack() as stack:
        for server in (province, commune):
            await stack.enter_async_context(agency_server(server))
        settings = Settings.model_validate(
            {
                "http": {"port": 0},
                "store": {"path": str(tmp_path / "store.sqlite3")},
                "agencies": [
                    {"code": PROVINCE, "name": "UBND tỉnh", "endpoint": {"url": province.url}},
                    {
                        "code": "000.21.00.H56",
                        "name": "UBND xã Quảng Phú",
                        "endpoint": {"url": commune.url, "send_arrival_status": True},
                    },
                ],
                "known_agencies": [{"code": DEPARTMENT}, {"code": "000.22.00.H56"}],
                "clients": [
                    {"name": "province", "token": TOKEN, "agencies": [PROVINCE]},
                    {"name": "kiem-toan", "token": AUDITOR_TOKEN, "role": "auditor"},
                ],
            }
        )
        stop = asyncio.Event()
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(run_daemon(settings, stop, ready.set_result))
        url = await asyncio.wait_for(asyncio.shield(ready), timeout=10)
        await submit(url, DOCUMENT)
        for _ in range(200):
            if province.delivered():
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, timeout=20)
    (status,) = [r for r in province.received if 200 <= r.status < 300]
    assert status.headers["X-LGSP-Kind"] == "status"
    assert status.headers["X-LGSP-Sender"] == "000.21.00.H56"
    parsed = parse_edxml(status.body).packet
    assert isinstance(parsed, StatusPacket)
    assert parsed.message.status_code == "01"
    assert parsed.message.response_for.document_id == "000.00.00.H56,2026/11/20,1234/UBND-KSTTHC"


@pytest.mark.asyncio
async def test_a_sender_with_a_receipts_url_is_told_how_each_delivery_ended(
    tmp_path: Path,
) -> None:
    receipts = AgencyServer()
    refusing = AgencyServer(then=400)
    async with AsyncExitStack() as stack:
        for server in (receipts, refusing):
            await stack.enter_async_context(agency_server(server))
        made = servers(**{"000_21_00_H56": refusing})
        async with AsyncExitStack() as inner:
            for server in made.values():
                await inner.enter_async_context(agency_server(server))
            settings = Settings.model_validate(
                {
                    "http": {"port": 0},
                    "store": {"path": str(tmp_path / "store.sqlite3")},
                    "delivery": {"quick_retries": 0, "retry_delays_s": [0.1]},
                    "agencies": [
                        {
                            "code": code,
                            "name": code,
                            "endpoint": {"url": server.url}
                            | ({"receipts_url": receipts.url} if code == PROVINCE else {}),
                        }
                        for code, server in made.items()
                    ],
                    "clients": [
                        {"name": "province", "token": TOKEN, "agencies": [PROVINCE]},
                        {"name": "kiem-toan", "token": AUDITOR_TOKEN, "role": "auditor"},
                    ],
                }
            )
            stop = asyncio.Event()
            ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(run_daemon(settings, stop, ready.set_result))
            url = await asyncio.wait_for(asyncio.shield(ready), timeout=10)
            packet_id = await submit(url, DOCUMENT)
            state = await settled(url, packet_id)
            for _ in range(100):
                if len(receipts.received) >= 3:
                    break
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.wait_for(task, timeout=20)
    told = {
        (body["recipient"], body["state"])
        for body in (json.loads(r.body) for r in receipts.received)
    }
    assert told == {
        (DEPARTMENT, "delivered"),
        ("000.21.00.H56", "refused"),
        ("000.22.00.H56", "delivered"),
    }
    assert all(r.headers["X-LGSP-Packet-Id"] == packet_id for r in receipts.received)
    assert {d["state"] for d in state["deliveries"]} == {"delivered", "refused"}
    async with await SqliteStore.open(tmp_path / "store.sqlite3") as store:
        history = await store.history(uuid.UUID(packet_id))
    assert (
        sorted(e.outcome or "" for e in history if e.event is AuditEvent.RECEIPT) == ["pushed"] * 3
    )


@pytest.mark.asyncio
async def test_an_unexpected_failure_is_retried_then_dead_lettered_not_looped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any) -> Any:
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr("lgsp_adapter.exchange.delivery.Deliverer.push", broken)
    async with exchange(tmp_path, servers()) as (url, _):
        state = await settled(url, await submit(url, DOCUMENT))
    assert {d["state"] for d in state["deliveries"]} == {"dead_lettered"}
    events = [(e["event"], e.get("detail", "")) for e in state["history"]]
    assert ("retried", "internal error: RuntimeError; next attempt in 0.2 s") in events
    assert any(event == "dead_lettered" for event, _ in events)
    # Each dead letter carries the packet's signature verdict, as every final outcome does.
    ended = [event for event, _ in events if event == "dead_lettered"]
    assert [event for event, _ in events].count("signature") == len(ended)
