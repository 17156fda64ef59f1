"""Two daemons, separate stores, exchanging over the real RabbitMQ on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import shutil
import sqlite3
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest
from pydantic import SecretStr

from lgsp_adapter.bus.topology import NOT_SERVED_WAIT_S, Permissions, Topology
from lgsp_adapter.daemon.config import DeliverySettings, Settings
from lgsp_adapter.daemon.run import run_daemon
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.registry.agencies import KnownAgency
from lgsp_adapter.store import DeliveryState
from lgsp_adapter.store.sqlite import SqliteStore
from tests.agency_server import AgencyServer, agency_server
from tests.conftest import EXAMPLES
from tests.documents import numbered
from tests.test_exchange_embedded import submit

BROKER = "amqp://guest:guest@127.0.0.1:5672/"
PROVINCE, COMMUNE, ELSEWHERE = "000.00.00.H56", "000.21.00.H56", "000.22.00.H56"
TOKEN = "province-office-token-0123456789"
DELAYS = [0.3, 0.3, 0.3]
DOCUMENT = (EXAMPLES / "edoc-new-thanh-hoa.edxml").read_bytes()


def settings(
    tmp_path: Path, name: str, exchange: str, served: dict[str, str], known: list[str]
) -> Settings:
    return Settings.model_validate(
        {
            **base_settings(tmp_path, name, exchange),
            "agencies": [
                {"code": code, "name": code, "endpoint": {"url": url, "timeout_s": 2}}
                for code, url in served.items()
            ],
            "known_agencies": [{"code": code} for code in known],
            "clients": [{"name": "province", "token": TOKEN, "agencies": [PROVINCE]}]
            if PROVINCE in served
            else [],
        }
    )


def base_settings(tmp_path: Path, name: str, exchange: str) -> dict[str, Any]:
    """What every test daemon here shares: a port of its own, the bus, its store, quick
    retries."""
    return {
        "http": {"port": 0},
        "bus": {"url": BROKER, "exchange": exchange},
        "store": {"path": str(tmp_path / f"{name}.sqlite3")},
        "delivery": {"quick_retries": 0, "retry_delays_s": DELAYS},
        "daemon": {"drain_s": 5},
    }


@asynccontextmanager
async def daemon(config: Settings) -> AsyncIterator[str]:
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_daemon(config, stop, ready.set_result))
    try:
        yield await asyncio.wait_for(asyncio.shield(ready), timeout=20)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)


async def remove_topology(
    exchange: str, served: list[str], delays: list[float] = DELAYS, broker: str = BROKER
) -> None:
    """Leave the broker as we found it: every queue a daemon may have declared, whatever
    schedule it ran on (a deleted queue that is not there is no error). Quorum queues left
    behind by earlier runs piled up in the hundreds and once wedged the shared broker."""
    topology = Topology(exchange)
    waits = {*delays, *DeliverySettings().retry_delays_s, NOT_SERVED_WAIT_S}
    connection = await aio_pika.connect(broker)
    async with connection:
        channel = await connection.channel()
        for code in served:
            names = [topology.agency_queue(code), topology.dead_queue(code)]
            names += [topology.retry_queue(code, d) for d in sorted(waits)]
            for name in names:
                await channel.queue_delete(name)
        await channel.queue_delete(topology.strays_queue)
        for name in (exchange, topology.dead_exchange, topology.arrivals_exchange, topology.strays):
            await channel.exchange_delete(name)


@asynccontextmanager
async def two_daemons(
    tmp_path: Path, commune: AgencyServer
) -> AsyncIterator[tuple[str, Path, Path]]:
    """Daemon A serves the province (and knows two communes); daemon B serves one commune."""
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    try:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(agency_server(commune))
            province = AgencyServer()
            await stack.enter_async_context(agency_server(province))
            b = settings(tmp_path, "b", exchange, {COMMUNE: commune.url}, [PROVINCE])
            a = settings(tmp_path, "a", exchange, {PROVINCE: province.url}, [COMMUNE, ELSEWHERE])
            await stack.enter_async_context(daemon(b))
            url = await stack.enter_async_context(daemon(a))
            _EXCHANGES[a.store.path] = exchange
            yield url, a.store.path, b.store.path
    finally:
        await remove_topology(exchange, [PROVINCE, COMMUNE])


_EXCHANGES: dict[Path, str] = {}


def settings_exchange(store_path: Path) -> str:
    """The exchange of the daemons whose store is at ``store_path``."""
    return _EXCHANGES[store_path]


async def deliveries(path: Path, packet_id: str) -> dict[str, Any]:
    async with await SqliteStore.open(path) as store:
        records = await store.deliveries(uuid.UUID(packet_id))
        history = await store.history(uuid.UUID(packet_id))
    return {
        "states": {d.recipient: (d.state, d.attempts) for d in records},
        "events": [(e.event.value, e.recipient) for e in history],
    }


async def wait_for(
    path: Path, packet_id: str, recipient: str, state: DeliveryState
) -> dict[str, Any]:
    for _ in range(600):
        seen = await deliveries(path, packet_id)
        if seen["states"].get(recipient, (None,))[0] is state:
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"{recipient} never reached {state}: {seen}")


def letter_to(*recipients: str, number: int | None = None) -> bytes:
    """A letter of its own (the example's, under the next DocumentId number, or ``number``),
    addressed to ``recipients`` only. Each call is another document: the exchange knows one by
    its sender and DocumentId, and the same letter again would be the same packet."""
    body = numbered(DOCUMENT, number).decode()
    head, _, rest = body.partition("<edXML:To>")
    tail = rest[rest.rindex("</edXML:To>") + len("</edXML:To>") :]
    to = "".join(
        f"<edXML:To><edXML:OrganId>{code}</edXML:OrganId></edXML:To>" for code in recipients
    )
    return (head + to + tail).encode()


@pytest.mark.asyncio
async def test_a_packet_crosses_the_bus_to_the_other_daemons_agency(tmp_path: Path) -> None:
    commune = AgencyServer()
    letter = letter_to(COMMUNE)
    async with two_daemons(tmp_path, commune) as (url, a_store, b_store):
        packet_id = await submit(url, letter)
        seen_b = await wait_for(b_store, packet_id, COMMUNE, DeliveryState.DELIVERED)
    (request,) = commune.received
    assert request.body == letter
    assert request.headers["X-LGSP-Packet-Id"] == packet_id
    assert seen_b["events"] == [
        ("received", COMMUNE),
        ("signature", COMMUNE),
        ("delivered", COMMUNE),
    ]
    seen_a = await wait_for(a_store, packet_id, COMMUNE, DeliveryState.DELIVERED)
    assert [e for e, _ in seen_a["events"]] == ["received", "published", "receipt"]


@pytest.mark.asyncio
async def test_a_failing_system_gets_it_through_the_retry_queues(tmp_path: Path) -> None:
    commune = AgencyServer(script=[503, 503])
    async with two_daemons(tmp_path, commune) as (url, a_store, b_store):
        packet_id = await submit(url, letter_to(COMMUNE))
        seen = await wait_for(b_store, packet_id, COMMUNE, DeliveryState.DELIVERED)
        # Found by a black-box probe: the sender kept 0 attempts beside "on attempt 3".
        sent = await wait_for(a_store, packet_id, COMMUNE, DeliveryState.DELIVERED)
    assert sent["states"][COMMUNE] == (DeliveryState.DELIVERED, 3)
    assert seen["states"][COMMUNE] == (DeliveryState.DELIVERED, 3)
    events = [e for e, _ in seen["events"]]
    assert events == ["received", "retried", "retried", "signature", "delivered"]
    assert [r.status for r in commune.received] == [503, 503, 200]


@pytest.mark.asyncio
async def test_a_packet_no_queue_takes_is_returned_not_dropped(tmp_path: Path) -> None:
    async with two_daemons(tmp_path, AgencyServer()) as (url, a_store, _):
        packet_id = await submit(url, letter_to(ELSEWHERE))
        seen = await wait_for(a_store, packet_id, ELSEWHERE, DeliveryState.DEAD_LETTERED)
    assert ("returned", ELSEWHERE) in seen["events"]


@pytest.mark.asyncio
async def test_the_sender_learns_a_refusal(tmp_path: Path) -> None:
    async with two_daemons(tmp_path, AgencyServer(then=400)) as (url, a_store, _):
        packet_id = await submit(url, letter_to(COMMUNE))
        seen = await wait_for(a_store, packet_id, COMMUNE, DeliveryState.REFUSED)
        async with aiohttp.ClientSession() as session:
            response = await session.get(
                f"{url}/v1/packets/{packet_id}", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            state = await response.json()
    assert ("receipt", COMMUNE) in seen["events"]
    assert [d["state"] for d in state["deliveries"]] == ["refused"]
    detail = state["deliveries"][0]["detail"]
    assert f"{COMMUNE}'s system answered HTTP 400" in detail
    assert "127.0.0.1" not in detail  # the recipient's address is not the sender's to see


RABBITMQCTL = shutil.which("rabbitmqctl")


@pytest.mark.asyncio
@pytest.mark.skipif(RABBITMQCTL is None, reason="rabbitmqctl is needed to drop connections")
async def test_dropped_connections_mid_stream_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    # The classic failure of aio-pika users: after a reconnect the consumers are not restored.
    commune = AgencyServer()
    async with two_daemons(tmp_path, commune) as (url, _, b_store):
        sent = []
        for i in range(60):
            sent.append(await submit(url, letter_to(COMMUNE, number=i)))
            if i in (20, 40):
                await rabbitmqctl("close_all_connections", "-p", "/", "lgsp-adapter test drop")
        for packet_id in sent:
            await wait_for(b_store, packet_id, COMMUNE, DeliveryState.DELIVERED)
    delivered = Counter(commune.delivered())
    assert set(sent) <= set(delivered)
    assert max(delivered.values()) == 1, delivered.most_common(3)


async def publish_raw(exchange: str, routing_key: str, message: aio_pika.Message) -> None:
    connection = await aio_pika.connect(BROKER)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        target = await channel.get_exchange(exchange)
        await target.publish(message, routing_key=routing_key, mandatory=True)


@pytest.mark.asyncio
async def test_messages_that_lie_about_their_packet_are_dead_lettered(tmp_path: Path) -> None:
    # Anyone with a broker account can publish: the receiving daemon believes the content and
    # its directory, not the headers.
    commune = AgencyServer()
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    body = letter_to(COMMUNE)
    honest = {
        "x-lgsp-sender": PROVINCE,
        "x-lgsp-recipient": COMMUNE,
        "x-lgsp-recipients": COMMUNE,
        "x-lgsp-payload-sha256": hashlib.sha256(body).hexdigest(),
    }
    lies = [
        (b"<not-edxml/>", {**honest, "x-lgsp-payload-sha256": "0" * 64}),  # wrong digest
        (
            b"<not-edxml/>",
            {**honest, "x-lgsp-payload-sha256": hashlib.sha256(b"<not-edxml/>").hexdigest()},
        ),
        (body, {**honest, "x-lgsp-sender": "000.00.00.G01"}),  # a sender the content denies
    ]
    try:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(agency_server(commune))
            config = settings(tmp_path, "b", exchange, {COMMUNE: commune.url}, [PROVINCE])
            await stack.enter_async_context(daemon(config))
            for payload, headers in lies:
                await publish_raw(
                    exchange,
                    f"edoc.{COMMUNE}",
                    aio_pika.Message(
                        payload,
                        message_id=str(uuid.uuid4()),
                        type="edoc",
                        content_type="application/xml",
                        headers=headers,  # type: ignore[arg-type]
                    ),
                )
            for _ in range(100):
                with sqlite3.connect(config.store.path) as db:
                    rows = db.execute(
                        "SELECT outcome FROM audit_entries WHERE event = 'rejected'"
                    ).fetchall()
                if len(rows) == len(lies):
                    break
                await asyncio.sleep(0.05)
    finally:
        await remove_topology(exchange, [COMMUNE])
    assert rows == [("bus.forged",)] * len(lies)
    assert commune.received == []


@pytest.mark.asyncio
async def test_a_forged_receipt_neither_stalls_nor_changes_anything(tmp_path: Path) -> None:
    commune = AgencyServer(script=[503])  # the real delivery needs one durable retry
    async with two_daemons(tmp_path, commune) as (url, a_store, _):
        packet_id = await submit(url, letter_to(COMMUNE))
        # A receipt for a recipient the packet does not have, and one that is no outcome.
        for recipient, state in ((ELSEWHERE, "delivered"), (COMMUNE, "accepted")):
            await publish_raw(
                settings_exchange(a_store),
                f"receipt.{PROVINCE}",
                aio_pika.Message(
                    b"",
                    type="receipt",
                    headers={
                        "x-lgsp-packet-id": packet_id,
                        "x-lgsp-sender": PROVINCE,
                        "x-lgsp-recipient": recipient,
                        "x-lgsp-state": state,
                    },
                ),
            )
        seen = await wait_for(a_store, packet_id, COMMUNE, DeliveryState.DELIVERED)
    assert ELSEWHERE not in seen["states"]
    assert commune.delivered() == [packet_id]


@pytest.mark.asyncio
async def test_a_stale_copy_after_a_lost_ack_costs_no_extra_attempt(tmp_path: Path) -> None:
    # After a crash between recording an attempt and acknowledging it, the broker redelivers
    # the original while the retry copy waits: the original must not count as a new attempt.
    commune = AgencyServer(then=503)
    async with two_daemons(tmp_path, commune) as (url, a_store, b_store):
        packet_id = await submit(url, letter_to(COMMUNE))
        await wait_for(b_store, packet_id, COMMUNE, DeliveryState.RETRYING)
        body = letter_to(COMMUNE)
        await publish_raw(
            settings_exchange(a_store),
            f"edoc.{COMMUNE}",
            aio_pika.Message(
                body,
                message_id=packet_id,
                type="edoc",
                content_type="application/xml",
                user_id="guest",
                headers={
                    "x-lgsp-sender": PROVINCE,
                    "x-lgsp-recipient": COMMUNE,
                    "x-lgsp-recipients": COMMUNE,
                    "x-lgsp-payload-sha256": hashlib.sha256(body).hexdigest(),
                },
            ),
        )
        seen = await wait_for(b_store, packet_id, COMMUNE, DeliveryState.DEAD_LETTERED)
    assert seen["states"][COMMUNE] == (DeliveryState.DEAD_LETTERED, 1 + len(DELAYS))
    assert len(commune.received) == 1 + len(DELAYS)
    # Had the stale copy counted, two attempts would have come together instead of each
    # waiting out its retry delay (0.3 s; a loaded machine only makes the gaps longer).
    times = [r.at for r in commune.received]
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.25


async def rabbitmqctl(*args: str) -> None:
    """Run rabbitmqctl; skip the test where it cannot manage the broker."""
    if RABBITMQCTL is None:
        pytest.skip("rabbitmqctl is needed to make broker accounts")
    run = await asyncio.create_subprocess_exec(
        str(RABBITMQCTL),
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, errors = await asyncio.wait_for(run.communicate(), timeout=60)
    if run.returncode != 0:  # not root, say: the broker's cookie is root's
        pytest.skip(f"rabbitmqctl cannot manage the broker here: {errors!r}")


@asynccontextmanager
async def broker_account(name: str, allowed: Permissions | None = None) -> AsyncIterator[str]:
    """A broker account of its own for one daemon (allowed everything, or ``allowed``); its
    AMQP URL."""
    password = uuid.uuid4().hex
    await rabbitmqctl("add_user", name, password)
    try:
        rules = (allowed.configure, allowed.write, allowed.read) if allowed else (".*",) * 3
        await rabbitmqctl("set_permissions", "-p", "/", name, *rules)
        yield f"amqp://{name}:{password}@127.0.0.1:5672/"
    finally:
        await rabbitmqctl("delete_user", name)


@pytest.mark.asyncio
async def test_retries_pass_the_sender_identity_check_of_separate_accounts(
    tmp_path: Path,
) -> None:
    """With each daemon on its own broker account and bus_user set, a packet that needs retries
    is still delivered: the receiving daemon's own retry copies are not taken for forgeries."""
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    suffix = uuid.uuid4().hex[:8]
    a_user, b_user = f"lgsp-a-{suffix}", f"lgsp-b-{suffix}"
    commune = AgencyServer(script=[503])
    try:
        async with (
            broker_account(a_user) as a_url,
            broker_account(b_user) as b_url,
            AsyncExitStack() as stack,
        ):
            await stack.enter_async_context(agency_server(commune))
            province = await stack.enter_async_context(agency_server(AgencyServer()))
            b = settings(tmp_path, "b", exchange, {COMMUNE: commune.url}, [PROVINCE])
            a = settings(tmp_path, "a", exchange, {PROVINCE: province.url}, [COMMUNE])
            b = b.model_copy(
                update={
                    "bus": b.bus.model_copy(update={"url": SecretStr(b_url)}),
                    "known_agencies": [
                        KnownAgency(code=AgencyCode.parse(PROVINCE), bus_user=a_user)
                    ],
                }
            )
            a = a.model_copy(
                update={
                    "bus": a.bus.model_copy(update={"url": SecretStr(a_url)}),
                    "known_agencies": [
                        KnownAgency(code=AgencyCode.parse(COMMUNE), bus_user=b_user)
                    ],
                }
            )
            await stack.enter_async_context(daemon(b))
            url = await stack.enter_async_context(daemon(a))
            packet_id = await submit(url, letter_to(COMMUNE))
            seen = await wait_for(b.store.path, packet_id, COMMUNE, DeliveryState.DELIVERED)
            await wait_for(a.store.path, packet_id, COMMUNE, DeliveryState.DELIVERED)
            # Another account's copy of a packet B already holds is still a forgery.
            body = letter_to(COMMUNE)
            await publish_raw(
                exchange,
                f"edoc.{COMMUNE}",
                aio_pika.Message(
                    body,
                    message_id=packet_id,  # the very packet B holds, from someone else
                    type="edoc",
                    content_type="application/xml",
                    user_id="guest",
                    headers={
                        "x-lgsp-sender": PROVINCE,
                        "x-lgsp-recipient": COMMUNE,
                        "x-lgsp-recipients": COMMUNE,
                        "x-lgsp-payload-sha256": hashlib.sha256(body).hexdigest(),
                    },
                ),
            )
            for _ in range(100):
                with sqlite3.connect(b.store.path) as db:
                    rejected = db.execute(
                        "SELECT outcome, detail FROM audit_entries WHERE event = 'rejected'"
                    ).fetchall()
                if rejected:
                    break
                await asyncio.sleep(0.05)
        events = [e for e, _ in seen["events"]]
        assert events == ["received", "retried", "signature", "delivered"]
        assert [r.status for r in commune.received] == [503, 200]
        assert len(rejected) == 1
        assert rejected[0][0] == "bus.forged"
        assert f"not by '{a_user}'" in rejected[0][1]
    finally:
        await remove_topology(exchange, [PROVINCE, COMMUNE])
