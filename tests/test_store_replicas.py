"""What replicas sharing one PostgreSQL database rely on: two handles on one schema stand for
two daemons (each has its own pool and its own session)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import pytest
import pytest_asyncio

from lgsp_adapter.audit import AuditEvent
from lgsp_adapter.audit.signing import LogKey
from lgsp_adapter.audit.verify import verify_log
from lgsp_adapter.bus.contract import Settlement
from lgsp_adapter.bus.embedded import EmbeddedBus
from lgsp_adapter.bus.rabbitmq import RabbitBus
from lgsp_adapter.bus.topology import Topology
from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.daemon.run import run_daemon
from lgsp_adapter.errors import FatalError
from lgsp_adapter.exchange.relay import Relay
from lgsp_adapter.registry.directory import Directory
from lgsp_adapter.store import DeliveryState, StoredPacket
from lgsp_adapter.store.postgres import PostgresStore
from tests.exchange_stores import fresh_schema
from tests.tcp_proxy import BrokerProxy
from tests.test_exchange_rabbitmq import BROKER, remove_topology
from tests.test_registry_live import served_agency
from tests.test_store import RECIPIENTS, entry, packet, received

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def replicas(postgres_database: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    dsn = await fresh_schema(postgres_database)
    async with await PostgresStore.open(dsn) as one, await PostgresStore.open(dsn) as two:
        yield one, two


async def test_one_delivery_is_handled_by_one_replica_at_a_time(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    one, two = replicas
    p = packet()
    order: list[str] = []

    async def handle(store: PostgresStore, name: str, hold_s: float) -> None:
        async with store.exclusive(p.id, RECIPIENTS[0]):
            order.append(f"{name} in")
            await asyncio.sleep(hold_s)
            order.append(f"{name} out")

    first = asyncio.create_task(handle(one, "one", 0.3))
    await asyncio.sleep(0.05)
    await handle(two, "two", 0)
    await first
    assert order == ["one in", "one out", "two in", "two out"]
    # Another delivery is not held up by it.
    async with one.exclusive(p.id, RECIPIENTS[0]):
        async with asyncio.timeout(1):
            async with two.exclusive(p.id, RECIPIENTS[1]):
                pass


async def test_a_replica_that_dies_frees_its_deliveries_and_roles(postgres_database: str) -> None:
    dsn = await fresh_schema(postgres_database)
    p = packet()
    async with await PostgresStore.open(dsn) as survivor:
        doomed = await PostgresStore.open(dsn)
        assert await doomed.take_role("relay")
        assert not await survivor.take_role("relay")
        held = doomed.exclusive(p.id, RECIPIENTS[0])
        await held.__aenter__()
        waiting = asyncio.create_task(survivor.exclusive(p.id, RECIPIENTS[0]).__aenter__())
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await doomed.close()  # its session ends, as a killed process's does
        async with asyncio.timeout(2):
            await waiting
        await held.__aexit__(None, None, None)  # nothing left to release, nothing reopened
        assert await survivor.take_role("relay")
        assert await survivor.take_role("relay")  # held: asking again is cheap and true


async def test_an_outbox_filled_by_one_replica_wakes_the_other(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    one, two = replicas
    woken = asyncio.Event()
    await two.on_outbox(woken.set)
    p = packet()
    await one.accept(p, [received(p)])
    async with asyncio.timeout(2):
        await woken.wait()
    woken.clear()
    await one.update_delivery(
        p.id, RECIPIENTS[0], DeliveryState.DEAD_LETTERED, entries=[], detail="gave up"
    )
    await one.leave_dead_letters(p.id, RECIPIENTS[0], DeliveryState.ACCEPTED, [])
    async with asyncio.timeout(2):
        await woken.wait()  # a replay fills the outbox too


async def test_replicas_writing_at_once_keep_one_linear_log(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    one, two = replicas
    packets = [packet(f"<edXML>{i}</edXML>".encode()) for i in range(40)]
    await asyncio.gather(
        *((one if i % 2 else two).accept(p, [received(p)]) for i, p in enumerate(packets))
    )
    await asyncio.gather(
        *(
            (two if i % 2 else one).update_delivery(
                p.id,
                r,
                DeliveryState.DELIVERED,
                entries=[entry(p, AuditEvent.DELIVERED, r)],
                attempted=True,
            )
            for i, p in enumerate(packets)
            for r in RECIPIENTS
        )
    )
    key = LogKey.generate("lgsp-adapter/test")
    signed = await asyncio.gather(one.audit.checkpoint(key), two.audit.checkpoint(key))
    assert {s.size for s in signed if s} == {len(packets) * 3}
    report = await verify_log(two.audit, key.verifier)
    assert report.ok, report
    indexes = [e.index for e in await one.audit.entries(0, len(packets) * 3)]
    assert indexes == list(range(len(packets) * 3))


async def test_a_database_serves_the_replicas_of_one_daemon_only(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    one, two = replicas
    await one.claim_for("broker account lgsp-province on exchange lgsp.packets")
    await two.claim_for("broker account lgsp-province on exchange lgsp.packets")  # a replica
    with pytest.raises(FatalError, match="the store of the daemons of broker account lgsp-prov"):
        await two.claim_for("broker account lgsp-commune on exchange lgsp.packets")


async def test_a_cancelled_wait_for_a_delivery_leaves_no_lock_behind(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    one, two = replicas
    p = packet()
    for steps in range(6):

        async def take() -> None:
            async with one.exclusive(p.id, RECIPIENTS[0]):
                await asyncio.sleep(10)

        taking = asyncio.create_task(take())
        for _ in range(steps):
            await asyncio.sleep(0)
        taking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await taking
        async with asyncio.timeout(2):  # the other replica gets it: nothing leaked
            async with two.exclusive(p.id, RECIPIENTS[0]):
                pass


async def test_stores_in_two_schemas_of_one_database_do_not_share_roles(
    postgres_database: str,
) -> None:
    first, second = await fresh_schema(postgres_database), await fresh_schema(postgres_database)
    async with await PostgresStore.open(first) as one, await PostgresStore.open(second) as two:
        assert await one.take_role("relay")
        assert await two.take_role("relay")  # another daemon's store: its own relay


async def test_a_site_idle_timeout_does_not_free_a_delivery_in_hand(
    postgres_database: str,
) -> None:
    # A hardened server ends idle sessions (idle_session_timeout); the replica's session holds
    # a delivery's lock while it posts to a slow agency system, saying nothing meanwhile.
    dsn = await fresh_schema(postgres_database)
    strict = f"{dsn}&idle_session_timeout=500"
    p = packet()
    order: list[str] = []
    async with await PostgresStore.open(strict) as one, await PostgresStore.open(dsn) as two:

        async def slow() -> None:
            async with one.exclusive(p.id, RECIPIENTS[0]):
                order.append("one in")
                await asyncio.sleep(1.5)
                order.append("one out")

        posting = asyncio.create_task(slow())
        await asyncio.sleep(0.2)
        async with two.exclusive(p.id, RECIPIENTS[0]):
            order.append("two in")
        await posting
    assert order == ["one in", "one out", "two in"]


async def test_a_replica_cut_off_from_the_broker_lets_another_relay(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    # Each replica on its own connection to the real broker; the role's holder loses its own
    # (a relay the test cuts), and the other replica's relay publishes the shared outbox.
    one, two = replicas
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    directory = Directory(served=[served_agency(code) for code in RECIPIENTS], known=[], clients=[])
    link = BrokerProxy()
    await link.start()

    def bus(store: PostgresStore, url: str) -> RabbitBus:
        return RabbitBus(
            url=url,
            topology=Topology(exchange),
            store=store,
            served=RECIPIENTS,
            prefetch=4,
            retry_delays_s=[0.3],
            connection_name="lgsp-adapter test",
            directory=directory,
        )

    try:
        async with bus(one, link.url) as cut_off, bus(two, BROKER) as connected:
            assert await one.take_role("relay")  # the holder, when its broker link went
            for _ in range(3):
                p = packet()
                await one.accept(p, [received(p)])
            await link.cut()
            async with asyncio.timeout(10):
                while cut_off.connected:  # noqa: ASYNC110  # aio-pika notices in its time
                    await asyncio.sleep(0.05)
            assert await Relay(store=one, bus=cut_off).publish_pending() == 0
            assert await Relay(store=two, bus=connected).publish_pending() == 6
            assert await two.outbox(10) == []
    finally:
        await link.cut()
        await remove_topology(exchange, RECIPIENTS)


async def test_an_embedded_bus_that_lost_its_role_leases_nothing(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    one, two = replicas
    p = packet()
    await one.accept(p, [received(p)])
    await one.enqueue(p.id, RECIPIENTS[0], [])
    assert await one.take_role("embedded-bus")
    handled: list[UUID] = []

    async def handler(packet: StoredPacket, recipient: str) -> Settlement:
        handled.append(packet.id)
        return Settlement(DeliveryState.DELIVERED)

    bus = EmbeddedBus(store=two, served=[RECIPIENTS[0]], prefetch=4, idle_poll_s=0.05)
    stopping = asyncio.Event()
    consuming = asyncio.create_task(bus.consume(handler, stopping))
    await asyncio.sleep(0.5)
    assert handled == []  # the other daemon's queue
    await one.close()  # its holder goes: the role is free, and taken
    await asyncio.sleep(0.5)
    stopping.set()
    await consuming
    assert handled == [p.id]


async def test_a_replica_with_a_key_of_its_own_does_not_start(
    tmp_path: Path, postgres_database: str
) -> None:
    # Each replica makes a key at its first start unless given the shared one: the first to
    # start signs at once, and the second, finding the log signed by another key, refuses.
    dsn = await fresh_schema(postgres_database)

    def settings(name: str) -> Settings:
        return Settings.model_validate(
            {
                "http": {"port": 0},
                "store": {"url": dsn, "path": str(tmp_path / name / "store.sqlite3")},
                "agencies": [
                    {
                        "code": RECIPIENTS[0],
                        "name": "Xã",
                        "endpoint": {"url": "http://127.0.0.1:9/"},
                    }
                ],
            }
        )

    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    first = asyncio.create_task(run_daemon(settings("one"), stop, ready.set_result))
    try:
        await asyncio.wait_for(asyncio.shield(ready), timeout=20)
        with pytest.raises(FatalError, match="is not signed by the key"):
            await run_daemon(settings("two"), asyncio.Event())
    finally:
        stop.set()
        await asyncio.wait_for(first, timeout=20)
