"""The pull inbox as agency systems that cannot take pushes use it: list, fetch the bytes as
submitted, acknowledge done or fail; on the embedded bus in one daemon, and across two daemons
over RabbitMQ with the acknowledgement travelling back to the sender as a receipt."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.exchange.inbox import Acknowledgement, Inbox
from lgsp_adapter.store import DeliveryState, StoredPacket
from lgsp_adapter.store.sqlite import SqliteStore
from tests.agency_server import AgencyServer, agency_server
from tests.conftest import EXAMPLES
from tests.documents import numbered
from tests.test_exchange_embedded import COMMUNES, DEPARTMENT, PROVINCE, TOKEN, settled, submit
from tests.test_exchange_rabbitmq import BROKER, daemon, remove_topology, wait_for

QUANG_PHU = "quang-phu-system-token-0123456789"
HOANG_HOA = "hoang-hoa-system-token-0123456789"
DOCUMENT = (EXAMPLES / "edoc-new-thanh-hoa.edxml").read_bytes()


def pull(code: str) -> dict[str, Any]:
    return {"code": code, "name": code, "endpoint": {"mode": "pull"}}


def push(code: str, url: str) -> dict[str, Any]:
    return {"code": code, "name": code, "endpoint": {"url": url, "timeout_s": 2}}


@asynccontextmanager
async def one_daemon(tmp_path: Path) -> AsyncIterator[str]:
    """The province and its department push; both communes fetch from their inboxes."""
    async with AsyncExitStack() as stack:
        province = await stack.enter_async_context(agency_server(AgencyServer()))
        department = await stack.enter_async_context(agency_server(AgencyServer()))
        config = Settings.model_validate(
            {
                "http": {"port": 0},
                "store": {"path": str(tmp_path / "store.sqlite3")},
                "delivery": {"quick_retries": 0, "retry_delays_s": [0.2]},
                "daemon": {"drain_s": 5},
                "agencies": [
                    push(PROVINCE, province.url),
                    push(DEPARTMENT, department.url),
                    pull(COMMUNES[0]),
                    pull(COMMUNES[1]),
                ],
                "clients": [
                    {"name": "province", "token": TOKEN, "agencies": [PROVINCE]},
                    {"name": "quang-phu", "token": QUANG_PHU, "agencies": [COMMUNES[0]]},
                    {"name": "hoang-hoa", "token": HOANG_HOA, "agencies": [COMMUNES[1]]},
                ],
            }
        )
        yield await stack.enter_async_context(daemon(config))


async def held(url: str, packet_id: str, recipients: list[str], timeout_s: float = 10) -> None:
    """Wait until the packet waits in those recipients' inboxes."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while True:
            answer = await session.get(
                f"{url}/v1/packets/{packet_id}", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            states = {d["recipient"]: d["state"] for d in (await answer.json())["deliveries"]}
            if all(states.get(code) == "held" for code in recipients):
                return
            assert time.monotonic() < deadline, f"not held in {timeout_s} s: {states}"
            await asyncio.sleep(0.05)


class System:
    """An agency system polling its inbox."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        self.session, self.url = session, url
        self.headers = {"Authorization": f"Bearer {token}"}

    async def list(self, query: str = "") -> tuple[int, Any]:
        answer = await self.session.get(f"{self.url}/v1/inbox{query}", headers=self.headers)
        return answer.status, await answer.json()

    async def fetch(self, packet_id: str) -> aiohttp.ClientResponse:
        answer = await self.session.get(f"{self.url}/v1/inbox/{packet_id}", headers=self.headers)
        await answer.read()
        return answer

    async def ack(self, packet_id: str, body: Any) -> tuple[int, Any]:
        answer = await self.session.post(
            f"{self.url}/v1/inbox/{packet_id}/ack", json=body, headers=self.headers
        )
        return answer.status, await answer.json()


@pytest.mark.asyncio
async def test_a_commune_fetches_and_acknowledges_its_packets(tmp_path: Path) -> None:
    async with one_daemon(tmp_path) as url, aiohttp.ClientSession() as session:
        packet_id = await submit(url, DOCUMENT)
        await held(url, packet_id, COMMUNES)
        quang_phu = System(session, url, QUANG_PHU)
        hoang_hoa = System(session, url, HOANG_HOA)
        province = System(session, url, TOKEN)

        status, page = await quang_phu.list()
        assert status == 200
        assert [(p["packet_id"], p["recipient"], p["kind"]) for p in page["packets"]] == [
            (packet_id, COMMUNES[0], "edoc")
        ]
        assert page["packets"][0]["size_bytes"] == len(DOCUMENT)
        assert (await quang_phu.list("?kind=status"))[1]["packets"] == []
        fetched = await quang_phu.fetch(packet_id)
        assert fetched.status == 200
        assert await fetched.read() == DOCUMENT  # byte for byte, a signature stays valid
        assert fetched.headers["X-LGSP-Recipient"] == COMMUNES[0]
        assert fetched.headers["X-LGSP-Signature"] == "unsigned"  # as a pushed one is told
        assert fetched.content_type == "application/xml"
        # Fetched but not acknowledged (the system crashed, say): listed again.
        assert len((await quang_phu.list())[1]["packets"]) == 1

        # Nobody else's inbox holds it: the province's system gets a 404, as for no packet.
        status, body = await province.ack(packet_id, {"status": "done"})
        assert (status, body["error"]["code"]) == (404, "packet.not_found")
        assert (await province.fetch(packet_id)).status == 404
        bad_acks: list[Any] = [{"status": "maybe"}, [], {"status": "fail", "reason": 7}]
        for bad in bad_acks:
            status, body = await quang_phu.ack(packet_id, bad)
            assert (status, body["error"]["code"]) == (400, "inbox.bad_request")
        assert (await quang_phu.list("?limit=0"))[0] == 400

        assert await quang_phu.ack(packet_id, {"status": "done"}) == (
            200,
            {"packet_id": packet_id, "recipient": COMMUNES[0], "state": "delivered"},
        )
        assert (await quang_phu.ack(packet_id, {"status": "done"}))[0] == 200  # again: same
        status, body = await quang_phu.ack(packet_id, {"status": "fail"})
        assert (status, body["error"]["code"]) == (409, "inbox.already_acknowledged")
        assert (await quang_phu.list())[1]["packets"] == []

        status, body = await hoang_hoa.ack(packet_id, {"status": "fail", "reason": "sai định dạng"})
        assert (status, body["state"]) == (200, "refused")

        state = await settled(url, packet_id)
        states = {d["recipient"]: d["state"] for d in state["deliveries"]}
        assert states == {
            DEPARTMENT: "delivered",
            COMMUNES[0]: "delivered",
            COMMUNES[1]: "refused",
        }
        events = [(e["event"], e.get("recipient"), e.get("outcome")) for e in state["history"]]
        assert ("held", COMMUNES[0], "ok") in events
        assert ("delivered", COMMUNES[0], "ok") in events
        assert ("refused", COMMUNES[1], "inbox.fail") in events
        refusal = next(e for e in state["history"] if e["event"] == "refused")
        assert "sai định dạng" in refusal["detail"]


@pytest.mark.asyncio
async def test_the_inbox_pages_by_cursor(tmp_path: Path) -> None:
    async with one_daemon(tmp_path) as url, aiohttp.ClientSession() as session:
        ids = [await submit(url, numbered(DOCUMENT)) for _ in range(5)]
        for packet_id in ids:
            await held(url, packet_id, COMMUNES)
        quang_phu = System(session, url, QUANG_PHU)
        seen: list[str] = []
        query = "?limit=2"
        while True:
            status, page = await quang_phu.list(query)
            assert status == 200
            seen += [p["packet_id"] for p in page["packets"]]
            if page["next"] is None:
                break
            query = f"?limit=2&after={page['next']['after']}"
        assert seen == ids


@pytest.mark.asyncio
async def test_an_acknowledgement_reaches_the_sender_across_daemons(tmp_path: Path) -> None:
    """Daemon B serves a commune that pulls; daemon A, the province, learns it was delivered."""
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    common = {
        "bus": {"url": BROKER, "exchange": exchange},
        "delivery": {"quick_retries": 0, "retry_delays_s": [0.3]},
        "daemon": {"drain_s": 5},
        "http": {"port": 0},
    }
    try:
        async with AsyncExitStack() as stack:
            province = await stack.enter_async_context(agency_server(AgencyServer()))
            b = Settings.model_validate(
                {
                    **common,
                    "store": {"path": str(tmp_path / "b.sqlite3")},
                    "agencies": [pull(COMMUNES[0])],
                    "known_agencies": [{"code": PROVINCE}],
                    "clients": [
                        {"name": "quang-phu", "token": QUANG_PHU, "agencies": [COMMUNES[0]]}
                    ],
                }
            )
            a = Settings.model_validate(
                {
                    **common,
                    "store": {"path": str(tmp_path / "a.sqlite3")},
                    "agencies": [push(PROVINCE, province.url)],
                    "known_agencies": [{"code": c} for c in (COMMUNES[0], COMMUNES[1], DEPARTMENT)],
                    "clients": [{"name": "province", "token": TOKEN, "agencies": [PROVINCE]}],
                }
            )
            b_url = await stack.enter_async_context(daemon(b))
            a_url = await stack.enter_async_context(daemon(a))
            packet_id = await submit(a_url, DOCUMENT)
            session = await stack.enter_async_context(aiohttp.ClientSession())
            quang_phu = System(session, b_url, QUANG_PHU)
            deadline = time.monotonic() + 15
            while not (await quang_phu.list())[1]["packets"]:
                assert time.monotonic() < deadline, "the packet did not reach the inbox"
                await asyncio.sleep(0.1)
            assert await (await quang_phu.fetch(packet_id)).read() == DOCUMENT
            assert (await quang_phu.ack(packet_id, {"status": "done"}))[0] == 200
            # The receipt reaches the sender's daemon.
            await wait_for(a.store.path, packet_id, COMMUNES[0], DeliveryState.DELIVERED)
    finally:
        await remove_topology(exchange, [PROVINCE, COMMUNES[0]], delays=[0.3])


@pytest.mark.asyncio
async def test_an_acknowledgement_stands_when_the_sender_cannot_be_told(tmp_path: Path) -> None:
    """Telling the sender failed once: the acknowledgement holds, and acknowledging again
    tells it then."""

    config = Settings.model_validate(
        {
            "store": {"path": str(tmp_path / "s.sqlite3")},
            "agencies": [pull(COMMUNES[0])],
            "clients": [{"name": "quang-phu", "token": QUANG_PHU, "agencies": [COMMUNES[0]]}],
        }
    )
    told: list[tuple[uuid.UUID, str]] = []

    async def announce(packet_id: uuid.UUID, recipient: str) -> None:
        if not told:
            told.append((packet_id, "failed"))
            raise ConnectionError("the broker is away")
        told.append((packet_id, recipient))

    async with await SqliteStore.open(config.store.path) as store:
        packet = StoredPacket(
            id=uuid.uuid4(),
            kind="edoc",
            sender=PROVINCE,
            recipients=[COMMUNES[0]],
            content_type="application/xml",
            payload=DOCUMENT,
            sha256="0" * 64,
        )
        await store.accept(packet, [])
        await store.update_delivery(packet.id, COMMUNES[0], DeliveryState.HELD, entries=[])
        inbox = Inbox(store=store, directory=config.directory(), announce=announce)
        client = config.clients[0]
        first = await inbox.acknowledge(client, packet.id, None, Acknowledgement.DONE, None)
        assert first.state is DeliveryState.DELIVERED
        again = await inbox.acknowledge(client, packet.id, None, Acknowledgement.DONE, None)
        assert again.state is DeliveryState.DELIVERED
        assert told == [(packet.id, "failed"), (packet.id, COMMUNES[0])]
        history = await store.history(packet.id)
        assert [e.event.value for e in history] == ["delivered"]  # recorded once


@pytest.mark.asyncio
async def test_held_packets_follow_their_agency_when_it_stops_pulling(tmp_path: Path) -> None:
    """Restarted with one commune now taking pushes and the other no longer served here: the
    first gets its held packet pushed, the second's is dead-lettered and the sender told."""
    commune = AgencyServer()
    async with AsyncExitStack() as stack:
        province = await stack.enter_async_context(agency_server(AgencyServer()))
        department = await stack.enter_async_context(agency_server(AgencyServer()))
        await stack.enter_async_context(agency_server(commune))
        base = {
            "http": {"port": 0},
            "store": {"path": str(tmp_path / "store.sqlite3")},
            "delivery": {"quick_retries": 0, "retry_delays_s": [0.2]},
            "daemon": {"drain_s": 5},
            "clients": [{"name": "province", "token": TOKEN, "agencies": [PROVINCE]}],
        }
        pulling = Settings.model_validate(
            {
                **base,
                "agencies": [
                    push(PROVINCE, province.url),
                    push(DEPARTMENT, department.url),
                    pull(COMMUNES[0]),
                    pull(COMMUNES[1]),
                ],
            }
        )
        async with daemon(pulling) as url:
            packet_id = await submit(url, DOCUMENT)
            await held(url, packet_id, COMMUNES)
        changed = Settings.model_validate(
            {
                **base,
                "agencies": [
                    push(PROVINCE, province.url),
                    push(DEPARTMENT, department.url),
                    push(COMMUNES[0], commune.url),
                ],
                "known_agencies": [{"code": COMMUNES[1]}],
            }
        )
        async with daemon(changed) as url:
            state = await settled(url, packet_id)
    states = {d["recipient"]: d["state"] for d in state["deliveries"]}
    assert states[COMMUNES[0]] == "delivered"
    assert states[COMMUNES[1]] == "dead_lettered"
    assert commune.delivered() == [packet_id]
    outcomes = [(e["event"], e.get("recipient"), e.get("outcome")) for e in state["history"]]
    assert ("published", COMMUNES[0], "inbox.released") in outcomes
    assert ("dead_lettered", COMMUNES[1], "recipient.not_served") in outcomes


@pytest.mark.asyncio
async def test_a_released_packet_crosses_back_onto_rabbitmq(tmp_path: Path) -> None:
    """On RabbitMQ the released packet goes back through the agency's queue, and the sender's
    daemon learns from the receipt that it was delivered."""
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    common = {
        "bus": {"url": BROKER, "exchange": exchange},
        "delivery": {"quick_retries": 0, "retry_delays_s": [0.3]},
        "daemon": {"drain_s": 5},
        "http": {"port": 0},
        "known_agencies": [{"code": PROVINCE}],
    }
    commune = AgencyServer()
    try:
        async with AsyncExitStack() as stack:
            province = await stack.enter_async_context(agency_server(AgencyServer()))
            await stack.enter_async_context(agency_server(commune))
            a = Settings.model_validate(
                {
                    **common,
                    "store": {"path": str(tmp_path / "a.sqlite3")},
                    "agencies": [push(PROVINCE, province.url)],
                    "known_agencies": [{"code": c} for c in (COMMUNES[0], COMMUNES[1], DEPARTMENT)],
                    "clients": [{"name": "province", "token": TOKEN, "agencies": [PROVINCE]}],
                }
            )
            b_store = str(tmp_path / "b.sqlite3")
            b_pull = Settings.model_validate(
                {**common, "store": {"path": b_store}, "agencies": [pull(COMMUNES[0])]}
            )
            b_push = Settings.model_validate(
                {**common, "store": {"path": b_store}, "agencies": [push(COMMUNES[0], commune.url)]}
            )
            a_url = await stack.enter_async_context(daemon(a))
            async with daemon(b_pull):
                packet_id = await submit(a_url, DOCUMENT)
                await wait_for(Path(b_store), packet_id, COMMUNES[0], DeliveryState.HELD)
            async with daemon(b_push):
                await wait_for(a.store.path, packet_id, COMMUNES[0], DeliveryState.DELIVERED)
        assert commune.delivered() == [packet_id]
    finally:
        await remove_topology(exchange, [PROVINCE, COMMUNES[0]], delays=[0.3])
