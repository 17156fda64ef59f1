"""Registry changes that race with packets, on both buses: an agency removed while packets to
it are in flight, registered while packets to it are being sent, switched from pull to push,
removed while packets are held for it, and its queues deleted by an operator meanwhile. Nothing
is lost, nothing is dead-lettered for the race, nothing is posted twice."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from yarl import URL

from lgsp_adapter.audit.query import AuditQuery
from lgsp_adapter.bus.contract import Settlement
from lgsp_adapter.bus.embedded import EmbeddedBus
from lgsp_adapter.bus.rabbitmq import RabbitBus
from lgsp_adapter.bus.rabbitmq_messages import packet_message
from lgsp_adapter.bus.topology import NOT_SERVED_WAIT_S, Topology
from lgsp_adapter.exchange.relay import Relay
from lgsp_adapter.exchange.settling import Settler
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.packets.safe_xml import XmlLimits
from lgsp_adapter.registry.agencies import KnownAgency, ServedAgency
from lgsp_adapter.registry.directory import Directory
from lgsp_adapter.registry.service import Registry
from lgsp_adapter.store import DeliveryState, StoredPacket
from lgsp_adapter.store.sqlite import SqliteStore
from tests.agency_server import AgencyServer, agency_server
from tests.tcp_proxy import BrokerProxy
from tests.test_exchange_rabbitmq import BROKER, broker_account, letter_to, remove_topology
from tests.test_registry_rabbitmq import consumers as queue_consumers
from tests.test_registry_web import COMMUNE, PROVINCE, PROVINCE_TOKEN, Api, commune, running

BUSES = ["embedded", "rabbitmq"]


@asynccontextmanager
async def daemon_on(bus: str, tmp_path: Path, province: AgencyServer) -> AsyncIterator[Api]:
    """The registry's test daemon on ``bus``; RabbitMQ's topology removed afterwards."""
    if bus == "embedded":
        async with running(tmp_path, province) as api:
            yield api
        return
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    try:
        async with running(tmp_path, province, {"url": BROKER, "exchange": exchange}) as api:
            api.exchange = exchange  # type: ignore[attr-defined]
            yield api
    finally:
        await remove_topology(exchange, [PROVINCE, COMMUNE], [0.2, 1.0, 5.0])


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout_s: float = 20) -> None:
    for _ in range(int(timeout_s / 0.05)):
        outcome = check()
        if await outcome if isinstance(outcome, Awaitable) else outcome:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("not within the time allowed")


def states(store: Path, recipient: str = COMMUNE) -> dict[str, str]:
    with sqlite3.connect(store) as db:
        rows = db.execute(
            "SELECT packet_id, state FROM deliveries WHERE recipient = ?", (recipient,)
        ).fetchall()
    return dict(rows)


async def send(sender: Api, to: str = COMMUNE) -> str:
    status, answer, _ = await sender.call(
        "POST", "/v1/packets", letter_to(to), **{"Content-Type": "application/xml"}
    )
    assert status == 202, answer
    return str(answer["packet_id"])


@pytest.mark.asyncio
@pytest.mark.parametrize("bus", BUSES)
async def test_removed_mid_stream_nothing_is_lost_and_all_arrive_once_registered_again(
    bus: str, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        province = await stack.enter_async_context(agency_server(AgencyServer()))
        quang_phu = await stack.enter_async_context(agency_server(AgencyServer(delay_s=0.01)))
        api = await stack.enter_async_context(daemon_on(bus, tmp_path, province))
        sender = api.as_(PROVINCE_TOKEN)
        assert (await api.call("POST", "/v1/endpoints", commune(quang_phu.url)))[0] == 201
        first = await asyncio.gather(*(send(sender) for _ in range(60)))
        more = asyncio.gather(*(send(sender) for _ in range(40)))
        await asyncio.sleep(0.05)
        assert (await api.call("DELETE", f"/v1/endpoints/{COMMUNE}"))[0] == 204
        sent = [*first, *await more]
        await asyncio.sleep(1.5)  # what was in flight settles: waiting, not dead
        seen = states(tmp_path / "store.sqlite3")
        assert "dead_lettered" not in seen.values(), seen
        assert (await api.call("POST", "/v1/endpoints", commune(quang_phu.url)))[0] == 201
        await eventually(lambda: set(quang_phu.delivered()) >= set(sent))
        assert sorted(quang_phu.delivered()) == sorted(set(quang_phu.delivered()))  # once each
        await eventually(lambda: set(states(tmp_path / "store.sqlite3").values()) == {"delivered"})


@pytest.mark.asyncio
@pytest.mark.parametrize("bus", BUSES)
async def test_packets_sent_while_an_agency_is_registered_all_arrive(
    bus: str, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        province = await stack.enter_async_context(agency_server(AgencyServer()))
        systems = [await stack.enter_async_context(agency_server(AgencyServer())) for _ in range(4)]
        api = await stack.enter_async_context(daemon_on(bus, tmp_path, province))
        sender = api.as_(PROVINCE_TOKEN)
        codes = [f"000.21.0{n}.H56" for n in range(1, 5)]
        accepted: dict[str, list[str]] = {code: [] for code in codes}

        async def keep_sending(code: str) -> None:
            for _ in range(200):
                status, answer, _ = await sender.call(
                    "POST", "/v1/packets", letter_to(code), **{"Content-Type": "application/xml"}
                )
                if status == 202:
                    accepted[code].append(str(answer["packet_id"]))
                    if len(accepted[code]) == 5:
                        return
                await asyncio.sleep(0.005)

        senders = [asyncio.create_task(keep_sending(code)) for code in codes]
        for code, system in zip(codes, systems, strict=True):
            assert (await api.call("POST", "/v1/endpoints", commune(system.url, code)))[0] == 201
        await asyncio.gather(*senders)
        for code, system in zip(codes, systems, strict=True):
            assert len(accepted[code]) == 5

            def arrived(system: AgencyServer = system, code: str = code) -> bool:
                return sorted(system.delivered()) == sorted(accepted[code])

            await eventually(arrived)
        if bus == "rabbitmq":
            await remove_topology(api.exchange, codes, [0.2])  # type: ignore[attr-defined]


@pytest.mark.asyncio
@pytest.mark.parametrize("bus", BUSES)
async def test_held_packets_are_pushed_once_their_agency_takes_pushes(
    bus: str, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        province = await stack.enter_async_context(agency_server(AgencyServer()))
        quang_phu = await stack.enter_async_context(agency_server(AgencyServer()))
        api = await stack.enter_async_context(daemon_on(bus, tmp_path, province))
        sender = api.as_(PROVINCE_TOKEN)
        pulling = commune(quang_phu.url) | {"endpoint": {"mode": "pull"}}
        assert (await api.call("POST", "/v1/endpoints", pulling))[0] == 201
        held = await send(sender)
        await eventually(lambda: states(tmp_path / "store.sqlite3").get(held) == "held")
        change = {"endpoint": {"mode": "push", "url": quang_phu.url}}
        assert (await api.call("PATCH", f"/v1/endpoints/{COMMUNE}", change))[0] == 200
        await eventually(lambda: quang_phu.delivered() == [held])


@pytest.mark.asyncio
async def test_packets_held_for_a_removed_agency_wait_for_it_across_a_restart(
    tmp_path: Path,
) -> None:
    pulling = commune("http://127.0.0.1:9/") | {"endpoint": {"mode": "pull"}}
    async with agency_server(AgencyServer()) as province:
        async with running(tmp_path, province) as api:
            status, record, _ = await api.call("POST", "/v1/endpoints", pulling)
            assert status == 201
            held = await send(api.as_(PROVINCE_TOKEN))
            await eventually(lambda: states(tmp_path / "store.sqlite3").get(held) == "held")
            assert (await api.call("DELETE", f"/v1/endpoints/{COMMUNE}"))[0] == 204
        async with running(tmp_path, province) as api:  # a restart
            assert states(tmp_path / "store.sqlite3")[held] == "held"
            status, record, _ = await api.call("POST", "/v1/endpoints", pulling)
            assert status == 201
            status, inbox, _ = await api.as_(record["token"]).call("GET", "/v1/inbox")
            assert status == 200
            assert [p["packet_id"] for p in inbox["packets"]] == [held]


@pytest.mark.asyncio
async def test_queues_an_operator_deleted_are_declared_again_on_registration(
    tmp_path: Path,
) -> None:
    delays = [5.0, 5.0]
    async with AsyncExitStack() as stack:
        province = await stack.enter_async_context(agency_server(AgencyServer()))
        failing = await stack.enter_async_context(agency_server(AgencyServer(then=503)))
        api = await stack.enter_async_context(daemon_on("rabbitmq", tmp_path, province))
        topology = Topology(api.exchange)  # type: ignore[attr-defined]
        body: dict[str, Any] = commune(failing.url, retry_delays_s=delays)
        assert (await api.call("POST", "/v1/endpoints", body))[0] == 201
        assert (await api.call("DELETE", f"/v1/endpoints/{COMMUNE}"))[0] == 204
        connection = await aio_pika.connect(BROKER)
        async with connection:
            channel = await connection.channel()
            names = [topology.agency_queue(COMMUNE), topology.dead_queue(COMMUNE)]
            for name in [*names, *(topology.retry_queue(COMMUNE, d) for d in delays)]:
                await channel.queue_delete(name)
        assert (await api.call("POST", "/v1/endpoints", body))[0] == 201
        packet_id = await send(api.as_(PROVINCE_TOKEN))
        await eventually(lambda: states(tmp_path / "store.sqlite3").get(packet_id) == "retrying")
        await asyncio.sleep(1.0)
        assert len(failing.received) == 1  # parked for its 5 s, not posted again at once
        await remove_topology(api.exchange, [COMMUNE], delays)  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_with_the_broker_away_changes_still_apply_and_new_agencies_follow_its_return(
    tmp_path: Path,
) -> None:
    proxy = BrokerProxy()
    await proxy.start()
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    other = "000.21.09.H56"
    pulling = commune("http://127.0.0.1:9/") | {"endpoint": {"mode": "pull"}}
    try:
        async with AsyncExitStack() as stack:
            province = await stack.enter_async_context(agency_server(AgencyServer()))
            bus = {"url": proxy.url, "exchange": exchange}
            api = await stack.enter_async_context(running(tmp_path, province, bus))
            status, record, _ = await api.call("POST", "/v1/endpoints", pulling)
            assert status == 201
            token = record["token"]
            _, shown, _ = await api.call("GET", f"/v1/endpoints/{COMMUNE}")
            token_id = shown["tokens"][0]["id"]

            await proxy.cut()
            await asyncio.sleep(0.2)
            registering = api.call("POST", "/v1/endpoints", pulling | {"code": other})
            status, _, _ = await asyncio.wait_for(registering, timeout=5)
            assert status == 201  # stored, and audited
            revoking = api.call("DELETE", f"/v1/endpoints/{COMMUNE}/tokens/{token_id}")
            status, _, _ = await asyncio.wait_for(revoking, timeout=5)
            assert status == 204
            status, answer, _ = await api.as_(token).call("GET", "/v1/inbox")
            assert (status, answer["error"]["code"]) == (401, "auth.invalid")  # at once
            # The new agency is not routable while its queue cannot be declared.
            status, answer, _ = await api.as_(PROVINCE_TOKEN).call(
                "POST", "/v1/packets", letter_to(other), **{"Content-Type": "application/xml"}
            )
            assert (status, answer["error"]["code"]) == (422, "packet.unknown_recipient")

            await proxy.start()
            await eventually(lambda: consumers(exchange, other), timeout_s=30)
            packet_id = await send(api.as_(PROVINCE_TOKEN), other)
            await eventually(
                lambda: states(tmp_path / "store.sqlite3", other).get(packet_id) == "held"
            )
    finally:
        await proxy.cut()
        await remove_topology(exchange, [PROVINCE, COMMUNE, other], [0.2, 1.0])


@pytest.mark.asyncio
async def test_a_broker_blip_as_the_daemon_starts_does_not_leave_it_consuming_nothing(
    tmp_path: Path,
) -> None:
    proxy = BrokerProxy()
    await proxy.start()
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    try:
        async with AsyncExitStack() as stack:
            province = await stack.enter_async_context(agency_server(AgencyServer()))
            quang_phu = await stack.enter_async_context(agency_server(AgencyServer()))
            bus = {"url": proxy.url, "exchange": exchange}
            api = await stack.enter_async_context(running(tmp_path, province, bus))
            await proxy.cut()  # just as the consumer opens its channel
            await asyncio.sleep(0.3)
            await proxy.start()
            assert (await api.call("POST", "/v1/endpoints", commune(quang_phu.url)))[0] == 201
            # Served once the bus is back (aio-pika reconnects within seconds).
            await eventually(lambda: consumers(exchange, COMMUNE), timeout_s=30)
            sent = [await send(api.as_(PROVINCE_TOKEN), code) for code in (PROVINCE, COMMUNE)]
            await eventually(lambda: province.delivered() == sent[:1], timeout_s=30)
            await eventually(lambda: quang_phu.delivered() == sent[1:], timeout_s=30)
            # One consumer each: a channel abandoned in the blip is not restored with its own.
            assert await consumer_count(exchange, PROVINCE) == 1
            assert await consumer_count(exchange, COMMUNE) == 1
    finally:
        await proxy.cut()
        await remove_topology(exchange, [PROVINCE, COMMUNE], [0.2, 1.0])


async def consumers(exchange: str, code: str) -> bool:
    """Whether the agency's queue has a consumer."""
    return bool(await consumer_count(exchange, code))


async def consumer_count(exchange: str, code: str) -> int:
    """How many consumers the agency's queue has (0 when there is no such queue)."""
    return await queue_consumers(exchange, code) or 0


def served_agency(code: str) -> ServedAgency:
    return ServedAgency.model_validate(
        {"code": code, "name": code, "endpoint": {"url": "http://127.0.0.1:9/"}}
    )


@pytest.mark.asyncio
async def test_a_serve_that_fails_halfway_is_mended_by_the_next(tmp_path: Path) -> None:
    """One change removes B and adds C; starting C's consumer fails once (the connection
    dropping): the next call, as the registry's next look makes it, still stops B's."""
    a, b, c = "000.21.01.H56", "000.21.02.H56", "000.21.03.H56"
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    directory = Directory(served=[served_agency(a), served_agency(b)], known=[], clients=[])
    stopping = asyncio.Event()
    try:
        async with (
            await SqliteStore.open(tmp_path / "store.sqlite3", owner=True) as store,
            RabbitBus(
                url=BROKER,
                topology=Topology(exchange),
                store=store,
                served=[a, b],
                prefetch=4,
                retry_delays_s=[0.3],
                connection_name="lgsp-adapter test",
                directory=directory,
            ) as bus,
        ):

            async def handler(packet: StoredPacket, recipient: str) -> Settlement:
                raise AssertionError("nothing is sent in this test")

            settler = Settler(
                store=store,
                directory=directory,
                carrier=bus,
                handler=handler,
                served=[a, b],
                limits=XmlLimits(),
            )
            consuming = asyncio.create_task(bus.consume(settler, stopping))
            await eventually(lambda: consumers(exchange, b))
            directory.update([served_agency(a), served_agency(c)], [])
            start_consumer = bus._consumers._start
            failures = [ConnectionError("the connection dropped")]

            async def flaky(*args: Any) -> None:
                if failures:
                    raise failures.pop()
                await start_consumer(*args)

            bus._consumers._start = flaky  # type: ignore[method-assign,assignment]
            with pytest.raises(ConnectionError):
                await bus.serve([a, c])
            await bus.serve([a, c])
            assert not await consumers(exchange, b)
            assert await consumers(exchange, c)
            stopping.set()
            await consuming
    finally:
        await remove_topology(exchange, [a, b, c], [0.3])


@pytest.mark.asyncio
@pytest.mark.parametrize("bus", BUSES)
async def test_a_retrying_packet_held_then_released_is_pushed(bus: str, tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        province = await stack.enter_async_context(agency_server(AgencyServer()))
        quang_phu = await stack.enter_async_context(agency_server(AgencyServer(script=[503])))
        api = await stack.enter_async_context(daemon_on(bus, tmp_path, province))
        body: dict[str, Any] = commune(quang_phu.url, retry_delays_s=[1.0])
        assert (await api.call("POST", "/v1/endpoints", body))[0] == 201
        packet_id = await send(api.as_(PROVINCE_TOKEN))
        await eventually(lambda: states(tmp_path / "store.sqlite3").get(packet_id) == "retrying")
        pulling = {"endpoint": {"mode": "pull", "url": None}}
        assert (await api.call("PATCH", f"/v1/endpoints/{COMMUNE}", pulling))[0] == 200
        await eventually(lambda: states(tmp_path / "store.sqlite3").get(packet_id) == "held")
        pushing = {"endpoint": {"mode": "push", "url": quang_phu.url}}
        assert (await api.call("PATCH", f"/v1/endpoints/{COMMUNE}", pushing))[0] == 200
        await eventually(lambda: quang_phu.delivered() == [packet_id])


@pytest.mark.asyncio
async def test_a_copy_bounced_while_not_served_is_not_taken_for_a_forgery(
    tmp_path: Path,
) -> None:
    """A packet from another daemon's agency arrives while its recipient is not served: the
    copy that waits is published under this daemon's account, and still believed after."""
    sender, recipient = "000.00.00.H56", "000.21.05.H56"
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    handled: list[str] = []
    async with broker_account(f"lgsp_test_{uuid.uuid4().hex[:8]}") as other:
        directory = Directory(
            served=[served_agency(recipient)],
            known=[KnownAgency(code=AgencyCode.parse(sender), bus_user=URL(other).user)],
            clients=[],
        )
        stopping = asyncio.Event()
        try:
            async with (
                await SqliteStore.open(tmp_path / "store.sqlite3", owner=True) as store,
                RabbitBus(
                    url=BROKER,
                    topology=Topology(exchange),
                    store=store,
                    served=[recipient],
                    prefetch=4,
                    retry_delays_s=[0.3],
                    connection_name="lgsp-adapter test",
                    directory=directory,
                ) as bus,
            ):

                async def handler(packet: StoredPacket, to: str) -> Settlement:
                    handled.append(str(packet.id))
                    return Settlement(DeliveryState.DELIVERED, attempted=True)

                settler = Settler(
                    store=store,
                    directory=directory,
                    carrier=bus,
                    handler=handler,
                    served=[recipient],
                    limits=XmlLimits(),
                )
                consuming = asyncio.create_task(bus.consume(settler, stopping))
                await eventually(lambda: consumers(exchange, recipient))
                await settler.serve([])  # the window between a removal and its consumer's end
                body = letter_to(recipient)
                packet = StoredPacket(
                    id=uuid.uuid4(),
                    kind="edoc",
                    sender=sender,
                    recipients=[recipient],
                    content_type="application/xml",
                    payload=body,
                    sha256=hashlib.sha256(body).hexdigest(),
                )
                connection = await aio_pika.connect(other)
                async with connection:
                    channel = await connection.channel()
                    exchange_handle = await channel.get_exchange(exchange)
                    message = packet_message(packet, recipient, user=str(URL(other).user))
                    await exchange_handle.publish(message, routing_key=f"edoc.{recipient}")
                await asyncio.sleep(0.3)
                await settler.serve([recipient])  # served again
                await eventually(lambda: handled == [str(packet.id)])
                rejected = await store.audit.query(AuditQuery(outcome="bus.forged"))
                assert rejected == []
                stopping.set()
                await consuming
        finally:
            await remove_topology(exchange, [recipient], [0.3, NOT_SERVED_WAIT_S])


@pytest.mark.asyncio
async def test_a_record_an_older_version_stored_is_not_served_but_can_be_mended(
    tmp_path: Path,
) -> None:
    """Credentials in the URL were accepted once; such a stored record must neither stop the
    daemon nor be served, and its secret must not reach the log."""
    store_path = tmp_path / "store.sqlite3"
    async with agency_server(AgencyServer()) as province:
        async with running(tmp_path, province) as api:
            assert (await api.call("POST", "/v1/endpoints", commune("http://127.0.0.1:9/")))[
                0
            ] == 201
        with sqlite3.connect(store_path) as db:  # as an older version would have kept it
            (text,) = db.execute(
                "SELECT record FROM registry_endpoints WHERE code = ?", (COMMUNE,)
            ).fetchone()
            old = json.loads(text)
            old["endpoint"]["url"] = "http://vp:s3cret-pass@127.0.0.1:9/"
            db.execute(
                "UPDATE registry_endpoints SET record = ? WHERE code = ?",
                (json.dumps(old), COMMUNE),
            )
        async with running(tmp_path, province) as api:
            status, shown, _ = await api.call("GET", f"/v1/endpoints/{COMMUNE}")
            assert status == 200
            assert "may not carry credentials" in shown["problem"]
            assert "s3cret-pass" not in json.dumps(shown["problem"])
            status, answer, _ = await api.as_(PROVINCE_TOKEN).call(
                "POST", "/v1/packets", letter_to(COMMUNE), **{"Content-Type": "application/xml"}
            )
            assert (status, answer["error"]["code"]) == (422, "packet.unknown_recipient")
            mend = {"endpoint": {"url": "http://127.0.0.1:9/"}}
            status, mended, _ = await api.call("PATCH", f"/v1/endpoints/{COMMUNE}", mend)
            assert status == 200
            assert "problem" not in mended
            await send(api.as_(PROVINCE_TOKEN))


@pytest.mark.asyncio
async def test_the_embedded_bus_returns_what_no_daemon_here_ever_served(tmp_path: Path) -> None:
    """A packet accepted for an agency another daemon serves (the embedded bus reaches none)
    comes back as returned, the relay records it so and its sender is told; one for an agency
    removed since waits."""
    told: list[str] = []

    async def on_final(packet_id: uuid.UUID, recipient: str) -> None:
        told.append(recipient)

    removed, elsewhere = COMMUNE, "000.00.12.H56"
    async with await SqliteStore.open(tmp_path / "store.sqlite3", owner=True) as store:
        registry = Registry(store.registry, Directory(served=[], known=[], clients=[]))
        await registry.create(commune("http://127.0.0.1:9/"), actor="i", issue_token=False)
        await registry.remove(COMMUNE, actor="i")
        bus = EmbeddedBus(store=store, served=[PROVINCE], prefetch=4, on_final=on_final)
        body = letter_to(removed, elsewhere)
        packet = StoredPacket(
            id=uuid.uuid4(),
            kind="edoc",
            sender=PROVINCE,
            recipients=[removed, elsewhere],
            content_type="application/xml",
            payload=body,
            sha256=hashlib.sha256(body).hexdigest(),
        )
        await store.accept(packet, [])
        # The relay publishes, and settles what the bus hands back as refused.
        assert await Relay(store=store, bus=bus, on_final=on_final).publish_pending() == 2
        records = {d.recipient: d.state for d in await store.deliveries(packet.id)}
        assert records == {
            removed: DeliveryState.PUBLISHED,  # waits in the queue for its agency
            elsewhere: DeliveryState.DEAD_LETTERED,  # returned: no daemon here serves it
        }
        assert told == [elsewhere]
